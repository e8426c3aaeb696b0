"""Worker pools: threads that claim queued jobs and run them through `run_sync` (`Engine.pool()`
builds one; `Engine.submit` queues the jobs).

Who runs jobs
- the scheduler process (`scheduler.py`) runs a pool for its whole life: its own daily cycles and
  whatever the app or the CLI queued;
- `scheduler.py --once` and `python -m xero_core sync` run a pool for the jobs they queued (or
  joined while still queued), until those end;
- the app server, when no scheduler is running, runs one in a background thread of the Streamlit
  server (`ensure_background_pool`), outside any page's script run: leaving the page does not stop it.

Each tenant stays within its own 60 calls a minute and all within the app-wide 10,000 through the
shared limiter every client uses (xero_core.ratelimit). A failing job is recorded and the worker
takes the next: a failing tenant blocks nothing.

Figures first: a job that would fetch report weeks older than the latest few, or a journal history
never fetched, runs the recent part and queues the rest as the tenant's history backfill
(pipeline.plan.split_history). A running backfill steps aside (back to the queue, at its next page)
when a daily sync or Sync now of its tenant is queued, and resumes from the cursors after it.

Daily syncs and history backfills run on different threads:
- XERO_SYNC_WORKERS threads (default 8) claim jobs, daily syncs first. A daily sync is short and
  mostly CPU and round trips; the claiming thread runs it.
- A backfill is paced by Xero's 60 calls a minute per organisation: 26 weeks of reports take more
  than a minute whatever else runs. A practice's backfills finish at Xero's app-wide floor when they
  all run at once, each taking a part of every app-wide minute: admitted a couple of hundred at a
  time, those that start as others end find the minute spent, need a window more, and the run ends
  a minute late (500 organisations, 66 calls each: 4 virtual minutes against the floor's 3, with
  200 at once; 3 with 500; bench/tenants.py, docs/scaling.md). A claimed backfill gets
  a thread of its own, up to XERO_BACKFILL_WORKERS (default 500) at once, and the claiming thread
  goes straight back to the queue: a backfill never holds a thread daily syncs need. Those threads
  mostly wait on the limiter; memory is what bounds them (one page of data each, ~2.5 MB for a
  small organisation: 500 at once add ~1.2 GB; a smaller machine sets fewer and waits longer).
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import date
from typing import Any, Callable, Iterable

from .. import snapshot
from ..clock import Clock
from ..errors import LedgerlinkError
from ..redaction import redact
from ..settings import Settings
from ..storage import as_storage_error
from . import jobs as J
from .progress import JobProgress, ProgressEvent, Tracker
from .request import SyncRequest
from .run import run_sync

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 8
DEFAULT_BACKFILL_WORKERS = 500
POLL_SECONDS = 1.0  # how often an idle pool looks for jobs queued by other processes
# How often a pool writes its running jobs' latest progress, all in one transaction. A daily sync
# reports some twenty step changes in a fraction of a second; written one by one they cost more
# CPU than the sync's own DuckDB writes (issue 15's per-organisation budget).
PROGRESS_FLUSH_SECONDS = 1.0


def workers_setting(settings: Settings) -> int:
    """XERO_SYNC_WORKERS (default 8, checked by load_settings): threads per pool."""
    return int(getattr(settings, "sync_workers", None) or DEFAULT_WORKERS)


def backfill_workers_setting(settings: Settings) -> int:
    """XERO_BACKFILL_WORKERS (default 500, checked by load_settings): backfills running at once per pool."""
    return int(getattr(settings, "backfill_workers", None) or DEFAULT_BACKFILL_WORKERS)


class WorkerPool:
    """N threads claiming jobs from the jobs file. `job_ids` restricts it to those jobs (a CLI run,
    a cron cycle); otherwise it takes any queued job until stopped."""

    def __init__(self, settings: Settings, *, workers: int | None = None, label: str = "worker",
                 job_ids: Iterable[str] | None = None, transport: Any=None, clock: Clock | None = None,
                 today: date | None = None, echo: Callable[[ProgressEvent], None] | None = None,
                 poll: float = POLL_SECONDS, heartbeat: float = J.HEARTBEAT_SECONDS,
                 claimable: Callable[[], Iterable[str] | None] | None = None,
                 backfill_workers: int | None = None):
        """`claimable()`, when given, says which queued jobs this pool may take now (None: any);
        the app server's pool uses it to leave jobs to a running scheduler."""
        self.settings = settings
        self.claimable = claimable
        self.workers = workers or workers_setting(settings)
        self.backfill_workers = backfill_workers or backfill_workers_setting(settings)
        self._backfill_threads: set[threading.Thread] = set()
        self.owner = J.Owner(label=label)
        self.job_ids = set(job_ids) if job_ids is not None else None
        self.transport, self.clock, self.today, self.echo = transport, clock, today, echo
        self.poll, self.heartbeat_seconds = poll, heartbeat
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._stop_reason: str | None = None
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, bool] = {}  # job id -> is a backfill
        self._cancel: dict[str, str | None] = {}
        self._yield: dict[str, str] = {}  # running backfill -> why it steps aside
        self._tenants: dict[str, str] = {}  # running job -> tenant
        self.spawned: dict[str, str] = {}  # job id -> the history backfill job it queued
        self._pending: dict[str, JobProgress] = {}  # job id -> progress not yet in the jobs file
        self._write_lock = threading.Lock()  # a flush and an immediate write never cross
        self.finished: list[str] = []
        # The readers' copy (xero_core/snapshot.py): when a batch of jobs ends, and at most once a
        # minute while jobs keep running, never once per job.
        self._publisher = snapshot.Debounced(settings)
        # Jobs whose end could not be written to jobs.sqlite (a full disk): id -> the sentence. A
        # waiter would otherwise wait for a state change that can never be recorded.
        self.unrecorded: dict[str, str] = {}
        self._unrecorded_event = threading.Event()
        self._last_problem: str | None = None

    # -- control ----------------------------------------------------------------------------
    def start(self) -> "WorkerPool":
        if self._threads:
            return self
        J._listeners.append(self._wake)
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, name=f"sync-{self.owner.label}-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        hb = threading.Thread(target=self._beat, name=f"sync-{self.owner.label}-heartbeat", daemon=True)
        hb.start()
        self._threads.append(hb)
        return self

    def add(self, job_ids: Iterable[str]) -> None:
        if self.job_ids is not None:
            with self._lock:
                self.job_ids.update(job_ids)
        self._wake.set()

    def stop(self, reason: str | None = None, *, wait: bool = True, timeout: float | None = None) -> None:
        """Claim nothing more; running jobs end after their current step (then `interrupted`, with
        `reason`, resumed by the next run) and queued ones stay queued for the next pool."""
        self._stop_reason = reason or f"the {self.owner.label} process stopped"
        self._stopping.set()
        self._wake.set()
        if wait:
            with self._lock:
                backfills = list(self._backfill_threads)
            for t in self._threads + backfills:
                t.join(timeout)
        if self._wake in J._listeners:
            J._listeners.remove(self._wake)

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._running)

    def run_until_done(self, job_ids: Iterable[str], *, on_change: Callable[[J.Job], None] | None = None,
                       stop: threading.Event | None = None) -> list[J.Job]:
        """Start (if needed), then return once every job in `job_ids` has ended, whoever ran it, and
        the history backfills this pool's runs of them queued (`history_of`); returns `job_ids`' jobs."""
        ids = list(job_ids)
        self.add(ids)
        self.start()
        either = _Either(stop, self._unrecorded_event)
        while True:
            ended = J.wait(self.settings, ids, on_change=on_change, stop=either, poll=min(self.poll, 0.5))
            if (stop is not None and stop.is_set()) or not self._unrecorded_event.is_set():
                break
            self._unrecorded_event.clear()  # cleared before looking: a later one sets it again
            found = J.get_many(self.settings, ids)
            ended = [found[i] for i in ids if i in found]
            if not any(j.active and j.job_id not in self.unrecorded for j in ended):
                break  # every job ended, recorded or not; else wait for the others
        for job in ended:
            if job.job_id in self.unrecorded and job.active:
                job.state, job.error = "failed", self.unrecorded[job.job_id]
        followed = set(ids)
        while not (stop is not None and stop.is_set()):  # the history backfills those runs queued
            more = [h for h in (self.spawned.get(i) for i in list(followed)) if h and h not in followed]
            if not more:
                break
            followed.update(more)
            J.wait(self.settings, more, on_change=on_change, stop=stop, poll=min(self.poll, 0.5))
        # The caller (CLI, scheduler) reports these jobs next: their data is in the readers' copy by then.
        snapshot.publish_if_changed(self.settings)
        return ended

    def history_of(self, job_id: str) -> str | None:
        """The history backfill job this pool's run of `job_id` queued, if any."""
        return self.spawned.get(job_id)

    # -- threads ----------------------------------------------------------------------------
    def _claim(self) -> J.Job | None:
        with self._lock:
            ids = None if self.job_ids is None else [i for i in self.job_ids if i not in self._running]
            backfills = sum(self._running.values())
        if self.claimable is not None:
            allowed = self.claimable()
            if allowed is not None:
                allowed = set(allowed)
                ids = [i for i in (allowed if ids is None else ids) if i in allowed]
        job = J.claim(self.settings, self.owner, job_ids=ids, allow_backfill=backfills < self.backfill_workers)
        if job is not None:
            with self._lock:
                self._running[job.job_id] = job.request.is_backfill
                self._tenants[job.job_id] = job.tenant_id
                self._cancel[job.job_id] = None
        return job

    def _problem(self, what: str, exc: BaseException) -> None:
        """A disk fault is its sentence, logged once while it lasts; anything else keeps its traceback."""
        se = as_storage_error(exc)
        if se is None and not isinstance(exc, LedgerlinkError):
            log.exception("%s", what)
            return
        sentence = str(se or exc)
        if sentence != self._last_problem:
            self._last_problem = sentence
            log.error("%s: %s", what, sentence)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self._claim()
            except Exception as exc:  # last-resort boundary: a claiming thread must outlive any fault; said once
                self._problem("could not claim a sync job; trying again", exc)
                job = None
            if job is None:
                self._wake.wait(self.poll)
                self._wake.clear()
                continue
            if job.request.is_backfill:  # its own thread: this one goes back to the queue at once
                t = threading.Thread(target=self._run_and_release, args=(job,), daemon=True,
                                     name=f"sync-{self.owner.label}-backfill-{job.job_id[:8]}")
                with self._lock:
                    self._backfill_threads.add(t)
                t.start()
                continue
            self._run_and_release(job)

    def _run_and_release(self, job: J.Job) -> None:
        try:
            self._run(job)
        except Exception as exc:  # its end could not be recorded (jobs.sqlite full or damaged)
            se = as_storage_error(exc)
            self.unrecorded[job.job_id] = str(se or f"{type(exc).__name__}: {exc}")
            self._problem(f"sync job {job.job_id[:8]} ended but could not be recorded", exc)
            self._echo_end(job, "failed", self.unrecorded[job.job_id])
            self._unrecorded_event.set()
        finally:
            with self._lock:
                self._pending.pop(job.job_id, None)
                self._running.pop(job.job_id, None)
                self._cancel.pop(job.job_id, None)
                self._yield.pop(job.job_id, None)
                self._tenants.pop(job.job_id, None)
                self.finished.append(job.job_id)
                self._backfill_threads.discard(threading.current_thread())
            self._publisher.job_ended()
            self._wake.set()  # a backfill slot may be free again

    def _write_progress(self, job_id: str, progress: JobProgress) -> None:
        """The Tracker's writer: progress waits for the next flush, except "waiting for the
        database", which the admin needs to see at once (nothing else moves until it clears)."""
        if progress.status != "waiting" or "database" not in (progress.message or ""):
            with self._lock:
                self._pending[job_id] = progress
            return
        with self._write_lock:
            with self._lock:
                self._pending.pop(job_id, None)
            J.set_progress(self.settings, job_id, progress)

    def _flush_progress(self) -> None:
        with self._write_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
            try:
                J.set_progress_many(self.settings, pending)
            except Exception as exc:  # progress is best effort; the next flush carries newer progress
                log.warning("could not write sync progress: %s", exc)

    def _beat(self) -> None:
        last_reap = 0.0
        last_beat = time.monotonic()
        while not self._stopping.wait(min(self.heartbeat_seconds, PROGRESS_FLUSH_SECONDS)):
            self._flush_progress()
            self._publisher.tick(self.busy)
            self._check_yields()
            if time.monotonic() - last_beat < self.heartbeat_seconds:
                continue
            last_beat = time.monotonic()
            with self._lock:
                ids = list(self._running)
            try:
                flags = J.heartbeat(self.settings, self.owner, ids)
                with self._lock:
                    for jid, flag in flags.items():
                        if jid in self._cancel:
                            self._cancel[jid] = flag
                if time.monotonic() - last_reap > 30:
                    last_reap = time.monotonic()
                    J.reap(self.settings)
            except Exception as exc:  # last-resort boundary: the heartbeat thread must live, or the jobs look dead
                log.warning("sync job heartbeat failed: %s", exc)

    def _check_yields(self) -> None:
        """Running backfills whose tenant has a daily sync or Sync now queued step aside."""
        with self._lock:
            backfills = {jid: self._tenants.get(jid) for jid, b in self._running.items() if b and jid not in self._yield}
        if not backfills:
            return
        try:
            wanted = J.yield_wanted(self.settings, [t for t in backfills.values() if t])
        except Exception as exc:  # last-resort boundary (the heartbeat thread); the next beat asks again
            log.warning("could not look for syncs waiting behind a backfill: %s", exc)
            return
        with self._lock:
            for jid, tenant in backfills.items():
                if tenant in wanted:
                    self._yield[jid] = "paused for a sync of the same organisation; resumes after it"

    def _queue_history(self, job: J.Job, request: SyncRequest) -> str:
        hist = J.enqueue(self.settings, request, tenant_name=job.tenant_name)
        self.spawned[job.job_id] = hist.job_id
        self.add([hist.job_id])
        return hist.job_id

    def _run(self, job: J.Job) -> None:
        jid = job.job_id
        settings = self.settings
        later: list[Any] = []  # the history backfill run_sync split off: queued once these figures are in
        tracker = Tracker(lambda p: self._write_progress(jid, p), echo=self.echo)

        def cancel() -> str | None:
            return self._cancel.get(jid) or self._yield.get(jid)

        def stop() -> str | None:
            return self._stop_reason if self._stopping.is_set() else None

        error: str | None
        try:
            result = run_sync(settings, job.request, transport=self.transport, clock=self.clock,
                              progress=tracker, today=self.today, cancel=cancel, stop=stop,
                              on_history=later.append,
                              history_pending=lambda: J.history_pending(settings, job.tenant_id))
        except Exception as exc:  # the job fails with a sentence; the worker takes the next one
            se = as_storage_error(exc)
            if se is not None or isinstance(exc, LedgerlinkError):  # a sentence says what and what to do
                log.error("sync job %s for tenant %s failed: %s", jid, job.tenant_id, se or exc)
                error = redact(str(se or exc))[:1000]
            else:
                log.exception("sync job %s for tenant %s failed", jid, job.tenant_id)
                error = redact(f"The sync stopped on an unexpected error: {type(exc).__name__}: {exc}")[:1000]
            J.finish(settings, jid, "failed", error=error)
            self._echo_end(job, "failed", error)
            return
        if result.cancelled and self._yield.get(jid) and not self._cancel.get(jid) and not stop():
            J.requeue(settings, jid, message=self._yield[jid], progress=tracker.end("queued", self._yield[jid]))
            self._echo(ProgressEvent("waiting", job.tenant_id, message=self._yield[jid]))
            return
        if result.cancelled and cancel():
            state, error = "cancelled", f"{cancel()}; every chunk already saved is kept"
        elif result.cancelled:
            state = "interrupted"
            error = (f"{result.cancelled} before this sync finished; the next sync of this organisation resumes "
                     "from where it got to")
        elif result.ok:
            state, error = "done", None
            if later:  # the figures are in: the history follows (not after a failure: it would fail too)
                try:
                    result.history_job = self._queue_history(job, later[0])
                except Exception as exc:  # last-resort boundary: the figures are in and the job is done; only
                    # its follow-up is lost, so it is logged, not failed
                    log.warning("could not queue the history backfill of %s: %s", job.tenant_id, exc)
        else:
            state, error = "failed", result.first_problem() or "a step failed: see the steps"
        J.finish(settings, jid, state, error=error, result=result, progress=tracker.end(state, error or "finished"))
        self._echo_end(job, state, error)
        if self.spawned.get(jid) and self.echo:
            try:
                hist = J.get(settings, self.spawned[jid])
            except Exception:  # last-resort boundary: the job is recorded; only the display's note is lost
                return
            if hist is None:
                return
            self._echo(ProgressEvent("waiting", job.tenant_id,
                                     message=f"figures ready; {hist.request.describe()} follows as job "
                                             f"{hist.job_id[:8]}, at a lower priority"))

    def _echo(self, ev: ProgressEvent) -> None:
        if self.echo:
            try:
                self.echo(ev)
            except Exception:  # last-resort boundary: a broken display never fails the job
                pass

    def _echo_end(self, job: J.Job, state: str, error: str | None) -> None:
        self._echo(ProgressEvent(state, job.tenant_id, message=error, job_ended=True))


class _Either:
    """Set when either event is (J.wait only asks `is_set()`)."""

    def __init__(self, a: threading.Event | None, b: threading.Event):
        self.a, self.b = a, b

    def is_set(self) -> bool:
        return (self.a is not None and self.a.is_set()) or self.b.is_set()


# -- the app server's pool -----------------------------------------------------------------------
_pools: dict[str, WorkerPool] = {}
_pools_lock = threading.Lock()


def ensure_background_pool(settings: Settings, **kw: Any) -> WorkerPool:
    """One pool per process and data dir, started on first call (idempotent): the app server runs
    queued jobs in background threads, outside any page's script run."""
    key = str(settings.data_dir)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None or pool._stopping.is_set():
            pool = _pools[key] = WorkerPool(settings, label=kw.pop("label", "app"), **kw).start()
        return pool


def stop_background_pools(reason: str | None = None) -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for p in pools:
        p.stop(reason)


