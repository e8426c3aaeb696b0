"""A small fake of Xero's identity endpoints and /connections, for the core tests only.

(The full fake Xero lives in xero_core/fake/.) It checks what real Xero checks on these calls:
HTTP Basic client auth, PKCE S256 (challenge recomputed from the verifier), single-use codes,
refresh-token rotation with an optional grace period for the previous token, revocation, and
Bearer tokens on /connections. It counts refreshes and remembers every token it issued, so
tests can look for token text where it must not be.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from xero_core.settings import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET


class FakeClock:
    """Clock protocol: time moves only when a test (or a sleep) moves it."""

    def __init__(self, start: float = 1_790_000_000.0):
        self.t = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(seconds, 0)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, tz=timezone.utc)

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class TokenSet:
    user: str
    access: str
    refresh: str
    access_expires: float
    previous_refresh: str | None = None
    rotated_at: float = 0.0
    revoked: bool = False


@dataclass
class Tenant:
    tenant_id: str
    name: str
    type: str = "ORGANISATION"
    connection_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class IdentityFake:
    def __init__(self, clock: FakeClock | None = None, tenants: list[Tenant] | None = None,
                 grace_seconds: float = 0.0, client_id: str = DEMO_CLIENT_ID,
                 client_secret: str = DEMO_CLIENT_SECRET):
        self.clock = clock or FakeClock()
        self.client_id, self.client_secret = client_id, client_secret
        self.tenants = tenants if tenants is not None else [
            Tenant(str(uuid.uuid4()), "Demo Company (AU)"),
            Tenant(str(uuid.uuid4()), "Practice Manager", "PRACTICEMANAGER"),
        ]
        self.grace_seconds = grace_seconds
        self.lock = threading.Lock()
        self.codes: dict[str, dict] = {}
        self.sets: list[TokenSet] = []
        self.connected: dict[str, set[str]] = {}  # user -> tenant ids
        self.refresh_count = 0
        self.rejected_refreshes = 0
        self.revoked: list[str] = []
        self.deleted_connections: list[str] = []
        self.issued: list[str] = []  # every token text handed out
        self.token_requests: list[dict] = []
        self.api_handler: Callable[[httpx.Request], httpx.Response] | None = None
        self.fail_token_with: str | None = None

    # -- consent (what the browser would do) ----------------------------------------------
    def consent(self, authorize_url: str, allow: bool = True, error: str | None = None,
                user: str = "user-1", tenant_ids: list[str] | None = None) -> str:
        q = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        assert q["response_type"] == "code" and q["client_id"] == self.client_id
        assert q.get("code_challenge_method") == "S256" and len(q.get("code_challenge", "")) == 43
        assert "offline_access" in q["scope"].split()
        redirect, state = q["redirect_uri"], q["state"]
        if not allow or error:
            return redirect + "?" + urlencode({"error": error or "access_denied", "state": state})
        code = uuid.uuid4().hex
        chosen = tenant_ids or [t.tenant_id for t in self.tenants]
        with self.lock:
            self.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": redirect, "user": user,
                                "tenants": chosen, "expires": self.clock.time() + 300, "used": False}
        return redirect + "?" + urlencode({"code": code, "scope": q["scope"], "state": state,
                                           "session_state": uuid.uuid4().hex})

    # -- HTTP ---------------------------------------------------------------------------------
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self.lock:
            if request.method == "POST" and path == "/connect/token":
                return self._token(request)
            if request.method == "POST" and path == "/connect/revocation":
                return self._revoke(request)
            if path.lower() == "/connections" and request.method == "GET":
                return self._connections(request)
            if path.lower().startswith("/connections/") and request.method == "DELETE":
                return self._delete_connection(request, path.rsplit("/", 1)[1])
        if self.api_handler is not None:
            return self.api_handler(request)
        return httpx.Response(404, text="The resource you're looking for cannot be found")

    def _client_ok(self, request: httpx.Request) -> bool:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return False
        cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        return cid == self.client_id and secret == self.client_secret

    def _err(self, error: str, status: int = 400) -> httpx.Response:
        return httpx.Response(status, json={"error": error})

    def _issue(self, user: str) -> TokenSet:
        ts = TokenSet(user=user, access="fake-at-" + uuid.uuid4().hex + uuid.uuid4().hex,
                      refresh="fake-rt-" + uuid.uuid4().hex + uuid.uuid4().hex,
                      access_expires=self.clock.time() + 1800, rotated_at=self.clock.time())
        self.issued += [ts.access, ts.refresh]
        return ts

    def _token_body(self, ts: TokenSet) -> httpx.Response:
        return httpx.Response(200, json={"access_token": ts.access, "expires_in": 1800, "token_type": "Bearer",
                                         "refresh_token": ts.refresh, "scope": "offline_access accounting.settings.read"})

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.token_requests.append({k: v for k, v in form.items()})
        if not self._client_ok(request):
            return self._err("invalid_client")
        if self.fail_token_with:
            return self._err(self.fail_token_with)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            c = self.codes.get(form.get("code", ""))
            if not c or c["used"] or c["expires"] < self.clock.time():
                return self._err("invalid_grant")
            c["used"] = True
            if form.get("redirect_uri") != c["redirect_uri"]:
                return self._err("invalid_grant")
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge != c["challenge"]:
                return self._err("invalid_grant")
            ts = self._issue(c["user"])
            self.sets.append(ts)
            self.connected.setdefault(c["user"], set()).update(c["tenants"])
            return self._token_body(ts)
        if grant == "refresh_token":
            rt = form.get("refresh_token", "")
            for ts in self.sets:
                if ts.revoked:
                    continue
                in_grace = (self.grace_seconds > 0 and ts.previous_refresh == rt
                            and self.clock.time() - ts.rotated_at <= self.grace_seconds)
                if ts.refresh == rt or in_grace:
                    new = self._issue(ts.user)
                    ts.previous_refresh, ts.refresh, ts.access = ts.refresh, new.refresh, new.access
                    ts.access_expires, ts.rotated_at = new.access_expires, self.clock.time()
                    self.refresh_count += 1
                    return self._token_body(ts)
            self.rejected_refreshes += 1
            return self._err("invalid_grant")
        return self._err("unsupported_grant_type")

    def _revoke(self, request: httpx.Request) -> httpx.Response:
        if not self._client_ok(request):
            return self._err("invalid_client")
        token = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}.get("token", "")
        for ts in self.sets:
            if ts.refresh == token and not ts.revoked:
                ts.revoked = True
                self.revoked.append(token)
                self.connected.pop(ts.user, None)  # revoking kills the set's connections
        return httpx.Response(200)

    def user_for(self, request: httpx.Request) -> str | None:
        auth = request.headers.get("authorization", "")
        for ts in self.sets:
            if auth == f"Bearer {ts.access}" and not ts.revoked and ts.access_expires > self.clock.time():
                return ts.user
        return None

    def _connections(self, request: httpx.Request) -> httpx.Response:
        user = self.user_for(request)
        if user is None:
            return httpx.Response(401, json={"Title": "Unauthorized", "Status": 401, "Detail": "AuthenticationUnsuccessful"})
        out = [{"id": t.connection_id, "authEventId": str(uuid.uuid5(uuid.NAMESPACE_OID, user)),
                "tenantId": t.tenant_id, "tenantType": t.type, "tenantName": t.name,
                "createdDateUtc": "2026-11-20T01:02:03.1234567", "updatedDateUtc": "2026-11-20T01:02:03.1234567"}
               for t in self.tenants if t.tenant_id in self.connected.get(user, set())]
        return httpx.Response(200, json=out)

    def _delete_connection(self, request: httpx.Request, cid: str) -> httpx.Response:
        user = self.user_for(request)
        if user is None:
            return httpx.Response(401, json={"Title": "Unauthorized", "Status": 401, "Detail": "AuthenticationUnsuccessful"})
        for t in self.tenants:
            if t.connection_id == cid and t.tenant_id in self.connected.get(user, set()):
                self.connected[user].discard(t.tenant_id)
                self.deleted_connections.append(cid)
                return httpx.Response(204)
        return httpx.Response(404, text="The resource you're looking for cannot be found")


class LoopbackServer:
    """Serves an IdentityFake on 127.0.0.1 from a thread (for tests with several processes)."""

    def __init__(self, fake: IdentityFake):
        self.fake = fake
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                req = httpx.Request(self.command, f"http://127.0.0.1{self.path}",
                                    headers=dict(self.headers.items()), content=body)
                resp = outer.fake.handle(req)
                data = resp.read()
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fake_settings_env(base_url: str) -> dict[str, str]:
    """Settings overrides pointing every identity/API URL at `base_url`."""
    return {
        "XERO_AUTHORIZE_URL": base_url + "/identity/connect/authorize",
        "XERO_TOKEN_URL": base_url + "/connect/token",
        "XERO_REVOKE_URL": base_url + "/connect/revocation",
        "XERO_API_URL": base_url,
    }


def json_dumps(obj) -> str:
    return json.dumps(obj, default=str)
