"""Admin app: frame (banner, picker, sign-in, errors, reset) and the Connection/callback pages."""
from __future__ import annotations

import re
import urllib.parse

import pytest

from xero_core.connections import list_connections
from xero_core.pipeline.result import StepResult, SyncResult

from app_testing import (  # noqa: F401 - fixtures
    app_settings, button, choose_tenant, connect, errors, fake_xero, new_app, open_page, tenant_of, texts,
)

PAGES = ("connection", "sync", "data", "clients", "practice_manager", "webhooks", "callback")


def _consent_link(at) -> str:
    (link,) = [b for b in at.link_button if b.value == "Connect to Xero"]
    return link.proto.url


def _land_on_callback(at, redirect: str):
    """What the browser does after consent: open <app>/callback?code=…&state=…"""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(redirect).query)
    at.query_params = {k: v[-1] for k, v in query.items()}
    at.switch_page("pages/callback.py").run()
    return at


@pytest.mark.slow
def test_every_page_opens_in_mock_mode_with_banner_and_no_error(app_settings):
    at = new_app().run()
    for page in PAGES:
        if page != "connection":
            at.switch_page(f"pages/{page}.py").run()
        assert not errors(at), (page, errors(at))
        assert any("Mock mode" in w.value for w in at.warning), page


@pytest.mark.slow
@pytest.mark.parametrize("page", ["clients", "connection"])
def test_a_page_view_opens_the_database_once_and_loads_no_ca_bundle(app_settings, fake_xero, monkeypatch, page):
    """A page view's fixed costs are paid once, not once per use: opening and closing DuckDB costs
    ~18 ms of CPU each time and a view reads it 5-25 times (frame, picker, sections), so the frame
    holds one open instance for the view (db.shared) and closes it when the view ends; loading the
    CA bundle for an httpx client costs ~25-50 ms and the Connection page made two or three clients
    per view (consent link, the fake's health), so the process loads it once (tokens.ssl_context)."""
    import ssl

    from xero_core import db

    fake, _ = fake_xero
    connect(app_settings, fake)
    at = open_page(page)
    opens, cursors, bundles = [], [], []
    real_open, real_acquire, real_ssl = db._open, db._Shared.acquire, ssl.create_default_context
    monkeypatch.setattr(db, "_open", lambda *a, **k: opens.append(a) or real_open(*a, **k))
    monkeypatch.setattr(db._Shared, "acquire", lambda *a, **k: cursors.append(a) or real_acquire(*a, **k))
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: bundles.append(a) or real_ssl(*a, **k))
    at.run()
    assert not errors(at), errors(at)
    assert len(opens) == 1 and len(cursors) >= 2, (len(opens), len(cursors))  # many reads, one open
    assert not any(h.base is not None for h in db._shared.values()), "the view ended with the file still open"
    assert bundles == []


@pytest.mark.slow
def test_connect_through_consent_lands_back_connected(app_settings, fake_xero):
    fake, _ = fake_xero
    at = open_page("connection")
    assert "No organisation is connected yet" in texts(at)
    url = _consent_link(at)
    assert url.startswith(app_settings.authorize_url + "?")
    # the link is kept across reruns (one pending state, not one per rerun)
    at.run()
    assert _consent_link(at) == url

    redirect = fake.consent(url)
    assert redirect.startswith(app_settings.redirect_uri + "?")
    _land_on_callback(at, redirect)
    assert not errors(at), errors(at)
    assert any("Connected:" in s.value for s in at.success)
    assert not at.query_params.get("code")  # the single-use code is dropped from the URL

    at.switch_page("pages/connection.py").run()
    page = texts(at)
    for org in fake.orgs:
        assert str(org.name) in page
    assert "Connected" in page and "Mock: fake Xero" in page and "expires" in page
    # one organisation beside the practice: it is chosen by itself (issue 24 §5), the practice is not
    # a second organisation
    org = next(c["tenant_id"] for c in list_connections(app_settings) if c["tenant_type"] == "ORGANISATION")
    assert at.selectbox(key="_tenant_picker").value == org


@pytest.mark.slow
def test_consent_denied_shows_the_advice(app_settings, fake_xero):
    fake, _ = fake_xero
    at = open_page("connection")
    redirect = fake.consent(_consent_link(at), allow=False)
    _land_on_callback(at, redirect)
    msg = " ".join(errors(at))
    assert "access_denied" in msg and "start Connect again" in msg
    assert not at.exception


