"""Contacts: fetch (network) apart from save (database). The practice module matches clients on these."""
from __future__ import annotations

from datetime import datetime

import duckdb

from . import store
from .marks import refetch_from
from . import transforms as T
from .paging import get_json
from .resources import CONTACTS


def if_modified_since(since: datetime | None) -> dict:
    """Xero compares at second precision; we step back a second so an edit in the same second as the
    cursor is fetched again (upserts make the repeat harmless)."""
    if since is None:
        return {}
    return {"If-Modified-Since": refetch_from(since).strftime("%Y-%m-%dT%H:%M:%S")}


def fetch_contacts(client, *, since: datetime | None = None, contact_id: str | None = None) -> list[dict]:
    """Every contact (full), those modified since `since` (incremental), or one (`contact_id`)."""
    if contact_id:
        from ..errors import XeroError

        try:
            doc, _ = get_json(client, f"{CONTACTS.path}/{contact_id}")
        except XeroError as exc:
            if exc.status == 404:
                return []
            raise
        return list((doc or {}).get(CONTACTS.collection) or [])
    out: list[dict] = []
    for page in CONTACTS.pager.pages(client, CONTACTS.path, CONTACTS.collection, CONTACTS.params,
                                     if_modified_since(since)):
        out.extend(page.records)
    return out


def save_contacts(con: duckdb.DuckDBPyConnection, tenant_id: str, records: list[dict]) -> int:
    """Upsert contacts (call inside a transaction). Returns the number of contacts written."""
    return store.upsert_new_versions(con, "contacts", T.contacts_frame(records), tenant_id, "contact_id")
