"""Xero's rate limits as the fake serves them (xero-notes §2)."""
from __future__ import annotations

import threading

import pytest

from fake_support import api, connect, make_fake
from xero_core.fake import FakeClock
from xero_core.fake.limits import Limits
from xero_core.settings import DEMO_CLIENT_ID

FOLDERS = "/files.xro/1.0/Folders"


@pytest.fixture
def fake():
    return make_fake()


@pytest.fixture
def session(fake):
    return connect(fake)["access_token"], fake.orgs[0].tenant_id


def test_61st_call_in_a_minute_gets_429_with_xeros_headers(fake, session):
    tok, org = session
    for i in range(60):
        r = api(fake, tok, FOLDERS, org)
        assert r.status_code == 200
        assert r.headers["x-minlimit-remaining"] == str(59 - i)
        assert r.headers["x-daylimit-remaining"] == str(4999 - i)
        assert r.headers["x-appminlimit-remaining"] == str(9999 - i)
    fake.clock.advance(20)
    r = api(fake, tok, FOLDERS, org)
    assert r.status_code == 429 and r.content == b""
    assert r.headers["x-rate-limit-problem"] == "minute"
    assert r.headers["retry-after"] == "40"
    assert r.headers["x-minlimit-remaining"] == "0" and r.headers["x-daylimit-remaining"] == "4940"
    assert r.headers["xero-correlation-id"]
    fake.clock.advance(40)
    again = api(fake, tok, FOLDERS, org)
    assert again.status_code == 200 and again.headers["x-minlimit-remaining"] == "59"
    assert again.headers["x-daylimit-remaining"] == "4939"  # the refused call did not count


def test_every_tenant_call_counts_4xx_too_and_apis_share_the_counter(fake, session):
    tok, org = session
    assert api(fake, tok, "/files.xro/1.0/Files/00000000-0000-0000-0000-000000000000", org).status_code == 404
    bad = api(fake, tok, FOLDERS, org, "POST", json={"Name": "a/b"})
    assert bad.status_code == 400 and bad.headers["x-minlimit-remaining"] == "58"
    r = api(fake, tok, "/api.xro/2.0/Organisation", org)  # accounting: the same tenant counter
    assert r.headers["x-minlimit-remaining"] == "57"
    assert fake.limits.used(DEMO_CLIENT_ID, org)["minute"] == 3
    assert fake.api_calls(org) == 3 and fake.api_calls() == 3  # identity calls are not API calls
    assert [r.status for r in fake.requests if r.tenant_id == org] == [404, 400, 200]


def test_connections_count_only_against_the_app(fake, session):
    tok, org = session
    for _ in range(70):
        r = api(fake, tok, "/connections", None)
        assert r.status_code == 200
    assert r.headers["x-appminlimit-remaining"] == str(10000 - 70)
    assert "x-minlimit-remaining" not in r.headers
    assert api(fake, tok, FOLDERS, org).headers["x-minlimit-remaining"] == "59"


def test_day_limit_through_the_handler(fake, session):
    tok, org = session
    fake.limits.set_used(DEMO_CLIENT_ID, org, day=4999)
    last = api(fake, tok, FOLDERS, org)
    assert last.status_code == 200 and last.headers["x-daylimit-remaining"] == "0"
    fake.clock.advance(1200)
    r = api(fake, tok, FOLDERS, org)
    assert r.status_code == 429 and r.headers["x-rate-limit-problem"] == "day"
    assert int(r.headers["retry-after"]) == 86400 - 1200
    fake.clock.advance(86400 - 1200)
    fresh = connect(fake)["access_token"]  # a day later the old access token is long expired
    assert api(fake, fresh, FOLDERS, org).status_code == 200


def test_day_limit_counts_5000_calls_across_minutes():
    clock = FakeClock()
    lim = Limits(clock)
    served = 0
    while True:
        d = lim.admit("app", "t1")
        if not d.ok:
            break
        lim.release("app", "t1")
        served += 1
        if served % 60 == 0:
            clock.advance(60)
    assert served == 5000 and d.problem == "day"
    assert lim.admit("app", "t2").ok  # another tenant has its own day


def test_app_minute_limit_across_tenants():
    lim = Limits(FakeClock())
    for t in range(10000 // 50):
        for _ in range(50):
            assert lim.admit("app", f"t{t}").ok
            lim.release("app", f"t{t}")
    d = lim.admit("app", "fresh-tenant")
    assert not d.ok and d.problem == "appminute" and d.headers["X-AppMinLimit-Remaining"] == "0"
    assert lim.admit("other-app", "fresh-tenant").ok


def test_fixed_windows_start_at_each_tenants_first_call():
    clock = FakeClock()
    lim = Limits(clock, per_minute=2)
    lim.admit("a", "t1"), lim.admit("a", "t1")
    clock.advance(30)
    lim.admit("a", "t2"), lim.admit("a", "t2")
    assert lim.admit("a", "t1").retry_after == 30 and lim.admit("a", "t2").retry_after == 60
    clock.advance(30)
    assert lim.admit("a", "t1").ok and not lim.admit("a", "t2").ok


@pytest.mark.slow
def test_sixth_concurrent_call_is_refused_in_process(fake, session):
    tok, org = session
    gate = threading.Event()
    fake.faults.add("slow", path=FOLDERS, count=5, gate=gate, seconds=10)
    results = []
    threads = [threading.Thread(target=lambda: results.append(api(fake, tok, FOLDERS, org).status_code))
               for _ in range(5)]
    for t in threads:
        t.start()
    try:
        assert fake.limits.wait_in_flight(5, timeout=10, tenant_id=org)
        r = api(fake, tok, FOLDERS, org)
        assert r.status_code == 429 and r.headers["x-rate-limit-problem"] == "concurrent"
        assert r.headers["retry-after"] == "1" and r.content == b""
    finally:
        gate.set()
        for t in threads:
            t.join(10)
    assert results == [200] * 5
    assert api(fake, tok, FOLDERS, org).status_code == 200
