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
from typing import Callable

XERO_PER_MINUTE = 60


class Tracker:
    """The `progress` callback of one job: keeps a small dict and hands a copy to `write` after every
    event. `write` must be cheap: the worker pool keeps the newest and writes it with its next flush."""

    def __init__(self, write: Callable[[dict], None], *, echo: Callable[[dict], None] | None = None,
                 now: Callable[[], float] = time.monotonic):
        self.write = write
        self.echo = echo
        self.now = now
        self.lock = threading.Lock()
        self.state: dict = {"step": None, "status": "starting", "message": "starting", "count": None,
                            "total": None, "eta_seconds": None, "steps": []}
        self.step_started = self.now()
        self.step_count0: int | None = None

    def __call__(self, ev: dict) -> None:
        with self.lock:
            self._apply(ev)
            st = self.state
            # The echo (a terminal's live display) sees what the jobs file gets: count, total, ETA.
            seen = dict(ev, **{k: st.get(k) for k in ("count", "total", "eta_seconds", "estimated_total")}) \
                if ev.get("status") == "running" and ev.get("step") == st["step"] else ev
            snapshot = dict(st, steps=list(st["steps"]))
        if self.echo:
            try:
                self.echo(seen)
            except Exception:
                pass
        try:
            self.write(snapshot)
        except Exception:  # progress is best effort: never break the sync
            pass

    def _apply(self, ev: dict) -> None:
        step, status, msg = ev.get("step"), ev.get("status"), ev.get("message")
        st = self.state
        if status == "waiting":  # the limiter or the database holds the job: said, the step goes on after
            st.update(status="waiting", message=msg, eta_seconds=None)
            return
        if step != st["step"] and status == "running":
            st.update(step=step, count=None, total=None, eta_seconds=None)
            self.step_started, self.step_count0 = self.now(), None
        if status == "running":
            st.update(status="running", message=msg)
            count, total = ev.get("count"), ev.get("total")
            if ev.get("estimated_total") and count is not None:
                st["estimated_total"] = True
            else:
                st.pop("estimated_total", None)
            if count is not None:
                st["count"] = count
                if self.step_count0 is None:
                    self.step_count0 = count
            if total is not None:
                st["total"] = total
            st["eta_seconds"] = self._eta(st.get("count"), st.get("total"), int(ev.get("per_call") or 1))
            return
        # a step ended (success | failed | partial | skipped)
        st["steps"].append({"step": step, "status": status, "message": msg})
        st.update(status=status, message=msg, eta_seconds=None)

    def _eta(self, count, total, per_call: int) -> float | None:
        if count is None or not total or total <= count:
            return None
        calls_left = -(-(total - count) // per_call)
        calls_done = (count - (self.step_count0 or 0)) / per_call
        pace = XERO_PER_MINUTE / 60.0  # calls a second at best
        elapsed = self.now() - self.step_started
        if calls_done > 0 and elapsed > 0:
            pace = min(pace, calls_done / elapsed)
        return round(calls_left / pace, 1)
