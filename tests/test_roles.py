"""Which organisation is the practice's own (issue 25 §1): roles on `connections`, clients only from the
practice ledger's customers and Practice Manager's clients (one row per client whatever its sources),
the clients an earlier version imported from every organisation taken out (and said), documents pushed to
the practice ledger's Xero Files, and a client organisation linked to the client it belongs to."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from types import SimpleNamespace

import pytest

from xero_core import oauth
from xero_core.cli import main
from xero_core.db import connect
from xero_core.fake import FakeClock, FakeXero
from xero_core.engine import Engine
from xero_core.practice import client_orgs as O
from xero_core.practice import clients as C
from xero_core.practice import documents as D
from xero_core.practice import roles as R
from xero_core.practice.matching import norm_email

TODAY = date(2026, 11, 30)


def connected(make_settings, tenants=2):
    """The fake with `tenants` organisations (two trades companies sharing a few customers) and Practice Manager."""
    clock = FakeClock(datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc))
    fake = FakeXero(today=TODAY, clock=clock, invoices=30, tenants=tenants)
    s = make_settings(**fake.settings_env("http://fake.test"))
    got = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)), transport=fake.transport(),
                                 clock=clock)
    orgs = [t["tenant_id"] for t in got if t["tenant_type"] == "ORGANISATION"]
    pm = next(t["tenant_id"] for t in got if t["tenant_type"] == "PRACTICEMANAGER")
    return SimpleNamespace(fake=fake, s=s, clock=clock, t=fake.transport(), orgs=orgs, a=orgs[0],
                           b=orgs[1] if len(orgs) > 1 else None, pm=pm)


def sync(x, tenant, only):
    r = Engine(x.s, transport=x.t, clock=x.clock).sync(tenant, only=only, trigger="manual")
    assert r.status == "success", r.to_dict()
    return {st.step: st for st in r.steps}


def q(x, sql, *params):
    with connect(x.s.db_path, read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def customers(x, tenant):
    return [c for c in x.fake.org(tenant).contacts if c.is_customer and c.status == "ACTIVE" and not c.merged_to]


@pytest.fixture
def x(make_settings):
    return connected(make_settings)


@pytest.mark.slow
def test_clients_come_only_from_the_practice_ledger_and_practice_manager(x):
    assert R.roles(x.s).problem and "none is the practice ledger" in R.roles(x.s).problem  # two: nothing guessed
    R.set_role(x.s, x.a, "practice-ledger", clock=x.clock)
    R.set_role(x.s, x.b, "client-organisation", clock=x.clock)
    sync(x, x.pm, "xpm,clients")
    steps = sync(x, x.b, "contacts")  # the client organisation first: its customers must not become clients
    assert steps["clients"].status == "skipped" and "client organisation" in steps["clients"].detail["note"]
    sync(x, x.a, "contacts")

    rows = q(x, "SELECT client_id, name, email, tenant_id, xero_contact_id, xpm_client_id FROM clients")
    assert rows and not [r for r in rows if r[3] == x.b], "a client organisation's customer became a client"
    a_ids = {c.id for c in customers(x, x.a)}
    assert {r[4] for r in rows if r[4]} <= a_ids
    assert all(r[4] or r[5] for r in rows)  # every client is a ledger customer or a Practice Manager client
    # customers both organisations share are one client each (before: one per organisation)
    shared = {norm_email(c.email) for c in customers(x, x.a)} & {norm_email(c.email) for c in customers(x, x.b)}
    shared.discard(None)
    assert shared
    in_a = {}
    for c in customers(x, x.a):
        in_a[norm_email(c.email)] = in_a.get(norm_email(c.email), 0) + 1
    per_email = {}
    for r in rows:
        per_email[norm_email(r[2])] = per_email.get(norm_email(r[2]), 0) + 1
    # (the ledger's own near-duplicate contacts stay one client per contact, as before)
    assert all(per_email.get(e, 0) <= in_a[e] for e in shared), {e: (per_email.get(e), in_a[e]) for e in shared}
    # Practice Manager's clients matched against the ledger only: none links to the client organisation
    assert not q(x, "SELECT 1 FROM client_match_candidates WHERE tenant_id = ?", x.b)


@pytest.mark.slow
def test_one_organisation_with_practice_manager_is_suggested_not_silently_chosen(make_settings):
    x = connected(make_settings, tenants=1)
    r = R.roles(x.s)
    assert r.ledger == x.a and r.suggestion == x.a and not r.confirmed and r.problem is None
    org = next(o for o in O.organisations(x.s)["organisations"] if o["tenant_id"] == x.a)
    assert org["role"] is None and org["effective"] == "practice-ledger" and org["suggested"]
    assert sync(x, x.a, "contacts")["clients"].detail["imported"] > 0  # used as the ledger meanwhile
    R.set_role(x.s, x.a, "practice-ledger", clock=x.clock)
    assert R.roles(x.s).confirmed and R.roles(x.s).suggestion is None


def cli_env(x, monkeypatch):
    """The CLI in this process, on the test's data dir and vault key."""
    for k, v in {"XERO_DATA_DIR": str(x.s.data_dir), "XERO_MOCK_MODE": "true", "XERO_ENV_FILE": "/dev/null",
                 "XERO_ENCRYPTION_KEY": x.s.encryption_key.hex(), **x.fake.settings_env("http://fake.test")}.items():
        monkeypatch.setenv(k, v)


