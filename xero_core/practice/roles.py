"""Which connected organisation is the practice's own (issue 25 §1).

A connected organisation is either the **practice ledger** (the practice's own books: its customers
are the practice's clients, its Xero Files receive client documents) or a **client organisation** (a
client's books, synced for its weekly figures). The role is stored on `connections.role`; NULL means
nobody said yet. `read_roles(con)` is the one place that decides what an unset role means:

- one organisation with the practice-ledger role: it is the ledger, every other organisation is a
  client organisation;
- no such role and exactly one organisation connected (alone or with Practice Manager): it is
  *suggested* as the ledger and treated as one until an admin says otherwise (the Connection page and
  `status` show the suggestion), so a single-organisation installation works as before;
- several organisations and none is the ledger: no organisation's customers become clients, and
  `problem` says what to do. Nothing is guessed.

Setting a role (`set_role`) also takes out the clients an earlier version imported from an
organisation that is now a client organisation (`retire_foreign_clients`): a client with documents,
campaigns, a Practice Manager link, manual edits, or one a person added, is kept and unlinked from the
client organisation's contact (it looks for its contact in the practice ledger); every other one is
removed and recorded in `client_removals`, which the CLI prints and the Clients page shows.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from duckdb import DuckDBPyConnection

from ..clock import SYSTEM_CLOCK, Clock
from ..db import connect, transaction
from ..errors import LedgerlinkError
from ..settings import Settings
from .matching import clear_candidates, load_edited, norm_name
from .sql import Row, one, rows, value

log = logging.getLogger(__name__)

PRACTICE_LEDGER = "practice-ledger"
CLIENT_ORGANISATION = "client-organisation"
ROLES = (PRACTICE_LEDGER, CLIENT_ORGANISATION)
ROLE_LABELS = {PRACTICE_LEDGER: "practice ledger", CLIENT_ORGANISATION: "client organisation"}
PRACTICE_MANAGER = "PRACTICEMANAGER"


class RoleError(LedgerlinkError):
    pass


class Org(TypedDict):
    """A connected organisation (not Practice Manager) and its role, as `Roles.orgs` lists it."""

    tenant_id: str
    tenant_name: str
    role: str | None  # as stored (None: nobody said)
    effective: str | None  # what it counts as
    suggested: bool  # the role is the suggestion, not a person's choice


@dataclass
class Roles:
    """The roles as they stand. `orgs`: the organisations not disconnected."""

    orgs: list[Org] = field(default_factory=list)
    ledger: str | None = None  # the tenant whose customers are the clients (None: none yet)
    confirmed: bool = False  # the ledger was chosen by a person (False: the single organisation, suggested)
    has_practice_manager: bool = False
    problem: str | None = None  # why no organisation's customers become clients, and what to do
    proposal: str | None = None  # several organisations, none chosen: the one named like Practice Manager

    def role_of(self, tenant_id: str) -> str | None:
        """practice-ledger | client-organisation | None (undecided, or not an organisation)."""
        for o in self.orgs:
            if o["tenant_id"] == tenant_id:
                return o["effective"]
        return None

    def name_of(self, tenant_id: str | None) -> str | None:
        return next((o["tenant_name"] for o in self.orgs if o["tenant_id"] == tenant_id), None)

    @property
    def client_orgs(self) -> list[str]:
        return [o["tenant_id"] for o in self.orgs if o["effective"] == CLIENT_ORGANISATION]

    @property
    def suggestion(self) -> str | None:
        """The tenant suggested as the practice ledger (not yet confirmed by a person)."""
        return self.ledger if self.ledger and not self.confirmed else None

    def suggested_role(self, tenant_id: str) -> str | None:
        """The role suggested for an organisation nobody gave one (None when it has one, or nothing is)."""
        o = next((o for o in self.orgs if o["tenant_id"] == tenant_id), None)
        if o is None or o["role"]:
            return None
        return PRACTICE_LEDGER if tenant_id == self.proposal else o["effective"]

    def as_dict(self) -> dict[str, Any]:
        return {"ledger": self.ledger, "confirmed": self.confirmed, "suggested": self.suggestion or self.proposal,
                "problem": self.problem, "organisations": [dict(o) for o in self.orgs]}


def _listing(orgs: list[Org]) -> str:
    return ", ".join(f"{o['tenant_name']} = {o['tenant_id']}" for o in orgs)


# The organisations that can hold a role: connected (or needing a reconnect), not Practice Manager.
_ORGS = ("FROM connections WHERE status <> 'disconnected' "
         f"AND upper(coalesce(tenant_type, 'ORGANISATION')) <> '{PRACTICE_MANAGER}'")


def _ledger(ledgers: int, ledger: str | None, orgs: int, unset: str | None) -> str | None:
    """The one rule for which organisation is the ledger: the one with the practice-ledger role (of
    `ledgers` so marked), else the only organisation connected when nobody gave it a role (`unset`:
    one without a role), else none."""
    if ledgers == 1:
        return ledger
    if ledgers == 0 and orgs == 1:
        return unset
    return None


def ledger_of(con: DuckDBPyConnection) -> str | None:
    """`read_roles(con).ledger` in one aggregate query: a sync asks it of every tenant it runs, and
    reading every organisation each time made a fleet's daily run quadratic in its size."""
    n_ledgers, ledger, orgs, unset = one(
        con, f"SELECT count(*) FILTER (WHERE role = ?), min(tenant_id) FILTER (WHERE role = ?), count(*), "
        f"min(tenant_id) FILTER (WHERE role IS NULL OR role NOT IN (?, ?)) {_ORGS}",
        [PRACTICE_LEDGER, PRACTICE_LEDGER, *ROLES])
    return _ledger(n_ledgers, ledger, orgs, unset)


