"""`run_sync`: the one function every sync ends in, whether `Engine.sync` runs it in the caller's
thread or a worker pool runs it as a job (pipeline.worker). It plans the tenant's steps
(pipeline.plan) and hands them to the executor in sync/runner.py as data. Triggers call
`xero_core.engine.Engine`, not this."""
from __future__ import annotations

from datetime import date
from typing import Callable

from .. import db
from ..clock import Clock
from ..sync.context import SyncResult
from ..sync.runner import execute
from .plan import figures_first, plan, probe, split_history
from .request import SyncRequest


def run_sync(settings, request: SyncRequest, *, transport=None, clock: Clock | None = None,
             progress: Callable[[dict], None] | None = None, today: date | None = None,
             cancel: Callable[[], str | None] | None = None, stop: Callable[[], str | None] | None = None,
             client=None, on_history: Callable[[SyncRequest], None] | None = None,
             history_pending: Callable[[], bool] | None = None) -> SyncResult:
    """Run one tenant's plan for `request`. `cancel()` returns a reason to stop at the next page or
    chunk, `stop()` one to stop after the current step. With `on_history` (a job), figures come
    first: once the cursors are read, the history part of the request (plan.split_history) is left
    out of this run and handed to `on_history` (the worker queues it as a backfill job of its own
    when this run has succeeded); `history_pending()` says whether the tenant already has one to come."""

    def steps_for(tenant_type: str):
        return plan(tenant_type, request)

    replan = None
    if on_history is not None and not request.history:
        def replan(tenant_type: str, state: dict):
            now, later = split_history(request, tenant_type, state.get("cursors") or {},
                                       history_pending=bool(history_pending and history_pending()))
            if later is None:
                return None
            on_history(later)
            return figures_first(plan(tenant_type, now)), now.weeks

    # Runs at once in a process share one open database instead of opening it per write (db.shared).
    with db.shared(settings.db_path):
        return execute(settings, request.tenant_id, steps_for, weeks=request.weeks, week_ending=request.week_ending,
                       trigger=request.trigger, transport=transport, clock=clock, progress=progress, today=today,
                       client=client, cancel=cancel, stop=stop, probe=probe,
                       skip_weeks=request.skip_weeks, replan=replan)


def send_reminders(settings, *, tenant_id: str | None = None, clock: Clock | None = None):
    """The chase reminders due now, without syncing (no Xero call): `Engine.chase` (the scheduler's
    sending-hours tick, `python -m xero_core xpm chase`). Each Practice Manager sync's `chase` step
    does the same for its tenant."""
    from ..clock import SYSTEM_CLOCK
    from ..practice.chase import run_chase

    return run_chase(settings, tenant_id=tenant_id, clock=clock or SYSTEM_CLOCK)
