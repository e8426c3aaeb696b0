"""Client organisations and the practice client each belongs to, and what the practice has on a client.

A client organisation (practice.roles) is linked to its practice client on `connections.practice_client_id`,
only once an admin confirms it (`link_organisation`). Suggestions (`suggest_clients`) compare the
organisation Xero describes (`organisations`: name, legal name, tax number, website) with the practice's
clients: the same tax number as the client's contact in the practice ledger, the same name (normalised
as for matching), or the client's email at the organisation's web domain. `client_overview` gathers, for
one client, its jobs, documents, campaigns and the latest weekly figures of its organisations (read
through xero_core.analysis).
"""
from __future__ import annotations

import json
import re
from datetime import date
from typing import Any, TypedDict
from urllib.parse import urlsplit

from duckdb import DuckDBPyConnection

from ..clock import SYSTEM_CLOCK, Clock
from ..db import connect, transaction
from ..errors import LedgerlinkError
from ..settings import Settings
from .matching import norm_email, norm_name
from .roles import CLIENT_ORGANISATION, PRACTICE_LEDGER, read_roles
from .sql import Row, rows

METHODS = ("tax_number", "name", "email")  # strongest first
MAX_SUGGESTIONS = 3
# A client's address at one of these says nothing about which organisation it runs.
_PUBLIC_MAIL = frozenset("""gmail.com googlemail.com outlook.com hotmail.com live.com msn.com yahoo.com yahoo.com.au
icloud.com me.com aol.com proton.me protonmail.com bigpond.com bigpond.net.au optusnet.com.au gmx.com mail.com
xtra.co.nz fastmail.com zoho.com""".split())


class ClientOrgError(LedgerlinkError):
    pass


class OrgFacts(TypedDict):
    names: set[str]  # normalised (norm_name)
    tax: str | None  # normalised (norm_tax)
    domains: set[str]  # its websites' domains


class Suggestion(TypedDict):
    client_id: str
    name: str
    method: str  # one of METHODS