@pytest.mark.slow
def test_connection_page_explains_every_oauth_error(app_settings):
    from xero_core.oauth import oauth_error_advice

    at = open_page("connection")
    page = texts(at)
    for code in ("access_denied", "invalid_scope", "unauthorized_client", "invalid_grant", "state_mismatch",
                 "state_expired", "invalid_client"):
        assert code in page and oauth_error_advice(code) in page


@pytest.mark.slow
def test_callback_without_a_consent_says_where_to_start(app_settings):
    at = open_page("callback")
    assert "start from **Connect to Xero**" in texts(at)


@pytest.mark.slow
def test_status_token_expiry_and_the_60_day_refresh_warning(app_settings, fake_xero):
    import time

    from xero_core import tokens
    from xero_core.connections import set_status

    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    _, grant = tokens.find_grant(app_settings, org)
    grant["refresh_issued_at"] = time.time() - 50 * 86400  # unused for 50 days
    tokens.write_grant(app_settings, grant)
    set_status(app_settings, tenant_of(app_settings, "PRACTICEMANAGER"), "needs_reconnect",
               "Xero refused the refresh token (invalid_grant).")
    at = open_page("connection")
    page = texts(at)
    assert "The refresh token expires on" in page and "run a sync" in page
    assert ":orange-badge[Needs reconnect]" in page and "invalid_grant" in page
    assert re.search(r"expires \d{1,2} [A-Z][a-z]{2} 20\d\d \d\d:\d\d ", page)  # the expiry, in XERO_TIMEZONE


@pytest.mark.slow
def test_disconnect_asks_for_confirmation(app_settings, fake_xero):
    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    at = open_page("connection")
    button(at, "Disconnect…").click().run()  # the first one: organisation sorts before practice
    assert "Yes, disconnect" in [b.label for b in at.button]
    button(at, "Cancel").click().run()
    assert "Yes, disconnect" not in [b.label for b in at.button]

    button(at, "Disconnect…").click().run()
    button(at, "Yes, disconnect").click().run()
    assert not errors(at), errors(at)
    from xero_core.connections import get_connection

    assert get_connection(app_settings, org)["status"] == "disconnected"
    assert "Disconnected" in texts(at)
    # a disconnected organisation leaves the picker
    assert org not in at.selectbox(key="_tenant_picker").options


@pytest.mark.slow
def test_picker_choice_is_shared_by_pages(app_settings, fake_xero):
    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    at = open_page("data")  # a new tab: the one organisation is chosen by itself
    assert at.selectbox(key="_tenant_picker").value == org
    assert "Choose an organisation in the sidebar" not in texts(at)
    choose_tenant(at, org)
    assert "Choose an organisation" not in texts(at)
    at.switch_page("pages/sync.py").run()
    assert at.selectbox(key="_tenant_picker").value == org


@pytest.mark.slow
def test_password_gate_on_every_page(app_settings, monkeypatch):
    monkeypatch.setenv("XERO_ADMIN_PASSWORD", "correct horse battery")
    at = new_app().run()
    assert [t.value for t in at.title] == ["Ledgerlink admin"]
    assert "No organisation" not in texts(at)
    at.switch_page("pages/webhooks.py").run()
    assert "Webhooks" not in [t.value for t in at.title]

    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert any("not right" in e.value for e in at.error)
    at.text_input[0].input("correct horse battery")
    at.button[0].click().run()
    assert "Webhooks" in [t.value for t in at.title]
    assert "correct horse battery" not in texts(at)


def test_password_compare_is_constant_time_and_exact():
    from app_support.auth import password_ok

    assert password_ok("s3cret", "s3cret")
    assert not password_ok("s3cre", "s3cret") and not password_ok("", "s3cret")
    assert password_ok("pässword", "pässword")


