"""Sign-in for the admin app.

Two ways, checked in this order:
1. an OIDC `[auth]` section in .streamlit/secrets.toml: Streamlit's own `st.login` (sign-in only;
   it never holds Xero tokens);
2. `XERO_ADMIN_PASSWORD`: a password form, compared in constant time; the session remembers it.
With neither, the app relies on binding to localhost (see the README before exposing it).
"""
from __future__ import annotations

import hmac
import threading
import time

import streamlit as st

from xero_core.settings import Settings

SIGNED_IN = "_ledgerlink_signed_in"


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def password_ok(entered: str, expected: str) -> bool:
    return hmac.compare_digest(entered.encode("utf-8"), expected.encode("utf-8"))


class Throttle:
    """Slows password guessing for the whole server (a new browser session is free to open):
    after FREE_TRIES wrong passwords in a row, sign-in pauses, doubling up to MAX_PAUSE."""

    FREE_TRIES = 5
    FIRST_PAUSE = 30.0
    MAX_PAUSE = 900.0

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._until = 0.0

    def wait_seconds(self) -> float:
        with self._lock:
            return max(0.0, self._until - self._clock())

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            extra = self._failures - self.FREE_TRIES
            if extra >= 0:
                self._until = self._clock() + min(self.MAX_PAUSE, self.FIRST_PAUSE * 2 ** extra)

    def succeeded(self) -> None:
        with self._lock:
            self._failures, self._until = 0, 0.0


THROTTLE = Throttle()


def _sign_out() -> None:
    st.session_state.pop(SIGNED_IN, None)


def gate(settings: Settings) -> None:
    """Stop the page here unless the visitor is signed in (when sign-in is configured)."""
    if oidc_configured():
        if not st.user.is_logged_in:
            st.title("Ledgerlink admin")
            st.write("Sign in to manage the Xero connections.")
            st.button("Sign in", type="primary", on_click=st.login)
            st.stop()
        with st.sidebar:
            st.caption(f"Signed in as {st.user.get('email') or st.user.get('name') or 'admin'}")
            st.button("Sign out", on_click=st.logout, key="_signout_oidc")
        return

    if not settings.admin_password:
        return
    if st.session_state.get(SIGNED_IN):
        with st.sidebar:
            st.button("Sign out", on_click=_sign_out, key="_signout")
        return

    st.title("Ledgerlink admin")
    if "code" in st.query_params or "error" in st.query_params:
        st.info("Sign in to finish connecting to Xero: the consent you just gave is kept for a few minutes.")
    with st.form("signin"):
        entered = st.text_input("Admin password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        pause = THROTTLE.wait_seconds()
        if pause > 0:
            st.error(f"Too many wrong passwords: sign-in is paused for {pause:.0f} more seconds. "
                     "Wait, then try again.")
            st.stop()
        if password_ok(entered, settings.admin_password):
            THROTTLE.succeeded()
            st.session_state[SIGNED_IN] = True
            st.rerun()
        THROTTLE.failed()
        st.error("That password is not right. Ask whoever set XERO_ADMIN_PASSWORD for this app.")
    st.stop()
