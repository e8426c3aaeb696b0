"""The scheduler's loop: cycles, catch-up, retries, the pause flag, signals.

In three parts: its time arithmetic (xero_core/schedule_time.py, pure), its state file
(xero_core/scheduler_state.py, what the admin app reads) and this loop. `scheduler.py`
(repository root) is the thin entry point. There is one path: the loop runs an `Engine`'s jobs, and
tests give it `Engine(settings, transport=<the fake Xero's>, clock=<pinned>)`, so what they drive
is what production runs. The names of the other two parts are importable from here as before.

What runs
    Every day at `settings.sync_time` in `settings.timezone` (default 06:00 Australia/Sydney) a
    *cycle*: one pipeline job per connected tenant (`Engine.enqueue`, trigger
    "scheduler"), run concurrently by a worker pool (`pipeline.worker.WorkerPool`, XERO_SYNC_WORKERS
    threads); the cycle waits for all of them. The service (`run_forever`) keeps one pool for its
    whole life, which also runs jobs the app and the CLI queue; `run_once` (cron) runs a pool for
    its cycle's jobs only, and its state file says "running" (mode "once") meanwhile.
    `settings.sync_extra` (XERO_SYNC_EXTRA, e.g. "invoices=60m,contacts=30m") adds interval jobs
    that sync only those steps.

One sync per tenant
    A tenant has at most one queued or running job (jobs.sqlite); a cycle joins one that is already
    there. A tenant held by a sync started outside the jobs (`sync.locks.tenant_lock`) is *busy*.

State (for the admin app)
    A small JSON file, `<data_dir>/scheduler_state.json`, written atomically (never DuckDB: the
    database may be locked by a sync). `read_state(settings)` returns it with `running` derived
    from the heartbeat's age and whether the pid is alive; `set_paused(settings, True|False)`
    pauses or resumes a running scheduler without a restart (the flag is read when a job comes
    due, so a paused scheduler keeps its heartbeat but runs nothing).

Catch-up
    On start, if the most recent scheduled daily time passed while the scheduler was down (the
    last daily run recorded in the state is older than it), one catch-up cycle runs at once:
    one, however many days were missed. A first start ever (no record) does not catch up.

Failures and signals
    Each step and each job is caught on its own (schedule's `run_pending` would die on an
    exception): the error is logged, a `sync_log` row with status `failed` is written, and the
    loop goes on. A daily (or catch-up) run with failed tenants is retried for those tenants the
    same day with backoff (`retry_delay`: 5, 10, 20, 40 min, then hourly) while the next daily run
    is further away; the state file shows `next_retry`. SIGTERM/SIGINT let the current step finish, skip the rest of the cycle, and
    exit 0. An interrupted daily cycle does not count as run, so the next start catches up.

Time
    `schedule` drives the loop (`run_pending`, `idle_seconds`, interval jobs). The daily job's next
    run is computed here with zoneinfo (`daily_slot`), because schedule 1.2 misplaces local times
    that fall in a DST gap (02:30 in Sydney fires at 01:30 the day after the October change).
    A time in the gap runs at the same offset after it (02:30 -> 03:30); a time that occurs
    twice (April) runs once, at the first occurrence.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo

import schedule

from .clock import SYSTEM_CLOCK, Clock
from .connections import list_connections
from .engine import Engine
from .pipeline import jobs as J
from .pipeline.plan import parse_only
from .pipeline.request import SyncRequest
from .pipeline.result import StepResult
from .pipeline.worker import WorkerPool
from .schedule_time import (  # noqa: F401  (the loop's names, importable from here as before)
    CHASE_TICK_MINUTES,
    MIN_EXTRA_MINUTES,
    RETRY_FIRST_SECONDS,
    RETRY_MAX_SECONDS,
    ExtraInterval,
    SchedulerAlreadyRunning,
    SchedulerError,
    catch_up_due,
    daily_slot,
    last_daily_slot,
    next_daily_run,
    parse_extra,
    parse_sync_time,
    retry_delay,
)
from .scheduler_state import (  # noqa: F401
    STALE_AFTER_SECONDS,
    STATE_FILE,
    _iso,
    _load,
    _parse_iso,
    read_state,
    set_paused,
    state_path,
    update_state,
)

__all__ = [  # the loop's own names, and the other two parts' that callers import from here
    "CHASE_TICK_MINUTES", "HEARTBEAT_SECONDS", "MAX_WAIT_SECONDS", "MIN_EXTRA_MINUTES", "RETRY_FIRST_SECONDS",
    "RETRY_MAX_SECONDS", "STALE_AFTER_SECONDS", "STATE_FILE", "CycleReport", "ExtraInterval", "Retry", "Scheduler",
    "SchedulerAlreadyRunning", "SchedulerError", "StepReport", "catch_up_due", "daily_slot", "last_daily_slot",
    "next_daily_run", "parse_extra", "parse_sync_time", "read_state", "retry_delay", "set_paused", "state_path",
    "update_state",
]

log = logging.getLogger(__name__)

PROCESS_LOCK_FILE = "scheduler.lock"
HEARTBEAT_SECONDS = 30.0  # how often a live scheduler rewrites its heartbeat
MAX_WAIT_SECONDS = 30.0  # the loop re-checks at least this often (clock jumps, heartbeat)
TRIGGER = "scheduler"
STOPPED = "the scheduler was stopped (SIGTERM or Ctrl-C)"


UNREACHABLE = "Xero unreachable"


def _names(names: list[str], most: int = 5) -> str:
    """`a, b, c and 12 more`: a run's list of organisations on one line."""
    names = [n.removeprefix("sync ") for n in names]
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