@pytest.mark.slow
def test_no_secret_is_ever_rendered(app_settings, fake_xero):
    from xero_core import tokens
    from xero_core.practice.webhooks import set_webhook_key

    fake, _ = fake_xero
    connect(app_settings, fake)
    key = "k" * 20 + "WXYZsecretwebhookkey0123456789"
    set_webhook_key(app_settings, key)
    _, grant = tokens.find_grant(app_settings, tenant_of(app_settings, "ORGANISATION"))
    secrets_ = [grant["access_token"], grant["refresh_token"], app_settings.client_secret, key]
    at = new_app().run()
    for page in PAGES:
        if page != "connection":
            at.switch_page(f"pages/{page}.py").run()
        dump = texts(at) + str(at.main) + str(at.sidebar)
        for secret in secrets_:
            assert secret not in dump, page


@pytest.mark.slow
def test_engine_errors_become_sentences_with_the_next_step(app_settings, fake_xero, monkeypatch):
    from app_support import engine
    from xero_core.errors import ReconnectNeeded

    fake, _ = fake_xero
    connect(app_settings, fake)

    def boom(*a, **k):
        raise ReconnectNeeded("Xero refused the refresh token (invalid_grant).", tenant_id="t-1")

    monkeypatch.setattr(engine, "budget_status", boom)
    at = open_page("sync")
    msg = " ".join(errors(at))
    assert "invalid_grant" in msg and "reconnect this organisation" in msg
    assert not at.exception


@pytest.mark.slow
def test_unexpected_errors_show_no_traceback(app_settings, monkeypatch):
    from app_support import engine

    def boom(*a, **k):
        raise KeyError("internal detail /secret/path")

    monkeypatch.setattr(engine, "webhook_status", boom)
    at = open_page("webhooks")
    msg = " ".join(errors(at))
    assert "Something unexpected went wrong" in msg and "Reload the page" in msg
    assert "/secret/path" not in msg and not at.exception


@pytest.mark.slow
def test_reset_demo_restores_the_starting_state(app_settings, fake_xero):
    from xero_core import db
    from xero_core.connections import list_connections
    from xero_core.practice.clients import add_client
    from xero_core.schema import TABLES

    from xero_core.practice.documents import add_document
    from xero_core.practice.webhooks import webhook_status
    from xero_core.ratelimit import budget_status
    from xero_core.engine import Engine

    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    Engine(app_settings).sync(org, only="accounts")  # one API call, counted in the budget
    cid = add_client(app_settings, "Workshop Client", "ws@example.com")
    add_document(app_settings, cid, b"%PDF-1.4 letter", file_name="letter.pdf")
    from app_support.webhook_route import _handle

    assert _handle(b"{}", "bad") == 401  # a refused delivery is counted in the spool
    assert list_connections(app_settings) and any(app_settings.vault_dir.iterdir())
    assert budget_status(app_settings, org)["calls_today"] > 0
    from xero_core import scheduling

    scheduling.update_state(app_settings, last_run="2026-12-05T06:00:00+11:00", paused=True,
                            last_result={"ok": True, "tenants": [{"tenant_id": org}]})

    at = open_page("clients")
    button(at, "Reset everything").click().run()
    assert not errors(at), errors(at)
    assert "back to its starting state" in texts(at)
    assert list_connections(app_settings, include_disconnected=True) == []
    with db.connect(app_settings.db_path) as con:
        assert all(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] == 0 for t in TABLES)
    assert list(app_settings.vault_dir.iterdir()) == []
    assert list((app_settings.data_dir / "documents").rglob("*.*")) == []
    assert budget_status(app_settings, org)["calls_today"] == 0
    assert webhook_status(app_settings)["last_verification_failure_at"] is None
    state = scheduling.read_state(app_settings)
    assert state["last_run"] is None and state["last_result"] is None and state["paused"]  # a pause is a choice
    # the fake forgot the consent too: its connections list is empty for a new grant
    assert "No organisation is connected yet" in texts(open_page("connection"))


def test_reset_demo_refuses_outside_mock_mode(settings):
    from dataclasses import replace

    from app_support.demo_reset import reset_demo
    from xero_core.errors import LedgerlinkError

    with pytest.raises(LedgerlinkError, match="only runs in mock mode"):
        reset_demo(replace(settings, mock_mode=False))