def read_roles(con: DuckDBPyConnection) -> Roles:
    found = con.execute(
        "SELECT tenant_id, coalesce(tenant_name, tenant_id), upper(coalesce(tenant_type, 'ORGANISATION')), role "
        "FROM connections WHERE status <> 'disconnected' ORDER BY lower(tenant_name), tenant_id").fetchall()
    out = Roles(has_practice_manager=any(r[2] == PRACTICE_MANAGER for r in found))
    pm_names = {norm_name(r[1]) for r in found if r[2] == PRACTICE_MANAGER} - {None}
    # effective and suggested are decided below, once the ledger is known
    orgs = [Org(tenant_id=r[0], tenant_name=r[1], role=r[3] if r[3] in ROLES else None, effective=None, suggested=False)
            for r in found if r[2] != PRACTICE_MANAGER]
    ledgers = [o for o in orgs if o["role"] == PRACTICE_LEDGER]
    out.ledger = _ledger(len(ledgers), ledgers[0]["tenant_id"] if ledgers else None, len(orgs),
                         next((o["tenant_id"] for o in orgs if o["role"] is None), None))
    out.confirmed = len(ledgers) == 1
    for o in orgs:
        if o["tenant_id"] == out.ledger:
            o["effective"] = PRACTICE_LEDGER
        elif o["role"] == CLIENT_ORGANISATION or out.ledger is not None:
            o["effective"] = CLIENT_ORGANISATION
        else:
            o["effective"] = None
        o["suggested"] = o["role"] is None and o["effective"] is not None
    out.orgs = orgs
    if out.ledger is None and orgs:
        if len(ledgers) > 1:
            out.problem = (f"{len(ledgers)} organisations are marked as the practice ledger ({_listing(ledgers)}): "
                           "keep one with `python -m xero_core role TENANT_ID practice-ledger`.")
        elif len(orgs) > 1:
            # A hint, never a choice: the organisation that bears Practice Manager's name is likely the
            # practice's own books, but nothing flows from it until a person confirms.
            named = [o for o in orgs if o["role"] is None and norm_name(o["tenant_name"]) in pm_names]
            if len(named) == 1:
                out.proposal = named[0]["tenant_id"]
                named[0]["suggested"] = True
            hint = (f" {named[0]['tenant_name']} has your Practice Manager's name: is it yours?" if out.proposal else "")
            out.problem = (f"{len(orgs)} organisations are connected and none is the practice ledger, so no "
                           "organisation's customers become clients: mark the practice's own Xero on the Connection "
                           "page or with `python -m xero_core role TENANT_ID practice-ledger` (" + _listing(orgs) + ")."
                           + hint)
    return out


def roles(settings: Settings) -> Roles:
    with connect(settings.db_path, read_only=True) as con:
        return read_roles(con)


def require_practice_ledger(settings: Settings) -> Roles:
    """`clients sync`'s check: a sentence while several organisations are connected and none is the
    practice ledger (a sync then could only guess where clients come from)."""
    r = roles(settings)
    if r.problem:
        raise RoleError(r.problem)
    return r


