"""Admin app: Practice Manager, Webhooks (page and the mounted receiver), Clients & documents."""
from __future__ import annotations

import pytest

import re
import warnings

with warnings.catch_warnings():  # starlette suggests httpx2 (once, at import); the project stays on httpx
    warnings.simplefilter("ignore")
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

from app_testing import (  # noqa: F401 - fixtures
    app_settings, button, choose_tenant, connect, errors, fake_xero, new_app, open_page, tenant_of, texts,
)

WEBHOOK_KEY = "fakeWebhookKey/0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH=="


# -- Practice Manager -------------------------------------------------------------------------
@pytest.mark.slow
def test_practice_manager_mapping_preview_and_campaigns(app_settings, fake_xero):
    from xero_core.practice import xpm

    fake, _ = fake_xero
    connect(app_settings, fake)
    practice = tenant_of(app_settings, "PRACTICEMANAGER")
    at = open_page("practice_manager")
    assert at.toggle[0].value is True  # a practice connection follows jobs from the start
    assert "No job state seen yet" in texts(at)
    button(at, "Sync jobs now").click().run()
    assert not errors(at), errors(at)
    assert re.search(r"Practice Manager synced: \d+ jobs? read, 0 campaigns opened and 0 completed\.", texts(at))
    assert "Mapping applied" not in texts(at)
    assert "With the saved mapping, no current job would be in a chasing campaign." in texts(at)

    states = at.multiselect[0].options
    assert states == xpm.known_states(app_settings, practice) and states
    jobs = xpm.list_jobs(app_settings, practice)
    state = max(states, key=lambda s: sum(j["state"] == s for j in jobs))
    at.multiselect[0].set_value([state]).run()
    preview = at.dataframe[0].value
    assert set(preview["state"]) == {state} and len(preview) == sum(j["state"] == state for j in jobs)
    assert xpm.get_mapping(app_settings, practice) == set()  # a preview saves nothing

    button(at, "Save mapping and apply").click().run()
    assert not errors(at), errors(at)
    assert xpm.get_mapping(app_settings, practice) == {state}
    open_tab = at.tabs[0]
    assert open_tab.label == f"Open ({len(preview)})"
    assert set(open_tab.dataframe[0].value["job_id"]) == set(preview["job_id"])

    # switching the practice off is kept
    at.toggle[0].set_value(False).run()
    assert xpm.is_enabled(app_settings, practice) is False


@pytest.mark.slow
def test_practice_manager_refused_by_the_tier_says_so_plainly(app_settings, fake_xero):
    fake, _ = fake_xero
    fake.set_tier("core")
    connect(app_settings, fake)
    at = open_page("practice_manager")
    button(at, "Sync jobs now").click().run()
    assert not at.exception
    page = texts(at)
    assert "Advanced plan" in page and "nothing else is affected" in page


@pytest.mark.slow
def test_practice_manager_without_a_practice_connection(app_settings):
    assert "No Xero Practice Manager is connected" in texts(open_page("practice_manager"))


# -- Webhooks ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_webhooks_page_url_key_status_and_events(app_settings, fake_xero):
    from app_support.webhook_route import routes

    fake, _ = fake_xero
    connect(app_settings, fake)
    at = open_page("webhooks")
    assert at.code[0].value == "http://localhost:8501/webhooks/xero"
    assert "No key is stored yet" in texts(at)

    at.text_input[0].input(WEBHOOK_KEY)
    button(at, "Save key").click().run()
    page = texts(at)
    assert "Webhook key saved" in page and "…GH== (vault)" in page
    assert WEBHOOK_KEY not in page + str(at.main)

    # Xero's Intent to Receive and a delivery, through the route (and worker) app.py mounts on the app's server
    from app_support import webhook_route
    from xero_core.practice.spool import Spool

    with TestClient(Starlette(routes=routes(), lifespan=webhook_route.lifespan)) as http:
        url = "http://testserver/webhooks/xero"
        itr = fake.intent_to_receive(url, WEBHOOK_KEY, transport=http._transport)
        assert itr.passed, itr.public()
        delivered = fake.deliver_webhooks(url, WEBHOOK_KEY, transport=http._transport)
        assert delivered.passed, delivered.public()  # 200, empty body, no cookie, in time
        worker = webhook_route._worker["worker"]  # classifies and moves what the route spooled
        while Spool.for_settings(app_settings).backlog():
            assert worker.wait_moves(worker.moves, timeout=30)

    at.run()
    assert {m.label: m.value for m in at.metric}["Intent to Receive"] == "passed"
    assert "ago" in texts(at)  # last event received
    button(at, "Process received events now").click().run()
    assert not errors(at), errors(at)
    events = at.dataframe[0].value
    assert len(events) == 4 and set(events["event_category"]) == {"CONTACT", "INVOICE"}
    assert set(events["status"]) <= {"processed", "ignored", "failed"}


