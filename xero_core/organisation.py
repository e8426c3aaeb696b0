"""The organisation itself: GET /Organisation -> the `organisations` row (issue 23 §2).

Read at connect (`read_at_connect`, from the consent flow) and by every sync's first step
(`sync.steps.step_organisation`); both write only when the organisation changed (its `digest`).
Everything that shows or computes a currency, a local date or a financial year reads this row.
`organisation_row` is pure; the rest is small I/O around it.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable, Mapping, TypedDict

import orjson

from .clock import SYSTEM_CLOCK, Clock
from .timezones import iana_timezone

if TYPE_CHECKING:  # types only: importing this module loads no DuckDB or httpx
    import duckdb
    import httpx

    from .client import XeroClient
    from .settings import Settings

log = logging.getLogger(__name__)
PATH = "/api.xro/2.0/Organisation"

ORGANISATION_COLUMNS = (
    "organisation_id", "name", "legal_name", "base_currency", "country_code", "timezone", "xero_timezone",
    "financial_year_end_month", "financial_year_end_day", "short_code", "organisation_type", "sales_tax_basis",
    "version", "digest", "raw",
)


class OrganisationRow(TypedDict):
    """An `organisations` row as `organisation_row` builds it from Xero's record (ORGANISATION_COLUMNS)."""
    organisation_id: str | None
    name: str | None
    legal_name: str | None
    base_currency: str | None
    country_code: str | None
    timezone: str | None
    xero_timezone: str | None
    financial_year_end_month: int | None
    financial_year_end_day: int | None
    short_code: str | None
    organisation_type: str | None
    sales_tax_basis: str | None
    version: str | None
    digest: str
    raw: str


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def organisation_row(record: Mapping[str, Any]) -> OrganisationRow:
    """One `organisations` row from GET /Organisation's record (`Organisations[0]`). `timezone` is the
    IANA name for Xero's Timezone value (None when unknown: the caller keeps XERO_TIMEZONE); `digest`
    is what an unchanged organisation is recognised by (its JSON, keys sorted)."""
    canonical = orjson.dumps(record, option=orjson.OPT_SORT_KEYS, default=str)
    return {
        "organisation_id": record.get("OrganisationID"),
        "name": record.get("Name"),
        "legal_name": record.get("LegalName"),
        "base_currency": (str(record.get("BaseCurrency") or "").strip().upper() or None),
        "country_code": record.get("CountryCode"),
        "timezone": iana_timezone(record.get("Timezone")),
        "xero_timezone": record.get("Timezone"),
        "financial_year_end_month": _int_or_none(record.get("FinancialYearEndMonth")),
        "financial_year_end_day": _int_or_none(record.get("FinancialYearEndDay")),
        "short_code": record.get("ShortCode"),
        "organisation_type": record.get("OrganisationType"),
        "sales_tax_basis": record.get("SalesTaxBasis"),
        "version": record.get("Version"),
        "digest": hashlib.sha256(canonical).hexdigest()[:32],
        "raw": canonical.decode(),
    }


def fetch(client: XeroClient) -> OrganisationRow:
    """GET /Organisation through a XeroClient -> the `organisations` row."""
    from .client import request_json  # here: importing this module loads no httpx

    doc, _ = request_json(client, "GET", PATH)
    records = (doc.get("Organisations") if isinstance(doc, dict) else None) or []
    if not records:
        from .errors import DataError

        raise DataError("Xero's GET /Organisation answered with no organisation; reconnect the tenant if this repeats.")
    return organisation_row(records[0])


def save(con: duckdb.DuckDBPyConnection, tenant_id: str, row: OrganisationRow, at: datetime | None = None) -> int:
    """Store the organisation (one row per tenant); `updated_at` is when this version was stored."""
    at = at or datetime.now(timezone.utc)
    cols = list(ORGANISATION_COLUMNS)
    con.execute(
        f"INSERT OR REPLACE INTO organisations (tenant_id, {', '.join(cols)}, updated_at, synced_at) "
        f"VALUES (?, {', '.join('?' * len(cols))}, ?, ?)", [tenant_id, *(row.get(c) for c in cols), at, at])
    return 1


def read(con: duckdb.DuckDBPyConnection, tenant_id: str) -> dict[str, Any] | None:
    """The stored organisation of a tenant (None before it was first read)."""
    cur = con.execute("SELECT * FROM organisations WHERE tenant_id = ?", [tenant_id])
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None


def save_if_changed(con: duckdb.DuckDBPyConnection, tenant_id: str, row: OrganisationRow) -> int:
    """Store the row unless the same version is stored; its digest also becomes the sync's mark
    (sync_cursors `organisation#mark`), so the sync's organisation step knows it without a read."""
    held = con.execute("SELECT digest FROM organisations WHERE tenant_id = ?", [tenant_id]).fetchone()
    if held and held[0] == row["digest"]:
        return 0
    save(con, tenant_id, row)
    con.execute("INSERT OR REPLACE INTO sync_cursors (tenant_id, resource, cursor_value, updated_at) "
                "VALUES (?, 'organisation#mark', ?, now())", [tenant_id, row["digest"]])
    return 1


def read_at_connect(settings: Settings, tenant_ids: Iterable[str], *, transport: httpx.BaseTransport | None = None,
                    clock: Clock | None = None) -> None:
    """Read each newly connected organisation at once, so its base currency, time zone and
    financial year are known before its first sync. A failure here never fails the connection:
    the first sync reads it again (and says so if it cannot)."""
    from . import db
    from .client import limited_client

    for tid in tenant_ids:
        try:
            client = limited_client(settings, tid, transport=transport, clock=clock or SYSTEM_CLOCK)
            row = fetch(client)
            with db.connect(settings.db_path) as con:
                save_if_changed(con, tid, row)
        except Exception as exc:  # noqa: BLE001 - reported, and the sync's first step tries again
            log.warning("could not read the organisation of tenant %s at connect: %s", tid, exc)
