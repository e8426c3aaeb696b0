"""Xero Practice Manager: current jobs into `xpm_jobs`, XPM clients linked to `clients`, and the
chase campaigns that job states open and complete. `sync_practice` is the work of the xero_core.pipeline
plan's xpm step for PRACTICEMANAGER tenants.

Network first, then one transaction: a business error (`<Status>ERROR</Status>` in a 200),
malformed or hostile XML fails the step with the message and writes nothing. Practice Manager needs
Xero's Advanced tier since March 2026; where Xero refuses it the step is skipped and the reason is
kept on `connections.tier_note` for the app, instead of a failure every night.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from duckdb import DuckDBPyConnection

from ..client import XeroClient
from ..clock import SYSTEM_CLOCK, Clock
from ..db import connect, transaction
from ..errors import LedgerlinkError, ReconnectNeeded, TierRefused, XeroError
from ..settings import Settings
from . import campaigns as CMP
from .matching import Decision, Index, Rec, clear_candidates, decide, new_client_id, set_candidates
from .sql import Row, rows
from .xmlsafe import UnsafeXml
from .xpm_xml import XpmClient, XpmError, XpmJob, parse_clients, parse_jobs

PM = "/practicemanager/3.0"  # relative to settings.api_url (settings.practicemanager_url is the same place)
JOBS_CURRENT = f"{PM}/job.api/current"
JOB_GET = f"{PM}/job.api/get/{{job_id}}"
CLIENTS_LIST = f"{PM}/client.api/list"
XML_HEADERS = {"Accept": "text/xml"}
MAX_GONE_LOOKUPS = 50  # per run: jobs that left the current list, looked up once to learn their end state
TIER_NOTE = ("Xero Practice Manager's API needs Xero's Advanced plan (since March 2026) and Xero refused it "
             "for this connection. Jobs and chase campaigns pause until the plan includes it; nothing else is affected.")


class XpmConfigError(LedgerlinkError):
    pass


# --------------------------------------------------------------------------- settings for the app


def _practice_tenant(con: DuckDBPyConnection, tenant_id: str) -> None:
    row = con.execute("SELECT upper(coalesce(tenant_type, '')) FROM connections WHERE tenant_id = ?", [tenant_id]).fetchone()
    if row is None:
        raise XpmConfigError(f"No connection {tenant_id}. Connect Xero Practice Manager first.")
    if row[0] != "PRACTICEMANAGER":
        raise XpmConfigError(f"Connection {tenant_id} is an {row[0].lower() or 'unknown'} tenant, not Xero Practice Manager.")


def get_mapping(settings: Settings, tenant_id: str) -> set[str]:
    with connect(settings.db_path, read_only=True) as con:
        return {r[0] for r in con.execute(
            "SELECT state FROM xpm_status_mappings WHERE tenant_id = ? AND needs_documents", [tenant_id]).fetchall()}


def set_mapping(settings: Settings, tenant_id: str, states: set[str] | list[str], *, clock: Clock = SYSTEM_CLOCK) -> set[str]:
    """Replace the states that mean "needs documents". Takes effect at the next XPM sync."""
    clean = {" ".join(s.split()) for s in states if s and s.strip()}
    now = clock.now()
    with connect(settings.db_path) as con, transaction(con):
        _practice_tenant(con, tenant_id)
        # A state that stays mapped keeps its cadence and "what is needed" (chase settings).
        con.execute("DELETE FROM xpm_status_mappings WHERE tenant_id = ? AND state NOT IN (SELECT unnest(?::VARCHAR[]))",
                    [tenant_id, sorted(clean)])
        kept = {r[0] for r in con.execute("SELECT state FROM xpm_status_mappings WHERE tenant_id = ?", [tenant_id]).fetchall()}
        for s in sorted(clean - kept):
            con.execute("INSERT INTO xpm_status_mappings (tenant_id, state, needs_documents, updated_at) VALUES (?, ?, TRUE, ?)",
                        [tenant_id, s, now])
    return clean


def set_xpm_enabled(settings: Settings, tenant_id: str, enabled: bool) -> None:
    with connect(settings.db_path) as con, transaction(con):
        _practice_tenant(con, tenant_id)
        con.execute("UPDATE connections SET xpm_enabled = ? WHERE tenant_id = ?", [bool(enabled), tenant_id])


def is_enabled(settings: Settings, tenant_id: str) -> bool:
    with connect(settings.db_path, read_only=True) as con:
        row = con.execute("SELECT coalesce(xpm_enabled, FALSE) FROM connections WHERE tenant_id = ?", [tenant_id]).fetchone()
    return bool(row and row[0])


def known_states(settings: Settings, tenant_id: str) -> list[str]:
    """States seen in synced jobs plus those configured, for the mapping picker."""
    with connect(settings.db_path, read_only=True) as con:
        found = con.execute(
            "SELECT state FROM xpm_jobs WHERE tenant_id = ? AND state IS NOT NULL "
            "UNION SELECT state FROM xpm_status_mappings WHERE tenant_id = ?", [tenant_id, tenant_id]).fetchall()
    return sorted({r[0] for r in found}, key=str.casefold)


def preview_mapping(settings: Settings, tenant_id: str, states: Iterable[str]) -> list[Row]:
    """The current jobs (and their clients) that these states would enrol in chase campaigns."""
    wanted = {CMP.norm_state(s) for s in states}
    with connect(settings.db_path, read_only=True) as con:
        jobs = rows(con,
                    "SELECT j.job_id, j.name AS job_name, j.state, j.client_id AS xpm_client_id, j.client_name, "
                    "j.ledgerlink_client_id AS client_id, k.name AS ledgerlink_client_name, j.due_date "
                    "FROM xpm_jobs j LEFT JOIN clients k ON k.client_id = j.ledgerlink_client_id "
                    "WHERE j.tenant_id = ? AND coalesce(j.is_current, TRUE) ORDER BY j.job_id", [tenant_id])
    return [r for r in jobs if CMP.norm_state(r["state"]) in wanted]


def list_jobs(settings: Settings, tenant_id: str | None = None) -> list[Row]:
    with connect(settings.db_path, read_only=True) as con:
        sql = ("SELECT tenant_id, job_id, name, state, client_id, client_name, ledgerlink_client_id, start_date, due_date, "
               "completed_date, is_current FROM xpm_jobs")
        return rows(con, sql + (" WHERE tenant_id = ?" if tenant_id else "") + " ORDER BY tenant_id, job_id",
                    [tenant_id] if tenant_id else [])


def campaigns(settings: Settings, tenant_id: str | None = None, status: str | None = None) -> list[Row]:
    with connect(settings.db_path, read_only=True) as con:
        return CMP.list_campaigns(con, tenant_id, status)


# --------------------------------------------------------------------------- fetch (network only)


@dataclass
class Fetched:
    jobs: list[XpmJob]
    clients: list[XpmClient]
    gone: dict[str, XpmJob | None] = field(default_factory=dict)  # job_id -> its state now, None if unknown


def _get_xml(client: XeroClient, path: str) -> bytes:
    resp = client.request("GET", path, headers=XML_HEADERS)
    return resp.content


def fetch_practice(client: XeroClient, gone_ids: list[str]) -> Fetched:
    jobs = parse_jobs(_get_xml(client, JOBS_CURRENT))
    xclients = parse_clients(_get_xml(client, CLIENTS_LIST))
    current = {j.job_id for j in jobs}
    gone: dict[str, XpmJob | None] = {}
    for job_id in [g for g in gone_ids if g not in current][:MAX_GONE_LOOKUPS]:
        try:
            found = parse_jobs(_get_xml(client, JOB_GET.format(job_id=job_id)), what=f"job {job_id} (job.api/get)")
        except XpmError as exc:
            if "invalid job identifier" not in str(exc).lower():
                raise
            found = []
        gone[job_id] = found[0] if found else None
    return Fetched(jobs, xclients, gone)


# --------------------------------------------------------------------------- save (one transaction)


@dataclass
class ClientLinks:
    """What `link_xpm_clients` did, and every XPM client id's Ledgerlink client afterwards."""

    client_of: dict[str, str]  # xpm_client_id -> clients.client_id
    linked: int = 0
    created: int = 0
    ambiguous: int = 0