@pytest.mark.slow
def test_webhook_route_refuses_bad_signatures_with_an_empty_401(app_settings):
    from app_support.webhook_route import routes
    from xero_core.practice.webhooks import set_webhook_key, sign

    set_webhook_key(app_settings, WEBHOOK_KEY)
    body = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"ABCDEFGHIJKLMNOPQRST"}'
    with TestClient(Starlette(routes=routes())) as http:
        bad = http.post("/webhooks/xero", content=body, headers={"x-xero-signature": sign("other", body)})
        good = http.post("/webhooks/xero", content=body, headers={"x-xero-signature": sign(WEBHOOK_KEY, body)})
        assert http.get("/webhooks/xero").status_code == 405
    assert (bad.status_code, bad.content, "set-cookie" in bad.headers) == (401, b"", False)
    assert (good.status_code, good.content, "set-cookie" in good.headers) == (200, b"", False)
    page = texts(open_page("webhooks"))
    # a wrongly signed empty batch is Intent to Receive's deliberate probe: explained, not a failure
    assert "1 wrongly signed Intent to Receive probe(s) refused, as Xero expects" in page
    assert "Why: bad signature" not in page
    events = b'{"events":[{"resourceId":"x"}],"firstEventSequence":1,"lastEventSequence":1,"entropy":"A"}'
    with TestClient(Starlette(routes=routes())) as http:
        assert http.post("/webhooks/xero", content=events, headers={"x-xero-signature": "AAAA"}).status_code == 401
    assert "Why: bad signature · 1 refused" in texts(open_page("webhooks"))


# -- Clients & documents ----------------------------------------------------------------------
def _a_synced_contact(settings, tenant_id: str) -> tuple[str, str]:
    """A synced contact with an email and a name no other contact has, that the sync's clients step
    did not make a client (a supplier, say)."""
    from xero_core import db

    with db.connect(settings.db_path) as con:
        return con.execute(
            "SELECT name, email FROM contacts WHERE tenant_id = ? AND email IS NOT NULL AND name IN "
            "(SELECT name FROM contacts GROUP BY name HAVING count(*) = 1) AND contact_id NOT IN "
            "(SELECT xero_contact_id FROM clients WHERE xero_contact_id IS NOT NULL) ORDER BY name LIMIT 1", [tenant_id]
        ).fetchone()


@pytest.mark.slow
def test_clients_add_import_edit_and_match(app_settings, fake_xero):
    from xero_core.practice.clients import get_client, list_clients
    from xero_core.engine import Engine

    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    Engine(app_settings).sync(org, only="contacts")  # contacts, then the clients step
    name, email = _a_synced_contact(app_settings, org)

    at = open_page("clients")
    form_inputs = {}
    for t in at.text_input:  # the add form's fields come first (the edit form below has a Name too)
        form_inputs.setdefault(t.label, t)
    form_inputs["Name"].input(name)
    form_inputs["Email"].input(email)
    button(at, "Add client").click().run()
    assert not errors(at), errors(at)
    table = at.dataframe[0].value.set_index("name")
    assert table.loc[name, "match"] == "matched"

    at.file_uploader(key="clients_csv").upload("clients.csv", b"name,email\nNew Client Ltd,new@example.com\n,nobody\n",
                                               "text/csv").run()
    button(at, "Import clients").click().run()
    assert "Imported 1 clients" in texts(at) and "line 3: no name" in texts(at)

    # edit: the changed field is marked as edited by hand
    by_name = {c["name"]: c["client_id"] for c in list_clients(app_settings)}
    at.selectbox(key="edit_pick").set_value(by_name["New Client Ltd"]).run()
    phone = [t for t in at.text_input if t.label == "Phone"][-1]
    phone.input("+61 2 5550 1234")
    button(at, "Save changes").click().run()
    assert not errors(at), errors(at)
    assert "marked as edited by hand" in texts(at)
    client = get_client(app_settings, by_name["New Client Ltd"])
    assert client["phone"] == "+61 2 5550 1234" and "phone" in client["edited_fields"]
    assert "phone" in at.dataframe[0].value.set_index("name").loc["New Client Ltd", "edited by hand"]


