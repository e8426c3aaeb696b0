"""The demo's practice story (issue 25 §4), headless: the fake's practice ledger (an accounting firm whose
customers are its clients), two client organisations and Practice Manager jobs, connected in one consent;
the walk-through's client goes from its job to its campaign's first reminder, caught by a real SMTP
server on loopback, to its document pushed to the practice ledger's Xero Files, which stops the campaign."""
from __future__ import annotations

import pytest

from datetime import datetime, timedelta, timezone

from xero_core import oauth
from xero_core.db import connect
from xero_core.engine import Engine
from xero_core.fake import FakeClock, FakeXero
from xero_core.fake import practice as P
from xero_core.fake.mail import MailCatcher
from xero_core.practice import chase
from xero_core.practice import documents as D
from xero_core.practice import xpm as X

UTC = timezone.utc
THURSDAY_10AM_SYDNEY = datetime(2026, 12, 9, 23, 0, tzinfo=UTC)


def test_the_fake_tells_the_practice_story():
    fake = FakeXero(clock=FakeClock(THURSDAY_10AM_SYDNEY), story=True, invoices=120)
    firm, *client_orgs = fake.orgs
    assert firm.name == P.STORY_FIRM
    customers = {c.name for c in firm.contacts if c.kind == "customer" and c.name != "Cash Sales"}
    assert customers == {n for n, _ in P.STORY_CLIENTS}  # the firm's customers are its clients, nothing else
    assert [o.name for o in client_orgs] == [n for n, _ in P.STORY_CLIENT_ORGS]
    # the client organisations trade in foreign currencies too (sales invoices in USD, NZD, GBP, EUR)
    assert all({i.currency for i in o.invoices} - {o.base_currency} for o in client_orgs)
    practice = fake.practice()
    chased = next(c for c in practice.clients.values() if c.name == P.STORY_CHASED)
    assert chased.email == dict(P.STORY_CLIENTS)[P.STORY_CHASED]
    jobs = [j for j in practice.jobs.values() if j.client_id == chased.id]
    assert [j.state for j in jobs if j.state != "Completed"] == [P.STORY_CHASED_STATE]
    # every Practice Manager client is one of the firm's (or Practice Manager only): no "Cash Sales"
    firm_names = {n.casefold() for n, _ in P.STORY_CLIENTS}
    assert all(c.match_kind == "none" or c.name.casefold().replace("  ", " ").replace("the ", "", 1) in firm_names
               or any(f in c.name.casefold() for f in firm_names) for c in practice.clients.values())


@pytest.mark.slow
def test_from_the_job_to_the_first_reminder_to_the_document(make_settings):
    clock = FakeClock(THURSDAY_10AM_SYDNEY)
    fake = FakeXero(clock=clock, story=True, invoices=120)
    with MailCatcher() as mail:
        s = make_settings(**fake.settings_env("http://fake.test"), SMTP_PORT=str(mail.port),
                          XERO_TIMEZONE="Australia/Sydney")
        tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)),
                                         transport=fake.transport(), clock=clock)
        assert sorted(t["tenant_type"] for t in tenants) == ["ORGANISATION"] * 3 + ["PRACTICEMANAGER"]  # one consent
        firm = next(t["tenant_id"] for t in tenants if t["tenant_name"] == P.STORY_FIRM and t["tenant_type"] == "ORGANISATION")
        pm = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "PRACTICEMANAGER")
        engine = Engine(s, transport=fake.transport(), clock=clock)
        with connect(s.db_path) as con:  # the roles the admin sets (issue 25 §1)
            con.execute("UPDATE connections SET role = CASE WHEN tenant_id = ? THEN 'practice-ledger' "
                        "ELSE 'client-organisation' END WHERE tenant_type = 'ORGANISATION'", [firm])
        engine.sync(firm, only="contacts")
        X.set_mapping(s, pm, {P.STORY_CHASED_STATE})
        res = engine.sync(pm, only="xpm,chase")
        steps = {st.step: st for st in res.steps}
        assert steps["xpm"].status == "success" and steps["chase"].status == "success", res.to_dict()
        camps = {c["client_name"]: c for c in X.campaigns(s, pm, "open")}
        assert P.STORY_CHASED in camps
        assert mail.wait_for(len(camps))
        mine = [m for m in mail.caught if m.rcpt_tos == [dict(P.STORY_CLIENTS)[P.STORY_CHASED]]]
        assert len(mine) == 1
        msg = mine[0].message
        assert P.STORY_CHASED in msg.get_content() and "Annual Accounts" in msg["Subject"]
        (row,) = [r for r in chase.outbox(s, campaign_id=camps[P.STORY_CHASED]["campaign_id"])]
        assert row["state"] == "sent" and row["message_id"] == mine[0].message_id

        # The client's documents arrive: pushed to the practice ledger's Xero Files, on its contact there.
        client_id = camps[P.STORY_CHASED]["client_id"]
        clock.advance(timedelta(hours=1))
        doc = D.add_document(s, client_id, b"%PDF-1.4 bank statements", file_name="bank-statements.pdf", clock=clock)
        pushed = D.push_documents(s, document_id=doc["document_id"], transport=fake.transport(), clock=clock)
        assert pushed.pushed == 1, pushed.as_dict()
        contact = next(c for c in fake.org(firm).contacts if c.name == P.STORY_CHASED)
        files = fake.files[firm]
        (stored,) = [f for f in files.files.values() if f.name == "bank-statements.pdf"]
        assert [a.object_id for a in files.associations if a.file_id == stored.id] == [contact.id]
        r = engine.chase(tenant_id=pm)
        assert r.stopped == 1
        stopped = next(c for c in X.campaigns(s, pm) if c["campaign_id"] == camps[P.STORY_CHASED]["campaign_id"])
        assert stopped["status"] == "stopped" and "bank-statements.pdf" in stopped["stop_reason"]


@pytest.mark.slow
def test_demo_confirms_the_proposed_practice_ledger_so_notebooks_open_on_it(make_settings, capsys):
    """`python -m xero_core demo` clicks what the admin would: the story's firm (named like Practice
    Manager) becomes the practice ledger, said on stderr; the analysis functions then open on it."""
    from xero_core import analysis as an
    from xero_core.commands.sync import _confirm_proposed_ledger
    from xero_core.practice import roles as R

    clock = FakeClock(THURSDAY_10AM_SYDNEY)
    fake = FakeXero(clock=clock, story=True, invoices=60)
    s = make_settings(**fake.settings_env("http://fake.test"))
    oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)), transport=fake.transport(), clock=clock)
    assert R.roles(s).proposal and not R.roles(s).confirmed
    _confirm_proposed_ledger(s)
    view = R.roles(s)
    assert view.confirmed and view.name_of(view.ledger) == P.STORY_FIRM
    assert f"practice ledger: {P.STORY_FIRM}" in capsys.readouterr().err
    orgs = an.organisations(s.db_path)
    assert orgs.filter(orgs["role"] == "practice-ledger")["tenant_name"].to_list() == [P.STORY_FIRM]
