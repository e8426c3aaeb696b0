"""Access tokens: early refresh, rotation, one refresh for many racers (threads and processes)."""
from __future__ import annotations

import multiprocessing
import threading
import time

import httpx
import pytest

from identity_fake import FakeClock, IdentityFake, LoopbackServer, fake_settings_env
from xero_core import connections, oauth, tokens
from xero_core.errors import ReconnectNeeded


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def fake(clock):
    return IdentityFake(clock=clock)


def connect(settings, fake, clock):
    url = oauth.begin_connect(settings, clock=clock)
    return oauth.complete_connect(settings, fake.consent(url), transport=fake.transport(), clock=clock)


def test_fresh_token_is_reused_without_network(settings, fake, clock):
    connect(settings, fake, clock)
    tm = tokens.TokenManager(settings, transport=fake.transport(), clock=clock)
    clock.advance(1800 - tokens.REFRESH_MARGIN_SECONDS - 1)
    assert tm.access_token(fake.tenants[0].tenant_id) == fake.sets[0].access
    assert fake.refresh_count == 0


def test_refresh_within_margin_rotates_and_saves_before_use(settings, fake, clock):
    connect(settings, fake, clock)
    tid = fake.tenants[0].tenant_id
    _, before = tokens.find_grant(settings, tid)
    tm = tokens.TokenManager(settings, transport=fake.transport(), clock=clock)
    clock.advance(1800 - tokens.REFRESH_MARGIN_SECONDS + 1)
    new_access = tm.access_token(tid)
    assert fake.refresh_count == 1 and new_access == fake.sets[0].access
    _, after = tokens.find_grant(settings, tid)
    assert after["access_token"] == new_access
    assert after["refresh_token"] == fake.sets[0].refresh != before["refresh_token"]  # rotated, saved
    assert after["refresh_issued_at"] == clock.time()
    # both tenants share the set: the other tenant gets the same new token, no second refresh
    assert tm.access_token(fake.tenants[1].tenant_id) == new_access and fake.refresh_count == 1
    # the rotated-away refresh token is dead at the fake (no grace here)
    with httpx.Client(transport=fake.transport()) as http:
        fake_resp = http.post(settings.token_url, auth=(settings.client_id, settings.client_secret),
                              data={"grant_type": "refresh_token", "refresh_token": before["refresh_token"]})
    assert fake_resp.status_code == 400 and fake_resp.json()["error"] == "invalid_grant"


def test_force_refresh_only_replaces_the_stale_token(settings, fake, clock):
    connect(settings, fake, clock)
    tid = fake.tenants[0].tenant_id
    tm = tokens.TokenManager(settings, transport=fake.transport(), clock=clock)
    stale = tm.access_token(tid)
    fresh = tm.force_refresh(tid, stale)
    assert fresh != stale and fake.refresh_count == 1
    assert tm.force_refresh(tid, stale) == fresh and fake.refresh_count == 1  # someone already did


def test_threads_racing_make_one_refresh(settings, fake, clock):
    connect(settings, fake, clock)
    clock.advance(3600)
    tid = fake.tenants[0].tenant_id
    barrier = threading.Barrier(8)
    results, errors = [], []

    def work():
        tm = tokens.TokenManager(settings, transport=fake.transport(), clock=clock)
        barrier.wait()
        try:
            results.append(tm.access_token(tid))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors and fake.refresh_count == 1 and len(set(results)) == 1 and len(results) == 8


def _race_child(settings, tenant_id, barrier, out):
    try:
        barrier.wait(10)
        out.put(("ok", tokens.TokenManager(settings).access_token(tenant_id)))
    except Exception as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def test_eight_processes_racing_on_expired_token_make_exactly_one_refresh(make_settings):
    clock = FakeClock(start=time.time())  # children use the real clock; the fake shares its epoch
    fake = IdentityFake(clock=clock, grace_seconds=0)  # a reused rotated token is refused outright
    server = LoopbackServer(fake)
    try:
        settings = make_settings(**fake_settings_env(server.url))
        url = oauth.begin_connect(settings, clock=clock)
        oauth.complete_connect(settings, fake.consent(url), transport=fake.transport(), clock=clock)
        tid = fake.tenants[0].tenant_id
        gid, grant = tokens.find_grant(settings, tid)
        grant["expires_at"] = time.time() - 60  # expired a minute ago
        tokens.write_grant(settings, grant)

        ctx = multiprocessing.get_context("fork")
        barrier, out = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_race_child, args=(settings, tid, barrier, out)) for _ in range(8)]
        started = time.monotonic()
        for p in procs:
            p.start()
        results = [out.get(timeout=20) for _ in procs]
        for p in procs:
            p.join(10)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    errors = [r for r in results if r[0] != "ok"]
    assert not errors, errors
    assert fake.refresh_count == 1 and fake.rejected_refreshes == 0
    assert {r[1] for r in results} == {fake.sets[0].access}
    assert tokens.find_grant(settings, tid)[1]["refresh_token"] == fake.sets[0].refresh
    assert all(p.exitcode == 0 for p in procs)
    assert elapsed < 10, f"8-process race took {elapsed:.1f} s"


