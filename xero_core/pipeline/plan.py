"""What a tenant's sync runs: the plan, as data (step names and functions), for one request.

Organisation: the financial steps of xero_core.sync.steps (accounts, contacts, invoices,
credit_notes, pnl, bank, journals) with **clients** (stored contacts -> clients) right after
invoices (a contact becomes a client with its first sales invoice), then **documents** (push the
tenant's due documents) and **webhooks** (catch up on the tenant's stored webhook events).
Practice Manager: **xpm** (jobs, client links, chase campaigns), **chase** (the campaigns' reminders
that are due, by email: practice/chase.py), then **clients** (its clients without a contact look
for one among the organisations' contacts).

`--only` names steps of this plan (the Practice Manager page applies a mapping with "xpm,chase", so
a campaign opened by a job state sends its first reminder at once); `contacts` brings `clients` along (a contact stored without
reconciling leaves the Clients page stale), `pnl`/`journals` bring `accounts`. One chosen week
(`week_ending`) without `--only` re-syncs that week's reports: accounts, pnl, bank.

Figures first, history after (`split_history`): a job spends the organisation's 60 calls a minute on
what a person waits for, the latest FIGURES_WEEKS weeks of P&L and cash and every invoice (revenue),
and leaves the older report weeks and a journal history never fetched to a history backfill job
(SyncRequest.history), queued at a lower priority, which steps aside for any other sync of the
organisation (pipeline.worker).
"""
from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any, Callable, Iterable, TypeVar

import duckdb

from ..practice.chase import due_count, run_chase
from ..practice.clients import reconcile_pending, reconcile_stored_contacts
from ..practice.documents import push_due_documents
from ..practice.matching import ReconcileResult
from ..practice.webhooks import process_events
from ..practice.xpm import sync_practice
from ..sync import steps as fin
from ..sync.context import Outcome
from .request import SyncRequest
from .step import Step, StepContext

PRACTICE_MANAGER = "PRACTICEMANAGER"
PRACTICE_STEP_NAMES = ("clients", "documents", "webhooks", "xpm", "chase")
WEEK_STEPS = ("accounts", "pnl", "bank")  # what one chosen week re-syncs
CONFLICT_ATTEMPTS = 5
# The current week and the three complete weeks before it: 8 report calls, so a first sync's figures
# (with accounts, contacts, invoices, credit notes: ~17 calls for the demo organisation) fit in the
# first minute of Xero's 60 calls.
FIGURES_WEEKS = 4
HISTORY_STEPS = ("pnl", "bank", "journals")
_clients_lock = threading.Lock()
T = TypeVar("T")


def financial_steps() -> tuple[tuple[str, Step], ...]:
    return tuple(fin.ORGANISATION_STEPS)  # read at call time: new steps (credit_notes) join by themselves


def step_names() -> tuple[str, ...]:
    names = [n for n, _ in financial_steps()]
    return tuple(names + [n for n in PRACTICE_STEP_NAMES if n not in names])


def parse_only(only: str | Iterable[str] | None) -> frozenset[str] | None:
    """"pnl,bank" or an iterable -> a validated set of step names (None: the whole plan)."""
    if only is None:
        return None
    names = {s.strip().lower() for s in (only.split(",") if isinstance(only, str) else only) if s.strip()}
    known = step_names()
    unknown = names - set(known)
    if unknown:
        raise ValueError(f"unknown sync step(s) {', '.join(sorted(unknown))}: choose from {', '.join(known)}")
    if not names:
        raise ValueError(f"--only names no step: choose from {', '.join(known)}")
    return frozenset(names)


def _wanted(request: SyncRequest) -> set[str] | None:
    only = set(request.only) if request.only is not None else None
    if only is None and request.week_ending is not None:
        only = set(WEEK_STEPS)
    if only is None:
        return None
    if only & {"pnl", "journals"}:
        only.add("accounts")  # the P&L's sections and the tie-out read account types
    if "contacts" in only:
        only.add("clients")
    return only


# -- practice steps (the practice package does the work; these adapt it to a step) ------------------
def _redo_on_conflict(ctx: StepContext, fn: Callable[[], T]) -> T:
    """`fn()`, again when DuckDB refused its commit for a write conflict with another tenant's step
    (the transaction rolled back whole, so it is safe to redo), up to CONFLICT_ATTEMPTS times."""
    for attempt in range(CONFLICT_ATTEMPTS):
        try:
            return fn()
        except duckdb.TransactionException as exc:
            if "conflict" not in str(exc).lower() or attempt + 1 == CONFLICT_ATTEMPTS:
                raise
            ctx.check_cancel()
    raise AssertionError("unreachable: the last attempt returns or raises")


