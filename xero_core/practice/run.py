"""Contacts -> clients for one tenant: the pipeline's `clients` step calls this.

The logic lives in practice.clients.reconcile_stored_contacts. The practice workflows of every
tenant, as a whole, are `xero_core.pipeline.run.sync_practices` (the pipeline sits above practice/
and sync/, which are peers).
"""
from __future__ import annotations

import logging

from ..clock import SYSTEM_CLOCK, Clock
from ..settings import Settings
from .matching import ReconcileResult, reconcile_contacts  # noqa: F401

log = logging.getLogger(__name__)

CURSOR = "clients_reconcile"  # sync_cursors.resource: the newest contacts.synced_at reconciled


def reconcile_stored_contacts(settings: Settings, tenant_id: str, *, clock: Clock = SYSTEM_CLOCK,
                              full: bool = False) -> ReconcileResult:
    """Stored contacts -> clients (the logic lives in practice.clients.reconcile_stored_contacts)."""
    from .clients import reconcile_stored_contacts as reconcile

    return reconcile(settings, tenant_id, clock=clock, full=full)
