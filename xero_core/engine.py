"""`Engine`: the one entry for "sync an organisation", whoever asks.

Every trigger (the admin app's pages, the CLI, the scheduler, demo, benches, tests) builds an
`Engine(settings, transport=, clock=)` and either runs a tenant's whole plan in this thread
(`sync`) or queues it as a durable job that a worker pool runs (`submit`). Both end in the same
function (`pipeline.run.run_sync`: the plan's financial steps, clients, xpm, documents, webhooks,
through `pipeline.executor.execute`), so a test driving `Engine.sync` drives what production runs.

What the engine holds is what every run of a process shares: settings, the HTTP transport (None:
the network; tests and benches: the fake Xero's) and the clock (None: the system's). Like httpx's
`Client`, it is cheap to build and holds no open resource.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import TYPE_CHECKING, Any

from . import snapshot
from .clock import Clock
from .connections import list_connections
from .pipeline import jobs as J
from .pipeline.plan import PRACTICE_MANAGER, parse_only
from .pipeline.progress import ProgressEvent
from .pipeline.request import SyncRequest
from .pipeline.run import run_sync
from .pipeline.worker import WorkerPool
from .settings import Settings
from .pipeline.result import SyncResult

if TYPE_CHECKING:  # practice/ is imported when a chase runs, not with the engine
    from .practice.chase import ChaseResult

DEFAULT_THREADS = 8  # `sync_all` in this process: tenants synced at once (each within its own Xero limit)

Progress = Callable[[ProgressEvent], None]
StopReason = Callable[[], "str | None"]


class Engine:
    """`sync(request)` in this thread, `submit(request)` as a job; `pool()` runs jobs here."""

    def __init__(self, settings: Settings, *, transport: Any = None, clock: Clock | None = None,
                 today: date | None = None):
        """`today` pins the report weeks' "current week" (benches replaying a date); by default it
        is the clock's date in XERO_TIMEZONE."""
        self.settings = settings
        self.transport = transport
        self.clock = clock
        self.today = today

    def __repr__(self) -> str:
        return f"<Engine {self.settings.data_dir}>"

    # -- requests --------------------------------------------------------------------------------
    @staticmethod
    def request(tenant: SyncRequest | str, *, only: str | Iterable[str] | None = None, weeks: int | None = None,
                week_ending: date | None = None, trigger: str = "manual",
                requested_by: str | None = None) -> SyncRequest:
        """A SyncRequest from a tenant id and the CLI's words (`only="pnl,bank"` is checked against
        the plan's step names: a typo is a ValueError naming the choices). A SyncRequest passes through."""
        if isinstance(tenant, SyncRequest):
            return tenant
        return SyncRequest(tenant, only=parse_only(only), weeks=weeks, week_ending=week_ending, trigger=trigger,
                           requested_by=requested_by)

    # -- in this thread --------------------------------------------------------------------------
    def sync(self, request: SyncRequest | str, *, progress: Progress | None = None, cancel: StopReason | None = None,
             stop: StopReason | None = None, **fields: Any) -> SyncResult:
        """Run one tenant's plan now, in this thread, and return its SyncResult (never raises for a
        step: each step's outcome is in the result and in sync_log). `request` is a SyncRequest, or a
        tenant id with `request()`'s keywords. `cancel()` returns a reason to stop at the next page,
        `stop()` one to stop after the current step."""
        try:
            return self._sync(self.request(request, **fields), progress=progress, cancel=cancel, stop=stop)
        finally:
            snapshot.publish_if_changed(self.settings)  # readers see it (xero_core/snapshot.py)

    def _sync(self, req: SyncRequest, *, progress: Progress | None = None, cancel: StopReason | None = None,
              stop: StopReason | None = None) -> SyncResult:
        return run_sync(self.settings, req, transport=self.transport, clock=self.clock, progress=progress,
                        today=self.today, cancel=cancel, stop=stop)

    def sync_all(self, requests: Iterable[SyncRequest | str] | None = None, *, progress: Progress | None = None,
                 threads: int = DEFAULT_THREADS, **fields: Any) -> list[SyncResult]:
        """Several tenants at once in this process (threads), no job; results in the order asked.
        Without `requests`: every connected tenant, with `fields` (`only`, `weeks`, `trigger`...)."""
        if requests is None:
            requests = [c["tenant_id"] for c in list_connections(self.settings) if c.get("status") == "connected"]
        reqs = [self.request(r, **fields) for r in requests]
        if not reqs:
            return []
        try:
            with ThreadPoolExecutor(max_workers=min(threads, len(reqs)), thread_name_prefix="sync") as pool:
                return list(pool.map(lambda r: self._sync(r, progress=progress), reqs))
        finally:
            snapshot.publish_if_changed(self.settings)  # once for the batch, not once a tenant

    def sync_practices(self, *, tenant_id: str | None = None, trigger: str = "manual") -> list[SyncResult]:
        """The practice part of each connected tenant's plan (or one tenant's): contacts and clients
        for an organisation, xpm (and its clients) for a Practice Manager tenant."""
        out = []
        for conn in list_connections(self.settings):
            if conn.get("status") != "connected" or (tenant_id and conn["tenant_id"] != tenant_id):
                continue
            pm = (conn.get("tenant_type") or "").upper() == PRACTICE_MANAGER
            only = frozenset({"xpm"} if pm else {"contacts", "clients"})
            out.append(self.sync(SyncRequest(conn["tenant_id"], only=only, trigger=trigger)))
        return out

    # -- as durable jobs ---------------------------------------------------------------------------
    def submit(self, request: SyncRequest | str, *, tenant_name: str | None = None, **fields: Any) -> str:
        """Queue the request as a job (or join the tenant's queued or running one) and return its id
        at once. A worker pool runs it: the scheduler's, the app server's, or `pool()`."""
        return self.enqueue(request, tenant_name=tenant_name, **fields).job_id

    def enqueue(self, request: SyncRequest | str, *, tenant_name: str | None = None, **fields: Any) -> J.Job:
        """`submit`, returning the job record (`.joined` says it was already there)."""
        return J.enqueue(self.settings, self.request(request, **fields), tenant_name=tenant_name)

    def submit_all(self, requests: Sequence[SyncRequest], *, names: dict[str, str] | None = None) -> list[J.Job]:
        """Queue (or join) a job per request; the job records, in the order asked."""
        names = names or {}
        return [self.enqueue(r, tenant_name=names.get(r.tenant_id)) for r in requests]

    def pool(self, *, label: str = "worker", job_ids: Iterable[str] | None = None, **options: Any) -> WorkerPool:
        """A worker pool (not started) running jobs with this engine's transport, clock and date:
        `job_ids` limits it to those jobs, otherwise it takes any queued job until stopped."""
        return WorkerPool(self.settings, label=label, job_ids=job_ids, transport=self.transport, clock=self.clock,
                          today=self.today, **options)

    def run_jobs(self, requests: Sequence[SyncRequest], *, names: dict[str, str] | None = None,
                 label: str = "worker", threads: int | None = None, **options: Any) -> list[J.Job]:
        """Submit the requests and run them here until every one has ended (jobs another process
        already runs are waited for); the finished job records, in the order asked."""
        submitted = self.submit_all(requests, names=names)
        ids = [j.job_id for j in submitted]
        if not ids:
            return []
        pool = self.pool(label=label, job_ids=ids, workers=threads or min(len(ids), DEFAULT_THREADS), **options)
        try:
            done = {j.job_id: j for j in pool.run_until_done(ids)}
        finally:
            pool.stop()
        return [done.get(j.job_id) or j for j in submitted]

    # -- reading jobs ----------------------------------------------------------------------------
    def job(self, job_id: str) -> J.Job | None:
        return J.get(self.settings, job_id)

    # -- chase reminders ---------------------------------------------------------------------------
    def chase(self, *, tenant_id: str | None = None) -> ChaseResult:
        """Send the chase reminders due now (every Practice Manager tenant's, or one's): no Xero call.
        A ChaseResult (sent, failed, bounced, skipped, unconfirmed, waiting, error)."""
        from .pipeline.run import send_reminders

        result: ChaseResult = send_reminders(self.settings, tenant_id=tenant_id, clock=self.clock)
        return result
