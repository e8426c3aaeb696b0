"""The one loop every resource of sync/resources.py runs through, and its twin for the weekly reports.

`sync_resource(ctx, resource)`: fetch a page, make it frames at once (a page's JSON is freed before the
next), write every CHUNK records in one short transaction (DuckDB is never open during a call to
Xero). A cursor moves in the transaction that commits the last of its rows (with each chunk for an
Offset cursor, with the last for UpdatedSince), so a sync killed anywhere refetches from the old
cursor and, upserts being repeatable, ends with exactly the rows a clean sync gives. The mark of what
an unchanged fetch returns (sync/marks.py) is saved with the cursor; a fetch that returns exactly that
writes nothing, so a quiet day opens no transaction for it.

`sync_weeks(ctx, report)`: one call per report week; a week whose mapped figures equal its stored
fingerprint is not rewritten; REPORT_CHUNK weeks per transaction, their fingerprints in the same one.

An error mid-paging (a cancel too) writes what was fetched, leaves the cursor where the last committed
chunk put it, and is raised as Partial(rows written, cause). The step's last write also records its
sync_log row in the same transaction (ctx.log_in_tx), so data and log commit together, in one open.
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone
from typing import Any, Callable

import duckdb
import polars as pl

from .. import db, organisation
from ..errors import XeroError
from . import marks, store
from .context import Context, Outcome, checkpoint
from .paging import get_json, pages
from .resources import Frames, Offset, Resource, UpdatedSince, WeeklyReport
from .weeks import week_start

CHUNK = 10_000  # records per transaction: memory stays flat on a backfill
REPORT_CHUNK = 104  # weeks of reports per write (two years: one transaction for a backfill)


class Partial(Exception):
    """A step wrote some rows and then met an error; carries both."""

    def __init__(self, rows: int, cause: BaseException):
        super().__init__(str(cause))
        self.rows = rows
        self.cause = cause


def write(ctx: Context, fn: Callable[[Any], int], *, final: bool = False, rows_before: int = 0) -> int:
    """One short open, one transaction; the step's last (`final`) also writes its sync_log row."""
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


def read(ctx: Context, fn: Callable[[Any], Any]) -> Any:
    with db.connect(ctx.settings.db_path) as con:
        return fn(con)


def held_cursor(ctx: Context, resource: str) -> str | None:
    """The executor reads every cursor in one short open at the start (ctx.state); a cursor is only
    written by its own step, so the value cannot have moved since."""
    if "cursors" in ctx.state:
        held: str | None = ctx.state["cursors"].get(resource)
        return held
    stored: str | None = read(ctx, lambda con: store.get_cursor(con, ctx.tenant_id, resource))
    return stored


def organisation_of(ctx: Context) -> dict[str, Any]:
    """The tenant's `organisations` row (base currency, time zone, financial year): as this run's
    organisation step read it, else as stored ({} before it was first read)."""
    org = ctx.state.get("organisation")
    if org is None:
        org = ctx.state["organisation"] = read(ctx, lambda con: organisation.read(con, ctx.tenant_id)) or {}
    return org


def sync_resource(ctx: Context, resource: Resource) -> Outcome:
    cursor = resource.cursor
    held = held_cursor(ctx, resource.name) if cursor else None
    since = cursor.parse(held) if cursor else None
    target = resource.target(ctx, resource, since)
    edge = (marks.Whole() if cursor is None else marks.Edge()) if not isinstance(cursor, Offset) else None
    held_mark = held_cursor(ctx, marks.key(resource.name)) if edge is not None else None
    batch: list[Frames] = []
    pending = rows = 0
    newest = since
    org = organisation_of(ctx)

    def flush(*, last: bool, final: bool) -> None:
        """Write what is pending; `last`: the run's last write for this resource (final, or after an
        error), which also finishes the target; `final`: paging completed, so the cursor and mark move."""
        nonlocal batch, pending, rows
        frames = tuple(pl.concat(parts) for parts in zip(*batch)) if batch else None
        batch, pending = [], 0
        moved = final or (cursor is not None and cursor.per_chunk)
        value = _dump(newest) if moved and newest is not None else None
        value = None if value == held else value  # unmoved: nothing to write
        mark = edge.mark() if final and edge is not None else None
        if mark is not None and edge is not None and mark == held_mark:
            mark = None  # unmoved: nothing to write
            if (since or cursor is None) and not rows and edge.complete:
                frames = None  # only what is stored already, unchanged: nothing to write or rebuild

        def tx(con: duckdb.DuckDBPyConnection) -> int:
            n = target.write(con, frames) if frames is not None else 0
            if last:
                target.finish(con, final)  # also after an error: derived tables match what is stored
            if value is not None:
                store.set_cursor(con, ctx.tenant_id, resource.name, value)
            if mark is not None:
                store.set_cursor(con, ctx.tenant_id, marks.key(resource.name), mark)
            return n

        if frames is not None or value is not None or mark is not None or (last and target.must_finish(final)):
            rows += write(ctx, tx, final=final, rows_before=rows)

    try:
        for page in pages(ctx.client, resource, cursor.headers(since) if cursor else {}, since):
            if page.records:
                if edge is not None:
                    edge.see(page.records)
                batch.append(resource.frames(page.records, ctx.settings, org))
                pending += len(page.records)
                newest = _newest(cursor, newest, page.records, edge)
            _report(ctx, resource, page.number, rows + pending, newest)
            if pending >= CHUNK:
                flush(last=False, final=False)
    except XeroError as exc:
        flush(last=True, final=False)  # keep what we fetched; the next run refetches from the cursor
        raise Partial(rows, exc) from exc
    flush(last=True, final=True)
    note, detail = target.note()
    return Outcome(rows=rows, note=note, detail=detail)


