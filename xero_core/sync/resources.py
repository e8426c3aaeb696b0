"""Every Xero resource the sync reads, declared once (as meltano's `RESTStream`, dlt's `resource` with its
`Incremental`): where it lives, its key, its cursor, its page size, the frames a page becomes and where
those frames are written. `incremental.sync_resource` runs any of them; `incremental.sync_weeks` runs
the weekly reports, declared here too. Nothing here does I/O.

A resource's seams, for whoever adds a column or a resource:
- `frames(records, settings, organisation) -> tuple of polars frames`: a pure transform from transforms.py
  (a new column of invoices goes there, and into the table's migration); `organisation` is the tenant's
  `organisations` row ({} before it is known): documents need its base currency;
- `target(ctx, resource, since) -> Target`: how one transaction writes those frames (`write`), and what it
  rebuilds from them once the last chunk is in (`finish`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import duckdb
import polars as pl

from ..settings import Settings
from . import store
from . import transforms as T
from .context import Context
from .marks import refetch_from

ACCOUNTING = "/api.xro/2.0"
Frames = tuple[pl.DataFrame, ...]
# (a page's records, settings, the tenant's organisations row) -> the frames they become
FrameBuilder = Callable[[list[dict[str, Any]], Settings, dict[str, Any]], Frames]


# -- cursors ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class UpdatedSince:
    """`If-Modified-Since` from the newest `UpdatedDateUTC` stored. Records come in no order, so
    the cursor moves only with the last chunk; the records at its edge carry a mark (marks.Edge)."""
    field: str = "UpdatedDateUTC"
    per_chunk = False

    def parse(self, held: str | None) -> datetime | None:
        return datetime.fromisoformat(held) if held else None

    def headers(self, since: datetime | int | None) -> dict[str, Any]:
        """Xero compares at second precision: a second back, so an edit in the cursor's own second
        is fetched again (upserts make the repeat harmless)."""
        if not isinstance(since, datetime):  # never read yet: everything
            return {}
        return {"If-Modified-Since": refetch_from(since).strftime("%Y-%m-%dT%H:%M:%S")}


@dataclass(frozen=True)
class Offset:
    """`offset` = the highest number stored. The records are immutable and come in ascending order,
    so the cursor may move with each chunk."""
    field: str = "JournalNumber"
    per_chunk = True

    def parse(self, held: str | None) -> int:
        return int(held or 0)

    def headers(self, since: Any) -> dict[str, Any]:
        return {}

    def newest(self, records: list[dict[str, Any]], newest: int) -> int:
        return max([newest, *(int(r.get(self.field) or 0) for r in records)])


# -- where frames go ----------------------------------------------------------------------------
class Target:
    """One resource's writes in a run: `write` what one chunk fetched (inside its transaction);
    `finish` once, with the last chunk (also after an error mid-paging), what is rebuilt from it."""

    def __init__(self, ctx: Context, resource: "Resource", since: Any):
        self.ctx, self.resource, self.since = ctx, resource, since

    def write(self, con: duckdb.DuckDBPyConnection, frames: Frames) -> int:
        raise NotImplementedError

    def must_finish(self, final: bool) -> bool:
        """`finish` has work even when nothing new came (a transaction is opened for it)."""
        return False

    def finish(self, con: duckdb.DuckDBPyConnection, final: bool) -> None:
        return None

    def note(self) -> tuple[str | None, dict[str, Any] | None]:
        """The step's note and detail."""
        if isinstance(self.resource.cursor, UpdatedSince):
            return ("incremental" if self.since else "full"), None
        return None, None


class NewVersions(Target):
    """Rows whose content changed, upserted by the resource's key (accounts, contacts)."""

    def write(self, con: duckdb.DuckDBPyConnection, frames: Frames) -> int:
        return store.upsert_new_versions(con, self.resource.name, frames[0], self.ctx.tenant_id,
                                         key_column(self.resource.key))


class RevenueDocuments(Target):
    """Invoices or credit notes with their lines; revenue_weekly is rebuilt once, with the last chunk,
    for every week a document entered or left (so totals always match what is stored)."""

    def __init__(self, ctx: Context, resource: "Resource", since: Any, save: Callable[..., Any]):
        super().__init__(ctx, resource, since)
        self.save = save  # store.save_invoice_frames / save_credit_note_frames
        self.weeks: set[Any] = set()

    def write(self, con: duckdb.DuckDBPyConnection, frames: Frames) -> int:
        docs, lines = frames
        n, weeks = self.save(con, self.ctx.tenant_id, docs, lines, self.ctx.settings.week_ends_on, rebuild=False,
                             settled_to=self.since)
        self.weeks.update(weeks)
        return int(n)

    def must_finish(self, final: bool) -> bool:
        return bool(self.weeks)

    def finish(self, con: duckdb.DuckDBPyConnection, final: bool) -> None:
        store.rebuild_revenue_weekly(con, self.ctx.tenant_id, self.weeks, self.ctx.settings.week_ends_on)


