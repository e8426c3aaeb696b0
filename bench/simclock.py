"""Virtual time shared by many threads, for benchmarks that are bound by Xero's rate limits.

`SimClock` satisfies `xero_core.clock.Clock`. Time stands still while any registered worker is
working and jumps to the earliest wake-up once every registered worker sleeps (a discrete-event
simulation), so an hour of rate-limited syncing runs in the seconds its CPU work takes, and the
virtual duration measures the limits alone. A watchdog advances time anyway if the earliest
sleeper has waited `stall` real seconds and nobody has read the clock meanwhile (a worker blocked
on a real lock, or threads the clock does not know about), so nothing can deadlock; the number of
such forced steps is counted. Workers busy for real (hundreds of syncs sharing two cores) read the
clock at every API call, so they hold time still however long their CPU work takes; a watchdog
that only looked at real time jumped a minute whenever the CPU was slower than `stall`, and the
benchmark then measured the watchdog instead of the limits. Clock reads alone were not enough
either: a worker writing a large batch into DuckDB reads no clock for a second while the others
wait for its lock, so the process's CPU time counts as work too; only a stall in which the
process also did next to no CPU work moves time, and each such step is kept in `forced` (virtual
seconds before and after) so a run can say what the watchdog cost.
"""
from __future__ import annotations

import contextlib
import threading
import time as _time
from datetime import datetime, timezone


class SimClock:
    def __init__(self, start: float | datetime, stall: float = 0.5):
        self._t = start.timestamp() if isinstance(start, datetime) else float(start)
        self._cv = threading.Condition()
        self._active = 0
        self._sleeping = 0
        self._wakes: list[float] = []
        self.stall = stall
        self.forced_steps = 0
        self.forced: list[tuple[float, float]] = []
        self._reads = 0  # clock reads: a worker that reads the clock is working, not stuck

    # -- Clock protocol --
    def time(self) -> float:
        self._reads += 1  # unlocked: an approximate count is enough to see that someone is working
        return self._t

    def now(self) -> datetime:
        self._reads += 1
        return datetime.fromtimestamp(self._t, tz=timezone.utc)

    def advance(self, seconds: float = 0.0, **_kw) -> datetime:
        with self._cv:
            self._t += max(0.0, seconds)
            self._cv.notify_all()
        return self.now()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._cv:
            wake = self._t + seconds
            self._wakes.append(wake)
            self._sleeping += 1
            try:
                self._step_if_all_asleep()
                while self._t < wake:
                    before, reads, cpu = self._t, self._reads, _time.process_time()
                    self._cv.wait(self.stall)
                    idle = _time.process_time() - cpu < self.stall * 0.2
                    if (self._t == before and self._reads == reads and idle and self._t < wake
                            and wake <= min(self._wakes)):
                        self.forced_steps += 1  # blocked on something the clock does not see
                        self.forced.append((self._t, wake))
                        self._t = wake
                        self._cv.notify_all()
            finally:
                self._sleeping -= 1
                self._wakes.remove(wake)

    # -- workers --
    @contextlib.contextmanager
    def worker(self):
        """Register the calling thread as a worker for the duration of the block."""
        with self._cv:
            self._active += 1
        try:
            yield
        finally:
            with self._cv:
                self._active -= 1
                self._step_if_all_asleep()

    def _step_if_all_asleep(self) -> None:
        if self._wakes and self._sleeping >= self._active:
            nxt = min(self._wakes)
            if nxt > self._t:
                self._t = nxt
            self._cv.notify_all()
