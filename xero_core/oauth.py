"""Connecting and disconnecting Xero tenants (OAuth 2.0 authorization code + PKCE, via authlib).

The pending `state -> PKCE verifier` pair lives in the vault with a 10-minute expiry, not in a
browser session: Streamlit's session does not survive the redirect to Xero and back, and the
CLI may finish a flow another process began.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from . import connections, db, tokens
from .clock import SYSTEM_CLOCK, Clock
from .errors import OAuthError, ReconnectNeeded, VaultError
from .settings import Settings
from .vault import Vault

log = logging.getLogger(__name__)

PENDING_PREFIX = "pending-"
PENDING_TTL_SECONDS = 600
ORPHAN_GRANT_SECONDS = 3600
HTTP_TIMEOUT = 30.0

_ADVICE = {
    "access_denied": "The Xero user cancelled or declined the consent. Nothing was connected; start "
                     "Connect again and choose Allow access.",
    "invalid_scope": "Xero refused the requested scopes. Apps created on or after 2 March 2026 accept only "
                     "granular scopes: leave XERO_SCOPE_PROFILE=granular (the default). Older apps may set "
                     "XERO_SCOPE_PROFILE=broad. Check XERO_SCOPES if you set it.",
    "unauthorized_client": "Xero says this app may not request these scopes or this flow (\"Invalid scope for "
                           "client\"). Use granular scopes for apps created on/after 2 March 2026, and check the "
                           "app is a Web app whose redirect URI equals XERO_REDIRECT_URI.",
    "invalid_grant": "Xero refused the authorisation code or token: it expired (codes last 5 minutes), was "
                     "already used, or the connection was revoked. Start Connect again.",
    "state_mismatch": "The reply from Xero does not belong to a consent this Ledgerlink started (unknown or "
                      "already used state). Start Connect again from this installation, and open only the "
                      "newest link.",
    "state_expired": "The consent took longer than 10 minutes, so its one-time state expired. Start Connect "
                     "again and finish within 10 minutes.",
    "invalid_client": "Xero rejected the app's credentials. Check XERO_CLIENT_ID and XERO_CLIENT_SECRET against "
                      "your app at developer.xero.com (generate a new secret if unsure).",
    "server_error": "Xero had an internal error during the consent. Wait a minute and start Connect again.",
    "temporarily_unavailable": "Xero's login service is temporarily unavailable. Wait a few minutes and start "
                               "Connect again.",
    "no_tenants": "The consent succeeded but no organisation was shared with Ledgerlink. Start Connect again "
                  "and tick at least one organisation.",
    "unknown": "Xero's consent did not complete. Start Connect again; if it keeps failing, check the app "
               "settings at developer.xero.com (redirect URI, scopes).",
}


def oauth_error_advice(code: str | None) -> str:
    """Plain advice for an OAuth error code (Xero's, or our own state_* codes)."""
    return _ADVICE.get(code or "unknown", _ADVICE["unknown"])


def _error(code: str, detail: str | None = None) -> OAuthError:
    text = oauth_error_advice(code)
    if detail:
        text = f"{text} (Xero said: {detail[:200]})"
    return OAuthError(f"{code}: {text}", code=code)


def _pending_name(state: str) -> str:
    return PENDING_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:40]


def _finishing_name(state: str) -> str:
    # Under PENDING_PREFIX, so a crash's leftover marker is purged like an abandoned pending state.
    return PENDING_PREFIX + "finishing-" + hashlib.sha256(state.encode()).hexdigest()[:40]


def _purge_expired_pending(vault: Vault, now: float) -> None:
    for name in vault.names(PENDING_PREFIX):
        try:
            item = vault.read(name)
        except Exception:
            item = None  # an unreadable pending state is worthless: drop it
        if item is None or item.get("expires_at", 0) < now - PENDING_TTL_SECONDS:
            vault.delete(name)
    # A token set that never got its tenants (a crash between the code exchange and /connections)
    # can never be found by tenant: drop it once it is clearly abandoned.
    for name in vault.names(tokens.GRANT_PREFIX):
        try:
            grant = vault.read(name)
        except Exception:
            continue  # unreadable grants are reported by status, not silently deleted
        if grant and not grant.get("tenant_ids") and grant.get("created_at", now) < now - ORPHAN_GRANT_SECONDS:
            vault.delete(name)
    vault.sweep_temp_files()


