"""Credit notes: fetch (network) apart from save (database); saving rebuilds revenue_weekly for the
weeks a credit note entered or left, so a voided or deleted credit note leaves the totals."""
from __future__ import annotations

from typing import Any

import duckdb

from ..errors import XeroError
from ..settings import Settings
from . import store
from . import transforms as T
from .paging import get_json
from .resources import CREDIT_NOTES


def fetch_credit_note(client: Any, credit_note_id: str) -> dict[str, Any] | None:
    """One credit note (e.g. for a webhook's CREDITNOTE event); None if Xero has no such credit note."""
    try:
        doc, _ = get_json(client, f"{CREDIT_NOTES.path}/{credit_note_id}")
    except XeroError as exc:
        if exc.status == 404:
            return None
        raise
    found = (doc or {}).get(CREDIT_NOTES.collection) or []
    return found[0] if found else None


def save_credit_notes(con: duckdb.DuckDBPyConnection, tenant_id: str, records: list[dict[str, Any]], settings: Settings) -> int:
    """Upsert credit notes with their lines and refresh revenue_weekly (call inside a transaction)."""
    if not records:
        return 0
    cn, lines = T.credit_note_frames(records, settings.region_category, settings.revenue_type_category)
    n, _ = store.save_credit_note_frames(con, tenant_id, cn, lines, settings.week_ends_on)
    return n
