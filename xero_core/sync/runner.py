"""`execute`: one tenant's steps, in order (the executor every plan runs through);
`sync_all` / `sync_all_tenants`: the financial steps only (kept for callers and tests).

Every trigger (Sync now, the scheduler, the CLI, demo) goes through xero_core.pipeline.run_sync,
which plans the steps (financial and practice) and hands them to `execute` as data.
One failing step does not stop the others; a spent daily budget, a lost connection or a cancel
skips the rest with the reason. Every step writes one `sync_log` row.
"""
from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from .. import db
from ..clock import SYSTEM_CLOCK, Clock
from ..connections import mark_for_reconnect
from ..errors import DailyLimitReached, LedgerlinkError, ReconnectNeeded, TierRefused, XeroError, XeroUnreachable
from . import store
from .context import StepContext, StepOutcome, StepResult, SyncCancelled, SyncResult, checkpoint
from .locks import SyncBusy, tenant_lock
from .steps import ALL_STEP_NAMES, ORGANISATION_STEPS, Partial
from .weeks import recent_weeks, week_ending_for, week_start

log = logging.getLogger(__name__)

DEFAULT_WEEKS = 2  # the daily run: current and previous week (Xero reports change retroactively)
REPORT_STEPS = ("pnl", "bank")
DB_FIRST_TIMEOUT = 2.0  # the first open of a run: soon enough to say "waiting for the database"
DB_RETRY_TIMEOUT = 5.0  # each later try while another process holds the file
DB_MAX_WAIT = 6 * 3600.0  # a notebook left open over lunch: wait, never fail; a day-long hold does
DB_STEP_ATTEMPTS = 3  # a step that met a held database is run again (from its cursor) this often
NOT_TRIED = "not tried: Xero unreachable"  # the steps after one that found nothing at Xero's address


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
    """The financial steps for a tenant (none for Practice Manager: the pipeline plans those)."""
    if (tenant_type or "").upper() == "PRACTICEMANAGER":
        return []
    return [(n, f) for n, f in ORGANISATION_STEPS if only is None or n in only]


def _today(settings, clock: Clock, tz: str | None = None) -> date:
    """Today for a tenant: in its organisation's own time zone (`tz`, from `organisations`), else
    XERO_TIMEZONE (an organisation not read yet)."""
    for name in (tz, settings.timezone):
        if name:
            try:
                return clock.now().astimezone(ZoneInfo(name)).date()
            except Exception:
                continue
    return clock.now().date()


def _make_client(settings, tenant_id: str, transport, clock: Clock):
    from ..client import limited_client

    return limited_client(settings, tenant_id, transport=transport, clock=clock)


def week_list_for(settings, today: date, weeks: int | None = None, week_ending: date | None = None) -> list[date]:
    """The report weeks of a run: one chosen week (`week_ending`, any day of it), or the latest
    `weeks` (default DEFAULT_WEEKS) ending with the current week, oldest first."""
    if week_ending is not None:
        return [week_ending_for(week_ending, settings.week_ends_on)]
    return recent_weeks(today, weeks or DEFAULT_WEEKS, settings.week_ends_on)


def sync_all(settings, tenant_id: str, *, weeks: int | None = None, only: str | Iterable[str] | None = None,
             trigger: str = "manual", transport=None, clock: Clock | None = None,
             progress: Callable[[dict], None] | None = None, today: date | None = None,
             client=None) -> SyncResult:
    """Sync one tenant's financial steps (compatibility entry; every trigger goes through
    xero_core.pipeline.run_sync, which plans the practice steps too). `weeks` bounds the report
    steps (default: current and previous week); invoices, contacts and journals fetch everything
    changed since their cursors."""
    only_set = parse_only(only)
    clock = clock or SYSTEM_CLOCK
    return execute(settings, tenant_id, lambda tenant_type: plan(tenant_type, only_set), weeks=weeks,
                   trigger=trigger, transport=transport, clock=clock, progress=progress, today=today, client=client)


def _wait_note(settings) -> str:
    return (f"waiting for the database: another process holds {settings.db_path} (a notebook or a long query?); "
            "the sync goes on by itself when it is released")


