"""Invoices: fetch (network) apart from save (database); saving rebuilds revenue_weekly for the
weeks an invoice entered or left, so a voided or deleted invoice leaves the totals."""
from __future__ import annotations

from typing import Any

import duckdb

from ..errors import XeroError
from ..settings import Settings
from . import store
from . import transforms as T
from .paging import get_json
from .resources import INVOICES


def fetch_invoice(client: Any, invoice_id: str) -> dict[str, Any] | None:
    """One invoice (e.g. for a webhook's INVOICE event); None if Xero has no such invoice."""
    try:
        doc, _ = get_json(client, f"{INVOICES.path}/{invoice_id}")
    except XeroError as exc:
        if exc.status == 404:
            return None
        raise
    found = (doc or {}).get(INVOICES.collection) or []
    return found[0] if found else None


def save_invoices(con: duckdb.DuckDBPyConnection, tenant_id: str, records: list[dict[str, Any]], settings: Settings) -> int:
    """Upsert invoices with their lines and refresh revenue_weekly (call inside a transaction)."""
    if not records:
        return 0
    inv, lines = T.invoice_frames(records, settings.region_category, settings.revenue_type_category)
    n, _ = store.save_invoice_frames(con, tenant_id, inv, lines, settings.week_ends_on)
    return n
