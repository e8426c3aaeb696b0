"""`sync_all`: the steps for one tenant, in order; `sync_all_tenants`: every connected tenant at once.

"Sync now" in the app, the scheduler's daily job, the CLI and webhook follow-ups all call these.
One failing step does not stop the others; a spent daily budget or a lost connection skips the rest
with the reason. Every step writes one `sync_log` row.
"""
from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from .. import db
from ..clock import SYSTEM_CLOCK, Clock
from ..errors import DailyLimitReached, ReconnectNeeded, TierRefused, XeroError
from . import store
from .context import StepContext, StepOutcome, StepResult, SyncResult, checkpoint
from .locks import SyncBusy, tenant_lock
from .steps import ALL_STEP_NAMES, ORGANISATION_STEPS, PRACTICE_STEPS, Partial, load_state
from .weeks import recent_weeks, week_start

log = logging.getLogger(__name__)

DEFAULT_WEEKS = 2  # the daily run: current and previous week (Xero reports change retroactively)
REPORT_STEPS = ("pnl", "bank")


def parse_only(only: str | Iterable[str] | None) -> set[str] | None:
    if only is None:
        return None
    names = {s.strip().lower() for s in (only.split(",") if isinstance(only, str) else only) if s.strip()}
    unknown = names - set(ALL_STEP_NAMES)
    if unknown:
        raise ValueError(f"unknown sync step(s) {', '.join(sorted(unknown))}: choose from {', '.join(ALL_STEP_NAMES)}")
    if names & {"pnl", "journals"}:
        names.add("accounts")  # the P&L's sections and the tie-out read account types
    return names


def plan(tenant_type: str | None, only: set[str] | None) -> list[tuple[str, Callable]]:
    steps = PRACTICE_STEPS if (tenant_type or "").upper() == "PRACTICEMANAGER" else ORGANISATION_STEPS
    return [(n, f) for n, f in steps if only is None or n in only]


def _today(settings, clock: Clock) -> date:
    try:
        return clock.now().astimezone(ZoneInfo(settings.timezone)).date()
    except Exception:
        return clock.now().date()


def _make_client(settings, tenant_id: str, transport, clock: Clock):
    from ..client import limited_client

    return limited_client(settings, tenant_id, transport=transport, clock=clock)


def _log_skip(settings, *, run_id: str, tenant_id: str, step: str, trigger: str, reason: str,
              at: datetime, period=None) -> None:
    with db.connect(settings.db_path) as con:
        store.log_finish(con, sync_id=uuid.uuid4().hex, run_id=run_id, tenant_id=tenant_id, sync_type=step,
                         trigger=trigger, status="skipped", rows=0, api_calls=0, bytes_downloaded=0, error=reason,
                         started_at=at, finished_at=at, period=period)


