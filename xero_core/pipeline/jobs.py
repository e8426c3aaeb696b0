"""Durable sync jobs: one SQLite file, `<data_dir>/jobs.sqlite` (WAL, mode 0600).

Not DuckDB on purpose: a notebook holding xero.duckdb must never block the bookkeeping that says
"waiting for the database". Every process (scheduler, app server, CLI) reads and writes the same
file; SQLite's own locking makes each change atomic across them.

A job: id, tenant, the request (JSON), trigger, who asked, priority, state
queued | running | done | failed | interrupted | cancelled, progress (JSON: step, count / total,
ETA, message, steps done), started / finished, error sentence, owner (pid, host, pool id) and its
heartbeat, a cancel request, and the result (SyncResult as JSON).

At most one queued or running job per tenant and priority (a unique partial index): enqueueing for a
busy tenant returns the job already there ("joined"). A tenant's history backfill (priority 1) may
wait beside its daily sync or Sync now (priority 0), which is claimed first; a job is never claimed
while another job of its tenant runs, and a running backfill steps back into the queue when a
priority-0 job of its tenant arrives (`yield_wanted`, `requeue`). A running job whose owner died (kill -9, power cut) is
turned `interrupted` with a sentence by whoever looks next (`reap`); the next run of the tenant
resumes from the sync cursors.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from .. import storage
from ..settings import Settings
from ..sqlite_wal import hold_open, open_wal, release_held
from .progress import JobProgress
from .request import SyncRequest
from .result import SyncResult

FILE = "jobs.sqlite"
ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "interrupted", "cancelled")
STATES = ACTIVE + FINAL
HEARTBEAT_SECONDS = 5.0  # a pool refreshes the heartbeat of its running jobs this often
STALE_SECONDS = 90.0  # a running job not heard from for this long is taken as dead (other hosts)
KEEP_FINISHED = 2000  # finished jobs kept for the history; older ones are deleted

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id           TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    tenant_name      TEXT,
    request          TEXT NOT NULL,           -- SyncRequest JSON
    trigger          TEXT NOT NULL,           -- manual | scheduler | cli | webhook | demo
    requested_by     TEXT,
    priority         INTEGER NOT NULL DEFAULT 0,  -- lower first: daily syncs 0, backfills 1
    state            TEXT NOT NULL,           -- queued | running | done | failed | interrupted | cancelled
    created_at       REAL NOT NULL,           -- unix seconds (wall clock)
    started_at       REAL,
    finished_at      REAL,
    heartbeat_at     REAL,
    owner_pid        INTEGER,
    owner_host       TEXT,
    owner_id         TEXT,                    -- the worker pool (one per process and purpose)
    owner_label      TEXT,                    -- scheduler | app | cli
    cancel_requested TEXT,                    -- who asked to cancel, or NULL
    error            TEXT,                    -- one sentence when failed / interrupted / cancelled
    progress         TEXT,                    -- JSON, see pipeline/progress.py
    result           TEXT,                    -- SyncResult.to_dict() JSON when finished
    follow_up        TEXT                     -- SyncRequest JSON queued when this job ends (a request it did not cover)
);
DROP INDEX IF EXISTS jobs_one_active_per_tenant;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active_per_tenant_priority ON jobs (tenant_id, priority)
    WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, priority, created_at);
"""


class Stoppable(Protocol):
    """What `wait` asks of its `stop`: a threading.Event, or anything set the same way."""

    def is_set(self) -> bool: ...


class JobError(Exception):
    """A job command that cannot be done (unknown id, already finished); str() is a sentence."""


@dataclass
class Owner:
    """Who runs jobs: one per worker pool."""

    label: str = "worker"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)