def link_xpm_clients(con: DuckDBPyConnection, tenant_id: str, xclients: list[XpmClient], now: datetime) -> ClientLinks:
    """XPM clients -> `clients`: xpm_client_id first, then email, then name; ambiguity listed."""
    linked_ids: dict[str, str] = {r[0]: r[1] for r in con.execute(
        "SELECT xpm_client_id, client_id FROM clients WHERE xpm_client_id IS NOT NULL").fetchall()}
    out = ClientLinks(linked_ids)
    open_rows = rows(con, "SELECT client_id, name, email FROM clients WHERE xpm_client_id IS NULL AND NOT coalesce(archived, FALSE)")
    clients_idx = Index(Rec(r["client_id"], r["name"], r["email"]) for r in open_rows)
    live = [x for x in xclients if not (x.archived or x.deleted)]
    rivals_idx = Index(Rec(x.xpm_client_id, x.name, x.email) for x in live if x.xpm_client_id not in linked_ids)
    with_cands = {r[0] for r in con.execute(
        "SELECT DISTINCT contact_id FROM client_match_candidates WHERE tenant_id = ?", [tenant_id]).fetchall()}
    for x in live:
        if x.xpm_client_id in linked_ids:
            continue
        if x.xpm_client_id in with_cands:
            clear_candidates(con, tenant_id=tenant_id, contact_id=x.xpm_client_id, now=now)
        d: Decision = decide(Rec(x.xpm_client_id, x.name, x.email), clients_idx, rivals_idx)
        if d.kind == "match":
            cid = d.keys[0]
            con.execute("UPDATE clients SET xpm_client_id = ?, updated_at = ? WHERE client_id = ?", [x.xpm_client_id, now, cid])
            con.execute("UPDATE clients SET email = ? WHERE client_id = ? AND (email IS NULL OR email = '') "
                        "AND NOT json_exists(coalesce(edited_fields, '{}'), '$.email')", [x.email, cid])
            clients_idx.remove(cid)
            rivals_idx.remove(x.xpm_client_id)
            linked_ids[x.xpm_client_id] = cid
            out.linked += 1
        elif d.kind == "ambiguous":
            # Listed for an admin (resolve_match with this XPM tenant); the Xero-contact status is untouched.
            set_candidates(con, tenant_id, x.xpm_client_id, d.keys, "Practice Manager: " + d.reason, now, mark=False)
            out.ambiguous += 1
        else:
            cid = new_client_id()
            con.execute(
                "INSERT INTO clients (client_id, name, email, phone, xpm_client_id, match_status, archived, source, "
                "edited_fields, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'unmatched', FALSE, 'xpm', '{}', ?, ?)",
                [cid, x.name, x.email, x.phone, x.xpm_client_id, now, now],
            )
            rivals_idx.remove(x.xpm_client_id)
            linked_ids[x.xpm_client_id] = cid
            out.created += 1
    return out


