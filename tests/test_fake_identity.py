"""The fake's identity service behaves as Xero's does (xero-notes §1) and its JSON fits Xero's spec."""
from __future__ import annotations

import json
import re

import httpx
import pytest

from fake_support import (REDIRECT, SCOPES, api, authorize_url, connect, make_fake, pkce_pair, query_of,
                          validate_response)
from xero_core.fake.consent import _Form
from xero_core.settings import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

TOKEN = "http://fake.test/connect/token"


@pytest.fixture
def fake():
    return make_fake()


@pytest.fixture
def client(fake):
    with httpx.Client(transport=fake.transport()) as c:
        yield c


def _code(fake, scope=SCOPES, challenge=None, **kw):
    return query_of(fake.consent(authorize_url(scope=scope, challenge=challenge, **kw)))["code"]


def test_consent_page_is_a_plain_accessible_form(client, fake):
    page = client.get(authorize_url())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "<script" not in text.lower()
    form = _Form()
    form.feed(text)
    assert form.method == "post" and form.action == "/identity/connect/authorize"
    tenants = {v for _, v, _ in form.boxes}
    assert tenants == {fake.orgs[0].tenant_id, fake.practices[0].tenant_id}  # the practice too (XPM scope asked)
    for i in range(len(tenants)):
        assert f'<label for="tenant-{i}">' in text and f'id="tenant-{i}"' in text
    assert {v for _, v in form.buttons} == {"allow", "deny"}


def test_full_flow_pkce_and_connections_match_the_spec(fake, client):
    import jsonschema

    from fake_support import load_spec

    tokens = connect(fake, client=client)
    jsonschema.validate(tokens, load_spec("xero-identity.yaml")["components"]["schemas"]["AccessToken"])
    assert tokens["expires_in"] == 1800 and tokens["token_type"] == "Bearer"
    assert {"access_token", "refresh_token", "id_token", "scope"} <= tokens.keys()
    assert tokens["access_token"].count(".") == 2  # a JWT, like Xero's
    r = api(fake, tokens["access_token"], "/connections", None)
    assert r.status_code == 200
    validate_response("xero-identity.yaml", "/Connections", "get", r)
    assert ("GET", "/Connections") in fake.validated  # make_fake checks on the way out too
    conns = r.json()
    assert {c["tenantType"] for c in conns} == {"ORGANISATION", "PRACTICEMANAGER"}
    for c in conns:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}", c["createdDateUtc"])
        assert set(c) == {"id", "authEventId", "tenantId", "tenantType", "tenantName", "createdDateUtc", "updatedDateUtc"}
    # /connections counts against the app only: no tenant headers
    assert "x-minlimit-remaining" not in r.headers and "x-appminlimit-remaining" in r.headers
    assert r.headers["xero-correlation-id"]


def test_client_auth_in_form_body_is_accepted(fake, client):
    verifier, challenge = pkce_pair()
    code = _code(fake, challenge=challenge)
    r = client.post(TOKEN, data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                 "code_verifier": verifier, "client_id": DEMO_CLIENT_ID,
                                 "client_secret": DEMO_CLIENT_SECRET})
    assert r.status_code == 200, r.text


def test_deny_redirects_with_access_denied(fake):
    url = fake.consent(authorize_url(state="s-9"), allow=False)
    q = query_of(url)
    assert url.startswith(REDIRECT) and q == {"error": "access_denied", "state": "s-9"}


def test_granular_only_app_refuses_broad_scopes_legacy_allows(fake):
    for broad in ("accounting.transactions", "accounting.reports.read", "accounting.transactions.read"):
        q = query_of(fake.consent(authorize_url(scope=f"offline_access {broad}")))
        assert q["error"] == "invalid_scope" and q["state"] == "st-123"
    legacy = make_fake(legacy_scopes=True)
    q = query_of(legacy.consent(authorize_url(scope="offline_access accounting.transactions accounting.reports.read")))
    assert "code" in q