@dataclass
class Job:
    job_id: str
    tenant_id: str
    tenant_name: str | None
    request: SyncRequest
    trigger: str
    requested_by: str | None
    priority: int
    state: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    owner_pid: int | None = None
    owner_host: str | None = None
    owner_id: str | None = None
    owner_label: str | None = None
    cancel_requested: str | None = None
    error: str | None = None
    progress: JobProgress = field(default_factory=JobProgress)
    result: SyncResult | None = None
    joined: bool = False  # set by enqueue when the request joined this existing job
    # set by enqueue when the joined job does not do all the request asks: the request runs as its own
    # job right after this one ends (queued by `finish`)
    follow_up: SyncRequest | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def ok(self) -> bool:
        return self.state == "done"

    def to_dict(self) -> dict[str, Any]:
        def iso(t: float | None) -> str | None:
            return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds") if t else None

        return {
            "job_id": self.job_id, "tenant_id": self.tenant_id, "tenant_name": self.tenant_name,
            "request": self.request.to_dict(), "trigger": self.trigger, "requested_by": self.requested_by,
            "priority": self.priority, "state": self.state, "created_at": iso(self.created_at),
            "started_at": iso(self.started_at), "finished_at": iso(self.finished_at),
            "heartbeat_at": iso(self.heartbeat_at),
            "owner": ({"pid": self.owner_pid, "host": self.owner_host, "pool": self.owner_id,
                       "label": self.owner_label} if self.owner_pid else None),
            "cancel_requested": self.cancel_requested, "error": self.error, "progress": self.progress.to_dict(),
            "result": self.result.to_dict() if self.result else None, "joined": self.joined,
            "follow_up": self.follow_up.to_dict() if self.follow_up else None,
        }


_COLS = ("job_id", "tenant_id", "tenant_name", "request", "trigger", "requested_by", "priority", "state",
         "created_at", "started_at", "finished_at", "heartbeat_at", "owner_pid", "owner_host", "owner_id",
         "owner_label", "cancel_requested", "error", "progress", "result", "follow_up")
_SELECT = f"SELECT {', '.join(_COLS)} FROM jobs"


def _job(row: tuple[Any, ...]) -> Job:
    d = dict(zip(_COLS, row))
    d["request"] = SyncRequest.from_json(d["request"])
    d["progress"] = JobProgress.from_dict(json.loads(d["progress"]) if d["progress"] else None)
    d["result"] = SyncResult.from_dict(json.loads(d["result"])) if d["result"] else None
    d["follow_up"] = SyncRequest.from_json(d["follow_up"]) if d["follow_up"] else None
    return Job(**d)


def path(settings: Settings) -> Path:
    return Path(settings.data_dir) / FILE


_ready: set[str] = set()
_ready_lock = threading.Lock()


def _create(p: Path) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 before SQLite opens it (its -wal and -shm files copy the mode): progress names
    # organisations and the results carry error texts. Never by opening an existing file: closing
    # that descriptor dropped every SQLite lock this process held on jobs.sqlite (other threads'
    # connections), letting another process switch it out of WAL mode under them (test).
    storage.create_private_file(p)


def _ensure(p: Path) -> None:
    key = str(p)
    if key not in _ready or not p.exists():
        with _ready_lock:
            with storage.translated(p):
                _create(p)
                con = open_wal(p, timeout=30)
                try:
                    con.executescript(SCHEMA)
                    if "follow_up" not in {r[1] for r in con.execute("PRAGMA table_info(jobs)")}:
                        with contextlib.suppress(sqlite3.OperationalError):  # another process added it
                            con.execute("ALTER TABLE jobs ADD COLUMN follow_up TEXT")
                finally:
                    con.close()
                release_held(p)  # a file that was replaced: hold the new one
                hold_open(p)
            _ready.add(key)