def _cli(capsys, *argv):
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_role_cli_status_json_and_clients_sync_refusal(x, capsys, monkeypatch):
    cli_env(x, monkeypatch)
    code, out, err = _cli(capsys, "clients", "sync")
    assert code != 0 and "none is the practice ledger" in err and "role TENANT_ID practice-ledger" in err
    code, out, _ = _cli(capsys, "status", "--json")
    doc = json.loads(out)
    roles = {c["tenant_id"]: (c["role"], c["suggested_role"]) for c in doc["connections"]}
    assert roles[x.a] == (None, None) and roles[x.b] == (None, None) and roles[x.pm] == (None, None)
    assert any("none is the practice ledger" in w for w in doc["warnings"])

    code, out, _ = _cli(capsys, "role", x.a, "practice-ledger")
    assert code == 0 and "is now the practice ledger" in out
    code, out, _ = _cli(capsys, "role", x.b, "practice-ledger", "--json")  # one ledger at a time
    assert code == 0 and json.loads(out)["demoted"] == [x.fake.org(x.a).name]
    roles = {c["tenant_id"]: (c["role"], c["suggested_role"]) for c in json.loads(_cli(capsys, "status", "--json")[1])["connections"]}
    assert roles[x.a] == ("client-organisation", None) and roles[x.b] == ("practice-ledger", None)
    code, _, err = _cli(capsys, "role", x.pm, "practice-ledger")
    assert code != 0 and "not an organisation" in err
    code, _, err = _cli(capsys, "role", x.a, "ledger")
    assert code != 0 and "practice-ledger or client-organisation" in err


@pytest.mark.slow
def test_clients_imported_from_every_organisation_are_taken_out_and_said(x, capsys, monkeypatch):
    """An installation from before roles: B's customers were imported as clients. Setting the roles removes
    those nothing hangs on, keeps (unlinked) the ones with documents, campaigns or edits, and says so."""
    R.set_role(x.s, x.b, "practice-ledger", clock=x.clock)  # what the old version did with B: import its customers
    sync(x, x.b, "contacts")
    from_b = {r[0]: r[1] for r in q(x, "SELECT client_id, name FROM clients WHERE tenant_id = ?", x.b)}
    assert len(from_b) > 10
    with connect(x.s.db_path) as con:  # as it was before roles: nobody chose
        con.execute("UPDATE connections SET role = NULL")
    ids = sorted(from_b)
    with_doc, edited, with_campaign = ids[0], ids[1], ids[2]
    D.add_document(x.s, with_doc, b"%PDF-1.4 tax return", file_name="return.pdf", clock=x.clock)
    C.edit_client(x.s, edited, phone="02 9999 0000", clock=x.clock)
    with connect(x.s.db_path) as con:
        con.execute("INSERT INTO chase_campaigns (campaign_id, tenant_id, client_id, job_id, status) "
                    "VALUES ('camp-1', ?, ?, 'J000001', 'open')", [x.pm, with_campaign])

    cli_env(x, monkeypatch)
    code, out, err = _cli(capsys, "role", x.a, "practice-ledger")
    assert code == 0, err
    assert f"removed {len(from_b) - 3} client(s) imported from client organisations' customers" in out
    assert "kept 3 of them" in out and "has documents" in out and "edited by hand" in out and "has campaigns" in out
    left = {r[0]: r for r in q(x, "SELECT client_id, tenant_id, xero_contact_id, match_status FROM clients")}
    assert set(left) == {with_doc, edited, with_campaign}
    assert all(r[1] is None and r[2] is None and r[3] == "unmatched" for r in left.values())
    report = R.removal_report(x.s)
    assert len(report) == len(from_b) - 3 and {r["tenant_id"] for r in report} == {x.b}
    assert R.acknowledge_removals(x.s, clock=x.clock) == len(report) and R.removal_report(x.s) == []

    # the kept ones look for their contact in the practice ledger now; the document goes there
    sync(x, x.a, "contacts")
    row = q(x, "SELECT tenant_id, xero_contact_id FROM clients WHERE client_id = ?", with_doc)[0]
    name = from_b[with_doc]
    if row[0] == x.a:
        summary = D.push_due_documents(x.s, x.a, transport=x.t, clock=x.clock)
        assert summary.pushed == 1, summary.messages
        assert [f.name for f in x.fake.files[x.a].files.values()] == ["return.pdf"]
        assert not x.fake.files[x.b].files
    else:  # not a customer of A: it waits, and says why
        why = D.push_queue(x.s)[0]["why"]
        assert name in why and "not matched" in why