def begin_connect(settings: Settings, clock: Clock | None = None) -> str:
    """The consent URL to open in a browser. Stores the pending state + PKCE verifier."""
    clock = clock or SYSTEM_CLOCK
    now = clock.time()
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 chars of [A-Za-z0-9_-]: within PKCE's 43-128
    client = tokens.oauth_client(
        settings, scope=" ".join(settings.scopes), redirect_uri=settings.redirect_uri,
        code_challenge_method="S256",
    )
    url: str
    try:
        url, _ = client.create_authorization_url(settings.authorize_url, state=state, code_verifier=verifier)
    finally:
        client.close()
    vault = Vault(settings)
    _purge_expired_pending(vault, now)
    vault.write(_pending_name(state), {
        "state": state,
        "code_verifier": verifier,
        "created_at": now,
        "expires_at": now + PENDING_TTL_SECONDS,
        "redirect_uri": settings.redirect_uri,
        "scopes": list(settings.scopes),
    })
    return url


def consent_pending(settings: Settings, consent_url: str) -> bool:
    """Whether the consent behind `consent_url` (from begin_connect) still waits for Xero's
    redirect: False once complete_connect has finished with it, its connections recorded or its
    error known (or a purge dropped it). A file check, cheap enough to poll."""
    state = parse_qs(urlsplit(consent_url).query).get("state", [""])[0]
    if not state:
        return False
    vault = Vault(settings)
    return vault.exists(_pending_name(state)) or vault.exists(_finishing_name(state))


def _params(callback_url: str) -> dict[str, str]:
    text = callback_url.strip()
    query = urlsplit(text).query if "://" in text or text.startswith("/") else text.lstrip("?")
    return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}


def complete_connect(settings: Settings, callback_url: str, transport: httpx.BaseTransport | None = None,
                     clock: Clock | None = None) -> list[dict[str, Any]]:
    """Finish the flow from the URL Xero redirected to. Returns the tenants recorded."""
    clock = clock or SYSTEM_CLOCK
    params = _params(callback_url)
    vault = Vault(settings)
    state = params.get("state") or ""
    pending, finishing = None, None
    if state:
        name = _pending_name(state)
        try:
            pending = vault.read(name)
        except VaultError as exc:  # e.g. the key changed mid-consent: this consent cannot finish
            log.warning("Dropping an unreadable pending consent: %s", exc)
            pending = None
        if vault.exists(name):
            # The state is single use, whatever happens next, so it goes now; until the outcome is
            # recorded a marker keeps the consent pending for whoever watches it (the Connection page
            # in the tab that opened it redraws once consent_pending turns False: with no marker it
            # redrew before the connections were written, found none and stopped watching).
            finishing = _finishing_name(state)
            vault.write(finishing, {"expires_at": clock.time() + PENDING_TTL_SECONDS})
            vault.delete(name)
    try:
        return _finish_connect(settings, params, state, pending, transport, clock)
    finally:
        if finishing:
            vault.delete(finishing)


def _finish_connect(settings: Settings, params: dict[str, str], state: str, pending: dict[str, Any] | None,
                    transport: httpx.BaseTransport | None, clock: Clock) -> list[dict[str, Any]]:
    if params.get("error"):
        raise _error(params["error"], params.get("error_description"))
    if pending is None or not hmac.compare_digest(str(pending.get("state", "")), state):
        raise _error("state_mismatch")
    if pending.get("expires_at", 0) < clock.time():
        raise _error("state_expired")
    code = params.get("code")
    if not code:
        raise _error("unknown", "the redirect carried neither a code nor an error")

    client = tokens.oauth_client(settings, transport, redirect_uri=pending["redirect_uri"])
    try:
        token = dict(client.fetch_token(
            settings.token_url, grant_type="authorization_code", code=code,
            redirect_uri=pending["redirect_uri"], code_verifier=pending["code_verifier"],
        ))
    except httpx.HTTPError as exc:
        raise OAuthError(
            f"temporarily_unavailable: Could not reach the token endpoint {settings.token_url} "
            f"({type(exc).__name__}). Check the network (with XERO_MOCK_MODE=true: that the fake Xero is "
            "running), then start Connect again.", code="temporarily_unavailable") from None
    except ValueError:
        raise _error("server_error", "the token endpoint did not answer JSON") from None
    except Exception as exc:
        err = tokens.authlib_error_code(exc)
        if err is None:
            raise
        raise _error(err, getattr(exc, "description", None)) from None
    finally:
        client.close()
    if not token.get("access_token"):
        raise _error("server_error", "no access token in the token response")
    if not token.get("refresh_token"):
        raise _error("invalid_scope", "no refresh token was issued: XERO_SCOPES must include offline_access")

    grant_id = tokens.save_new_grant(settings, token, clock)  # saved before first use
    try:
        tenants = _get_connections(settings, token["access_token"], transport)
    except OAuthError:
        Vault(settings).delete(tokens.GRANT_PREFIX + grant_id)  # serves no tenant: nothing can find it
        raise
    if not tenants:
        Vault(settings).delete(tokens.GRANT_PREFIX + grant_id)
        raise _error("no_tenants")
    tokens.assign_tenants(settings, grant_id, [t["tenantId"] for t in tenants if t.get("tenantId")])
    # The connections, then each organisation's details: one open of the database for the writes
    # and reads below (4+ otherwise, ~18 ms of CPU each); closed when idle, as a worker's.
    with db.shared(settings.db_path):
        recorded = connections.upsert_tenants(settings, tenants, at=clock.now())
        # The organisation's base currency, time zone and financial year, known before its first sync.
        from .organisation import read_at_connect

        read_at_connect(settings, [r["tenant_id"] for r in recorded
                                   if (r.get("tenant_type") or "").upper() == "ORGANISATION"],
                        transport=transport, clock=clock)
    log.info("Connected %d Xero tenant(s): %s", len(recorded),
             ", ".join(f"{r['tenant_name']} ({r['tenant_type']})" for r in recorded))
    return recorded


