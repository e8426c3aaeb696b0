"""Clients are the practice's clients (issue 12 §2): against the fake Xero (pinned to a date), only
customers and Practice Manager's clients become clients; suppliers, the tax office and "Cash Sales"
never do unless a person adds them; existing clients are matched, never duplicated; ambiguous ones
wait in the queue; every reconciliation reports what it did. Plus: the flags Xero may leave out, the
clean-up of clients an earlier version imported from every contact, and the demo's seeded practice."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from types import SimpleNamespace

import pytest

from xero_core import oauth
from xero_core.db import connect, transaction
from xero_core.fake import FakeClock, FakeXero
from xero_core.practice import clients as C
from xero_core.practice import documents as D
from xero_core.practice.matching import is_government, is_placeholder, skip_reason
from xero_core.practice.clients import reconcile_stored_contacts as run_reconcile
from xero_core.engine import Engine

TODAY = date(2026, 11, 30)


def connected(make_settings, **fake_kw):
    clock = FakeClock(datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc))
    fake = FakeXero(today=TODAY, clock=clock, **fake_kw)
    s = make_settings(**fake.settings_env("http://fake.test"))
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)),
                                     transport=fake.transport(), clock=clock)
    by_type = {t["tenant_type"]: t["tenant_id"] for t in tenants}
    return SimpleNamespace(fake=fake, s=s, clock=clock, t=fake.transport(), org=by_type["ORGANISATION"],
                           pm=by_type["PRACTICEMANAGER"])


def sync(x, tenant, only) -> dict | None:
    """A sync of these steps (contacts bring the clients step along); the clients step's report."""
    r = Engine(x.s, transport=x.t, clock=x.clock).sync(tenant, only=only, trigger="manual")
    assert r.status == "success", r.to_dict()
    return next((st.detail for st in r.steps if st.step == "clients"), None)


