"""The app's one adapter onto xero_core: the names its pages call, imported plainly.

Pages call `engine.<name>(settings, ...)` rather than reaching into xero_core themselves, so what
the app uses of the engine is listed here, once (tests/test_engine.py checks every
`engine.<name>` a page calls exists). Syncs go through `xero_core.engine.Engine`, as every other
trigger's do. Nothing here implements engine behaviour.
"""
from __future__ import annotations

from xero_core.analysis import cash_position, data_status, revenue_mix, weekly_pnl  # noqa: F401
from xero_core.connections import get_connection, list_connections  # noqa: F401
from xero_core.engine import Engine
from xero_core.oauth import (begin_connect, complete_connect, consent_pending, disconnect,  # noqa: F401
                             oauth_error_advice)
from xero_core.pipeline.jobs import Job, active_jobs, list_jobs  # noqa: F401
from xero_core.pipeline.jobs import get as get_job  # noqa: F401
from xero_core.pipeline.jobs import request_cancel as cancel_job  # noqa: F401
from xero_core.pipeline.request import SyncRequest as sync_request  # noqa: F401
from xero_core.pipeline.worker import ensure_background_pool as ensure_job_pool  # noqa: F401
from xero_core.practice.clients import (add_client, add_client_from_contact, edit_client,  # noqa: F401
                                        last_reconciliations, list_clients, match_clients_now, resolve_match,
                                        skipped_contacts)
from xero_core.practice.clients import import_csv as import_clients_csv  # noqa: F401
from xero_core.practice.clients import list_candidates as match_candidates  # noqa: F401
from xero_core.practice.documents import add_document, list_documents, push_documents, push_queue  # noqa: F401
from xero_core.practice.webhooks import Worker as webhook_worker  # noqa: F401
from xero_core.practice.webhooks import drain as drain_webhooks  # noqa: F401
from xero_core.practice.webhooks import handle_webhook, set_webhook_key, webhook_key_mask, webhook_status  # noqa: F401
from xero_core.practice.webhooks import recent_events as recent_webhook_events  # noqa: F401
from xero_core.practice.webhooks import retry_failed as retry_failed_webhooks  # noqa: F401
from xero_core.practice.xpm import campaigns as list_campaigns  # noqa: F401
from xero_core.practice.xpm import get_mapping as xpm_get_mapping  # noqa: F401
from xero_core.practice.xpm import known_states as xpm_known_states  # noqa: F401
from xero_core.practice.xpm import preview_mapping as xpm_preview_mapping  # noqa: F401
from xero_core.practice.xpm import set_mapping as xpm_set_mapping  # noqa: F401
from xero_core.practice.xpm import set_xpm_enabled as xpm_set_enabled  # noqa: F401
from xero_core.ratelimit import budget_status  # noqa: F401
from xero_core.scheduling import read_state as read_scheduler_state  # noqa: F401
from xero_core.scheduling import set_paused as set_scheduler_paused  # noqa: F401
from xero_core.settings import Settings
from xero_core.sync.context import SyncResult
from xero_core.tokens import token_summary  # noqa: F401


def sync_now(settings: Settings, tenant_id: str, **fields) -> SyncResult:
    """One tenant's plan (or `only=` some steps), in this script run: what a page waits for."""
    return Engine(settings).sync(tenant_id, **fields)


def submit_sync(settings: Settings, request, *, tenant_name: str | None = None) -> Job:
    """Queue a sync job (or join the tenant's): the pages' "Sync now" survives leaving the page."""
    return Engine(settings).enqueue(request, tenant_name=tenant_name)
