"""`execute`: one tenant's steps, in order: the executor every plan runs through.

Every trigger goes through `xero_core.engine.Engine`, whose pipeline plans the steps (financial
and practice) and hands them to `execute` as data. In layers, as httpx's `send` ->
`_send_handling_auth` -> `_send_single_request`: `execute` (the run: connection, tenant lock,
state, the loop) -> `run_step` (one step, again while another process holds the database) ->
`judge` (ONE table, OUTCOMES, from what a step raised to its status and whether the run stops) and
`SyncLog` (the run's sync_log rows, the deferred ones included). One failing step does not stop
the others; a spent daily budget, a lost connection, an unreachable Xero or a cancel skips the
rest with the reason. Every step writes one `sync_log` row.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

from .. import db, storage
from ..clock import SYSTEM_CLOCK, Clock
from ..connections import mark_for_reconnect
from ..errors import DailyLimitReached, LedgerlinkError, ReconnectNeeded, TierRefused, XeroError, XeroUnreachable
from ..ratelimit import WAIT_REASONS, waits_reported_to
from . import store
from .context import StepContext, StepOutcome, StepResult, SyncCancelled, SyncResult, checkpoint
from .locks import SyncBusy, tenant_lock
from .steps import Partial
from .weeks import recent_weeks, week_ending_for, week_start

log = logging.getLogger(__name__)

DEFAULT_WEEKS = 2  # the daily run: current and previous week (Xero reports change retroactively)
REPORT_STEPS = ("pnl", "bank")
DB_FIRST_TIMEOUT = 2.0  # the first open of a run: soon enough to say "waiting for the database"
DB_RETRY_TIMEOUT = 5.0  # each later try while another process holds the file
DB_MAX_WAIT = 6 * 3600.0  # a notebook left open over lunch: wait, never fail; a day-long hold does
DB_STEP_ATTEMPTS = 3  # a step that met a held database is run again (from its cursor) this often
NOT_TRIED = "not tried: Xero unreachable"  # the steps after one that found nothing at Xero's address


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


def week_list_for(settings, today: date, weeks: int | None = None, week_ending: date | None = None,
                  skip_weeks: int = 0) -> list[date]:
    """The report weeks of a run: one chosen week (`week_ending`, any day of it), or the latest
    `weeks` (default DEFAULT_WEEKS) ending with the current week less the newest `skip_weeks` of
    them (a history backfill's), oldest first."""
    if week_ending is not None:
        return [week_ending_for(week_ending, settings.week_ends_on)]
    found = recent_weeks(today, weeks or DEFAULT_WEEKS, settings.week_ends_on)
    return found[:len(found) - skip_weeks] if skip_weeks else found


def _wait_note(settings) -> str:
    return (f"waiting for the database: another process holds {settings.db_path} (notebooks read "
            f"{settings.snapshot_path}; is a program reading the working copy?); "
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
                emit("database", "waiting", _wait_note(settings), reason="database")
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


# -- what an exception means: ONE table ------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """A step's ending as the run sees it: its status and error, and a reason that stops the rest of
    the run (None: the next step runs)."""

    status: str
    error: str | None
    stops_run: str | None = None


def _daily(exc: BaseException) -> str:
    msg = str(getattr(exc, "message", None) or exc)
    if msg.startswith("daily budget reached"):
        return msg
    when = getattr(exc, "resumes_at", None)
    return f"daily budget reached, resumes at {when:%Y-%m-%d %H:%M} UTC" if when else f"daily budget reached ({msg})"


def _failed_or_partial(rows: int) -> str:
    return "partial" if rows else "failed"


# (exception type, verdict(exc, rows written before it), how it is logged). First match wins: order
# from the most particular. A step that raises `Partial(rows, cause)` is judged by its cause.
OUTCOMES: tuple[tuple[type[BaseException], Callable[[Any, int], Verdict], str | None], ...] = (
    (SyncCancelled, lambda e, rows: Verdict("partial" if rows else "skipped", e.message, e.message), None),
    (TierRefused, lambda e, rows: Verdict("partial", str(e)) if rows
     else Verdict("skipped", f"not available on this Xero plan (tier): {e}"), None),
    (DailyLimitReached, lambda e, rows: Verdict(_failed_or_partial(rows), _daily(e), _daily(e)), None),
    (XeroUnreachable, lambda e, rows: Verdict(_failed_or_partial(rows), str(e), NOT_TRIED), None),
    (ReconnectNeeded, lambda e, rows: Verdict(_failed_or_partial(rows), f"reconnect needed: {e}",
                                              f"reconnect needed: {e}"), None),
    (XeroError, lambda e, rows: Verdict(_failed_or_partial(rows), str(e)), None),
    # A sentence already (a full disk, a locked file): logged without a traceback.
    (LedgerlinkError, lambda e, rows: Verdict(_failed_or_partial(rows), str(e)), "sentence"),
    (Exception, lambda e, rows: Verdict(_failed_or_partial(rows), f"{type(e).__name__}: {e}"), "traceback"),
)


def judge(exc: BaseException, *, step: str = "", tenant_id: str = "") -> tuple[Verdict, int]:
    """The verdict on what a step raised, and the rows it wrote before (OUTCOMES)."""
    rows = 0
    if isinstance(exc, Partial):
        rows, exc = exc.rows, exc.cause
    if isinstance(exc, Exception) and not isinstance(exc, LedgerlinkError):
        # a raw DuckDB/SQLite/OS disk error no store translated yet: its sentence, not a traceback
        exc = storage.as_storage_error(exc) or exc
    for kind, verdict, logged in OUTCOMES:
        if isinstance(exc, kind):
            if logged == "sentence":
                log.error("sync step %s failed for tenant %s: %s", step, tenant_id, exc)
            elif logged == "traceback":
                log.error("sync step %s failed for tenant %s", step, tenant_id, exc_info=exc)
            return verdict(exc, rows), rows
    raise exc  # not an Exception (KeyboardInterrupt, SystemExit): not the step's to judge


# -- the run's sync_log rows -------------------------------------------------------------------------
class SyncLog:
    """One `sync_log` row per step. A failure is written at once; a success (or a step's own skip) waits
    for the end of the run and is written with the others in one open (each open of DuckDB costs tens
    of ms, and a daily sync has several steps with nothing to write); a step's last data write carries
    its own row (`in_transaction`). A row that cannot be written is said on its step, never raised."""

    def __init__(self, settings, tenant_id: str, run_id: str, trigger: str, emit):
        self.settings, self.tenant_id, self.run_id, self.trigger, self.emit = settings, tenant_id, run_id, trigger, emit
        self.deferred: list[tuple[StepResult, dict]] = []

    def row(self, step: str, status: str, *, error: str | None = None, rows: int = 0, api_calls: int = 0,
            bytes_downloaded: int = 0, started_at=None, finished_at=None, period=None, detail=None,
            sync_id: str | None = None) -> dict:
        return dict(sync_id=sync_id or uuid.uuid4().hex, run_id=self.run_id, tenant_id=self.tenant_id, sync_type=step,
                    trigger=self.trigger, status=status, rows=rows, api_calls=api_calls,
                    bytes_downloaded=bytes_downloaded, error=error, started_at=started_at, finished_at=finished_at,
                    period=period, detail=detail)

    def write_now(self, row: dict) -> str | None:
        """Write one row now; the note to add to its step when it could not be."""
        def write(timeout: float) -> None:
            with db.connect(self.settings.db_path, timeout=timeout) as con:
                store.log_finish(con, **row)

        try:
            _with_db(self.settings, write, self.emit, None)
            return None
        except Exception as exc:
            log.warning("could not write sync_log for %s/%s: %s", self.tenant_id, row.get("sync_type"), exc)
            return f"not recorded in sync_log ({type(exc).__name__}: {exc})"

    def record(self, sr: StepResult, row: dict) -> None:
        """A step's row: deferred when it went well, written now when not."""
        if sr.status == "success" or sr.benign_skip:
            self.deferred.append((sr, row))
        else:
            _note_unlogged(sr, self.write_now(row))

    def in_transaction(self, ctx: StepContext, row: dict, client) -> Callable[[Any, int], None]:
        """`ctx.log_in_tx`: the step's success row, written inside its last data write."""
        calls0, bytes0 = row["api_calls"], row["bytes_downloaded"]

        def write(con, rows: int) -> None:
            store.log_rows(con, [dict(row, status="success", rows=rows, api_calls=client.api_calls - calls0,
                                      bytes_downloaded=client.bytes_downloaded - bytes0,
                                      finished_at=ctx.clock.now())],
                           replace=False)  # a new sync_id: nothing to replace
            ctx.logged = True

        return write

    def flush(self, synced: bool) -> None:
        """The deferred rows and the connection's last sync time, in one open."""
        deferred = self.deferred
        if not deferred and not synced:
            return

        def write(timeout: float) -> dict:
            notes = {}
            with db.connect(self.settings.db_path, timeout=timeout) as con:
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
                        store.touch_last_sync(con, self.tenant_id, datetime.now(timezone.utc))
                    except Exception as exc:
                        log.warning("could not record the last sync time of %s: %s", self.tenant_id, exc)
            return notes

        try:
            notes = _with_db(self.settings, write, self.emit, None)
        except Exception as exc:
            log.warning("could not write sync_log for %s: %s", self.tenant_id, exc)
            notes = {id(sr): f"not recorded in sync_log ({type(exc).__name__}: {exc})" for sr, _ in deferred}
        for sr, _ in deferred:
            _note_unlogged(sr, notes.get(id(sr)))
        self.deferred = []


def _note_unlogged(sr: StepResult, note: str | None) -> None:
    if note:
        sr.error = f"{sr.error}; {note}" if sr.error else note
        if sr.status == "success":
            sr.status = "partial"  # the data is in; its sync_log row is not


# -- one step ------------------------------------------------------------------------------------------
@dataclass
class Run:
    """What every step of one tenant's run shares."""

    settings: Any
    tenant_id: str
    tenant_type: str
    client: Any
    weeks: list[date]
    period: tuple[date, date] | None
    today: date
    clock: Clock
    trigger: str
    run_id: str
    explicit_weeks: bool
    state: dict
    log: SyncLog
    emit: Callable[..., None]
    progress: Callable[[dict], None] | None = None
    cancel: Callable[[], str | None] | None = None
    transport: Any = None


def run_step(run: Run, name: str, fn: Callable[[StepContext], StepOutcome]) -> tuple[StepResult, str | None]:
    """Run one step (again from its cursor while another process holds the database, up to
    DB_STEP_ATTEMPTS times) and record it: its StepResult, and a reason that stops the run or None."""
    step_period = run.period if name in REPORT_STEPS else None
    started = run.clock.now()
    client = run.client
    calls0, bytes0 = client.api_calls, client.bytes_downloaded
    row = run.log.row(name, "success", started_at=started, period=step_period, api_calls=calls0,
                      bytes_downloaded=bytes0)
    stops: str | None = None
    for attempt in range(DB_STEP_ATTEMPTS):
        ctx = StepContext(settings=run.settings, tenant_id=run.tenant_id, tenant_type=run.tenant_type, client=client,
                          weeks=run.weeks, today=run.today, clock=run.clock, trigger=run.trigger, run_id=run.run_id,
                          progress=run.progress, step=name, explicit_weeks=run.explicit_weeks, state=run.state,
                          cancel=run.cancel, transport=run.transport)
        ctx.log_in_tx = run.log.in_transaction(ctx, row, client)
        try:
            outcome = fn(ctx) or StepOutcome()
        except db.DatabaseBusy as exc:
            # Another process held the file past db.connect's wait: say so, wait for it, then run the
            # step again (it resumes from its cursor; upserts repeat cleanly).
            verdict, rows = Verdict("failed", str(exc)), 0
            if attempt + 1 < DB_STEP_ATTEMPTS:
                try:
                    _with_db(run.settings, lambda t: _probe_db(run.settings, t), run.emit, run.cancel)
                    continue
                except SyncCancelled as c:
                    verdict = Verdict("skipped", c.message, c.message)
                except Exception:
                    pass
        except Exception as exc:  # one failing step does not stop the others
            verdict, rows = judge(exc, step=name, tenant_id=run.tenant_id)
            cause = exc.cause if isinstance(exc, Partial) else exc
            if isinstance(cause, ReconnectNeeded):  # only a person can fix it: the connection says so (the client does not)
                mark_for_reconnect(run.settings, cause, run.clock.now())
        else:
            rows = outcome.rows
            if outcome.status == "success":
                detail = {**(outcome.detail or {}), **({"note": outcome.note} if outcome.note else {})} or None
                verdict = Verdict("success", None)
            else:
                detail = outcome.detail
                verdict = Verdict(outcome.status, outcome.note)
            stops = None
            break
        detail = None
        stops = verdict.stops_run
        break
    finished = run.clock.now()
    sr = StepResult(name, verdict.status, rows=rows, api_calls=client.api_calls - calls0,
                    bytes_downloaded=client.bytes_downloaded - bytes0, error=verdict.error, started_at=started,
                    finished_at=finished, period_start=step_period[0] if step_period else None,
                    period_end=step_period[1] if step_period else None, detail=detail)
    # A step the plan refuses (or the step itself chose to skip) is not a failure.
    sr.benign_skip = sr.status == "skipped" and not (stops and sr.error == stops)
    # Written already with the step's last write, unless the outcome adds to it.
    if not (ctx.logged and sr.status == "success" and not detail):
        run.log.record(sr, dict(row, status=sr.status, rows=rows, api_calls=sr.api_calls,
                                bytes_downloaded=sr.bytes_downloaded, error=sr.error, finished_at=finished,
                                detail=detail))
    sr.read = ctx.units_read()
    return sr, stops


def step_line(sr: StepResult) -> str:
    """A step's end as a person reads it: `pnl: success, 12 rows`, `journals: failed (HTTP 500 ...)`."""
    if sr.error and sr.status != "success":
        return f"{sr.step}: {sr.status} ({sr.error})"
    note = (sr.detail or {}).get("note") if isinstance(sr.detail, dict) else None
    if not sr.rows and sr.read:  # everything read was stored already: say what was read
        line = f"{sr.step}: {sr.status}, {sr.read:,} row{'s' if sr.read != 1 else ''} (unchanged)"
    else:
        line = f"{sr.step}: {sr.status}, {sr.rows or 0:,} row{'s' if sr.rows != 1 else ''}"
    return line + (f" ({note})" if note else "")


# -- the run -------------------------------------------------------------------------------------------
def execute(settings, tenant_id: str, steps_for: Callable[[str], list[tuple[str, Callable]]], *,
            weeks: int | None = None, week_ending: date | None = None, trigger: str = "manual", transport=None,
            clock: Clock | None = None, progress: Callable[[dict], None] | None = None, today: date | None = None,
            client=None, cancel: Callable[[], str | None] | None = None, stop: Callable[[], str | None] | None = None,
            probe=None, run_id: str | None = None, skip_weeks: int = 0,
            replan: Callable[[str, dict], tuple[list, int | None] | None] | None = None) -> SyncResult:
    """Run one tenant's steps, in order: the one executor every plan goes through.

    `steps_for(tenant_type)` gives [(name, fn(ctx) -> StepOutcome)] (data: sync/ never imports the
    practice steps it may be handed). `cancel()` returns a reason to stop at the next page or chunk;
    `stop()` a reason to stop after the current step (a shutting-down worker). A failing step, or a
    sync_log write that fails (disk full, database held), never stops the others: every step is
    attempted or skipped with a reason, and a SyncResult always comes back.
    `replan(tenant_type, state)`, once the cursors are read, may return (steps, weeks) to run instead
    (the pipeline leaves a first sync's history to a backfill job this way).
    """
    clock = clock or SYSTEM_CLOCK
    run_id = run_id or uuid.uuid4().hex
    emit = _emitter(tenant_id, progress)

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
    week_list = week_list_for(settings, today, weeks, week_ending, skip_weeks)
    period = (week_start(week_list[0]), week_list[-1]) if week_list else None
    steps = steps_for(conn.get("tenant_type") or "")
    synclog = SyncLog(settings, tenant_id, run_id, trigger, emit)

    if conn.get("status") != "connected":
        reason = (f"reconnect needed: the connection is {str(conn.get('status')).replace('_', ' ')}"
                  f" ({conn.get('status_reason') or 'no reason recorded'}); reconnect it on the Connection page "
                  "or with `python -m xero_core connect`")
        result.reconnect = reason
        now = clock.now()
        for name, _ in steps:
            synclog.write_now(synclog.row(name, "skipped", error=reason, started_at=now, finished_at=now))
            result.steps.append(StepResult(name, "skipped", error=reason, started_at=now, finished_at=now))
        return result

    try:
        with tenant_lock(settings, tenant_id, trigger=trigger):
            client = client or _make_client(settings, tenant_id, transport, clock)
            stop_reason: str | None = None
            try:
                state = _with_db(settings, lambda t: _load_state(settings, tenant_id, t, probe), emit, cancel,
                                 first_timeout=DB_FIRST_TIMEOUT)
            except SyncCancelled as exc:
                state, stop_reason = {}, str(exc.message)
            except Exception as exc:  # each step reads its own cursor instead
                log.warning("could not read the sync state of %s: %s", tenant_id, exc)
                state = {}
            if replan is not None and not stop_reason:
                changed = replan(conn.get("tenant_type") or "", state)
                if changed is not None:
                    steps, weeks = changed
                    week_list = week_list_for(settings, today, weeks, week_ending, skip_weeks)
                    period = (week_start(week_list[0]), week_list[-1]) if week_list else None
            run = Run(settings=settings, tenant_id=tenant_id, tenant_type=conn.get("tenant_type") or "", client=client,
                      weeks=week_list, period=period, today=today, clock=clock, trigger=trigger, run_id=run_id,
                      explicit_weeks=weeks is not None or week_ending is not None, state=state, log=synclog,
                      emit=emit, progress=progress, cancel=cancel, transport=transport)
            current = {"step": "sync"}

            def held(seconds: float, why: str) -> None:
                emit(current["step"], "waiting", f"waiting for {WAIT_REASONS.get(why, why)}, resumes in "
                     f"{max(1, round(seconds))} s", reason="rate_limit", resumes_in=round(seconds, 1))

            with waits_reported_to(held):
                for i, (name, fn) in enumerate(steps):
                    place = {"index": i + 1, "steps": len(steps)}
                    if not stop_reason:
                        stop_reason = (cancel() if cancel else None) or (stop() if stop else None)
                    if stop_reason:
                        now = clock.now()
                        step_period = period if name in REPORT_STEPS else None
                        note = synclog.write_now(synclog.row(name, "skipped", error=stop_reason, started_at=now,
                                                             finished_at=now, period=step_period))
                        result.steps.append(StepResult(name, "skipped", error=stop_reason + (f"; {note}" if note else ""),
                                                       started_at=now, finished_at=now))
                        emit(name, "skipped", f"{name}: skipped ({stop_reason})", **place)
                        continue
                    current["step"] = name
                    emit(name, "running", f"{name}: starting", i / max(len(steps), 1), **place)
                    sr, stops = run_step(run, name, fn)
                    stop_reason = stop_reason or stops
                    result.steps.append(sr)
                    state.setdefault("results", {})[name] = sr.rows if sr.status in ("success", "partial") else 0
                    extra = {}
                    line = step_line(sr)
                    if stop_reason == NOT_TRIED and result.unreachable is None and sr.error:
                        # The sentence travels once, beside the event; the step's own line stays short.
                        result.unreachable = extra["unreachable"] = sr.error
                        line = f"{name}: {sr.status} (Xero unreachable)"
                    emit(name, sr.status, line, (i + 1) / max(len(steps), 1), rows=sr.rows, **place, **extra)
                    checkpoint(f"step:{name}:done")
            if stop_reason and ((cancel and cancel()) or (stop and stop())):
                result.cancelled = stop_reason
            synclog.flush(any(s.status in ("success", "partial") for s in result.steps))
    except SyncBusy as busy:
        result.busy = str(busy)
        now = clock.now()
        synclog.write_now(synclog.row("sync", "skipped", error=str(busy), started_at=now, finished_at=now))
        emit("sync", "skipped", str(busy))
    return result


def _emitter(tenant_id: str, progress: Callable[[dict], None] | None) -> Callable[..., None]:
    def emit(step: str, status: str, message: str, fraction: float | None = None, rows: int | None = None,
             **extra) -> None:
        if progress:
            try:
                progress({"tenant_id": tenant_id, "step": step, "status": status, "message": message,
                          "fraction": fraction, "rows": rows, **extra})
            except Exception:
                pass

    return emit


def _read_connection(settings, tenant_id: str, timeout: float) -> dict | None:
    with db.connect(settings.db_path, timeout=timeout) as con:
        row = con.execute("SELECT c.tenant_name, c.tenant_type, c.status, c.status_reason, o.timezone "
                          "FROM connections c LEFT JOIN organisations o USING (tenant_id) "
                          "WHERE c.tenant_id = ?", [tenant_id]).fetchone()
    return dict(zip(("tenant_name", "tenant_type", "status", "status_reason", "timezone"), row)) if row else None


def _probe_db(settings, timeout: float) -> None:
    with db.connect(settings.db_path, timeout=timeout):
        pass
