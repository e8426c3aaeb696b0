"""Contacts: fetch (network) apart from save (database). The practice module matches clients on these."""
from __future__ import annotations

from typing import Any

import duckdb

from ..errors import XeroError
from . import store
from . import transforms as T
from .paging import get_json
from .resources import CONTACTS


def fetch_contact(client: Any, contact_id: str) -> list[dict[str, Any]]:
    """One contact (a webhook's CONTACT event): [] if Xero has no such contact. (The contacts step
    pages through sync/incremental.py.)"""
    try:
        doc, _ = get_json(client, f"{CONTACTS.path}/{contact_id}")
    except XeroError as exc:
        if exc.status == 404:
            return []
        raise
    return list((doc or {}).get(CONTACTS.collection) or [])


def save_contacts(con: duckdb.DuckDBPyConnection, tenant_id: str, records: list[dict[str, Any]]) -> int:
    """Upsert contacts (call inside a transaction). Returns the number of contacts written."""
    return store.upsert_new_versions(con, "contacts", T.contacts_frame(records), tenant_id, "contact_id")
