"""Xero's identity service, modelled: apps, consent, codes, tokens, rotation, connections.

Facts followed (xero-notes §1): codes are single-use and live 5 minutes; PKCE is S256 only;
access tokens live 30 minutes (`expires_in` 1800); refresh tokens rotate, the previous one still
works for 30 minutes (answering with the newest), and an unused refresh token dies after 60 days.
Apps are granular-only unless registered with legacy scopes. Client authentication is accepted
as HTTP Basic or as form fields. Everything here is pure state + inputs -> `Reply`; `app.py`
does the HTTP.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html as htmlmod
import json
import secrets
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit, parse_qsl

from .clock import Clock
from .responses import Reply, html, json_reply, not_found, oauth_error, redirect

CODE_LIFETIME = 300
ACCESS_LIFETIME = 1800
REFRESH_GRACE = 1800
REFRESH_IDLE_EXPIRY = 60 * 86400
PENDING_CONSENT_LIFETIME = 3600

ISSUER = "https://identity.xero.com"

# Broad scopes an app created on/after 2 March 2026 may not ask for (xero-notes §1).
BROAD_ONLY = frozenset({"accounting.transactions", "accounting.transactions.read", "accounting.reports.read"})
PRACTICE_SCOPES = frozenset({
    "practicemanager", "practicemanager.read",
    *(f"practicemanager.{x}{ro}" for x in ("client", "job", "staff", "time") for ro in ("", ".read")),
})
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
_RW = ("settings", "contacts", "attachments", "invoices", "payments", "banktransactions", "manualjournals",
       "classicexpenses", "transactions")
KNOWN_SCOPES = frozenset({
    *OIDC_SCOPES, *PRACTICE_SCOPES,
    *(f"accounting.{x}{ro}" for x in _RW for ro in ("", ".read")),
    "accounting.journals.read", "accounting.budgets.read", "accounting.reports.read",
    *(f"accounting.reports.{r}.read" for r in ("aged", "balancesheet", "banksummary", "budgetsummary",
                                                "executivesummary", "profitandloss", "trialbalance",
                                                "taxreports", "tenninetynine")),
    "files", "files.read", "assets", "assets.read", "projects", "projects.read", "paymentservices", "bankfeeds",
    "marketplace.billing",
    *(f"payroll.{x}{ro}" for x in ("employees", "payruns", "payslip", "timesheets", "settings") for ro in ("", ".read")),
})

SCOPE_LABELS = {
    "offline_access": "Stay connected when you are not using the app",
    "openid": "Know who you are", "profile": "See your name", "email": "See your email address",
    "files": "View and upload files", "files.read": "View your files",
    "practicemanager": "View and update your Practice Manager jobs and clients",
    "practicemanager.read": "View your Practice Manager jobs and clients",
    "accounting.journals.read": "View your journals",
    "accounting.settings.read": "View your organisation details, chart of accounts and tax rates",
    "accounting.settings": "View and update your organisation details, chart of accounts and tax rates",
    "accounting.transactions.read": "View your invoices, credit notes, payments and bank transactions",
    "accounting.transactions": "View and update your invoices, credit notes, payments and bank transactions",
    "accounting.reports.read": "View your reports",
    "accounting.budgets.read": "View your budgets",
}
_THINGS = {"contacts": "contacts", "attachments": "attachments", "invoices": "invoices and credit notes",
           "payments": "payments", "banktransactions": "bank transactions", "manualjournals": "manual journals",
           "classicexpenses": "expense claims", "employees": "employees", "payruns": "pay runs",
           "payslip": "payslips", "timesheets": "timesheets", "client": "clients", "job": "jobs",
           "staff": "staff", "time": "time entries", "assets": "fixed assets", "projects": "projects"}
_REPORTS = {"aged": "aged receivables and payables", "balancesheet": "balance sheet", "banksummary": "bank summary",
            "budgetsummary": "budget summary", "executivesummary": "executive summary",
            "profitandloss": "profit and loss", "trialbalance": "trial balance", "taxreports": "tax reports",
            "tenninetynine": "1099"}


def scope_label(scope: str) -> str:
    """What a scope lets the app do, in the consent page's words."""
    if scope in SCOPE_LABELS:
        return SCOPE_LABELS[scope]
    parts = scope.split(".")
    read = parts[-1] == "read"
    core = [p for p in parts if p != "read"]
    if core[:2] == ["accounting", "reports"] and len(core) == 3:
        return f"View your {_REPORTS.get(core[2], core[2])} report"
    thing = _THINGS.get(core[-1], core[-1].replace("_", " "))
    if core[0] == "payroll":
        thing = f"payroll {thing}"
    elif core[0] == "practicemanager":
        thing = f"Practice Manager {thing}"
    return f"View your {thing}" if read else f"View and update your {thing}"