_JOB_COLS = ("job_id", "name", "description", "client_id", "client_name", "state", "job_type", "start_date",
             "due_date", "completed_date", "ledgerlink_client_id", "raw", "is_current")


JobRow = tuple[str, str | None, str | None, str | None, str | None, str | None, str | None, date | None, date | None,
               date | None, str | None, str, bool]  # _JOB_COLS' values


def _upsert_jobs(con: DuckDBPyConnection, tenant_id: str, jobs: list[JobRow], now: datetime) -> None:
    """All jobs in one statement (a large practice has thousands of current jobs)."""
    if not jobs:
        return
    import pyarrow as pa  # here: a second to import, and only a sync of Practice Manager needs it

    types = {"start_date": pa.date32(), "due_date": pa.date32(), "completed_date": pa.date32(), "is_current": pa.bool_()}
    cols = list(zip(*jobs))
    table = pa.table({c: pa.array(cols[i], types.get(c, pa.string())) for i, c in enumerate(_JOB_COLS)})
    name = f"_xpm_jobs_{uuid.uuid4().hex[:8]}"
    con.register(name, table)
    try:
        names = ", ".join(_JOB_COLS)
        con.execute(f"INSERT OR REPLACE INTO xpm_jobs (tenant_id, {names}, synced_at) SELECT ?, {names}, ? FROM {name}",
                    [tenant_id, now])
    finally:
        con.unregister(name)


def _job_row(j: XpmJob, client_id: str | None, current: bool) -> JobRow:
    return (j.job_id, j.name, j.description, j.client_id, j.client_name, j.state, j.job_type, j.start_date,
            j.due_date, j.completed_date, client_id, j.raw, current)


