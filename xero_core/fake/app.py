"""FakeXero: one host-agnostic `httpx.Request -> httpx.Response` handler for all of Xero.

Routes (the product's mock-mode settings put everything on one base URL):
  /identity/connect/authorize   consent page (GET) and its form (POST)
  /connect/token, /connect/revocation, /.well-known/openid-configuration
  /connections[/{id}]           the app's tenants (counts against the app's minute limit only)
  /api.xro/2.0/...              Accounting (fake/accounting.py, built alongside)
  /files.xro/1.0/...            Files (fake/files.py)
  /practicemanager/3.0/...      Practice Manager XML (fake/practice.py)
  /_fake/...                    admin for tests, workshops and the CLI (fake/admin.py)

A tenant-scoped call goes: faults -> bearer token (401) -> tenant connected (403) -> tier (401)
-> scopes (401) -> limits (429) -> the API. Every response carries Xero-Correlation-Id; every
admitted tenant-scoped response carries the three X-*Limit-Remaining headers.
"""
from __future__ import annotations

import logging
import re
from collections import Counter, deque
import threading
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence
from urllib.parse import parse_qsl

import httpx

from . import faults as faultsmod
from .clock import Clock, FakeClock
from .demo_app import DEMO_APP_NAME, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URIS
from .identity import App, Auth, Identity, TenantInfo, parse_form
from .limits import Limits
from .responses import HTML_CT, JSON_CT, Reply, json_reply, not_found, oauth_error, problem

if TYPE_CHECKING:
    from .practice import Practice
    from .webhooks import Result

log = logging.getLogger("xero_core.fake")

REQUEST_LOG_MAX = 1_000_000  # benchmarks slice the log; a demo never gets near it
TIERS = ("starter", "core", "plus", "advanced", "enterprise")
ADVANCED = TIERS.index("advanced")
# Xero removed these in April 2026: not served at all.
REMOVED_ENDPOINTS = ("employees", "expenseclaims", "receipts")
API_PREFIXES = {"/api.xro/2.0": "accounting", "/files.xro/1.0": "files", "/practicemanager/3.0": "practice"}
_ID_PREFIX = re.compile(rb'^\s*\{\s*"Id"\s*:\s*"([0-9a-fA-F-]{36})"')
_NS = uuid.UUID("6f1c7a52-3c39-4b8e-9b0e-2f0d7a1d5e11")


def tenant_uuid(seed: int, kind: str, index: int) -> str:
    """Deterministic tenant ids: same seed, same tenants (and the same URLs in saved state)."""
    return str(uuid.uuid5(_NS, f"fake-xero:{seed}:{kind}:{index}"))


@dataclass(slots=True)
class ServedRequest:
    at: datetime
    method: str
    path: str
    tenant_id: str | None
    status: int  # 0 = no answer (timeout fault)
    bytes: int
    client_id: str | None
    correlation_id: str
    api: str | None  # accounting | files | practice | connections | identity | None
    fault: str | None = None

    def public(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "method": self.method, "path": self.path, "tenant_id": self.tenant_id,
                "status": self.status, "bytes": self.bytes, "client_id": self.client_id,
                "correlation_id": self.correlation_id, "api": self.api, "fault": self.fault}


