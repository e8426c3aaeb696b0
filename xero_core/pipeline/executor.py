"""`execute`: one tenant's steps, in order: the executor every plan runs through.

pipeline.run plans the steps (financial and practice) and hands them here as data, with the request,
in one `Execution`. In layers, as httpx's `send` -> `_send_handling_auth` -> `_send_single_request`:
`execute` (the connection, the tenant lock) -> `_start` (client, the state the steps read, the
plan's last word) -> `_run_steps` (the loop: stop, cancel, progress) -> `run_step` (one step, again
while another process holds the database) -> `judge` (ONE table, OUTCOMES, from what a step raised
to its status and whether the run stops) and `SyncLog` (the run's sync_log rows, the deferred ones
included). One failing step does not stop the others; a spent daily budget, a lost connection, an
unreachable Xero or a cancel skips the rest with the reason. Every step writes one `sync_log` row.
It lives in the pipeline, above sync/ and practice/, because it runs the steps of both.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable, TypeVar
from zoneinfo import ZoneInfo

import duckdb

from .. import db, storage
from ..clock import SYSTEM_CLOCK, Clock
from ..client import limited_client
from ..connections import mark_for_reconnect
from ..errors import DailyLimitReached, LedgerlinkError, ReconnectNeeded, TierRefused, XeroError, XeroUnreachable
from ..ratelimit import WAIT_REASONS, waits_reported_to
from ..settings import Settings
from ..sync import store
from ..sync.context import checkpoint
from ..sync.incremental import Partial
from ..sync.locks import SyncBusy, tenant_lock
from ..sync.weeks import recent_weeks, week_ending_for, week_start
from .progress import ProgressEvent
from .request import DEFAULT_WEEKS, SyncRequest
from .result import StepResult, SyncResult
from .step import Step, StepContext, SyncCancelled

log = logging.getLogger(__name__)

REPORT_STEPS = ("pnl", "bank")
DB_FIRST_TIMEOUT = 2.0  # the first open of a run: soon enough to say "waiting for the database"
DB_RETRY_TIMEOUT = 5.0  # each later try while another process holds the file
DB_MAX_WAIT = 6 * 3600.0  # a notebook left open over lunch: wait, never fail; a day-long hold does
DB_STEP_ATTEMPTS = 3  # a step that met a held database is run again (from its cursor) this often
NOT_TRIED = "not tried: Xero unreachable"  # the steps after one that found nothing at Xero's address

Progress = Callable[[ProgressEvent], None]
Reason = Callable[[], "str | None"]
Plan = list[tuple[str, Step]]
T = TypeVar("T")


@dataclass(frozen=True)
class Execution:
    """One tenant's run as asked (pipeline.run builds it from a SyncRequest and the plan).

    `steps_for(tenant_type)` gives the plan; `probe(con, tenant_id, tenant_type)` adds to the state the steps read
    (in the same open as the cursors); `replan(tenant_type, state)`, once that state is read, may
    return (steps, weeks) to run instead (the pipeline leaves a first sync's history to a backfill job
    this way). `cancel()` gives a reason to stop at the next page or chunk, `stop()` one to stop after
    the current step (a shutting-down worker)."""

    settings: Settings
    request: SyncRequest
    steps_for: Callable[[str], Plan]
    probe: Callable[[Any, str, str | None], dict[str, Any]] | None = None
    replan: Callable[[str, dict[str, Any]], tuple[Plan, int | None] | None] | None = None
    transport: Any = None
    clock: Clock = SYSTEM_CLOCK
    today: date | None = None
    client: Any = None
    progress: Progress | None = None
    cancel: Reason | None = None
    stop: Reason | None = None

    @property
    def tenant_id(self) -> str:
        return self.request.tenant_id

    def stop_reason(self) -> str | None:
        return (self.cancel() if self.cancel else None) or (self.stop() if self.stop else None)


# -- the database, held by another process --------------------------------------------------------
class Emitter:
    """The run's own progress events (a step's start and end, waits); a broken callback is ignored."""

    def __init__(self, tenant_id: str, progress: Progress | None):
        self.tenant_id, self.progress = tenant_id, progress

    def __call__(self, step: str, status: str, message: str, *, index: int | None = None, steps: int | None = None,
                 rows: int | None = None, waiting_for: str | None = None, unreachable: str | None = None) -> None:
        if self.progress:
            try:
                self.progress(ProgressEvent(status, self.tenant_id, step, message, index=index, steps=steps,
                                            rows=rows, waiting_for=waiting_for, unreachable=unreachable))
            except Exception:  # last-resort boundary: a broken progress display never breaks a sync
                pass


def _wait_note(settings: Settings) -> str:
    return (f"waiting for the database: another process holds {settings.db_path} (notebooks read "
            f"{settings.snapshot_path}; is a program reading the working copy?); "
            "the sync goes on by itself when it is released")


def with_db(settings: Settings, fn: Callable[[float], T], emit: Emitter, cancel: Reason | None, *,
            first_timeout: float | None = None, max_wait: float = DB_MAX_WAIT) -> T:
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
                emit("database", "waiting", _wait_note(settings), waiting_for="database")
                told = True
            reason = cancel() if cancel else None
            if reason:
                raise SyncCancelled(reason) from None
            timeout = DB_RETRY_TIMEOUT


@dataclass(frozen=True)
class Connection:
    """The tenant's `connections` row, as a run starts."""

    tenant_name: str | None
    tenant_type: str
    status: str | None
    status_reason: str | None
    timezone: str | None  # its organisation's, once read

    @classmethod
    def read(cls, settings: Settings, tenant_id: str, timeout: float) -> Connection | None:
        with db.connect(settings.db_path, timeout=timeout) as con:
            row = con.execute("SELECT c.tenant_name, c.tenant_type, c.status, c.status_reason, o.timezone "
                              "FROM connections c LEFT JOIN organisations o USING (tenant_id) "
                              "WHERE c.tenant_id = ?", [tenant_id]).fetchone()
        return cls(row[0], row[1] or "", row[2], row[3], row[4]) if row else None

    def reconnect_reason(self) -> str:
        return (f"reconnect needed: the connection is {str(self.status).replace('_', ' ')}"
                f" ({self.status_reason or 'no reason recorded'}); reconnect it on the Connection page "
                "or with `python -m xero_core connect`")