def _with_db(settings, fn, emit, cancel, *, first_timeout: float | None = None, max_wait: float = DB_MAX_WAIT):
    """Run `fn(timeout)` (it opens DuckDB); while another process holds the file, say so through
    progress ("waiting for the database") and keep trying, until it is free, the sync is
    cancelled, or `max_wait` seconds pass (then DatabaseBusy's sentence is the step's error)."""
    deadline = time.monotonic() + max_wait
    timeout = first_timeout if first_timeout is not None else 30.0
    told = False
    while True:
        try:
            return fn(timeout)
        except db.DatabaseBusy:
            if time.monotonic() >= deadline:
                raise
            if not told:
                emit("database", "waiting", _wait_note(settings))
                told = True
            reason = cancel() if cancel else None
            if reason:
                raise SyncCancelled(reason) from None
            timeout = DB_RETRY_TIMEOUT


def _load_state(settings, tenant_id: str, timeout: float, probe=None) -> dict:
    """What the steps read before they fetch (cursors; and the plan's own `probe`), in one open."""
    with db.connect(settings.db_path, timeout=timeout) as con:
        cursors = dict(con.execute("SELECT resource, cursor_value FROM sync_cursors WHERE tenant_id = ?",
                                   [tenant_id]).fetchall())
        fingerprints = store.report_fingerprints(con, tenant_id)
        stale = store.tieout_stale(con, tenant_id)
        extra = probe(con, tenant_id) if probe else {}
    return {"cursors": cursors, "fingerprints": fingerprints, "tieout_stale": stale, **(extra or {})}