@pytest.mark.slow
def test_ambiguous_matches_can_be_resolved(app_settings, fake_xero):
    from xero_core import db
    from xero_core.practice.clients import add_client, get_client

    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    cid = add_client(app_settings, "Twin Holdings")
    with db.connect(app_settings.db_path) as con:  # two synced contacts that fit equally well
        for i in (1, 2):
            con.execute("INSERT INTO contacts (tenant_id, contact_id, name) VALUES (?, ?, ?)", [org, f"c-{i}", "Twin Holdings"])
            con.execute("INSERT INTO client_match_candidates VALUES (?, ?, ?, 'same name', now())", [cid, org, f"c-{i}"])
        con.execute("UPDATE clients SET match_status = 'ambiguous' WHERE client_id = ?", [cid])
    at = open_page("clients")
    assert "Ambiguous matches to resolve" in texts(at)
    at.radio(key=f"amb-pick-{cid}").set_value(1).run()
    button(at, "Link this contact").click().run()
    assert not errors(at), errors(at)
    assert get_client(app_settings, cid)["xero_contact_id"] == "c-2"
    assert "Ambiguous matches to resolve" not in texts(at)


@pytest.mark.slow
def test_documents_upload_push_and_retry(app_settings, fake_xero):
    from xero_core.practice.clients import add_client
    from xero_core.practice.documents import list_documents
    from xero_core.engine import Engine

    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    Engine(app_settings).sync(org, only="contacts")
    name, email = _a_synced_contact(app_settings, org)
    cid = add_client(app_settings, name, email)

    at = open_page("clients")
    at.selectbox(key="doc_client").set_value(cid)
    at.file_uploader(key="doc_file").upload("engagement.pdf", b"%PDF-1.4 engagement letter", "application/pdf")
    button(at, "Add to the push queue").click().run()
    assert not errors(at), errors(at)
    assert "Queued engagement.pdf" in texts(at)
    (doc,) = list_documents(app_settings)
    assert doc["status"] == "pending"

    fake.faults.add("malformed", path="/files.xro", count=None)  # a proxy's HTML page instead of JSON
    button(at, "Push 1 waiting document(s) to Xero Files").click().run()
    assert list_documents(app_settings)[0]["status"] == "failed"
    fake.faults.clear()
    button(at, "Retry engagement.pdf").click().run()
    assert not errors(at), errors(at)
    assert list_documents(app_settings)[0]["status"] == "pushed"
    assert "Pushed 1" in texts(at)


@pytest.mark.slow
def test_a_malformed_webhook_key_is_refused_with_a_sentence(app_settings):
    at = open_page("webhooks")
    at.text_input[0].input("too short")
    button(at, "Save key").click().run()
    msg = " ".join(e.value for e in at.error)
    assert "does not look like a Xero webhook key" in msg and "no spaces" in msg
    assert "No key is stored yet" in texts(at) and not at.exception


