"""Matching the practice's clients to Xero contacts (and to XPM clients).

Order of evidence: a stored id link first, then email (case- and space-insensitive), then the
normalised name. A match is taken only when it is unique on BOTH sides at that level: one client
for the contact and no other unlinked contact claiming that client. Anything else is ambiguous and
is listed in `client_match_candidates` for an admin to resolve; it is never guessed.

Manual edits win: a field named in `clients.edited_fields` is never written by a sync. Other fields
are only filled when empty, except on clients that Xero created (source 'xero'), which keep
following Xero.
"""
from __future__ import annotations

import json
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict

import duckdb
from duckdb import DuckDBPyConnection

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import LedgerlinkError
from .sql import Row, rows

ZERO_GUID = "00000000-0000-0000-0000-000000000000"
SYNCED_FIELDS = ("name", "email", "phone")

_SUFFIXES = (
    "pty ltd", "pty limited", "proprietary limited", "pty", "ltd", "limited",
    "llc", "inc", "incorporated", "plc", "co ltd", "company", "corp", "corporation",
)
_SUFFIX_RE = re.compile(r"(?:\s+(?:" + "|".join(re.escape(s) for s in _SUFFIXES) + r"))+$")


class MatchError(LedgerlinkError):
    pass


# --------------------------------------------------------------------------- pure


def norm_email(value: str | None) -> str | None:
    if not value:
        return None
    v = "".join(value.split()).lower()
    return v if "@" in v else None


def norm_name(value: str | None) -> str | None:
    """'ACME  Pty. Ltd.' == 'Acme' == 'acme limited'; '&' == 'and'; accents folded."""
    if not value:
        return None
    v = unicodedata.normalize("NFKD", value)
    v = "".join(ch for ch in v if not unicodedata.combining(ch)).lower()
    v = v.replace("&", " and ")
    v = re.sub(r"[^\w\s]", " ", v)  # punctuation -> space ("Pty.Ltd." -> "pty ltd")
    v = re.sub(r"\s+", " ", v).strip()
    stripped = _SUFFIX_RE.sub("", v).strip()
    v = stripped or v  # a company literally named "Limited" keeps its name
    v = re.sub(r"^the ", "", v)
    return v or None


@dataclass(frozen=True)
class Rec:
    """One side of a match: a client, a Xero contact or an XPM client."""

    key: str
    name: str | None = None
    email: str | None = None
    n_email: str | None = field(init=False, repr=False, compare=False)
    n_name: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_email", norm_email(self.email))
        object.__setattr__(self, "n_name", norm_name(self.name))


@dataclass
class Decision:
    kind: str  # match | ambiguous | none
    method: str | None = None  # email | name
    keys: list[str] = field(default_factory=list)  # candidate keys on the other side
    rivals: list[str] = field(default_factory=list)  # same-side records that claim the same key
    reason: str = ""


class Index:
    """Records indexed by normalised email and name, for quick candidate look-up."""

    def __init__(self, recs: Iterable[Rec] = ()) -> None:
        self.recs: dict[str, Rec] = {}
        self.by_email: dict[str, dict[str, Rec]] = {}
        self.by_name: dict[str, dict[str, Rec]] = {}
        for r in recs:
            self.add(r)

    def add(self, r: Rec) -> None:
        self.recs[r.key] = r
        if r.n_email:
            self.by_email.setdefault(r.n_email, {})[r.key] = r
        if r.n_name:
            self.by_name.setdefault(r.n_name, {})[r.key] = r

    def remove(self, key: str) -> None:
        r = self.recs.pop(key, None)
        if r is None:
            return
        if r.n_email:
            self.by_email.get(r.n_email, {}).pop(key, None)
        if r.n_name:
            self.by_name.get(r.n_name, {}).pop(key, None)

    def lookup(self, level: str, value: str | None) -> list[str]:
        if not value:
            return []
        table = self.by_email if level == "email" else self.by_name
        return sorted(table.get(value, {}))


def _full_name(value: str | None) -> str:
    return " ".join((value or "").split()).casefold()


