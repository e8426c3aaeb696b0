"""Xero webhooks (xero-notes §6): signed event deliveries and the Intent to Receive check.

Signature: `x-xero-signature` = base64(HMAC-SHA256(webhook key, raw body)). A receiver passes
Intent to Receive when it answers 200 to every correctly signed POST and 401 to every wrongly
signed one, with an empty body, no cookies, within 5 seconds. Deliveries are real HTTP POSTs
(loopback in tests); every answer is recorded in `history`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import string
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from .app import FakeXero

RECEIVER_TIMEOUT = 5.0
RESOURCE_PATHS = {"CONTACT": "Contacts", "INVOICE": "Invoices", "CREDITNOTE": "CreditNotes"}


def sign(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def event_time(at: datetime | float) -> str:
    """`2024-06-21T01:15:39.902` (the spec's form: milliseconds, no zone)."""
    if isinstance(at, (int, float)):
        at = datetime.fromtimestamp(at, tz=timezone.utc)
    if at.tzinfo is not None:
        at = at.astimezone(timezone.utc)
    stamp: str = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}"
    return stamp


@dataclass
class Answer:
    kind: str  # event | intent
    signed_correctly: bool
    expected_status: int
    status: int | None
    body_empty: bool
    set_cookie: bool
    elapsed: float
    error: str | None = None
    events: int = 0

    @property
    def ok(self) -> bool:
        return (self.error is None and self.status == self.expected_status and self.body_empty
                and not self.set_cookie and self.elapsed <= RECEIVER_TIMEOUT)

    def public(self) -> dict[str, Any]:
        return {"kind": self.kind, "signed_correctly": self.signed_correctly, "expected_status": self.expected_status,
                "status": self.status, "body_empty": self.body_empty, "set_cookie": self.set_cookie,
                "elapsed": round(self.elapsed, 3), "error": self.error, "events": self.events, "ok": self.ok}


@dataclass
class Result:
    answers: list[Answer] = field(default_factory=list)
    payloads: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.answers) and all(a.ok for a in self.answers)

    def public(self) -> dict[str, Any]:
        return {"passed": self.passed, "answers": [a.public() for a in self.answers]}


