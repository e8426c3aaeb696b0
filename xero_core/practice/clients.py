"""The practice's own client list: add, edit (edits remembered), import from CSV, resolve matches, and
the reconciliation of stored Xero contacts with it (`reconcile_stored_contacts`, `match_clients_now`)."""
from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from duckdb import DuckDBPyConnection

from ..clock import SYSTEM_CLOCK, Clock
from ..db import connect, transaction
from ..connections import list_connections
from ..errors import LedgerlinkError
from ..settings import Settings
from .roles import CLIENT_ORGANISATION, ledger_of, read_roles, retire_foreign_clients
from .matching import (
    SKIP_REASONS,
    MatchError,
    ReconcileResult,
    clear_candidates,
    contact_fields,
    invoice_evidence,
    reconcile_contacts,
    skip_reason,
    load_edited,
    match_clients_to_contacts,
    new_client_id,
    norm_email,
    norm_name,
)
from .sql import Row, one, rows, value

EDITABLE = ("name", "email", "phone", "archived")
MAX_CSV_BYTES = 5 * 1024 * 1024


class ClientError(LedgerlinkError):
    pass


def _clean(value: object) -> str | None:
    if value is None:
        return None
    v = str(value).strip()
    return v or None


def _check_email(email: str | None, where: str = "") -> None:
    if email and not norm_email(email):
        raise ClientError(f"{where}email {email!r} does not look like an email address (it needs an @).")


def _org_tenants(con: DuckDBPyConnection) -> list[str]:
    """The organisations whose contacts can be clients: the practice ledger only (practice.roles)."""
    ledger = ledger_of(con)
    return [ledger] if ledger else []


def list_clients(settings: Settings, *, include_archived: bool = True) -> list[Row]:
    with connect(settings.db_path, read_only=True) as con:
        sql = (
            "SELECT client_id, name, email, phone, tenant_id, xero_contact_id, xpm_client_id, match_status, "
            "match_method, archived, source, edited_fields, created_at, updated_at FROM clients"
        )
        if not include_archived:
            sql += " WHERE NOT coalesce(archived, FALSE)"
        return rows(con, sql + " ORDER BY lower(name), client_id")


def get_client(settings: Settings, client_id: str) -> Row | None:
    with connect(settings.db_path, read_only=True) as con:
        found = rows(con, "SELECT * FROM clients WHERE client_id = ?", [client_id])
    return found[0] if found else None


def add_client(settings: Settings, name: str, email: str | None = None, phone: str | None = None, *,
               clock: Clock = SYSTEM_CLOCK) -> str:
    """Create a client by hand; it is matched at once against contacts already synced."""
    name_, email, phone = _clean(name), _clean(email), _clean(phone)
    if not name_:
        raise ClientError("A client needs a name.")
    name = name_
    _check_email(email)
    now = clock.now()
    cid = new_client_id()
    with connect(settings.db_path) as con, transaction(con):
        if email:
            for other_id, other_name, other_email in con.execute("SELECT client_id, name, email FROM clients").fetchall():
                if norm_email(other_email) == norm_email(email) and norm_name(other_name) == norm_name(name):
                    raise ClientError(f"{other_name} <{other_email}> is already a client ({other_id}): change that one "
                                      f"(Edit a client, or `clients list`) instead of adding a second.")
        con.execute(
            "INSERT INTO clients (client_id, name, email, phone, match_status, archived, source, edited_fields, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 'unmatched', FALSE, 'manual', '{}', ?, ?)",
            [cid, name, email, phone, now, now],
        )
        match_clients_to_contacts(con, [cid], _org_tenants(con), clock=clock)
    return cid


