"""Document-chasing campaigns driven by XPM job states (pure planning + one DB apply).

A job in a state the practice mapped as "needs documents" has exactly one campaign for its client
that still covers it (open, paused by the admin, or stopped because the documents arrived: none of
these is reopened); when the job leaves those states (moved on, completed, gone, or the mapping
changed) the campaign is completed with the reason in words. Its reminders: practice/chase.py.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from duckdb import DuckDBPyConnection

from .sql import Row, rows


def norm_state(state: str | None) -> str:
    return " ".join((state or "").split()).casefold()


@dataclass(frozen=True)
class JobView:
    job_id: str
    state: str | None
    xpm_client_id: str | None
    client_id: str | None  # clients.client_id when linked


@dataclass(frozen=True)
class OpenCampaign:
    campaign_id: str
    job_id: str
    xpm_client_id: str | None
    client_id: str | None
    job_state: str | None


@dataclass
class Plan:
    open: list[JobView]
    complete: list[tuple[str, str]]  # (campaign_id, reason)
    restate: list[tuple[str, str | None, str | None]]  # (campaign_id, new state, client_id) still open

    @property
    def empty(self) -> bool:
        return not (self.open or self.complete or self.restate)


def plan_campaigns(jobs: dict[str, JobView], open_campaigns: list[OpenCampaign], mapped: set[str],
                   gone_states: dict[str, str | None] | None = None, *, enabled: bool = True) -> Plan:
    """What to open, complete and update. `gone_states`: state of jobs no longer in the current list
    (None when Practice Manager no longer knows the job)."""
    gone_states = gone_states or {}
    wanted = {norm_state(s) for s in mapped}
    plan = Plan([], [], [])
    covered: set[tuple[str, str | None]] = set()
    for c in open_campaigns:
        job = jobs.get(c.job_id)
        if not enabled:
            plan.complete.append((c.campaign_id, "chasing was turned off for this Practice Manager connection"))
            continue
        if (c.job_id, c.xpm_client_id) in covered:  # a duplicate from the past: close it
            plan.complete.append((c.campaign_id, "duplicate campaign for the same job and client"))
            continue
        if job is None:
            if c.job_id in gone_states and gone_states[c.job_id]:
                reason = f"job moved to {gone_states[c.job_id]}"
            else:
                reason = "job is no longer in Practice Manager's current jobs"
            plan.complete.append((c.campaign_id, reason))
            continue
        if job.xpm_client_id != c.xpm_client_id:
            plan.complete.append((c.campaign_id, "job moved to another client"))
            continue
        if norm_state(job.state) not in wanted:
            if norm_state(job.state) == norm_state(c.job_state):
                reason = f"state {job.state!r} no longer means 'needs documents'"
            else:
                reason = f"job moved to {job.state}"
            plan.complete.append((c.campaign_id, reason))
            continue
        covered.add((c.job_id, c.xpm_client_id))
        if job.state != c.job_state or (job.client_id and job.client_id != c.client_id):
            plan.restate.append((c.campaign_id, job.state, job.client_id or c.client_id))
    if enabled:
        for job in sorted(jobs.values(), key=lambda j: j.job_id):
            if norm_state(job.state) in wanted and (job.job_id, job.xpm_client_id) not in covered:
                plan.open.append(job)
                covered.add((job.job_id, job.xpm_client_id))
    return plan


def load_open(con: DuckDBPyConnection, tenant_id: str) -> list[OpenCampaign]:
    found = con.execute(
        "SELECT campaign_id, job_id, xpm_client_id, client_id, job_state FROM chase_campaigns "
        "WHERE tenant_id = ? AND status IN ('open', 'paused', 'stopped') ORDER BY opened_at, campaign_id",
        [tenant_id],
    ).fetchall()
    return [OpenCampaign(*r) for r in found]


def apply_plan(con: DuckDBPyConnection, tenant_id: str, plan: Plan, now: datetime) -> dict[str, int]:
    """Write the plan (call inside the step's transaction)."""
    for cid, reason in plan.complete:
        con.execute(
            "UPDATE chase_campaigns SET status = 'completed', completed_at = ?, completion_reason = ?, "
            "next_reminder_at = NULL WHERE campaign_id = ? AND status IN ('open', 'paused', 'stopped')",
            [now, reason, cid],
        )
    for cid, state, client_id in plan.restate:
        con.execute("UPDATE chase_campaigns SET job_state = ?, client_id = ? WHERE campaign_id = ?", [state, client_id, cid])
    for job in plan.open:
        con.execute(
            "INSERT INTO chase_campaigns (campaign_id, tenant_id, client_id, xpm_client_id, job_id, job_state, status, "
            "opened_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?)",
            ["cmp_" + uuid.uuid4().hex[:16], tenant_id, job.client_id, job.xpm_client_id, job.job_id, job.state, now],
        )
    return {"opened": len(plan.open), "completed": len(plan.complete), "updated": len(plan.restate)}


def list_campaigns(con: DuckDBPyConnection, tenant_id: str | None = None, status: str | None = None) -> list[Row]:
    where: list[str] = []
    params: list[str] = []
    if tenant_id:
        where.append("c.tenant_id = ?")
        params.append(tenant_id)
    if status:
        where.append("c.status = ?")
        params.append(status)
    sql = (
        "SELECT c.*, k.name AS client_name, j.name AS job_name FROM chase_campaigns c "
        "LEFT JOIN clients k ON k.client_id = c.client_id "
        "LEFT JOIN xpm_jobs j ON j.tenant_id = c.tenant_id AND j.job_id = c.job_id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY c.opened_at DESC, c.campaign_id"
    )
    return rows(con, sql, params)