def save_practice(con: DuckDBPyConnection, tenant_id: str, f: Fetched, *, enabled: bool, mapped: set[str],
                  now: datetime) -> dict[str, Any]:
    link = link_xpm_clients(con, tenant_id, f.clients, now)

    def client_of(xpm_client_id: str | None) -> str | None:
        return link.client_of.get(xpm_client_id) if xpm_client_id else None

    current_ids = {j.job_id for j in f.jobs}
    jobs = {j.job_id: _job_row(j, client_of(j.client_id), True) for j in f.jobs}
    for job_id, j in f.gone.items():
        if j is not None and j.job_id not in jobs:
            jobs[j.job_id] = _job_row(j, client_of(j.client_id), False)
    _upsert_jobs(con, tenant_id, list(jobs.values()), now)
    # Everything else that left the list stays as history, no longer current.
    stale = con.execute(
        "SELECT count(*) FROM xpm_jobs WHERE tenant_id = ? AND coalesce(is_current, TRUE) "
        "AND job_id NOT IN (SELECT unnest(?::VARCHAR[]))", [tenant_id, sorted(current_ids)]).fetchall()[0][0]
    if stale:
        con.execute("UPDATE xpm_jobs SET is_current = FALSE, synced_at = ? WHERE tenant_id = ? "
                    "AND coalesce(is_current, TRUE) AND job_id NOT IN (SELECT unnest(?::VARCHAR[]))",
                    [now, tenant_id, sorted(current_ids)])
    views = {j.job_id: CMP.JobView(j.job_id, j.state, j.client_id, client_of(j.client_id)) for j in f.jobs}
    gone_states = {k: (v.state if v is not None else None) for k, v in f.gone.items()}
    plan = CMP.plan_campaigns(views, CMP.load_open(con, tenant_id), mapped, gone_states, enabled=enabled)
    counts = CMP.apply_plan(con, tenant_id, plan, now)
    con.execute("UPDATE connections SET tier_note = NULL WHERE tenant_id = ? AND tier_note IS NOT NULL", [tenant_id])
    return {"jobs": len(f.jobs), "clients": len(f.clients), "clients_linked": link.linked,
            "clients_created": link.created, "clients_ambiguous": link.ambiguous,
            "campaigns_opened": counts["opened"], "campaigns_completed": counts["completed"],
            "left_current": stale}


# --------------------------------------------------------------------------- the step


@dataclass
class XpmResult:
    status: str  # success | failed | skipped
    rows: int = 0
    note: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def _looks_like_tier_refusal(client: XeroClient, settings: Settings) -> bool:
    """A 401 on Practice Manager with a token that works elsewhere is Xero refusing the plan."""
    try:
        client.request("GET", settings.connections_url)
        return True
    except XeroError:
        return False


def _record_tier(settings: Settings, tenant_id: str, note: str | None) -> None:
    with connect(settings.db_path) as con:
        con.execute("UPDATE connections SET tier_note = ? WHERE tenant_id = ?", [note, tenant_id])


def sync_practice(settings: Settings, tenant_id: str, client: XeroClient, *, clock: Clock = SYSTEM_CLOCK) -> XpmResult:
    with connect(settings.db_path, read_only=True) as con:
        row = con.execute("SELECT coalesce(xpm_enabled, FALSE) FROM connections WHERE tenant_id = ?", [tenant_id]).fetchone()
        enabled = bool(row and row[0])
        mapped = {r[0] for r in con.execute(
            "SELECT state FROM xpm_status_mappings WHERE tenant_id = ? AND needs_documents", [tenant_id]).fetchall()}
        watch = [r[0] for r in con.execute(
            "SELECT DISTINCT job_id FROM chase_campaigns WHERE tenant_id = ? AND status IN ('open', 'paused', 'stopped') "
            "UNION SELECT job_id FROM xpm_jobs WHERE tenant_id = ? AND coalesce(is_current, TRUE)",
            [tenant_id, tenant_id]).fetchall()]
    try:
        fetched = fetch_practice(client, sorted(watch))
    except TierRefused:
        _record_tier(settings, tenant_id, TIER_NOTE)
        return XpmResult("skipped", note="skipped: not available on this Xero plan (tier). " + TIER_NOTE)
    except ReconnectNeeded:
        if _looks_like_tier_refusal(client, settings):  # the token works: not a reconnect, a plan's refusal
            _record_tier(settings, tenant_id, TIER_NOTE)
            return XpmResult("skipped", note="skipped: not available on this Xero plan (tier). " + TIER_NOTE)
        raise
    except XeroError as exc:
        if exc.status == 401 and _looks_like_tier_refusal(client, settings):
            _record_tier(settings, tenant_id, TIER_NOTE)
            return XpmResult("skipped", note="skipped: not available on this Xero plan (tier). " + TIER_NOTE)
        raise
    except (XpmError, UnsafeXml) as exc:
        return XpmResult("failed", note=str(exc))
    now = clock.now()
    with connect(settings.db_path) as con, transaction(con):
        detail = save_practice(con, tenant_id, fetched, enabled=enabled, mapped=mapped, now=now)
    detail["xpm_enabled"] = enabled
    note = None if enabled else "Practice Manager chasing is off for this connection: jobs synced, no campaigns opened"
    return XpmResult("success", rows=detail["jobs"], note=note, detail=detail)
