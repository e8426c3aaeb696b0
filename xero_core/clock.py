"""Time as an object, so tests (and the fake Xero's clock) can move it without waiting.

`today(tz)` is the calendar date code without a `Clock` uses (the analysis functions behind the
notebooks decide "complete weeks" with it): the date in XERO_TIMEZONE, as the sync and the scheduler
see it, not the computer's zone (a server on UTC is still on yesterday at 06:00 in Sydney).

`XERO_TODAY=YYYY-MM-DD` in the environment pins it, so a notebook kernel or a subprocess started by a
test sees the same date as the test's fake Xero. It pins `SYSTEM_CLOCK` too: real time moved onto that
date in XERO_TIMEZONE at the same wall-clock time, at the process's first look; the CLI, the app and
the scheduler started with it sync, schedule and stamp on the test's (or demo's) date, at real speed.
(The fake's `--today` moves its own clock onto that date in UTC.)
"""
from __future__ import annotations

import os
import time
from datetime import date, datetime, timezone
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def time(self) -> float: ...  # seconds since the epoch (UTC)
    def sleep(self, seconds: float) -> None: ...
    def now(self) -> datetime: ...  # aware, UTC


class SystemClock:
    """The computer's clock, or with XERO_TODAY set, the computer's clock moved onto that date in
    XERO_TIMEZONE (same wall-clock time). The shift is fixed when the clock first sees a value, so
    time never jumps back at midnight; every process started with the same XERO_TODAY on the same
    real day agrees (`pin_shift`)."""

    def __init__(self) -> None:
        self._pin: tuple[str, float] | None = None  # (XERO_TODAY as seen, shift in seconds)

    def _shift(self) -> float:
        raw = (os.environ.get(TODAY_ENV) or "").strip()
        if not raw:
            return 0.0
        pin = self._pin
        if pin is None or pin[0] != raw:
            pin = self._pin = (raw, pin_shift(_parse_day(raw), time.time()))
        return pin[1]

    def time(self) -> float:
        return time.time() + self._shift()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), timezone.utc)


SYSTEM_CLOCK = SystemClock()


TODAY_ENV = "XERO_TODAY"


def pinned_day() -> date | None:
    """`XERO_TODAY` as a date, None when unset; a malformed value raises ValueError (a sentence)."""
    pinned = (os.environ.get(TODAY_ENV) or "").strip()
    return _parse_day(pinned) if pinned else None


def _parse_day(pinned: str) -> date:
    try:
        return date.fromisoformat(pinned)
    except ValueError:
        raise ValueError(f"{TODAY_ENV}={pinned!r} must be a date as YYYY-MM-DD, e.g. 2026-12-05, or unset.") from None


DEFAULT_TIMEZONE = "Australia/Sydney"  # XERO_TIMEZONE's default, as in settings.py


def zone(tz: str | None = None) -> ZoneInfo:
    """`tz`, else XERO_TIMEZONE from the environment, else Australia/Sydney. ValueError (a sentence) if unknown."""
    name = tz or (os.environ.get("XERO_TIMEZONE") or "").strip() or DEFAULT_TIMEZONE
    try:
        return ZoneInfo(name)
    except Exception:
        raise ValueError(f"XERO_TIMEZONE={name!r} is not an IANA time zone, e.g. Australia/Sydney.") from None


def pin_shift(day: date, real: float, tz: str | None = None) -> float:
    """Seconds to add to the real time `real` so that it falls on `day` in `tz` (XERO_TIMEZONE),
    at the same wall-clock time. Tests moving their own clock (time-machine) use the same shift."""
    z = zone(tz)
    local = datetime.fromtimestamp(real, z)
    return datetime.combine(day, local.time(), tzinfo=z).timestamp() - real


def today(tz: str | None = None) -> date:
    """`XERO_TODAY` (YYYY-MM-DD) when set, pinning "today" for processes a caller cannot hand a
    clock to (notebook kernels, subprocesses in tests); else today's date in `tz` (XERO_TIMEZONE:
    the sync's and the scheduler's date, whatever zone the computer is in)."""
    return pinned_day() or SYSTEM_CLOCK.now().astimezone(zone(tz)).date()
