"""The practice's own client list: add, edit (edits remembered), import from CSV, resolve matches."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..clock import SYSTEM_CLOCK, Clock
from ..db import connect, transaction
from ..errors import LedgerlinkError
from ..settings import Settings
from .matching import (
    MatchError,
    _rows,
    clear_candidates,
    load_edited,
    match_clients_to_contacts,
    new_client_id,
    norm_email,
    norm_name,
)

EDITABLE = ("name", "email", "phone", "archived")
MAX_CSV_BYTES = 5 * 1024 * 1024


class ClientError(LedgerlinkError):
    pass


def _clean(value) -> str | None:
    if value is None:
        return None
    v = str(value).strip()
    return v or None


def _check_email(email: str | None, where: str = "") -> None:
    if email and not norm_email(email):
        raise ClientError(f"{where}email {email!r} does not look like an email address (it needs an @).")


def _org_tenants(con) -> list[str]:
    return [r[0] for r in con.execute("SELECT DISTINCT tenant_id FROM contacts ORDER BY 1").fetchall()]


def list_clients(settings: Settings, *, include_archived: bool = True) -> list[dict]:
    with connect(settings.db_path, read_only=True) as con:
        sql = (
            "SELECT client_id, name, email, phone, tenant_id, xero_contact_id, xpm_client_id, match_status, "
            "match_method, archived, source, edited_fields, created_at, updated_at FROM clients"
        )
        if not include_archived:
            sql += " WHERE NOT coalesce(archived, FALSE)"
        return _rows(con, sql + " ORDER BY lower(name), client_id")


def get_client(settings: Settings, client_id: str) -> dict | None:
    with connect(settings.db_path, read_only=True) as con:
        rows = _rows(con, "SELECT * FROM clients WHERE client_id = ?", [client_id])
    return rows[0] if rows else None


def add_client(settings: Settings, name: str, email: str | None = None, phone: str | None = None, *,
               clock: Clock = SYSTEM_CLOCK) -> str:
    """Create a client by hand; it is matched at once against contacts already synced."""
    name, email, phone = _clean(name), _clean(email), _clean(phone)
    if not name:
        raise ClientError("A client needs a name.")
    _check_email(email)
    now = clock.now()
    cid = new_client_id()
    with connect(settings.db_path) as con, transaction(con):
        con.execute(
            "INSERT INTO clients (client_id, name, email, phone, match_status, archived, source, edited_fields, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, 'unmatched', FALSE, 'manual', '{}', ?, ?)",
            [cid, name, email, phone, now, now],
        )
        match_clients_to_contacts(con, [cid], _org_tenants(con), clock=clock)
    return cid


def edit_client(settings: Settings, client_id: str, *, clock: Clock = SYSTEM_CLOCK, **changes) -> dict:
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
        values = {}
        for f, v in changes.items():
            v = bool(v) if f == "archived" else _clean(v)
            if f == "name" and not v:
                raise ClientError("A client's name cannot be empty.")
            if f == "email":
                _check_email(v)
            values[f] = v
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

    def as_dict(self) -> dict:
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


def list_candidates(settings: Settings) -> list[dict]:
    """Ambiguous matches waiting for an admin, with both sides' names."""
    with connect(settings.db_path, read_only=True) as con:
        return _rows(
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