# The admin app's look (Streamlit's light theme, .streamlit/config.toml's primary colour), so the
# consent step does not feel like another product in a workshop.
CONSENT_CSS = """
body { margin: 0; background: #f0f2f6; color: #31333f;
       font-family: "Source Sans Pro", "Source Sans 3", system-ui, -apple-system, "Segoe UI", sans-serif; }
main { max-width: 40rem; margin: 3rem auto; padding: 2rem 2.5rem; background: #fff;
       border: 1px solid rgba(49, 51, 63, 0.2); border-radius: 0.5rem; }
h1 { font-size: 1.75rem; font-weight: 700; margin: 0.25rem 0 0.5rem; }
h2 { font-size: 1.1rem; font-weight: 600; margin: 1.5rem 0 0.5rem; }
.badge { display: inline-block; margin: 0; padding: 0.1rem 0.6rem; border-radius: 0.5rem;
         background: #fffce7; color: #926c05; font-size: 0.85rem; }
ul.scopes { padding-left: 1.2rem; line-height: 1.7; }
ul.scopes code { margin-left: 0.4rem; padding: 0.05rem 0.3rem; border-radius: 0.25rem; background: #f0f2f6;
                 color: #6b6f7b; font-size: 0.8rem; }
fieldset { margin: 1.5rem 0; padding: 0.75rem 1rem; border: 1px solid rgba(49, 51, 63, 0.2); border-radius: 0.5rem; }
legend { padding: 0 0.3rem; font-weight: 600; }
.tenant { padding: 0.25rem 0; }
.kind { margin-left: 0.3rem; color: #6b6f7b; font-size: 0.85rem; }
input[type=checkbox] { accent-color: #13b5ea; }
.actions { display: flex; gap: 0.75rem; }
button { font: inherit; padding: 0.4rem 1rem; border-radius: 0.5rem; border: 1px solid rgba(49, 51, 63, 0.2);
         background: #fff; color: #31333f; cursor: pointer; }
button.primary { background: #13b5ea; border-color: #13b5ea; color: #fff; }
button:hover { border-color: #13b5ea; }
.error { padding: 0.75rem 1rem; border-radius: 0.5rem; background: #ffecec; color: #7d353b; }
"""

DEMO_USER = {
    "xero_userid": "8b1a2c5d-6e7f-4a0b-9c1d-2e3f4a5b6c7d",
    "given_name": "Demo", "family_name": "User", "email": "demo.user@ledgerlink.example",
}


@dataclass(frozen=True)
class TenantInfo:
    tenant_id: str
    name: str
    tenant_type: str  # ORGANISATION | PRACTICEMANAGER


@dataclass
class App:
    client_id: str
    client_secret: str | None
    redirect_uris: list[str]
    legacy_scopes: bool = False
    name: str = "Ledgerlink"


@dataclass
class Grant:
    id: str
    client_id: str
    scopes: list[str]
    auth_event_id: str
    created: float
    revoked: bool = False


@dataclass
class AccessToken:
    grant_id: str
    issued: float
    expires: float


@dataclass
class RefreshToken:
    grant_id: str
    issued: float
    successor: str | None = None
    superseded_at: float | None = None


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    scopes: list[str]
    challenge: str | None
    expires: float
    nonce: str | None
    auth_event_id: str
    used: bool = False


@dataclass
class Connection:
    id: str
    client_id: str
    tenant_id: str
    tenant_type: str
    tenant_name: str
    auth_event_id: str
    created: float
    updated: float


@dataclass
class Pending:
    params: dict[str, Any]
    expires: float


@dataclass
class Auth:
    """Who is calling the API: the result of a good bearer token."""
    grant: Grant
    token: str
    expires: float

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.grant.scopes)

    @property
    def client_id(self) -> str:
        return self.grant.client_id