def test_run_demo_binds_to_localhost_and_follows_the_app_port():
    from xero_core.cli import build_parser
    from xero_core.commands import demo_app

    argv = demo_app.streamlit_argv(8611)
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[4].endswith("app.py")
    assert "--server.address=127.0.0.1" in argv and "--server.port=8611" in argv
    assert demo_app.app_port("http://localhost:8502") == 8502 and demo_app.app_port("https://admin.example.com") == 8501
    args = build_parser().parse_args(["run-demo", "--port", "8611", "--seed", "7"])
    assert args.handler is demo_app.run_demo and (args.port, args.seed) == (8611, 7)


@pytest.mark.slow
def test_oidc_sign_in_when_an_auth_section_is_configured(app_settings, monkeypatch):
    monkeypatch.setenv("XERO_ADMIN_PASSWORD", "ignored when OIDC is configured")
    at = new_app()
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "admin-app", "client_secret": "s", "server_metadata_url": "https://idp/.well-known"}
    at.user = {"is_logged_in": False}
    at.run()
    assert [b.label for b in at.button] == ["Sign in"] and not at.text_input  # st.login, no password form
    assert "No organisation" not in texts(at)

    at.user = {"is_logged_in": True, "email": "admin@example.com"}
    at.run()
    assert "Signed in as admin@example.com" in texts(at)
    assert "Connection" in [t.value for t in at.title]


@pytest.mark.slow
def test_a_damaged_database_is_one_sentence_on_every_page(app_settings):
    """Issue 14: was "Something unexpected went wrong" on every page (DuckDB's IOException)."""
    import os

    app_settings.data_dir.mkdir(parents=True, exist_ok=True)
    app_settings.db_path.write_bytes(os.urandom(32 * 1024))
    at = new_app().run()
    for page in PAGES[:-1]:
        if page != "connection":
            at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.message for e in at.exception])
        shown = errors(at)
        assert len(shown) == 1, (page, shown)
        assert str(app_settings.db_path) in shown[0] and "move it aside" in shown[0], (page, shown)
        assert "unexpected" not in texts(at)


@pytest.mark.slow
def test_a_file_where_the_data_dir_should_be_is_one_sentence(app_settings):
    app_settings.data_dir.parent.mkdir(parents=True, exist_ok=True)
    app_settings.data_dir.write_text("in the way")
    at = new_app().run()
    assert not at.exception, [e.message for e in at.exception]
    shown = errors(at)
    assert shown and all("is a file, not a folder" in x and "XERO_DATA_DIR" in x for x in shown), shown
    assert "unexpected" not in texts(at)


@pytest.mark.slow
def test_a_tenant_whose_tokens_cannot_be_read_shows_unusable(app_settings, fake_xero):
    """Issue 14: the page said "Connected" with no hint when the vault file was tampered with."""
    fake, _ = fake_xero
    connect(app_settings, fake)
    for path in app_settings.vault_dir.glob("grant-*.vault"):
        path.write_bytes(path.read_bytes()[:60])
    at = open_page("connection")
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 2 and all("truncated" in x for x in shown), shown  # one per tenant, with the fix
    assert "cannot be read" in texts(at)
    assert sum("Unusable: syncs cannot run" in m.value for m in at.markdown) == 2, [m.value for m in at.markdown]


@pytest.mark.slow
def test_a_failed_last_sync_is_marked_failed_with_its_reason(app_settings, fake_xero):
    """Issue 24 §3: the Connection page marks a failed last sync as failed, with its reason; a later
    sync that succeeds clears it."""
    from xero_core.engine import Engine
    from xero_core.pipeline import jobs as J
    from xero_core.pipeline.request import SyncRequest

    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    engine = Engine(app_settings)
    owner = J.Owner(label="test")
    job = engine.enqueue(SyncRequest(org, only=frozenset({"pnl"})))
    J.claim(app_settings, owner, job_ids=[job.job_id])
    J.finish(app_settings, job.job_id, "done", result=SyncResult(org, steps=[
        StepResult("pnl", "failed", error="Xero answered 500 for ProfitAndLoss")]))
    page = texts(open_page("connection"))
    assert ":red[failed]" in page and "The last sync failed: pnl: Xero answered 500 for ProfitAndLoss" in page
    again = engine.enqueue(SyncRequest(org, only=frozenset({"pnl"})))
    J.claim(app_settings, owner, job_ids=[again.job_id])
    J.finish(app_settings, again.job_id, "done", result=SyncResult(org))
    page = texts(open_page("connection"))
    assert "The last sync failed" not in page and ":red[failed]" not in page