def edit_client(settings: Settings, client_id: str, *, clock: Clock = SYSTEM_CLOCK, **changes: object) -> dict[str, Any]:
    """Change fields by hand; each edited field is recorded so no sync overwrites it."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ClientError(f"Cannot edit {', '.join(sorted(unknown))}: editable fields are {', '.join(EDITABLE)}.")
    now = clock.now()
    with connect(settings.db_path) as con, transaction(con):
        row = con.execute("SELECT edited_fields FROM clients WHERE client_id = ?", [client_id]).fetchone()
        if row is None:
            raise ClientError(f"No client {client_id!r}. List clients with: python -m xero_core clients list")
        edited = load_edited(row[0])
        values: dict[str, object] = {}
        for f, v in changes.items():
            if f == "archived":
                values[f] = bool(v)
            else:
                text = _clean(v)
                if f == "name" and not text:
                    raise ClientError("A client's name cannot be empty.")
                if f == "email":
                    _check_email(text)
                values[f] = text
            edited[f] = now.isoformat()
        sets = ", ".join(f"{f} = ?" for f in values)
        con.execute(
            f"UPDATE clients SET {sets}, edited_fields = ?, updated_at = ? WHERE client_id = ?",
            [*values.values(), json.dumps(edited, sort_keys=True), now, client_id],
        )
    return edited


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "line 4: ..." messages
    linked: int = 0
    ambiguous: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def import_csv(settings: Settings, source: Path | str | bytes, *, clock: Clock = SYSTEM_CLOCK) -> ImportResult:
    """Import clients from a CSV with a header row: name (required), email, phone.

    Bad lines are reported by number and skipped; good lines are all committed together.
    A line whose email or name already exists as a client is skipped, not duplicated.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ClientError(f"CSV file {path} does not exist.")
        if path.stat().st_size > MAX_CSV_BYTES:
            raise ClientError(f"CSV file {path} is over {MAX_CSV_BYTES // (1024 * 1024)} MB; split it into smaller files.")
        data = path.read_bytes()
    else:
        data = bytes(source)
        if len(data) > MAX_CSV_BYTES:
            raise ClientError(f"The CSV is over {MAX_CSV_BYTES // (1024 * 1024)} MB; split it into smaller files.")
    try:
        textdata = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        textdata = data.decode("cp1252", errors="replace")  # Excel on Windows
    reader = csv.DictReader(io.StringIO(textdata))
    if not reader.fieldnames:
        raise ClientError("The CSV is empty: it needs a header row with at least a 'name' column.")
    header = {h.strip().lower(): h for h in reader.fieldnames if h}
    name_col = header.get("name") or header.get("client name") or header.get("client")
    if not name_col:
        raise ClientError(
            f"The CSV has no 'name' column (found: {', '.join(reader.fieldnames)}). "
            "Use a header row like: name,email,phone"
        )
    email_col = header.get("email") or header.get("email address")
    phone_col = header.get("phone") or header.get("phone number")
    now = clock.now()
    res = ImportResult()
    with connect(settings.db_path) as con, transaction(con):
        existing = con.execute("SELECT name, email FROM clients").fetchall()
        seen_names = {norm_name(r[0]) for r in existing}
        seen_emails = {norm_email(r[1]) for r in existing if r[1]}
        for lineno, rec in enumerate(reader, start=2):
            name = _clean(rec.get(name_col))
            email = _clean(rec.get(email_col)) if email_col else None
            phone = _clean(rec.get(phone_col)) if phone_col else None
            if not name:
                res.skipped.append(f"line {lineno}: no name")
                continue
            if email and not norm_email(email):
                res.skipped.append(f"line {lineno}: {email!r} is not an email address")
                continue
            if (email and norm_email(email) in seen_emails) or norm_name(name) in seen_names:
                res.skipped.append(f"line {lineno}: {name!r} is already a client")
                continue
            cid = new_client_id()
            con.execute(
                "INSERT INTO clients (client_id, name, email, phone, match_status, archived, source, edited_fields, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 'unmatched', FALSE, 'csv', '{}', ?, ?)",
                [cid, name, email, phone, now, now],
            )
            seen_names.add(norm_name(name))
            if email:
                seen_emails.add(norm_email(email))
            res.created.append(cid)
        m = match_clients_to_contacts(con, res.created, _org_tenants(con), clock=clock)
        res.linked, res.ambiguous = m.linked, m.ambiguous
    return res


def list_candidates(settings: Settings) -> list[Row]:
    """Ambiguous matches waiting for an admin, with both sides' names."""
    with connect(settings.db_path, read_only=True) as con:
        return rows(
            con,
            "SELECT m.client_id, k.name AS client_name, k.email AS client_email, m.tenant_id, m.contact_id, "
            "coalesce(c.name, x.client_name) AS contact_name, c.email AS contact_email, m.reason, m.created_at "
            "FROM client_match_candidates m JOIN clients k USING (client_id) "
            "LEFT JOIN contacts c ON c.tenant_id = m.tenant_id AND c.contact_id = m.contact_id "
            "LEFT JOIN (SELECT DISTINCT tenant_id, client_id, client_name FROM xpm_jobs) x "
            "  ON x.tenant_id = m.tenant_id AND x.client_id = m.contact_id "
            "ORDER BY k.name, m.contact_id",
        )


