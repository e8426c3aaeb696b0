"""`run_sync`: the one function every sync ends in, whether `Engine.sync` runs it in the caller's
thread or a worker pool runs it as a job (pipeline.worker). It plans the tenant's steps
(pipeline.plan) and hands them to the executor (pipeline/executor.py) as data. Triggers call
`xero_core.engine.Engine`, not this."""
from __future__ import annotations

from datetime import date
from typing import Any, Callable

from .. import db
from ..clock import SYSTEM_CLOCK, Clock
from ..practice.chase import ChaseResult, run_chase
from ..settings import Settings
from .executor import Execution, Plan, Progress, Reason, execute
from .plan import figures_first, plan, probe, split_history
from .request import SyncRequest
from .result import SyncResult


def run_sync(settings: Settings, request: SyncRequest, *, transport: Any = None, clock: Clock | None = None,
             progress: Progress | None = None, today: date | None = None, cancel: Reason | None = None,
             stop: Reason | None = None, client: Any = None,
             on_history: Callable[[SyncRequest], None] | None = None,
             history_pending: Callable[[], bool] | None = None) -> SyncResult:
    """Run one tenant's plan for `request`. `cancel()` returns a reason to stop at the next page or
    chunk, `stop()` one to stop after the current step. With `on_history` (a job), figures come
    first: once the cursors are read, the history part of the request (plan.split_history) is left
    out of this run and handed to `on_history` (the worker queues it as a backfill job of its own
    when this run has succeeded); `history_pending()` says whether the tenant already has one to come."""

    def steps_for(tenant_type: str) -> Plan:
        return plan(tenant_type, request)

    def replan(tenant_type: str, state: dict[str, Any]) -> tuple[Plan, int | None] | None:
        assert on_history is not None
        now, later = split_history(request, tenant_type, state.get("cursors") or {},
                                   history_pending=bool(history_pending and history_pending()))
        if later is None:
            return None
        on_history(later)
        return figures_first(plan(tenant_type, now)), now.weeks

    x = Execution(settings, request, steps_for, probe=probe,
                  replan=replan if on_history is not None and not request.history else None,
                  transport=transport, clock=clock or SYSTEM_CLOCK, today=today, client=client,
                  progress=progress, cancel=cancel, stop=stop)
    # Runs at once in a process share one open database instead of opening it per write (db.shared).
    with db.shared(settings.db_path):
        return execute(x)


def send_reminders(settings: Settings, *, tenant_id: str | None = None, clock: Clock | None = None) -> ChaseResult:
    """The chase reminders due now, without syncing (no Xero call): `Engine.chase` (the scheduler's
    sending-hours tick, `python -m xero_core xpm chase`). Each Practice Manager sync's `chase` step
    does the same for its tenant."""
    return run_chase(settings, tenant_id=tenant_id, clock=clock or SYSTEM_CLOCK)
