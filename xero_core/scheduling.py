"""The scheduler's loop: cycles, catch-up, retries, the pause flag, signals.

In three parts: its time arithmetic (xero_core/schedule_time.py, pure), its state file
(xero_core/scheduler_state.py, what the admin app reads) and this loop. `scheduler.py`
(repository root) is the thin entry point; tests drive the loop with an injected clock. The names
of the other two parts are importable from here as before.

What runs
    Every day at `settings.sync_time` in `settings.timezone` (default 06:00 Australia/Sydney) a
    *cycle*: one pipeline job per connected tenant (`Engine.enqueue`, trigger
    "scheduler"), run concurrently by a worker pool (`pipeline.worker.WorkerPool`, XERO_SYNC_WORKERS
    threads); the cycle waits for all of them. The service (`run_forever`) keeps one pool for its
    whole life, which also runs jobs the app and the CLI queue; `run_once` (cron) runs a pool for
    its cycle's jobs only, and its state file says "running" (mode "once") meanwhile.
    `settings.sync_extra` (XERO_SYNC_EXTRA, e.g. "invoices=60m,contacts=30m") adds interval jobs
    that sync only those steps. Tests inject plain callables (`Jobs(sync_tenant=...)`): those run
    one after another, which is what the loop's timing tests need.

One sync per tenant
    A tenant has at most one queued or running job (jobs.sqlite); a cycle joins one that is already
    there. Injected callables that meet the tenant lock (`sync.locks.tenant_lock`) record *busy*.

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
from typing import Any, Callable, Iterable, Iterator
from zoneinfo import ZoneInfo

from .clock import SYSTEM_CLOCK, Clock
from .engine import Engine
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
from .settings import Settings

log = logging.getLogger(__name__)

PROCESS_LOCK_FILE = "scheduler.lock"
HEARTBEAT_SECONDS = 30.0  # how often a live scheduler rewrites its heartbeat
MAX_WAIT_SECONDS = 30.0  # the loop re-checks at least this often (clock jumps, heartbeat)
TRIGGER = "scheduler"


# ---------------------------------------------------------------------------------------------
# The jobs the scheduler calls (injected; production defaults import lazily).
# ---------------------------------------------------------------------------------------------


def _default_organisations(settings: Settings) -> list[tuple[str, str, str]]:
    """(tenant_id, name, status) of every tenant not disconnected, except Practice Manager ones
    (the practices step syncs those). Tenants needing a reconnect are included: sync_all records
    why it skips them, so the app shows it."""
    from .connections import list_connections

    return [
        (c["tenant_id"], c.get("tenant_name") or c["tenant_id"], c.get("status") or "connected")
        for c in list_connections(settings)
        if (c.get("tenant_type") or "").upper() != "PRACTICEMANAGER"
    ]


def _default_sync_tenant(settings: Settings, tenant_id: str, *, trigger: str, only: Iterable[str] | None = None) -> Any:
    """One tenant's whole pipeline, in this thread (cycles of the real engine go through jobs)."""
    return Engine(settings).sync(tenant_id, only=list(only) if only else None, trigger=trigger)


def _default_sync_practices(settings: Settings, *, trigger: str) -> Any:
    """Nothing left to do: each tenant's pipeline job runs its practice steps (clients, xpm, ...)."""
    return None


def _default_busy() -> tuple[type[BaseException], ...]:
    try:
        from .sync.locks import SyncBusy
    except ImportError:
        return ()
    return (SyncBusy,)


@dataclass
class Jobs:
    """What a cycle calls. Tests pass fakes; `Jobs()` calls the real engine.

    organisations(settings) -> [(tenant_id, name, status)]
    sync_tenant(settings, tenant_id, *, trigger, only) -> result (SyncResult or None)
    sync_practices(settings, *, trigger) -> result, or None to skip practices
    busy: exception types meaning "this tenant is already syncing elsewhere"
    """

    organisations: Callable[[Settings], list[tuple[str, str, str]]] = _default_organisations
    sync_tenant: Callable[..., Any] = _default_sync_tenant
    sync_practices: Callable[..., Any] | None = _default_sync_practices
    busy: tuple[type[BaseException], ...] | None = None
    workers: int | None = None  # pipeline cycles: threads in the pool (default XERO_SYNC_WORKERS)
    pool_options: dict = field(default_factory=dict)  # pipeline cycles: WorkerPool keywords (tests: transport, clock)

    @property
    def pipeline(self) -> bool:
        """The real engine: a cycle queues one pipeline job per tenant and a worker pool runs them
        concurrently. Injected callables (tests) run one after another instead."""
        return self.sync_tenant is _default_sync_tenant

    def busy_types(self) -> tuple[type[BaseException], ...]:
        if self.busy is None:
            self.busy = _default_busy()
        return self.busy


