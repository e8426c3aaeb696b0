"""`sync_all_practices`: the practice workflows for every connected tenant, as the scheduler runs them.

Organisations: the sync runner's `contacts` step (full the first time, then incremental by
If-Modified-Since, paged and rate-limited), then every contact stored since the last pass is
reconciled into `clients` (whoever stored it: this run, the daily full sync or a webhook).
Practice Manager tenants: the runner's `xpm` step (jobs, client links, chase campaigns).
"""
from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from typing import Callable

from ..clock import SYSTEM_CLOCK, Clock
from ..db import connect, transaction
from ..settings import Settings
from .matching import ReconcileResult, reconcile_contacts  # noqa: F401

log = logging.getLogger(__name__)

CURSOR = "clients_reconcile"  # sync_cursors.resource: the newest contacts.synced_at reconciled


def reconcile_stored_contacts(settings: Settings, tenant_id: str, *, clock: Clock = SYSTEM_CLOCK,
                              full: bool = False) -> ReconcileResult:
    """Stored contacts -> clients (the logic lives in practice.clients.reconcile_stored_contacts)."""
    from .clients import reconcile_stored_contacts as reconcile

    return reconcile(settings, tenant_id, clock=clock, full=full)


def _log_clients_step(settings: Settings, tenant_id: str, run_id: str, trigger: str, started, finished,
                      res: ReconcileResult | None, error: str | None) -> None:
    from ..sync import store

    rows = (res.linked + res.created + res.updated) if res else 0
    with connect(settings.db_path) as con:
        store.log_finish(con, sync_id=uuid.uuid4().hex, run_id=run_id, tenant_id=tenant_id, sync_type="clients",
                         trigger=trigger, status="failed" if error else "success", rows=rows, api_calls=0,
                         bytes_downloaded=0, error=error, started_at=started, finished_at=finished, period=None,
                         detail=res.as_dict() if res else None)


def sync_all_practices(settings: Settings, *, trigger: str = "manual", transport=None, clock: Clock | None = None,
                       progress: Callable[[dict], None] | None = None, tenant_id: str | None = None) -> list[dict]:
    """Contacts -> clients for each organisation, jobs -> campaigns for each Practice Manager tenant.

    Returns one dict per tenant: {tenant_id, tenant_name, tenant_type, status, steps, clients}.
    """
    from ..connections import list_connections
    from ..sync.runner import sync_all

    clock = clock or SYSTEM_CLOCK
    out = []
    for conn in list_connections(settings):
        if conn.get("status") != "connected" or (tenant_id and conn["tenant_id"] != tenant_id):
            continue
        tid, ttype = conn["tenant_id"], (conn.get("tenant_type") or "").upper()
        only = "xpm" if ttype == "PRACTICEMANAGER" else "contacts"
        result = sync_all(settings, tid, only=only, trigger=trigger, transport=transport, clock=clock, progress=progress)
        entry = {"tenant_id": tid, "tenant_name": conn.get("tenant_name"), "tenant_type": ttype, **{
            k: v for k, v in result.to_dict().items() if k in ("status", "steps", "busy", "run_id")}}
        if only == "contacts" and not result.busy:
            started = clock.now()
            res, error = None, None
            try:
                res = reconcile_stored_contacts(settings, tid, clock=clock)
            except Exception as exc:  # reported on the clients step; other tenants continue
                log.exception("reconciling clients for tenant %s failed", tid)
                error = f"{type(exc).__name__}: {exc}"
            _log_clients_step(settings, tid, result.run_id, trigger, started, clock.now(), res, error)
            entry["clients"] = res.as_dict() if res else None
            entry["steps"] = entry["steps"] + [{"step": "clients", "status": "failed" if error else "success",
                                                "rows": (res.linked + res.created + res.updated) if res else 0,
                                                "error": error}]
            if error:
                entry["status"] = "partial"
        out.append(entry)
    return out