def decide(subject: Rec, others: Index, rivals: Index, others_are: str = "clients") -> Decision:
    """Find `subject`'s partner among `others`; `rivals` are the subject's unlinked peers.
    `others_are` names the other side in the reason ("clients", "Xero contacts")."""
    for level, value in (("email", subject.n_email), ("name", subject.n_name)):
        cands = others.lookup(level, value)
        if not cands:
            continue
        peers = [k for k in rivals.lookup(level, value) if k != subject.key]
        if len(cands) == 1 and not peers:
            return Decision("match", level, cands)
        if level == "email" and subject.n_name:
            # A shared mailbox (accounts@…) can serve several businesses: when exactly one of them
            # also has the same name, both kinds of evidence agree and that is not a guess.
            same = [k for k in cands if others.recs.get(k) and others.recs[k].n_name == subject.n_name]
            same_peers = [k for k in peers if rivals.recs.get(k) and rivals.recs[k].n_name == subject.n_name]
            if len(same) == 1 and not same_peers:
                return Decision("match", level, same)
        # Several records normalise alike ("Harbour Strata" and "Harbour Strata Pty Ltd"): one whose
        # full name is identical (ignoring case and spacing) is stronger evidence than the rest.
        full = _full_name(subject.name)
        if full:
            same = [k for k in cands if others.recs.get(k) and _full_name(others.recs[k].name) == full]
            same_peers = [k for k in peers if rivals.recs.get(k) and _full_name(rivals.recs[k].name) == full]
            if len(same) == 1 and not same_peers:
                return Decision("match", level, same)
        what = "email" if level == "email" else "name"
        if len(cands) > 1:
            reason = f"{len(cands)} {others_are} share this {what} ({value})"
        else:
            reason = f"{len(peers) + 1} records share this {what} ({value})"
        return Decision("ambiguous", level, cands, peers, reason)
    return Decision("none")


class ContactFields(TypedDict):
    name: str | None
    email: str | None
    phone: str | None


Contact = Mapping[str, Any]  # a Xero Contact as the API sends it (JSON)


def contact_fields(contact: Contact) -> ContactFields:
    """name/email/phone from a Xero Contact as the API sends it."""
    phone = None
    phones = contact.get("Phones") or []
    ordered = sorted(phones, key=lambda p: 0 if p.get("PhoneType") == "DEFAULT" else 1)
    for p in ordered:
        if p.get("PhoneNumber"):
            phone = " ".join(
                x.strip() for x in (p.get("PhoneCountryCode"), p.get("PhoneAreaCode"), p.get("PhoneNumber")) if x and x.strip()
            )
            break
    email = (contact.get("EmailAddress") or "").strip() or None
    return {"name": (contact.get("Name") or "").strip() or None, "email": email, "phone": phone}


def merged_target(contact: Contact) -> str | None:
    m: str = (contact.get("MergedToContactID") or "").strip()
    return m if m and m != ZERO_GUID else None


def is_active(contact: Contact) -> bool:
    return (contact.get("ContactStatus") or "ACTIVE").upper() == "ACTIVE" and not merged_target(contact)


def merge_fields(current: Mapping[str, object], incoming: Mapping[str, object], edited: Mapping[str, object],
                 follow_source: bool) -> dict[str, object]:
    """The field updates a sync may make: never an edited field; fill empties; follow Xero on its own rows."""
    out: dict[str, object] = {}
    for f in SYNCED_FIELDS:
        new = incoming.get(f)
        if f in edited or new is None:
            continue
        cur = current.get(f)
        if cur in (None, "") or (follow_source and cur != new):
            out[f] = new
    return out


def load_edited(value: object) -> dict[str, Any]:
    """clients.edited_fields ({field: when edited}), as stored (JSON text) or already read."""
    if not value:
        return {}
    if isinstance(value, dict):
        return value
    if not isinstance(value, (str, bytes)):
        return {}
    try:
        d = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


# --------------------------------------------------------------------------- who is a client

