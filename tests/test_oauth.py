"""Consent -> callback -> tokens -> connections, state checks, PKCE, errors, disconnect."""
from __future__ import annotations

import base64
import logging
import urllib.parse

import pytest

from identity_fake import FakeClock, IdentityFake
from xero_core import connections, oauth, tokens
from xero_core.errors import OAuthError, ReconnectNeeded
from xero_core.vault import Vault


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def fake(clock):
    return IdentityFake(clock=clock)


def connect(settings, fake, clock, **consent_kw):
    url = oauth.begin_connect(settings, clock=clock)
    callback = fake.consent(url, **consent_kw)
    return oauth.complete_connect(settings, callback, transport=fake.transport(), clock=clock)


def test_full_flow_records_every_tenant_and_stores_tokens(settings, fake, clock):
    url = oauth.begin_connect(settings, clock=clock)
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert url.startswith(settings.authorize_url)
    assert q["code_challenge_method"] == ["S256"] and q["redirect_uri"] == [settings.redirect_uri]
    assert set(q["scope"][0].split()) == set(settings.scopes)
    recorded = oauth.complete_connect(settings, fake.consent(url), transport=fake.transport(), clock=clock)

    assert {r["tenant_type"] for r in recorded} == {"ORGANISATION", "PRACTICEMANAGER"}
    rows = {c["tenant_id"]: c for c in connections.list_connections(settings)}
    assert set(rows) == {t.tenant_id for t in fake.tenants}
    for t in fake.tenants:
        row = rows[t.tenant_id]
        assert row["status"] == "connected" and row["connection_id"] == t.connection_id
        assert row["tenant_type"] == t.type and row["auth_event_id"]
    assert rows[fake.tenants[1].tenant_id]["xpm_enabled"] is True

    # PKCE verifier sent; client secret went in the Basic header, not the body
    exchange = fake.token_requests[0]
    assert exchange["grant_type"] == "authorization_code" and 43 <= len(exchange["code_verifier"]) <= 128
    assert "client_secret" not in exchange
    # one token set serving both tenants; the pending state is used up
    gid, grant = tokens.find_grant(settings, fake.tenants[0].tenant_id)
    assert grant["tenant_ids"] == sorted(t.tenant_id for t in fake.tenants)
    assert grant["access_token"] == fake.sets[0].access
    assert Vault(settings).names("pending-") == []


def test_state_mismatch_and_replay_rejected(settings, fake, clock):
    url = oauth.begin_connect(settings, clock=clock)
    callback = fake.consent(url)
    forged = callback.replace("state=", "state=x")
    with pytest.raises(OAuthError) as ei:
        oauth.complete_connect(settings, forged, transport=fake.transport(), clock=clock)
    assert ei.value.code == "state_mismatch" and "Connect again" in str(ei.value)
    assert fake.token_requests == []  # nothing exchanged
    oauth.complete_connect(settings, callback, transport=fake.transport(), clock=clock)
    with pytest.raises(OAuthError) as ei:  # the same redirect twice: state already used
        oauth.complete_connect(settings, callback, transport=fake.transport(), clock=clock)
    assert ei.value.code == "state_mismatch"


def test_expired_pending_state_rejected(settings, fake, clock):
    url = oauth.begin_connect(settings, clock=clock)
    callback = fake.consent(url)
    clock.advance(oauth.PENDING_TTL_SECONDS + 1)
    with pytest.raises(OAuthError) as ei:
        oauth.complete_connect(settings, callback, transport=fake.transport(), clock=clock)
    assert ei.value.code == "state_expired" and "10 minutes" in str(ei.value)
    assert connections.list_connections(settings) == []


def test_fake_verifies_s256_challenge_against_verifier(settings, fake, clock):
    url = oauth.begin_connect(settings, clock=clock)
    callback = fake.consent(url)
    v = Vault(settings)
    (name,) = v.names("pending-")
    item = v.read(name)
    item["code_verifier"] = "W" * 64  # not the verifier the challenge was made from
    v.write(name, item)
    with pytest.raises(OAuthError) as ei:
        oauth.complete_connect(settings, callback, transport=fake.transport(), clock=clock)
    assert ei.value.code == "invalid_grant"
    assert tokens.grant_ids(settings) == []


