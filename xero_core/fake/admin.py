"""`/_fake/*`: the fake's own admin routes (no auth: the fake only listens on loopback).

GET  /_fake/health                      tenants, tier, clock
POST /_fake/reset
GET|POST|DELETE /_fake/faults           POST {"kind":..,"path":..,"count":..} or {"spec":"503:count=2"}
GET  /_fake/clock; POST /_fake/clock/advance {"seconds": N}   (FakeClock only)
GET|POST /_fake/tier                    {"tier":"core"}
POST /_fake/webhooks/deliver            {"url","key","events"?,"bad_signature"?}
POST /_fake/webhooks/intent-to-receive  {"url","key"}
GET|DELETE /_fake/requests              the served-request log (?since=N)
POST /_fake/expire-tokens; POST /_fake/revoke-connection {"tenant_id"}
POST /_fake/practice/job-state          {"job_id","state","tenant_id"?}
POST /_fake/limits                      {"tenant_id","client_id"?,"day"?,"minute"?}
POST /_fake/apps/redirect-uri           {"redirect_uri","client_id"?}: register one more redirect URI
                                        (the demo app's by default), as the developer portal does
POST /_fake/contacts                    {"Name","EmailAddress"?} adds, {"contact_id", field: value} updates;
                                        "deliver": true also sends the webhook ("tenant_id"? for all)
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from .app import FakeXero

from .faults import parse_spec
from .responses import Reply, json_reply, not_found


def _bad(message: str) -> Reply:
    return json_reply(400, {"error": message})


def handle_admin(fake: FakeXero, request: httpx.Request, path: str) -> Reply:
    route = path.lower().rstrip("/")[len("/_fake"):] or "/"
    method = request.method
    try:
        data = json.loads(request.content or b"{}") if method in ("POST", "PUT") else {}
    except ValueError:
        return _bad("the body must be JSON")
    if not isinstance(data, dict):
        return _bad("the body must be a JSON object")
    try:
        return _route(fake, method, route, data, request)
    except (ValueError, KeyError, TypeError) as exc:
        return _bad(str(exc).strip('"'))


def _route(fake: FakeXero, method: str, route: str, data: dict[str, Any], request: httpx.Request) -> Reply:
    if route in ("/", "/health") and method == "GET":
        return json_reply(200, {
            "ok": True, "seed": fake.seed, "tier": fake.tier, "now": fake.clock.now().isoformat(),
            "tenants": [{"tenantId": t.tenant_id, "tenantName": t.name, "tenantType": t.tenant_type}
                        for t in fake._tenant_infos()],
            "apps": [a.client_id for a in fake.identity.apps.values()],
        })
    if route == "/reset" and method == "POST":
        fake.reset()
        return json_reply(200, {"ok": True})
    if route == "/faults":
        if method == "GET":
            return json_reply(200, [f.public() for f in fake.faults.list()])
        if method == "POST":
            spec = parse_spec(data["spec"]) if "spec" in data else dict(data)
            f = fake.faults.add(**spec)
            return json_reply(200, f.public())
        if method == "DELETE":
            fake.faults.clear()
            return json_reply(200, {"ok": True})
    if route == "/clock" and method == "GET":
        return json_reply(200, {"now": fake.clock.now().isoformat(), "time": fake.clock.time()})
    if route == "/clock/advance" and method == "POST":
        if not hasattr(fake.clock, "advance"):
            return _bad("this fake runs on the system clock; start it with --today to get a movable clock")
        now = fake.clock.advance(float(data.get("seconds", 0)))
        return json_reply(200, {"now": now.isoformat()})
    if route == "/apps/redirect-uri" and method == "POST":
        # The developer portal's "add a redirect URI" (the demo app's, unless client_id says which).
        app = fake.identity.apps.get(data["client_id"]) if data.get("client_id") else fake.primary_app
        if app is None:
            return _bad(f"unknown client_id {data['client_id']!r}")
        uri = str(data["redirect_uri"])
        if uri not in app.redirect_uris:
            fake.register_app(app.client_id, app.client_secret, app.redirect_uris + [uri], app.legacy_scopes, app.name)
        return json_reply(200, {"client_id": app.client_id, "redirect_uris": fake.identity.apps[app.client_id].redirect_uris})
    if route == "/tier":
        if method == "POST":
            fake.set_tier(data["tier"])
        return json_reply(200, {"tier": fake.tier})
    if route == "/webhooks/deliver" and method == "POST":
        res = fake.deliver_webhooks(data.get("url"), data.get("key"), data.get("events"),
                                    bad_signature=bool(data.get("bad_signature")))
        return json_reply(200, {**res.public(), "payloads": res.payloads})
    if route == "/webhooks/intent-to-receive" and method == "POST":
        return json_reply(200, fake.intent_to_receive(data.get("url"), data.get("key")).public())
    if route == "/webhooks" and method == "GET":
        return json_reply(200, {"pending": fake.webhooks.pending, "history": [a.public() for a in fake.webhooks.history]})
    if route == "/requests":
        if method == "GET":
            since = int(request.url.params.get("since") or 0)
            rows = fake.requests
            return json_reply(200, {"count": len(rows), "requests": [r.public() for r in rows[since:]]})
        if method == "DELETE":
            fake.clear_requests()
            return json_reply(200, {"ok": True})
    if route == "/expire-tokens" and method == "POST":
        fake.expire_tokens()
        return json_reply(200, {"ok": True})
    if route == "/revoke-connection" and method == "POST":
        return json_reply(200, {"removed": fake.revoke_connection(data["tenant_id"])})
    if route == "/practice/job-state" and method == "POST":
        p = fake.practice(data.get("tenant_id"))
        with fake._lock:
            job = p.set_state(data["job_id"], data["state"], fake.clock.now().date())
        return json_reply(200, {"job_id": job.id, "state": job.state})
    if route == "/contacts" and method == "POST":
        # Workshops: change an organisation the way a Xero user would, so webhooks have news.
        org = fake.org(data.get("tenant_id"))
        now = fake.clock.now()
        with fake._lock:
            if data.get("contact_id"):
                fields = {k: v for k, v in data.items() if k not in ("tenant_id", "contact_id", "deliver")}
                c = org.update_contact(data["contact_id"], now, **fields)
            else:
                c = org.add_contact(data["Name"], now, email=data.get("EmailAddress", ""))
        out = {"ContactID": c.id, "Name": c.name, "EmailAddress": c.email}
        if data.get("deliver"):
            out["delivery"] = fake.deliver_webhooks().public()
        return json_reply(200, out)
    if route == "/limits" and method == "POST":
        client_id = data.get("client_id") or fake.primary_app.client_id
        fake.limits.set_used(client_id, data["tenant_id"], day=data.get("day"), minute=data.get("minute"))
        return json_reply(200, fake.limits.used(client_id, data["tenant_id"]))
    return not_found()
