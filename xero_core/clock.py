"""Time as an object, so tests (and the fake Xero's clock) can move it without waiting.

`today()` is the calendar date code without a `Clock` uses (the analysis functions behind the
notebooks decide "complete weeks" with it). `XERO_TODAY=YYYY-MM-DD` in the environment pins it, so a
notebook kernel or a subprocess started by a test sees the same date as the test's fake Xero.
It pins `SYSTEM_CLOCK` too: real time shifted by whole days so that its UTC date is that day at the
process's first look (the fake's `--today` shifts its clock the same way), so the CLI, the app and
the scheduler started with it sync, schedule and stamp on the test's (or demo's) date, at real speed.
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
    """The computer's clock, or with XERO_TODAY set, the computer's clock moved by whole days onto
    that date (UTC). The shift is fixed when the clock first sees a value, so time never jumps back
    at midnight; every process started with the same XERO_TODAY on the same real day agrees."""

    def __init__(self) -> None:
        self._pin: tuple[str, float] | None = None  # (XERO_TODAY as seen, shift in seconds)

    def _shift(self) -> float:
        raw = (os.environ.get(TODAY_ENV) or "").strip()
        if not raw:
            return 0.0
        pin = self._pin
        if pin is None or pin[0] != raw:
            day = pinned_day()
            real_day = datetime.fromtimestamp(time.time(), timezone.utc).date()
            pin = self._pin = (raw, (day - real_day).days * 86400.0)
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
    if not pinned:
        return None
    try:
        return date.fromisoformat(pinned)
    except ValueError:
        raise ValueError(f"{TODAY_ENV}={pinned!r} must be a date as YYYY-MM-DD, e.g. 2026-12-05, or unset.") from None


def today() -> date:
    """The local calendar date, or `XERO_TODAY` (YYYY-MM-DD) when set: pins "today" for
    processes a caller cannot hand a clock to (notebook kernels, subprocesses in tests)."""
    return pinned_day() or date.today()