def result_status(result: Any) -> tuple[str, str]:
    """(status, detail) of what a sync function returned: ok | failed | busy | skipped.

    Duck-typed over the engine's SyncResult (`busy`, `status`, `ok`) and the practices' list of
    dicts, so fakes in tests can return None or a plain dict.
    """
    if result is None:
        return "ok", ""
    if isinstance(result, (list, tuple)):
        parts = [(r, *result_status(r)) for r in result]
        bad = [f"{_name_of(r)}: {d or s}" for r, s, d in parts if s == "failed"]
        busy = [f"{_name_of(r)}: {d}" for r, s, d in parts if s == "busy"]
        if bad:
            return "failed", "; ".join(bad)
        return "ok", "; ".join(busy)
    get = result.get if isinstance(result, dict) else (lambda k: getattr(result, k, None))
    if get("busy"):
        return "busy", str(get("busy"))
    status = get("status")
    status = status.lower() if isinstance(status, str) else None
    detail = _first_error(result, get)
    if status in ("failed", "partial", "error"):
        return "failed", detail or status
    if status == "skipped":
        return "skipped", detail
    if get("ok") is False:
        return "failed", detail or "the sync reported a problem"
    return "ok", ""


UNREACHABLE = "Xero unreachable"


def _names(names: list[str], most: int = 5) -> str:
    """`a, b, c and 12 more`: a run's list of organisations on one line."""
    names = [n.removeprefix("sync ") for n in names]
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _name_of(r: Any) -> str:
    get = r.get if isinstance(r, dict) else (lambda k: getattr(r, k, None))
    return str(get("tenant_name") or get("tenant_id") or "practice")


def _first_error(result: Any, get: Callable[[str], Any]) -> str:
    """The first failing step's error, e.g. "pnl: HTTP 500 ...", for the state file and the log."""
    for st in get("steps") or []:
        sget = st.get if isinstance(st, dict) else (lambda k, st=st: getattr(st, k, None))
        if sget("status") in ("failed", "partial", "skipped") and sget("error"):
            return f"{sget('step') or sget('name') or 'step'}: {sget('error')}"[:500]
    return str(get("error") or "")


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
    jobs: list[Any] = field(default_factory=list)  # the finished job of each organisation (pipeline cycles)

    @property
    def job_steps(self) -> list[dict]:
        """Every step every job of the cycle ran (its SyncResult's steps)."""
        return [st for j in self.jobs for st in ((j.result or {}).get("steps") or [])]

    @property
    def failed_steps(self) -> int:
        return sum(st.get("status") in ("failed", "partial") for st in self.job_steps)

    @property
    def ok(self) -> bool:
        return not any(s.status == "failed" for s in self.steps)

    def as_dict(self) -> dict:
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


def _naive_local(dt: datetime) -> datetime:
    """schedule compares naive datetimes in the machine's local time."""
    return dt.astimezone().replace(tzinfo=None)


