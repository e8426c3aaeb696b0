"""Practice workflows end to end against the fake Xero, in-process (FakeXero(...).transport()),
connected through the real OAuth flow: contacts -> clients, documents -> Files, XPM -> campaigns,
and webhooks delivered by the fake to our receiver on a loopback port."""
from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

from xero_core import oauth
from xero_core.client import XeroClient
from xero_core.db import connect
from xero_core.fake import FakeClock, FakeXero
from xero_core.practice import clients as C
from xero_core.practice import documents as D
from xero_core.engine import Engine
from xero_core.practice import webhooks as W
from xero_core.practice import xpm as X
from xero_core.practice.webhook_server import serve

KEY = "fake-webhook-key-0123456789abcdefghij"


def connected(make_settings, **fake_kw):
    clock = FakeClock()
    fake = FakeXero(clock=clock, invoices=50, **fake_kw)
    s = make_settings(**fake.settings_env("http://fake.test"), XERO_WEBHOOK_KEY=KEY)
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)),
                                     transport=fake.transport(), clock=clock)
    by_type = {t["tenant_type"]: t["tenant_id"] for t in tenants}
    return SimpleNamespace(fake=fake, s=s, clock=clock, t=fake.transport(), org=by_type["ORGANISATION"],
                           pm=by_type["PRACTICEMANAGER"])


@pytest.fixture
def x(make_settings):
    return connected(make_settings)


def run(x, tenant_id=None):
    res = Engine(x.s, transport=x.t, clock=x.clock).sync_practices(trigger="manual", tenant_id=tenant_id)
    return {r.tenant_type: r.to_dict() for r in res}


