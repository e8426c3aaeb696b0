"""Contacts -> clients for one tenant: the pipeline's `clients` step calls this.

Every contact stored since the last pass is reconciled into `clients` (whoever stored it: the
contacts step, a full sync or a webhook). The practice workflows of every tenant, as a whole, are
`xero_core.pipeline.run.sync_practices` (the pipeline sits above practice/ and sync/).
"""
from __future__ import annotations

import json
import logging
from datetime import datetime

from ..clock import SYSTEM_CLOCK, Clock
from ..db import connect, transaction
from ..settings import Settings
from .matching import ReconcileResult, reconcile_contacts

log = logging.getLogger(__name__)

CURSOR = "clients_reconcile"  # sync_cursors.resource: the newest contacts.synced_at reconciled


def reconcile_stored_contacts(settings: Settings, tenant_id: str, *, clock: Clock = SYSTEM_CLOCK,
                              full: bool = False) -> ReconcileResult:
    """Contacts stored since the last pass (all with full=True) -> clients, in one transaction."""
    with connect(settings.db_path) as con, transaction(con):
        cur = None if full else con.execute(
            "SELECT cursor_value FROM sync_cursors WHERE tenant_id = ? AND resource = ?", [tenant_id, CURSOR]).fetchone()
        since = datetime.fromisoformat(cur[0]) if cur and cur[0] else None
        rows = con.execute(
            "SELECT raw, synced_at FROM contacts WHERE tenant_id = ?" + (" AND synced_at > ?" if since else "")
            + " ORDER BY synced_at, contact_id", [tenant_id, since] if since else [tenant_id]).fetchall()
        records = []
        for raw, _ in rows:
            try:
                records.append(json.loads(raw) if isinstance(raw, str) else dict(raw))
            except (TypeError, ValueError):
                continue
        res = reconcile_contacts(con, tenant_id, records, clock=clock)
        newest = max((r[1] for r in rows if r[1] is not None), default=None)
        if newest is not None:
            con.execute(
                "INSERT OR REPLACE INTO sync_cursors (tenant_id, resource, cursor_value, updated_at) VALUES (?, ?, ?, ?)",
                [tenant_id, CURSOR, newest.isoformat(), clock.now()])
    return res
