"""A daily sync on a day nothing changed in Xero rewrites nothing (issue 15 §5: what a small
organisation's daily sync costs is mostly DuckDB writes of what is already stored), and still
rewrites whatever moved, and whatever a stopped run left unfinished."""
from __future__ import annotations

import pytest
from decimal import Decimal

from test_sync_e2e import connect, rows

from xero_core import db
from xero_core.engine import Engine
from xero_core.sync.weeks import week_ending_for

DATA = ("accounts", "contacts", "invoices", "invoice_lines", "credit_notes", "credit_note_lines", "financial_weekly",
        "pnl_lines", "revenue_weekly", "cash_position_weekly", "journal_lines", "pnl_tieout_weekly")


def written(s) -> dict:
    """Each table's rows (without synced_at) and its newest synced_at: what a sync wrote."""
    with db.connect(s.db_path, read_only=True) as con:
        return {t: (con.execute(f"SELECT * EXCLUDE (synced_at) FROM {t} ORDER BY ALL").fetchall(),
                    con.execute(f"SELECT max(synced_at) FROM {t}").fetchone()[0]) for t in DATA}


@pytest.mark.slow
def test_a_quiet_day_rewrites_nothing_and_a_changed_invoice_is_written(tmp_path):
    s, clock, fake, org_id = connect(tmp_path, invoices=300)
    assert Engine(s, transport=fake.transport(), clock=clock).sync(org_id).ok
    before = written(s)
    clock.advance(86400)  # the next day, nothing new in Xero
    res = Engine(s, transport=fake.transport(), clock=clock).sync(org_id)
    assert res.ok, res.to_dict()
    assert {x.step: x.rows for x in res.steps} == {k: 0 for k in
                                                   ("organisation", "accounts", "contacts", "invoices", "clients",
                                                    "credit_notes", "pnl", "bank", "journals", "documents", "webhooks")}
    assert sum(x.api_calls for x in res.steps) >= 8  # everything was asked for, as before
    after = written(s)
    assert {t: after[t] for t in DATA} == {t: before[t] for t in DATA}  # same rows, not even re-stamped
    # something moves: only it, and the weeks it touches, are written
    org = fake.org(org_id)
    inv = next(i for i in reversed(org.invoices) if i.type == "ACCREC" and i.status == "AUTHORISED" and not i.payments
               and i.rate is None)
    we = week_ending_for(inv.date, s.week_ends_on)
    total = lambda: rows(s, "SELECT sum(total) FROM revenue_weekly WHERE week_ending = ?", we)[0][0]  # noqa: E731
    was = total()
    clock.advance(3600)
    org.void_invoice(inv.id, clock.now())
    res = Engine(s, transport=fake.transport(), clock=clock).sync(org_id)
    assert res.ok and next(x for x in res.steps if x.step == "invoices").rows == 1
    assert was - (total() or Decimal("0.00")) == Decimal(inv.total) / 100
    now = written(s)
    assert now["accounts"] == before["accounts"] and now["contacts"] == before["contacts"]


@pytest.mark.slow
def test_a_run_stopped_before_its_rebuilds_is_finished_by_the_next_quiet_one(tmp_path):
    """Invoices written by a chunk whose run then stopped (no revenue_weekly rebuild, no cursor
    move) come back as 'the same version': their weeks are rebuilt all the same. Report weeks
    written after the tie-out's last rebuild make it stale, and the next run rebuilds it."""
    s, clock, fake, org_id = connect(tmp_path, invoices=300)
    assert Engine(s, transport=fake.transport(), clock=clock).sync(org_id).ok
    want_rev = rows(s, "SELECT * EXCLUDE (synced_at) FROM revenue_weekly ORDER BY ALL")
    want_tie = rows(s, "SELECT * EXCLUDE (synced_at) FROM pnl_tieout_weekly ORDER BY ALL")
    # as a stopped run leaves them: the invoices stored, revenue_weekly and the tie-out not rebuilt
    # from them, the invoices' cursor where it was before
    with db.connect(s.db_path) as con:
        con.execute("DELETE FROM revenue_weekly")
        con.execute("UPDATE pnl_tieout_weekly SET journal_net_profit = 0, synced_at = TIMESTAMPTZ '2000-01-01'")
        con.execute("UPDATE sync_cursors SET cursor_value = '2000-01-01T00:00:00+00:00' "
                    "WHERE resource IN ('invoices', 'credit_notes')")
    clock.advance(86400)
    res = Engine(s, transport=fake.transport(), clock=clock).sync(org_id)
    assert res.ok, res.to_dict()
    assert next(x for x in res.steps if x.step == "invoices").rows == 0  # nothing rewritten...
    assert rows(s, "SELECT * EXCLUDE (synced_at) FROM revenue_weekly ORDER BY ALL") == want_rev  # ...all rebuilt
    assert rows(s, "SELECT * EXCLUDE (synced_at) FROM pnl_tieout_weekly ORDER BY ALL") == want_tie