# A practice's clients are its customers. A contact becomes a client by itself only when it is a
# customer (Xero's IsCustomer, or a sales invoice stored for it) and is not a government body or a
# placeholder such as "Cash Sales". Anyone else becomes a client only when a person adds or links it
# (or when it matches a client the practice already has: one added by hand, from CSV or from XPM).
SKIP_REASONS = {
    "supplier_only": "suppliers only (bills, no sales)",
    "government": "government bodies (tax office, revenue agency, council ...)",
    "placeholder": "placeholders, not a business (\"Cash Sales\" ...)",
    "not_customer": "not customers (no sales invoice, not marked as a customer)",
    "archived": "archived in Xero",
    "merged": "merged into another contact",
    "no_name": "without a name",
}
_GOVERNMENT_RE = re.compile(
    r"\b(?:taxation office|tax office|inland revenue|internal revenue|revenue (?:service|agency|office|department)"
    r"|state revenue|office of (?:state )?revenue|hm revenue|hmrc|ird|irs|ato|asic|companies house|companies office"
    r"|department of|dept of|ministry of|government|workcover|worksafe|icare|customs|border force"
    r"|australian securities and investments|revenue (?:nsw|sa|wa|qld|victoria|tasmania)|business names registry"
    r"|fair work|child support|centrelink|services australia)\b"
    r"|^(?:city|shire|municipality|municipal district|town|borough) of\b|\b(?:city|shire|regional|district) council$"
    r"|\bcouncil$"
)
_PLACEHOLDER_RE = re.compile(
    r"^(?:(?:cash|counter|eftpos|pos|walk in|walkin|sundry|sundries|misc|miscellaneous|various|general|casual|one off"
    r"|oneoff|unknown|retail|shop|over the counter)(?: (?:sales?|customers?|debtors?|clients?|public|receipts?))?"
    r"|(?:sales?|customers?|debtors?) (?:cash|sundry|misc|miscellaneous|various|general)"
    r"|general public|no name|test|test customer|test contact)$"
)


def flag(value: object) -> bool | None:
    """Xero's IsCustomer/IsSupplier as sent: true/false (JSON), "true"/"false" (XML), or absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    return None


def is_government(name: str | None) -> bool:
    n = norm_name(name)
    return bool(n and _GOVERNMENT_RE.search(n))


def is_placeholder(name: str | None) -> bool:
    n = norm_name(name)
    return bool(n and _PLACEHOLDER_RE.match(n))


def skip_reason(contact: Contact, *, has_sales: bool = False, has_purchases: bool = False) -> str | None:
    """None when this contact should become a client by itself, else why not (a SKIP_REASONS key).

    Real Xero derives IsCustomer/IsSupplier (true once an ACCREC/ACCPAY document exists) and may leave
    them out; then the sales invoices stored for the contact decide."""
    if merged_target(contact):
        return "merged"
    if not is_active(contact):
        return "archived"
    name = (contact.get("Name") or "").strip()
    if not name:
        return "no_name"
    if is_government(name):
        return "government"
    if is_placeholder(name):
        return "placeholder"
    if flag(contact.get("IsCustomer")) or has_sales:
        return None
    if flag(contact.get("IsSupplier")) or has_purchases:
        return "supplier_only"
    return "not_customer"


def describe_skips(skipped: Mapping[str, int]) -> str:
    """{"supplier_only": 23, "government": 1} -> "23 suppliers only (bills, no sales), 1 government ..."."""
    return ", ".join(f"{n} {SKIP_REASONS.get(k, k)}" for k, n in sorted(skipped.items(), key=lambda kv: -kv[1]) if n)


# --------------------------------------------------------------------------- database


_CLIENT_COLS = (
    "client_id, name, email, phone, tenant_id, xero_contact_id, xpm_client_id, match_status, "
    "match_method, archived, source, edited_fields"
)


def new_client_id() -> str:
    return "cl_" + uuid.uuid4().hex[:16]


@dataclass
class ReconcileResult:
    """What one reconciliation did. `linked` = contacts matched to a client the practice already had
    (email or name), `created` = contacts imported as new clients (customers), `unchanged`/`updated` =
    contacts already linked to their client (by id), `skipped` = contacts left out, by reason
    (SKIP_REASONS), `removed` = clients an earlier version imported from non-customers, taken out
    again (never one with documents, edits, an XPM link or a campaign)."""

    linked: int = 0
    created: int = 0
    updated: int = 0
    ambiguous: int = 0
    merged: int = 0
    archived: int = 0
    unchanged: int = 0
    removed: int = 0
    contacts: int = 0  # contacts looked at
    waiting: int = 0  # clients of this tenant waiting in the ambiguity queue afterwards
    full: bool = False
    role: str | None = None  # the organisation's role when it is not the practice ledger
    note: str | None = None  # why nothing was reconciled (a client organisation, no practice ledger yet)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> up to 5 contact names

    def skip(self, reason: str, name: str | None) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        ex = self.examples.setdefault(reason, [])
        if name and len(ex) < 5:
            ex.append(name)

    def add(self, other: "ReconcileResult") -> None:
        for k in ("linked", "created", "updated", "ambiguous", "merged", "archived", "unchanged", "removed", "contacts"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        for k, n in other.skipped.items():
            self.skipped[k] = self.skipped.get(k, 0) + n
        for k, names in other.examples.items():
            self.examples[k] = (self.examples.get(k, []) + names)[:5]

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict[str, Any]:
        """The report (app, CLI --json, sync_log detail): imported, matched, ambiguous, skipped and why."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("skipped", "examples")}
        d.update(imported=self.created, matched=self.linked, already_linked=self.unchanged + self.updated,
                 skipped=self.skipped_total, skipped_by_reason=dict(self.skipped),
                 skipped_examples={k: list(v) for k, v in self.examples.items()})
        return d

    def summary(self) -> str:
        """One line for people: 'imported 3, matched 2, 410 already linked, 1 ambiguous (2 waiting), skipped 25: ...'."""
        if self.note and not (self.created or self.linked or self.updated or self.unchanged):
            return self.note + (f"; removed {self.removed} client(s) imported earlier from client organisations"
                                if self.removed else "")
        parts = [f"imported {self.created}", f"matched {self.linked}", f"{self.unchanged + self.updated} already linked",
                 f"{self.ambiguous} ambiguous" + (f" ({self.waiting} client(s) waiting in the queue)" if self.waiting else "")]
        if self.removed:
            parts.append(f"removed {self.removed} earlier imported non-client(s)")
        text = ", ".join(parts) + f", skipped {self.skipped_total}"
        if self.skipped:
            text += ": " + describe_skips(self.skipped)
        return text