@contextlib.contextmanager
def _connect(settings: Settings, *, write: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection per use, closed after. (Kept-open connections were tried: a read left
    unfinished holds its old snapshot, so the app server read stale heartbeats and reaped live
    jobs. Hundreds of jobs are read in one query instead: `get_many`, `_count_active`.)"""
    p = path(settings)
    _ensure(p)
    con = open_wal(p, timeout=30, check_same_thread=False)
    try:
        with storage.translated(p):  # a damaged page, a full disk: one sentence naming jobs.sqlite
            yield from _use(con, write)
    finally:
        con.close()


def _use(con: sqlite3.Connection, write: bool) -> Iterator[sqlite3.Connection]:
    # WAL with synchronous=NORMAL: a commit survives the process dying, not the machine losing
    # power mid-write; progress is written twenty times a sync and each fsync cost more than the write.
    con.execute("PRAGMA synchronous=NORMAL")
    if not write:
        yield con
        return
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def check(settings: Settings) -> None:
    """Raise the StorageError sentence when jobs.sqlite is damaged (`status` and `jobs` ask: a page
    nobody has read yet would otherwise only fail the next sync)."""
    p = path(settings)
    if not p.exists():
        return
    with _connect(settings) as con:
        bad = [r[0] for r in con.execute("PRAGMA quick_check").fetchall() if r[0] != "ok"]
    if bad:
        damaged = sqlite3.DatabaseError("database disk image is malformed")
        raise storage.describe(damaged, p) or damaged


# -- reading -----------------------------------------------------------------------------------
def _existing(settings: Settings, job_id: str) -> Job:
    """A job just written: it is there unless jobs.sqlite was replaced meanwhile."""
    job = get(settings, job_id)
    if job is None:
        raise JobError(f"Job {job_id[:8]} is no longer in {path(settings)}: was the file replaced?")
    return job


def get(settings: Settings, job_id: str) -> Job | None:
    with _connect(settings) as con:
        row = con.execute(_SELECT + " WHERE job_id = ?", [job_id]).fetchone()
    return _job(row) if row else None


def get_many(settings: Settings, job_ids: list[str]) -> dict[str, Job]:
    """Several jobs in one read (a waiter following hundreds of jobs polls them all at once)."""
    out: dict[str, Job] = {}
    with _connect(settings) as con:
        for i in range(0, len(job_ids), 500):
            chunk = job_ids[i:i + 500]
            marks = ", ".join("?" * len(chunk))
            for row in con.execute(_SELECT + f" WHERE job_id IN ({marks})", chunk).fetchall():
                job = _job(row)
                out[job.job_id] = job
    return out


def _count_active(settings: Settings, job_ids: list[str]) -> int:
    n = 0
    with _connect(settings) as con:
        for i in range(0, len(job_ids), 500):
            chunk = job_ids[i:i + 500]
            n += con.execute(f"SELECT count(*) FROM jobs WHERE state IN ('queued', 'running') AND job_id IN "
                             f"({', '.join('?' * len(chunk))})", chunk).fetchone()[0]
    return n


def find(settings: Settings, prefix: str) -> Job:
    """A job by id or an unambiguous prefix of it (as `jobs` prints them)."""
    with _connect(settings) as con:
        rows = con.execute(_SELECT + " WHERE job_id LIKE ? LIMIT 2", [prefix.strip() + "%"]).fetchall()
    if not rows:
        raise JobError(f"No job {prefix!r}: list them with `python -m xero_core jobs --all`.")
    if len(rows) > 1:
        raise JobError(f"{prefix!r} matches several jobs: give more of the id (`python -m xero_core jobs --all`).")
    return _job(rows[0])


def list_jobs(settings: Settings, *, active_only: bool = False, tenant_id: str | None = None, limit: int = 50) -> list[Job]:
    """Newest first; queued and running ones first of all."""
    reap(settings)
    where, args = [], []
    if active_only:
        where.append("state IN ('queued', 'running')")
    if tenant_id:
        where.append("tenant_id = ?")
        args.append(tenant_id)
    sql = (_SELECT + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY state NOT IN ('queued', 'running'), created_at DESC LIMIT ?")
    with _connect(settings) as con:
        return [_job(r) for r in con.execute(sql, [*args, limit]).fetchall()]


def active_jobs(settings: Settings) -> list[Job]:
    return list_jobs(settings, active_only=True, limit=10_000)


# -- writing -----------------------------------------------------------------------------------
def enqueue(settings: Settings, request: SyncRequest, *, tenant_name: str | None = None) -> Job:
    """Queue a sync; returns at once. A tenant with a queued or running job of the same priority gets
    that job back (`job.joined` is True): one sync (and one history backfill) per tenant, whoever asks."""
    now = time.time()
    job_id = uuid.uuid4().hex
    # One transaction for all of it (each open of jobs.sqlite costs ~0.3-0.7 ms, and a daily run
    # enqueues every organisation).
    with _connect(settings, write=True) as con:
        reap(settings, tenant_id=request.tenant_id, con=con)
        row = con.execute(_SELECT + " WHERE tenant_id = ? AND priority = ? AND state IN ('queued', 'running')",
                          [request.tenant_id, request.priority]).fetchone()
        if row:
            job = _job(row)
            job.joined = True
            if not job.request.covers(request):
                _follow_up(con, job, request)
            return job
        con.execute(
            "INSERT INTO jobs (job_id, tenant_id, tenant_name, request, trigger, requested_by, priority, state, "
            "created_at, progress) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
            [job_id, request.tenant_id, tenant_name, request.to_json(), request.trigger, request.requested_by,
             request.priority, now, json.dumps({"message": "waiting for a worker"})])
        _trim(con)
        job = _job(con.execute(_SELECT + " WHERE job_id = ?", [job_id]).fetchone())
    notify()
    return job


def _follow_up(con: sqlite3.Connection, job: Job, request: SyncRequest) -> None:
    """`request` joined `job`, which does not do all it asks: a queued job is widened to cover it;
    a running one gets it as its follow-up, queued as its own job when it ends."""
    if job.state == "queued":
        wider = _merge(job.request, request)
        con.execute("UPDATE jobs SET request = ?, priority = ? WHERE job_id = ?",
                    [wider.to_json(), wider.priority, job.job_id])
        job.request, job.priority = wider, wider.priority
        return
    wanted = request if job.follow_up is None else _merge(job.follow_up, request)
    con.execute("UPDATE jobs SET follow_up = ? WHERE job_id = ?", [wanted.to_json(), job.job_id])
    job.follow_up = wanted


def _merge(a: SyncRequest, b: SyncRequest) -> SyncRequest:
    """One request doing what both ask (`b`'s trigger and asker); a single past week and a run of
    recent weeks cannot merge: `b` wins, `a` is the job already under way."""
    if a.covers(b):
        return a
    if b.covers(a):
        return b
    only = None if a.only is None or b.only is None else a.only | b.only
    if a.week_ending is None and b.week_ending is None:
        return SyncRequest(b.tenant_id, only=only, weeks=max(a.weeks or 0, b.weeks or 0) or None,
                           trigger=b.trigger, requested_by=b.requested_by, history=b.history,
                           skip_weeks=min(a.skip_weeks, b.skip_weeks))  # joins share a priority: both or neither
    return SyncRequest(b.tenant_id, only=only, weeks=b.weeks, week_ending=b.week_ending, trigger=b.trigger,
                       requested_by=b.requested_by)


def _trim(con: sqlite3.Connection) -> None:
    n = con.execute("SELECT count(*) FROM jobs WHERE state NOT IN ('queued', 'running')").fetchone()[0]
    if n > KEEP_FINISHED:
        con.execute("DELETE FROM jobs WHERE job_id IN (SELECT job_id FROM jobs WHERE state NOT IN ('queued', 'running') "
                    "ORDER BY created_at LIMIT ?)", [n - KEEP_FINISHED])


def claim(settings: Settings, owner: Owner, *, job_ids: Iterable[str] | None = None, allow_backfill: bool = True) -> Job | None:
    """Take the next queued job (daily before backfill, oldest first) for `owner`; None if none.
    A tenant's job waits while another of its jobs runs (one sync at a time per organisation)."""
    ids = list(job_ids) if job_ids is not None else None
    if ids is not None and not ids:
        return None
    where = "state = 'queued'"
    args: list[Any] = []
    if not allow_backfill:
        where += " AND priority = 0"
    if ids is not None:
        where += f" AND job_id IN ({', '.join('?' * len(ids))})"
        args += ids
    now = time.time()
    with _connect(settings, write=True) as con:
        row = con.execute(f"SELECT job_id FROM jobs q WHERE {where} AND NOT EXISTS (SELECT 1 FROM jobs r WHERE "
                          "r.tenant_id = q.tenant_id AND r.state = 'running') ORDER BY priority, created_at LIMIT 1",
                          args).fetchone()
        if not row:
            return None
        con.execute(
            "UPDATE jobs SET state = 'running', started_at = ?, heartbeat_at = ?, owner_pid = ?, owner_host = ?, "
            "owner_id = ?, owner_label = ?, progress = ? WHERE job_id = ?",
            [now, now, owner.pid, owner.host, owner.id, owner.label, json.dumps({"message": "starting"}), row[0]])
    return get(settings, row[0])


def heartbeat(settings: Settings, owner: Owner, job_ids: Iterable[str]) -> dict[str, str | None]:
    """Refresh the heartbeat of `owner`'s running jobs; returns their cancel requests."""
    ids = list(job_ids)
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    with _connect(settings, write=True) as con:
        con.execute(f"UPDATE jobs SET heartbeat_at = ? WHERE owner_id = ? AND state = 'running' AND job_id IN ({marks})",
                    [time.time(), owner.id, *ids])
        return dict(con.execute(f"SELECT job_id, cancel_requested FROM jobs WHERE job_id IN ({marks})", ids).fetchall())


def yield_wanted(settings: Settings, tenant_ids: Iterable[str]) -> set[str]:
    """The tenants among `tenant_ids` with a queued daily sync or Sync now: their running history
    backfill steps aside (`requeue`) so that one runs first."""
    ids = list(set(tenant_ids))
    if not ids:
        return set()
    with _connect(settings) as con:
        return {r[0] for r in con.execute(
            f"SELECT DISTINCT tenant_id FROM jobs WHERE state = 'queued' AND priority = 0 AND tenant_id IN "
            f"({', '.join('?' * len(ids))})", ids).fetchall()}


def history_pending(settings: Settings, tenant_id: str) -> bool:
    """Whether the tenant has a queued or running history backfill that is to fetch journals."""
    with _connect(settings) as con:
        rows = con.execute("SELECT request FROM jobs WHERE tenant_id = ? AND priority = 1 AND state IN "
                           "('queued', 'running')", [tenant_id]).fetchall()
    for (text,) in rows:
        req = SyncRequest.from_json(text)
        if req.only is None or "journals" in req.only:
            return True
    return False


def requeue(settings: Settings, job_id: str, *, message: str, progress: JobProgress | None = None) -> None:
    """A running job back to the queue (a history backfill stepping aside); it resumes from the
    tenant's cursors when claimed again."""
    prog = replace(progress or JobProgress(), status="queued", message=message, eta_seconds=None).to_dict()
    with _connect(settings, write=True) as con:
        con.execute("UPDATE jobs SET state = 'queued', owner_pid = NULL, owner_host = NULL, owner_id = NULL, "
                    "owner_label = NULL, heartbeat_at = NULL, progress = ? WHERE job_id = ? AND state = 'running'",
                    [json.dumps(prog, default=str), job_id])
    notify()


def set_progress(settings: Settings, job_id: str, progress: JobProgress) -> None:
    set_progress_many(settings, {job_id: progress})


def set_progress_many(settings: Settings, progress: dict[str, JobProgress]) -> None:
    """Several running jobs' progress in one write (a pool flushes its jobs' progress together)."""
    if not progress:
        return
    now = time.time()
    with _connect(settings, write=True) as con:
        con.executemany("UPDATE jobs SET progress = ?, heartbeat_at = ? WHERE job_id = ? AND state = 'running'",
                        [(json.dumps(p.to_dict(), default=str), now, jid) for jid, p in progress.items()])


def finish(settings: Settings, job_id: str, state: str, *, error: str | None = None, result: SyncResult | None = None,
           progress: JobProgress | None = None) -> None:
    assert state in FINAL, state
    with _connect(settings, write=True) as con:
        row = con.execute("SELECT tenant_id, tenant_name, follow_up FROM jobs WHERE job_id = ? AND state IN "
                          "('queued', 'running')", [job_id]).fetchone()
        con.execute(
            "UPDATE jobs SET state = ?, error = ?, result = ?, finished_at = ?, progress = coalesce(?, progress) "
            "WHERE job_id = ? AND state IN ('queued', 'running')",
            [state, error, json.dumps(result.to_dict(), default=str) if result is not None else None, time.time(),
             json.dumps(progress.to_dict(), default=str) if progress is not None else None, job_id])
        if row and row[2] and state != "cancelled":  # what a request that joined it asked beyond it
            req = SyncRequest.from_json(row[2])
            con.execute(
                "INSERT INTO jobs (job_id, tenant_id, tenant_name, request, trigger, requested_by, priority, state, "
                "created_at, progress) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
                [uuid.uuid4().hex, row[0], row[1], req.to_json(), req.trigger, req.requested_by, req.priority,
                 time.time(), json.dumps({"message": f"queued after job {job_id[:8]}, which did not cover it"})])
    notify()


def request_cancel(settings: Settings, job_id: str, *, by: str | None = None) -> Job:
    """Cancel a job: a queued one at once; a running one at its next page, chunk or step (its
    owner sees the flag with its heartbeat), keeping every chunk already written."""
    job = find(settings, job_id)
    if not job.active:
        raise JobError(f"Job {job.job_id[:8]} is already {job.state}; nothing to cancel.")
    who = f"cancelled by {by}" if by else "cancelled"
    with _connect(settings, write=True) as con:
        con.execute("UPDATE jobs SET state = 'cancelled', cancel_requested = ?, error = ?, finished_at = ? "
                    "WHERE job_id = ? AND state = 'queued'", [who, f"{who} before it started", time.time(), job.job_id])
        con.execute("UPDATE jobs SET cancel_requested = ? WHERE job_id = ? AND state = 'running'", [who, job.job_id])
    return _existing(settings, job.job_id)


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) is dead too
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b")")[-1].split()[0] != b"Z"
    except OSError:
        return True