def xero_timestamp(t: float) -> str:
    """Connections/Files style: 7 fractional digits, no zone (`2019-12-07T18:46:19.5165400`)."""
    dt = datetime.fromtimestamp(t, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{dt.microsecond:06d}0"


def pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(authorization[6:].strip()).decode()
        cid, _, secret = raw.partition(":")
        return cid, secret
    except Exception:
        return ("", "")


class Identity:
    def __init__(self, clock: Clock, tenants: Callable[[], list[TenantInfo]]) -> None:
        self.clock = clock
        self.tenants = tenants
        self.apps: dict[str, App] = {}
        self.grants: dict[str, Grant] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}
        self.codes: dict[str, Code] = {}
        self.connections: dict[str, Connection] = {}
        self.pending: dict[str, Pending] = {}
        self.signing_key = secrets.token_bytes(32)

    # ---- apps -----------------------------------------------------------------------------
    def register_app(self, client_id: str, client_secret: str | None, redirect_uris: Iterable[str],
                     legacy_scopes: bool = False, name: str = "Ledgerlink") -> App:
        uris = list(redirect_uris)
        for u in uris:
            # Xero's rules for redirect URIs (xero-notes §1): https, http only for localhost, no wildcards.
            local = urlsplit(u).hostname in ("localhost", "127.0.0.1", "::1")
            if "*" in u or not (u.startswith("https://") or (u.startswith("http://") and local)):
                raise ValueError(f"redirect URI {u!r} would be refused by Xero: use https (http only for "
                                 f"localhost), no wildcards, no custom schemes")
        app = App(client_id, client_secret, uris, legacy_scopes, name)
        self.apps[client_id] = app
        return app

    # ---- authorize (the consent page) -------------------------------------------------------
    def authorize_get(self, query: dict[str, str]) -> Reply:
        client_id = query.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None:
            return _error_page(400, "unauthorized_client",
                               f"Unknown client_id {client_id!r}: this app is not registered with Xero.")
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            return _error_page(400, "invalid_request",
                               f"redirect_uri {redirect_uri!r} is not registered for this app (registered: "
                               f"{', '.join(app.redirect_uris)}). Set XERO_REDIRECT_URI to one of them, or start "
                               f"the fake with --redirect-uri {redirect_uri}.")
        state = query.get("state")
        if query.get("response_type") != "code":
            return redirect(_with_params(redirect_uri, error="unsupported_response_type", state=state))
        scopes = query.get("scope", "").split()
        bad = [s for s in scopes if s not in KNOWN_SCOPES or (s in BROAD_ONLY and not app.legacy_scopes)]
        if not scopes or bad:
            # Xero gives no hint which scope was refused (xero-notes §1).
            return redirect(_with_params(redirect_uri, error="invalid_scope", state=state))
        challenge = query.get("code_challenge")
        method = query.get("code_challenge_method")
        if (challenge or method) and (method != "S256" or not challenge):
            return redirect(_with_params(redirect_uri, error="invalid_request", state=state,
                                         error_description="PKCE requires code_challenge with code_challenge_method=S256"))
        now = self.clock.time()
        self._sweep(now)
        consent_id = secrets.token_urlsafe(18)
        self.pending[consent_id] = Pending(
            {"client_id": client_id, "redirect_uri": redirect_uri, "scopes": scopes, "state": state,
             "challenge": challenge, "nonce": query.get("nonce")},
            now + PENDING_CONSENT_LIFETIME,
        )
        return html(200, self._consent_html(consent_id, app, scopes))

    def offered_tenants(self, scopes: Iterable[str]) -> list[TenantInfo]:
        scopes = set(scopes)
        wants_practice = bool(scopes & PRACTICE_SCOPES)
        wants_org = bool(scopes - PRACTICE_SCOPES - OIDC_SCOPES) or not wants_practice
        return [t for t in self.tenants()
                if (t.tenant_type == "PRACTICEMANAGER" and wants_practice)
                or (t.tenant_type != "PRACTICEMANAGER" and wants_org)]

    def _consent_html(self, consent_id: str, app: App, scopes: list[str], message: str = "") -> str:
        e = htmlmod.escape
        # Each scope once (a client may repeat one), with what it allows; the name itself small beside it.
        items = "\n".join(f'      <li>{e(scope_label(s))} <code>{e(s)}</code></li>' for s in dict.fromkeys(scopes))
        boxes = []
        for i, t in enumerate(self.offered_tenants(scopes)):
            kind = "Practice Manager" if t.tenant_type == "PRACTICEMANAGER" else "Organisation"
            boxes.append(
                f'      <div class="tenant"><input type="checkbox" id="tenant-{i}" name="tenant" value="{e(t.tenant_id)}" checked>\n'
                f'      <label for="tenant-{i}">{e(t.name)} <span class="kind">{kind}</span></label></div>'
            )
        alert = f'    <p role="alert" class="error">{e(message)}</p>\n' if message else ""
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Xero (fake) | Allow access to {e(app.name)}</title>
  <style>{CONSENT_CSS}</style>
