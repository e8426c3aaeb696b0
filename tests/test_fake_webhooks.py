"""Webhook deliveries and Intent to Receive from the fake, to a real loopback receiver."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from fake_support import make_fake
from xero_core.fake.webhooks import sign

KEY = "test-webhook-key-0123456789abcdef"


class Receiver:
    """A loopback receiver. mode: 'correct' verifies; 'always200' accepts everything; 'chatty' answers with a body."""

    def __init__(self, mode="correct"):
        self.mode, self.bodies, self.signatures = mode, [], []
        owner = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                sig = self.headers.get("x-xero-signature", "")
                owner.bodies.append(raw)
                owner.signatures.append(sig)
                good = hmac.compare_digest(
                    base64.b64encode(hmac.new(KEY.encode(), raw, hashlib.sha256).digest()).decode(), sig)
                status = 200 if owner.mode != "correct" or good else 401
                body = b"thanks" if owner.mode == "chatty" else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhooks/xero"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_signature_is_base64_hmac_sha256_of_raw_body():
    body = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"ABCDEFGHIJKLMNOPQRST"}'
    expected = base64.b64encode(hmac.new(b"k", body, hashlib.sha256).digest()).decode()
    assert sign("k", body) == expected


def test_org_changes_are_delivered_signed(receiver):
    fake = make_fake()
    org = fake.orgs[0]
    now = fake.clock.now()
    c = org.add_contact("New Client Pty Ltd", now, email="new@client.example")
    org.update_contact(c.id, now, EmailAddress="ap@client.example")
    res = fake.deliver_webhooks(receiver.url, KEY)
    assert res.passed and res.answers[0].status == 200
    raw = receiver.bodies[-1]
    assert sign(KEY, raw) == receiver.signatures[-1]
    payload = json.loads(raw)
    assert set(payload) == {"events", "firstEventSequence", "lastEventSequence", "entropy"}
    assert (payload["firstEventSequence"], payload["lastEventSequence"]) == (1, 2)
    assert [(e["eventCategory"], e["eventType"]) for e in payload["events"]] == [("CONTACT", "CREATE"),
                                                                              ("CONTACT", "UPDATE")]
    ev = payload["events"][0]
    assert ev["resourceId"] == c.id and ev["resourceUrl"].endswith(f"/api.xro/2.0/Contacts/{c.id}")
    assert ev["tenantId"] == org.tenant_id and ev["tenantType"] == "ORGANISATION"
    assert len(ev["eventDateUtc"]) == len("2024-06-21T01:15:39.902")
    assert fake.webhooks.pending == []
    # nothing pending: a sample covering CONTACT and INVOICE, CREATE and UPDATE
    sample = fake.deliver_webhooks(receiver.url, KEY)
    kinds = {(e["eventCategory"], e["eventType"]) for e in sample.payloads[0]["events"]}
    assert kinds == {("CONTACT", "CREATE"), ("CONTACT", "UPDATE"), ("INVOICE", "CREATE"), ("INVOICE", "UPDATE")}
    assert sample.payloads[0]["firstEventSequence"] == 3


def test_webhook_payload_fits_xeros_schema(receiver):
    import jsonschema
    import yaml

    from fake_support import SPEC_DIR

    spec = yaml.safe_load((SPEC_DIR / "xero-webhooks.yaml").read_text())
    schema = {**spec["components"]["schemas"]["WebhookEvent"], "components": spec["components"]}
    fake = make_fake()
    fake.deliver_webhooks(receiver.url, KEY)
    jsonschema.validate(json.loads(receiver.bodies[-1]), schema)


@pytest.mark.slow
def test_bad_signature_delivery_is_refused_by_a_correct_receiver(receiver):
    fake = make_fake()
    res = fake.deliver_webhooks(receiver.url, KEY, bad_signature=True)
    assert res.answers[0].status == 401 and res.answers[0].expected_status == 401 and res.passed


def test_intent_to_receive_passes_a_correct_receiver(receiver):
    fake = make_fake()
    res = fake.intent_to_receive(receiver.url, KEY)
    assert res.passed
    assert {a.signed_correctly for a in res.answers} == {True, False}
    for raw in receiver.bodies:
        p = json.loads(raw)
        assert p["events"] == [] and p["firstEventSequence"] == p["lastEventSequence"] == 0
        assert len(p["entropy"]) == 20 and p["entropy"].isupper()
    assert fake.webhooks.history[-1].kind == "intent"


@pytest.mark.parametrize("mode", ["always200", "chatty"])
def test_intent_to_receive_fails_sloppy_receivers(mode):
    r = Receiver(mode)
    try:
        res = make_fake().intent_to_receive(r.url, KEY)
    finally:
        r.close()
    assert not res.passed
    assert any(not a.ok for a in res.answers)


def test_unreachable_receiver_is_recorded_not_raised():
    res = make_fake().intent_to_receive("http://127.0.0.1:9/nothing-here", KEY)
    assert not res.passed and all(a.error for a in res.answers)


def test_admin_routes_deliver_and_check(receiver):
    fake = make_fake(webhook_url=receiver.url, webhook_key=KEY)
    with httpx.Client(transport=fake.transport()) as c:
        d = c.post("http://f/_fake/webhooks/deliver", json={})
        assert d.status_code == 200 and d.json()["passed"] is True
        itr = c.post("http://f/_fake/webhooks/intent-to-receive", json={})
        assert itr.json()["passed"] is True
        hist = c.get("http://f/_fake/webhooks").json()["history"]
        assert len(hist) == 1 + len(itr.json()["answers"])
        assert KEY not in json.dumps(d.json()) + json.dumps(hist)
    with pytest.raises(ValueError, match="webhook key"):
        make_fake().deliver_webhooks(receiver.url, None)


def test_workshop_contact_change_reaches_the_receiver(receiver):
    fake = make_fake(webhook_url=receiver.url, webhook_key=KEY)
    with httpx.Client(transport=fake.transport()) as c:
        made = c.post("http://f/_fake/contacts", json={"Name": "Workshop Client", "EmailAddress": "w@x.example"}).json()
        upd = c.post("http://f/_fake/contacts", json={"contact_id": made["ContactID"], "EmailAddress": "new@x.example",
                                                     "deliver": True}).json()
        assert upd["EmailAddress"] == "new@x.example" and upd["delivery"]["passed"] is True
        assert c.post("http://f/_fake/contacts", json={"contact_id": made["ContactID"], "Colour": "red"}).status_code == 400
    events = json.loads(receiver.bodies[-1])["events"]
    assert [(e["eventType"], e["resourceId"]) for e in events] == [("CREATE", made["ContactID"]),
                                                                   ("UPDATE", made["ContactID"])]