# ---------------------------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------------------------


@dataclass
class StepReport:
    step: str
    tenant_id: str | None
    status: str  # ok | failed | busy | skipped
    detail: str = ""
    started_at: str | None = None
    finished_at: str | None = None


@dataclass
class CycleReport:
    kind: str  # daily | catch-up | retry | once | extra:<resources>
    started_at: datetime
    finished_at: datetime | None = None
    steps: list[StepReport] = field(default_factory=list)
    interrupted: bool = False
    skipped_reason: str | None = None
    said: list[str] = field(default_factory=list)  # Xero unreachable: its sentence, once per run
    jobs: list[J.Job] = field(default_factory=list)  # the finished job of each organisation

    @property
    def job_steps(self) -> list[StepResult]:
        """Every step every job of the cycle ran (its SyncResult's steps)."""
        return [st for j in self.jobs if j.result for st in j.result.steps]

    @property
    def failed_steps(self) -> int:
        return sum(st.status in ("failed", "partial") for st in self.job_steps)

    @property
    def ok(self) -> bool:
        return not any(s.status == "failed" for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ok": self.ok,
            "interrupted": self.interrupted,
            "skipped_reason": self.skipped_reason,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "failed": sum(s.status == "failed" for s in self.steps),
            "organisations": len(self.steps),
            "steps_run": len(self.job_steps),
            "steps_failed": self.failed_steps,
            "unreachable": self.said[0] if self.said else None,
            "steps": [s.__dict__ for s in self.steps],
        }


@dataclass
class Retry:
    """A failed daily run's next try: when, which attempt, and its tenants (None: every tenant)."""

    due: datetime
    attempt: int
    tenants: list[str] | None


def _naive_local(dt: datetime) -> datetime:
    """schedule compares naive datetimes in the machine's local time."""
    return dt.astimezone().replace(tzinfo=None)