def _field(obj: object, name: str, default: Any = None) -> Any:
    """Read a field from a dict-like or attribute-style record (the ledger's Org is built alongside)."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    if hasattr(obj, name):
        return getattr(obj, name)
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return getattr(obj, snake, default)


def scopes_satisfied(required: list[frozenset[str]] | None, granted: frozenset[str]) -> bool:
    """`required` is any-of: a call passes if one alternative is fully granted. [] = no scope needed."""
    if not required:
        return True
    return any(alt <= granted for alt in required)


class FakeXero:
    """All of Xero as one handler; the interface is documented in docs/internals.md (Fake Xero)."""

    def __init__(self, seed: int = 42, today: date | None = None, clock: Clock | None = None, tier: str = "advanced",
                 legacy_scopes: bool = False, invoices: int | None = None, tenants: int = 1, practices: int = 1,
                 apps: Iterable[dict[str, Any]] | None = None, *, org_factory: Callable[..., Any] | None = None,
                 state_dir: str | Path | None = None, webhook_url: str | None = None, webhook_key: str | None = None,
                 timeout_hold: float = 30.0, story: bool = False) -> None:
        self.clock = clock if clock is not None else FakeClock(today)
        self.today = today or self.clock.now().date()
        self.seed, self.invoices, self.n_tenants, self.n_practices = seed, invoices, tenants, practices
        # The practice's story (the demo): its own ledger, its clients' organisations, its Practice Manager.
        self.story = story
        self.legacy_scopes = legacy_scopes
        self.set_tier(tier)
        self._initial_tier = self.tier
        self.timeout_hold = timeout_hold  # the loopback server holds a "timeout" this long (real seconds)
        self.webhook_url, self.webhook_key = webhook_url, webhook_key
        self._org_factory = org_factory
        self._lock = threading.RLock()
        self.identity = Identity(self.clock, self._tenant_infos)
        self.limits = Limits(self.clock)
        self.faults = faultsmod.Faults()
        # The log keeps the latest REQUEST_LOG_MAX entries; the API-call counters count everything.
        self._requests: deque[ServedRequest] = deque(maxlen=REQUEST_LOG_MAX)
        self._api_counts: Counter[str | None] = Counter()  # by tenant (None: /connections)
        self.on_request: list[Callable[[ServedRequest], None]] = []
        self.register_app(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URIS, legacy_scopes=legacy_scopes,
                          name=DEMO_APP_NAME)
        for a in apps or ():
            a = dict(a)
            self.register_app(a.pop("client_id"), a.pop("client_secret", None), a.pop("redirect_uris"),
                              legacy_scopes=a.pop("legacy_scopes", legacy_scopes), **a)
        # The app the CLI prints settings for: the last one given here, not one remembered in state.
        self._primary_client_id = list(self.identity.apps)[-1]
        self._build_tenants()
        self.state = None
        if state_dir is not None:
            from .state import StateStore

            self.state = StateStore(state_dir)
            self.state.restore(self)

    # ---- tenants ---------------------------------------------------------------------------------
    def _build_tenants(self) -> None:
        factory = self._org_factory
        if factory is None:
            from .ledger import generate_org

            factory = generate_org
        self._orgs: dict[str, Any] = {}  # ledger.Org, or what an org_factory makes
        from . import practice as P

        if self.story:
            # The firm's ledger (customers = its clients, a few invoices a month each), then the
            # organisations two of its clients connected, named as the firm knows them.
            from .ledger import generate_org

            tid = tenant_uuid(self.seed, "org", 0)
            self._orgs[tid] = generate_org(self.seed, self.today, invoices=self.invoices or 600, tenant_id=tid,
                                           name=P.STORY_FIRM, customers=P.STORY_CLIENTS)
            for i, (name, _mail) in enumerate(P.STORY_CLIENT_ORGS, start=1):
                tid = tenant_uuid(self.seed, "org", i)
                self._orgs[tid] = factory(self.seed + i, self.today, invoices=self.invoices or 2500, tenant_id=tid,
                                          name=name)
        else:
            for i in range(self.n_tenants):
                tid = tenant_uuid(self.seed, "org", i)
                org = factory(self.seed + i, self.today, invoices=self.invoices, tenant_id=tid)
                self._orgs[tid] = org

        orgs = list(self._orgs.values())
        self._practices: dict[str, Practice] = {}
        for i in range(self.n_practices):
            tid = tenant_uuid(self.seed, "practice", i)
            self._practices[tid] = P.Practice.generate(self.seed + i, self.today, tid,
                                                       orgs[i % len(orgs)] if orgs else None, index=i)
            if self.story and i == 0:
                self._practices[tid].tell_story(orgs[0], self.today)
        from .files import FilesStore
        from .webhooks import Webhooks

        self.files = {tid: FilesStore(tid, self.clock, self.seed) for tid in self._orgs}
        self.webhooks = Webhooks(self)
        for org in orgs:
            self.webhooks.watch(org)

    def _tenant_infos(self) -> list[TenantInfo]:
        out = [TenantInfo(tid, str(_field(o, "name")), "ORGANISATION") for tid, o in self._orgs.items()]
        out += [TenantInfo(tid, p.name, "PRACTICEMANAGER") for tid, p in self._practices.items()]
        return out

    @property
    def orgs(self) -> list[Any]:
        return list(self._orgs.values())

    @property
    def practices(self) -> list[Any]:
        return list(self._practices.values())

    def org(self, tenant_id: str | None = None) -> Any:
        """The organisation with this tenant id (default: the first)."""
        if tenant_id is None:
            return next(iter(self._orgs.values()))
        return self._orgs[tenant_id]

    def practice(self, tenant_id: str | None = None) -> Practice:
        if tenant_id is None:
            return next(iter(self._practices.values()))
        return self._practices[tenant_id]

    # ---- knobs -----------------------------------------------------------------------------------
    def register_app(self, client_id: str, client_secret: str | None, redirect_uris: Iterable[str],
                     legacy_scopes: bool = False, name: str = "Ledgerlink") -> App:
        return self.identity.register_app(client_id, client_secret, redirect_uris, legacy_scopes, name)

    def set_tier(self, tier: str) -> None:
        tier = str(tier).lower()
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}: use one of {', '.join(TIERS)}")
        self.tier = tier

    def revoke_connection(self, tenant_id: str) -> int:
        with self._lock:
            n = self.identity.revoke_connection(tenant_id)
        self._save()
        return n

    def expire_tokens(self) -> None:
        with self._lock:
            self.identity.expire_tokens()
        self._save()

    def settings_env(self, base_url: str, client_id: str | None = None) -> dict[str, str]:
        """XERO_* values that point the product at this fake (served at base_url)."""
        base = base_url.rstrip("/")
        app = self.identity.apps[client_id] if client_id else self.primary_app
        return {
            "XERO_AUTHORIZE_URL": base + "/identity/connect/authorize",
            "XERO_TOKEN_URL": base + "/connect/token",
            "XERO_REVOKE_URL": base + "/connect/revocation",
            "XERO_API_URL": base,
            "XERO_CLIENT_ID": app.client_id,
            "XERO_CLIENT_SECRET": app.client_secret or "",
        }

    @property
    def primary_app(self) -> App:
        """The app given to the constructor last (the CLI's --client-id), else the demo app."""
        return self.identity.apps[self._primary_client_id]

    @property
    def requests(self) -> list[ServedRequest]:
        with self._lock:
            return list(self._requests)

    def api_calls(self, tenant_id: str | None = None) -> int:
        """Calls that reached an API (not identity, not admin), as Xero would count them."""
        with self._lock:
            return sum(self._api_counts.values()) if tenant_id is None else self._api_counts[tenant_id]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()
            self._api_counts.clear()

    def reset(self) -> None:
        """Back to a fresh fake: no grants, tokens, connections, faults, counters, uploads or job moves."""
        with self._lock:
            apps = self.identity.apps
            self.identity = Identity(self.clock, self._tenant_infos)
            self.identity.apps = apps
            self.limits = Limits(self.clock)
            self.faults.clear()
            self._requests.clear()
            self._api_counts.clear()
            self.tier = self._initial_tier
            self._build_tenants()
        self._save()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def consent(self, authorize_url: str, allow: bool = True, tenant_ids: Iterable[str] | None = None) -> str:
        from .consent import drive_consent

        return drive_consent(self.handle, authorize_url, allow=allow, tenant_ids=tenant_ids)

    def deliver_webhooks(self, url: str | None = None, key: str | None = None, events: list[Any] | None = None,
                         **kw: Any) -> Result:
        return self.webhooks.deliver(url or self.webhook_url, key or self.webhook_key, events, **kw)

    def intent_to_receive(self, url: str | None = None, key: str | None = None, **kw: Any) -> Result:
        return self.webhooks.intent_to_receive(url or self.webhook_url, key or self.webhook_key, **kw)

    def _save(self) -> None:
        if self.state is not None:
            with self._lock:
                self.state.save(self)

    # ---- the handler -----------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        corr = str(uuid.uuid4())
        path = request.url.path
        api = self._api_of(path)
        tenant_id = request.headers.get("xero-tenant-id")
        rec = ServedRequest(self.clock.now(), request.method, path, tenant_id if api in API_PREFIXES.values() else None,
                            0, 0, None, corr, api)
        declared = None
        try:
            reply, corr, declared = self._serve(request, path, api, corr, rec)
        finally:
            if rec.status == 0 and rec.fault is None:
                rec.fault = "error"
            rec.correlation_id = corr
            if api != "admin":
                with self._lock:
                    self._requests.append(rec)
                    if api in ("accounting", "files", "practice", "connections"):
                        self._api_counts[rec.tenant_id] += 1
            for cb in list(self.on_request):
                try:
                    cb(rec)
                except Exception:  # a logging callback must never break serving
                    log.exception("request callback failed")
            log.debug("%s %s tenant=%s -> %s (%d bytes)", rec.method, rec.path, rec.tenant_id, rec.status, rec.bytes)
        headers = {"Xero-Correlation-Id": corr, "Server": "nginx",
                   "Cache-Control": "max-age=0, no-cache, no-store", "Pragma": "no-cache"}
        headers.update(reply.headers)
        resp = httpx.Response(reply.status, headers=headers, content=reply.body, request=request)
        if declared is not None:
            resp.extensions["fake_declared_length"] = declared
        if request.method != "GET" or api == "identity":  # GET authorize opens a pending consent
            self._save()
        return resp

    @staticmethod
    def _api_of(path: str) -> str | None:
        low = path.lower()
        for prefix, name in API_PREFIXES.items():
            if low.startswith(prefix.lower() + "/") or low == prefix.lower():
                return name
        if low == "/connections" or low.startswith("/connections/"):
            return "connections"
        if low.startswith("/_fake"):
            return "admin"
        if low.startswith("/identity/") or low.startswith("/connect/") or low.startswith("/.well-known/"):
            return "identity"
        return None

    def _serve(self, request: httpx.Request, path: str, api: str | None, corr: str,
               rec: ServedRequest) -> tuple[Reply, str, int | None]:
        if api == "admin":
            from .admin import handle_admin

            admin_reply = handle_admin(self, request, path)
            rec.status, rec.bytes = admin_reply.status, len(admin_reply.body)
            return admin_reply, corr, None
        is_api = api in ("accounting", "files", "practice", "connections")
        hits = self.faults.take(path, request.headers.get("xero-tenant-id"), api=is_api)
        post = None
        for f in hits:
            if f.kind == "timeout":
                rec.fault = "timeout"
                raise faultsmod.InjectedTimeout(f"fake Xero: injected timeout on {path}", request=request,
                                                fake_hold=f.seconds)
            if f.kind == "slow":
                rec.fault = "slow"
        slow = [f for f in hits if f.kind == "slow"]
        for f in hits:
            reply: Reply | None = None
            if f.kind == "429":
                h = {"Retry-After": str(int(f.seconds or 30)), "X-Rate-Limit-Problem": f.problem}
                exhausted = {"minute": "X-MinLimit-Remaining", "day": "X-DayLimit-Remaining",
                             "appminute": "X-AppMinLimit-Remaining"}.get(f.problem)
                if exhausted:  # the counter that tripped reads 0, as in Xero's captures
                    h[exhausted] = "0"
                reply = Reply(429, h, b"")
            elif f.kind == "500":
                reply = problem(500, "An unexpected error occurred", corr)
            elif f.kind == "503":
                reply = problem(503, "ServiceNotAvailable", corr)
            elif f.kind == "invalid_grant" and api == "identity":
                reply = oauth_error("invalid_grant")
            elif f.kind == "expired_token":
                with self._lock:
                    auth = request.headers.get("authorization", "")
                    self.identity.expire_tokens(auth[7:].strip() if auth.lower().startswith("bearer ") else None)
            elif f.kind == "revoked":
                with self._lock:
                    self.identity.revoke_connection(f.tenant_id or request.headers.get("xero-tenant-id", ""))
            elif f.kind in ("truncated", "malformed"):
                post = f.kind
            if reply is not None:
                rec.fault = f.kind
                rec.status, rec.bytes = reply.status, len(reply.body)
                return reply, corr, None
        try:
            reply = self._route(request, path, api, corr, rec, slow)
        except httpx.TimeoutException:
            raise
        except Exception as exc:  # a bug in the fake must look like Xero's 500, and be loud in the log
            log.exception("fake Xero failed serving %s %s", request.method, path)
            reply = problem(500, f"Fake Xero internal error: {type(exc).__name__}", corr)
        declared = None
        if post == "truncated" and reply.body:
            declared = len(reply.body)
            reply = Reply(reply.status, reply.headers, reply.body[: max(1, len(reply.body) // 2)])
        elif post == "malformed":
            reply = Reply(200, {**reply.headers, "Content-Type": JSON_CT},
                          b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>")
        if post:
            rec.fault = post
        # The accounting envelope's Id is the correlation id (xero-notes §2).
        m = _ID_PREFIX.match(reply.body[:80])
        if m:
            corr = m.group(1).decode()
        rec.status, rec.bytes = reply.status, len(reply.body)
        return reply, corr, declared

    def _delay(self, slow: Sequence[faultsmod.Fault]) -> None:
        """A slow answer: the time passes on the fake's clock (or until a test opens the gate)."""
        for f in slow:
            if f.gate is not None:
                f.gate.wait(f.seconds or 30.0)
            else:
                self.clock.sleep(f.seconds if f.seconds is not None else 10.0)

    def _route(self, request: httpx.Request, path: str, api: str | None, corr: str, rec: ServedRequest,
               slow: Sequence[faultsmod.Fault] = ()) -> Reply:
        method = request.method
        low = path.lower().rstrip("/")
        if api in ("accounting", "files", "practice"):
            return self._tenant_api(request, path, api, corr, rec, slow)
        self._delay(slow)
        if api == "identity":
            with self._lock:
                return self._identity(request, low)
        if api == "connections":
            return self._connections(request, path, corr, rec)
        if low == "" and method == "GET":
            return Reply(200, {"Content-Type": HTML_CT}, _INDEX.encode())
        return not_found()

    def _identity(self, request: httpx.Request, low: str) -> Reply:
        method = request.method
        if low in ("/identity/connect/authorize", "/connect/authorize"):
            if method == "GET":
                return self.identity.authorize_get(dict(parse_qsl(request.url.query.decode(), keep_blank_values=True)))
            if method == "POST":
                return self.identity.authorize_post(parse_form(request.content))
        elif low == "/connect/token" and method == "POST":
            form = {k: v[0] for k, v in parse_form(request.content).items()}
            return self.identity.token(request.headers.get("authorization"), form)
        elif low == "/connect/revocation" and method == "POST":
            form = {k: v[0] for k, v in parse_form(request.content).items()}
            return self.identity.revoke(request.headers.get("authorization"), form)
        elif low == "/.well-known/openid-configuration" and method == "GET":
            base = f"{request.url.scheme}://{request.url.netloc.decode()}"
            return json_reply(200, {
                "issuer": base, "authorization_endpoint": base + "/identity/connect/authorize",
                "token_endpoint": base + "/connect/token", "revocation_endpoint": base + "/connect/revocation",
                "response_types_supported": ["code"], "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            })
        return not_found()

    def _auth(self, request: httpx.Request, corr: str) -> Auth | Reply:
        with self._lock:
            auth = self.identity.authenticate(request.headers.get("authorization"))
        if isinstance(auth, str):
            return problem(401, auth, corr, www_authenticate="Bearer error=invalid_token")
        return auth

    def _connections(self, request: httpx.Request, path: str, corr: str, rec: ServedRequest) -> Reply:
        auth = self._auth(request, corr)
        if isinstance(auth, Reply):
            return auth
        rec.client_id = auth.client_id
        d = self.limits.admit_app(auth.client_id)
        if not d.ok:
            return Reply(429, d.headers, b"")
        parts = [p for p in path.split("/") if p]
        with self._lock:
            if len(parts) == 1 and request.method == "GET":
                reply = self.identity.list_connections(auth, request.url.params.get("authEventId"))
            elif len(parts) == 2 and request.method == "DELETE":
                reply = self.identity.delete_connection(auth, parts[1])
            else:
                reply = not_found()
        return Reply(reply.status, {**reply.headers, **d.headers}, reply.body)

    def _tenant_api(self, request: httpx.Request, path: str, api: str, corr: str, rec: ServedRequest,
                    slow: Sequence[faultsmod.Fault] = ()) -> Reply:
        auth = self._auth(request, corr)
        if isinstance(auth, Reply):
            return auth
        rec.client_id = auth.client_id
        tenant_id = request.headers.get("xero-tenant-id", "").strip().lower()
        target = self._practices.get(tenant_id) if api == "practice" else self._orgs.get(tenant_id)
        with self._lock:
            connected = self.identity.connection_for(auth.client_id, tenant_id) is not None
        if target is None or not connected:
            # A bad or missing tenant: 403, with only the app's header (xero-notes §2).
            r = problem(403, "AuthenticationUnsuccessful", corr)
            return Reply(403, {**r.headers, **self.limits.app_headers(auth.client_id)}, r.body)
        prefix_len = len(next(p for p, n in API_PREFIXES.items() if n == api))
        subpath = path[prefix_len:] or "/"
        first = subpath.strip("/").split("/")[0].lower()
        if TIERS.index(self.tier) < ADVANCED and (api == "practice" or (api == "accounting" and first == "journals")):
            return problem(401, "AuthorizationUnsuccessful", corr)
        required = self._required_scopes(api, request.method, subpath)
        if not scopes_satisfied(required, auth.scopes):
            return problem(401, "AuthorizationUnsuccessful", corr, www_authenticate='Bearer error="insufficient_scope"')
        d = self.limits.admit(auth.client_id, tenant_id)
        if not d.ok:
            return Reply(429, d.headers, b"")
        try:
            self._delay(slow)  # in flight while slow: this is what the concurrency limit counts
            if api == "accounting" and first in REMOVED_ENDPOINTS:
                reply = not_found()
            else:
                reply = self._dispatch(api, target, request, subpath, corr)
        finally:
            self.limits.release(auth.client_id, tenant_id)
        return Reply(reply.status, {**reply.headers, **d.headers}, reply.body)

    def _required_scopes(self, api: str, method: str, subpath: str) -> list[frozenset[str]]:
        read = method in ("GET", "HEAD")
        if api == "files":
            return [frozenset({"files"}), frozenset({"files.read"})] if read else [frozenset({"files"})]
        if api == "practice":
            if read:
                return [frozenset({s}) for s in ("practicemanager", "practicemanager.read", "practicemanager.job",
                                                 "practicemanager.job.read", "practicemanager.client",
                                                 "practicemanager.client.read")]
            return [frozenset({"practicemanager"}), frozenset({"practicemanager.job"})]
        try:
            from .accounting import required_scopes
        except ImportError:
            return []
        return required_scopes(method, subpath)

    def _app_name(self, request: httpx.Request) -> str:
        auth = self.identity.authenticate(request.headers.get("authorization"))
        return self.identity.apps[auth.client_id].name if not isinstance(auth, str) else "Ledgerlink"

    def _dispatch(self, api: str, target: Any, request: httpx.Request, subpath: str, corr: str) -> Reply:
        now = self.clock.now()
        if api == "files":
            from .files import handle_files

            with self._lock:
                return handle_files(self.files[target_id(target)], request.method, subpath, request.url.params,
                                    request.headers, request.content, now)
        if api == "practice":
            from .practice import handle_practice

            with self._lock:
                return handle_practice(target, request.method, subpath, request.url.params, request.content, now)
        from .accounting import handle_accounting

        headers = httpx.Headers(request.headers)
        headers["x-fake-correlation-id"] = corr  # the envelope Id and the header must agree
        headers["x-fake-provider-name"] = self._app_name(request)
        with self._lock:
            status, h, body = handle_accounting(target, request.method, subpath, request.url.params, headers,
                                                request.content, now)
        return Reply(status, dict(h or {}), body)


def target_id(org: object) -> str:
    return str(_field(org, "tenant_id"))


_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Fake Xero</title></head>
<body><main><h1>Fake Xero</h1>
<p>An offline model of Xero for Ledgerlink's mock mode, tests and workshops.</p>
<ul><li><a href="/_fake/health">status</a></li><li><a href="/_fake/requests">request log</a></li>
<li><a href="/_fake/faults">faults</a></li></ul></main></body></html>
"""