def sync_all(settings, tenant_id: str, *, weeks: int | None = None, only: str | Iterable[str] | None = None,
             trigger: str = "manual", transport=None, clock: Clock | None = None,
             progress: Callable[[dict], None] | None = None, today: date | None = None,
             client=None) -> SyncResult:
    """Sync one tenant. `weeks` bounds the report steps (default: current and previous week);
    invoices, contacts and journals fetch everything changed since their cursors."""
    from ..connections import get_connection, record_sync

    clock = clock or SYSTEM_CLOCK
    only_set = parse_only(only)
    conn = get_connection(settings, tenant_id)
    if conn is None:
        raise ValueError(f"tenant {tenant_id} is not connected: run `python -m xero_core connect` first "
                         "(`python -m xero_core status` lists connected tenants)")
    run_id = uuid.uuid4().hex
    result = SyncResult(tenant_id=tenant_id, tenant_name=conn.get("tenant_name"),
                        tenant_type=conn.get("tenant_type"), run_id=run_id, trigger=trigger)
    today = today or _today(settings, clock)
    week_list = recent_weeks(today, weeks or DEFAULT_WEEKS, settings.week_ends_on)
    period = (week_start(week_list[0]), week_list[-1]) if week_list else None
    steps = plan(conn.get("tenant_type"), only_set)

    def emit(step: str, status: str, message: str, fraction: float | None = None) -> None:
        if progress:
            try:
                progress({"tenant_id": tenant_id, "step": step, "status": status, "message": message,
                          "fraction": fraction})
            except Exception:
                pass

    if conn.get("status") != "connected":
        reason = f"connection is {conn.get('status')}: {conn.get('status_reason') or 'reconnect it in the app'}"
        now = clock.now()
        for name, _ in steps:
            _log_skip(settings, run_id=run_id, tenant_id=tenant_id, step=name, trigger=trigger, reason=reason, at=now)
            result.steps.append(StepResult(name, "skipped", error=reason, started_at=now, finished_at=now))
        return result

    try:
        with tenant_lock(settings, tenant_id, trigger=trigger):
            if client is None:
                client = _make_client(settings, tenant_id, transport, clock)
            stop_reason: str | None = None
            state = load_state(settings, tenant_id)
            for i, (name, fn) in enumerate(steps):
                step_period = period if name in REPORT_STEPS else None
                started = clock.now()
                if stop_reason:
                    _log_skip(settings, run_id=run_id, tenant_id=tenant_id, step=name, trigger=trigger,
                              reason=stop_reason, at=started, period=step_period)
                    result.steps.append(StepResult(name, "skipped", error=stop_reason, started_at=started,
                                                   finished_at=started))
                    emit(name, "skipped", stop_reason)
                    continue
                # One sync_log row per step, written when it ends (opening DuckDB costs tens of ms;
                # the app follows a running sync through `progress`).
                sync_id = uuid.uuid4().hex
                emit(name, "running", f"{name}: starting", i / max(len(steps), 1))
                calls0, bytes0 = client.api_calls, client.bytes_downloaded
                ctx = StepContext(settings=settings, tenant_id=tenant_id, tenant_type=conn.get("tenant_type") or "",
                                  client=client, weeks=week_list, today=today, clock=clock, trigger=trigger,
                                  run_id=run_id, progress=progress, step=name, explicit_weeks=weeks is not None,
                                  state=state)
                error = None
                detail = None

                def log_in_tx(con, rows, *, _ctx=ctx, _name=name, _sync_id=sync_id, _started=started,
                              _period=step_period, _c0=calls0, _b0=bytes0):
                    store.log_finish(con, sync_id=_sync_id, run_id=run_id, tenant_id=tenant_id, sync_type=_name,
                                     trigger=trigger, status="success", rows=rows, api_calls=client.api_calls - _c0,
                                     bytes_downloaded=client.bytes_downloaded - _b0, error=None,
                                     started_at=_started, finished_at=clock.now(), period=_period)
                    _ctx.logged = True

                ctx.log_in_tx = log_in_tx
                try:
                    outcome = fn(ctx) or StepOutcome()
                    status, rows, error, detail = outcome.status, outcome.rows, outcome.note, outcome.detail
                    if status == "success":
                        error = None
                        detail = {**(detail or {}), **({"note": outcome.note} if outcome.note else {})} or None
                except Partial as p:
                    if isinstance(p.cause, TierRefused) and not p.rows:
                        status, rows, error = "skipped", 0, f"not available on this Xero plan (tier): {p.cause}"
                    else:
                        status, rows = ("partial" if p.rows else "failed"), p.rows
                        error, stop_reason = _describe(p.cause, stop_reason)
                except TierRefused as exc:
                    status, rows, error = "skipped", 0, f"not available on this Xero plan (tier): {exc}"
                except XeroError as exc:
                    status, rows = "failed", 0
                    error, stop_reason = _describe(exc, stop_reason)
                except Exception as exc:  # one failing step does not stop the others
                    log.exception("sync step %s failed for tenant %s", name, tenant_id)
                    status, rows, error = "failed", 0, f"{type(exc).__name__}: {exc}"
                finished = clock.now()
                sr = StepResult(name, status, rows=rows, api_calls=client.api_calls - calls0,
                                bytes_downloaded=client.bytes_downloaded - bytes0, error=error,
                                started_at=started, finished_at=finished,
                                period_start=step_period[0] if step_period else None,
                                period_end=step_period[1] if step_period else None)
                # A step the plan refuses (or the step itself chose to skip) is not a failure.
                sr.benign_skip = status == "skipped" and not stop_reason_set_by(error, stop_reason)
                result.steps.append(sr)
                # Written already with the step's last write, unless the outcome adds to it.
                already = ctx.logged and status == "success" and not detail
                if not already:
                    with db.connect(settings.db_path) as con:
                        store.log_finish(con, sync_id=sync_id, run_id=run_id, tenant_id=tenant_id, sync_type=name,
                                         trigger=trigger, status=status, rows=rows, api_calls=sr.api_calls,
                                         bytes_downloaded=sr.bytes_downloaded, error=error, started_at=started,
                                         finished_at=finished, period=step_period, detail=detail)
                emit(name, status, f"{name}: {status}" + (f" ({error})" if error else f", {rows} rows"),
                     (i + 1) / max(len(steps), 1))
                checkpoint(f"step:{name}:done")
            if any(s.status in ("success", "partial") for s in result.steps):
                record_sync(settings, tenant_id, datetime.now(timezone.utc))
    except SyncBusy as busy:
        result.busy = str(busy)
        now = clock.now()
        _log_skip(settings, run_id=run_id, tenant_id=tenant_id, step="sync", trigger=trigger, reason=str(busy), at=now)
        emit("sync", "skipped", str(busy))
    return result


def stop_reason_set_by(error: str | None, stop_reason: str | None) -> bool:
    return bool(stop_reason) and error == stop_reason


def _describe(exc: BaseException, stop_reason: str | None) -> tuple[str, str | None]:
    """The step's error text, and whether the remaining steps must be skipped (and why)."""
    if isinstance(exc, DailyLimitReached):
        msg = str(exc.message if hasattr(exc, "message") else exc)
        if not msg.startswith("daily budget reached"):
            when = getattr(exc, "resumes_at", None)
            msg = f"daily budget reached, resumes at {when:%Y-%m-%d %H:%M} UTC" if when else f"daily budget reached ({msg})"
        return msg, msg
    if isinstance(exc, ReconnectNeeded):
        msg = f"reconnect needed: {exc}"
        return msg, msg
    return str(exc), stop_reason


def sync_all_tenants(settings, *, trigger: str = "manual", only=None, weeks: int | None = None, transport=None,
                     clock: Clock | None = None, progress: Callable[[dict], None] | None = None,
                     today: date | None = None, max_workers: int = 8) -> list[SyncResult]:
    """Every connected tenant, concurrently (threads); each stays within its own Xero limits."""
    from ..connections import list_connections

    tenants = [c for c in list_connections(settings) if c.get("status") == "connected"]
    if not tenants:
        return []
    with ThreadPoolExecutor(max_workers=min(max_workers, len(tenants)), thread_name_prefix="sync") as pool:
        futures = [pool.submit(sync_all, settings, c["tenant_id"], weeks=weeks, only=only, trigger=trigger,
                               transport=transport, clock=clock, progress=progress, today=today) for c in tenants]
        return [f.result() for f in futures]