def _update_client(con: DuckDBPyConnection, client_id: str, changes: Mapping[str, object], now: datetime) -> None:
    if not changes:
        return
    cols = ", ".join(f"{c} = ?" for c in changes)  # column names come from our own code only
    con.execute(f"UPDATE clients SET {cols}, updated_at = ? WHERE client_id = ?", [*changes.values(), now, client_id])


def set_candidates(con: DuckDBPyConnection, tenant_id: str, contact_key: str, client_ids: list[str], reason: str, now: datetime,
                    *, mark: bool = True) -> None:
    for cid in client_ids:
        con.execute(
            "INSERT INTO client_match_candidates (client_id, tenant_id, contact_id, reason, created_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET reason = excluded.reason",
            [cid, tenant_id, contact_key, reason, now],
        )
        if mark:
            con.execute(
                "UPDATE clients SET match_status = 'ambiguous', updated_at = ? "
                "WHERE client_id = ? AND coalesce(match_status, 'unmatched') <> 'matched'",
                [now, cid],
            )


def clear_candidates(con: DuckDBPyConnection, *, tenant_id: str | None = None, contact_id: str | None = None,
                     client_id: str | None = None, now: datetime | None = None) -> None:
    """Drop candidate rows; clients left with none go back to 'unmatched'."""
    where: list[str] = []
    params: list[str] = []
    for col, val in (("tenant_id", tenant_id), ("contact_id", contact_id), ("client_id", client_id)):
        if val is not None:
            where.append(f"{col} = ?")
            params.append(val)
    if not where:
        return
    affected = [r[0] for r in con.execute(
        "SELECT DISTINCT client_id FROM client_match_candidates WHERE " + " AND ".join(where), params
    ).fetchall()]
    con.execute("DELETE FROM client_match_candidates WHERE " + " AND ".join(where), params)
    for cid in affected:
        con.execute(
            "UPDATE clients SET match_status = 'unmatched', updated_at = coalesce(?, updated_at) "
            "WHERE client_id = ? AND match_status = 'ambiguous' "
            "AND NOT EXISTS (SELECT 1 FROM client_match_candidates m WHERE m.client_id = ?)",
            [now, cid, cid],
        )


def _unlinked_clients(con: DuckDBPyConnection, where_col: str) -> list[Row]:
    return rows(con, f"SELECT {_CLIENT_COLS} FROM clients WHERE {where_col} IS NULL AND NOT coalesce(archived, FALSE)")


def _unlinked_contacts(con: DuckDBPyConnection, tenant_id: str) -> list[Rec]:
    found = con.execute(
        "SELECT c.contact_id, c.name, c.email FROM contacts c WHERE c.tenant_id = ? "
        "AND upper(coalesce(c.status, 'ACTIVE')) = 'ACTIVE' "
        "AND (c.merged_to_contact_id IS NULL OR c.merged_to_contact_id IN ('', ?)) "
        "AND NOT EXISTS (SELECT 1 FROM clients k WHERE k.tenant_id = c.tenant_id AND k.xero_contact_id = c.contact_id)",
        [tenant_id, ZERO_GUID],
    ).fetchall()
    return [Rec(r[0], r[1], r[2]) for r in found]