# --------------------------------------------------------------------------- setting a role


def parse_role(value: str) -> str:
    v = (value or "").strip().lower().replace("_", "-").replace(" ", "-")
    if v not in ROLES:
        raise RoleError(f"Unknown role {value!r}: use practice-ledger or client-organisation.")
    return v


@dataclass
class RoleChange:
    tenant_id: str
    tenant_name: str
    role: str
    demoted: list[str] = field(default_factory=list)  # organisations no longer the practice ledger
    removed: list[Row] = field(default_factory=list)  # clients taken out (see retire_foreign_clients)
    kept: list[Row] = field(default_factory=list)  # clients kept and unlinked from a client organisation

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def lines(self) -> list[str]:
        out = [f"{self.tenant_name} ({self.tenant_id}) is now the {ROLE_LABELS[self.role]}"]
        out += [f"{name} is now a client organisation (one practice ledger at a time)" for name in self.demoted]
        out += describe_retired(self.removed, self.kept)
        return out


def set_role(settings: Settings, tenant_id: str, role: str, *, clock: Clock = SYSTEM_CLOCK) -> RoleChange:
    """Give a connected organisation its role. There is one practice ledger: naming another one makes
    the previous one a client organisation. Clients imported from what is now a client organisation
    are then taken out (kept when anything of the practice's hangs on them), in the same transaction."""
    role = parse_role(role)
    now = clock.now()
    with connect(settings.db_path) as con, transaction(con):
        row = con.execute("SELECT coalesce(tenant_name, tenant_id), upper(coalesce(tenant_type, 'ORGANISATION')), status "
                          "FROM connections WHERE tenant_id = ?", [tenant_id]).fetchone()
        if row is None:
            raise RoleError(f"No connection {tenant_id}: see the tenant ids with `python -m xero_core status`.")
        name, ttype, status = row
        if ttype == PRACTICE_MANAGER:
            raise RoleError(f"{name} is Xero Practice Manager, not an organisation: roles are for organisations.")
        if status == "disconnected":
            raise RoleError(f"{name} is disconnected: reconnect it before giving it a role.")
        change = RoleChange(tenant_id, name, role)
        if role == PRACTICE_LEDGER:
            change.demoted = [r[0] for r in con.execute(
                "SELECT coalesce(tenant_name, tenant_id) FROM connections WHERE role = ? AND tenant_id <> ? ORDER BY 1",
                [PRACTICE_LEDGER, tenant_id]).fetchall()]
            con.execute("UPDATE connections SET role = ?, updated_at = ? WHERE role = ? AND tenant_id <> ?",
                        [CLIENT_ORGANISATION, now, PRACTICE_LEDGER, tenant_id])
            # The practice's own books belong to no client.
            con.execute("UPDATE connections SET practice_client_id = NULL, practice_client_method = NULL, "
                        "practice_client_at = NULL WHERE tenant_id = ?", [tenant_id])
        con.execute("UPDATE connections SET role = ?, updated_at = ? WHERE tenant_id = ?", [role, now, tenant_id])
        if role == PRACTICE_LEDGER:
            from .clients import reset_reconcile_cursors  # here: clients imports this module

            reset_reconcile_cursors(con, tenant_id)  # its next pass looks at every stored contact
        change.removed, change.kept = retire_foreign_clients(con, now)
    return change


# --------------------------------------------------------------------------- clients of client organisations


def _has_any(con: DuckDBPyConnection, sql: str, client_id: str) -> bool:
    return bool(con.execute(sql, [client_id]).fetchall())


_HOLDS = (
    ("documents", "SELECT 1 FROM client_documents WHERE client_id = ? LIMIT 1"),
    ("campaigns", "SELECT 1 FROM chase_campaigns WHERE client_id = ? LIMIT 1"),
    ("Practice Manager jobs", "SELECT 1 FROM xpm_jobs WHERE ledgerlink_client_id = ? LIMIT 1"),
    ("a client organisation", "SELECT 1 FROM connections WHERE practice_client_id = ? LIMIT 1"),
)


def why_kept(con: DuckDBPyConnection, row: Row) -> str | None:
    """Why a client imported from a client organisation must stay (None: nothing of the practice's
    hangs on it, it can go)."""
    if load_edited(row.get("edited_fields")):
        return "edited by hand"
    if row.get("source") not in (None, "xero"):
        return f"added by a person ({row['source']})"
    if row.get("xpm_client_id"):
        return "a Practice Manager client"
    for what, sql in _HOLDS:
        if _has_any(con, sql, row["client_id"]):
            return f"has {what}"
    return None