@pytest.mark.slow
def test_practice_manager_chases_send_now_pause_and_the_outbox(app_settings, fake_xero, monkeypatch):
    """A campaign opened by a mapped state: its reminder sent with Send now reaches a real SMTP server
    on loopback and shows in the campaign's history and the Outbox; Pause stops the campaign."""
    from xero_core.fake.mail import MailCatcher
    from xero_core.practice import chase, xpm

    fake, _ = fake_xero
    connect(app_settings, fake)
    practice = tenant_of(app_settings, "PRACTICEMANAGER")
    with MailCatcher() as mail:
        monkeypatch.setenv("SMTP_PORT", str(mail.port))
        at = open_page("practice_manager")
        button(at, "Sync jobs now").click().run()
        jobs = xpm.list_jobs(app_settings, practice)
        state = next(j["state"] for j in jobs if j["state"] not in ("Completed", "Planned"))
        at.multiselect[0].set_value([state]).run()
        button(at, "Save mapping and apply").click().run()
        assert not errors(at), errors(at)
        assert chase.mapping_rows(app_settings, practice)[0]["cadence_words"] == "at once, then 3, 7, 14 days, then weekly"
        camp = at.selectbox(key=f"chase-campaign-{practice}")
        # The campaigns open at the same instant, so the selector's first one is any of them (random
        # ids): one of the fake's clients has no email address, and picking it by chance made this
        # test fail about 1 run in 9. Each case is chosen on purpose instead.
        by_email = {bool(chase.campaign(app_settings, c["campaign_id"])["client_email"]): c["campaign_id"]
                    for c in xpm.campaigns(app_settings, practice, "open")}
        camp.set_value(by_email[False]).run()
        button(at, "Send now").click().run()
        assert not errors(at), errors(at)
        said = " ".join(w.value for w in at.warning).replace("\\", "")  # shown as text: md() escaped it
        assert "Send now: 0 sent, 1 skipped (the client has no email address)" in said, said
        assert [r["state"] for r in chase.outbox(app_settings, campaign_id=by_email[False]) if r["forced"]] == ["skipped"]

        cid = by_email[True]
        camp.set_value(cid).run()
        caught_before = len(mail.caught)
        button(at, "Send now").click().run()
        assert not errors(at), errors(at)
        assert "Send now: 1 sent" in " ".join(s.value for s in at.success).replace("\\", "")
        # (The "at once" reminder may have gone already, in sending hours: Send now's is the forced one.)
        sent = [r for r in chase.outbox(app_settings, campaign_id=cid) if r["state"] == "sent" and r["forced"]]
        assert len(sent) == 1 and mail.wait_for(caught_before + 1), chase.outbox(app_settings, campaign_id=cid)
        assert sent[0]["message_id"] in {c.message_id for c in mail.caught}
        outbox = [df for df in at.dataframe if "message_id" in df.value.columns][-1].value
        assert sent[0]["message_id"] in set(outbox["message_id"])
        button(at, "Pause").click().run()
        assert not errors(at), errors(at)
        assert {c["campaign_id"]: c for c in xpm.campaigns(app_settings, practice)}[cid]["status"] == "paused"
        assert any(t.label.startswith("Paused or stopped (") and t.label != "Paused or stopped (0)" for t in at.tabs)


@pytest.mark.slow
def test_send_a_test_event_in_mock_mode_is_signed_by_the_fake_and_received_by_the_real_route(
        app_settings, fake_xero, monkeypatch):
    """Mock mode's button asks the fake's admin route to sign and post a delivery; the receiver (the
    product's own route, here its stand-alone server on loopback) verifies and spools it."""
    from xero_core.practice import webhooks as W
    from xero_core.practice.webhook_server import serve

    fake, _ = fake_xero
    connect(app_settings, fake)
    receiver = serve(app_settings)
    try:
        monkeypatch.setenv("XERO_APP_URL", receiver.url.removesuffix("/webhooks/xero"))
        at = open_page("webhooks")
        assert "tick Contacts, Invoices and Credit Notes" in texts(at)
        readme = (__import__("pathlib").Path(__file__).resolve().parents[1] / "README.md").read_text()
        assert "tick Contacts, Invoices and Credit Notes" in readme, "the page and the README agree"
        button(at, "Send a test event").click().run()
        assert "Save a webhook key in step 2 first" in " ".join(e.value for e in at.error)
        W.set_webhook_key(app_settings, "k" * 40)
        at = open_page("webhooks")
        button(at, "Send a test event").click().run()
        assert not errors(at), errors(at)
        said = " ".join(s.value for s in at.success)
        assert re.search(r"The fake Xero signed 2 contact events and 2 invoice events .* this app answered 200", said), said
        assert [a.public()["status"] for a in fake.webhooks.history] == [200]
        assert W.webhook_status(app_settings)["deliveries_verified"] == 1
    finally:
        receiver.close()