def step_clients(ctx: StepContext) -> Outcome:
    """Contacts stored since the last pass (this run's, the webhooks', a full sync's), and unlinked
    contacts whose first sales invoice arrived since -> clients; for a Practice Manager tenant, its
    clients still without a contact look for one among the organisations' contacts."""
    results = ctx.state.get("results") or {}
    if not ctx.state.get("clients_due", True) and not any(results.get(k) for k in ("contacts", "invoices", "xpm")):
        # Skipped, not "success": the Clients page keeps showing the last pass that did something.
        return Outcome(status="skipped", note="nothing new to match since the last pass")
    ctx.report("matching contacts to clients")

    def reconcile() -> ReconcileResult:
        # Tenants reconcile concurrently and touch the same client rows (a Practice Manager tenant's
        # clients look among every organisation's contacts): one at a time in this process; a
        # conflict with another process is redone.
        with _clients_lock:
            return reconcile_stored_contacts(ctx.settings, ctx.tenant_id, clock=ctx.clock)

    res = _redo_on_conflict(ctx, reconcile)
    if res.note and not (res.linked or res.created or res.updated or res.unchanged):
        # A client organisation (or no practice ledger chosen yet): nothing of the practice's to do here.
        return Outcome(status="skipped", note=res.summary(), detail=res.as_dict())
    return Outcome(rows=res.linked + res.created + res.updated, detail=res.as_dict(), note=res.summary())


def step_documents(ctx: StepContext) -> Outcome:
    """Documents waiting for this tenant's contacts: pushed (retries with backoff in practice.documents)."""
    if not ctx.state.get("documents_due", 1):
        return Outcome(note="no document waiting")
    ctx.report(f"pushing {ctx.state.get('documents_due', 'the waiting')} document(s)")
    summary = push_due_documents(ctx.settings, ctx.tenant_id, transport=ctx.transport, clock=ctx.clock)
    d = summary.as_dict()
    if len(d.get("messages") or []) > 20:
        d.pop("messages")
    failed = int(d.get("failed") or 0)
    return Outcome(rows=int(d.get("pushed") or 0), status="partial" if failed else "success",
                   note=f"{failed} document(s) failed: see the Documents page" if failed else None,
                   detail=d or None)


def step_webhooks(ctx: StepContext) -> Outcome:
    """Webhook events stored for this tenant and not processed yet (the receiver may be down)."""
    if not ctx.state.get("webhooks_due", 1):
        return Outcome(note="no webhook event waiting")
    ctx.report(f"catching up on {ctx.state.get('webhooks_due', 'the stored')} webhook event(s)")
    res = process_events(ctx.settings, clock=ctx.clock, client_factory=lambda _t: ctx.client,
                         tenant_id=ctx.tenant_id)
    d = {"processed": res.processed, "ignored": res.ignored, "failed": res.failed}
    return Outcome(rows=res.processed, status="partial" if res.failed else "success",
                   note="; ".join(res.errors[:3]) or None, detail=d)


def step_xpm(ctx: StepContext) -> Outcome:
    """Practice Manager's jobs and clients, and the chase campaigns their states open and close."""
    ctx.report("fetching Practice Manager jobs and clients")
    # Its write meets an organisation's clients step: redone on a conflict.
    r = _redo_on_conflict(ctx, lambda: sync_practice(ctx.settings, ctx.tenant_id, ctx.client, clock=ctx.clock))
    return Outcome(rows=r.rows, status=r.status, note=r.note, detail=r.detail or None)


def step_chase(ctx: StepContext) -> Outcome:
    """The campaigns' reminders that are due: planned, then sent by email, exactly once."""
    results = ctx.state.get("results") or {}
    if not ctx.state.get("chase_due", 1) and not results.get("xpm"):  # xpm may just have opened campaigns
        return Outcome(status="skipped", note="no open campaign and no reminder waiting")
    ctx.report("sending the chase reminders that are due")
    r = _redo_on_conflict(ctx, lambda: run_chase(ctx.settings, tenant_id=ctx.tenant_id, clock=ctx.clock))
    # Settings or server trouble with nothing sent fails the step (the sentence is its error);
    # reminders stay due, nothing is lost.
    status = "failed" if r.error and not r.sent else ("partial" if r.error or r.failed else "success")
    return Outcome(rows=r.sent, status=status, note=r.summary(), detail=r.as_dict())


def _or(unknown: Any, read: Callable[[], Any]) -> Any:
    """`read()`, or `unknown` (the step looks for itself) when the database could not answer."""
    try:
        return read()
    except duckdb.Error:
        return unknown


