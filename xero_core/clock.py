"""Time as an object, so tests (and the fake Xero's clock) can move it without waiting."""
from __future__ import annotations

import time
from datetime import datetime, timezone
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