class Scheduler:
    """The scheduler loop. `run_forever()` for the service, `run_once()` for cron.

    `clock` gives this module's notion of now (tests use time-machine, which also moves the
    `schedule` library's clock); `wait(seconds)` is the interruptible pause between ticks
    (default: the stop event's wait, so a signal ends it at once).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        jobs: Jobs | None = None,
        clock: Clock = SYSTEM_CLOCK,
        wait: Callable[[float], Any] | None = None,
        heartbeat_seconds: float | None = HEARTBEAT_SECONDS,
        max_wait: float = MAX_WAIT_SECONDS,
    ):
        self.settings = settings
        self.jobs = jobs or Jobs()
        self.clock = clock
        self.extras = parse_extra(settings.sync_extra)
        self._check_extra_resources()
        parse_sync_time(settings.sync_time)
        ZoneInfo(settings.timezone)
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self.heartbeat_seconds = heartbeat_seconds
        self.max_wait = max_wait
        self._sched = None
        self._daily_job = None
        self._last_heartbeat: datetime | None = None
        self.cycles: list[CycleReport] = []
        self._pool = None  # the service's worker pool (pipeline jobs), started by run_forever
        self._retry: dict | None = None  # {"due", "attempt", "tenants"}: a failed daily run's next try

    def _check_extra_resources(self) -> None:
        if not self.extras:
            return
        try:
            from .pipeline.plan import parse_only
        except ImportError:  # the engine validates when called
            return
        for e in self.extras:
            try:
                parse_only(e.resources)
            except ValueError as exc:
                raise SchedulerError(f"XERO_SYNC_EXTRA: {exc}") from None

    # -- control -------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the loop to stop after the current step (signal-handler safe)."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT finish the current step, then the loop exits cleanly."""
        import signal

        def _handler(signum, _frame):
            log.info("received %s: finishing the current step, then stopping", signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)

    # -- schedule ------------------------------------------------------------------------------

    def build(self) -> None:
        import schedule

        s = self.settings
        self._sched = schedule.Scheduler()
        self._daily_job = self._sched.every().day.at(s.sync_time, s.timezone).do(self._job, "daily")
        self._set_daily_next_run()
        for extra in self.extras:
            self._sched.every(extra.seconds).seconds.do(self._job, "extra:" + "+".join(extra.resources), extra.resources)
        self._chase_job = None
        if self.jobs.pipeline:
            # The daily cycle sends the reminders due then; those held by quiet hours or a retry time
            # go when they come due, at the next tick (no Xero call, one short DuckDB write).
            self._chase_job = self._sched.every(CHASE_TICK_MINUTES).minutes.do(self._chase_tick)

    def _chase_tick(self) -> None:
        if self._paused():
            return
        try:
            r = Engine(self.settings, clock=self.clock).chase()  # the scheduler's clock decides sending hours
        except Exception:
            log.exception("sending chase reminders failed; the next tick tries again")
            return
        if r.sent or r.failed or r.bounced or r.unconfirmed or r.error:
            log.log(logging.WARNING if r.error or r.failed else logging.INFO, "chase reminders: %s", r.summary())

    def _set_daily_next_run(self) -> None:
        """Replace schedule's own next run (see the module docstring: DST gaps) with ours.

        Only at start and right after the daily job ran: touching it otherwise could push a slot
        that came due during a long interval job to tomorrow."""
        nxt = next_daily_run(self.clock.now(), self.settings.sync_time, self.settings.timezone)
        self._daily_job.next_run = _naive_local(nxt)

    def next_runs(self) -> tuple[datetime | None, datetime | None]:
        """(next run of any job, next daily run), aware UTC."""
        if self._sched is None:
            return None, None
        daily = self._daily_job.next_run.astimezone(timezone.utc)
        runs = [j.next_run for j in self._sched.jobs if j is not getattr(self, "_chase_job", None) and j.next_run]
        nxt = min(runs) if runs else None
        nxt = nxt.astimezone(timezone.utc) if nxt else daily
        if self._retry is not None:
            nxt = min(nxt, self._retry["due"])
        return nxt, daily

    def tick(self) -> None:
        """Run whatever is due, then refresh the heartbeat and next run in the state file."""
        daily_ran_before = self._daily_job.last_run
        try:
            self._sched.run_pending()
        except Exception:  # _job catches everything; this guards schedule itself
            log.exception("the scheduler's run_pending failed; carrying on")
        if self._daily_job.last_run is not daily_ran_before:
            self._set_daily_next_run()
        if self._retry is not None and self.clock.now() >= self._retry["due"] and not self.stop_requested:
            self._job("retry", tenants=self._retry["tenants"])
        self._heartbeat(force=False)

    def wait_seconds(self) -> float:
        idle = self._sched.idle_seconds
        if self._retry is not None:
            until = (self._retry["due"] - self.clock.now()).total_seconds()
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
    def _job_heartbeat(self) -> Iterator[None]:
        """Keep the heartbeat fresh while a long step runs (wall time, independent of the loop)."""
        if not self.heartbeat_seconds or self._sched is None:  # --once has no heartbeat of its own
            yield
            return
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.heartbeat_seconds):
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
        """One cycle: every organisation (optionally only some resources, or only `tenants`: a
        retry), then the practices."""
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
        with self._job_heartbeat():
            self._run_steps(report, only, tenants)
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
        failed = [s for s in report.steps if s.status == "failed"]
        counts = (f"{len(report.steps)} organisation(s), {len(report.job_steps)} step(s), "
                  f"{report.failed_steps} step(s) failed, {len(failed)} organisation(s) failed"
                  if report.jobs else f"{len(report.steps)} step(s), {len(failed)} failed")
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
        return report

    def _plan_retry(self, report: CycleReport) -> dict:
        """After a daily run (or a retry): its failed tenants are tried again later today."""
        failed = [st for st in report.steps if st.status == "failed"]
        attempt = (self._retry["attempt"] if self._retry and report.kind == "retry" else 0) + 1
        self._retry = None
        if not failed:
            return {"next_retry": None}
        due = self.clock.now() + timedelta(seconds=retry_delay(attempt))
        daily = next_daily_run(self.clock.now(), self.settings.sync_time, self.settings.timezone)
        if due >= daily:
            log.warning("%d tenant(s) failed; the next daily run at %s is sooner than a retry", len(failed), _iso(daily))
            return {"next_retry": None}
        # a failure outside any tenant (listing them) retries them all
        tenants = None if any(st.tenant_id is None for st in failed) else sorted({st.tenant_id for st in failed})
        self._retry = {"due": due, "attempt": attempt, "tenants": tenants}
        log.warning("%d tenant(s) failed: retrying %s at %s (attempt %d)", len(failed),
                    "every tenant" if tenants is None else ", ".join(st.step.removeprefix("sync ") for st in failed),
                    _iso(due), attempt)
        return {"next_retry": {"at": _iso(due), "attempt": attempt, "tenants": tenants}}

    def _run_pipeline_cycle(self, report: CycleReport, only: tuple[str, ...] | None,
                            tenants: list[str] | None = None) -> None:
        """Queue one job per tenant (joining any it already has), run them concurrently in the
        worker pool, and wait for all of them. A stop request (SIGTERM) lets each running job finish
        its current step; those jobs end `interrupted` and the next run resumes them."""
        from .connections import list_connections
        from .pipeline import jobs as J
        from .pipeline.plan import parse_only
        from .pipeline.request import SyncRequest

        engine = self._engine()
        try:
            conns = list_connections(self.settings)
        except Exception as exc:
            self._failed(report, "list organisations", None, exc)
            return
        only_set = parse_only(only) if only else None
        submitted: list[tuple[str, Any, datetime]] = []
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
        own = self._pool is None
        pool = self._pool or engine.pool(workers=self.jobs.workers, label="scheduler", job_ids=ids,
                                         **self._pool_options())
        try:
            pool.run_until_done(ids, stop=self._stop)
        finally:
            if own:
                pool.stop("the scheduler was stopped (SIGTERM or Ctrl-C)" if self.stop_requested else None)
        if self.stop_requested:
            report.interrupted = True
        unreachable: list[str] = []  # tenants that found nothing at Xero's address: one line for all of them
        for name, job, started in submitted:
            j = J.get(self.settings, job.job_id) or job
            j.joined = job.joined
            report.jobs.append(j)
            sentence = (j.result or {}).get("unreachable") if j.state == "failed" else None
            if sentence:
                if sentence not in report.said:
                    report.said.append(sentence)
                unreachable.append(name)
                report.steps.append(StepReport(f"sync {name}", j.tenant_id, "failed", UNREACHABLE, _iso(started),
                                               _iso(self.clock.now())))
                continue
            if j.state == "done":
                status, detail = "ok", ("joined the job already queued" if job.joined else "")
            elif j.state == "failed":
                status, detail = "failed", j.error or "failed"
            elif self.stop_requested and j.state in ("queued", "running", "interrupted"):
                status, detail = "skipped", j.error or "not started: the scheduler was stopped"
            else:  # cancelled by a person, or interrupted by another process dying
                status, detail = ("skipped" if j.state == "cancelled" else "failed"), j.error or j.state
            if status == "failed":
                log.error("sync %s failed: %s", name, detail)
            report.steps.append(StepReport(f"sync {name}", j.tenant_id, status, detail, _iso(started),
                                           _iso(self.clock.now())))
        for sentence in report.said:
            log.error("%s (%d organisation(s) not synced: %s)", sentence, len(unreachable), _names(unreachable))

    def _run_steps(self, report: CycleReport, only: tuple[str, ...] | None, tenants: list[str] | None = None) -> None:
        if self.jobs.pipeline:
            self._run_pipeline_cycle(report, only, tenants)
            return
        try:
            orgs = self.jobs.organisations(self.settings)
        except Exception as exc:
            self._failed(report, "list organisations", None, exc)
            return
        steps: list[tuple[str, str | None, Callable[[], Any]]] = []
        for tenant_id, name, _status in orgs:
            if tenants is not None and tenant_id not in tenants:
                continue
            steps.append((f"sync {name}", tenant_id, lambda t=tenant_id: self.jobs.sync_tenant(self.settings, t, trigger=TRIGGER, only=only)))
        if only is None and tenants is None and self.jobs.sync_practices is not None:
            steps.append(("sync practices", None, lambda: self.jobs.sync_practices(self.settings, trigger=TRIGGER)))

        for name, tenant_id, call in steps:
            if self.stop_requested:
                report.interrupted = True
                log.info("stop requested: not starting %s", name)
                break
            started = self.clock.now()
            self._safe_update(current={"kind": report.kind, "step": name, "tenant_id": tenant_id, "since": _iso(started)})
            try:
                status, detail = result_status(call())
            except self.jobs.busy_types() as exc:
                status, detail = "busy", str(exc) or "already syncing in another process"
                log.info("%s skipped: %s", name, detail)
            except Exception as exc:
                self._failed(report, name, tenant_id, exc, started)
                continue
            report.steps.append(StepReport(name, tenant_id, status, detail, _iso(started), _iso(self.clock.now())))

    def _engine(self) -> Engine:
        opts = self.jobs.pool_options
        return Engine(self.settings, transport=opts.get("transport"), clock=opts.get("clock"))

    def _pool_options(self) -> dict:
        return {k: v for k, v in self.jobs.pool_options.items() if k not in ("transport", "clock")}

    def _failed(self, report: CycleReport, name: str, tenant_id: str | None, exc: Exception, started: datetime | None = None) -> None:
        from .redaction import redact

        started = started or self.clock.now()
        detail = redact(f"{type(exc).__name__}: {exc}")[:1000]  # it goes to sync_log and the state file
        log.error("%s failed: %s", name, detail, exc_info=log.isEnabledFor(logging.DEBUG))
        report.steps.append(StepReport(name, tenant_id, "failed", detail, _iso(started), _iso(self.clock.now())))
        self._log_failure(tenant_id, detail, started)

    def _log_failure(self, tenant_id: str | None, error: str, started: datetime) -> None:
        """A sync_log row for a failure the engine could not record itself (it raised)."""
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
            if self.jobs.pipeline:
                # Runs the daily cycles' jobs and whatever the app or the CLI queues, until stopped.
                self._pool = self._engine().pool(workers=self.jobs.workers, label="scheduler",
                                                 **self._pool_options()).start()
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
            nxt, daily = self.next_runs()
            log.info(
                "scheduler started (pid %d): daily sync at %s %s; next daily run %s%s",
                os.getpid(), s.sync_time, s.timezone, daily.astimezone(ZoneInfo(s.timezone)).isoformat(timespec="minutes"),
                "".join(f"; {e.label}" for e in self.extras),
            )
            try:
                last_daily = _parse_iso(prior.get("last_daily_run"))
                if catch_up_due(last_daily, now, s.sync_time, s.timezone):
                    log.info("a scheduled run was missed while the scheduler was down (last run %s): catching up once", _iso(last_daily))
                    self._job("catch-up")
                while not self.stop_requested:
                    self.tick()
                    if self.stop_requested:
                        break
                    self._wait(self.wait_seconds())
            finally:
                if self._pool is not None:
                    self._pool.stop("the scheduler was stopped (SIGTERM or Ctrl-C)")
                    self._pool = None
                self._safe_update(pid=None, stopped_at=_iso(self.clock.now()), current=None, heartbeat=_iso(self.clock.now()))
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
        done = threading.Event()
        every = self.heartbeat_seconds or HEARTBEAT_SECONDS

        def beat() -> None:
            while not done.wait(every):
                self._safe_update(heartbeat=_iso(self.clock.now()))

        t = threading.Thread(target=beat, name="scheduler-once-heartbeat", daemon=True)
        t.start()
        try:
            yield
        finally:
            done.set()
            t.join(timeout=5)
            self._safe_update(pid=None, stopped_at=_iso(self.clock.now()), current=None,
                              heartbeat=_iso(self.clock.now()))

    def run_once(self) -> int:
        """One daily cycle now (cron/systemd timers): every tenant's job, concurrently. 0 if no
        step failed, else 1."""
        if self._paused():
            report = self.run_cycle("once")  # records the skip
            return 0
        with self._once_state():
            report = self.run_cycle("once")
        if report.skipped_reason:
            return 0
        return 0 if report.ok else 1