class Webhooks:
    def __init__(self, fake: FakeXero) -> None:
        self.fake = fake
        self.pending: list[dict[str, Any]] = []
        self.history: list[Answer] = []
        self.sequence = 0
        self._lock = threading.Lock()

    def watch(self, org: object) -> None:
        listeners = getattr(org, "listeners", None)
        if listeners is None:
            return
        tenant_id = str(getattr(org, "tenant_id", ""))

        def on_change(category: str, event_type: str, resource_id: str, at: datetime | float | None = None,
                      _tenant: str = tenant_id) -> None:
            self.queue(_tenant, category, event_type, resource_id, at)

        listeners.append(on_change)

    def queue(self, tenant_id: str, category: str, event_type: str, resource_id: str, at: datetime | float | None = None) -> dict[str, Any]:
        ev = self.event(tenant_id, category, event_type, resource_id, at)
        with self._lock:
            self.pending.append(ev)
        return ev

    def event(self, tenant_id: str, category: str, event_type: str, resource_id: str, at: datetime | float | None = None) -> dict[str, Any]:
        category, event_type = category.upper(), event_type.upper()
        return {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/{RESOURCE_PATHS.get(category, category.title() + 's')}/{resource_id}",
            "resourceId": str(resource_id),
            "eventDateUtc": event_time(at if at is not None else self.fake.clock.now()),
            "eventType": event_type,
            "eventCategory": category,
            "tenantId": tenant_id,
            "tenantType": "ORGANISATION",
        }

    def sample_events(self) -> list[dict[str, Any]]:
        """CONTACT and INVOICE, CREATE and UPDATE, on real records of the first organisation."""
        org = self.fake.org()
        tid = str(getattr(org, "tenant_id", ""))
        contacts = _records(getattr(org, "contacts", []))
        invoices = _records(getattr(org, "invoices", []))
        cid = [_id(c, "ContactID") for c in contacts[:2]] or ["00000000-0000-0000-0000-000000000001"] * 2
        iid = [_id(i, "InvoiceID") for i in invoices[:2]] or ["00000000-0000-0000-0000-000000000002"] * 2
        return [self.event(tid, "CONTACT", "CREATE", cid[0]), self.event(tid, "CONTACT", "UPDATE", cid[-1]),
                self.event(tid, "INVOICE", "CREATE", iid[0]), self.event(tid, "INVOICE", "UPDATE", iid[-1])]

    def _entropy(self) -> str:
        rng = random.Random(self.fake.clock.time() + self.sequence)
        return "".join(rng.choice(string.ascii_uppercase) for _ in range(20))

    def _post(self, client: httpx.Client, url: str, key: str, payload: dict[str, Any], good: bool, kind: str) -> Answer:
        body = json.dumps(payload, separators=(",", ":")).encode()
        signature = sign(key if good else key + "-wrong", body)
        expected = 200 if good else 401
        try:
            r = client.post(url, content=body, headers={"Content-Type": "application/json",
                                                        "x-xero-signature": signature})
            ans = Answer(kind, good, expected, r.status_code, len(r.content) == 0, "set-cookie" in r.headers,
                         r.elapsed.total_seconds(), events=len(payload["events"]))
        except httpx.HTTPError as exc:
            ans = Answer(kind, good, expected, None, False, False, RECEIVER_TIMEOUT,
                         error=f"{type(exc).__name__}: {exc}", events=len(payload["events"]))
        with self._lock:
            self.history.append(ans)
        return ans

    def deliver(self, url: str | None, key: str | None, events: list[Any] | None = None, *, bad_signature: bool = False,
                transport: httpx.BaseTransport | None = None) -> Result:
        """POST one signed batch. events: None = everything queued by org changes (or, if
        nothing changed, a sample of CONTACT/INVOICE CREATE/UPDATE); else dicts or tuples
        (tenant_id, category, event_type, resource_id)."""
        if not url or not key:
            raise ValueError("webhook delivery needs a receiver URL and the webhook key "
                             "(fake-xero --webhook-url URL --webhook-key KEY, or pass them)")
        if events is None:
            with self._lock:
                events, self.pending = self.pending, []
            events = events or self.sample_events()
        else:
            events = [e if isinstance(e, dict) else self.event(*e) for e in events]
        with self._lock:
            first = self.sequence + 1
            self.sequence += len(events)
        payload = {"events": events, "firstEventSequence": first, "lastEventSequence": self.sequence,
                   "entropy": self._entropy()}
        with httpx.Client(timeout=RECEIVER_TIMEOUT, transport=transport) as client:
            ans = self._post(client, url, key, payload, not bad_signature, "event")
        return Result([ans], [payload])

    def intent_to_receive(self, url: str | None, key: str | None, *, attempts: int = 4,
                          transport: httpx.BaseTransport | None = None) -> Result:
        """Xero's check before it enables a webhook: empty-event POSTs, some signed wrongly."""
        if not url or not key:
            raise ValueError("Intent to Receive needs the receiver URL and the webhook key")
        # Always at least one of each, in an order a receiver cannot guess from position.
        goods = [True, False] + [bool(i % 2) for i in range(max(0, attempts - 2))]
        random.Random(self.fake.clock.time()).shuffle(goods)
        result = Result()
        with httpx.Client(timeout=RECEIVER_TIMEOUT, transport=transport) as client:
            for good in goods:
                payload = {"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": self._entropy()}
                result.payloads.append(payload)
                result.answers.append(self._post(client, url, key, payload, good, "intent"))
        return result


def _records(raw: Any) -> list[Any]:  # an org's records: a dict by id, or a list
    if isinstance(raw, dict):
        return list(raw.values())
    return list(raw or [])


def _id(rec: object, name: str) -> str:
    if isinstance(rec, dict):
        return str(rec.get(name) or rec.get("id"))
    return str(getattr(rec, name, None) or getattr(rec, "id", ""))