def test_invalid_grant_marks_needs_reconnect_and_never_loops(settings, fake, clock):
    connect(settings, fake, clock)
    tid = fake.tenants[0].tenant_id
    fake.fail_token_with = "invalid_grant"
    clock.advance(3600)
    tm = tokens.TokenManager(settings, transport=fake.transport(), clock=clock)
    with pytest.raises(ReconnectNeeded) as ei:
        tm.access_token(tid)
    assert ei.value.tenant_id == tid and "Reconnect" in str(ei.value)
    for t in fake.tenants:
        row = connections.get_connection(settings, t.tenant_id)
        assert row["status"] == "needs_reconnect" and "invalid_grant" in row["status_reason"]
    calls = len(fake.token_requests)
    for _ in range(3):
        with pytest.raises(ReconnectNeeded):
            tm.access_token(tid)
    assert len(fake.token_requests) == calls
    assert tokens.token_summary(settings, tid, clock)["dead"]


def test_no_tokens_for_unknown_tenant_says_connect(settings, fake, clock):
    tm = tokens.TokenManager(settings, transport=fake.transport(), clock=clock)
    with pytest.raises(ReconnectNeeded, match="connect"):
        tm.access_token("no-such-tenant")


def test_refresh_token_expiry_warning_from_day_45(settings, fake, clock):
    connect(settings, fake, clock)
    tid = fake.tenants[0].tenant_id
    tm = tokens.TokenManager(settings, transport=fake.transport(), clock=clock)
    issued = clock.now()
    assert (tm.refresh_expiry(tid) - issued).days == 60
    assert tokens.token_summary(settings, tid, clock)["refresh_warning"] is None
    clock.advance(44 * 86400)
    assert tokens.token_summary(settings, tid, clock)["refresh_warning"] is None
    clock.advance(2 * 86400)
    warning = tokens.token_summary(settings, tid, clock)["refresh_warning"]
    assert warning and tm.refresh_expiry(tid).strftime("%Y-%m-%d") in warning
    tm.access_token(tid)  # using it (a refresh) moves the date on
    assert tokens.token_summary(settings, tid, clock)["refresh_warning"] is None
    assert (tm.refresh_expiry(tid) - clock.now()).days == 60


def test_manager_follows_a_reconnect_to_the_new_token_set(settings, fake, clock):
    connect(settings, fake, clock)
    tid = fake.tenants[0].tenant_id
    tm = tokens.TokenManager(settings, transport=fake.transport(), clock=clock)
    assert tm.access_token(tid) == fake.sets[0].access
    connect(settings, fake, clock)  # a second consent replaces the first set
    assert tm.access_token(tid) == fake.sets[1].access
    assert len(tokens.grant_ids(settings)) == 1


@pytest.mark.parametrize("reply", [
    httpx.Response(503, text="Service Unavailable"),
    httpx.Response(429, json={"Title": "Too many requests"}),
    httpx.Response(200, text="<html>gateway</html>"),
])
def test_token_endpoint_trouble_is_retriable_and_keeps_the_set(settings, fake, clock, reply):
    from xero_core.errors import RetriableError

    connect(settings, fake, clock)
    tid = fake.tenants[0].tenant_id
    clock.advance(3600)
    down = httpx.MockTransport(lambda request: reply)
    with pytest.raises(RetriableError):
        tokens.TokenManager(settings, transport=down, clock=clock).access_token(tid)
    assert connections.get_connection(settings, tid)["status"] == "connected"
    # once Xero answers again, the same (unrotated) refresh token works
    assert tokens.TokenManager(settings, transport=fake.transport(), clock=clock).access_token(tid) == fake.sets[0].access
    assert fake.refresh_count == 1
