"""A job's progress: the step under way, done / total, the time left where Xero's pace sets it.

Steps say how far they are themselves (`StepContext.report(done=, total=, estimated=, per_call=)`:
the journals step estimates its own total, the report steps count weeks); this tracker knows no step
by name. Xero allows 60 calls a minute per organisation and a call brings `per_call` units (a week,
100 journals), so a step cannot go faster than `per_call` units a second: the time left is the units
left over the slower of that pace and the pace measured so far in this step.

While the rate limiter holds the job (or another process holds the database), the progress says so
("waiting for Xero's minute limit, resumes in 38 s") and keeps the count and total where they were.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

XERO_PER_MINUTE = 60
JOB_ENDED = ("done", "failed", "cancelled", "interrupted")


@dataclass(frozen=True)
class ProgressEvent:
    """One event of a run's progress, as the executor and the steps emit it (`progress=` callbacks,
    a pool's `echo`).

    `status`: running | waiting (the limiter or the database holds the run) | a step's end (success,
    failed, partial, skipped) | a job's end (JOB_ENDED, with `job_ended`) | joined (a job another
    process runs, followed). `count` of `total` units (`estimated` when the total is a guess; a call
    brings `per_call` of them); `index` of `steps` is the step's place in the plan (start and end
    events); `eta_seconds` is the Tracker's, on what it hands the echo."""

    status: str
    tenant_id: str = ""
    step: str | None = None
    message: str | None = None
    count: int | None = None
    total: int | None = None
    estimated: bool = False
    per_call: int = 1
    index: int | None = None
    steps: int | None = None
    rows: int | None = None
    waiting_for: str | None = None  # database | rate_limit
    unreachable: str | None = None  # Xero's address failed: the one sentence, carried once
    eta_seconds: float | None = None
    job_ended: bool = False


@dataclass(frozen=True)
class StepLine:
    """A step's end as the job's progress keeps it: `pnl: success, 12 rows`."""

    step: str | None
    status: str
    message: str | None


@dataclass
class JobProgress:
    """A job's progress as jobs.sqlite keeps it (JSON: `to_dict` / `from_dict`; the app and the CLI
    read it back): the step under way, done / total, the time left, every step's end so far."""

    step: str | None = None
    status: str | None = None
    message: str | None = None
    count: int | None = None
    total: int | None = None
    estimated: bool = False
    eta_seconds: float | None = None
    steps: list[StepLine] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k != "estimated"}
        if self.estimated:
            d["estimated_total"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> JobProgress:
        d = d or {}
        return cls(step=d.get("step"), status=d.get("status"), message=d.get("message"), count=d.get("count"),
                   total=d.get("total"), estimated=bool(d.get("estimated_total")), eta_seconds=d.get("eta_seconds"),
                   steps=[StepLine(s.get("step"), str(s.get("status") or ""), s.get("message"))
                          for s in d.get("steps") or []])


class Tracker:
    """The `progress` callback of one job: keeps its JobProgress and hands a copy to `write` after every
    event. `write` must be cheap: the worker pool keeps the newest and writes it with its next flush."""

    def __init__(self, write: Callable[[JobProgress], None], *, echo: Callable[[ProgressEvent], None] | None = None,
                 now: Callable[[], float] = time.monotonic):
        self.write = write
        self.echo = echo
        self.now = now
        self.lock = threading.Lock()
        self.state = JobProgress(status="starting", message="starting")
        self.step_started = self.now()
        self.step_count0: int | None = None

    def __call__(self, ev: ProgressEvent) -> None:
        with self.lock:
            self._apply(ev)
            st = self.state
            # The echo (a terminal's live display) sees what the jobs file gets: count, total, ETA.
            seen = replace(ev, count=st.count, total=st.total, eta_seconds=st.eta_seconds, estimated=st.estimated) \
                if ev.status == "running" and ev.step == st.step else ev
            snapshot = replace(st, steps=list(st.steps))
        if self.echo:
            try:
                self.echo(seen)
            except Exception:  # last-resort boundary: a broken display never breaks the sync
                pass
        try:
            self.write(snapshot)
        except Exception:  # last-resort boundary: progress is best effort, never break the sync
            pass

    def end(self, status: str, message: str) -> JobProgress:
        """The job ended (or stepped aside): no time left to show."""
        with self.lock:
            self.state.status, self.state.message, self.state.eta_seconds = status, message, None
            return replace(self.state, steps=list(self.state.steps))

    def _apply(self, ev: ProgressEvent) -> None:
        st = self.state
        if ev.status == "waiting":  # the limiter or the database holds the job: said, the step goes on after
            st.status, st.message, st.eta_seconds = "waiting", ev.message, None
            return
        if ev.step != st.step and ev.status == "running":
            st.step, st.count, st.total, st.eta_seconds = ev.step, None, None, None
            self.step_started, self.step_count0 = self.now(), None
        if ev.status == "running":
            st.status, st.message = "running", ev.message
            st.estimated = ev.estimated and ev.count is not None
            if ev.count is not None:
                st.count = ev.count
                if self.step_count0 is None:
                    self.step_count0 = ev.count
            if ev.total is not None:
                st.total = ev.total
            st.eta_seconds = self._eta(st.count, st.total, ev.per_call or 1)
            return
        # a step ended (success | failed | partial | skipped)
        st.steps.append(StepLine(ev.step, ev.status, ev.message))
        st.status, st.message, st.eta_seconds = ev.status, ev.message, None

    def _eta(self, count: int | None, total: int | None, per_call: int) -> float | None:
        if count is None or not total or total <= count:
            return None
        calls_left = -(-(total - count) // per_call)
        calls_done = (count - (self.step_count0 or 0)) / per_call
        pace = XERO_PER_MINUTE / 60.0  # calls a second at best
        elapsed = self.now() - self.step_started
        if calls_done > 0 and elapsed > 0:
            pace = min(pace, calls_done / elapsed)
        return round(calls_left / pace, 1)