def load_state(settings: Settings, tenant_id: str, timeout: float,
               probe: Callable[[Any, str, str | None], dict[str, Any]] | None = None,
               tenant_type: str | None = None) -> dict[str, Any]:
    """What the steps read before they fetch (cursors; and the plan's own `probe`), in one open."""
    with db.connect(settings.db_path, timeout=timeout) as con:
        st = store.sync_state(con, tenant_id)
        extra = probe(con, tenant_id, tenant_type) if probe else {}
    return {"cursors": st.cursors, "fingerprints": st.fingerprints, "tieout_stale": st.tieout_stale, **(extra or {})}


def _probe_db(settings: Settings, timeout: float) -> None:
    with db.connect(settings.db_path, timeout=timeout):
        pass


def today_for(settings: Settings, clock: Clock, tz: str | None = None) -> date:
    """Today for a tenant: in its organisation's own time zone (`tz`, from `organisations`), else
    XERO_TIMEZONE (an organisation not read yet)."""
    for name in (tz, settings.timezone):
        if name:
            try:
                return clock.now().astimezone(ZoneInfo(name)).date()
            except (ValueError, KeyError, OSError):  # not a zone name (ZoneInfoNotFoundError is a KeyError; a folder of zones an OSError)
                continue
    return clock.now().date()