def dead_owner_sentence(job: Job, *, stale_for: float | None = None) -> str:
    who = f"{job.owner_label or 'worker'} process {job.owner_pid} on {job.owner_host}"
    why = (f"has not been heard from for {stale_for / 60:.0f} min" if stale_for is not None
           else "stopped before it finished (killed, crashed or shut down)")
    return (f"The {who} running this sync {why}. Everything it saved is kept; the next sync of this "
            "organisation resumes from where it got to, without duplicating anything.")


def reap(settings: Settings, *, tenant_id: str | None = None, con: sqlite3.Connection | None = None) -> list[Job]:
    """Mark `interrupted` every running job whose owner is gone: on this host its pid is dead; on
    any host its heartbeat is older than STALE_SECONDS. Never a job of this very process: it is
    alive (it is asking), so an old heartbeat of its own means the clock jumped (a machine resumed
    from sleep, an NTP step) or its beat thread was starved, not that the job is gone.
    `con`: a write transaction of the caller's to do it in."""
    if con is not None:
        return _interrupt(con, _gone(_running(con, tenant_id)))
    with _connect(settings) as read:
        gone = _gone(_running(read, tenant_id))
    if not gone:
        return []
    with _connect(settings, write=True) as write:
        return _interrupt(write, gone)


def _running(con: sqlite3.Connection, tenant_id: str | None) -> list[tuple[Any, ...]]:
    return con.execute(_SELECT + " WHERE state = 'running'" + (" AND tenant_id = ?" if tenant_id else ""),
                       [tenant_id] if tenant_id else []).fetchall()