def _json(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        out = json.loads(value) if isinstance(value, (str, bytes)) and value else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def norm_tax(value: object) -> str | None:
    """'51 824 753 556' == '51824753556'; too short to be a tax number -> None."""
    digits = re.sub(r"[^0-9A-Za-z]", "", str(value or "")).upper()
    return digits if len(digits) >= 6 else None


def _domain(host: str | None) -> str | None:
    host = (host or "").strip().lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    return host or None


def website_domains(raw: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for link in raw.get("ExternalLinks") or []:
        url = str(link.get("Url") or "").strip()
        if not url:
            continue
        d = _domain(urlsplit(url if "://" in url else "https://" + url).hostname)
        if d:
            out.add(d)
    return out


def email_domain(email: str | None) -> str | None:
    e = norm_email(email)
    d = _domain(e.rsplit("@", 1)[1]) if e else None
    return d if d and d not in _PUBLIC_MAIL else None


def _has_table(con: DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM information_schema.tables WHERE table_name = ?", [name]).fetchall())


def _org_facts(con: DuckDBPyConnection, tenant_id: str) -> OrgFacts:
    """What Xero says about the organisation: its names, tax number and web domains (the `organisations`
    table when a sync stored it, else the connection's name)."""
    if _has_table(con, "organisations"):
        row = con.execute("SELECT o.name, o.legal_name, o.raw, c.tenant_name FROM connections c "
                          "LEFT JOIN organisations o USING (tenant_id) WHERE c.tenant_id = ?", [tenant_id]).fetchone()
    else:
        row = con.execute("SELECT NULL, NULL, NULL, tenant_name FROM connections WHERE tenant_id = ?",
                          [tenant_id]).fetchone()
    if row is None:
        return OrgFacts(names=set(), tax=None, domains=set())
    raw = _json(row[2])
    names = {n for n in (norm_name(row[0]), norm_name(row[1]), norm_name(row[3]),
                         norm_name(raw.get("Name")), norm_name(raw.get("LegalName"))) if n}
    return OrgFacts(names=names, tax=norm_tax(raw.get("TaxNumber")), domains=website_domains(raw))


def _clients_with_facts(con: DuckDBPyConnection, ledger: str | None) -> list[Row]:
    found = rows(con, "SELECT k.client_id, k.name, k.email, k.tenant_id, c.raw FROM clients k "
                      "LEFT JOIN contacts c ON c.tenant_id = k.tenant_id AND c.contact_id = k.xero_contact_id "
                      "WHERE NOT coalesce(k.archived, FALSE) ORDER BY lower(k.name), k.client_id")
    for r in found:
        raw = _json(r.pop("raw")) if r["tenant_id"] == ledger else {}
        r["tax"] = norm_tax(raw.get("TaxNumber"))
        r["n_name"] = norm_name(r["name"])
        r["domain"] = email_domain(r["email"]) or email_domain(raw.get("EmailAddress"))
    return found


def suggest_clients(con: DuckDBPyConnection, tenant_id: str, *, _clients: list[Row] | None = None) -> list[Suggestion]:
    """The practice clients this organisation may belong to, best evidence first:
    [{client_id, name, method}] (method: tax_number | name | email). Never links anything."""
    facts = _org_facts(con, tenant_id)
    clients = _clients if _clients is not None else _clients_with_facts(con, read_roles(con).ledger)
    found: dict[str, Suggestion] = {}
    for method in METHODS:
        for c in clients:
            if c["client_id"] in found:
                continue
            hit = ((method == "tax_number" and facts["tax"] and c["tax"] == facts["tax"])
                   or (method == "name" and c["n_name"] and c["n_name"] in facts["names"])
                   or (method == "email" and c["domain"] and c["domain"] in facts["domains"]))
            if hit:
                found[c["client_id"]] = Suggestion(client_id=c["client_id"], name=c["name"], method=method)
    return list(found.values())[:MAX_SUGGESTIONS]


def organisations(settings: Settings) -> dict[str, Any]:
    """Every organisation's role (practice.roles) with, for client organisations, the client it belongs to
    (`practice_client_id`, `client_name`, `link_method`) or the clients suggested (`suggested_clients`).
    The Connection page, the Clients page and `python -m xero_core role` show this."""
    with connect(settings.db_path, read_only=True) as con:
        r = read_roles(con)
        doc = r.as_dict()
        links = {row[0]: row[1:] for row in con.execute(
            "SELECT c.tenant_id, c.practice_client_id, k.name, c.practice_client_method FROM connections c "
            "LEFT JOIN clients k ON k.client_id = c.practice_client_id").fetchall()}
        clients: list[Row] | None = None
        for o in doc["organisations"]:
            cid, cname, method = links.get(o["tenant_id"], (None, None, None))
            o.update(practice_client_id=cid, client_name=cname if cid else None, link_method=method if cid else None,
                     suggested_clients=[])
            if o["effective"] == CLIENT_ORGANISATION and not cid:
                if clients is None:
                    clients = _clients_with_facts(con, r.ledger)
                o["suggested_clients"] = suggest_clients(con, o["tenant_id"], _clients=clients)
    return doc


def link_organisation(settings: Settings, tenant_id: str, client_id: str | None, *,
                      clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """An admin confirms which practice client a client organisation belongs to (None: unlink).
    The method recorded is the suggestion's when the admin took one, else 'manual'."""
    now = clock.now()
    with connect(settings.db_path) as con, transaction(con):
        r = read_roles(con)
        name = r.name_of(tenant_id)
        if name is None:
            raise ClientOrgError(f"No connected organisation {tenant_id}: see `python -m xero_core role`.")
        if r.role_of(tenant_id) == PRACTICE_LEDGER:
            raise ClientOrgError(f"{name} is the practice ledger: it belongs to no client. Make it a client "
                                 f"organisation first (`python -m xero_core role {tenant_id} client-organisation`).")
        if client_id is None:
            con.execute("UPDATE connections SET practice_client_id = NULL, practice_client_method = NULL, "
                        "practice_client_at = NULL WHERE tenant_id = ?", [tenant_id])
            return {"tenant_id": tenant_id, "tenant_name": name, "client_id": None, "client_name": None, "method": None}
        row = con.execute("SELECT name FROM clients WHERE client_id = ?", [client_id]).fetchone()
        if row is None:
            raise ClientOrgError(f"No client {client_id!r}. List clients with: python -m xero_core clients list")
        method = next((s["method"] for s in suggest_clients(con, tenant_id) if s["client_id"] == client_id), "manual")
        con.execute("UPDATE connections SET practice_client_id = ?, practice_client_method = ?, practice_client_at = ? "
                    "WHERE tenant_id = ?", [client_id, method, now, tenant_id])
    return {"tenant_id": tenant_id, "tenant_name": name, "client_id": client_id, "client_name": row[0], "method": method}


# --------------------------------------------------------------------------- one client's picture


def latest_figures(settings: Settings, tenant_id: str, *, today: date | None = None) -> dict[str, Any]:
    """The organisation's latest complete week from xero_core.analysis: {week_ending, income,
    gross_profit, net_profit, net_profit_previous, error}. No weekly data yet: error says so."""
    from .. import analysis  # here: it loads polars (a second) and reads pipeline/, a layer above practice/

    try:
        we = analysis.latest_week(settings, tenant_id, today=today)
        cmp = {r["metric"]: r for r in analysis.latest_week_comparison(settings, tenant_id, week_ending=we).to_dicts()}
    except LedgerlinkError as exc:
        return {"week_ending": None, "error": str(exc).split("\n")[0]}
    out: dict[str, Any] = {"week_ending": we, "error": None}
    for m in ("income", "gross_profit", "net_profit"):
        out[m] = cmp.get(m, {}).get("latest")
    out["net_profit_previous"] = cmp.get("net_profit", {}).get("previous_week")
    return out


def client_overview(settings: Settings, client_id: str, *, today: date | None = None) -> dict[str, Any]:
    """What the practice has on one client: {client, jobs, documents, campaigns, organisations (each with
    its latest weekly figures)}."""
    with connect(settings.db_path, read_only=True) as con:
        found = rows(con, "SELECT * FROM clients WHERE client_id = ?", [client_id])
        if not found:
            raise ClientOrgError(f"No client {client_id!r}. List clients with: python -m xero_core clients list")
        jobs = rows(con, "SELECT job_id, name, state, due_date, coalesce(is_current, TRUE) AS is_current FROM xpm_jobs "
                          "WHERE ledgerlink_client_id = ? ORDER BY coalesce(is_current, TRUE) DESC, job_id", [client_id])
        docs = rows(con, "SELECT document_id, file_name, status, error, pushed_at, created_at FROM client_documents "
                          "WHERE client_id = ? ORDER BY created_at DESC, document_id", [client_id])
        camps = rows(con, "SELECT campaign_id, job_id, job_state, status, opened_at, completed_at, completion_reason "
                           "FROM chase_campaigns WHERE client_id = ? ORDER BY opened_at DESC, campaign_id", [client_id])
        orgs = rows(con, "SELECT tenant_id, coalesce(tenant_name, tenant_id) AS tenant_name, practice_client_method "
                          "AS link_method FROM connections WHERE practice_client_id = ? AND status <> 'disconnected' "
                          "ORDER BY lower(tenant_name)", [client_id])
    for o in orgs:
        o["figures"] = latest_figures(settings, o["tenant_id"], today=today)
    return {"client": found[0], "jobs": jobs, "documents": docs, "campaigns": camps, "organisations": orgs}


def clients_summary(settings: Settings) -> list[Row]:
    """One row per client for the Clients page: counts of jobs, documents and campaigns, and the
    organisations it owns. Cheap: one query."""
    with connect(settings.db_path, read_only=True) as con:
        return rows(con, """
            SELECT k.client_id,
                   (SELECT count(*) FROM xpm_jobs j WHERE j.ledgerlink_client_id = k.client_id
                      AND coalesce(j.is_current, TRUE)) AS jobs,
                   (SELECT count(*) FROM client_documents d WHERE d.client_id = k.client_id) AS documents,
                   (SELECT count(*) FROM chase_campaigns m WHERE m.client_id = k.client_id AND m.status = 'open')
                      AS open_campaigns,
                   (SELECT string_agg(coalesce(c.tenant_name, c.tenant_id), ', ' ORDER BY c.tenant_name)
                      FROM connections c WHERE c.practice_client_id = k.client_id AND c.status <> 'disconnected')
                      AS organisations
            FROM clients k""")