class Scheduler:
    """The scheduler loop over an `Engine`. `run_forever()` for the service, `run_once()` for cron.

    The engine's transport and clock are the scheduler's (production: the network and the
    system's; tests: the fake Xero's transport and a pinned clock, so they drive this same path).
    `schedule` reads the computer's clock itself, so tests of the loop pin that with time-machine
    and give the engine a clock reading the same time. `wait(seconds)` is the interruptible pause
    between ticks (default: the stop event's wait, so a signal ends it at once). `workers`: threads
    in the worker pool (default XERO_SYNC_WORKERS). `chase_minutes`: how often the service looks for
    chase reminders that came due between cycles (None: only the daily cycle sends them; a test of
    days of daily runs leaves the tick out, as each look opens the database).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        workers: int | None = None,
        wait: Callable[[float], object] | None = None,
        heartbeat_seconds: float | None = HEARTBEAT_SECONDS,
        max_wait: float = MAX_WAIT_SECONDS,
        chase_minutes: int | None = CHASE_TICK_MINUTES,
    ) -> None:
        self.engine = engine
        self.settings = settings = engine.settings
        self.clock: Clock = engine.clock or SYSTEM_CLOCK
        self.workers = workers
        self.chase_minutes = chase_minutes
        self.extras = parse_extra(settings.sync_extra)
        self._check_extra_resources()
        parse_sync_time(settings.sync_time)
        ZoneInfo(settings.timezone)
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self.heartbeat_seconds = heartbeat_seconds
        self.max_wait = max_wait
        self._sched: schedule.Scheduler | None = None
        self._daily_job: schedule.Job | None = None
        self._chase_job: schedule.Job | None = None
        self._last_heartbeat: datetime | None = None
        self.cycles: list[CycleReport] = []
        self._pool: WorkerPool | None = None  # the service's worker pool, started by run_forever
        self._cycle_pool: WorkerPool | None = None  # --once: the pool running this cycle's jobs
        self._retry: Retry | None = None  # a failed daily run's next try

    def _check_extra_resources(self) -> None:
        for e in self.extras:
            try:
                parse_only(e.resources)
            except ValueError as exc:
                raise SchedulerError(f"XERO_SYNC_EXTRA: {exc}") from None

    # -- control -------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the loop to stop after the current step (signal-handler safe: events only)."""
        self._stop.set()
        # The pool's jobs check its own flag between steps: set it now, not when the cycle's wait
        # next looks (up to half a second later, time for the next step to start).
        for pool in (self._pool, self._cycle_pool):
            if pool is not None:
                pool.stop(STOPPED, wait=False)

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT finish the current step, then the loop exits cleanly."""
        import signal

        def _handler(signum: int, _frame: FrameType | None) -> None:
            self.request_stop()  # first: once the line below is out, the pool must already know
            log.info("received %s: finishing the current step, then stopping", signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)

    # -- schedule ------------------------------------------------------------------------------

    def build(self) -> None:
        s = self.settings
        self._sched = schedule.Scheduler()
        self._daily_job = self._sched.every().day.at(s.sync_time, s.timezone).do(self._job, "daily")
        self._set_daily_next_run()
        for extra in self.extras:
            self._sched.every(extra.seconds).seconds.do(self._job, "extra:" + "+".join(extra.resources), extra.resources)
        # The daily cycle sends the reminders due then; those held by quiet hours or a retry time
        # go when they come due, at the next tick (no Xero call, one short DuckDB write).
        if self.chase_minutes:
            self._chase_job = self._sched.every(self.chase_minutes).minutes.do(self._chase_tick)

    def _built(self) -> tuple[schedule.Scheduler, schedule.Job]:
        if self._sched is None or self._daily_job is None:
            raise RuntimeError("the scheduler's jobs are not built yet: call build() first")
        return self._sched, self._daily_job

    def _chase_tick(self) -> None:
        if self._paused():
            return
        try:
            r = self.engine.chase()  # the engine's clock decides sending hours
        except Exception:
            log.exception("sending chase reminders failed; the next tick tries again")
            return
        if r.sent or r.failed or r.bounced or r.unconfirmed or r.error:
            log.log(logging.WARNING if r.error or r.failed else logging.INFO, "chase reminders: %s", r.summary())

    def _set_daily_next_run(self) -> None:
        """Replace schedule's own next run (see the module docstring: DST gaps) with ours.

        Only at start and right after the daily job ran: touching it otherwise could push a slot
        that came due during a long interval job to tomorrow."""
        _, daily = self._built()
        nxt = next_daily_run(self.clock.now(), self.settings.sync_time, self.settings.timezone)
        daily.next_run = _naive_local(nxt)

    def next_runs(self) -> tuple[datetime | None, datetime | None]:
        """(next run of any job, next daily run), aware UTC."""
        if self._sched is None or self._daily_job is None or self._daily_job.next_run is None:
            return None, None
        daily = self._daily_job.next_run.astimezone(timezone.utc)
        runs = [j.next_run for j in self._sched.jobs if j is not self._chase_job and j.next_run]
        nxt = min(runs).astimezone(timezone.utc) if runs else daily
        if self._retry is not None:
            nxt = min(nxt, self._retry.due)
        return nxt, daily

    def tick(self) -> None:
        """Run whatever is due, then refresh the heartbeat and next run in the state file."""
        sched, daily = self._built()
        daily_ran_before = daily.last_run
        try:
            sched.run_pending()
        except Exception:  # _job catches everything; this guards schedule itself
            log.exception("the scheduler's run_pending failed; carrying on")
        if daily.last_run is not daily_ran_before:
            self._set_daily_next_run()
        if self._retry is not None and self.clock.now() >= self._retry.due and not self.stop_requested:
            self._job("retry", tenants=self._retry.tenants)
        self._heartbeat(force=False)

    def wait_seconds(self) -> float:
        sched, _ = self._built()
        idle = sched.idle_seconds
        if self._retry is not None:
            until = (self._retry.due - self.clock.now()).total_seconds()
            idle = until if idle is None else min(idle, until)
        if idle is None:
            return self.max_wait
        return max(0.0, min(idle, self.max_wait))

    # -- state ---------------------------------------------------------------------------------

    def _safe_update(self, **changes: Any) -> None:
        try:
            update_state(self.settings, **changes)
        except Exception as exc:  # a full disk must not stop the syncs
            log.warning("could not write the scheduler state file: %s", exc)

    def _heartbeat(self, force: bool, **extra: Any) -> None:
        if self._sched is None:  # --once: report results, but the heartbeat belongs to the service
            if extra:
                self._safe_update(**extra)
            return
        now = self.clock.now()
        due = self._last_heartbeat is None or (now - self._last_heartbeat).total_seconds() >= (self.heartbeat_seconds or 0)
        if not (force or due or extra):
            return
        nxt, daily = self.next_runs()
        self._last_heartbeat = now
        self._safe_update(heartbeat=_iso(now), next_run=_iso(nxt), next_daily_run=_iso(daily), **extra)

    @contextlib.contextmanager
    def _beating(self, every: float | None) -> Iterator[None]:
        """A heartbeat every `every` seconds of wall time while the block runs (a long cycle would
        otherwise look like a dead scheduler to the app); None: none."""
        if not every:
            yield
            return
        done = threading.Event()

        def beat() -> None:
            while not done.wait(every):
                self._safe_update(heartbeat=_iso(self.clock.now()))

        t = threading.Thread(target=beat, name="scheduler-heartbeat", daemon=True)
        t.start()
        try:
            yield
        finally:
            done.set()
            t.join(timeout=5)

    def _paused(self) -> bool:
        return bool(_load(state_path(self.settings)).get("paused"))

    # -- jobs ----------------------------------------------------------------------------------

    def _job(self, kind: str, only: tuple[str, ...] | None = None, tenants: list[str] | None = None) -> None:
        """A schedule job: never raises, so run_pending and the loop survive anything."""
        try:
            self.run_cycle(kind, only=only, tenants=tenants)
        except Exception:
            log.exception("scheduled %s job failed unexpectedly; the loop carries on", kind)

    def run_cycle(self, kind: str, *, only: tuple[str, ...] | None = None, honour_pause: bool = True,
                  tenants: list[str] | None = None) -> CycleReport:
        """One cycle: a job per connected tenant (optionally only some resources, or only
        `tenants`: a retry)."""
        daily = only is None
        report = CycleReport(kind=kind, started_at=self.clock.now())
        if honour_pause and self._paused():
            report.skipped_reason = "paused"
            report.finished_at = self.clock.now()
            log.info("scheduler is paused: %s run skipped (resume from the app or `scheduler.py --resume`)", kind)
            changes: dict[str, Any] = {"last_skipped": report.as_dict()}
            if daily:
                # A daily run skipped on purpose is not a missed run: no catch-up for it later.
                changes["last_daily_run"] = _iso(report.started_at)
            self._heartbeat(force=True, **changes)
            self.cycles.append(report)
            return report

        log.info("%s sync starting%s", kind, f" (only {', '.join(only)})" if only else "")
        # --once has no heartbeat of its own here (_once_state beats for it)
        with self._beating(self.heartbeat_seconds if self._sched is not None else None):
            self._run_jobs(report, only, tenants)
        report.finished_at = self.clock.now()
        self.cycles.append(report)
        changes = {"last_run": _iso(report.started_at), "last_result": report.as_dict(), "current": None}
        if daily and not report.interrupted:
            changes["last_daily_run"] = _iso(report.started_at)
        if not daily:
            changes["last_extra_run"] = _iso(report.started_at)
        if daily and not report.interrupted and self._sched is not None:  # the service; --once is cron's to retry
            changes.update(self._plan_retry(report))
        self._heartbeat(force=True, **changes)
        self._log_cycle(kind, report)
        return report

    def _log_cycle(self, kind: str, report: CycleReport) -> None:
        failed = [s for s in report.steps if s.status == "failed"]
        counts = (f"{len(report.steps)} organisation(s), {len(report.job_steps)} step(s), "
                  f"{report.failed_steps} step(s) failed, {len(failed)} organisation(s) failed")
        log.log(
            logging.WARNING if failed or report.interrupted else logging.INFO,
            "%s sync %s: %s, %d busy%s",
            kind,
            "interrupted" if report.interrupted else "finished",
            counts,
            sum(s.status == "busy" for s in report.steps),
            "".join(f"\n  failed: {s.step}: {s.detail}" for s in failed if s.detail != UNREACHABLE)
            + (f"\n  not synced, {UNREACHABLE}: {_names([s.step for s in failed if s.detail == UNREACHABLE])}"
               if any(s.detail == UNREACHABLE for s in failed) else ""),
        )

    def _plan_retry(self, report: CycleReport) -> dict[str, Any]:
        """After a daily run (or a retry): its failed tenants are tried again later today."""
        failed = [st for st in report.steps if st.status == "failed"]
        attempt = (self._retry.attempt if self._retry and report.kind == "retry" else 0) + 1
        self._retry = None
        if not failed:
            return {"next_retry": None}
        due = self.clock.now() + timedelta(seconds=retry_delay(attempt))
        daily = next_daily_run(self.clock.now(), self.settings.sync_time, self.settings.timezone)
        if due >= daily:
            log.warning("%d tenant(s) failed; the next daily run at %s is sooner than a retry", len(failed), _iso(daily))
            return {"next_retry": None}
        # a failure outside any tenant (listing them) retries them all
        ids = [st.tenant_id for st in failed]
        tenants = sorted({t for t in ids if t is not None}) if None not in ids else None
        self._retry = Retry(due, attempt, tenants)
        log.warning("%d tenant(s) failed: retrying %s at %s (attempt %d)", len(failed),
                    "every tenant" if tenants is None else ", ".join(st.step.removeprefix("sync ") for st in failed),
                    _iso(due), attempt)
        return {"next_retry": {"at": _iso(due), "attempt": attempt, "tenants": tenants}}

    def _run_jobs(self, report: CycleReport, only: tuple[str, ...] | None, tenants: list[str] | None = None) -> None:
        """Queue one job per tenant (joining any it already has), run them concurrently in the
        worker pool, and wait for all of them. A stop request (SIGTERM) lets each running job finish
        its current step; those jobs end `interrupted` and the next run resumes them."""
        try:
            conns = list_connections(self.settings)
        except Exception as exc:
            self._failed(report, "list organisations", None, exc)
            return
        engine = self.engine
        only_set = parse_only(only) if only else None
        submitted: list[tuple[str, J.Job, datetime]] = []
        if tenants is not None:
            conns = [c for c in conns if c["tenant_id"] in tenants]
        for c in conns:
            name = c.get("tenant_name") or c["tenant_id"]
            started = self.clock.now()
            try:
                job = engine.enqueue(SyncRequest(c["tenant_id"], only=only_set, trigger=TRIGGER,
                                                 requested_by=f"scheduler:{report.kind}"), tenant_name=name)
            except Exception as exc:
                self._failed(report, f"sync {name}", c["tenant_id"], exc, started)
                continue
            if job.joined:
                log.info("sync %s: joining its %s job %s (%s)", name, job.state, job.job_id[:8], job.trigger)
            submitted.append((name, job, started))
        if not submitted:
            return
        ids = [j.job_id for _, j, _ in submitted]
        self._safe_update(current={"kind": report.kind, "step": f"syncing {len(ids)} tenant(s)", "jobs": ids,
                                   "since": _iso(self.clock.now())})
        pool = self._pool
        if pool is None:
            pool = self._cycle_pool = engine.pool(workers=self.workers, label="scheduler", job_ids=ids)
        try:
            if not self.stop_requested:
                pool.run_until_done(ids, stop=self._stop)
        finally:
            if pool is self._cycle_pool:
                self._cycle_pool = None
                pool.stop(STOPPED if self.stop_requested else None)
        if self.stop_requested:
            report.interrupted = True
        unreachable: list[str] = []  # tenants that found nothing at Xero's address: one line for all of them
        found = J.get_many(self.settings, ids)  # one read for the whole cycle, not one open per tenant
        for name, job, started in submitted:
            j = found.get(job.job_id) or job
            j.joined = job.joined
            report.jobs.append(j)
            sentence = j.result.unreachable if j.result and j.state == "failed" else None
            if sentence:
                if sentence not in report.said:
                    report.said.append(sentence)
                unreachable.append(name)
                report.steps.append(StepReport(f"sync {name}", j.tenant_id, "failed", UNREACHABLE, _iso(started),
                                               _iso(self.clock.now())))
                continue
            status, detail = self._job_status(j, joined=job.joined)
            if status == "failed":
                log.error("sync %s failed: %s", name, detail)
            elif status == "busy":
                log.info("sync %s skipped: %s", name, detail)
            report.steps.append(StepReport(f"sync {name}", j.tenant_id, status, detail, _iso(started),
                                           _iso(self.clock.now())))
        for sentence in report.said:
            log.error("%s (%d organisation(s) not synced: %s)", sentence, len(unreachable), _names(unreachable))

    def _job_status(self, j: J.Job, *, joined: bool) -> tuple[str, str]:
        """(status, detail) of a tenant's finished job: ok | failed | busy | skipped."""
        busy = j.result.busy if j.result else None
        if busy:  # a sync started outside the jobs held the tenant (its lock): not a failure
            return "busy", str(busy)
        if j.state == "done":
            return "ok", ("joined the job already queued" if joined else "")
        if j.state == "failed":
            return "failed", j.error or "failed"
        if self.stop_requested and j.state in ("queued", "running", "interrupted"):
            return "skipped", j.error or "not started: the scheduler was stopped"
        # cancelled by a person, or interrupted by another process dying
        return ("skipped" if j.state == "cancelled" else "failed"), j.error or j.state

    def _failed(self, report: CycleReport, name: str, tenant_id: str | None, exc: Exception,
                started: datetime | None = None) -> None:
        from .redaction import redact

        started = started or self.clock.now()
        detail = redact(f"{type(exc).__name__}: {exc}")[:1000]  # it goes to sync_log and the state file
        log.error("%s failed: %s", name, detail, exc_info=log.isEnabledFor(logging.DEBUG))
        report.steps.append(StepReport(name, tenant_id, "failed", detail, _iso(started), _iso(self.clock.now())))
        self._log_failure(tenant_id, detail, started)

    def _log_failure(self, tenant_id: str | None, error: str, started: datetime) -> None:
        """A sync_log row for a failure no job could record (listing the tenants, queueing a job)."""
        try:
            from .db import connect

            with connect(self.settings.db_path) as con:
                con.execute(
                    "INSERT INTO sync_log (sync_id, run_id, tenant_id, sync_type, status, error, trigger, "
                    "started_at, finished_at) VALUES (?, ?, ?, 'scheduler', 'failed', ?, ?, ?, ?)",
                    [uuid.uuid4().hex, None, tenant_id, error, TRIGGER, started, self.clock.now()],
                )
        except Exception as exc:
            log.warning("could not record the failure in sync_log: %s", exc)

    # -- entry points --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _process_lock(self) -> Iterator[None]:
        from filelock import FileLock, Timeout

        path = Path(self.settings.data_dir) / PROCESS_LOCK_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            other = _load(state_path(self.settings)).get("pid")
            raise SchedulerAlreadyRunning(
                f"Another scheduler{f' (pid {other})' if other else ''} is already running on {self.settings.data_dir}. "
                "Stop it first, or use `scheduler.py --once` for a single run."
            ) from None
        try:
            yield
        finally:
            lock.release()

    def run_forever(self) -> int:
        """The service: catch up if a run was missed, then run jobs as they come due until stopped."""
        with self._process_lock():
            self.build()
            s = self.settings
            now = self.clock.now()
            prior = _load(state_path(s))
            # Runs the daily cycles' jobs and whatever the app or the CLI queues, until stopped.
            self._pool = self.engine.pool(workers=self.workers, label="scheduler").start()
            self._heartbeat(
                force=True,
                pid=os.getpid(),
                host=socket.gethostname(),
                mode="service",
                started_at=_iso(now),
                stopped_at=None,
                current=None,
                sync_time=s.sync_time,
                timezone=s.timezone,
                extra=[e.label for e in self.extras],
            )
            _, daily = self.next_runs()
            log.info(
                "scheduler started (pid %d): daily sync at %s %s; next daily run %s%s",
                os.getpid(), s.sync_time, s.timezone,
                daily.astimezone(ZoneInfo(s.timezone)).isoformat(timespec="minutes") if daily else "?",
                "".join(f"; {e.label}" for e in self.extras),
            )
            try:
                last_daily = _parse_iso(prior.get("last_daily_run"))
                if catch_up_due(last_daily, now, s.sync_time, s.timezone):
                    log.info("a scheduled run was missed while the scheduler was down (last run %s): catching up once",
                             _iso(last_daily))
                    self._job("catch-up")
                while not self.stop_requested:
                    self.tick()
                    if self.stop_requested:
                        break
                    self._wait(self.wait_seconds())
            finally:
                if self._pool is not None:
                    self._pool.stop(STOPPED)
                    self._pool = None
                self._safe_update(pid=None, stopped_at=_iso(self.clock.now()), current=None,
                                  heartbeat=_iso(self.clock.now()))
                log.info("scheduler stopped")
        return 0

    @contextlib.contextmanager
    def _once_state(self) -> Iterator[None]:
        """While `--once` syncs, the state file says a scheduler is running (mode "once", this pid,
        a heartbeat every HEARTBEAT_SECONDS), unless a scheduler service already owns the state."""
        st = read_state(self.settings)
        if st.get("running") and st.get("pid") != os.getpid():
            yield
            return
        now = self.clock.now()
        self._safe_update(pid=os.getpid(), host=socket.gethostname(), mode="once", started_at=_iso(now),
                          stopped_at=None, heartbeat=_iso(now))
        try:
            with self._beating(self.heartbeat_seconds or HEARTBEAT_SECONDS):
                yield
        finally:
            self._safe_update(pid=None, stopped_at=_iso(self.clock.now()), current=None,
                              heartbeat=_iso(self.clock.now()))

    def run_once(self) -> int:
        """One daily cycle now (cron/systemd timers): every tenant's job, concurrently. 0 if no
        step failed, else 1."""
        if self._paused():
            self.run_cycle("once")  # records the skip
            return 0
        with self._once_state():
            report = self.run_cycle("once")
        if report.skipped_reason:
            return 0
        return 0 if report.ok else 1