def q(x, sql, *params):
    with connect(x.s.db_path, read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def active_contacts(x):
    return [c for c in x.fake.org(x.org).contacts if c.status == "ACTIVE" and not c.merged_to]


# -- clients <-> contacts ----------------------------------------------------------------------


@pytest.mark.slow
def test_contact_sync_matches_lists_ambiguity_and_keeps_edits(x):
    a, b, c, d, e, f, g = active_contacts(x)[:7]
    by_email = C.add_client(x.s, "Our name for A", email=f"  {a.email.upper()} ")
    by_name = C.add_client(x.s, b.name.upper().replace("PTY LTD", "Pty. Ltd."))
    twins = [C.add_client(x.s, c.name + "."), C.add_client(x.s, c.name.upper() + " !")]
    out = run(x)
    assert out["ORGANISATION"]["status"] == "success", out
    rows = {r["client_id"]: r for r in C.list_clients(x.s)}
    assert (rows[by_email]["xero_contact_id"], rows[by_email]["match_method"]) == (a.id, "email")
    assert (rows[by_name]["xero_contact_id"], rows[by_name]["match_method"]) == (b.id, "name")
    cands = [k for k in C.list_candidates(x.s) if k["tenant_id"] == x.org]  # (XPM may list its own)
    assert {(k["client_id"], k["contact_id"]) for k in cands} == {(twins[0], c.id), (twins[1], c.id)}
    assert not [r for r in rows.values() if r["xero_contact_id"] == c.id]  # not guessed, not created
    # every customer became (or matched) a client; suppliers, the tax office and "Cash Sales" did not
    customers = [k for k in active_contacts(x) if k.is_customer and k.name != "Cash Sales"]
    assert len([r for r in rows.values() if r["xero_contact_id"]]) == len(customers) - 1
    C.resolve_match(x.s, twins[1], x.org, c.id)
    assert C.get_client(x.s, twins[1])["xero_contact_id"] == c.id
    assert [k for k in C.list_candidates(x.s) if k["tenant_id"] == x.org] == []

    # manual edits survive a re-sync; Xero-made rows follow Xero where not edited
    d_client = next(r["client_id"] for r in rows.values() if r["xero_contact_id"] == d.id)
    C.edit_client(x.s, d_client, email="bookkeeper@ours.example")
    org = x.fake.org(x.org)
    x.clock.advance(60)
    d_new_name = d.name + " Holdings"
    org.update_contact(d.id, x.clock.now(), Name=d_new_name, EmailAddress="changed@xero.example")
    org.update_contact(a.id, x.clock.now(), Name="A Renamed In Xero")
    org.archive_contact(e.id, x.clock.now())
    org.merge_contact(f.id, g.id, x.clock.now())
    out = run(x)
    contacts_step = next(s for s in out["ORGANISATION"]["steps"] if s["step"] == "contacts")
    assert contacts_step["status"] == "success"
    assert q(x, "SELECT detail FROM sync_log WHERE sync_type = 'contacts' ORDER BY started_at DESC LIMIT 1")[0][0] \
        .count("incremental") == 1
    dc = C.get_client(x.s, d_client)
    assert (dc["name"], dc["email"]) == (d_new_name, "bookkeeper@ours.example")
    assert C.get_client(x.s, by_email)["name"] == "Our name for A"  # a practice's own client: only empties filled
    rows = {r["xero_contact_id"]: r for r in C.list_clients(x.s)}
    assert rows[e.id]["archived"] is True
    assert rows[f.id]["match_status"] == "merged" and rows[f.id]["archived"] is True
    linked = [r["xero_contact_id"] for r in C.list_clients(x.s) if r["xero_contact_id"]]
    assert len(linked) == len(set(linked))  # nothing duplicated
    assert g.id not in rows or rows[g.id]["archived"] is False


# -- documents -> Xero Files -------------------------------------------------------------------


def files_api(x):
    return XeroClient(x.s, x.org, transport=x.t, clock=x.clock)


class LoseFirstUploadAnswer(httpx.BaseTransport):
    """The fake stores the upload, then the answer is lost on the way back (a timeout)."""

    def __init__(self, inner):
        self.inner, self.lost = inner, 0

    def handle_request(self, request):
        resp = self.inner.handle_request(request)
        if request.method == "POST" and "/files.xro/1.0/Files/" in request.url.path and "Associations" not in \
                request.url.path and not self.lost:
            self.lost += 1
            raise httpx.ReadTimeout("answer lost", request=request)
        return resp


@pytest.mark.slow
def test_document_push_folder_association_failure_and_retry_without_duplicates(x, tmp_path):
    run(x)
    client_id, contact_id = q(x, "SELECT client_id, xero_contact_id FROM clients WHERE xero_contact_id IS NOT NULL "
                                 "ORDER BY name LIMIT 1")[0]
    lonely = C.add_client(x.s, "Nobody In Xero Pty Ltd")
    pdf = tmp_path / "Tax return 2026.pdf"
    pdf.write_bytes(b"%PDF-1.4 tax return\n")
    doc1 = D.add_document(x.s, client_id, pdf)
    D.add_document(x.s, client_id, b"a,b\n1,2\n", file_name="ledger.csv")
    exe = D.add_document(x.s, client_id, b"MZ...", file_name="setup.exe")
    unmatched = D.add_document(x.s, lonely, b"%PDF-1.4", file_name="id.pdf")
    assert exe["status"] == "skipped" and "does not accept .exe" in exe["error"]
    assert D.add_document(x.s, client_id, pdf)["document_id"] == doc1["document_id"]  # same bytes: same document

    # the association of the first document fails (Xero 500s past the client's retries)
    x.fake.faults.add("500", path="/Associations", count=4)
    lossy = LoseFirstUploadAnswer(x.t)
    s1 = D.push_documents(x.s, transport=lossy, clock=x.clock)
    assert (s1.pushed, s1.failed, s1.skipped) == (1, 1, 2), s1.messages
    docs = {d["document_id"]: d for d in D.list_documents(x.s)}
    assert docs[doc1["document_id"]]["status"] == "failed" and docs[doc1["document_id"]]["attempts"] == 1
    assert "500" in docs[doc1["document_id"]]["error"]
    assert docs[doc1["document_id"]]["xero_file_id"]  # uploaded; only the association is missing
    assert "not matched to a Xero contact" in docs[unmatched["document_id"]]["error"]
    assert lossy.lost == 1  # the lost answer was retried with the same Idempotency-Key

    s2 = D.push_documents(x.s, retry_failed=True, transport=x.t, clock=x.clock)
    assert (s2.pushed, s2.failed) == (1, 0)
    s3 = D.push_documents(x.s, document_id=doc1["document_id"], transport=x.t, clock=x.clock)
    assert s3.pushed == 0 and "already pushed" in s3.messages[0]

    with files_api(x) as api:
        folders = [f for f in api.request("GET", "/files.xro/1.0/Folders").json() if f["Name"] == D.FOLDER_NAME]
        assert len(folders) == 1
        files = api.request("GET", "/files.xro/1.0/Files", params={"pagesize": 100}).json()["Items"]
        ours = [f for f in files if f.get("FolderId") == folders[0]["Id"]]
        assert sorted(f["Name"] for f in ours) == ["Tax return 2026.pdf", "ledger.csv"]  # no duplicates
        for d in D.list_documents(x.s, status="pushed"):
            assoc = api.request("GET", f"/files.xro/1.0/Files/{d['xero_file_id']}/Associations").json()
            assert [(a["ObjectId"], a["ObjectGroup"]) for a in assoc] == [(contact_id, "Contact")]
    # a later push (another run) finds the folder by name instead of creating a second one
    D.add_document(x.s, client_id, b"%PDF-1.4 more", file_name="more.pdf")
    assert D.push_documents(x.s, transport=x.t, clock=x.clock).pushed == 1
    with files_api(x) as api:
        assert len([f for f in api.request("GET", "/files.xro/1.0/Folders").json() if f["Name"] == D.FOLDER_NAME]) == 1


# -- Practice Manager --------------------------------------------------------------------------


@pytest.mark.slow
def test_xpm_jobs_open_and_complete_campaigns(x):
    out = run(x)
    assert out["PRACTICEMANAGER"]["status"] == "success"
    practice = x.fake.practice(x.pm)
    states = X.known_states(x.s, x.pm)
    assert {"Waiting on Client", "Awaiting Client Info", "Planned"} <= set(states)
    assert X.campaigns(x.s, x.pm) == []  # chasing is off until enabled and mapped
    X.set_xpm_enabled(x.s, x.pm, True)
    X.set_mapping(x.s, x.pm, {"Waiting on Client", "Awaiting Client Info"})
    waiting = sorted(j.id for j in practice.jobs.values() if j.state in ("Waiting on Client", "Awaiting Client Info"))
    assert [p["job_id"] for p in X.preview_mapping(x.s, x.pm, X.get_mapping(x.s, x.pm))] == waiting
    run(x, x.pm)
    opened = X.campaigns(x.s, x.pm, "open")
    assert sorted(c["job_id"] for c in opened) == waiting
    # each campaign names its client, unless that XPM client awaits an admin's choice (listed, never guessed)
    pending = {k["contact_id"] for k in C.list_candidates(x.s) if k["tenant_id"] == x.pm}
    assert all(c["client_id"] or c["xpm_client_id"] in pending for c in opened)
    run(x, x.pm)  # nothing duplicated
    assert len(X.campaigns(x.s, x.pm)) == len(waiting)

    practice.set_state(waiting[0], "REVIEW")
    practice.set_state(waiting[1], "COMPLETED")
    planned = sorted(j.id for j in practice.jobs.values() if j.state == "Planned")[0]
    practice.set_state(planned, "WAITINGONCLIENT")
    run(x, x.pm)
    done = {c["job_id"]: c["completion_reason"] for c in X.campaigns(x.s, x.pm, "completed")}
    assert done == {waiting[0]: "job moved to Review", waiting[1]: "job moved to Completed"}
    assert sorted(c["job_id"] for c in X.campaigns(x.s, x.pm, "open")) == sorted(waiting[2:] + [planned])

    # XPM clients and Xero contacts for the same business meet on one client row
    live = {c.id for c in active_contacts(x)}  # (an archived twin is rightly passed over for its active one)
    truth = [c for c in practice.clients.values() if c.match_kind == "exact" and c.matched_contact_id in live]
    both = {r[0]: r[1] for r in q(x, "SELECT xpm_client_id, xero_contact_id FROM clients WHERE xpm_client_id IS NOT NULL")}
    assert truth and all(both.get(str(c.id)) == c.matched_contact_id for c in truth)


@pytest.mark.slow
def test_xpm_refused_on_plan_is_a_skip_with_a_note(make_settings):
    x = connected(make_settings, tier="core")
    out = run(x, x.pm)
    step = out["PRACTICEMANAGER"]["steps"][0]
    assert step["status"] == "skipped" and "tier" in step["error"].lower()
    (note, status), = q(x, "SELECT tier_note, status FROM connections WHERE tenant_id = ?", x.pm)
    assert "Advanced plan" in note and status == "connected"


# -- webhooks from the fake --------------------------------------------------------------------


@pytest.mark.slow
def test_fake_intent_to_receive_and_events_processed(x):
    run(x)
    org = x.fake.org(x.org)
    contact = active_contacts(x)[0]
    invoice = org.invoices[0]
    with serve(x.s, port=0, transport=x.t, clock=x.clock, worker_interval=0.05) as srv:
        itr = x.fake.intent_to_receive(srv.url, KEY)
        assert itr.passed, itr.public()
        x.clock.advance(30)
        org.update_contact(contact.id, x.clock.now(), Name="Renamed By Webhook Pty Ltd")
        delivered = x.fake.deliver_webhooks(srv.url, KEY)
        extra = x.fake.deliver_webhooks(srv.url, KEY, events=[(x.org, "INVOICE", "UPDATE", invoice.id),
                                                              ("7d3f0000-0000-0000-0000-00000000beef", "CONTACT",
                                                               "UPDATE", contact.id)])
        forged = x.fake.deliver_webhooks(srv.url, KEY, bad_signature=True)
        assert delivered.passed and extra.passed and forged.passed  # 200, 200 and 401, all empty
        for _ in range(50):  # each pass is signalled by the worker; no sleeping
            st = W.webhook_status(x.s)
            if st["spool_backlog"] == 0 and (st["events"] or {}).get("pending", 0) == 0 and st["events"]:
                break
            srv.worker.wait_pass(srv.worker.passes, timeout=5)
    events = {(e["event_category"], e["tenant_id"]): e for e in W.recent_events(x.s)}
    assert events[("CONTACT", x.org)]["status"] == "processed"
    assert events[("INVOICE", x.org)]["status"] == "processed"
    assert events[("CONTACT", "7d3f0000-0000-0000-0000-00000000beef")]["status"] == "ignored"
    assert q(x, "SELECT name FROM contacts WHERE contact_id = ?", contact.id)[0][0] == "Renamed By Webhook Pty Ltd"
    assert q(x, "SELECT count(*) FROM clients WHERE xero_contact_id = ? AND name = ?", contact.id,
             "Renamed By Webhook Pty Ltd")[0][0] == 1
    assert q(x, "SELECT count(*) FROM invoices WHERE invoice_id = ?", invoice.id)[0][0] == 1
    st = W.webhook_status(x.s)
    assert st["intent_to_receive_passed"] and st["last_verification_failure_at"] is not None
    served = [r for r in x.fake.requests if r.api == "accounting" and r.method == "GET"]
    assert any(contact.id in r.path for r in served)