def _gone(rows: list[tuple[Any, ...]]) -> list[tuple[Job, str]]:
    here, me = socket.gethostname(), os.getpid()
    now = time.time()
    gone = []
    for job in map(_job, rows):
        if job.owner_host == here and job.owner_pid == me:
            continue
        age = now - (job.heartbeat_at or job.started_at or now)
        if job.owner_host == here and not _pid_alive(job.owner_pid):
            gone.append((job, dead_owner_sentence(job)))
        elif age > STALE_SECONDS:
            gone.append((job, dead_owner_sentence(job, stale_for=age)))
    return gone


def _interrupt(con: sqlite3.Connection, gone: list[tuple[Job, str]]) -> list[Job]:
    now = time.time()
    for job, sentence in gone:
        prog = replace(job.progress, message="interrupted").to_dict()
        con.execute("UPDATE jobs SET state = 'interrupted', error = ?, finished_at = ?, progress = ? "
                    "WHERE job_id = ? AND state = 'running' AND coalesce(heartbeat_at, 0) = coalesce(?, 0)",
                    [sentence, now, json.dumps(prog, default=str), job.job_id, job.heartbeat_at])
    out = []
    for job, _ in gone:
        row = con.execute(_SELECT + " WHERE job_id = ?", [job.job_id]).fetchone()
        if row:
            out.append(_job(row))
    return out


