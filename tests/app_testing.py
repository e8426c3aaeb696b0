"""Fixtures and helpers shared by the admin app's tests (tests/test_app_*.py).

Each test gets the full fake Xero served on a free loopback port, a private XERO_DATA_DIR and the
environment the app reads (monkeypatch.setenv: AppTest runs the script in this process).
"""
from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from xero_core.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
if str(ROOT) not in sys.path:  # app_support is the app's package, not an installed one
    sys.path.insert(0, str(ROOT))
TIMEOUT = 30


@pytest.fixture
def fake_xero(request):
    """The fake on its FakeClock's fixed day, or for a date-sensitive test (taking test_today, whose
    clock conftest moves) on the test date, so the app's sync and the fake's data end on the same day."""
    from xero_core.fake import FakeXero, serve

    today = request.getfixturevalue("test_today") if "test_today" in request.fixturenames else None
    fake = FakeXero(seed=11, today=today, tenants=1, practices=1, invoices=80)  # small: fast syncs
    server = serve(fake, port=0)
    try:
        yield fake, server
    finally:
        server.close()


@pytest.fixture
def app_settings(fake_xero, tmp_path, monkeypatch) -> Settings:
    """The app's environment: mock mode, a private data dir, URLs pointing at the served fake."""
    fake, server = fake_xero
    import os

    for var in [v for v in os.environ if v.startswith(("XERO_", "SMTP_", "CHASE_"))]:  # nothing from the developer's shell
        monkeypatch.delenv(var)
    from xero_core.fake.mail import free_port
    env = {
        "XERO_ENV_FILE": os.devnull,
        "XERO_MOCK_MODE": "true",
        "XERO_DATA_DIR": str(tmp_path / "data"),
        "XERO_ENCRYPTION_KEY": secrets.token_hex(32),
        "XERO_APP_URL": "http://localhost:8501",
        "XERO_FAKE_PORT": server.url.rsplit(":", 1)[1].split("/")[0],
        # chase reminders: a port nothing listens on, never a running demo's mail catcher
        "SMTP_PORT": str(free_port()),
        **fake.settings_env(server.url),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return load_settings()


def _once_per_process() -> None:
    """What Streamlit's server does once at start, AppTest did per instance or per run: scan every
    installed package's metadata for components (~0.1-0.2 s of CPU per new AppTest) and compile the
    app's scripts (magic, compile: per run). The server keeps one component registry and one script
    cache for its life; so do the tests (one test process, files that do not change)."""
    from streamlit.components.v2.component_manager import BidiComponentManager
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test

    components = BidiComponentManager()
    components.discover_and_register_components(start_file_watching=False)
    _SHARED["components"] = components
    scripts = ScriptCache()
    app_test.ScriptCache = lambda: scripts  # AppTest._run makes a ScriptCache() per run


_SHARED: dict = {}


def new_app() -> AppTest:
    if not _SHARED:
        _once_per_process()
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at._bidi_component_manager = _SHARED["components"]  # AppTest's own per-instance cache of the scan
    return at


def open_page(page: str, at: AppTest | None = None) -> AppTest:
    """Run the app and switch to pages/<page>.py; returns the AppTest after the page ran."""
    at = at or new_app()
    at.run()
    if page != "connection":
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    """Everything a person would read on the page, as one string (for assertions): markdown
    escapes resolved, as a browser shows them (names go through app_support.text.md)."""
    from app_support.text import read_back

    parts = []
    for kind in ("title", "subheader", "markdown", "caption", "info", "success", "warning", "error", "text",
                 "code", "metric"):
        for el in getattr(at, kind):
            parts.append(str(getattr(el, "value", "")))
            if kind == "metric":
                parts.append(str(el.label))
    return read_back("\n".join(parts))


def errors(at: AppTest) -> list[str]:
    from app_support.text import read_back

    return [read_back(e.value) for e in at.error] + [e.message for e in at.exception]


def button(at: AppTest, label: str):
    from app_support.text import read_back

    for b in at.button:
        if read_back(b.label) == label:
            return b
    raise AssertionError(f"no button {label!r}; buttons: {[b.label for b in at.button]}")


def connect(settings: Settings, fake) -> list[dict]:
    """Connect straight through the engine (for tests whose subject is another page)."""
    from xero_core import oauth

    return oauth.complete_connect(settings, fake.consent(oauth.begin_connect(settings)))


def tenant_of(settings: Settings, tenant_type: str) -> str:
    from xero_core.connections import list_connections

    return next(c["tenant_id"] for c in list_connections(settings) if c["tenant_type"] == tenant_type)


def choose_tenant(at: AppTest, tenant_id: str) -> AppTest:
    at.selectbox(key="_tenant_picker").set_value(tenant_id).run()
    return at
