"""The app's one adapter onto xero_core.

Pages call the engine through the names below. Each name resolves its xero_core function on
first call, so a page whose engine module has not landed yet (or is missing from a trimmed
install) says "not available yet" instead of failing to import. Nothing here implements
engine behaviour: it only finds the function and forwards the call.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


class NotAvailable(Exception):
    """An engine feature the app needs is not in this build."""

    def __init__(self, feature: str, where: str):
        super().__init__(f"{feature} is not available yet in this build ({where} is missing).")
        self.feature = feature
        self.where = where


def _resolve(module: str, name: str, feature: str) -> Callable[..., Any]:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # Only a missing engine module means "not there yet"; a missing third-party
        # package inside an existing module is a real error and must surface.
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            raise NotAvailable(feature, module) from None
        raise
    fn = getattr(mod, name, None)
    if fn is None:
        raise NotAvailable(feature, f"{module}.{name}")
    return fn


class _Lazy:
    def __init__(self, module: str, name: str, feature: str):
        self.module, self.name, self.feature = module, name, feature

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _resolve(self.module, self.name, self.feature)(*args, **kwargs)

    def available(self) -> bool:
        try:
            _resolve(self.module, self.name, self.feature)
        except NotAvailable:
            return False
        return True

    def __repr__(self) -> str:
        return f"<engine {self.module}.{self.name}>"


def _e(module: str, name: str, feature: str) -> _Lazy:
    return _Lazy(f"xero_core.{module}", name, feature)


# Core (issue 2)
begin_connect = _e("oauth", "begin_connect", "Connecting to Xero")
consent_pending = _e("oauth", "consent_pending", "Connecting to Xero")
complete_connect = _e("oauth", "complete_connect", "Connecting to Xero")
oauth_error_advice = _e("oauth", "oauth_error_advice", "OAuth error advice")
disconnect = _e("oauth", "disconnect", "Disconnecting")
list_connections = _e("connections", "list_connections", "The list of connections")
get_connection = _e("connections", "get_connection", "Connection details")
token_summary = _e("tokens", "token_summary", "Token expiry")

# Sync (issue 4)
sync_all = _e("pipeline.run", "sync_tenant", "Sync now")  # the whole plan: financial, clients, documents, ...
sync_all_tenants = _e("pipeline.run", "sync_tenants", "Sync all organisations")
# Sync jobs (issue 15): queued by pages, run by the scheduler or the app server's pool
sync_request = _e("pipeline.request", "SyncRequest", "Sync requests")
submit_sync = _e("pipeline.worker", "submit", "Sync jobs")
ensure_job_pool = _e("pipeline.worker", "ensure_background_pool", "The app's sync job runner")
active_jobs = _e("pipeline.jobs", "active_jobs", "Sync jobs")
list_jobs = _e("pipeline.jobs", "list_jobs", "Sync jobs")
get_job = _e("pipeline.jobs", "get", "Sync jobs")
cancel_job = _e("pipeline.jobs", "request_cancel", "Cancelling a sync")
budget_status = _e("ratelimit", "budget_status", "The API budget")

# Scheduler and analysis (issue 7)
read_scheduler_state = _e("scheduling", "read_state", "The scheduler's state")
set_scheduler_paused = _e("scheduling", "set_paused", "Pausing the scheduler")
weekly_pnl = _e("analysis", "weekly_pnl", "The weekly P&L")
revenue_mix = _e("analysis", "revenue_mix", "The revenue mix")
cash_position = _e("analysis", "cash_position", "The cash position")
data_status = _e("analysis", "data_status", "The data status")

# Practice (issue 5)
xpm_get_mapping = _e("practice.xpm", "get_mapping", "Practice Manager mapping")
xpm_set_mapping = _e("practice.xpm", "set_mapping", "Practice Manager mapping")
xpm_set_enabled = _e("practice.xpm", "set_xpm_enabled", "Practice Manager")
xpm_preview_mapping = _e("practice.xpm", "preview_mapping", "The mapping preview")
xpm_known_states = _e("practice.xpm", "known_states", "Practice Manager job states")
list_campaigns = _e("practice.xpm", "campaigns", "Campaigns")
handle_webhook = _e("practice.webhooks", "handle_webhook", "The webhook receiver")
webhook_status = _e("practice.webhooks", "webhook_status", "Webhook status")
recent_webhook_events = _e("practice.webhooks", "recent_events", "Recent webhook events")
drain_webhooks = _e("practice.webhooks", "drain", "Processing webhook events")
retry_failed_webhooks = _e("practice.webhooks", "retry_failed", "Retrying webhook events")
webhook_worker = _e("practice.webhooks", "Worker", "The webhook worker")
set_webhook_key = _e("practice.webhooks", "set_webhook_key", "Storing the webhook key")
webhook_key_mask = _e("practice.webhooks", "webhook_key_mask", "The webhook key")
list_clients = _e("practice.clients", "list_clients", "Clients")
add_client = _e("practice.clients", "add_client", "Adding a client")
edit_client = _e("practice.clients", "edit_client", "Editing a client")
import_clients_csv = _e("practice.clients", "import_csv", "Importing clients")
match_candidates = _e("practice.clients", "list_candidates", "Ambiguous matches")
resolve_match = _e("practice.clients", "resolve_match", "Resolving a match")
add_document = _e("practice.documents", "add_document", "Adding a document")
list_documents = _e("practice.documents", "list_documents", "The push queue")
push_documents = _e("practice.documents", "push_documents", "Pushing documents")
push_queue = _e("practice.documents", "push_queue", "The push queue")
match_clients_now = _e("practice.clients", "match_clients_now", "Matching clients")
last_reconciliations = _e("practice.clients", "last_reconciliations", "The last reconciliation")
skipped_contacts = _e("practice.clients", "skipped_contacts", "Contacts that are not clients")
add_client_from_contact = _e("practice.clients", "add_client_from_contact", "Adding a contact as a client")
