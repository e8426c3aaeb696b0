"""Each injected fault is served the way Xero serves it."""
from __future__ import annotations

import json

import httpx
import pytest

from fake_support import api, connect, make_fake
from xero_core.fake.faults import parse_spec
from xero_core.settings import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

FOLDERS = "/files.xro/1.0/Folders"
ORG = "/api.xro/2.0/Organisation"


@pytest.fixture
def fake():
    return make_fake()


@pytest.fixture
def session(fake):
    tokens = connect(fake)
    return tokens, fake.orgs[0].tenant_id


def test_429_storm_then_recovery(fake, session):
    tokens, org = session
    fake.faults.add("429", count=3, seconds=7)
    for _ in range(3):
        r = api(fake, tokens["access_token"], FOLDERS, org)
        assert r.status_code == 429 and r.content == b""
        assert r.headers["retry-after"] == "7" and r.headers["x-rate-limit-problem"] == "minute"
    ok = api(fake, tokens["access_token"], FOLDERS, org)
    assert ok.status_code == 200 and ok.headers["x-minlimit-remaining"] == "59"
    assert [r.fault for r in fake.requests[-4:]] == ["429", "429", "429", None]


def test_day_storm_names_the_day(fake, session):
    tokens, org = session
    fake.faults.add("429", problem="day", seconds=3600)
    r = api(fake, tokens["access_token"], FOLDERS, org)
    assert r.headers["x-rate-limit-problem"] == "day" and r.headers["retry-after"] == "3600"
    assert r.headers["x-daylimit-remaining"] == "0" and r.content == b""


def test_500_and_503_problem_json(fake, session):
    tokens, org = session
    fake.faults.add("500")
    fake.faults.add("503", path="Organisation")
    r = api(fake, tokens["access_token"], FOLDERS, org)
    assert r.status_code == 500 and r.json()["Status"] == 500
    r = api(fake, tokens["access_token"], ORG, org)
    assert r.status_code == 503
    body = r.json()
    assert body["Detail"] == "ServiceNotAvailable" and body["Instance"] == r.headers["xero-correlation-id"]
    assert api(fake, tokens["access_token"], ORG, org).status_code == 200


def test_slow_answer_takes_time_on_the_fakes_clock(fake, session):
    tokens, org = session
    fake.faults.add("slow", seconds=12)
    before = fake.clock.time()
    assert api(fake, tokens["access_token"], FOLDERS, org).status_code == 200
    assert fake.clock.time() - before == 12


def test_timeout_raises_read_timeout_in_process(fake, session):
    tokens, org = session
    fake.faults.add("timeout", path="Folders")
    with pytest.raises(httpx.ReadTimeout):
        api(fake, tokens["access_token"], FOLDERS, org)
    assert fake.requests[-1].status == 0 and fake.requests[-1].fault == "timeout"
    assert api(fake, tokens["access_token"], FOLDERS, org).status_code == 200


def test_truncated_and_malformed_bodies(fake, session):
    tokens, org = session
    full = api(fake, tokens["access_token"], ORG, org).content
    fake.faults.add("truncated")
    cut = api(fake, tokens["access_token"], ORG, org)
    assert cut.status_code == 200 and 0 < len(cut.content) < len(full)
    with pytest.raises(ValueError):
        json.loads(cut.content)
    fake.faults.add("malformed")
    bad = api(fake, tokens["access_token"], ORG, org)
    assert bad.status_code == 200 and bad.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError):
        bad.json()


def test_token_expires_mid_sync_and_refresh_recovers(fake, session):
    tokens, org = session
    fake.faults.add("expired_token", after=2)
    assert api(fake, tokens["access_token"], FOLDERS, org).status_code == 200
    assert api(fake, tokens["access_token"], FOLDERS, org).status_code == 200
    r = api(fake, tokens["access_token"], FOLDERS, org)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer error=invalid_token"
    assert r.json()["Detail"].startswith("TokenExpired")
    with httpx.Client(transport=fake.transport()) as c:
        new = c.post("http://f/connect/token", data={"grant_type": "refresh_token",
                                                     "refresh_token": tokens["refresh_token"]},
                     auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)).json()
    assert api(fake, new["access_token"], FOLDERS, org).status_code == 200


def test_revoked_connection_is_403_from_then_on(fake, session):
    tokens, org = session
    fake.faults.add("revoked", path="Organisation")
    assert api(fake, tokens["access_token"], FOLDERS, org).status_code == 200
    assert api(fake, tokens["access_token"], ORG, org).status_code == 403
    assert api(fake, tokens["access_token"], FOLDERS, org).status_code == 403
    tenants = {c["tenantId"] for c in api(fake, tokens["access_token"], "/connections", None).json()}
    assert org not in tenants


def test_refresh_refused_by_fault(fake, session):
    tokens, _ = session
    fake.faults.add("invalid_grant", path="/connect/token")
    with httpx.Client(transport=fake.transport()) as c:
        r = c.post("http://f/connect/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                   auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_faults_match_path_and_tenant_only(fake, session):
    tokens, org = session
    fake.faults.add("503", path="Organisation", tenant_id="someone-else", count=None)
    fake.faults.add("503", path="/Invoices", count=None)
    assert api(fake, tokens["access_token"], ORG, org).status_code == 200
    assert api(fake, tokens["access_token"], FOLDERS, org).status_code == 200
    assert api(fake, tokens["access_token"], "/api.xro/2.0/Invoices", org).status_code == 503
    assert api(fake, tokens["access_token"], "/api.xro/2.0/Invoices", org).status_code == 503  # count=None: forever
    # without a path a fault never touches identity endpoints
    fake.faults.clear()
    fake.faults.add("503", count=None)
    assert connect(fake)["access_token"]


@pytest.mark.slow
def test_fault_specs_and_admin_route(fake, session):
    assert parse_spec("503:path=Invoices,count=2") == {"kind": "503", "path": "Invoices", "count": 2}
    assert parse_spec("429:count=inf,seconds=30,problem=day") == {"kind": "429", "count": None, "seconds": 30.0,
                                                                  "problem": "day"}
    with pytest.raises(ValueError, match="key=value"):
        parse_spec("503:oops")
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.faults.add("gremlins")
    with httpx.Client(transport=fake.transport()) as c:
        r = c.post("http://f/_fake/faults", json={"spec": "503:path=Folders"})
        assert r.status_code == 200 and r.json()["kind"] == "503"
        assert c.post("http://f/_fake/faults", json={"spec": "nope"}).status_code == 400
        assert len(c.get("http://f/_fake/faults").json()) == 1
    tokens, org = session
    assert api(fake, tokens["access_token"], FOLDERS, org).status_code == 503