def invoice_evidence(con: DuckDBPyConnection, tenant_id: str) -> dict[str, tuple[bool, bool]]:
    """contact_id -> (has a sales invoice, has a bill) from the invoices stored for the tenant."""
    try:
        found = con.execute(
            "SELECT contact_id, bool_or(upper(type) = 'ACCREC'), bool_or(upper(type) = 'ACCPAY') FROM invoices "
            "WHERE tenant_id = ? AND contact_id IS NOT NULL GROUP BY contact_id", [tenant_id]).fetchall()
    except duckdb.CatalogException:  # no invoices table in a bare test database: no evidence
        return {}
    return {r[0]: (bool(r[1]), bool(r[2])) for r in found}


_REMOVABLE = ("supplier_only", "government", "placeholder")


def _removable(con: DuckDBPyConnection, row: Row, contact: Contact, reason: str | None) -> bool:
    """A client an earlier version imported from a contact that is no client (every contact used to
    become one): made by Xero, never touched by a person, linked to nothing else. Safe to take out."""
    if reason is None or not is_active(contact):
        return False
    if reason not in _REMOVABLE and not (reason == "not_customer" and flag(contact.get("IsCustomer")) is False):
        return False
    if row.get("source") != "xero" or row.get("match_method") not in (None, "id") or row.get("xpm_client_id"):
        return False
    if load_edited(row.get("edited_fields")) or row.get("match_status") == "merged":
        return False
    cid = row["client_id"]
    for sql in ("SELECT 1 FROM client_documents WHERE client_id = ? LIMIT 1",
                "SELECT 1 FROM chase_campaigns WHERE client_id = ? LIMIT 1",
                "SELECT 1 FROM xpm_jobs WHERE ledgerlink_client_id = ? LIMIT 1"):
        try:
            if con.execute(sql, [cid]).fetchall():
                return False
        except duckdb.CatalogException:  # a bare test database without that table: keep the client
            return False
    return True


