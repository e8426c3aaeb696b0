"""Sign-in for the admin app.

Two ways, checked in this order:
1. an OIDC `[auth]` section in .streamlit/secrets.toml: Streamlit's own `st.login` (sign-in only;
   it never holds Xero tokens);
2. `XERO_ADMIN_PASSWORD`: a password form, compared in constant time; the session remembers it.
With neither, the app only starts when it listens on loopback (`refuse_unprotected_network_bind`).
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import socket
import sys
import threading
import time
from collections import OrderedDict

import streamlit as st

from xero_core.settings import Settings

from .text import md

SIGNED_IN = "_ledgerlink_signed_in"
BROWSER = "_ledgerlink_browser"  # a random id per browser session, the throttle's key


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def password_ok(entered: str, expected: str) -> bool:
    return hmac.compare_digest(entered.encode("utf-8"), expected.encode("utf-8"))


class Throttle:
    """Slows password guessing per key: after `free_tries` wrong passwords in a row under one key,
    that key pauses, 30 s doubling up to 15 min. A right password clears the key.

    Keys are never global: `SignInThrottle` keys one of these by browser session and another by
    client address, so a wrong password in one browser never delays the admin in another one.
    """

    FREE_TRIES = 5
    FIRST_PAUSE = 30.0
    MAX_PAUSE = 900.0
    MAX_KEYS = 10_000  # memory bound: stale keys go first, then the longest-quiet ones

    def __init__(self, clock=time.monotonic, *, free_tries: int | None = None):
        self._clock = clock
        self.free_tries = self.FREE_TRIES if free_tries is None else free_tries
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, list[float]] = OrderedDict()  # key -> [failures, paused until]

    def wait_seconds(self, key: str) -> float:
        with self._lock:
            entry = self._keys.get(key)
            return 0.0 if entry is None else max(0.0, entry[1] - self._clock())

    def failed(self, key: str) -> None:
        with self._lock:
            entry = self._keys.pop(key, None) or [0, 0.0]
            entry[0] += 1
            extra = entry[0] - self.free_tries
            if extra >= 0:
                entry[1] = self._clock() + min(self.MAX_PAUSE, self.FIRST_PAUSE * 2 ** min(extra, 32))
            self._keys[key] = entry  # most recent failure last
            if len(self._keys) > self.MAX_KEYS:
                self._prune()

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def _prune(self) -> None:
        now = self._clock()
        for k in [k for k, (_, until) in self._keys.items() if until + self.MAX_PAUSE < now]:
            del self._keys[k]
        while len(self._keys) > self.MAX_KEYS:
            self._keys.popitem(last=False)


class SignInThrottle:
    """Two throttles: per browser session (5 free tries) and per client address (20, so one
    address with several people behind it is not paused by one of them mistyping)."""

    ADDRESS_FREE_TRIES = 20

    def __init__(self, clock=time.monotonic):
        self.browser = Throttle(clock)
        self.address = Throttle(clock, free_tries=self.ADDRESS_FREE_TRIES)

    def wait_seconds(self, browser: str, address: str) -> float:
        return max(self.browser.wait_seconds(browser), self.address.wait_seconds(address))

    def failed(self, browser: str, address: str) -> None:
        self.browser.failed(browser)
        self.address.failed(address)

    def succeeded(self, browser: str, address: str) -> None:
        self.browser.succeeded(browser)
        self.address.succeeded(address)


THROTTLE = SignInThrottle()

#: Address key for every connection that carries X-Forwarded-For while no proxy is declared.
UNDECLARED_PROXY = "forwarded-by-an-undeclared-proxy"


def forwarded_trusted() -> bool:
    """True when the operator declared the reverse proxy: FORWARDED_ALLOW_IPS, uvicorn's own setting,
    read from the process environment by the server `streamlit run` starts (not from .env)."""
    return bool(os.environ.get("FORWARDED_ALLOW_IPS", "").strip())


def client_address(peer: str | None, headers, trust_forwarded: bool) -> str:
    """The address key a sign-in attempt is throttled under.

    `peer` is the address the server saw (Streamlit's `st.context.ip_address`; None on loopback).
    With the proxy declared (FORWARDED_ALLOW_IPS), uvicorn has already replaced a trusted proxy's
    address with the client's, taken from the right-hand end of X-Forwarded-For, so `peer` is the
    client. Without it, X-Forwarded-For is never believed: any connection carrying it shares one key,
    so a guesser cannot buy fresh tries by writing a new address into the header.
    """
    if not trust_forwarded and headers is not None and headers.get("X-Forwarded-For") is not None:
        return UNDECLARED_PROXY
    return peer or "loopback"


def _browser_key() -> str:
    key = st.session_state.get(BROWSER)
    if key is None:
        key = st.session_state[BROWSER] = secrets.token_hex(16)
    return key


def _address_key() -> str:
    try:
        return client_address(st.context.ip_address, st.context.headers, forwarded_trusted())
    except Exception:  # no client (a bare script run): the local machine
        return "loopback"


def _sign_out() -> None:
    st.session_state.pop(SIGNED_IN, None)


def gate(settings: Settings, hide_menu=None) -> None:
    """Stop the page here unless the visitor is signed in (when sign-in is configured).
    `hide_menu()` runs first when the sign-in form is shown: no page name before sign-in."""
    if oidc_configured():
        if not st.user.is_logged_in:
            if hide_menu is not None:
                hide_menu()
            st.title("Ledgerlink admin")
            st.write("Sign in to manage the Xero connections.")
            st.button("Sign in", type="primary", on_click=st.login)
            st.stop()
        with st.sidebar:
            st.caption(f"Signed in as {md(st.user.get('email') or st.user.get('name') or 'admin')}")
            st.button("Sign out", on_click=st.logout, key="_signout_oidc")
        return

    if not settings.admin_password:
        return
    if st.session_state.get(SIGNED_IN):
        with st.sidebar:
            st.button("Sign out", on_click=_sign_out, key="_signout")
        return

    if hide_menu is not None:
        hide_menu()
    st.title("Ledgerlink admin")
    if "code" in st.query_params or "error" in st.query_params:
        st.info("Sign in to finish connecting to Xero: the consent you just gave is kept for a few minutes.")
    with st.form("signin"):
        entered = st.text_input("Admin password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        browser, address = _browser_key(), _address_key()
        pause = THROTTLE.wait_seconds(browser, address)
        if pause > 0:
            st.error(f"Too many wrong passwords from here: sign-in is paused for {pause:.0f} more seconds. "
                     "Wait, then try again.")
            st.stop()
        if password_ok(entered, settings.admin_password):
            THROTTLE.succeeded(browser, address)
            st.session_state[SIGNED_IN] = True
            st.rerun()
        THROTTLE.failed(browser, address)
        st.error("That password is not right. Ask whoever set XERO_ADMIN_PASSWORD for this app.")
    st.stop()


# --------------------------------------------------------------------------- start-up check


def is_loopback(address: str | None) -> bool:
    """True when the server address only accepts connections from this machine."""
    if not address or not address.strip():
        return False  # Streamlit's default when unset: every interface
    a = address.strip()
    if a.startswith("unix://"):
        return True  # a socket file, not a network port (st.App refuses it anyway)
    a = a.strip("[]")
    if a.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(a).is_loopback
    except ValueError:
        pass
    try:  # a host name: loopback only if every address it names is
        infos = socket.getaddrinfo(a, None)
    except OSError:
        return False
    hosts = [i[4][0] for i in infos]  # an int only from a Python built without IPv6: not a loopback we know
    return bool(hosts) and all(isinstance(h, str) and ipaddress.ip_address(h.split("%")[0]).is_loopback
                               for h in hosts)


def exposure_refusal(address: str | None, password_set: bool, oidc: bool) -> str | None:
    """The sentence to refuse start-up with, or None when the app may serve as configured."""
    if password_set or oidc or is_loopback(address):
        return None
    where = address.strip() if address and address.strip() else "every network interface (server.address unset)"
    return (f"Refusing to start: the admin app would listen on {where}, reachable from other machines, with no "
            "sign-in. Set XERO_ADMIN_PASSWORD to a long random value, or add an OIDC [auth] section to "
            ".streamlit/secrets.toml, or keep server.address = \"127.0.0.1\" (README: Exposing the admin app "
            "safely).")


def refuse_unprotected_network_bind() -> None:
    """Run by app.py when the server imports it (`streamlit run` / uvicorn), before any request is
    served: exit with one sentence when the app would listen beyond loopback with no sign-in."""
    from streamlit import config

    address = config.get_option("server.address")  # config.toml, --server.address, STREAMLIT_SERVER_ADDRESS
    if is_loopback(address):
        return
    from xero_core.settings import load_settings

    try:
        password_set = bool(load_settings().admin_password)
    except Exception as exc:  # settings errors are sentences already
        print(f"Refusing to start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    refusal = exposure_refusal(address, password_set, oidc_configured())
    if refusal:
        print(refusal, file=sys.stderr, flush=True)
        raise SystemExit(2)