@pytest.mark.parametrize("error", ["access_denied", "invalid_scope", "unauthorized_client"])
def test_callback_errors_become_plain_advice(settings, fake, clock, error):
    url = oauth.begin_connect(settings, clock=clock)
    with pytest.raises(OAuthError) as ei:
        oauth.complete_connect(settings, fake.consent(url, error=error), transport=fake.transport(), clock=clock)
    assert ei.value.code == error
    assert oauth.oauth_error_advice(error) in str(ei.value)
    assert Vault(settings).names("pending-") == []


def test_every_code_has_its_own_advice():
    codes = ["access_denied", "invalid_scope", "unauthorized_client", "invalid_grant", "state_mismatch",
             "state_expired", "invalid_client", "server_error", "temporarily_unavailable"]
    texts = {oauth.oauth_error_advice(c) for c in codes}
    assert len(texts) == len(codes)
    assert oauth.oauth_error_advice("something_new") == oauth.oauth_error_advice("unknown")
    assert "granular" in oauth.oauth_error_advice("invalid_scope")


def test_wrong_client_secret_is_invalid_client(make_settings, fake, clock):
    s = make_settings(XERO_CLIENT_SECRET="not-the-secret")
    with pytest.raises(OAuthError) as ei:
        connect(s, fake, clock)
    assert ei.value.code == "invalid_client" and "XERO_CLIENT_SECRET" in str(ei.value)


def test_reconnect_moves_tenants_to_the_new_token_set(settings, fake, clock):
    connect(settings, fake, clock)
    first = tokens.grant_ids(settings)
    connect(settings, fake, clock)
    second = tokens.grant_ids(settings)
    assert len(first) == len(second) == 1 and first != second


def test_disconnect_deletes_connection_then_revokes_last_tenant(settings, fake, clock):
    connect(settings, fake, clock)
    org, xpm = fake.tenants
    r1 = oauth.disconnect(settings, org.tenant_id, transport=fake.transport(), clock=clock)
    assert r1["connection_deleted"] and not r1["revoked"]  # the set still serves the XPM tenant
    assert fake.deleted_connections == [org.connection_id] and fake.revoked == []
    assert connections.get_connection(settings, org.tenant_id)["status"] == "disconnected"
    assert tokens.find_grant(settings, org.tenant_id) == (None, None)
    assert tokens.find_grant(settings, xpm.tenant_id)[1] is not None

    r2 = oauth.disconnect(settings, xpm.tenant_id, transport=fake.transport(), clock=clock)
    assert r2["connection_deleted"] and r2["revoked"]
    assert fake.revoked == [fake.sets[0].refresh] or len(fake.revoked) == 1
    assert tokens.grant_ids(settings) == []
    assert connections.list_connections(settings) == []
    assert len(connections.list_connections(settings, include_disconnected=True)) == 2


def test_disconnect_with_revoked_token_marks_needs_reconnect_once(settings, fake, clock):
    connect(settings, fake, clock)
    org = fake.tenants[0]
    for ts in fake.sets:
        ts.revoked = True  # revoked from Xero's side
    clock.advance(1800)  # access token expired: the disconnect must refresh, and gets invalid_grant
    with pytest.raises(ReconnectNeeded):
        oauth.disconnect(settings, org.tenant_id, transport=fake.transport(), clock=clock)
    row = connections.get_connection(settings, org.tenant_id)
    assert row["status"] == "needs_reconnect" and "Reconnect" in row["status_reason"]
    refreshes = len(fake.token_requests)
    with pytest.raises(ReconnectNeeded):  # the other tenant: dead set, no second network call
        tokens.TokenManager(settings, transport=fake.transport(), clock=clock).access_token(fake.tenants[1].tenant_id)
    assert len(fake.token_requests) == refreshes


def _variants(token: str) -> list[bytes]:
    raw = token.encode()
    return [raw, urllib.parse.quote(token, safe="").encode(), base64.b64encode(raw),
            base64.urlsafe_b64encode(raw).rstrip(b"=")]


