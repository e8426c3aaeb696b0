"""Sign-in for the admin app.

Two ways, checked in this order:
1. an OIDC `[auth]` section in .streamlit/secrets.toml: Streamlit's own `st.login` (sign-in only;
   it never holds Xero tokens);
2. `XERO_ADMIN_PASSWORD`: a password form, compared in constant time; the session remembers it.
With neither, the app relies on binding to localhost (see the README before exposing it).
"""
from __future__ import annotations

import hmac

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
        if password_ok(entered, settings.admin_password):
            st.session_state[SIGNED_IN] = True
            st.rerun()
        st.error("That password is not right. Ask whoever set XERO_ADMIN_PASSWORD for this app.")
    st.stop()
