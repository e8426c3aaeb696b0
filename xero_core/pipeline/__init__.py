"""The pipeline: what a tenant's sync runs (plan), for every trigger (run_sync), as durable jobs
(jobs) run by worker pools (worker). Sits above xero_core.sync and xero_core.practice, which are
peers. See docs/internals.md."""
from .request import SyncRequest  # noqa: F401