def retire_foreign_clients(con: DuckDBPyConnection, now: datetime) -> tuple[list[Row], list[Row]]:
    """Clients linked to a contact of a client organisation (an earlier version imported every
    organisation's customers): removed, and recorded in `client_removals`, unless something of the
    practice's hangs on them (`why_kept`); those stay, unlinked from that contact, so they look for
    their contact in the practice ledger. Call inside a transaction. Returns (removed, kept)."""
    r = read_roles(con)
    foreign = r.client_orgs
    if not foreign:
        return [], []
    marks = ", ".join("?" * len(foreign))
    linked = rows(con, "SELECT client_id, name, email, tenant_id, xero_contact_id, xpm_client_id, source, edited_fields "
                       f"FROM clients WHERE tenant_id IN ({marks}) ORDER BY lower(name), client_id", foreign)
    removed: list[Row] = []
    kept: list[Row] = []
    for row in linked:
        entry = {"client_id": row["client_id"], "name": row["name"], "email": row["email"],
                 "tenant_id": row["tenant_id"], "tenant_name": r.name_of(row["tenant_id"]),
                 "xero_contact_id": row["xero_contact_id"]}
        reason = why_kept(con, row)
        if reason:
            con.execute("UPDATE clients SET tenant_id = NULL, xero_contact_id = NULL, match_status = 'unmatched', "
                        "match_method = NULL, updated_at = ? WHERE client_id = ?", [now, row["client_id"]])
            kept.append({**entry, "reason": reason})
            continue
        clear_candidates(con, client_id=row["client_id"], now=now)
        con.execute("DELETE FROM clients WHERE client_id = ?", [row["client_id"]])
        con.execute(
            "INSERT OR REPLACE INTO client_removals (client_id, name, email, tenant_id, tenant_name, xero_contact_id, "
            "reason, removed_at, acknowledged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)",
            [row["client_id"], row["name"], row["email"], row["tenant_id"], entry["tenant_name"],
             row["xero_contact_id"], "a customer of a client organisation, not a client of the practice", now])
        removed.append(entry)
    # Ambiguities about a client organisation's contacts are no longer questions.
    for (tid,) in con.execute(f"SELECT DISTINCT tenant_id FROM client_match_candidates WHERE tenant_id IN ({marks})",
                              foreign).fetchall():
        clear_candidates(con, tenant_id=tid, now=now)
    if removed or kept:
        log.info("clients of client organisations: removed %d (%s), kept %d unlinked (%s)", len(removed),
                 ", ".join(str(x["name"]) for x in removed[:20]), len(kept),
                 ", ".join(f"{x['name']}: {x['reason']}" for x in kept[:20]))
    return removed, kept


def describe_retired(removed: list[Row], kept: list[Row], limit: int = 10) -> list[str]:
    out: list[str] = []
    if removed:
        names = ", ".join(str(x["name"]) for x in removed[:limit]) + (", ..." if len(removed) > limit else "")
        out.append(f"removed {len(removed)} client(s) imported from client organisations' customers: {names}")
    if kept:
        names = ", ".join(f"{x['name']} ({x['reason']})" for x in kept[:limit]) + (", ..." if len(kept) > limit else "")
        out.append(f"kept {len(kept)} of them, unlinked from the client organisation's contact (they look for "
                   f"theirs in the practice ledger): {names}")
    return out


def removal_report(settings: Settings, *, include_acknowledged: bool = False) -> list[Row]:
    """Clients taken out because they were a client organisation's customers (newest first)."""
    with connect(settings.db_path, read_only=True) as con:
        return rows(con, "SELECT client_id, name, email, tenant_id, tenant_name, xero_contact_id, reason, removed_at, "
                         "acknowledged_at FROM client_removals"
                    + ("" if include_acknowledged else " WHERE acknowledged_at IS NULL")
                    + " ORDER BY removed_at DESC, lower(name)")


def acknowledge_removals(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> int:
    """An admin has read the report: it stops being shown (the rows stay)."""
    with connect(settings.db_path) as con:
        n: int = value(con, "SELECT count(*) FROM client_removals WHERE acknowledged_at IS NULL")
        con.execute("UPDATE client_removals SET acknowledged_at = ? WHERE acknowledged_at IS NULL", [clock.now()])
    return n