def reconcile_contacts(con: DuckDBPyConnection, tenant_id: str, contacts: Sequence[Contact], *, clock: Clock = SYSTEM_CLOCK,
                       evidence: dict[str, tuple[bool, bool]] | None = None) -> ReconcileResult:
    """Reconcile Xero contacts (raw API dicts) with `clients`. Call inside a transaction.

    A contact linked to a client (by id) updates it; one that matches a client the practice already
    has (email, then name, unique on both sides) is linked; an ambiguous one waits in the queue; a
    customer with no client is imported; anyone else is skipped with its reason (`skip_reason`).
    `evidence` (contact_id -> (has sales, has bills)) defaults to the invoices stored for the tenant.

    Everything it needs is read up front and new clients are inserted in one statement, so a first
    full sync of thousands of contacts costs a handful of queries, not several per contact.
    """
    now = clock.now()
    res = ReconcileResult()
    contacts = list({c.get("ContactID"): c for c in contacts if c.get("ContactID")}.values())  # last wins
    res.contacts = len(contacts)
    if evidence is None:
        evidence = invoice_evidence(con, tenant_id)
    batch_ids = {c["ContactID"] for c in contacts}
    linked_by_contact: dict[str, list[Row]] = {}
    for r in rows(con, f"SELECT {_CLIENT_COLS} FROM clients WHERE tenant_id = ? AND xero_contact_id IS NOT NULL",
                   [tenant_id]):
        linked_by_contact.setdefault(r["xero_contact_id"], []).append(r)
    with_cands = {r[0] for r in con.execute(
        "SELECT DISTINCT contact_id FROM client_match_candidates WHERE tenant_id = ?", [tenant_id]).fetchall()}
    open_clients = {r["client_id"]: r for r in _unlinked_clients(con, "xero_contact_id")}
    clients_idx = Index(Rec(r["client_id"], r["name"], r["email"]) for r in open_clients.values())
    rivals_idx = Index(r for r in _unlinked_contacts(con, tenant_id) if r.key not in batch_ids)
    for c in contacts:
        if is_active(c) and c["ContactID"] not in linked_by_contact:
            f = contact_fields(c)
            rivals_idx.add(Rec(c["ContactID"], f["name"], f["email"]))
    new_rows: list[tuple[str, str | None, str | None, str | None, str]] = []

    def clear_for(contact_id: str) -> None:
        if contact_id in with_cands:
            clear_candidates(con, tenant_id=tenant_id, contact_id=contact_id, now=now)
            with_cands.discard(contact_id)

    deferred: list[tuple[Contact, str, ContactFields, str | None]] = []

    def place(c: Contact, cid: str, fields: ContactFields, reason: str | None) -> str:
        """An active contact with no client: link it, queue it, import it or skip it."""
        d = decide(Rec(cid, fields["name"], fields["email"]), clients_idx, rivals_idx)
        clear_for(cid)
        if d.kind == "match":
            client_id = d.keys[0]
            row = open_clients.pop(client_id)
            changes = merge_fields(row, fields, load_edited(row["edited_fields"]), follow_source=False)
            changes.update(tenant_id=tenant_id, xero_contact_id=cid, match_status="matched", match_method=d.method)
            _update_client(con, client_id, changes, now)
            clear_candidates(con, client_id=client_id, now=now)
            row.update(changes)
            linked_by_contact.setdefault(cid, []).append(row)
            clients_idx.remove(client_id)
            rivals_idx.remove(cid)
            res.linked += 1
            return "linked"
        if d.kind == "ambiguous":
            for contact_key in (cid, *d.rivals):
                set_candidates(con, tenant_id, contact_key, d.keys, d.reason, now)
                with_cands.add(contact_key)
            res.ambiguous += 1
            return "ambiguous"
        if reason is not None:
            res.skip(reason, fields["name"])
            return "skipped"
        new_id = new_client_id()
        new_rows.append((new_id, fields["name"], fields["email"], fields["phone"], cid))
        linked_by_contact[cid] = [{"client_id": new_id, "name": fields["name"], "email": fields["email"],
                                   "phone": fields["phone"], "tenant_id": tenant_id, "xero_contact_id": cid,
                                   "match_status": "matched", "archived": False, "source": "xero",
                                   "edited_fields": "{}"}]
        rivals_idx.remove(cid)
        res.created += 1
        return "imported"

    for c in contacts:
        cid = c["ContactID"]
        fields = contact_fields(c)
        linked = linked_by_contact.get(cid, [])
        target = merged_target(c)
        has_sales, has_bills = evidence.get(cid, (False, False))
        reason = skip_reason(c, has_sales=has_sales, has_purchases=has_bills)
        if target:
            rivals_idx.remove(cid)
            clear_for(cid)
            if not linked:
                res.skip("merged", fields["name"])
            for row in list(linked):
                survivors = [r for r in linked_by_contact.get(target, []) if r["client_id"] != row["client_id"]]
                if survivors:
                    # Both contacts already had a client: keep the survivor's, retire this one.
                    if not (row["archived"] and row["match_status"] == "merged"):
                        _update_client(con, row["client_id"], {"archived": True, "match_status": "merged"}, now)
                        res.merged += 1
                else:
                    _update_client(con, row["client_id"], {"xero_contact_id": target}, now)
                    linked_by_contact[cid].remove(row)
                    row["xero_contact_id"] = target
                    linked_by_contact.setdefault(target, []).append(row)
                    res.merged += 1
            continue

        if linked:
            for row in list(linked):
                if _removable(con, row, c, reason):
                    clear_candidates(con, client_id=row["client_id"], now=now)
                    con.execute("DELETE FROM clients WHERE client_id = ?", [row["client_id"]])
                    linked.remove(row)
                    res.removed += 1
                    continue
                edited = load_edited(row["edited_fields"])
                changes = merge_fields(row, fields, edited, follow_source=row["source"] == "xero")
                archived = not is_active(c)
                if "archived" not in edited and bool(row["archived"]) != archived and row["match_status"] != "merged":
                    changes["archived"] = archived
                    res.archived += archived
                if row["match_status"] not in ("matched", "merged"):
                    changes["match_status"] = "matched"
                _update_client(con, row["client_id"], changes, now)
                row.update(changes)
                if changes:
                    res.updated += 1
                else:
                    res.unchanged += 1
            if linked or not is_active(c):
                continue
            rivals_idx.add(Rec(cid, fields["name"], fields["email"]))  # its imported client was taken out

        if not is_active(c):
            # An archived contact with no client: nothing to chase, and creating one would
            # duplicate the active contact that now carries its name.
            rivals_idx.remove(cid)
            clear_for(cid)
            res.skip("archived", fields["name"])
            continue

        if place(c, cid, fields, reason) == "ambiguous":
            deferred.append((c, cid, fields, reason))

    # An ambiguity can dissolve later in the same batch (its rival contact took the one client by a
    # stronger match): decide those again rather than leave a customer neither queued nor imported.
    for c, cid, fields, reason in deferred:
        if not con.execute("SELECT 1 FROM client_match_candidates WHERE tenant_id = ? AND contact_id = ? LIMIT 1",
                           [tenant_id, cid]).fetchall():
            res.ambiguous -= 1
            place(c, cid, fields, reason)
    if new_rows:
        _insert_new_clients(con, tenant_id, new_rows, now)
    return res


