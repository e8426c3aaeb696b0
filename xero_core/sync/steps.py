"""The sync steps: `step(ctx) -> Outcome`, one per resource (sync/resources.py declares them;
sync/incremental.py runs them: fetch first, then a short DuckDB transaction per chunk, never during a
network call) and one per weekly report.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import duckdb

from .. import organisation
from . import marks, store
from . import transforms as T
from .context import Context, Outcome
from .incremental import Partial, held_cursor, read, sync_resource, sync_weeks, write
from .resources import ACCOUNTS, BANK_SUMMARY, CONTACTS, CREDIT_NOTES, INVOICES, JOURNALS, PROFIT_AND_LOSS

__all__ = ["ORGANISATION_STEPS", "Partial"]


def step_organisation(ctx: Context) -> Outcome:
    """GET /Organisation: one call a sync, for the base currency, time zone and financial year every
    other step and view uses. Written only when it changed (its digest is kept with the cursors)."""
    row = organisation.fetch(ctx.client)
    ctx.state["organisation"] = row
    if held_cursor(ctx, marks.key("organisation")) == row["digest"]:
        return Outcome(rows=0, note="unchanged")

    def tx(con: duckdb.DuckDBPyConnection) -> int:
        n = organisation.save(con, ctx.tenant_id, row)
        store.set_cursor(con, ctx.tenant_id, marks.key("organisation"), row["digest"])
        return n

    return Outcome(rows=write(ctx, tx, final=True))


def step_accounts(ctx: Context) -> Outcome:
    return sync_resource(ctx, ACCOUNTS)


def step_contacts(ctx: Context) -> Outcome:
    return sync_resource(ctx, CONTACTS)


def step_invoices(ctx: Context) -> Outcome:
    return sync_resource(ctx, INVOICES)


def step_credit_notes(ctx: Context) -> Outcome:
    """Sales credit notes make revenue_weekly net; a credit note voided later leaves it on the next
    incremental run (its update carries the new status)."""
    return sync_resource(ctx, CREDIT_NOTES)


DEFAULT_JOURNALS_PER_INVOICE = 2.0


def estimate_journal_total(cursor: int, invoices_at_last_sync: int, invoices_now: int) -> int:
    """The newest JournalNumber Xero probably has (Xero gives no total): this organisation's own ratio
    of journals to invoices at its last sync (journal cursor / stored invoice count), else 2 journals
    per invoice (an invoice posts one, its payment another), times the invoices stored now; never
    below the last cursor."""
    ratio = (cursor / invoices_at_last_sync) if cursor and invoices_at_last_sync else DEFAULT_JOURNALS_PER_INVOICE
    return max(cursor, int(round(ratio * max(invoices_now, 0))))


def step_journals(ctx: Context) -> Outcome:
    # The progress total: from the invoices stored before this run (the plan's probe) and those this
    # run's invoices step brought.
    cursor = int((ctx.state.get("cursors") or {}).get("journals") or 0)
    stored = int(ctx.state.get("invoice_count") or 0)
    new = int((ctx.state.get("results") or {}).get("invoices") or 0)
    estimate = estimate_journal_total(cursor, stored, stored + new)
    ctx.estimate_total = lambda seen: max(seen, estimate)
    return sync_resource(ctx, JOURNALS)


# -- weekly reports ---------------------------------------------------------------------------
def step_pnl(ctx: Context) -> Outcome:
    accounts = read(ctx, lambda con: {
        r[0]: {"Type": r[1], "Code": r[2], "Name": r[3]}
        for r in con.execute("SELECT account_id, type, code, name FROM accounts WHERE tenant_id = ?",
                             [ctx.tenant_id]).fetchall()})
    warnings: list[str] = []

    def mapper(doc: dict[str, Any]) -> T.PnL:
        p = T.map_profit_and_loss(doc, accounts)
        warnings.extend(p.warnings)
        return p

    out = sync_weeks(ctx, PROFIT_AND_LOSS, mapper)
    if warnings:
        found = sorted(set(warnings))
        out = replace(out, note="; ".join(found[:5]), detail={"warnings": found})
    return out


def step_bank(ctx: Context) -> Outcome:
    return sync_weeks(ctx, BANK_SUMMARY, T.map_bank_summary)


ORGANISATION_STEPS = (
    ("organisation", step_organisation),
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