def resolve_match(settings: Settings, client_id: str, tenant_id: str, contact_id: str, *,
                  clock: Clock = SYSTEM_CLOCK) -> None:
    """An admin's answer to an ambiguity: link this client to this contact (or XPM client)."""
    now = clock.now()
    with connect(settings.db_path) as con, transaction(con):
        if con.execute("SELECT 1 FROM clients WHERE client_id = ?", [client_id]).fetchone() is None:
            raise MatchError(f"No client {client_id!r}.")
        ttype = con.execute("SELECT upper(tenant_type) FROM connections WHERE tenant_id = ?", [tenant_id]).fetchone()
        if ttype and ttype[0] == "PRACTICEMANAGER":
            other = con.execute(
                "SELECT client_id FROM clients WHERE xpm_client_id = ? AND client_id <> ?", [contact_id, client_id]
            ).fetchone()
            if other:
                raise MatchError(f"XPM client {contact_id} is already linked to client {other[0]}; unlink that one first.")
            con.execute("UPDATE clients SET xpm_client_id = ?, updated_at = ? WHERE client_id = ?", [contact_id, now, client_id])
            con.execute("UPDATE xpm_jobs SET ledgerlink_client_id = ? WHERE tenant_id = ? AND client_id = ?",
                        [client_id, tenant_id, contact_id])
        else:
            if con.execute("SELECT 1 FROM contacts WHERE tenant_id = ? AND contact_id = ?", [tenant_id, contact_id]).fetchone() is None:
                raise MatchError(f"No Xero contact {contact_id} in tenant {tenant_id}; sync contacts first.")
            other = con.execute(
                "SELECT client_id FROM clients WHERE tenant_id = ? AND xero_contact_id = ? AND client_id <> ?",
                [tenant_id, contact_id, client_id],
            ).fetchone()
            if other:
                raise MatchError(f"Xero contact {contact_id} is already matched to client {other[0]}; unlink that one first.")
            con.execute(
                "UPDATE clients SET tenant_id = ?, xero_contact_id = ?, match_status = 'matched', match_method = 'manual', "
                "updated_at = ? WHERE client_id = ?",
                [tenant_id, contact_id, now, client_id],
            )
        clear_candidates(con, client_id=client_id, now=now)
        clear_candidates(con, tenant_id=tenant_id, contact_id=contact_id, now=now)


# --------------------------------------------------------------------------- reconciliation

CURSOR = "clients_reconcile"  # sync_cursors.resource: the newest contacts.synced_at reconciled
INVOICE_CURSOR = "clients_reconcile_invoices"  # the newest invoices.synced_at looked at (sales evidence)
PRACTICE_MANAGER = "PRACTICEMANAGER"


def _cursor(con: DuckDBPyConnection, tenant_id: str, resource: str) -> datetime | None:
    row = con.execute("SELECT cursor_value FROM sync_cursors WHERE tenant_id = ? AND resource = ?",
                      [tenant_id, resource]).fetchone()
    try:
        return datetime.fromisoformat(row[0]) if row and row[0] else None
    except ValueError:
        return None


def _set_cursor(con: DuckDBPyConnection, tenant_id: str, resource: str, value: datetime, now: datetime) -> None:
    con.execute("INSERT OR REPLACE INTO sync_cursors (tenant_id, resource, cursor_value, updated_at) VALUES (?, ?, ?, ?)",
                [tenant_id, resource, value.isoformat(), now])


def _contact_record(raw: object, row: tuple[Any, ...]) -> dict[str, Any] | None:
    """The contact as Xero sent it (raw JSON); the stored columns when raw is missing or unreadable."""
    if raw is not None:
        try:
            rec = json.loads(raw) if isinstance(raw, str) else dict(raw) if isinstance(raw, Mapping) else None
            if isinstance(rec, dict) and rec.get("ContactID"):
                return rec
        except (TypeError, ValueError):
            pass
    contact_id, name, email, status, is_customer, is_supplier, merged = row
    if not contact_id:
        return None
    return {"ContactID": contact_id, "Name": name, "EmailAddress": email, "ContactStatus": status or "ACTIVE",
            "IsCustomer": is_customer, "IsSupplier": is_supplier, "MergedToContactID": merged}