def _http(transport: httpx.BaseTransport | None) -> httpx.Client:
    return httpx.Client(transport=transport, timeout=HTTP_TIMEOUT, verify=tokens.ssl_context())


def _get_connections(settings: Settings, access_token: str,
                     transport: httpx.BaseTransport | None) -> list[dict[str, Any]]:
    with _http(transport) as http:
        try:
            resp = http.get(settings.connections_url, headers={
                "Authorization": f"Bearer {access_token}", "Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise OAuthError(
                f"temporarily_unavailable: Could not reach {settings.connections_url} ({type(exc).__name__}); "
                "Start Connect again in a minute.", code="temporarily_unavailable") from None
    if resp.status_code != 200:
        raise _error("server_error", f"GET /connections answered HTTP {resp.status_code}")
    try:
        body = resp.json()
    except ValueError:
        raise _error("server_error", "GET /connections did not answer JSON") from None
    return [t for t in body if isinstance(t, dict)] if isinstance(body, list) else []


def disconnect(settings: Settings, tenant_id: str, transport: httpx.BaseTransport | None = None,
               clock: Clock | None = None) -> dict[str, Any]:
    """Disconnect one tenant: DELETE its Xero connection, revoke the token set when no other
    tenant still uses it (revoking kills every connection of the set), forget its tokens, and
    mark it disconnected. A dead token marks the tenant needs_reconnect and raises ReconnectNeeded.
    """
    clock = clock or SYSTEM_CLOCK
    conn = connections.get_connection(settings, tenant_id)
    if conn is None:
        raise OAuthError(f"No connection with tenant id {tenant_id} is recorded; see `python -m xero_core status`.",
                         code="unknown_tenant")
    result = {"tenant_id": tenant_id, "tenant_name": conn["tenant_name"], "connection_deleted": False,
              "revoked": False, "status": "disconnected"}
    gid, grant = tokens.find_grant(settings, tenant_id)
    if gid is not None and grant is not None:
        try:
            access = tokens.TokenManager(settings, transport=transport, clock=clock).access_token(tenant_id)
        except ReconnectNeeded as exc:
            reason = (f"{exc.message} The disconnect could not be sent to Xero; if the app still appears under "
                      "Connected Apps in Xero, remove it there.")
            tokens.remove_tenant(settings, tenant_id)
            connections.set_status(settings, tenant_id, "needs_reconnect", reason, at=clock.now())
            raise ReconnectNeeded(reason, tenant_id=tenant_id) from None
        with _http(transport) as http:
            if conn.get("connection_id"):
                resp = http.delete(f"{settings.connections_url}/{conn['connection_id']}",
                                   headers={"Authorization": f"Bearer {access}"})
                if resp.status_code in (200, 204, 404):
                    result["connection_deleted"] = True  # 404: Xero had already dropped it
                elif resp.status_code in (401, 403):
                    log.warning("DELETE /connections for %s answered %s; revoking instead.", tenant_id, resp.status_code)
                else:
                    raise OAuthError(f"Xero refused to delete the connection for {tenant_id} "
                                     f"(HTTP {resp.status_code}); try again later.", code="server_error")
            others = [t for t in grant.get("tenant_ids", []) if t != tenant_id]
            if not others and grant.get("refresh_token"):
                with tokens.grant_lock(settings, gid):
                    fresh = tokens.read_grant(settings, gid) or grant
                    resp = http.post(settings.revoke_url, data={"token": fresh["refresh_token"]},
                                     auth=(settings.client_id, settings.client_secret))
                result["revoked"] = resp.status_code == 200
                if resp.status_code not in (200, 400):
                    log.warning("Token revocation answered HTTP %s for tenant %s.", resp.status_code, tenant_id)
        tokens.remove_tenant(settings, tenant_id)
    connections.set_status(settings, tenant_id, "disconnected", "disconnected by a user", at=clock.now())
    return result
