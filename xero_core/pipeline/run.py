"""`run_sync`: the one function every trigger ends in (Sync now, Sync all, the scheduler, the CLI,
demo), directly or through a job (pipeline.worker). It plans the tenant's steps (pipeline.plan)
and hands them to the executor in sync/runner.py as data."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Callable, Iterable

from ..clock import Clock
from ..sync.context import SyncResult
from ..sync.runner import execute
from .plan import parse_only, plan, probe
from .request import SyncRequest


def run_sync(settings, request: SyncRequest, *, transport=None, clock: Clock | None = None,
             progress: Callable[[dict], None] | None = None, today: date | None = None,
             cancel: Callable[[], str | None] | None = None, stop: Callable[[], str | None] | None = None,
             client=None, hints: dict | None = None) -> SyncResult:
    """Run one tenant's plan for `request`. `cancel()` returns a reason to stop at the next page or
    chunk, `stop()` one to stop after the current step. `hints` receives what the progress
    estimates use (stored invoice count, journal cursor)."""

    def probe_and_hint(con, tenant_id):
        out = probe(con, tenant_id)
        if hints is not None:
            hints["invoice_count"] = out.get("invoice_count") or 0
        return out

    def steps_for(tenant_type: str):
        return plan(tenant_type, request)

    result = execute(settings, request.tenant_id, steps_for, weeks=request.weeks, week_ending=request.week_ending,
                     trigger=request.trigger, transport=transport, clock=clock, progress=progress, today=today,
                     client=client, cancel=cancel, stop=stop, probe=probe_and_hint, hints=hints)
    return result


def sync_tenant(settings, tenant_id: str, *, weeks: int | None = None, only: str | Iterable[str] | None = None,
                week_ending: date | None = None, trigger: str = "manual", requested_by: str | None = None,
                transport=None, clock: Clock | None = None, progress: Callable[[dict], None] | None = None,
                today: date | None = None) -> SyncResult:
    """`run_sync` with sync_all's arguments, in this thread, no job (the app's pages until they
    enqueue jobs; tests)."""
    req = SyncRequest(tenant_id, only=parse_only(only), weeks=weeks, week_ending=week_ending, trigger=trigger,
                      requested_by=requested_by)
    return run_sync(settings, req, transport=transport, clock=clock, progress=progress, today=today)


def sync_tenants(settings, *, trigger: str = "manual", only=None, weeks: int | None = None, transport=None,
                 clock: Clock | None = None, progress: Callable[[dict], None] | None = None,
                 today: date | None = None, max_workers: int = 8) -> list[SyncResult]:
    """Every connected tenant, concurrently, in this process (no job)."""
    from ..connections import list_connections

    only_set = parse_only(only)
    tenants = [c for c in list_connections(settings) if c.get("status") == "connected"]
    if not tenants:
        return []
    with ThreadPoolExecutor(max_workers=min(max_workers, len(tenants)), thread_name_prefix="sync") as pool:
        futures = [pool.submit(run_sync, settings, SyncRequest(c["tenant_id"], only=only_set, weeks=weeks,
                                                               trigger=trigger),
                               transport=transport, clock=clock, progress=progress, today=today) for c in tenants]
        return [f.result() for f in futures]


def sync_practices(settings, *, trigger: str = "manual", transport=None, clock: Clock | None = None,
                   progress: Callable[[dict], None] | None = None, tenant_id: str | None = None) -> list[dict]:
    """The practice part of the plan for each connected tenant (or one): contacts -> clients for
    organisations, xpm for Practice Manager tenants. One dict per tenant:
    {tenant_id, tenant_name, tenant_type, status, steps, busy, run_id, clients}."""
    from ..connections import list_connections

    out = []
    for conn in list_connections(settings):
        if conn.get("status") != "connected" or (tenant_id and conn["tenant_id"] != tenant_id):
            continue
        ttype = (conn.get("tenant_type") or "").upper()
        only = frozenset({"xpm"} if ttype == "PRACTICEMANAGER" else {"contacts", "clients"})
        result = run_sync(settings, SyncRequest(conn["tenant_id"], only=only, trigger=trigger),
                          transport=transport, clock=clock, progress=progress)
        d = result.to_dict()
        entry = {"tenant_id": conn["tenant_id"], "tenant_name": conn.get("tenant_name"), "tenant_type": ttype,
                 **{k: d[k] for k in ("status", "steps", "busy", "run_id")}}
        clients = next((s for s in result.steps if s.step == "clients"), None)
        if clients is not None:
            entry["clients"] = clients.detail
        out.append(entry)
    return out