def execute(settings, tenant_id: str, steps_for: Callable[[str], list[tuple[str, Callable]]], *,
            weeks: int | None = None, week_ending: date | None = None, trigger: str = "manual", transport=None,
            clock: Clock | None = None, progress: Callable[[dict], None] | None = None, today: date | None = None,
            client=None, cancel: Callable[[], str | None] | None = None, stop: Callable[[], str | None] | None = None,
            probe=None, run_id: str | None = None, hints: dict | None = None) -> SyncResult:
    """Run one tenant's steps, in order: the one executor every plan goes through.

    `steps_for(tenant_type)` gives [(name, fn(ctx) -> StepOutcome)] (data: sync/ never imports the
    practice steps it may be handed). `cancel()` returns a reason to stop at the next page or chunk;
    `stop()` a reason to stop after the current step (a shutting-down worker). A failing step, or a
    sync_log write that fails (disk full, database held), never stops the others: every step is
    attempted or skipped with a reason, and a SyncResult always comes back.
    """

    clock = clock or SYSTEM_CLOCK
    run_id = run_id or uuid.uuid4().hex

    def emit(step: str, status: str, message: str, fraction: float | None = None, rows: int | None = None,
             **extra) -> None:
        if progress:
            try:
                progress({"tenant_id": tenant_id, "step": step, "status": status, "message": message,
                          "fraction": fraction, "rows": rows, **extra})
            except Exception:
                pass

    # The first open of the run: a file held by a notebook shows as "waiting for the database" at once.
    try:
        conn = _with_db(settings, lambda t: _read_connection(settings, tenant_id, t), emit, cancel,
                        first_timeout=DB_FIRST_TIMEOUT)
    except SyncCancelled as exc:
        return SyncResult(tenant_id=tenant_id, run_id=run_id, trigger=trigger, cancelled=exc.message)
    if conn is None:
        raise ValueError(f"tenant {tenant_id} is not connected: run `python -m xero_core connect` first "
                         "(`python -m xero_core status` lists connected tenants)")
    result = SyncResult(tenant_id=tenant_id, tenant_name=conn.get("tenant_name"),
                        tenant_type=conn.get("tenant_type"), run_id=run_id, trigger=trigger)
    today = today or _today(settings, clock, conn.get("timezone"))
    week_list = week_list_for(settings, today, weeks, week_ending)
    period = (week_start(week_list[0]), week_list[-1]) if week_list else None
    steps = steps_for(conn.get("tenant_type") or "")

    def log_row(**kw) -> str | None:
        """One sync_log row; a failure to write it is reported on the step, never raised."""
        try:
            _with_db(settings, lambda t: _log(settings, t, **kw), emit, None)
            return None
        except Exception as exc:
            log.warning("could not write sync_log for %s/%s: %s", tenant_id, kw.get("sync_type"), exc)
            return f"not recorded in sync_log ({type(exc).__name__}: {exc})"

    if conn.get("status") != "connected":
        reason = (f"reconnect needed: the connection is {str(conn.get('status')).replace('_', ' ')}"
                  f" ({conn.get('status_reason') or 'no reason recorded'}); reconnect it on the Connection page "
                  "or with `python -m xero_core connect`")
        result.reconnect = reason
        now = clock.now()
        for name, _ in steps:
            log_row(sync_id=uuid.uuid4().hex, run_id=run_id, tenant_id=tenant_id, sync_type=name, trigger=trigger,
                    status="skipped", rows=0, api_calls=0, bytes_downloaded=0, error=reason, started_at=now,
                    finished_at=now, period=None)
            result.steps.append(StepResult(name, "skipped", error=reason, started_at=now, finished_at=now))
        return result

    try:
        with tenant_lock(settings, tenant_id, trigger=trigger):
            if client is None:
                client = _make_client(settings, tenant_id, transport, clock)
            stop_reason: str | None = None
            deferred: list[tuple[StepResult, dict]] = []
            try:
                state = _with_db(settings, lambda t: _load_state(settings, tenant_id, t, probe), emit, cancel,
                                 first_timeout=DB_FIRST_TIMEOUT)
            except SyncCancelled as exc:
                state, stop_reason = {}, str(exc.message)
            except Exception as exc:  # each step reads its own cursor instead
                log.warning("could not read the sync state of %s: %s", tenant_id, exc)
                state = {}
            if hints is not None:
                hints["journals_cursor"] = int((state.get("cursors") or {}).get("journals") or 0)
            for i, (name, fn) in enumerate(steps):
                step_period = period if name in REPORT_STEPS else None
                started = clock.now()
                if not stop_reason:
                    stop_reason = (cancel() if cancel else None) or (stop() if stop else None)
                if stop_reason:
                    note = log_row(sync_id=uuid.uuid4().hex, run_id=run_id, tenant_id=tenant_id, sync_type=name,
                                   trigger=trigger, status="skipped", rows=0, api_calls=0, bytes_downloaded=0,
                                   error=stop_reason, started_at=started, finished_at=started, period=step_period)
                    result.steps.append(StepResult(name, "skipped", error=stop_reason + (f"; {note}" if note else ""),
                                                   started_at=started, finished_at=started))
                    emit(name, "skipped", f"{name}: skipped ({stop_reason})", index=i + 1, steps=len(steps))
                    continue
                # One sync_log row per step, written when it ends (opening DuckDB costs tens of ms;
                # the app follows a running sync through `progress`).
                sync_id = uuid.uuid4().hex
                emit(name, "running", f"{name}: starting", i / max(len(steps), 1), index=i + 1, steps=len(steps))
                calls0, bytes0 = client.api_calls, client.bytes_downloaded
                error = None
                detail = None
                for attempt in range(DB_STEP_ATTEMPTS):
                    ctx = StepContext(settings=settings, tenant_id=tenant_id,
                                      tenant_type=conn.get("tenant_type") or "", client=client, weeks=week_list,
                                      today=today, clock=clock, trigger=trigger, run_id=run_id, progress=progress,
                                      step=name, explicit_weeks=weeks is not None or week_ending is not None,
                                      state=state, cancel=cancel, transport=transport)

                    def log_in_tx(con, rows, *, _ctx=ctx, _name=name, _sync_id=sync_id, _started=started,
                                  _period=step_period, _c0=calls0, _b0=bytes0):
                        store.log_rows(con, [dict(sync_id=_sync_id, run_id=run_id, tenant_id=tenant_id, sync_type=_name,
                                                  trigger=trigger, status="success", rows=rows,
                                                  api_calls=client.api_calls - _c0,
                                                  bytes_downloaded=client.bytes_downloaded - _b0, error=None,
                                                  started_at=_started, finished_at=clock.now(), period=_period)],
                                       replace=False)  # a new sync_id: nothing to replace
                        _ctx.logged = True

                    ctx.log_in_tx = log_in_tx
                    try:
                        outcome = fn(ctx) or StepOutcome()
                        status, rows, error, detail = outcome.status, outcome.rows, outcome.note, outcome.detail
                        if status == "success":
                            error = None
                            detail = {**(detail or {}), **({"note": outcome.note} if outcome.note else {})} or None
                    except Partial as p:
                        if isinstance(p.cause, SyncCancelled):
                            status, rows = ("partial" if p.rows else "skipped"), p.rows
                            error = stop_reason = p.cause.message
                        elif isinstance(p.cause, TierRefused) and not p.rows:
                            status, rows, error = "skipped", 0, f"not available on this Xero plan (tier): {p.cause}"
                        else:
                            status, rows = ("partial" if p.rows else "failed"), p.rows
                            error, stop_reason = _describe(p.cause, stop_reason, settings, clock)
                    except SyncCancelled as exc:
                        status, rows = "skipped", 0
                        error = stop_reason = exc.message
                    except TierRefused as exc:
                        status, rows, error = "skipped", 0, f"not available on this Xero plan (tier): {exc}"
                    except XeroError as exc:
                        status, rows = "failed", 0
                        error, stop_reason = _describe(exc, stop_reason, settings, clock)
                    except db.DatabaseBusy as exc:
                        # Another process held the file past db.connect's wait: say so, wait for it,
                        # then run the step again (it resumes from its cursor; upserts repeat cleanly).
                        status, rows, error = "failed", 0, str(exc)
                        if attempt + 1 < DB_STEP_ATTEMPTS:
                            try:
                                _with_db(settings, lambda t: _probe_db(settings, t), emit, cancel)
                                continue
                            except SyncCancelled as c:
                                status, error = "skipped", c.message
                                stop_reason = c.message
                            except Exception:
                                pass
                    except Exception as exc:  # one failing step does not stop the others
                        if isinstance(exc, LedgerlinkError):  # a sentence (a full disk, a locked file): no traceback
                            log.error("sync step %s failed for tenant %s: %s", name, tenant_id, exc)
                            status, rows, error = "failed", 0, str(exc)
                        else:
                            log.exception("sync step %s failed for tenant %s", name, tenant_id)
                            status, rows, error = "failed", 0, f"{type(exc).__name__}: {exc}"
                    break
                finished = clock.now()
                sr = StepResult(name, status, rows=rows, api_calls=client.api_calls - calls0,
                                bytes_downloaded=client.bytes_downloaded - bytes0, error=error,
                                started_at=started, finished_at=finished,
                                period_start=step_period[0] if step_period else None,
                                period_end=step_period[1] if step_period else None, detail=detail)
                # A step the plan refuses (or the step itself chose to skip) is not a failure.
                sr.benign_skip = status == "skipped" and not stop_reason_set_by(error, stop_reason)
                result.steps.append(sr)
                state.setdefault("results", {})[name] = rows if status in ("success", "partial") else 0
                # Written already with the step's last write, unless the outcome adds to it.
                already = ctx.logged and status == "success" and not detail
                if not already:
                    row = dict(sync_id=sync_id, run_id=run_id, tenant_id=tenant_id, sync_type=name,
                               trigger=trigger, status=status, rows=rows, api_calls=sr.api_calls,
                               bytes_downloaded=sr.bytes_downloaded, error=error, started_at=started,
                               finished_at=finished, period=step_period, detail=detail)
                    if status == "success" or sr.benign_skip:
                        # Written with the others at the end, in one open (a daily sync has several
                        # steps with nothing to write; each open of DuckDB costs tens of ms).
                        deferred.append((sr, row))
                    else:  # a failure is recorded at once
                        _note_unlogged(sr, log_row(**row))
                note = (detail or {}).get("note") if status == "success" and isinstance(detail, dict) else None
                said = f" ({error})" if error else f", {rows or 0:,} rows" + (f" ({note})" if note else "")
                extra = {}
                if stop_reason == NOT_TRIED and result.unreachable is None and error:
                    # The sentence travels once, beside the event; the step's own line stays short.
                    result.unreachable = extra["unreachable"] = error
                    said = " (Xero unreachable)"
                emit(name, status, f"{name}: {status}{said}", (i + 1) / max(len(steps), 1), rows=rows,
                     index=i + 1, steps=len(steps), **extra)
                checkpoint(f"step:{name}:done")
            if stop_reason and ((cancel and cancel()) or (stop and stop())):
                result.cancelled = stop_reason
            synced = any(s.status in ("success", "partial") for s in result.steps)
            _flush_deferred(settings, tenant_id, deferred, synced, emit)
    except SyncBusy as busy:
        result.busy = str(busy)
        now = clock.now()
        log_row(sync_id=uuid.uuid4().hex, run_id=run_id, tenant_id=tenant_id, sync_type="sync", trigger=trigger,
                status="skipped", rows=0, api_calls=0, bytes_downloaded=0, error=str(busy), started_at=now,
                finished_at=now, period=None)
        emit("sync", "skipped", str(busy))
    return result