@pytest.mark.slow
def test_documents_go_to_the_practice_ledgers_files_on_the_right_contacts(x):
    R.set_role(x.s, x.a, "practice-ledger", clock=x.clock)
    sync(x, x.a, "contacts")
    sync(x, x.b, "contacts")
    two = q(x, "SELECT client_id, name, xero_contact_id FROM clients WHERE xero_contact_id IS NOT NULL "
               "ORDER BY lower(name) LIMIT 2")
    for (cid, name, _), fname in zip(two, ("first.pdf", "second.pdf")):
        D.add_document(x.s, cid, f"%PDF-1.4 {name}".encode(), file_name=fname, clock=x.clock)
    summary = D.push_documents(x.s, transport=x.t, clock=x.clock)
    assert summary.pushed == 2, summary.messages
    a_name = x.fake.org(x.a).name
    assert sorted(summary.messages) == [f"first.pdf pushed to Ledgerlink Uploads in {a_name}'s Xero Files and attached to "
                                f"{two[0][1]}'s contact there",
                                f"second.pdf pushed to Ledgerlink Uploads in {a_name}'s Xero Files and attached to "
                                f"{two[1][1]}'s contact there"]
    store = x.fake.files[x.a]
    by_name = {f.name: f for f in store.files.values()}
    assert set(by_name) == {"first.pdf", "second.pdf"} and not x.fake.files[x.b].files
    got = {name: {a.object_id for a in store.associations if a.file_id == f.id} for name, f in by_name.items()}
    assert got == {"first.pdf": {two[0][2]}, "second.pdf": {two[1][2]}}


@pytest.mark.slow
def test_a_client_organisation_is_suggested_to_its_client_and_shows_its_figures(x):
    R.set_role(x.s, x.a, "practice-ledger", clock=x.clock)
    R.set_role(x.s, x.b, "client-organisation", clock=x.clock)
    sync(x, x.b, "accounts,pnl")  # the client's books: its organisation and weekly figures
    b_name = x.fake.org(x.b).name
    owner = C.add_client(x.s, b_name.replace(" Pty Ltd", " Pty. Ltd."), email="owner@gmail.com", clock=x.clock)
    C.add_client(x.s, "Somebody Else", email="someone@else.example", clock=x.clock)
    org = next(o for o in O.organisations(x.s)["organisations"] if o["tenant_id"] == x.b)
    assert org["suggested_clients"] == [{"client_id": owner, "name": C.get_client(x.s, owner)["name"], "method": "name"}]
    assert org["practice_client_id"] is None  # suggested, never linked by itself
    link = O.link_organisation(x.s, x.b, owner, clock=x.clock)
    assert link["method"] == "name"
    with pytest.raises(O.ClientOrgError, match="practice ledger"):
        O.link_organisation(x.s, x.a, owner, clock=x.clock)
    view = O.client_overview(x.s, owner, today=TODAY)
    (o,) = view["organisations"]
    assert o["tenant_id"] == x.b and o["figures"]["error"] is None and o["figures"]["week_ending"] < TODAY
    assert o["figures"]["income"] is not None
    summary = {r["client_id"]: r for r in O.clients_summary(x.s)}
    assert summary[owner]["organisations"] == b_name


def test_suggestions_by_tax_number_and_web_domain():
    from xero_core.practice.client_orgs import email_domain, norm_tax, website_domains

    assert norm_tax("51 824 753 556") == norm_tax("51824753556") == "51824753556" and norm_tax("12") is None
    assert website_domains({"ExternalLinks": [{"LinkType": "Website", "Url": "https://www.brightdental.example/"}]}) \
        == {"brightdental.example"}
    assert email_domain("Hello@BrightDental.example") == "brightdental.example" and email_domain("x@gmail.com") is None


@pytest.mark.slow
def test_clients_add_refuses_the_name_and_email_of_an_existing_client(settings, capsys, monkeypatch):
    for k, v in {"XERO_DATA_DIR": str(settings.data_dir), "XERO_MOCK_MODE": "true", "XERO_ENV_FILE": "/dev/null",
                 "XERO_ENCRYPTION_KEY": settings.encryption_key.hex()}.items():
        monkeypatch.setenv(k, v)
    assert _cli(capsys, "clients", "add", "Acme Plumbing Pty Ltd", "--email", "accounts@acme.example")[0] == 0
    code, out, err = _cli(capsys, "clients", "add", "ACME Plumbing", "--email", " Accounts@Acme.example")
    assert code != 0 and "is already a client" in err and "instead of adding a second" in err
    assert [c["name"] for c in C.list_clients(settings)] == ["Acme Plumbing Pty Ltd"]
    # a shared mailbox serves several businesses: another name with that email is another client
    assert _cli(capsys, "clients", "add", "Bright Dental", "--email", "accounts@acme.example")[0] == 0