def _insert_new_clients(con: DuckDBPyConnection, tenant_id: str,
                        new: list[tuple[str, str | None, str | None, str | None, str]], now: datetime) -> None:
    """Clients created from contacts, in one statement (row-by-row inserts manage ~1,500/s)."""
    import pyarrow as pa  # here: a second to import, and only a batch of new clients needs it

    cols = list(zip(*new))
    table = pa.table({
        "client_id": pa.array(cols[0], pa.string()), "name": pa.array(cols[1], pa.string()),
        "email": pa.array(cols[2], pa.string()), "phone": pa.array(cols[3], pa.string()),
        "xero_contact_id": pa.array(cols[4], pa.string()),
    })
    name = f"_new_clients_{uuid.uuid4().hex[:8]}"
    con.register(name, table)
    try:
        con.execute(
            "INSERT INTO clients (client_id, name, email, phone, tenant_id, xero_contact_id, match_status, match_method, "
            "archived, source, edited_fields, created_at, updated_at) "
            f"SELECT client_id, name, email, phone, ?, xero_contact_id, 'matched', 'id', FALSE, 'xero', '{{}}', ?, ? FROM {name}",
            [tenant_id, now, now],
        )
    finally:
        con.unregister(name)


def match_clients_to_contacts(con: DuckDBPyConnection, client_ids: Iterable[str], tenant_ids: Iterable[str], *,
                              clock: Clock = SYSTEM_CLOCK) -> ReconcileResult:
    """A client added in the app or from CSV looks for its contact among already-synced ones."""
    now = clock.now()
    res = ReconcileResult()
    wanted = set(client_ids)
    if not wanted:
        return res
    open_clients = _unlinked_clients(con, "xero_contact_id")
    peers_idx = Index(Rec(r["client_id"], r["name"], r["email"]) for r in open_clients)
    for tenant_id in tenant_ids:
        contacts_idx = Index(_unlinked_contacts(con, tenant_id))
        for row in open_clients:
            if row["client_id"] not in wanted or row.get("_linked"):
                continue
            subject = Rec(row["client_id"], row["name"], row["email"])
            d = decide(subject, contacts_idx, peers_idx, "Xero contacts")
            if d.kind == "match":
                contact_id = d.keys[0]
                con.execute(
                    "UPDATE clients SET tenant_id = ?, xero_contact_id = ?, match_status = 'matched', "
                    "match_method = ?, updated_at = ? WHERE client_id = ?",
                    [tenant_id, contact_id, d.method, now, row["client_id"]],
                )
                crow = con.execute(
                    "SELECT name, email, raw FROM contacts WHERE tenant_id = ? AND contact_id = ?", [tenant_id, contact_id]
                ).fetchone()
                if crow:
                    raw = json.loads(crow[2]) if crow[2] else {"Name": crow[0], "EmailAddress": crow[1]}
                    _update_client(con, row["client_id"], merge_fields(row, contact_fields(raw), load_edited(row["edited_fields"]), False), now)
                clear_candidates(con, client_id=row["client_id"], now=now)
                contacts_idx.remove(contact_id)
                peers_idx.remove(row["client_id"])
                row["_linked"] = True
                res.linked += 1
            elif d.kind == "ambiguous":
                if d.rivals:  # other clients claim the same contact: list them all against it
                    for contact_id in d.keys:
                        set_candidates(con, tenant_id, contact_id, [row["client_id"], *d.rivals], d.reason, now)
                else:
                    for contact_id in d.keys:
                        set_candidates(con, tenant_id, contact_id, [row["client_id"]], d.reason, now)
                res.ambiguous += 1
    return res