def _note_unlogged(sr: StepResult, note: str | None) -> None:
    if note:
        sr.error = f"{sr.error}; {note}" if sr.error else note
        if sr.status == "success":
            sr.status = "partial"  # the data is in; its sync_log row is not


def _flush_deferred(settings, tenant_id: str, deferred: list, synced: bool, emit) -> None:
    """The run's remaining sync_log rows and the connection's last sync time, in one open. A row that
    cannot be written is said on its step; nothing here raises."""
    def write(timeout: float) -> dict:
        notes = {}
        with db.connect(settings.db_path, timeout=timeout) as con:
            try:
                store.log_rows(con, [row for _, row in deferred])
            except Exception:  # one at a time, so a row that cannot be written loses no other
                for sr, row in deferred:
                    try:
                        store.log_finish(con, **row)
                    except Exception as exc:
                        notes[id(sr)] = f"not recorded in sync_log ({type(exc).__name__}: {exc})"
            if synced:
                try:
                    store.touch_last_sync(con, tenant_id, datetime.now(timezone.utc))
                except Exception as exc:
                    log.warning("could not record the last sync time of %s: %s", tenant_id, exc)
        return notes

    if not deferred and not synced:
        return
    try:
        notes = _with_db(settings, write, emit, None)
    except Exception as exc:
        log.warning("could not write sync_log for %s: %s", tenant_id, exc)
        notes = {id(sr): f"not recorded in sync_log ({type(exc).__name__}: {exc})" for sr, _ in deferred}
    for sr, _ in deferred:
        _note_unlogged(sr, notes.get(id(sr)))