def reset_reconcile_cursors(con: DuckDBPyConnection, tenant_id: str) -> None:
    """The next pass over this tenant looks at every stored contact (it has just become the ledger)."""
    con.execute("DELETE FROM sync_cursors WHERE tenant_id = ? AND resource IN (?, ?)", [tenant_id, CURSOR, INVOICE_CURSOR])


def _tenant_type(con: DuckDBPyConnection, tenant_id: str) -> str:
    row = con.execute("SELECT upper(coalesce(tenant_type, '')) FROM connections WHERE tenant_id = ?", [tenant_id]).fetchone()
    return str(row[0]) if row else ""


def _match_open_clients(con: DuckDBPyConnection, tenant_ids: list[str], res: ReconcileResult, *, clock: Clock) -> None:
    """Clients still without a Xero contact (added by hand, from CSV, or by Practice Manager after the
    contacts were reconciled) look for theirs among every stored contact of these tenants."""
    open_ids = [r[0] for r in con.execute(
        "SELECT client_id FROM clients WHERE xero_contact_id IS NULL AND NOT coalesce(archived, FALSE)").fetchall()]
    if not open_ids or not tenant_ids:
        return
    before = {r[0] for r in con.execute("SELECT DISTINCT client_id FROM client_match_candidates").fetchall()}
    m = match_clients_to_contacts(con, open_ids, tenant_ids, clock=clock)
    after = {r[0] for r in con.execute("SELECT DISTINCT client_id FROM client_match_candidates").fetchall()}
    res.linked += m.linked
    res.ambiguous += len(after - before)


def reconcile_stored_contacts(settings: Settings, tenant_id: str, *, clock: Clock = SYSTEM_CLOCK,
                              full: bool = False) -> ReconcileResult:
    """Stored contacts -> clients for one tenant, in one transaction, with no call to Xero.

    Incremental by default: contacts stored since the last pass (whoever stored them: a sync, a
    webhook) plus unlinked contacts whose first sales invoice arrived since; `full=True` looks at every
    stored contact (the app's "Match clients now", `clients match`). Then clients still without a
    contact look for one among all stored contacts. For a Practice Manager tenant (no contacts of its
    own) only that last part runs, against every organisation's contacts. `.as_dict()` is the report.
    """
    res = ReconcileResult(full=full)
    with connect(settings.db_path) as con, transaction(con):
        now = clock.now()
        roles = read_roles(con)
        if _tenant_type(con, tenant_id) == PRACTICE_MANAGER:
            _match_open_clients(con, _org_tenants(con), res, clock=clock)
        elif roles.ledger != tenant_id:
            # A client organisation's customers are its own, never the practice's clients.
            removed, kept = retire_foreign_clients(con, now)
            res.removed += len(removed)
            res.role = roles.role_of(tenant_id)
            res.note = (f"{roles.name_of(tenant_id) or tenant_id} is a client organisation: its customers are not the "
                        "practice's clients" if res.role == CLIENT_ORGANISATION else roles.problem)
        else:
            since = None if full else _cursor(con, tenant_id, CURSOR)
            inv_since = None if full else _cursor(con, tenant_id, INVOICE_CURSOR)
            cols = "c.raw, c.contact_id, c.name, c.email, c.status, c.is_customer, c.is_supplier, c.merged_to_contact_id, c.synced_at"
            sql = f"SELECT {cols} FROM contacts c WHERE c.tenant_id = ?"
            params: list[object] = [tenant_id]
            if since is not None:
                # Changed contacts, and unlinked ones whose sales evidence is newer than the last pass.
                sql += (" AND (c.synced_at > ? OR (c.contact_id IN (SELECT contact_id FROM invoices WHERE tenant_id = ? "
                        "AND upper(type) = 'ACCREC'" + (" AND synced_at > ?" if inv_since else "") + ") "
                        "AND NOT EXISTS (SELECT 1 FROM clients k WHERE k.tenant_id = c.tenant_id "
                        "AND k.xero_contact_id = c.contact_id)))")
                params += [since, tenant_id] + ([inv_since] if inv_since else [])
            rows = con.execute(sql + " ORDER BY c.synced_at, c.contact_id", params).fetchall()
            records = [r for r in (_contact_record(row[0], row[1:8]) for row in rows) if r]
            res.add(reconcile_contacts(con, tenant_id, records, clock=clock))
            newest = value(con, "SELECT max(synced_at) FROM contacts WHERE tenant_id = ?", [tenant_id])
            newest = max([t for t in (newest, since) if t is not None], default=None)
            if newest is not None:
                _set_cursor(con, tenant_id, CURSOR, newest, now)
            inv_newest = value(con, "SELECT max(synced_at) FROM invoices WHERE tenant_id = ?", [tenant_id])
            if inv_newest is not None:
                _set_cursor(con, tenant_id, INVOICE_CURSOR, inv_newest, now)
            _match_open_clients(con, [tenant_id], res, clock=clock)
        res.waiting = value(
            con, "SELECT count(DISTINCT client_id) FROM client_match_candidates WHERE tenant_id = ?", [tenant_id])
    return res


