"""The fake Xero's clock: time that only moves when told to (or when someone sleeps on it).

It satisfies `xero_core.clock.Clock`, so a test can hand the same object to the product and to
the fake: the client's back-off sleeps advance the fake's minute windows instead of waiting.
"""
from __future__ import annotations

import threading
from datetime import date, datetime, time, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    """What the fake asks of a clock: FakeClock, OffsetClock, or the product's (same methods)."""

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def now(self) -> datetime: ...


class FakeClock:
    def __init__(self, start: datetime | date | float | None = None):
        if start is None:
            start = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
        if isinstance(start, (int, float)):
            self._t = float(start)
        else:
            if not isinstance(start, datetime):
                # a date alone: a working morning in UTC, so "today" stays that date for hours
                start = datetime.combine(start, time(9, 0), tzinfo=timezone.utc)
            if start.tzinfo is None:
                start = start.replace(tzinfo=timezone.utc)
            self._t = start.timestamp()
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)

    def advance(self, seconds: float | timedelta = 0.0, **kw: float) -> datetime:
        """advance(90), advance(timedelta(days=1)) or advance(minutes=31); returns the new now()."""
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        seconds += timedelta(**kw).total_seconds() if kw else 0.0
        if seconds < 0:
            raise ValueError("a FakeClock only moves forward")
        with self._lock:
            self._t += seconds
        return self.now()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=timezone.utc)

    def today(self) -> date:
        return self.now().date()

    def __repr__(self) -> str:
        return f"FakeClock({self.now().isoformat()})"


class OffsetClock:
    """Real time, shifted: the loopback fake's clock. Time flows (tokens expire, minute windows
    roll) while `--today` pins the date the data ends on, and `/_fake/clock/advance` can jump it."""

    def __init__(self, today: date | None = None):
        import time as _time

        self._time = _time
        self._offset = 0.0
        if today is not None:
            real = datetime.now(timezone.utc)
            shifted = datetime.combine(today, real.time(), tzinfo=timezone.utc)
            self._offset = shifted.timestamp() - real.timestamp()
        self._lock = threading.Lock()

    def time(self) -> float:
        return self._time.time() + self._offset

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._time.sleep(seconds)

    def advance(self, seconds: float | timedelta = 0.0, **kw: float) -> datetime:
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        seconds += timedelta(**kw).total_seconds() if kw else 0.0
        if seconds < 0:
            raise ValueError("the fake's clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=timezone.utc)

    def today(self) -> date:
        return self.now().date()