def q(x, sql, *params):
    with connect(x.s.db_path, read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


@pytest.fixture
def x(make_settings):
    return connected(make_settings, invoices=50)


def _truth(x):
    org = x.fake.org(x.org)
    live = [c for c in org.contacts if c.status == "ACTIVE" and not c.merged_to]
    return SimpleNamespace(
        customers={c.id for c in live if c.is_customer and c.name != "Cash Sales"},
        suppliers={c.id for c in live if c.is_supplier and c.name != "Australian Taxation Office"},
        ato=next(c.id for c in live if c.name == "Australian Taxation Office"),
        cash=next(c.id for c in live if c.name == "Cash Sales"),
        live=live,
    )


@pytest.mark.slow
def test_only_customers_and_practice_clients_become_clients_and_the_pass_is_reported(x):
    truth = _truth(x)
    practice = x.fake.practice(x.pm)
    a_customer = sorted(truth.customers)[0]
    mine = C.add_client(x.s, "Our own name", email=x.fake.org(x.org).contact_by_id[a_customer].email)
    sync(x, x.pm, "xpm,clients")  # Practice Manager's clients first (the other order: the demo seed's test)
    rep = sync(x, x.org, "contacts")  # contacts, then the clients step: its report

    linked = dict(q(x, "SELECT xero_contact_id, count(*) FROM clients WHERE xero_contact_id IS NOT NULL GROUP BY 1"))
    assert set(linked.values()) == {1}  # nothing duplicated
    # suppliers, the tax office and "Cash Sales" are not clients; every customer is (imported or matched)
    assert not set(linked) & (truth.suppliers | {truth.ato, truth.cash})
    ambiguous_contacts = {r[0] for r in q(x, "SELECT contact_id FROM client_match_candidates WHERE tenant_id = ?", x.org)}
    assert truth.customers - set(linked) == ambiguous_contacts and len(ambiguous_contacts) == 4
    # the client added by hand was matched by email, not duplicated
    assert C.get_client(x.s, mine)["xero_contact_id"] == a_customer
    # Practice Manager's clients: the exact and near ones meet their contact; the twins wait; the rest stay
    xpm = {r[0]: r for r in q(x, "SELECT xpm_client_id, xero_contact_id, match_status FROM clients "
                                  "WHERE xpm_client_id IS NOT NULL")}
    assert len(xpm) == len(practice.clients) == 17
    for c in practice.clients.values():
        row = xpm[str(c.id)]
        if c.match_kind in ("exact", "near"):
            assert row[1] == c.matched_contact_id, c
        elif c.match_kind == "ambiguous":
            assert row[1] is None and row[2] == "ambiguous"
        else:
            assert row[1] is None and row[2] == "unmatched"
    # the report: what was imported, matched, queued and skipped (and why)
    n_matched = 1 + sum(c.match_kind in ("exact", "near") for c in practice.clients.values())
    assert rep["matched"] == n_matched == 13
    assert rep["imported"] == len(truth.customers) - n_matched - len(ambiguous_contacts)
    assert rep["ambiguous"] == 4 and rep["waiting"] == 2
    assert rep["skipped_by_reason"] == {"supplier_only": len(truth.suppliers), "government": 1, "placeholder": 1,
                                        "archived": 1, "merged": 1}
    assert rep["skipped"] == len(truth.suppliers) + 4
    assert "Australian Taxation Office" in rep["skipped_examples"]["government"]
    assert rep["skipped_examples"]["placeholder"] == ["Cash Sales"]

    # a second pass (full) changes nothing and says so
    again_res = run_reconcile(x.s, x.org, clock=x.clock, full=True)
    assert "imported 0, matched 0" in again_res.summary() and "suppliers only" in again_res.summary()
    again = again_res.as_dict()
    assert (again["imported"], again["matched"], again["removed"]) == (0, 0, 0)
    assert again["already_linked"] == len(linked)
    assert dict(q(x, "SELECT xero_contact_id, count(*) FROM clients WHERE xero_contact_id IS NOT NULL GROUP BY 1")) == linked

    # a person adds the tax office by hand: it stays a client through every later pass
    ato_client = C.add_client_from_contact(x.s, x.org, truth.ato, clock=x.clock)
    run_reconcile(x.s, x.org, clock=x.clock, full=True)
    assert C.get_client(x.s, ato_client)["xero_contact_id"] == truth.ato
    with pytest.raises(C.ClientError, match="already client"):
        C.add_client_from_contact(x.s, x.org, truth.ato, clock=x.clock)
    skipped = {r["contact_id"]: r for r in C.skipped_contacts(x.s, x.org)}
    assert truth.ato not in skipped and skipped[truth.cash]["reason"] == "placeholder"


@pytest.mark.slow
def test_match_clients_now_logs_a_report_per_tenant(x):
    imported = sync(x, x.org, "contacts")["imported"]
    out = {r["tenant_type"]: r for r in C.match_clients_now(x.s, trigger="app", clock=x.clock)}
    assert out["ORGANISATION"]["status"] == "success" and imported > 0
    assert out["ORGANISATION"]["report"]["imported"] == 0 and out["ORGANISATION"]["report"]["already_linked"] >= imported
    assert out["PRACTICEMANAGER"]["report"]["imported"] == 0
    last = {r["tenant_id"]: r for r in C.last_reconciliations(x.s)}
    assert last[x.org]["trigger"] == "app" and last[x.org]["report"] == json.loads(json.dumps(
        out["ORGANISATION"]["report"]))


# -- what Xero sends: flags may be absent -------------------------------------------------------
T = "tenant-flags"


def _contact(cid, name, **flags):
    return {"ContactID": cid, "Name": name, "EmailAddress": "", "ContactStatus": "ACTIVE", **flags}


def _store(con, contacts, invoices=()):
    # the organisation they belong to is connected (alone: the practice ledger, as suggested)
    con.execute("INSERT OR IGNORE INTO connections (tenant_id, tenant_name, tenant_type, status) "
                "VALUES (?, 'Ledger', 'ORGANISATION', 'connected')", [T])
    for c in contacts:
        con.execute("INSERT OR REPLACE INTO contacts (tenant_id, contact_id, name, status, is_customer, is_supplier, raw, "
                    "synced_at) VALUES (?, ?, ?, 'ACTIVE', ?, ?, ?, now())",
                    [T, c["ContactID"], c["Name"], c.get("IsCustomer"), c.get("IsSupplier"), json.dumps(c)])
    for n, (contact_id, kind) in enumerate(invoices):
        con.execute("INSERT INTO invoices (tenant_id, invoice_id, type, contact_id, synced_at) VALUES (?, ?, ?, ?, now())",
                    [T, f"inv-{contact_id}-{kind}-{n}", kind, contact_id])


@pytest.mark.slow
def test_without_flags_sales_invoices_decide(settings):
    with connect(settings.db_path) as con, transaction(con):
        _store(con, [_contact("c-sale", "Sale Pty Ltd"), _contact("c-bill", "Bill Supplies"),
                     _contact("c-none", "Nobody Yet"), _contact("c-both", "Both Ways", IsCustomer=False, IsSupplier=True),
                     _contact("c-str", "Stringly", IsCustomer="true")],
               invoices=[("c-sale", "ACCREC"), ("c-bill", "ACCPAY"), ("c-both", "ACCREC")])
    rep = C.reconcile_stored_contacts(settings, T).as_dict()
    names = {r["name"] for r in C.list_clients(settings)}
    assert names == {"Sale Pty Ltd", "Both Ways", "Stringly"}
    assert rep["skipped_by_reason"] == {"supplier_only": 1, "not_customer": 1}
    # the first sales invoice of a skipped contact arrives later: the next (incremental) pass imports it
    with connect(settings.db_path) as con, transaction(con):
        con.execute("INSERT INTO invoices (tenant_id, invoice_id, type, contact_id, synced_at) "
                    "VALUES (?, 'inv-late', 'ACCREC', 'c-none', now() + INTERVAL 1 SECOND)", [T])
        assert C.reconcile_pending(con, T)
        assert C.reconcile_pending(con, T, "ORGANISATION")  # the type a sync has read already: the same answer
    rep = C.reconcile_stored_contacts(settings, T).as_dict()
    assert rep["imported"] == 1 and "Nobody Yet" in {r["name"] for r in C.list_clients(settings)}
    with connect(settings.db_path) as con:
        assert not C.reconcile_pending(con, T)


def test_who_is_a_client_by_itself():
    assert skip_reason(_contact("1", "Acme", IsCustomer=True)) is None
    assert skip_reason(_contact("1", "Acme", IsSupplier=True)) == "supplier_only"
    assert skip_reason(_contact("1", "Acme", IsSupplier="false"), has_sales=True) is None
    assert skip_reason(_contact("1", "Acme")) == "not_customer"
    assert skip_reason(_contact("1", "Australian Taxation Office", IsCustomer=True)) == "government"
    assert skip_reason(_contact("1", "Cash Sales", IsCustomer=True)) == "placeholder"
    assert skip_reason({**_contact("1", "Gone", IsCustomer=True), "ContactStatus": "ARCHIVED"}) == "archived"
    for gov in ("ATO", "HMRC", "Inland Revenue Department", "Revenue NSW", "City of Sydney", "Northern Beaches Council",
                "Office of State Revenue", "Department of Fair Trading"):
        assert is_government(gov), gov
    for biz in ("Telstra", "Atom Plumbing", "Council Street Cafe", "Cashmere Knits", "Harbour Strata"):
        assert not is_government(biz) and not is_placeholder(biz), biz
    for ph in ("Cash Sales", "Cash Sale", "Walk-in Customer", "Sundry Debtors", "Counter Sales", "General Public"):
        assert is_placeholder(ph), ph


def test_clients_an_earlier_version_imported_from_non_customers_are_taken_out(settings):
    """Every contact used to become a client: a full pass removes those nobody touched, and keeps any
    with documents, edits or a Practice Manager link."""
    contacts = [_contact("c-tel", "Telstra", IsSupplier=True), _contact("c-ato", "Australian Taxation Office"),
                _contact("c-doc", "Officeworks", IsSupplier=True), _contact("c-cust", "Real Client", IsCustomer=True)]
    with connect(settings.db_path) as con, transaction(con):
        _store(con, contacts)
        for c in contacts:  # what the old reconciliation made of every contact
            con.execute("INSERT INTO clients (client_id, name, tenant_id, xero_contact_id, match_status, match_method, "
                        "archived, source, edited_fields) VALUES (?, ?, ?, ?, 'matched', 'id', FALSE, 'xero', '{}')",
                        ["cl_" + c["ContactID"], c["Name"], T, c["ContactID"]])
    D.add_document(settings, "cl_c-doc", b"%PDF-1.4", file_name="receipt.pdf")
    rep = C.reconcile_stored_contacts(settings, T, full=True).as_dict()
    assert rep["removed"] == 2
    assert {r["name"] for r in C.list_clients(settings)} == {"Officeworks", "Real Client"}
    assert rep["skipped_by_reason"] == {"supplier_only": 1, "government": 1}


# -- the demo's seeded practice ------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("xpm_first", [True, False])
def test_the_demo_practice_mostly_matches_and_shows_a_few_ambiguous(make_settings, xpm_first):
    """The demo (seed 42, the fake's default size): most of Practice Manager's clients meet their
    Xero contact whichever tenant syncs first; two wait in the queue; none is duplicated."""
    from xero_core.commands.sync import DEMO_SEED

    x = connected(make_settings, seed=DEMO_SEED)
    order = [(x.pm, "xpm,clients"), (x.org, "contacts")]  # each with its clients step, as every sync runs
    for tenant, only in (order if xpm_first else order[::-1]):
        sync(x, tenant, only)
    practice = x.fake.practice(x.pm)
    rows = {r[0]: r for r in q(x, "SELECT xpm_client_id, xero_contact_id, client_id FROM clients "
                                  "WHERE xpm_client_id IS NOT NULL")}
    matched = [c for c in practice.clients.values()
               if c.matched_contact_id and rows.get(str(c.id), (None, None))[1] == c.matched_contact_id]
    assert len(matched) >= 12 and len(practice.clients) == 17
    waiting = {k["client_id"] for k in C.list_candidates(x.s)}
    if xpm_first:
        twins = [rows[str(c.id)][2] for c in practice.clients.values() if c.match_kind == "ambiguous"]
        assert set(twins) <= waiting and len(twins) == 2
    else:  # the twins' contacts became clients first: Practice Manager's client waits for a choice between them
        pm_waiting = {k["contact_id"] for k in C.list_candidates(x.s) if k["tenant_id"] == x.pm}
        assert {str(c.id) for c in practice.clients.values() if c.match_kind == "ambiguous"} <= pm_waiting
    linked = [r[0] for r in q(x, "SELECT xero_contact_id FROM clients WHERE xero_contact_id IS NOT NULL")]
    assert len(linked) == len(set(linked))
    # a workshop can push a document for a matched client end to end
    doc = D.add_document(x.s, rows[str(matched[0].id)][2], b"%PDF-1.4 engagement", file_name="engagement.pdf")
    summary = D.push_due_documents(x.s, x.org, transport=x.t, clock=x.clock)
    assert summary.pushed == 1, summary.messages
    assert D.list_documents(x.s)[0]["status"] == "pushed" and doc["status"] == "pending"


# -- documents: every sync pushes what is due, with backoff ---------------------------------------
@pytest.mark.slow
def test_due_documents_are_pushed_with_backoff_then_given_up(x):
    from datetime import timedelta

    sync(x, x.org, "contacts")
    run_reconcile(x.s, x.org, clock=x.clock)
    matched = next(r for r in C.list_clients(x.s) if r["xero_contact_id"] and r["tenant_id"] == x.org)
    loose = C.add_client(x.s, "Nobody In Xero Pty Ltd", clock=x.clock)
    a = D.add_document(x.s, matched["client_id"], b"%PDF-1.4 a", file_name="a.pdf", clock=x.clock)
    b = D.add_document(x.s, matched["client_id"], b"%PDF-1.4 b", file_name="b.pdf", clock=x.clock)
    c = D.add_document(x.s, loose, b"%PDF-1.4 c", file_name="c.pdf", clock=x.clock)
    with connect(x.s.db_path) as con:  # b has failed many times already
        con.execute("UPDATE client_documents SET status = 'failed', attempts = ?, error = 'HTTP 503' "
                    "WHERE document_id = ?", [D.MAX_ATTEMPTS - 1, b["document_id"]])

    x.fake.faults.add("503", path="/files.xro", count=None)
    started = x.clock.now()
    s1 = D.push_due_documents(x.s, x.org, transport=x.t, clock=x.clock)
    assert (s1.pushed, s1.failed, s1.gave_up, s1.skipped) == (0, 2, 1, 1), s1.messages
    docs = {d["document_id"]: d for d in D.list_documents(x.s)}
    assert docs[a["document_id"]]["status"] == "failed" and docs[a["document_id"]]["attempts"] == 1
    tried = docs[a["document_id"]]["last_attempt_at"]
    assert tried >= started and docs[a["document_id"]]["next_attempt_at"] - tried == timedelta(minutes=5)
    assert docs[b["document_id"]]["status"] == "gave_up"
    assert docs[b["document_id"]]["error"].startswith(f"Gave up after {D.MAX_ATTEMPTS} attempt(s)")
    assert "not matched to a Xero contact yet" in docs[c["document_id"]]["error"]

    # the queue says what waits and why, and when the next attempt is
    queue = {r["document_id"]: r for r in D.push_queue(x.s, now=x.clock.now())}
    assert queue[a["document_id"]]["next_attempt_at"] == docs[a["document_id"]]["next_attempt_at"]
    assert "attempt 1 failed" in queue[a["document_id"]]["why"]
    assert "Gave up" in queue[b["document_id"]]["why"] and queue[b["document_id"]]["next_attempt_at"] is None
    assert "not matched" in queue[c["document_id"]]["why"]

    x.fake.faults.clear()
    s2 = D.push_due_documents(x.s, x.org, transport=x.t, clock=x.clock)  # backoff not over yet
    assert (s2.pushed, s2.deferred) == (0, 1) and D.list_documents(x.s, status="failed")
    x.clock.advance(minutes=6)
    s3 = D.push_due_documents(x.s, x.org, transport=x.t, clock=x.clock)
    assert s3.pushed == 1 and s3.api_calls > 0
    assert {d["document_id"]: d["status"] for d in D.list_documents(x.s)} == {
        a["document_id"]: "pushed", b["document_id"]: "gave_up", c["document_id"]: "skipped"}
    # given up waits for a person: the Retry button / `documents push --document ID`
    assert D.push_documents(x.s, document_id=b["document_id"], transport=x.t, clock=x.clock).pushed == 1
    # once the loose client is linked to a contact its document goes with the next sync
    contact = next(r for r in C.skipped_contacts(x.s, x.org) if r["reason"] == "supplier_only")
    C.add_client_from_contact(x.s, x.org, contact["contact_id"], client_id=loose, clock=x.clock)
    assert D.push_due_documents(x.s, x.org, transport=x.t, clock=x.clock).pushed == 1
    assert D.push_queue(x.s) == []