def reconcile_pending(con: DuckDBPyConnection, tenant_id: str, tenant_type: str | None = None) -> bool:
    """Would an incremental pass find anything? (for a sync's probe: contacts or sales invoices stored
    since the last pass, or a client still looking for its contact). `tenant_type`: the connection's,
    when the caller has read it already."""
    kind = tenant_type.upper() if tenant_type is not None else _tenant_type(con, tenant_id)
    if kind != PRACTICE_MANAGER and ledger_of(con) != tenant_id:
        return False  # a client organisation (or undecided): its contacts make no clients
    since = _cursor(con, tenant_id, CURSOR)
    newest = value(con, "SELECT max(synced_at) FROM contacts WHERE tenant_id = ?", [tenant_id])
    if newest is not None and (since is None or newest > since):
        return True
    inv_since = _cursor(con, tenant_id, INVOICE_CURSOR)
    inv_newest = value(con, "SELECT max(synced_at) FROM invoices WHERE tenant_id = ?", [tenant_id])
    if inv_newest is not None and (inv_since is None or inv_newest > inv_since):
        return True
    unmatched: int = value(con, "SELECT count(*) FROM clients WHERE xero_contact_id IS NULL AND NOT coalesce(archived, FALSE) "
                                "AND coalesce(match_status, 'unmatched') = 'unmatched'")
    return unmatched > 0


def _log_reconciliation(settings: Settings, tenant_id: str, trigger: str, started: datetime, finished: datetime,
                        res: ReconcileResult | None, error: str | None) -> None:
    """One sync_log row of type `clients`, as a sync's clients step writes, so the app shows the last one."""
    with connect(settings.db_path) as con:
        con.execute(
            "INSERT INTO sync_log (sync_id, run_id, tenant_id, sync_type, status, rows, api_calls, bytes_downloaded, "
            "error, trigger, started_at, finished_at, detail) VALUES (?, ?, ?, 'clients', ?, ?, 0, 0, ?, ?, ?, ?, ?)",
            [uuid.uuid4().hex, uuid.uuid4().hex, tenant_id, "failed" if error else "success",
             (res.linked + res.created + res.updated) if res else 0, error, trigger, started, finished,
             json.dumps(res.as_dict(), default=str) if res else None])


def match_clients_now(settings: Settings, *, tenant_id: str | None = None, trigger: str = "manual",
                      clock: Clock = SYSTEM_CLOCK) -> list[dict[str, Any]]:
    """A full reconciliation of the stored contacts of every connected tenant (or one), now, with no
    call to Xero; each logged as a `clients` step. Returns one report per tenant:
    {tenant_id, tenant_name, tenant_type, status, error, report (ReconcileResult.as_dict()), summary}."""
    out: list[dict[str, Any]] = []
    for conn in list_connections(settings):
        if conn.get("status") != "connected" or (tenant_id and conn["tenant_id"] != tenant_id):
            continue
        tid = conn["tenant_id"]
        started = clock.now()
        res: ReconcileResult | None = None
        error: str | None = None
        try:
            res = reconcile_stored_contacts(settings, tid, clock=clock, full=True)
        except LedgerlinkError as exc:
            error = str(exc)
        status = "failed" if res is None else ("skipped" if res.note else "success")
        if status != "skipped":  # the Clients page keeps showing the last pass that reconciled something
            _log_reconciliation(settings, tid, trigger, started, clock.now(), res, error)
        out.append({"tenant_id": tid, "tenant_name": conn.get("tenant_name"), "tenant_type": conn.get("tenant_type"),
                    "status": status, "error": error,
                    "report": res.as_dict() if res else None, "summary": res.summary() if res else error})
    return out


