"""The app server runs queued sync jobs that nobody else takes, outside any page's script run.

Who runs a job (README, "Who runs syncs"): the scheduler process when it is running; otherwise this
server. Started from the server's lifespan (app_support.webhook_route), it is a worker pool of
xero_core.pipeline whose threads belong to the server, not to a page: leaving the page, closing
the tab or a second browser never stops a job. While a scheduler is running the pool leaves new
jobs to it and takes only those still queued after GRACE_SECONDS (a scheduler busy with its own
cycle, or a cron `--once` run that takes only its own jobs), so a job never waits on a process
that will not run it.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from . import engine

log = logging.getLogger("ledgerlink.app.jobs")
GRACE_SECONDS = 5.0
SCHEDULER_CHECK_SECONDS = 2.0

_state: dict[str, Any] = {}


def claimable_for(settings, *, now=time.time):
    """The pool's claim policy: any job when no scheduler runs, else the ones it left waiting."""
    cache = {"at": -1e9, "running": False}

    def claimable():
        t = time.monotonic()
        if t - cache["at"] > SCHEDULER_CHECK_SECONDS:
            try:
                cache["running"] = bool((engine.read_scheduler_state(settings) or {}).get("running"))
            except Exception:  # an unreadable state file: run the jobs ourselves
                cache["running"] = False
            cache["at"] = t
        if not cache["running"]:
            return None
        cutoff = now() - GRACE_SECONDS
        return [j.job_id for j in engine.active_jobs(settings) if j.state == "queued" and j.created_at <= cutoff]

    return claimable


def start(settings) -> None:
    """Start the server's pool (once per server process)."""
    if "pool" in _state:
        return
    _state["pool"] = engine.ensure_job_pool(settings, label="app", claimable=claimable_for(settings))


def stop() -> None:
    pool = _state.pop("pool", None)
    if pool is not None:
        # Jobs under way end after their current step and read "interrupted"; the next run resumes.
        pool.stop("the admin app was stopped", timeout=30)