def _read_connection(settings, tenant_id: str, timeout: float) -> dict | None:
    with db.connect(settings.db_path, timeout=timeout) as con:
        row = con.execute("SELECT c.tenant_name, c.tenant_type, c.status, c.status_reason, o.timezone "
                          "FROM connections c LEFT JOIN organisations o USING (tenant_id) "
                          "WHERE c.tenant_id = ?", [tenant_id]).fetchone()
    return dict(zip(("tenant_name", "tenant_type", "status", "status_reason", "timezone"), row)) if row else None


def _log(settings, timeout: float, **kw) -> None:
    with db.connect(settings.db_path, timeout=timeout) as con:
        store.log_finish(con, **kw)


def _probe_db(settings, timeout: float) -> None:
    with db.connect(settings.db_path, timeout=timeout):
        pass


def stop_reason_set_by(error: str | None, stop_reason: str | None) -> bool:
    return bool(stop_reason) and error == stop_reason


def _describe(exc: BaseException, stop_reason: str | None, settings, clock: Clock) -> tuple[str, str | None]:
    """The step's error text, and whether the remaining steps must be skipped (and why). A refusal
    only a person can fix marks the connection here (the client only says so)."""
    if isinstance(exc, DailyLimitReached):
        msg = str(exc.message if hasattr(exc, "message") else exc)
        if not msg.startswith("daily budget reached"):
            when = getattr(exc, "resumes_at", None)
            msg = f"daily budget reached, resumes at {when:%Y-%m-%d %H:%M} UTC" if when else f"daily budget reached ({msg})"
        return msg, msg
    if isinstance(exc, XeroUnreachable):
        return str(exc), NOT_TRIED
    if isinstance(exc, ReconnectNeeded):
        mark_for_reconnect(settings, exc, clock.now())
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