@pytest.mark.slow
def test_a_report_week_emptied_by_hand_is_refilled(tmp_path):
    s, clock, fake, org_id = connect(tmp_path, invoices=300)
    assert Engine(s, transport=fake.transport(), clock=clock).sync(org_id, only="accounts,pnl,bank").ok
    want = {t: rows(s, f"SELECT * EXCLUDE (synced_at) FROM {t} ORDER BY ALL")
            for t in ("financial_weekly", "pnl_lines", "cash_position_weekly")}
    with db.connect(s.db_path) as con:
        for t in want:
            con.execute(f"DELETE FROM {t}")
    res = Engine(s, transport=fake.transport(), clock=clock).sync(org_id, only="accounts,pnl,bank")
    assert res.ok and next(x for x in res.steps if x.step == "pnl").rows == 2
    assert {t: rows(s, f"SELECT * EXCLUDE (synced_at) FROM {t} ORDER BY ALL") for t in want} == want


@pytest.mark.slow
def test_the_clients_step_sleeps_on_a_quiet_day_and_wakes_for_a_new_customer(tmp_path):
    from test_sync_e2e import small_org

    from xero_core.pipeline.request import SyncRequest
    from xero_core.practice.clients import last_reconciliations

    s, clock, fake, org_id = connect(tmp_path, invoices=30, org_factory=small_org)
    engine = Engine(s, transport=fake.transport(), clock=clock)
    first = engine.sync(SyncRequest(org_id, trigger="cli"))
    assert first.ok and next(x for x in first.steps if x.step == "clients").status == "success"
    report = last_reconciliations(s)
    clock.advance(86400)
    quiet = engine.sync(SyncRequest(org_id, trigger="scheduler"))
    step = next(x for x in quiet.steps if x.step == "clients")
    assert quiet.ok and step.status == "skipped" and "nothing new to match" in step.error
    assert last_reconciliations(s) == report  # the Clients page still shows the pass that did something
    clock.advance(3600)
    new = fake.org(org_id).add_contact("Quiet Day Bakery Pty Ltd", clock.now(), email="hello@quietday.example")
    busy = engine.sync(SyncRequest(org_id, trigger="scheduler"))
    step = next(x for x in busy.steps if x.step == "clients")
    assert busy.ok and step.status == "success"
    assert rows(s, "SELECT count(*) FROM clients WHERE xero_contact_id = ?", new.id)[0][0] == 1


@pytest.mark.slow
def test_a_quiet_day_opens_no_transaction_for_what_xero_hands_back_unchanged(tmp_path, monkeypatch):
    """The chart of accounts (fetched whole) and the records at each cursor's edge (fetched again
    under If-Modified-Since) are recognised by their marks: no DuckDB transaction at all. A record
    new in the cursor's own second, or a renamed account, is written as before."""
    from datetime import datetime

    from xero_core.sync import incremental

    s, clock, fake, org_id = connect(tmp_path, invoices=300)
    assert Engine(s, transport=fake.transport(), clock=clock).sync(org_id).ok
    opened: list[str] = []
    real_write = incremental.write

    def counting(ctx, fn, **kw):
        opened.append(ctx.step)
        return real_write(ctx, fn, **kw)

    monkeypatch.setattr(incremental, "write", counting)
    clock.advance(86400)
    res = Engine(s, transport=fake.transport(), clock=clock).sync(org_id)
    assert res.ok, res.to_dict()
    assert opened == [], f"a quiet day wrote for {opened}"
    assert {x.step for x in res.steps} >= {"accounts", "contacts", "invoices", "credit_notes"}
    logged = rows(s, "SELECT sync_type, status FROM sync_log WHERE run_id = ? ORDER BY 1", res.run_id)
    assert ("contacts", "success") in logged and ("accounts", "success") in logged, "every step is still logged"

    # a contact created in the very second (and millisecond) of the contacts cursor
    cursor = datetime.fromisoformat(rows(s, "SELECT cursor_value FROM sync_cursors WHERE tenant_id = ? AND "
                                            "resource = 'contacts'", org_id)[0][0])
    org = fake.org(org_id)
    twin = org.add_contact("Same Second Supplies Ltd", cursor, email="same@second.example")
    acct = next(a for a in org.accounts if a.type == "REVENUE")
    acct.name = acct.name + " (renamed)"
    acct.updated = clock.now()
    opened.clear()
    res = Engine(s, transport=fake.transport(), clock=clock).sync(org_id)
    steps_rows = {x.step: x.rows for x in res.steps}
    assert res.ok and steps_rows["contacts"] == 1 and steps_rows["accounts"] == 1, steps_rows
    # (the P&L names accounts, so the renamed one moves its report weeks and the tie-out too)
    assert {"contacts", "accounts"} <= set(opened) and not {"invoices", "credit_notes"} & set(opened), opened
    assert rows(s, "SELECT name FROM contacts WHERE contact_id = ?", twin.id) == [("Same Second Supplies Ltd",)]
    assert rows(s, "SELECT name FROM accounts WHERE account_id = ?", acct.id) == [(acct.name,)]
    opened.clear()
    clock.advance(86400)
    assert Engine(s, transport=fake.transport(), clock=clock).sync(org_id).ok
    assert opened == [], "quiet again the day after"
