"""The Connection and callback pages' helpers: consent link, callback URL, token summary."""
from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

import streamlit as st

from xero_core.settings import Settings

from . import engine
from .widgets import when

# begin_connect's pending state lives 10 minutes server-side; renew the link a little earlier.
CONSENT_LINK_TTL = 8 * 60
_KEY = "_consent_link"

# Codes the Connection page explains up front (oauth_error_advice has the words for each).
OAUTH_ERROR_CODES = (
    "access_denied",
    "invalid_scope",
    "unauthorized_client",
    "invalid_client",
    "invalid_grant",
    "state_mismatch",
    "state_expired",
    "no_tenants",
    "server_error",
    "temporarily_unavailable",
)


def consent_url(s: Settings) -> str:
    """A consent URL from oauth.begin_connect, reused across reruns until shortly before it expires.

    Making one per rerun would pile up pending states; making one per click would need a second
    click to follow it.
    """
    cached = st.session_state.get(_KEY)
    if cached and cached["made"] > time.time() - CONSENT_LINK_TTL and cached["for"] == s.authorize_url:
        return cached["url"]
    url = engine.begin_connect(s)
    st.session_state[_KEY] = {"url": url, "made": time.time(), "for": s.authorize_url}
    return url


def forget_consent_url() -> None:
    st.session_state.pop(_KEY, None)


def consent_settled(s: Settings) -> bool:
    """True once this session's consent link is used up (another tab finished the connection),
    dropped or due for renewal: time to redraw the page. A file check: cheap enough to poll."""
    cached = st.session_state.get(_KEY)
    if not cached:
        return False
    if cached["made"] <= time.time() - CONSENT_LINK_TTL:
        return True
    return not engine.consent_pending(s, cached["url"])


def known_oauth_errors() -> list[tuple[str, str]]:
    return [(code, engine.oauth_error_advice(code)) for code in OAUTH_ERROR_CODES]


def callback_url(s: Settings, params: Mapping[str, Any]) -> str:
    """The full URL Xero redirected to, rebuilt from the query string (complete_connect parses it)."""
    query = urllib.parse.urlencode({k: v for k, v in params.items()}, doseq=True)
    return f"{s.redirect_uri}?{query}"


@dataclass
class TokenSummary:
    access: str
    warning: str | None = None
    unusable: bool = False  # no token can be read (tampered vault file, wrong key): syncs cannot run


def _dt(v: Any) -> datetime | None:
    if v in (None, ""):
        return None
    if isinstance(v, (int, float)):
        return datetime.fromtimestamp(v, timezone.utc)
    if isinstance(v, str):
        v = datetime.fromisoformat(v.replace("Z", "+00:00"))
    if isinstance(v, datetime) and v.tzinfo is None:
        v = v.replace(tzinfo=timezone.utc)
    return v


def token_summary(s: Settings, tenant_id: str) -> TokenSummary:
    """Expiry facts only (never a token): access-token expiry and the 60-day refresh-token warning."""
    from xero_core.errors import VaultError

    try:
        facts = engine.token_summary(s, tenant_id)
    except VaultError as exc:  # the connection row says connected, but no sync can run (issue 14)
        return TokenSummary("cannot be read", str(exc), unusable=True)
    if not facts or not facts.get("has_tokens"):
        return TokenSummary("none stored", "No token is stored for this organisation: use Connect to Xero "
                                           "to reconnect it.", unusable=True)
    expires = _dt(facts.get("access_expires_at"))
    if expires is None:
        access = "unknown expiry"
    elif expires < datetime.now(timezone.utc):
        access = f"expired {when(expires)}; refreshed automatically at the next call"
    else:
        access = f"expires {when(expires)}"
    warning = facts.get("refresh_warning")
    if warning and facts.get("dead"):
        warning = f"{warning} Use Connect to Xero to reconnect."
    return TokenSummary(access, warning)