def last_reconciliations(settings: Settings) -> list[Row]:
    """The newest `clients` step per tenant (a sync's or a "Match clients now"): when, how, its report."""
    with connect(settings.db_path, read_only=True) as con:
        found = rows(
            con,
            "SELECT l.tenant_id, c.tenant_name, c.tenant_type, l.status, l.error, l.trigger, l.finished_at, l.detail "
            "FROM sync_log l LEFT JOIN connections c USING (tenant_id) WHERE l.sync_type = 'clients' "
            "AND l.status IN ('success', 'failed', 'partial') "
            "QUALIFY row_number() OVER (PARTITION BY l.tenant_id ORDER BY l.finished_at DESC NULLS LAST) = 1 "
            "ORDER BY c.tenant_name, l.tenant_id")
    for r in found:
        detail = r.pop("detail")
        try:
            r["report"] = json.loads(detail) if isinstance(detail, str) else detail
        except ValueError:
            r["report"] = None
    return found


def reconciliation_state(settings: Settings) -> list[dict[str, Any]]:
    """Where the clients come from, as they stand (not what the last pass changed): for the practice
    ledger and each Practice Manager tenant, {tenant_id, tenant_name, tenant_type, clients (linked to it),
    imported (created from it), matched (existing clients it was matched to), waiting (clients waiting for
    a choice), not_clients (the ledger's active contacts that are no client)}, plus its last pass
    (`last_reconciliations`)."""
    last = {r["tenant_id"]: r for r in last_reconciliations(settings)}
    out: list[dict[str, Any]] = []
    with connect(settings.db_path, read_only=True) as con:
        roles = read_roles(con)
        sources: list[tuple[Any, ...]] = [(roles.ledger, roles.name_of(roles.ledger), "ORGANISATION")] if roles.ledger else []
        sources += con.execute("SELECT tenant_id, coalesce(tenant_name, tenant_id), 'PRACTICEMANAGER' FROM connections "
                               "WHERE upper(tenant_type) = ? AND status <> 'disconnected' ORDER BY 2",
                               [PRACTICE_MANAGER]).fetchall()
        for tid, name, ttype in sources:
            if ttype == PRACTICE_MANAGER:
                clients, imported = one(
                    con, "SELECT count(*), count(*) FILTER (WHERE source = 'xpm') FROM clients WHERE xpm_client_id IS NOT NULL "
                    "AND NOT coalesce(archived, FALSE)")
                not_clients = 0
            else:
                clients, imported = one(
                    con, "SELECT count(*), count(*) FILTER (WHERE source = 'xero') FROM clients WHERE tenant_id = ? "
                    "AND xero_contact_id IS NOT NULL AND NOT coalesce(archived, FALSE)", [tid])
                not_clients = value(
                    con, "SELECT count(*) FROM contacts c WHERE c.tenant_id = ? AND upper(coalesce(c.status, 'ACTIVE')) = 'ACTIVE' "
                    "AND (c.merged_to_contact_id IS NULL OR c.merged_to_contact_id = '' OR "
                    "c.merged_to_contact_id = '00000000-0000-0000-0000-000000000000') "
                    "AND NOT EXISTS (SELECT 1 FROM clients k WHERE k.tenant_id = c.tenant_id "
                    "AND k.xero_contact_id = c.contact_id)", [tid])
            waiting = value(con, "SELECT count(DISTINCT client_id) FROM client_match_candidates WHERE tenant_id = ?",
                            [tid])
            out.append({"tenant_id": tid, "tenant_name": name, "tenant_type": ttype, "confirmed": roles.confirmed,
                        "clients": clients, "imported": imported, "matched": clients - imported, "waiting": waiting,
                        "not_clients": not_clients, "last": last.get(tid)})
    return out