class JournalLines(Target):
    """Journal lines, then the P&L tie-out rebuilt from them, when anything it reads moved."""

    flagged = 0

    def write(self, con: duckdb.DuckDBPyConnection, frames: Frames) -> int:
        return store.upsert(con, "journal_lines", frames[0], self.ctx.tenant_id)

    def must_finish(self, final: bool) -> bool:
        # Nothing new, and no figure the tie-out reads moved in this run: it stands as it is.
        results = self.ctx.state.get("results") or {}
        return final and (self.ctx.state.get("tieout_stale", True)
                          or any(results.get(k, 1) for k in ("accounts", "pnl")))

    explained = 0
    causes = ""

    def finish(self, con: duckdb.DuckDBPyConnection, final: bool) -> None:
        if final:
            store.rebuild_tieout(con, self.ctx.tenant_id)
            row = con.execute(
                "SELECT count(*) FILTER (WHERE flagged), count(*) FILTER (WHERE explained) FROM pnl_tieout_weekly "
                "WHERE tenant_id = ?", [self.ctx.tenant_id]).fetchone()
            self.flagged, self.explained = (int(row[0]), int(row[1])) if row else (0, 0)
            self.causes = store.tieout_cause_names(con, self.ctx.tenant_id)

    def note(self) -> tuple[str | None, dict[str, Any] | None]:
        if not self.flagged and not self.explained:
            return None, None
        parts = []
        if self.explained:
            parts.append(f"{self.explained} week(s) differ from the P&L report, explained ({self.causes})")
        if self.flagged:
            parts.append(f"{self.flagged} week(s) differ from the P&L report with no cause found: "
                         "see pnl_tieout_weekly.cause")
        return ("tie-out: " + "; ".join(parts),
                {"tieout_flagged_weeks": self.flagged, "tieout_explained_weeks": self.explained})


def key_column(key: str) -> str:
    """`ContactID` -> `contact_id`: a record's id field as its table's key column."""
    out = ""
    for i, ch in enumerate(key):
        if ch.isupper() and i and not key[i - 1].isupper():
            out += "_"
        out += ch.lower()
    return out


# -- the resources ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Resource:
    name: str              # the step, its sync_log type and its sync_cursors resource
    path: str              # relative to settings.api_url
    collection: str        # the envelope key holding the records
    key: str               # the record's id field
    cursor: UpdatedSince | Offset | None  # None: the whole list every time (its mark says if it changed)
    page_size: int | None  # None: one page
    frames: FrameBuilder
    target: Callable[[Context, Resource, Any], Target]  # (ctx, resource, since) -> Target
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""        # in progress lines


def _documents(builder: Callable[..., Frames]) -> FrameBuilder:
    # Amounts stay in each document's own currency; base-currency amounts go beside them.
    return lambda records, settings, org: builder(records, settings.region_category, settings.revenue_type_category,
                                                  (org or {}).get("base_currency"))


def _invoices(ctx: Context, resource: Resource, since: Any) -> Target:
    return RevenueDocuments(ctx, resource, since, store.save_invoice_frames)


def _credit_notes(ctx: Context, resource: Resource, since: Any) -> Target:
    return RevenueDocuments(ctx, resource, since, store.save_credit_note_frames)


ACCOUNTS = Resource("accounts", f"{ACCOUNTING}/Accounts", "Accounts", "AccountID", None, None,
                    lambda records, settings, org: (T.accounts_frame(records),),
                    NewVersions, label="accounts")
CONTACTS = Resource("contacts", f"{ACCOUNTING}/Contacts", "Contacts", "ContactID", UpdatedSince(), 1000,
                    lambda records, settings, org: (T.contacts_frame(records),),
                    NewVersions, {"includeArchived": "true"},
                    label="contacts")
INVOICES = Resource("invoices", f"{ACCOUNTING}/Invoices", "Invoices", "InvoiceID", UpdatedSince(), 1000,
                    _documents(T.invoice_frames),
                    _invoices, label="invoices")
CREDIT_NOTES = Resource("credit_notes", f"{ACCOUNTING}/CreditNotes", "CreditNotes", "CreditNoteID", UpdatedSince(),
                        1000, _documents(T.credit_note_frames),
                        _credit_notes, label="credit notes")
JOURNALS = Resource("journals", f"{ACCOUNTING}/Journals", "Journals", "JournalID", Offset("JournalNumber"), 100,
                    lambda records, settings, org: (T.journal_lines_frame(records),),
                    JournalLines, label="journals")


# -- weekly reports -----------------------------------------------------------------------------
@dataclass(frozen=True)
class WeeklyReport:
    """A report fetched one week per call (`fromDate`..`toDate`), written REPORT_CHUNK weeks per
    transaction; a week whose mapped figures match its stored fingerprint is not rewritten.
    `write(con, tenant_id, [(week_ending, mapped)]) -> rows` replaces those weeks."""
    name: str
    path: str
    write: Callable[[Any, str, list[Any]], int]
    params: dict[str, Any] = field(default_factory=dict)  # asked with every week's fromDate/toDate


def _write_pnl(con: duckdb.DuckDBPyConnection, tenant_id: str, chunk: list[Any]) -> int:
    fw, lines = T.pnl_frames(tenant_id, chunk)
    weeks = [w for w, _ in chunk]
    store.replace_weeks(con, "pnl_lines", lines, tenant_id, weeks)
    return store.replace_weeks(con, "financial_weekly", fw, tenant_id, weeks)


def _write_bank(con: duckdb.DuckDBPyConnection, tenant_id: str, chunk: list[Any]) -> int:
    frame = T.bank_frame(tenant_id, chunk)
    return store.replace_weeks(con, "cash_position_weekly", frame, tenant_id, [w for w, _ in chunk])


# standardLayout=true: Xero's standard sections even where the organisation customised its report
# layout, so sections map by Xero's own titles (and account types where a title is ambiguous).
PROFIT_AND_LOSS = WeeklyReport("pnl", f"{ACCOUNTING}/Reports/ProfitAndLoss", _write_pnl, {"standardLayout": "true"})
BANK_SUMMARY = WeeklyReport("bank", f"{ACCOUNTING}/Reports/BankSummary", _write_bank)
