"""The app's one adapter onto xero_core: the names its pages call, imported plainly.

Pages call `engine.<name>(settings, ...)` rather than reaching into xero_core themselves, so what
the app uses of the engine is listed here, once (tests/test_engine.py checks every
`engine.<name>` a page calls exists). Syncs go through `xero_core.engine.Engine`, as every other
trigger's do. Nothing here implements engine behaviour.
"""
from __future__ import annotations

from app_support.demo_services import caught_mail  # noqa: F401  (mock mode's Outbox: the demo's mail catcher)

from xero_core.analysis import (cash_position, data_status, headline, revenue_mix, week_axis,  # noqa: F401
                                weekly_pnl, working_copy)
from xero_core.analysis import currency as organisation_currency  # noqa: F401
from xero_core.connections import get_connection, list_connections  # noqa: F401
from xero_core.db import shared as one_database_open  # noqa: F401  (a page view opens DuckDB once)
from xero_core.engine import Engine
from xero_core.oauth import (begin_connect, complete_connect, consent_pending, disconnect,  # noqa: F401
                             oauth_error_advice)
from xero_core.pipeline.jobs import Job, active_jobs, list_jobs  # noqa: F401
from xero_core.pipeline.jobs import get as get_job  # noqa: F401
from xero_core.pipeline.jobs import request_cancel as cancel_job  # noqa: F401
from xero_core.pipeline.request import SyncRequest as sync_request  # noqa: F401
from xero_core.pipeline.stores import problems as store_problems  # noqa: F401
from xero_core.pipeline.worker import ensure_background_pool as ensure_job_pool  # noqa: F401
from xero_core.practice.client_orgs import (client_overview, clients_summary, link_organisation,  # noqa: F401
                                            organisations)
from xero_core.practice.clients import (add_client, add_client_from_contact, edit_client,  # noqa: F401
                                        last_reconciliations, list_clients, match_clients_now,
                                        reconciliation_state, resolve_match, skipped_contacts)
from xero_core.practice.roles import acknowledge_removals, removal_report, set_role  # noqa: F401
from xero_core.practice.clients import import_csv as import_clients_csv  # noqa: F401
from xero_core.practice.clients import list_candidates as match_candidates  # noqa: F401
from xero_core.practice.documents import add_document, list_documents, push_documents, push_queue  # noqa: F401
from xero_core.practice.chase import campaign as chase_campaign  # noqa: F401
from xero_core.practice.chase import get_config as chase_get_config  # noqa: F401
from xero_core.practice.chase import mapping_rows as chase_mapping_rows  # noqa: F401
from xero_core.practice.chase import outbox as chase_outbox  # noqa: F401
from xero_core.practice.chase import pause as chase_pause  # noqa: F401
from xero_core.practice.chase import preview as chase_preview  # noqa: F401
from xero_core.practice.chase import resume as chase_resume  # noqa: F401
from xero_core.practice.chase import send_again as chase_send_again  # noqa: F401
from xero_core.practice.chase import send_now as chase_send_now  # noqa: F401
from xero_core.practice.chase import set_cadence as chase_set_cadence  # noqa: F401
from xero_core.practice.chase import set_config as chase_set_config  # noqa: F401
from xero_core.practice.chase import set_smtp_password as chase_set_smtp_password  # noqa: F401
from xero_core.practice.chase import smtp_status as chase_smtp_status  # noqa: F401
from xero_core.practice.webhooks import Worker as webhook_worker  # noqa: F401
from xero_core.practice.webhooks import drain as drain_webhooks  # noqa: F401
from xero_core.practice.webhooks import handle_webhook, set_webhook_key, webhook_key_mask, webhook_status  # noqa: F401
from xero_core.practice.webhooks import categories_to_tick as webhook_categories  # noqa: F401
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
from xero_core.pipeline.result import SyncResult
from xero_core.tokens import token_summary  # noqa: F401


def sync_now(settings: Settings, tenant_id: str, **fields) -> SyncResult:
    """One tenant's plan (or `only=` some steps), in this script run: what a page waits for."""
    return Engine(settings).sync(tenant_id, **fields)


def submit_sync(settings: Settings, request, *, tenant_name: str | None = None) -> Job:
    """Queue a sync job (or join the tenant's): the pages' "Sync now" survives leaving the page."""
    return Engine(settings).enqueue(request, tenant_name=tenant_name)