def week_list_for(settings: Settings, today: date, weeks: int | None = None, week_ending: date | None = None,
                  skip_weeks: int = 0) -> list[date]:
    """The report weeks of a run: one chosen week (`week_ending`, any day of it), or the latest
    `weeks` (default DEFAULT_WEEKS) ending with the current week less the newest `skip_weeks` of
    them (a history backfill's), oldest first."""
    if week_ending is not None:
        return [week_ending_for(week_ending, settings.week_ends_on)]
    found = recent_weeks(today, weeks or DEFAULT_WEEKS, settings.week_ends_on)
    return found[:len(found) - skip_weeks] if skip_weeks else found


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


def _cancelled(e: Any, rows: int) -> Verdict:
    return Verdict("partial" if rows else "skipped", e.message, e.message)


def _tier(e: Any, rows: int) -> Verdict:
    return Verdict("partial", str(e)) if rows else Verdict("skipped", f"not available on this Xero plan (tier): {e}")


# (exception type, verdict(exc, rows written before it), how it is logged). First match wins: order
# from the most particular. A step that raises `Partial(rows, cause)` is judged by its cause.
OUTCOMES: tuple[tuple[type[BaseException], Callable[[Any, int], Verdict], str | None], ...] = (
    (SyncCancelled, _cancelled, None),
    (TierRefused, _tier, None),
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
def _unrecorded(exc: BaseException) -> str:
    return f"not recorded in sync_log ({type(exc).__name__}: {exc})"


# What writing a sync_log row can meet: the database held past the wait, a full or damaged disk, a
# constraint. Said on the step, never raised: the step's data is in either way.
LOG_FAULTS = (LedgerlinkError, duckdb.Error, OSError)


class SyncLog:
    """One `sync_log` row per step. A failure is written at once; a success (or a step's own skip) waits
    for the end of the run and is written with the others in one open (each open of DuckDB costs tens
    of ms, and a daily sync has several steps with nothing to write); a step's last data write carries
    its own row (`in_transaction`). A row that cannot be written is said on its step, never raised."""

    def __init__(self, settings: Settings, tenant_id: str, run_id: str, trigger: str, emit: Emitter):
        self.settings, self.tenant_id, self.run_id, self.trigger, self.emit = settings, tenant_id, run_id, trigger, emit
        self.deferred: list[tuple[StepResult, dict[str, Any]]] = []
        self.written: set[str] = set()  # sync_ids a step's last data write has logged (flush replaces only those)

    def row(self, step: str, status: str, *, error: str | None = None, rows: int = 0, api_calls: int = 0,
            bytes_downloaded: int = 0, started_at: datetime | None = None, finished_at: datetime | None = None,
            period: tuple[date, date] | None = None, detail: dict[str, Any] | None = None) -> dict[str, Any]:
        return dict(sync_id=uuid.uuid4().hex, run_id=self.run_id, tenant_id=self.tenant_id, sync_type=step,
                    trigger=self.trigger, status=status, rows=rows, api_calls=api_calls,
                    bytes_downloaded=bytes_downloaded, error=error, started_at=started_at, finished_at=finished_at,
                    period=period, detail=detail)

    def write_now(self, row: dict[str, Any]) -> str | None:
        """Write one row now; the note to add to its step when it could not be."""
        def write(timeout: float) -> None:
            with db.connect(self.settings.db_path, timeout=timeout) as con:
                store.log_finish(con, **row)

        try:
            with_db(self.settings, write, self.emit, None)
            return None
        except LOG_FAULTS as exc:
            log.warning("could not write sync_log for %s/%s: %s", self.tenant_id, row.get("sync_type"), exc)
            return _unrecorded(exc)

    def skipped(self, step: str, reason: str, now: datetime, period: tuple[date, date] | None = None) -> StepResult:
        """A step not run (the run stopped, the connection needs a person): its row, written now."""
        sr = StepResult(step, "skipped", error=reason, started_at=now, finished_at=now)
        sr.note_unlogged(self.write_now(self.row(step, "skipped", error=reason, started_at=now, finished_at=now,
                                                 period=period)))
        return sr

    def record(self, sr: StepResult, row: dict[str, Any]) -> None:
        """A step's row: deferred when it went well, written now when not."""
        if sr.status == "success" or sr.benign_skip:
            self.deferred.append((sr, row))
        else:
            sr.note_unlogged(self.write_now(row))

    def in_transaction(self, ctx: StepContext, row: dict[str, Any]) -> Callable[[Any, int], None]:
        """`ctx.log_in_tx`: the step's success row, written inside its last data write."""
        client = ctx.client
        calls0, bytes0 = row["api_calls"], row["bytes_downloaded"]

        def write(con: Any, rows: int) -> None:
            store.log_rows(con, [dict(row, status="success", rows=rows, api_calls=client.api_calls - calls0,
                                      bytes_downloaded=client.bytes_downloaded - bytes0,
                                      finished_at=ctx.clock.now())],
                           replace=False)  # a new sync_id: nothing to replace
            self.written.add(row["sync_id"])
            ctx.logged = True

        return write

    def flush(self, synced: bool) -> None:
        """The deferred rows and the connection's last sync time, in one open."""
        deferred, self.deferred = self.deferred, []
        if not deferred and not synced:
            return

        def write(timeout: float) -> dict[int, str]:
            notes: dict[int, str] = {}
            with db.connect(self.settings.db_path, timeout=timeout) as con:
                try:
                    # A quiet day's rows are all new: no DELETE to look for them (~3 ms a run).
                    store.log_rows(con, [row for _, row in deferred],
                                   replace={row["sync_id"] for _, row in deferred} & self.written)
                except LOG_FAULTS:  # one at a time, so a row that cannot be written loses no other
                    for sr, row in deferred:
                        try:
                            store.log_finish(con, **row)
                        except LOG_FAULTS as exc:
                            notes[id(sr)] = _unrecorded(exc)
                if synced:
                    try:
                        store.touch_last_sync(con, self.tenant_id, datetime.now(timezone.utc))
                    except LOG_FAULTS as exc:
                        log.warning("could not record the last sync time of %s: %s", self.tenant_id, exc)
            return notes

        try:
            notes = with_db(self.settings, write, self.emit, None)
        except LOG_FAULTS as exc:
            log.warning("could not write sync_log for %s: %s", self.tenant_id, exc)
            notes = {id(sr): _unrecorded(exc) for sr, _ in deferred}
        for sr, _ in deferred:
            sr.note_unlogged(notes.get(id(sr)))


# -- one step ------------------------------------------------------------------------------------------
@dataclass
class Run:
    """What every step of one tenant's run shares."""

    x: Execution
    client: Any
    weeks: list[date]
    state: dict[str, Any]
    log: SyncLog
    emit: Emitter
    stop_reason: str | None = None  # set: every step left is skipped with it
    current: str = "sync"  # the step under way (a rate-limit wait is said on it)

    @property
    def period(self) -> tuple[date, date] | None:
        return (week_start(self.weeks[0]), self.weeks[-1]) if self.weeks else None

    def context(self, name: str) -> StepContext:
        return StepContext(settings=self.x.settings, tenant_id=self.x.tenant_id, client=self.client,
                           weeks=self.weeks, clock=self.x.clock, step=name, state=self.state,
                           progress=self.x.progress, cancel=self.x.cancel, transport=self.x.transport)


def _after_busy(run: Run, exc: db.DatabaseBusy, attempt: int) -> Verdict | None:
    """Another process held the file past db.connect's wait: say so and wait for it; None means run
    the step again (it resumes from its cursor; upserts repeat cleanly)."""
    if attempt + 1 < DB_STEP_ATTEMPTS:
        try:
            with_db(run.x.settings, lambda t: _probe_db(run.x.settings, t), run.emit, run.x.cancel)
            return None
        except SyncCancelled as c:
            return Verdict("skipped", c.message, c.message)
        except LedgerlinkError:  # held past DB_MAX_WAIT, or the file went bad meanwhile: the step fails
            pass
    return Verdict("failed", str(exc))


def run_step(run: Run, name: str, fn: Step) -> tuple[StepResult, str | None]:
    """Run one step (again from its cursor while another process holds the database, up to
    DB_STEP_ATTEMPTS times) and record it: its StepResult, and a reason that stops the run or None."""
    step_period = run.period if name in REPORT_STEPS else None
    started = run.x.clock.now()
    calls0, bytes0 = run.client.api_calls, run.client.bytes_downloaded
    row = run.log.row(name, "success", started_at=started, period=step_period, api_calls=calls0,
                      bytes_downloaded=bytes0)
    detail: dict[str, Any] | None = None
    rows = 0
    for attempt in range(DB_STEP_ATTEMPTS):
        ctx = run.context(name)
        ctx.log_in_tx = run.log.in_transaction(ctx, row)
        try:
            outcome = fn(ctx)
        except db.DatabaseBusy as exc:
            retry = _after_busy(run, exc, attempt)
            if retry is None:
                continue
            verdict = retry
        except Exception as exc:  # one failing step does not stop the others: OUTCOMES judges it
            verdict, rows = judge(exc, step=name, tenant_id=run.x.tenant_id)
            cause = exc.cause if isinstance(exc, Partial) else exc
            if isinstance(cause, ReconnectNeeded):  # only a person can fix it: the connection says so (the client does not)
                mark_for_reconnect(run.x.settings, cause, run.x.clock.now())
        else:
            rows = outcome.rows
            if outcome.status == "success":
                detail = {**(outcome.detail or {}), **({"note": outcome.note} if outcome.note else {})} or None
                verdict = Verdict("success", None)
            else:
                detail = outcome.detail
                verdict = Verdict(outcome.status, outcome.note)
        break
    finished = run.x.clock.now()
    sr = StepResult(name, verdict.status, rows=rows, api_calls=run.client.api_calls - calls0,
                    bytes_downloaded=run.client.bytes_downloaded - bytes0, error=verdict.error, started_at=started,
                    finished_at=finished, period_start=step_period[0] if step_period else None,
                    period_end=step_period[1] if step_period else None, detail=detail)
    # A step the plan refuses (or the step itself chose to skip) is not a failure.
    sr.benign_skip = sr.status == "skipped" and not (verdict.stops_run and sr.error == verdict.stops_run)
    # Written already with the step's last write, unless the outcome adds to it.
    if not (ctx.logged and sr.status == "success" and not detail):
        run.log.record(sr, dict(row, status=sr.status, rows=rows, api_calls=sr.api_calls,
                                bytes_downloaded=sr.bytes_downloaded, error=sr.error, finished_at=finished,
                                detail=detail))
    sr.read = ctx.units_read()
    return sr, verdict.stops_run


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
def execute(x: Execution) -> SyncResult:
    """Run one tenant's steps, in order: the one executor every plan goes through. A failing step, or
    a sync_log write that fails (disk full, database held), never stops the others: every step is
    attempted or skipped with a reason, and a SyncResult always comes back."""
    req, emit = x.request, Emitter(x.tenant_id, x.progress)
    run_id = uuid.uuid4().hex
    try:  # the first open of the run: a file held by a notebook shows as "waiting for the database" at once
        conn = with_db(x.settings, lambda t: Connection.read(x.settings, x.tenant_id, t), emit, x.cancel,
                       first_timeout=DB_FIRST_TIMEOUT)
    except SyncCancelled as exc:
        return SyncResult(tenant_id=x.tenant_id, run_id=run_id, trigger=req.trigger, cancelled=exc.message)
    if conn is None:
        raise ValueError(f"tenant {x.tenant_id} is not connected: run `python -m xero_core connect` first "
                         "(`python -m xero_core status` lists connected tenants)")
    result = SyncResult(tenant_id=x.tenant_id, tenant_name=conn.tenant_name, tenant_type=conn.tenant_type,
                        run_id=run_id, trigger=req.trigger)
    synclog = SyncLog(x.settings, x.tenant_id, run_id, req.trigger, emit)
    steps = x.steps_for(conn.tenant_type)
    if conn.status != "connected":
        result.reconnect = conn.reconnect_reason()
        result.steps = [synclog.skipped(name, result.reconnect, x.clock.now()) for name, _ in steps]
        return result
    try:
        with tenant_lock(x.settings, x.tenant_id, trigger=req.trigger):
            run, steps = _start(x, conn, synclog, emit, steps)
            _run_steps(run, steps, result)
    except SyncBusy as busy:
        result.busy = str(busy)
        now = x.clock.now()
        synclog.write_now(synclog.row("sync", "skipped", error=str(busy), started_at=now, finished_at=now))
        emit("sync", "skipped", str(busy))
    return result


def _start(x: Execution, conn: Connection, synclog: SyncLog, emit: Emitter, steps: Plan) -> tuple[Run, Plan]:
    """The run's client, the state its steps read (cursors, the plan's probe) and the plan's last word."""
    req = x.request
    today = x.today or today_for(x.settings, x.clock, conn.timezone)
    weeks = req.weeks
    stop_reason: str | None = None
    try:
        state = with_db(x.settings, lambda t: load_state(x.settings, x.tenant_id, t, x.probe, conn.tenant_type), emit, x.cancel,
                        first_timeout=DB_FIRST_TIMEOUT)
    except SyncCancelled as exc:
        state, stop_reason = {}, str(exc.message)
    except LOG_FAULTS as exc:  # each step reads its own cursor instead
        log.warning("could not read the sync state of %s: %s", x.tenant_id, exc)
        state = {}
    if x.replan is not None and not stop_reason:
        changed = x.replan(conn.tenant_type, state)
        if changed is not None:
            steps, weeks = changed
    client = x.client or limited_client(x.settings, x.tenant_id, transport=x.transport, clock=x.clock)
    run = Run(x, client, week_list_for(x.settings, today, weeks, req.week_ending, req.skip_weeks), state, synclog,
              emit, stop_reason)
    return run, steps


def _run_steps(run: Run, steps: Plan, result: SyncResult) -> None:
    """Each step in turn, or skipped with the reason the run stops; then the deferred sync_log rows."""
    x, emit = run.x, run.emit

    def held(seconds: float, why: str) -> None:
        emit(run.current, "waiting", f"waiting for {WAIT_REASONS.get(why, why)}, resumes in "
             f"{max(1, round(seconds))} s", waiting_for="rate_limit")

    with waits_reported_to(held):
        for i, (name, fn) in enumerate(steps):
            run.stop_reason = run.stop_reason or x.stop_reason()
            if run.stop_reason:
                step_period = run.period if name in REPORT_STEPS else None
                result.steps.append(run.log.skipped(name, run.stop_reason, x.clock.now(), step_period))
                emit(name, "skipped", f"{name}: skipped ({run.stop_reason})", index=i + 1, steps=len(steps))
                continue
            run.current = name
            emit(name, "running", f"{name}: starting", index=i + 1, steps=len(steps))
            sr, stops = run_step(run, name, fn)
            run.stop_reason = run.stop_reason or stops
            result.steps.append(sr)
            run.state.setdefault("results", {})[name] = sr.rows if sr.status in ("success", "partial") else 0
            line, unreachable = step_line(sr), None
            if run.stop_reason == NOT_TRIED and result.unreachable is None and sr.error:
                # The sentence travels once, beside the event; the step's own line stays short.
                result.unreachable = unreachable = sr.error
                line = f"{name}: {sr.status} (Xero unreachable)"
            emit(name, sr.status, line, index=i + 1, steps=len(steps), rows=sr.rows, unreachable=unreachable)
            checkpoint(f"step:{name}:done")
    if run.stop_reason and x.stop_reason():
        result.cancelled = run.stop_reason
    run.log.flush(any(s.status in ("success", "partial") for s in result.steps))