def skipped_contacts(settings: Settings, tenant_id: str | None = None) -> list[dict[str, Any]]:
    """Active stored contacts with no client and the reason they were not imported, for a person to
    add by hand (`add_client_from_contact`)."""
    with connect(settings.db_path, read_only=True) as con:
        evidence_by_tenant: dict[str, dict[str, tuple[bool, bool]]] = {}
        ledger = ledger_of(con)
        if ledger is None or (tenant_id is not None and tenant_id != ledger):
            return []  # only the practice ledger's contacts can be clients
        tenant_id = ledger
        found = con.execute(
            "SELECT c.tenant_id, c.raw, c.contact_id, c.name, c.email, c.status, c.is_customer, c.is_supplier, "
            "c.merged_to_contact_id FROM contacts c WHERE (? IS NULL OR c.tenant_id = ?) "
            "AND upper(coalesce(c.status, 'ACTIVE')) = 'ACTIVE' "
            "AND NOT EXISTS (SELECT 1 FROM clients k WHERE k.tenant_id = c.tenant_id AND k.xero_contact_id = c.contact_id) "
            "ORDER BY lower(c.name), c.contact_id", [tenant_id, tenant_id]).fetchall()
        out: list[dict[str, Any]] = []
        for row in found:
            tid = row[0]
            if tid not in evidence_by_tenant:
                evidence_by_tenant[tid] = invoice_evidence(con, tid)
            rec = _contact_record(row[1], row[2:9])
            if not rec:
                continue
            sales, bills = evidence_by_tenant[tid].get(rec["ContactID"], (False, False))
            reason = skip_reason(rec, has_sales=sales, has_purchases=bills)
            out.append({"tenant_id": tid, "contact_id": rec["ContactID"], "name": rec.get("Name"),
                        "email": rec.get("EmailAddress") or None, "reason": reason,
                        "why": SKIP_REASONS.get(reason or "", "a customer not reconciled yet (Match clients now)")})
    return out


def add_client_from_contact(settings: Settings, tenant_id: str, contact_id: str, *, client_id: str | None = None,
                            clock: Clock = SYSTEM_CLOCK) -> str:
    """A person makes a Xero contact a client (a supplier, a government body, anyone the rules skip):
    linked to `client_id` when given, else a new client with the contact's details. Returns the client id."""
    now = clock.now()
    with connect(settings.db_path) as con, transaction(con):
        row = con.execute("SELECT raw, contact_id, name, email, status, is_customer, is_supplier, merged_to_contact_id "
                          "FROM contacts WHERE tenant_id = ? AND contact_id = ?", [tenant_id, contact_id]).fetchone()
        rec = _contact_record(row[0], row[1:8]) if row is not None else None
        if rec is None:
            raise ClientError(f"No Xero contact {contact_id} in tenant {tenant_id}: sync contacts first "
                              "(python -m xero_core sync --only contacts).")
        roles = read_roles(con)
        if roles.ledger != tenant_id:
            raise ClientError(f"{roles.name_of(tenant_id) or tenant_id} is not the practice ledger: only the practice's "
                              "own Xero holds its clients' contacts. "
                              + (roles.problem or "Link the client to its contact in the practice ledger instead."))
        other = con.execute("SELECT client_id, name FROM clients WHERE tenant_id = ? AND xero_contact_id = ?",
                            [tenant_id, contact_id]).fetchone()
        if other and other[0] != client_id:
            raise ClientError(f"Xero contact {rec.get('Name') or contact_id} is already client {other[1]!r} ({other[0]}).")
        fields = contact_fields(rec)
        if client_id:
            if con.execute("SELECT 1 FROM clients WHERE client_id = ?", [client_id]).fetchone() is None:
                raise ClientError(f"No client {client_id!r}. List clients with: python -m xero_core clients list")
            con.execute("UPDATE clients SET tenant_id = ?, xero_contact_id = ?, match_status = 'matched', "
                        "match_method = 'manual', updated_at = ? WHERE client_id = ?", [tenant_id, contact_id, now, client_id])
        else:
            if not fields["name"]:
                raise ClientError(f"Xero contact {contact_id} has no name; add the client by hand and link it.")
            client_id = new_client_id()
            con.execute(
                "INSERT INTO clients (client_id, name, email, phone, tenant_id, xero_contact_id, match_status, match_method, "
                "archived, source, edited_fields, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'matched', 'manual', FALSE, 'manual', '{}', ?, ?)",
                [client_id, fields["name"], fields["email"], fields["phone"], tenant_id, contact_id, now, now])
        clear_candidates(con, client_id=client_id, now=now)
        clear_candidates(con, tenant_id=tenant_id, contact_id=contact_id, now=now)
    return client_id