def probe(con: duckdb.DuckDBPyConnection, tenant_id: str, tenant_type: str | None = None) -> dict[str, Any]:
    """Read with the run's cursors, in the same open: what the practice steps would find to do, so
    a daily sync with nothing waiting opens DuckDB no more for them. Also the counts the progress
    estimates use (see progress.py)."""
    def count(sql: str) -> int:
        row = con.execute(sql, [tenant_id]).fetchone()
        return int(row[0]) if row else 0

    out: dict[str, Any] = {
        "documents_due": _or(1, lambda: count(
            "SELECT count(*) FROM client_documents d JOIN clients c USING (client_id) "
            "WHERE c.tenant_id = ? AND d.status IN ('pending', 'skipped', 'failed')")),
        "clients_due": _or(True, lambda: reconcile_pending(con, tenant_id, tenant_type)),
        "webhooks_due": _or(1, lambda: count(
            "SELECT count(*) FROM webhook_events WHERE tenant_id = ? AND status IN ('pending', 'failed')")),
        "chase_due": _or(1, lambda: due_count(con, tenant_id)),
    }
    invoices = _or(None, lambda: count("SELECT count(*) FROM invoices WHERE tenant_id = ?"))
    if invoices is not None:
        out["invoice_count"] = invoices
    return out


def plan(tenant_type: str | None, request: SyncRequest) -> list[tuple[str, Step]]:
    """The steps one request runs for a tenant of `tenant_type`, in order."""
    wanted = _wanted(request)
    if (tenant_type or "").upper() == PRACTICE_MANAGER:
        steps: list[tuple[str, Step]] = [("xpm", step_xpm), ("chase", step_chase), ("clients", step_clients)]
    else:
        # clients after invoices: a contact becomes a client once it has a sales invoice.
        steps = []
        for name, fn in financial_steps():
            steps.append((name, fn))
            if name == "invoices":
                steps.append(("clients", step_clients))
        if not any(n == "clients" for n, _ in steps):
            steps.append(("clients", step_clients))
        steps += [("documents", step_documents), ("webhooks", step_webhooks)]
    return [(n, f) for n, f in steps if wanted is None or n in wanted]


def figures_first(steps: list[tuple[str, Step]]) -> list[tuple[str, Step]]:
    """A first sync's order: the weekly reports right after the chart of accounts (a few calls, and the
    P&L and cash are on the Data page), then the documents (revenue), and matching contacts to clients
    (seconds of work for thousands of contacts) only after the credit notes that complete the revenue."""
    names = [n for n, _ in steps]
    # whatever the plan runs up to the chart of accounts (the organisation's own record) stays first
    lead = names.index("accounts") + 1 if "accounts" in names else 0
    head = steps[:lead] + [x for x in steps[lead:] if x[0] in ("pnl", "bank")]
    rest = [x for x in steps if x not in head]
    if "clients" in names and "credit_notes" in names:
        clients = next(x for x in rest if x[0] == "clients")
        rest.remove(clients)
        rest.insert(next(i for i, x in enumerate(rest) if x[0] == "credit_notes") + 1, clients)
    return head + rest


def split_history(request: SyncRequest, tenant_type: str | None, cursors: dict[str, Any], *,
                  history_pending: bool = False) -> tuple[SyncRequest, SyncRequest | None]:
    """(what to run now, the history backfill to queue or None). The history takes the report weeks
    older than the latest FIGURES_WEEKS, and the journals when none were ever fetched (two years of
    them are hundreds of calls) or a history job of the tenant is still to fetch them."""
    if request.history or request.week_ending is not None or (tenant_type or "").upper() == PRACTICE_MANAGER:
        return request, None
    planned = {n for n, _ in plan(tenant_type, request)}
    older = bool(request.weeks and request.weeks > FIGURES_WEEKS and planned & {"pnl", "bank"})
    journals_later = "journals" in planned and (not cursors.get("journals") or history_pending)
    if not older and not journals_later:
        return request, None
    now_only = request.only
    if journals_later:
        now_only = frozenset(planned - {"journals"})
    now = replace(request, only=now_only, weeks=FIGURES_WEEKS if older else request.weeks)
    later_steps = (planned & {"pnl", "bank"} if older else set()) | ({"journals"} if journals_later else set())
    later = SyncRequest(request.tenant_id, only=frozenset(later_steps), weeks=request.weeks if older else None,
                        skip_weeks=FIGURES_WEEKS if older else 0, trigger=request.trigger,
                        requested_by=request.requested_by, history=True)
    return now, later