def _newest(cursor: UpdatedSince | Offset | None, newest: Any, records: list[dict[str, Any]],
            edge: marks.Whole | marks.Edge | None) -> Any:
    if cursor is None:
        return None
    if isinstance(cursor, Offset):
        return cursor.newest(records, newest)
    assert isinstance(edge, marks.Edge)  # an UpdatedSince cursor's edge
    return edge.newest if edge.newest is not None and (newest is None or edge.newest > newest) else newest


def _dump(value: Any) -> str:
    return value.astimezone(timezone.utc).isoformat() if isinstance(value, datetime) else str(value)


def _report(ctx: Context, resource: Resource, page: int, count: int, newest: Any) -> None:
    if isinstance(resource.cursor, Offset):  # Xero gives no total: the highest number seen is the count
        total = ctx.estimate_total(newest) if ctx.estimate_total and newest is not None else None
        ctx.report(f"{resource.label} up to #{newest}", done=newest, total=total, estimated=total is not None,
                   per_call=resource.page_size or 1)
    else:
        ctx.report(f"{resource.label} page {page}: {count} {resource.label}", done=count)


# -- weekly reports ---------------------------------------------------------------------------
def fingerprint(mapped: object) -> str:
    """What a report week's stored rows are made from: its mapped figures (not Xero's raw document,
    whose ReportDate and UpdatedDateUTC change on every fetch), so a new mapping rewrites it too."""
    return hashlib.sha256(repr(mapped).encode()).hexdigest()[:32]


def sync_weeks(ctx: Context, report: WeeklyReport, mapper: Callable[[Any], Any]) -> Outcome:
    """One report call per week; a week whose mapped figures equal the stored ones is not rewritten
    (a daily sync refetches the current weeks, and most days only one of them moved)."""
    done: list[tuple[date, object]] = []
    prints: dict[date, str] = {}
    held = ctx.state.get("fingerprints") or {}
    rows = 0
    total = len(ctx.weeks)

    def flush(final: bool = False) -> None:
        nonlocal done, prints, rows
        chunk, done = done, []
        weeks, prints = prints, {}
        if chunk:
            def tx(con: duckdb.DuckDBPyConnection) -> int:
                n = report.write(con, ctx.tenant_id, chunk)
                store.set_report_fingerprints(con, ctx.tenant_id, ctx.step, weeks)
                return n

            rows += write(ctx, tx, final=final, rows_before=rows)

    try:
        for i, we in enumerate(ctx.weeks):
            doc, _ = get_json(ctx.client, report.path,
                              {**report.params, "fromDate": week_start(we).isoformat(), "toDate": we.isoformat()})
            mapped = mapper(doc)
            mark = fingerprint(mapped)
            if held.get(f"{ctx.step}@{we.isoformat()}") != mark:
                done.append((we, mapped))
                prints[we] = mark
            checkpoint(f"{ctx.step}:week:{we}")
            ctx.report(f"{ctx.step} week ending {we}", done=i + 1, total=total)
            if len(done) >= REPORT_CHUNK:
                flush()
    except XeroError as exc:
        flush()
        raise Partial(rows, exc) from exc
    flush(final=True)
    return Outcome(rows=rows)