def wait(settings: Settings, job_ids: Iterable[str], *, timeout: float | None = None, poll: float = 0.5,
         on_change: Callable[[Job], None] | None = None, stop: Stoppable | None = None) -> list[Job]:
    """Until every job is finished (or `timeout`, or `stop` set); `on_change(job)` sees each new state
    or progress. Jobs run by other processes are followed through the file."""
    ids = list(job_ids)
    seen: dict[str, str] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    event = stop or threading.Event()
    while True:
        reap(settings)
        if on_change is None and ids and _count_active(settings, ids) and not event.is_set() and \
                (deadline is None or time.monotonic() < deadline):
            # Nobody follows the progress (the scheduler's cycle): count, don't read, hundreds of jobs.
            _changed.clear()
            _changed.wait(poll)
            continue
        found = get_many(settings, ids)
        jobs_now = [found.get(j) for j in ids]
        for j in jobs_now:
            if j is None:
                continue
            sig = json.dumps([j.state, j.progress.to_dict()], sort_keys=True, default=str)
            if seen.get(j.job_id) != sig:
                seen[j.job_id] = sig
                if on_change:
                    on_change(j)
        if all(j is None or not j.active for j in jobs_now):
            return [j for j in jobs_now if j is not None]
        if deadline is not None and time.monotonic() >= deadline:
            return [j for j in jobs_now if j is not None]
        if event.is_set():
            return [j for j in jobs_now if j is not None]
        _changed.clear()  # a wake-up lost to another waiter's clear costs at most one poll
        _changed.wait(poll)


# In-process wake-ups: a pool sleeping between polls wakes as soon as this process enqueues.
_changed = threading.Event()
_listeners: list[threading.Event] = []


def notify() -> None:
    _changed.set()
    for ev in list(_listeners):
        ev.set()