def test_no_token_text_in_logs_data_dir_or_duckdb(settings, fake, clock, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "authlib", "xero_core"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    connect(settings, fake, clock)
    clock.advance(1700)
    tm = tokens.TokenManager(settings, transport=fake.transport(), clock=clock)
    access = tm.access_token(fake.tenants[0].tenant_id)  # refresh
    logging.getLogger("xero_core.test").debug("leak attempt Bearer %s and token=%s", access, fake.sets[0].refresh)
    oauth.disconnect(settings, fake.tenants[0].tenant_id, transport=fake.transport(), clock=clock)
    assert fake.refresh_count == 1 and len(fake.issued) >= 4

    log_text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert "HTTP Request" in log_text and "Refreshed" in log_text  # logs were captured at all
    assert "leak attempt Bearer [redacted] and token=[redacted]" in log_text
    blobs = [(p, p.read_bytes()) for p in settings.data_dir.rglob("*") if p.is_file()]
    assert any(p == settings.db_path for p, _ in blobs)  # the working database is scanned too
    for token in fake.issued:
        for v in _variants(token):
            assert v.decode() not in log_text
            for p, blob in blobs:
                assert v not in blob, f"token text found in {p}"


def test_unreachable_token_endpoint_names_the_url(settings, fake, clock):
    import httpx

    url = oauth.begin_connect(settings, clock=clock)
    callback = fake.consent(url)

    def down(request):
        raise httpx.ConnectError("connection refused")

    with pytest.raises(OAuthError) as ei:
        oauth.complete_connect(settings, callback, transport=httpx.MockTransport(down), clock=clock)
    assert ei.value.code == "temporarily_unavailable" and settings.token_url in str(ei.value)


def test_redaction_keeps_a_bounded_list_of_recent_secrets():
    from xero_core import redaction

    for i in range(400):
        redaction.register(f"secret-number-{i:04d}-" + "z" * 20)
    assert len(redaction._secrets) <= redaction._MAX_VARIANTS
    newest = "secret-number-0399-" + "z" * 20
    assert redaction.redact(f"x {newest} y") == f"x {redaction.MASK} y"


def test_failed_connections_call_leaves_no_orphan_token_set(settings, fake, clock):
    import httpx

    url = oauth.begin_connect(settings, clock=clock)
    callback = fake.consent(url)
    fake.api_handler = None

    def handler(request):
        if request.url.path == "/connections":
            return httpx.Response(503, json={"Detail": "ServiceNotAvailable"})
        return fake.handle(request)

    with pytest.raises(OAuthError) as ei:
        oauth.complete_connect(settings, callback, transport=httpx.MockTransport(handler), clock=clock)
    assert ei.value.code == "server_error" and tokens.grant_ids(settings) == []
    # and an abandoned tenant-less set (a crash mid-connect) is swept by the next Connect
    tokens.save_new_grant(settings, {"access_token": "a" * 40, "refresh_token": "r" * 40}, clock)
    clock.advance(oauth.ORPHAN_GRANT_SECONDS + 1)
    oauth.begin_connect(settings, clock=clock)
    assert tokens.grant_ids(settings) == []


def test_unreadable_pending_state_is_a_state_error_not_a_crash(settings, make_settings, fake, clock):
    import secrets

    url = oauth.begin_connect(settings, clock=clock)
    other_key = make_settings(XERO_ENCRYPTION_KEY=secrets.token_hex(32))  # the key changed mid-consent
    with pytest.raises(OAuthError) as ei:
        oauth.complete_connect(other_key, fake.consent(url), transport=fake.transport(), clock=clock)
    assert ei.value.code == "state_mismatch" and Vault(settings).names("pending-") == []


@pytest.mark.parametrize("answer", [200, 503])
@pytest.mark.slow
def test_consent_stays_pending_until_its_outcome_is_recorded(settings, fake, clock, answer):
    """The Connection page in the tab that opened the consent redraws once consent_pending turns
    False. It turned False as soon as the callback took the single-use state, before any connection
    was written: the page redrew with none, stopped watching and stayed on "No organisation is
    connected yet" (the browser test's flake). It must stay True until the connections are recorded
    or the error is known, and the state must still be single use meanwhile."""
    import httpx

    url = oauth.begin_connect(settings, clock=clock)
    callback = fake.consent(url)
    fake.api_handler = None
    seen = []

    def handler(request):
        if request.url.path == "/connections":
            seen.append((oauth.consent_pending(settings, url), connections.list_connections(settings)))
            with pytest.raises(OAuthError) as replay:  # the same redirect meanwhile: already used
                oauth.complete_connect(settings, callback, transport=fake.transport(), clock=clock)
            assert replay.value.code == "state_mismatch"
            if answer != 200:
                return httpx.Response(answer, json={"Detail": "ServiceNotAvailable"})
        return fake.handle(request)

    if answer == 200:
        oauth.complete_connect(settings, callback, transport=httpx.MockTransport(handler), clock=clock)
        assert connections.list_connections(settings)
    else:
        with pytest.raises(OAuthError):
            oauth.complete_connect(settings, callback, transport=httpx.MockTransport(handler), clock=clock)
    assert seen == [(True, [])]
    assert not oauth.consent_pending(settings, url) and Vault(settings).names("pending-") == []
