"""A job's progress: the step under way, count / total, an ETA where Xero's pace sets it.

Xero allows 60 calls a minute per organisation, so a step that makes one call per page or per
week cannot go faster than one unit a second: the ETA is the units left divided by the slower of
that pace and the pace measured so far in this step.

Totals:
- pnl, bank: one call per report week; the total is the number of weeks.
- journals: Xero gives no total. The step reports the newest JournalNumber seen; the total is an
  estimate of the newest journal number in Xero: this organisation's own ratio of journals to
  invoices at its last sync (journal cursor / stored invoice count), else 2 journals per invoice
  (an invoice posts one, its payment another), times the invoices stored once this run's invoices
  step has finished; never below the last cursor. Journals come 100 per call.
- invoices, contacts: no total known before the last page; the count only.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

XERO_PER_MINUTE = 60
JOURNALS_PER_CALL = 100
DEFAULT_JOURNALS_PER_INVOICE = 2.0


def estimate_journal_total(cursor: int, invoices_at_last_sync: int, invoices_now: int) -> int:
    """The newest journal number Xero probably has (see the module docstring)."""
    ratio = (cursor / invoices_at_last_sync) if cursor and invoices_at_last_sync else DEFAULT_JOURNALS_PER_INVOICE
    return max(cursor, int(round(ratio * max(invoices_now, 0))))


class Tracker:
    """The `progress` callback of one job: keeps a small dict and hands a copy to `write` after every
    event. `write` must be cheap: the worker pool keeps the newest and writes it with its next flush."""

    def __init__(self, write: Callable[[dict], None], *, echo: Callable[[dict], None] | None = None,
                 hints: dict | None = None, now: Callable[[], float] = time.monotonic):
        self.write = write
        self.echo = echo
        self.hints = hints if hints is not None else {}
        self.now = now
        self.lock = threading.Lock()
        self.state: dict = {"step": None, "status": "starting", "message": "starting", "count": None,
                            "total": None, "eta_seconds": None, "steps": []}
        self.step_started = self.now()
        self.step_count0: int | None = None
        self.invoices_new = 0

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
        if status == "waiting":  # "waiting for the database": shown, the step goes on after
            st.update(status="waiting", message=msg)
            return
        if step != st["step"] and status == "running":
            st.update(step=step, count=None, total=None, eta_seconds=None)
            self.step_started, self.step_count0 = self.now(), None
        if status == "running":
            st.update(status="running", message=msg)
            count, total = ev.get("count"), ev.get("total")
            if step == "journals" and count is not None:
                cursor = int(self.hints.get("journals_cursor") or 0)
                total = estimate_journal_total(cursor, int(self.hints.get("invoice_count") or 0),
                                               int(self.hints.get("invoice_count") or 0) + self.invoices_new)
                total = max(total, count)
                st["estimated_total"] = True
            else:
                st.pop("estimated_total", None)
            if count is not None:
                st["count"] = count
                if self.step_count0 is None:
                    self.step_count0 = count
            if total is not None:
                st["total"] = total
            st["eta_seconds"] = self._eta(step, st.get("count"), st.get("total"))
            return
        # a step ended (success | failed | partial | skipped)
        if step == "invoices" and status in ("success", "partial"):
            self.invoices_new = int(ev.get("rows") or 0)
        st["steps"].append({"step": step, "status": status, "message": msg})
        st.update(status=status, message=msg, eta_seconds=None)

    def _eta(self, step, count, total) -> float | None:
        if count is None or not total or total <= count:
            return None
        units_left = total - count
        if step == "journals":
            units_left = -(-units_left // JOURNALS_PER_CALL)
            done_units = (count - (self.step_count0 or 0)) / JOURNALS_PER_CALL
        else:
            done_units = count - (self.step_count0 or 0)
        pace = XERO_PER_MINUTE / 60.0  # units a second at best
        elapsed = self.now() - self.step_started
        if done_units > 0 and elapsed > 0:
            pace = min(pace, done_units / elapsed)
        return round(units_left / pace, 1)
