"""The sync steps. Each is `step(ctx) -> StepOutcome`: fetch from Xero first, then open DuckDB
briefly to write (never during a network call), one transaction per write.

Large resources are written in chunks of CHUNK records so memory stays flat; a cursor moves only in
the transaction that commits the last of its rows, so a sync killed anywhere refetches from the old
cursor and, upserts being repeatable, ends with exactly the rows a clean sync gives.
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone

import duckdb
import polars as pl

from .. import db
from ..errors import XeroError
from . import marks, store
from . import transforms as T
from .contacts import fetch_contacts, if_modified_since, save_contacts
from .context import StepContext, StepOutcome, checkpoint
from .paging import get_json
from .resources import ACCOUNTS, BANK_SUMMARY, CREDIT_NOTES, INVOICES, JOURNALS, PROFIT_AND_LOSS
from .weeks import week_start

CHUNK = 10_000
REPORT_CHUNK = 104  # weeks of reports per write (two years: one transaction for a backfill)


class Partial(Exception):
    """A step wrote some rows and then met an error; carries both."""

    def __init__(self, rows: int, cause: BaseException):
        super().__init__(str(cause))
        self.rows = rows
        self.cause = cause


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _write(ctx: StepContext, fn, *, final: bool = False, rows_before: int = 0) -> int:
    """One short open, one transaction. The step's last write also records its sync_log row in
    the same transaction (ctx.log_in_tx), so data and log commit together, in one open."""
    for attempt in range(3):
        try:
            with db.connect(ctx.settings.db_path) as con:
                with db.transaction(con):
                    n = fn(con)
                    if final and ctx.log_in_tx is not None:
                        ctx.log_in_tx(con, rows_before + n)
            break
        except duckdb.TransactionException as exc:
            # Tenants syncing in parallel threads share the file; DuckDB's optimistic concurrency
            # can refuse one commit. The transaction rolled back whole, so it is safe to redo.
            if "conflict" not in str(exc).lower() or attempt == 2:
                raise
    checkpoint(f"{ctx.step}:written")
    return n


def _read(ctx: StepContext, fn):
    with db.connect(ctx.settings.db_path) as con:
        return fn(con)


def _cursor(ctx: StepContext, resource: str) -> str | None:
    """The runner reads every cursor in one short open at the start (ctx.state); a cursor is only
    written by its own step, so the value cannot have moved since."""
    if "cursors" in ctx.state:
        return ctx.state["cursors"].get(resource)
    return _read(ctx, lambda con: store.get_cursor(con, ctx.tenant_id, resource))


def load_state(settings, tenant_id: str) -> dict:
    """What the steps read before they fetch: cursors and accounts, in one open."""
    with db.connect(settings.db_path) as con:
        cursors = dict(con.execute("SELECT resource, cursor_value FROM sync_cursors WHERE tenant_id = ?",
                                   [tenant_id]).fetchall())
    return {"cursors": cursors}


def _cursor_dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# -- accounts --------------------------------------------------------------------------------
def step_accounts(ctx: StepContext) -> StepOutcome:
    page = next(ACCOUNTS.pager.pages(ctx.client, ACCOUNTS.path, ACCOUNTS.collection, ACCOUNTS.params, {}))
    held, mark = _cursor(ctx, marks.key("accounts")), marks.digest(page.records)
    if mark == held:  # the same chart of accounts as last time, to the byte: nothing to write
        return StepOutcome(rows=0)
    frame = T.accounts_frame(page.records)

    def write(con):
        n = store.upsert_new_versions(con, "accounts", frame, ctx.tenant_id, "account_id")
        store.set_cursor(con, ctx.tenant_id, marks.key("accounts"), mark)
        return n

    return StepOutcome(rows=_write(ctx, write, final=True))


# -- contacts --------------------------------------------------------------------------------
def step_contacts(ctx: StepContext) -> StepOutcome:
    since = _cursor_dt(_cursor(ctx, "contacts"))
    ctx.report("fetching contacts" + (f" changed since {since:%Y-%m-%d %H:%M}" if since else ""))
    records = fetch_contacts(ctx.client, since=since)
    edge = marks.Edge()
    edge.see(records)
    newest, held, mark = edge.newest, _cursor(ctx, marks.key("contacts")), edge.mark()
    if since and edge.complete and mark == held:  # only the contacts already stored at the cursor, unchanged
        return StepOutcome(rows=0, note="incremental")

    def write(con):
        n = save_contacts(con, ctx.tenant_id, records)
        if newest and newest != since:
            store.set_cursor(con, ctx.tenant_id, "contacts", newest.isoformat())
        if mark != held:
            store.set_cursor(con, ctx.tenant_id, marks.key("contacts"), mark)
        return n

    return StepOutcome(rows=_write(ctx, write, final=True) if records else 0,
                       note=("incremental" if since else "full"))


# -- invoices and credit notes ---------------------------------------------------------------
def _documents_step(ctx: StepContext, resource, to_frames, save_frames) -> StepOutcome:
    """An incremental, paged document resource (If-Modified-Since from its cursor) whose rows feed
    revenue_weekly: `to_frames(records, region_category, revenue_type_category) -> (docs, lines)`,
    `save_frames(con, tenant_id, docs, lines, week_ends_on, rebuild=) -> (rows, weeks touched)`."""
    held = _cursor(ctx, resource.name)
    since = _cursor_dt(held)
    headers = if_modified_since(since)
    # Each page becomes compact frames at once, so the parsed JSON of a page is freed before the next.
    doc_frames: list[pl.DataFrame] = []
    line_frames: list[pl.DataFrame] = []
    pending = 0
    rows = 0
    newest: datetime | None = since
    weeks_touched: set = set()  # revenue_weekly is rebuilt once, with the last chunk
    label = resource.name.replace("_", " ")
    edge = marks.Edge()
    held_mark = _cursor(ctx, marks.key(resource.name))

    def flush(final: bool, rebuild: bool) -> None:
        nonlocal doc_frames, line_frames, pending, rows
        docs = pl.concat(doc_frames) if doc_frames else None
        lines = pl.concat(line_frames) if line_frames else None
        doc_frames, line_frames, pending = [], [], 0
        cursor = newest.isoformat() if (final and newest) else None
        cursor = None if cursor == held else cursor  # unmoved: nothing to write
        mark = edge.mark() if final else None
        if mark is not None and mark == held_mark:
            mark = None  # unmoved: nothing to write
            if since and not rows and edge.complete:
                # Only the documents already stored at the cursor, unchanged: nothing to write or rebuild.
                docs = lines = None

        def write(con):
            n = 0
            if docs is not None:
                n, weeks = save_frames(con, ctx.tenant_id, docs, lines, ctx.settings.week_ends_on, rebuild=False,
                                       settled_to=since)
                weeks_touched.update(weeks)
            if rebuild:
                # Also after an error mid-paging: the totals then match what is stored.
                store.rebuild_revenue_weekly(con, ctx.tenant_id, weeks_touched, ctx.settings.week_ends_on)
            if cursor:
                store.set_cursor(con, ctx.tenant_id, resource.name, cursor)
            if mark:
                store.set_cursor(con, ctx.tenant_id, marks.key(resource.name), mark)
            return n

        if docs is not None or cursor or mark or (rebuild and weeks_touched):
            rows += _write(ctx, write, final=final, rows_before=rows)

    try:
        for page in resource.pager.pages(ctx.client, resource.path, resource.collection, resource.params, headers):
            if page.records:
                edge.see(page.records)
                docs, lines = to_frames(page.records, ctx.settings.region_category, ctx.settings.revenue_type_category)
                doc_frames.append(docs)
                line_frames.append(lines)
                pending += docs.height
                m = docs["updated_at"].max()
                if m is not None and (newest is None or m > newest):
                    newest = m
            ctx.report(f"{label} page {page.number}: {rows + pending} {label}", count=rows + pending)
            if pending >= CHUNK:
                flush(final=False, rebuild=False)
    except XeroError as exc:
        flush(final=False, rebuild=True)  # keep what we fetched; the cursor stays, so the next run refetches
        raise Partial(rows, exc) from exc
    flush(final=True, rebuild=True)
    return StepOutcome(rows=rows, note=("incremental" if since else "full"))


def step_invoices(ctx: StepContext) -> StepOutcome:
    return _documents_step(ctx, INVOICES, T.invoice_frames, store.save_invoice_frames)


def step_credit_notes(ctx: StepContext) -> StepOutcome:
    """Sales credit notes make revenue_weekly net; a credit note voided later leaves it on the next
    incremental run (its update carries the new status)."""
    return _documents_step(ctx, CREDIT_NOTES, T.credit_note_frames, store.save_credit_note_frames)


# -- weekly reports ---------------------------------------------------------------------------
def fingerprint(mapped) -> str:
    """What a report week's stored rows are made from: its mapped figures (not Xero's raw document,
    whose ReportDate and UpdatedDateUTC change on every fetch), so a new mapping rewrites it too."""
    return hashlib.sha256(repr(mapped).encode()).hexdigest()[:32]


def _report_weeks(ctx: StepContext, path: str, mapper, writer) -> StepOutcome:
    """One report call per week; a week whose mapped figures equal the stored ones is not rewritten
    (a daily sync refetches the current weeks, and most days only one of them moved)."""
    done: list[tuple[date, object]] = []
    prints: dict[date, str] = {}
    held = ctx.state.get("fingerprints") or {}
    rows = 0
    total = len(ctx.weeks)

    def flush(final: bool = False):
        nonlocal done, rows, prints
        chunk, done = done, []
        marks, prints = prints, {}
        if chunk:
            def write(con):
                n = writer(con, chunk)
                store.set_report_fingerprints(con, ctx.tenant_id, ctx.step, marks)
                return n

            rows += _write(ctx, write, final=final, rows_before=rows)

    try:
        for i, we in enumerate(ctx.weeks):
            doc, _ = get_json(ctx.client, path, {"fromDate": week_start(we).isoformat(), "toDate": we.isoformat()})
            mapped = mapper(doc)
            mark = fingerprint(mapped)
            if held.get(f"{ctx.step}@{we.isoformat()}") != mark:
                done.append((we, mapped))
                prints[we] = mark
            checkpoint(f"{ctx.step}:week:{we}")
            ctx.report(f"{ctx.step} week ending {we}", (i + 1) / total if total else None, count=i + 1, total=total)
            if len(done) >= REPORT_CHUNK:
                flush()
    except XeroError as exc:
        flush()
        raise Partial(rows, exc) from exc
    flush(final=True)
    return StepOutcome(rows=rows)


def step_pnl(ctx: StepContext) -> StepOutcome:
    accounts = _read(ctx, lambda con: {
        r[0]: {"Type": r[1], "Code": r[2], "Name": r[3]}
        for r in con.execute("SELECT account_id, type, code, name FROM accounts WHERE tenant_id = ?",
                             [ctx.tenant_id]).fetchall()})
    warnings: list[str] = []

    def mapper(doc):
        p = T.map_profit_and_loss(doc, accounts)
        warnings.extend(p.warnings)
        return p

    def writer(con, chunk):
        fw, lines = T.pnl_frames(ctx.tenant_id, chunk)
        weeks = [w for w, _ in chunk]
        store.replace_weeks(con, "pnl_lines", lines, ctx.tenant_id, weeks)
        return store.replace_weeks(con, "financial_weekly", fw, ctx.tenant_id, weeks)

    out = _report_weeks(ctx, PROFIT_AND_LOSS, mapper, writer)
    if warnings:
        out.note = "; ".join(sorted(set(warnings))[:5])
        out.detail = {"warnings": sorted(set(warnings))}
    return out


def step_bank(ctx: StepContext) -> StepOutcome:
    def writer(con, chunk):
        frame = T.bank_frame(ctx.tenant_id, chunk)
        return store.replace_weeks(con, "cash_position_weekly", frame, ctx.tenant_id, [w for w, _ in chunk])

    return _report_weeks(ctx, BANK_SUMMARY, T.map_bank_summary, writer)


# -- journals --------------------------------------------------------------------------------
def step_journals(ctx: StepContext) -> StepOutcome:
    start = int(_cursor(ctx, "journals") or 0)
    frames: list[pl.DataFrame] = []
    pending = 0
    rows = 0
    last = start
    flagged = 0

    def flush(final: bool) -> None:
        nonlocal frames, pending, rows
        chunk = pl.concat(frames) if frames else None
        frames, pending = [], 0
        # Journals are immutable and come in JournalNumber order: the cursor may move with each chunk.
        top = last

        def write(con):
            nonlocal flagged
            n = store.upsert(con, "journal_lines", chunk, ctx.tenant_id) if chunk is not None else 0
            store.set_cursor(con, ctx.tenant_id, "journals", str(top))
            if final:
                store.rebuild_tieout(con, ctx.tenant_id)
                flagged = con.execute("SELECT count(*) FROM pnl_tieout_weekly WHERE tenant_id = ? AND flagged",
                                      [ctx.tenant_id]).fetchone()[0]
            return n

        # Nothing new and no figure the tie-out reads has moved in this run: it stands as it is.
        results = ctx.state.get("results") or {}
        moved = (chunk is not None or top != start or ctx.state.get("tieout_stale", True)
                 or any(results.get(k, 1) for k in ("accounts", "pnl")))
        if chunk is not None or (final and moved):
            rows += _write(ctx, write, final=final, rows_before=rows)

    try:
        for page in JOURNALS.pager.pages(ctx.client, JOURNALS.path, JOURNALS.collection, JOURNALS.params, {}, start):
            if page.records:
                frames.append(T.journal_lines_frame(page.records))
                pending += len(page.records)
                last = max(last, max(int(j.get("JournalNumber") or 0) for j in page.records))
            ctx.report(f"journals up to #{last}", count=last)
            if pending >= CHUNK:
                flush(final=False)
    except XeroError as exc:
        flush(final=False)
        raise Partial(rows, exc) from exc
    flush(final=True)
    return StepOutcome(rows=rows, note=(f"tie-out: {flagged} week(s) differ from the P&L report" if flagged else None),
                       detail={"tieout_flagged_weeks": flagged} if flagged else None)


ORGANISATION_STEPS = (
    ("accounts", step_accounts),
    ("contacts", step_contacts),
    ("invoices", step_invoices),
    ("credit_notes", step_credit_notes),
    ("pnl", step_pnl),
    ("bank", step_bank),
    ("journals", step_journals),
)
# The financial steps only. Practice workflows (xpm, clients, documents, webhooks) are planned by
# xero_core.pipeline, which sits above sync/ and practice/: sync/ imports nothing of practice/.
ALL_STEP_NAMES = tuple(n for n, _ in ORGANISATION_STEPS)
