"""Time as an object, so tests (and the fake Xero's clock) can move it without waiting.

`today()` is the calendar date code without a `Clock` uses (the analysis functions behind the
notebooks decide "complete weeks" with it). `XERO_TODAY=YYYY-MM-DD` in the environment pins it, so a
notebook kernel or a subprocess started by a test sees the same date as the test's fake Xero.
"""
from __future__ import annotations

import os
import time
from datetime import date, datetime, timezone
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float: ...  # seconds since the epoch (UTC)
    def sleep(self, seconds: float) -> None: ...
    def now(self) -> datetime: ...  # aware, UTC


class SystemClock:
    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


SYSTEM_CLOCK = SystemClock()


TODAY_ENV = "XERO_TODAY"


def today() -> date:
    """The local calendar date, or `XERO_TODAY` (YYYY-MM-DD) when set: pins "today" for
    processes a caller cannot hand a clock to (notebook kernels, subprocesses in tests)."""
    pinned = (os.environ.get(TODAY_ENV) or "").strip()
    if pinned:
        try:
            return date.fromisoformat(pinned)
        except ValueError:
            raise ValueError(f"{TODAY_ENV}={pinned!r} must be a date as YYYY-MM-DD, e.g. 2026-12-05, or unset.") from None
    return date.today()