def test_unknown_client_or_redirect_is_an_error_page_not_a_redirect(client):
    r = client.get(authorize_url(client_id="nope"))
    assert r.status_code == 400 and "unauthorized_client" in r.text
    r = client.get(authorize_url(redirect_uri="http://evil.example/cb"))
    assert r.status_code == 400 and "location" not in r.headers


def test_code_is_single_use_and_expires_after_5_minutes(fake, client):
    verifier, challenge = pkce_pair()
    form = {"grant_type": "authorization_code", "redirect_uri": REDIRECT, "code_verifier": verifier}
    code = _code(fake, challenge=challenge)
    auth = (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    assert client.post(TOKEN, data={**form, "code": code}, auth=auth).status_code == 200
    again = client.post(TOKEN, data={**form, "code": code}, auth=auth)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    late = _code(fake, challenge=challenge)
    fake.clock.advance(301)
    assert client.post(TOKEN, data={**form, "code": late}, auth=auth).json()["error"] == "invalid_grant"


def test_pkce_is_verified(fake, client):
    verifier, challenge = pkce_pair()
    auth = (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    base = {"grant_type": "authorization_code", "redirect_uri": REDIRECT}
    wrong = client.post(TOKEN, data={**base, "code": _code(fake, challenge=challenge), "code_verifier": "x" * 43}, auth=auth)
    missing = client.post(TOKEN, data={**base, "code": _code(fake, challenge=challenge)}, auth=auth)
    assert wrong.json()["error"] == missing.json()["error"] == "invalid_grant"
    ok = client.post(TOKEN, data={**base, "code": _code(fake, challenge=challenge), "code_verifier": verifier}, auth=auth)
    assert ok.status_code == 200
    q = query_of(fake.consent(authorize_url(code_challenge="abc", code_challenge_method="plain")))
    assert q["error"] == "invalid_request"


def test_token_endpoint_errors(fake, client):
    code = _code(fake)
    bad_secret = client.post(TOKEN, data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
                             auth=(DEMO_CLIENT_ID, "wrong"))
    assert bad_secret.status_code == 400 and bad_secret.json() == {"error": "invalid_client"}
    grant = client.post(TOKEN, data={"grant_type": "password"}, auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
    assert grant.json() == {"error": "unsupported_grant_type"}
    assert client.post(TOKEN, data={"grant_type": "authorization_code", "code": code, "redirect_uri": "http://x/cb"},
                       auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)).json()["error"] == "invalid_grant"


def _refresh(client, token):
    return client.post(TOKEN, data={"grant_type": "refresh_token", "refresh_token": token},
                       auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))


def test_refresh_rotates_with_30_minute_grace(fake, client):
    t0 = connect(fake, client=client)
    r1 = _refresh(client, t0["refresh_token"])
    assert r1.status_code == 200
    new = r1.json()["refresh_token"]
    assert new != t0["refresh_token"]
    fake.clock.advance(minutes=29)
    again = _refresh(client, t0["refresh_token"])  # a lost response: the old token still works...
    assert again.status_code == 200 and again.json()["refresh_token"] == new
    org = fake.orgs[0].tenant_id
    assert api(fake, again.json()["access_token"], "/files.xro/1.0/Folders", org).status_code == 200
    fake.clock.advance(minutes=2)
    dead = _refresh(client, t0["refresh_token"])  # ...until the grace ends
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"
    newest = _refresh(client, new)  # and the newer token stays valid throughout
    assert newest.status_code == 200


def test_refresh_token_dies_after_60_idle_days(fake, client):
    t0 = connect(fake, client=client)
    fake.clock.advance(days=60, seconds=1)
    assert _refresh(client, t0["refresh_token"]).json()["error"] == "invalid_grant"


def test_access_token_expires_after_30_minutes(fake):
    t0 = connect(fake)
    org = fake.orgs[0].tenant_id
    fake.clock.advance(1799)
    assert api(fake, t0["access_token"], "/files.xro/1.0/Folders", org).status_code == 200
    fake.clock.advance(1)
    r = api(fake, t0["access_token"], "/files.xro/1.0/Folders", org)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer error=invalid_token"
    body = r.json()
    assert body["Title"] == "Unauthorized" and body["Detail"].startswith("TokenExpired: token expired at ")
    assert body["Instance"] == r.headers["xero-correlation-id"]
    assert "x-minlimit-remaining" not in r.headers  # a 401 carries no limit headers
    garbage = api(fake, "not-a-token", "/connections", None)
    assert garbage.status_code == 401 and garbage.json()["Detail"] == "AuthenticationUnsuccessful"


def test_revocation_kills_tokens_and_connections(fake, client):
    t0 = connect(fake, client=client)
    r = client.post("http://fake.test/connect/revocation", data={"token": t0["refresh_token"]},
                    auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
    assert r.status_code == 200
    assert _refresh(client, t0["refresh_token"]).json()["error"] == "invalid_grant"
    assert api(fake, t0["access_token"], "/connections", None).status_code == 401
    assert fake.identity.connections == {}


def test_delete_connection_then_tenant_calls_are_forbidden(fake):
    t0 = connect(fake)
    tok = t0["access_token"]
    conns = api(fake, tok, "/connections", None).json()
    org = next(c for c in conns if c["tenantType"] == "ORGANISATION")
    assert api(fake, tok, f"/connections/{org['id']}", None, "DELETE").status_code == 204
    assert api(fake, tok, f"/connections/{org['id']}", None, "DELETE").status_code == 404
    r = api(fake, tok, "/files.xro/1.0/Folders", org["tenantId"])
    assert r.status_code == 403 and r.json()["Title"] == "Forbidden"
    assert list(r.headers).count("x-minlimit-remaining") == 0 and "x-appminlimit-remaining" in r.headers


def test_missing_or_unknown_tenant_is_403(fake):
    tok = connect(fake)["access_token"]
    assert api(fake, tok, "/files.xro/1.0/Folders", None).status_code == 403
    assert api(fake, tok, "/files.xro/1.0/Folders", "00000000-0000-0000-0000-000000000000").status_code == 403
    # an organisation id on the Practice Manager API (and vice versa) is not that API's tenant
    assert api(fake, tok, "/practicemanager/3.0/job.api/current", fake.orgs[0].tenant_id).status_code == 403


def test_calls_outside_granted_scopes_are_refused(fake):
    tok = connect(fake, scope="offline_access accounting.contacts.read")["access_token"]
    org = fake.orgs[0].tenant_id
    r = api(fake, tok, "/files.xro/1.0/Folders", org)
    assert r.status_code == 401 and r.json()["Detail"] == "AuthorizationUnsuccessful"
    assert "insufficient_scope" in r.headers["www-authenticate"]
    read_only = connect(make_fake(), scope="offline_access files.read")
    assert read_only["scope"] == "offline_access files.read"


def test_scopes_are_additive_across_consents(fake):
    connect(fake, scope="offline_access files.read")
    second = connect(fake, scope="offline_access accounting.contacts.read")
    assert set(second["scope"].split()) == {"offline_access", "files.read", "accounting.contacts.read"}


def test_tier_below_advanced_refuses_practice_manager_and_journals(fake):
    tok = connect(fake)["access_token"]
    practice = fake.practices[0].tenant_id
    assert api(fake, tok, "/practicemanager/3.0/job.api/current", practice).status_code == 200
    fake.set_tier("core")
    r = api(fake, tok, "/practicemanager/3.0/job.api/current", practice)
    assert r.status_code == 401 and "www-authenticate" not in r.headers
    j = api(fake, tok, "/api.xro/2.0/Journals", fake.orgs[0].tenant_id)
    assert j.status_code == 401 and j.json()["Detail"] == "AuthorizationUnsuccessful"
    with pytest.raises(ValueError, match="unknown tier"):
        fake.set_tier("platinum")
    fake.set_tier("advanced")
    for gone in ("Employees", "ExpenseClaims", "Receipts"):  # removed by Xero in April 2026
        r = api(fake, tok, f"/api.xro/2.0/{gone}", fake.orgs[0].tenant_id)
        assert r.status_code == 404 and r.text == "The resource you're looking for cannot be found"


def test_settings_env_points_the_product_at_the_fake(fake, make_settings):
    env = fake.settings_env("http://127.0.0.1:9999/")
    s = make_settings(**env)
    assert s.token_url == "http://127.0.0.1:9999/connect/token"
    assert s.authorize_url.endswith("/identity/connect/authorize") and s.api_url == "http://127.0.0.1:9999"
    assert (s.client_id, s.client_secret) == (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)


def test_registered_app_uses_its_own_credentials_and_redirects():
    fake = make_fake(apps=[{"client_id": "MYAPP", "client_secret": "s3", "redirect_uris": ["http://localhost:9000/cb"]}])
    url = fake.consent(authorize_url(client_id="MYAPP", redirect_uri="http://localhost:9000/cb", scope="offline_access files"))
    assert url.startswith("http://localhost:9000/cb?") and "code" in query_of(url)
    assert fake.settings_env("http://h")["XERO_CLIENT_ID"] == "MYAPP"
    for bad in ("http://example.com/cb", "myapp://cb", "https://*.example.com/cb"):
        with pytest.raises(ValueError, match="refused by Xero"):
            fake.register_app("X2", "s", [bad])


def test_secrets_never_appear_in_the_request_log(fake):
    tok = connect(fake)
    dumped = json.dumps([r.public() for r in fake.requests])
    assert tok["access_token"] not in dumped and tok["refresh_token"] not in dumped
    assert DEMO_CLIENT_SECRET not in dumped


def test_reconsent_keeps_the_connection_and_moves_updated_date(fake):
    first = connect(fake, tenant_ids=[fake.orgs[0].tenant_id])
    conns = api(fake, first["access_token"], "/connections", None).json()
    assert [c["tenantType"] for c in conns] == ["ORGANISATION"]  # only the ticked tenant
    fake.clock.advance(3600)
    second = connect(fake)
    again = {c["tenantId"]: c for c in api(fake, second["access_token"], "/connections", None).json()}
    org = again[fake.orgs[0].tenant_id]
    assert org["id"] == conns[0]["id"] and org["createdDateUtc"] == conns[0]["createdDateUtc"]
    assert org["updatedDateUtc"] > org["createdDateUtc"] and org["authEventId"] != conns[0]["authEventId"]
    only = api(fake, second["access_token"], "/connections", None, params={"authEventId": org["authEventId"]}).json()
    assert {c["tenantId"] for c in only} == set(again)
    assert api(fake, second["access_token"], "/connections", None,
               params={"authEventId": conns[0]["authEventId"]}).json() == []


def test_consent_page_rejects_an_empty_choice(fake, client):
    from xero_core.fake.consent import ConsentError

    with pytest.raises(ConsentError, match="at least one organisation"):
        fake.consent(authorize_url(), tenant_ids=[])
    with pytest.raises(ConsentError, match="not offered"):
        fake.consent(authorize_url(scope="offline_access files"), tenant_ids=[fake.practices[0].tenant_id])


def test_identity_state_survives_a_new_fake_on_the_same_state_dir(tmp_path):
    a = make_fake(state_dir=tmp_path)
    tokens = connect(a)
    b = make_fake(state_dir=tmp_path, clock=a.clock)
    org = b.orgs[0].tenant_id
    assert api(b, tokens["access_token"], "/files.xro/1.0/Folders", org).status_code == 200
    with httpx.Client(transport=b.transport()) as c:
        assert _refresh(c, tokens["refresh_token"]).status_code == 200


@pytest.mark.slow
def test_the_products_default_scope_profiles_meet_the_fakes_rules():
    from xero_core.settings import BROAD_SCOPES, GRANULAR_SCOPES

    granular = " ".join(GRANULAR_SCOPES)
    assert "code" in query_of(make_fake().consent(authorize_url(scope=granular)))
    assert query_of(make_fake().consent(authorize_url(scope=" ".join(BROAD_SCOPES))))["error"] == "invalid_scope"
    assert "code" in query_of(make_fake(legacy_scopes=True).consent(authorize_url(scope=" ".join(BROAD_SCOPES))))
    assert query_of(make_fake().consent(authorize_url(scope="offline_access accounting.everything")))["error"] == \
        "invalid_scope"
