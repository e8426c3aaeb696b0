"""The sign-in throttle: per browser session and per client address, never for the whole server."""
from __future__ import annotations

import pytest

from app_testing import app_settings, fake_xero, new_app  # noqa: F401 - fixtures

from app_support import auth
from app_support.auth import UNDECLARED_PROXY, SignInThrottle, Throttle, client_address

PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_wrong_passwords_pause_one_key_with_growing_pauses():
    clock = Clock()
    th = Throttle(clock)
    for _ in range(Throttle.FREE_TRIES - 1):
        th.failed("a")
    assert th.wait_seconds("a") == 0
    th.failed("a")
    assert th.wait_seconds("a") == Throttle.FIRST_PAUSE
    assert th.wait_seconds("b") == 0  # another key is untouched
    clock.t += Throttle.FIRST_PAUSE
    assert th.wait_seconds("a") == 0
    th.failed("a")
    assert th.wait_seconds("a") == 2 * Throttle.FIRST_PAUSE
    for _ in range(200):
        th.failed("a")
    assert th.wait_seconds("a") == Throttle.MAX_PAUSE
    th.succeeded("a")
    assert th.wait_seconds("a") == 0


def test_browser_and_address_are_throttled_separately():
    clock = Clock()
    th = SignInThrottle(clock)
    # One guesser opening a fresh browser session for every try is held by its address...
    for i in range(SignInThrottle.ADDRESS_FREE_TRIES):
        th.failed(f"session-{i}", "203.0.113.7")
    assert th.wait_seconds("session-new", "203.0.113.7") == Throttle.FIRST_PAUSE
    # ...and nobody else is: another address, even with a fresh session, signs in at once.
    assert th.wait_seconds("session-admin", "198.51.100.2") == 0
    # Five wrong tries in one session pause that session only, well before its address.
    for _ in range(Throttle.FREE_TRIES):
        th.failed("session-a", "198.51.100.9")
    assert th.wait_seconds("session-a", "198.51.100.9") == Throttle.FIRST_PAUSE
    assert th.wait_seconds("session-b", "198.51.100.9") == 0


def test_memory_is_bounded_under_a_flood_of_keys(monkeypatch):
    monkeypatch.setattr(Throttle, "MAX_KEYS", 50)
    th = Throttle(Clock())
    for i in range(500):
        th.failed(f"k{i}")
    assert len(th._keys) <= 50
    assert th.wait_seconds("k499") == 0 and th._keys["k499"][0] == 1  # the newest are kept


def test_forwarded_for_is_believed_only_from_a_declared_proxy(monkeypatch):
    xff = {"X-Forwarded-For": "192.0.2.55"}
    # No proxy declared: the header is someone's claim; all such connections share one key.
    assert client_address("192.0.2.55", xff, trust_forwarded=False) == UNDECLARED_PROXY
    assert client_address("192.0.2.56", {"X-Forwarded-For": "192.0.2.56"}, False) == UNDECLARED_PROXY
    assert client_address("203.0.113.4", {}, False) == "203.0.113.4"
    assert client_address(None, {}, False) == "loopback"
    # Declared (FORWARDED_ALLOW_IPS): uvicorn already put the client's address in place of the proxy's.
    assert client_address("192.0.2.55", xff, trust_forwarded=True) == "192.0.2.55"
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    assert not auth.forwarded_trusted()
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1")
    assert auth.forwarded_trusted()


def _sign_in(at, password: str):
    at.text_input[0].input(password)
    at.button[0].click().run()
    return at


@pytest.mark.slow
def test_wrong_passwords_in_one_browser_never_lock_out_another(app_settings, monkeypatch):
    """Browser A types 6 wrong passwords and is paused; browser B (same machine) signs in at once."""
    monkeypatch.setenv("XERO_ADMIN_PASSWORD", PASSWORD)
    monkeypatch.setattr(auth, "THROTTLE", SignInThrottle())
    a = new_app().run()
    for _ in range(Throttle.FREE_TRIES + 1):
        _sign_in(a, "guess")
    assert any("paused" in e.value for e in a.error)

    b = _sign_in(new_app().run(), PASSWORD)
    assert not b.error and not b.text_input, [e.value for e in b.error]
    assert b.session_state[auth.SIGNED_IN]

    _sign_in(a, PASSWORD)  # A stays paused, even with the right password
    assert any("paused" in e.value for e in a.error)
    assert auth.SIGNED_IN not in a.session_state