</head>
<body>
  <main>
    <p class="badge">Offline fake Xero</p>
    <h1>{e(app.name)} wants to access your Xero data</h1>
    <p>Choose the organisations to connect, then allow or deny access.</p>
{alert}    <h2>{e(app.name)} will be able to</h2>
    <ul class="scopes">
{items}
    </ul>
    <form method="post" action="/identity/connect/authorize">
      <input type="hidden" name="consent_id" value="{e(consent_id)}">
      <fieldset>
        <legend>Organisations to connect</legend>
{chr(10).join(boxes)}
      </fieldset>
      <div class="actions">
      <button type="submit" name="action" value="allow" class="primary">Allow access</button>
      <button type="submit" name="action" value="deny">Deny</button>
      </div>
    </form>
  </main>
</body>
</html>
"""

    def authorize_post(self, form: dict[str, list[str]]) -> Reply:
        now = self.clock.time()
        consent_id = (form.get("consent_id") or [""])[0]
        pending = self.pending.get(consent_id)
        if pending is None or pending.expires < now:
            return _error_page(400, "invalid_request",
                               "This consent page has expired. Go back to the app and click Connect again.")
        p = pending.params
        action = (form.get("action") or [""])[0]
        if action != "allow":
            del self.pending[consent_id]
            return redirect(_with_params(p["redirect_uri"], error="access_denied", state=p["state"]))
        offered = {t.tenant_id: t for t in self.offered_tenants(p["scopes"])}
        chosen = [tid for tid in form.get("tenant", []) if tid in offered]
        if not chosen:
            app = self.apps[p["client_id"]]
            return html(400, self._consent_html(consent_id, app, p["scopes"],
                                                "Choose at least one organisation to connect, or click Deny."))
        del self.pending[consent_id]
        auth_event_id = str(uuid.uuid4())
        for tid in chosen:
            self._connect(p["client_id"], offered[tid], auth_event_id, now)
        code = secrets.token_urlsafe(32)
        self.codes[code] = Code(p["client_id"], p["redirect_uri"], p["scopes"], p["challenge"],
                                now + CODE_LIFETIME, p["nonce"], auth_event_id)
        return redirect(_with_params(p["redirect_uri"], code=code, scope=" ".join(p["scopes"]), state=p["state"],
                                     session_state=secrets.token_urlsafe(16)))

    def _connect(self, client_id: str, t: TenantInfo, auth_event_id: str, now: float) -> None:
        for c in self.connections.values():
            if c.client_id == client_id and c.tenant_id == t.tenant_id:
                c.updated, c.auth_event_id, c.tenant_name = now, auth_event_id, t.name
                return
        cid = str(uuid.uuid4())
        self.connections[cid] = Connection(cid, client_id, t.tenant_id, t.tenant_type, t.name, auth_event_id, now, now)

    # ---- token endpoint -----------------------------------------------------------------------
    def _client(self, authorization: str | None, form: dict[str, str]) -> App | Reply:
        creds: tuple[str, str | None] | None = basic_credentials(authorization)
        if creds is None:
            creds = (form.get("client_id", ""), form.get("client_secret"))
        cid, secret = creds
        app = self.apps.get(cid)
        if app is None:
            return oauth_error("invalid_client")
        if app.client_secret is None:  # a PKCE app: no secret, the verifier proves possession
            return app
        if secret is None or not hmac.compare_digest(secret.encode(), app.client_secret.encode()):
            return oauth_error("invalid_client")
        return app

    def token(self, authorization: str | None, form: dict[str, str]) -> Reply:
        app = self._client(authorization, form)
        if isinstance(app, Reply):
            return app
        grant_type = form.get("grant_type", "")
        now = self.clock.time()
        if grant_type == "authorization_code":
            return self._exchange_code(app, form, now)
        if grant_type == "refresh_token":
            return self._refresh(app, form, now)
        return oauth_error("unsupported_grant_type")

    def _exchange_code(self, app: App, form: dict[str, str], now: float) -> Reply:
        code = self.codes.get(form.get("code", ""))
        if code is None or code.used or code.expires < now or code.client_id != app.client_id:
            return oauth_error("invalid_grant")
        if form.get("redirect_uri") != code.redirect_uri:
            return oauth_error("invalid_grant")
        verifier = form.get("code_verifier")
        if code.challenge is not None:
            if not verifier or not hmac.compare_digest(pkce_challenge(verifier), code.challenge):
                code.used = True  # a failed verifier burns the code, as it would a stolen one
                return oauth_error("invalid_grant")
        elif app.client_secret is None:
            return oauth_error("invalid_grant")
        code.used = True
        scopes = list(code.scopes)
        # Scopes are additive across consents (xero-notes §1).
        for g in self.grants.values():
            if g.client_id == app.client_id and not g.revoked:
                scopes += [s for s in g.scopes if s not in scopes]
        grant = Grant(str(uuid.uuid4()), app.client_id, scopes, code.auth_event_id, now)
        self.grants[grant.id] = grant
        return self._token_set(grant, now, nonce=code.nonce)

    def _refresh(self, app: App, form: dict[str, str], now: float) -> Reply:
        token = form.get("refresh_token", "")
        rt = self.refresh.get(token)
        grant = self.grants.get(rt.grant_id) if rt else None
        if rt is None or grant is None or grant.revoked or grant.client_id != app.client_id:
            return oauth_error("invalid_grant")
        if now - rt.issued > REFRESH_IDLE_EXPIRY:
            return oauth_error("invalid_grant")
        if rt.successor is None:
            new = self._new_refresh(grant, now)
            rt.successor, rt.superseded_at = new, now
            return self._token_set(grant, now, refresh_token=new)
        if now - (rt.superseded_at or 0) > REFRESH_GRACE:
            return oauth_error("invalid_grant")
        # Within the grace period: a valid set again, carrying the newest refresh token.
        head, nxt = rt.successor, self.refresh[rt.successor].successor
        while nxt is not None:
            head, nxt = nxt, self.refresh[nxt].successor
        return self._token_set(grant, now, refresh_token=head)

    def _new_refresh(self, grant: Grant, now: float) -> str:
        token = secrets.token_urlsafe(32)
        self.refresh[token] = RefreshToken(grant.id, now)
        return token

    def _jwt(self, claims: dict[str, Any]) -> str:
        header = {"alg": "HS256", "kid": "fake-xero", "typ": "JWT"}
        signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        sig = hmac.new(self.signing_key, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + _b64(sig)

    def _token_set(self, grant: Grant, now: float, *, refresh_token: str | None = None, nonce: str | None = None) -> Reply:
        exp = int(now) + ACCESS_LIFETIME
        access = self._jwt({
            "nbf": int(now), "exp": exp, "iss": ISSUER, "aud": f"{ISSUER}/resources", "client_id": grant.client_id,
            "sub": DEMO_USER["xero_userid"], "auth_time": int(grant.created), "xero_userid": DEMO_USER["xero_userid"],
            "global_session_id": grant.id, "jti": secrets.token_hex(16),
            "authentication_event_id": grant.auth_event_id, "scope": grant.scopes,
        })
        self.access[access] = AccessToken(grant.id, now, float(exp))
        body = {"access_token": access, "expires_in": ACCESS_LIFETIME, "token_type": "Bearer"}
        if "openid" in grant.scopes:
            claims = {"nbf": int(now), "exp": int(now) + 300, "iss": ISSUER, "aud": grant.client_id, "iat": int(now),
                      "auth_time": int(grant.created), "sub": DEMO_USER["xero_userid"], **DEMO_USER,
                      "preferred_username": DEMO_USER["email"], "global_session_id": grant.id}
            if nonce:
                claims["nonce"] = nonce
            body = {"id_token": self._jwt(claims), **body}
        if "offline_access" in grant.scopes:
            body["refresh_token"] = refresh_token or self._new_refresh(grant, now)
        body["scope"] = " ".join(grant.scopes)
        return json_reply(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    # ---- revocation ---------------------------------------------------------------------------
    def revoke(self, authorization: str | None, form: dict[str, str]) -> Reply:
        app = self._client(authorization, form)
        if isinstance(app, Reply):
            return app
        token = form.get("token", "")
        rec = self.refresh.get(token) or self.access.get(token)
        grant = self.grants.get(rec.grant_id) if rec else None
        if grant is not None and grant.client_id == app.client_id:
            # Revoking kills the whole token set and the app's connections (xero-notes §1).
            for g in self.grants.values():
                if g.client_id == app.client_id:
                    g.revoked = True
            for cid in [c.id for c in self.connections.values() if c.client_id == app.client_id]:
                del self.connections[cid]
        return Reply(200, {"Content-Type": "text/plain; charset=utf-8"}, b"")

    # ---- bearer tokens ------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Auth | str:
        """An Auth, or the problem Detail to answer 401 with."""
        if not authorization or not authorization.lower().startswith("bearer "):
            return "AuthenticationUnsuccessful"
        token = authorization[7:].strip()
        rec = self.access.get(token)
        grant = self.grants.get(rec.grant_id) if rec else None
        if rec is None or grant is None or grant.revoked:
            return "AuthenticationUnsuccessful"
        if self.clock.time() >= rec.expires:
            at = datetime.fromtimestamp(rec.expires, tz=timezone.utc)
            return f"TokenExpired: token expired at {at:%m/%d/%Y %H:%M:%S}"
        return Auth(grant, token, rec.expires)

    def expire_tokens(self, token: str | None = None) -> None:
        """Every live access token (or one) expires now: the next call gets 401 TokenExpired."""
        now = self.clock.time()
        for t, rec in self.access.items():
            if token is None or t == token:
                rec.expires = min(rec.expires, now)

    def connection_for(self, client_id: str, tenant_id: str) -> Connection | None:
        for c in self.connections.values():
            if c.client_id == client_id and c.tenant_id == tenant_id:
                return c
        return None

    # ---- /connections -------------------------------------------------------------------------
    def list_connections(self, auth: Auth, auth_event_id: str | None = None) -> Reply:
        rows = sorted((c for c in self.connections.values() if c.client_id == auth.client_id
                       and (auth_event_id is None or c.auth_event_id == auth_event_id)),
                      key=lambda c: (c.created, c.tenant_name))
        return json_reply(200, [
            {"id": c.id, "authEventId": c.auth_event_id, "tenantId": c.tenant_id, "tenantType": c.tenant_type,
             "tenantName": c.tenant_name, "createdDateUtc": xero_timestamp(c.created),
             "updatedDateUtc": xero_timestamp(c.updated)}
            for c in rows])

    def delete_connection(self, auth: Auth, connection_id: str) -> Reply:
        c = self.connections.get(connection_id)
        if c is None or c.client_id != auth.client_id:
            return not_found()
        del self.connections[connection_id]
        return Reply(204, {}, b"")

    def revoke_connection(self, tenant_id: str) -> int:
        """The user disconnects a tenant on Xero's side: every app loses it."""
        gone = [c.id for c in self.connections.values() if c.tenant_id == tenant_id]
        for cid in gone:
            del self.connections[cid]
        return len(gone)

    def _sweep(self, now: float) -> None:
        for k in [k for k, p in self.pending.items() if p.expires < now]:
            del self.pending[k]
        for k in [k for k, c in self.codes.items() if c.expires < now - 86400]:
            del self.codes[k]

    # ---- persistence ----------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return {
            "signing_key": self.signing_key.hex(),
            "apps": {k: asdict(v) for k, v in self.apps.items()},
            "grants": {k: asdict(v) for k, v in self.grants.items()},
            "access": {k: asdict(v) for k, v in self.access.items() if v.expires > self.clock.time() - 86400},
            "refresh": {k: asdict(v) for k, v in self.refresh.items()},
            "codes": {k: asdict(v) for k, v in self.codes.items()},
            "connections": {k: asdict(v) for k, v in self.connections.items()},
            "pending": {k: asdict(v) for k, v in self.pending.items()},
        }

    def load(self, data: dict[str, Any]) -> None:
        self.signing_key = bytes.fromhex(data["signing_key"])
        # Apps given on the command line win over remembered ones (a new secret, new redirect URIs).
        for k, v in data.get("apps", {}).items():
            self.apps.setdefault(k, App(**v))
        for name, cls in (("grants", Grant), ("access", AccessToken), ("refresh", RefreshToken), ("codes", Code),
                          ("connections", Connection), ("pending", Pending)):
            getattr(self, name).update({k: cls(**v) for k, v in data.get(name, {}).items()})


def _with_params(url: str, **params: str | None) -> str:
    parts = urlsplit(url)
    q = parse_qsl(parts.query, keep_blank_values=True)
    q += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(q), parts.fragment))


def _error_page(status: int, error: str, message: str) -> Reply:
    e = htmlmod.escape
    return html(status, f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Xero (fake) | Error</title></head>
<body><main><h1>Sorry, something went wrong</h1>
<p role="alert">{e(message)}</p><p>Error code: <code>{e(error)}</code></p></main></body></html>
""")


def parse_form(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