def test_a_contact_webhook_of_a_client_organisation_makes_no_client(settings):
    """Webhooks reconcile a changed contact at once: only the practice ledger's."""
    from xero_core.practice.webhooks import _apply

    with connect(settings.db_path) as con:
        for tid, role in (("t-ledger", "practice-ledger"), ("t-client", "client-organisation")):
            con.execute("INSERT INTO connections (tenant_id, tenant_name, tenant_type, status, role) "
                        "VALUES (?, ?, 'ORGANISATION', 'connected', ?)", [tid, tid, role])
    contact = {"ContactID": "c-1", "Name": "Shared Customer Pty Ltd", "EmailAddress": "ap@shared.example",
               "ContactStatus": "ACTIVE", "IsCustomer": True}
    now = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
    clock = FakeClock(now)
    for tid in ("t-client", "t-ledger"):
        with connect(settings.db_path) as con:
            _apply(con, [({"keys": []}, ("processed", None, True, ("CONTACT", tid, [dict(contact)])))], now, clock,
                   settings)
    with connect(settings.db_path) as con:
        assert con.execute("SELECT tenant_id, name FROM clients").fetchall() == [("t-ledger", "Shared Customer Pty Ltd")]
        assert con.execute("SELECT count(*) FROM contacts").fetchone()[0] == 2  # both stored, one client


def test_with_several_organisations_practice_managers_namesake_is_suggested_never_used(settings):
    with connect(settings.db_path) as con:
        for tid, name, ttype in (("t-own", "Harbour & Co Chartered Accountants", "ORGANISATION"),
                                 ("t-client", "Coastal Plumbing Pty Ltd", "ORGANISATION"),
                                 ("t-pm", "Harbour & Co Chartered Accountants", "PRACTICEMANAGER")):
            con.execute("INSERT INTO connections (tenant_id, tenant_name, tenant_type, status) VALUES (?, ?, ?, 'connected')",
                        [tid, name, ttype])
    r = R.roles(settings)
    assert r.ledger is None and r.proposal == "t-own" and r.client_orgs == []  # nothing flows from a suggestion
    assert "has your Practice Manager's name" in r.problem
    assert (r.suggested_role("t-own"), r.suggested_role("t-client"), r.suggested_role("t-pm")) == ("practice-ledger", None, None)
    with pytest.raises(R.RoleError, match="none is the practice ledger"):
        R.require_practice_ledger(settings)
    R.set_role(settings, "t-own", "practice-ledger")
    r = R.roles(settings)
    assert (r.ledger, r.proposal, r.client_orgs, r.suggested_role("t-own")) == ("t-own", None, ["t-client"], None)


@pytest.mark.parametrize("rows, ledger", [
    ([], None),
    ([("t-a", "ORGANISATION", None, "connected")], "t-a"),  # the only organisation: suggested
    ([("t-a", "ORGANISATION", None, "connected"), ("t-pm", "PRACTICEMANAGER", None, "connected")], "t-a"),
    ([("t-a", "ORGANISATION", "client-organisation", "connected")], None),  # a person said it is a client's
    ([("t-a", "ORGANISATION", "odd", "connected")], "t-a"),  # an unknown role counts as none
    ([("t-a", "ORGANISATION", None, "connected"), ("t-b", "ORGANISATION", None, "connected")], None),
    ([("t-a", "ORGANISATION", None, "connected"), ("t-b", None, "practice-ledger", "needs_reconnect")], "t-b"),
    ([("t-a", "ORGANISATION", "practice-ledger", "connected"), ("t-b", "ORGANISATION", "practice-ledger", "connected")], None),
    ([("t-a", "ORGANISATION", "practice-ledger", "disconnected"), ("t-b", "ORGANISATION", None, "connected")], "t-b"),
])
def test_the_ledger_alone_is_decided_as_read_roles_decides_it(settings, rows, ledger):
    # ledger_of is what a sync's probe asks of every tenant (one aggregate instead of every organisation).
    with connect(settings.db_path) as con:
        for tid, ttype, role, status in rows:
            con.execute("INSERT INTO connections (tenant_id, tenant_name, tenant_type, status, role) VALUES (?, ?, ?, ?, ?)",
                        [tid, tid.upper(), ttype, status, role])
        assert R.read_roles(con).ledger == ledger
        assert R.ledger_of(con) == ledger
