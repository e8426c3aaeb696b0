"""The shared rate limiter on its own: windows, headroom, in-flight leases, daily budget, Xero's
headers, and several processes sharing one tenant (a scaled clock: 1 real second = 1 minute)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from datetime import date, datetime, timezone

import httpx
import pytest

from xero_core.errors import DailyLimitReached
from xero_core.fake.clock import FakeClock
from xero_core.ratelimit import SharedRateLimiter, budget_status

T1 = "tenant-1"
ROOT = Path(__file__).resolve().parents[1]


def max_in_window(times: list[float], window: float = 60.0) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_300_calls_keep_pace_under_the_minute_limit(settings):
    clock = FakeClock(datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc))
    lim = SharedRateLimiter(settings, clock)
    start = clock.time()
    times = []
    for _ in range(300):
        with lim.acquire(T1):
            times.append(clock.time())
    elapsed_min = (times[-1] - start) / 60
    assert max_in_window(times) <= 57  # headroom under Xero's 60
    assert 300 / max(elapsed_min, 1e-9) >= 55  # and still close to the limit
    assert lim.status(T1)["calls_today"] == 300


def test_in_flight_capped_at_five_and_freed_on_release(settings):
    clock = FakeClock()
    lim = SharedRateLimiter(settings, clock)
    leases = [lim.acquire(T1) for _ in range(5)]
    wait, lease = lim._try_acquire(T1)
    assert lease is None and wait > 0
    assert lim._try_acquire("other-tenant")[1] is not None  # each tenant has its own five
    leases[0].__exit__(None, None, None)
    assert lim._try_acquire(T1)[1] is not None


def test_lease_of_a_dead_process_is_reaped(settings):
    clock = FakeClock()
    lim = SharedRateLimiter(settings, clock)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    con = lim._con()
    for i in range(5):
        con.execute("INSERT INTO leases VALUES (?, ?, ?, ?, ?)", (f"dead{i}", T1, lim._host, p.pid, clock.time() + 300))
    assert lim._try_acquire(T1)[1] is not None


def test_lease_expires_by_time(settings):
    clock = FakeClock()
    lim = SharedRateLimiter(settings, clock)
    con = lim._con()
    for i in range(5):
        con.execute("INSERT INTO leases VALUES (?, ?, ?, ?, ?)", (f"x{i}", T1, "another-host", 1, clock.time() + 300))
    assert lim._try_acquire(T1)[1] is None
    clock.advance(301)
    assert lim._try_acquire(T1)[1] is not None


def test_daily_budget_stops_with_resume_time(make_settings):
    s = make_settings(XERO_DAILY_BUDGET="10")
    clock = FakeClock(datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc))
    lim = SharedRateLimiter(s, clock)
    first = clock.time()
    for _ in range(10):
        with lim.acquire(T1):
            clock.advance(1)
    with pytest.raises(DailyLimitReached) as ei:
        lim.acquire(T1)
    assert str(ei.value).startswith("daily budget reached, resumes at 2026-11-27 09:00")
    assert ei.value.resumes_at == datetime.fromtimestamp(first + 86400, timezone.utc)
    st = budget_status(s, T1, clock)
    assert st["calls_today"] == 10 and st["remaining"] == 0 and st["resumes_at"].startswith("2026-11-27T09:00")
    clock.advance(86400)
    with lim.acquire(T1):
        pass


def resp(status=200, **headers):
    return httpx.Response(status, headers={k.replace("_", "-"): str(v) for k, v in headers.items()})


def test_headers_correct_the_local_count_upwards_only(settings):
    clock = FakeClock()
    lim = SharedRateLimiter(settings, clock)
    with lim.acquire(T1):
        pass
    # Xero saw 50 calls this minute (someone else uses the tenant): only 7 more fit under 57.
    lim.observe(T1, resp(X_MinLimit_Remaining=10, X_DayLimit_Remaining=4000, X_AppMinLimit_Remaining=9990))
    assert lim.status(T1)["calls_last_minute"] == 50
    assert lim.status(T1)["calls_today"] == 1000
    # A header saying Xero counted fewer than we did changes nothing.
    lim.observe(T1, resp(X_MinLimit_Remaining=59))
    assert lim.status(T1)["calls_last_minute"] == 50
    t0 = clock.time()
    for _ in range(8):
        with lim.acquire(T1):
            pass
    assert clock.time() - t0 >= 59  # the eighth had to wait for the window to move


def test_headers_that_agree_with_the_grant_need_no_transaction(settings):
    clock = FakeClock()
    lim = SharedRateLimiter(settings, clock)
    with lim.acquire(T1):
        # What Xero says right after our first call: it counted that one call and no other.
        ok = resp(X_MinLimit_Remaining=59, X_DayLimit_Remaining=4999, X_AppMinLimit_Remaining=9999)
        lim._tx = None  # any transaction now fails the test
        lim.observe(T1, ok)
        del lim._tx
    assert lim.status(T1)["calls_last_minute"] == 1


def test_headers_checked_against_the_file_when_the_grant_is_old_or_another_tenants(settings):
    clock = FakeClock()
    lim = SharedRateLimiter(settings, clock)
    with lim.acquire(T1):
        pass
    clock.advance(10)  # the response came long after the grant: this thread's view is stale
    lim.observe(T1, resp(X_MinLimit_Remaining=30))
    assert lim.status(T1)["calls_last_minute"] == 30
    with lim.acquire("other-tenant"):
        pass
    # The last grant was another tenant's: T1's counts come from the file, and agree now.
    lim.observe(T1, resp(X_MinLimit_Remaining=30))
    assert lim.status(T1)["calls_last_minute"] == 30
    lim.observe(T1, resp(X_MinLimit_Remaining=20))
    assert lim.status(T1)["calls_last_minute"] == 40


def test_calls_older_than_a_day_leave_the_file(settings):
    clock = FakeClock()
    lim = SharedRateLimiter(settings, clock)
    for _ in range(3):
        with lim.acquire(T1):
            pass
    clock.advance(86400 + 120)
    with lim.acquire(T1):
        pass
    rows = lim._con().execute("SELECT count(*) FROM calls").fetchone()[0]
    assert rows == 1
    assert lim.status(T1)["calls_today"] == 1


def test_day_429_blocks_every_process(settings):
    clock = FakeClock()
    a = SharedRateLimiter(settings, clock)
    b = SharedRateLimiter(settings, clock)  # another process: same file
    a.observe(T1, resp(429, Retry_After=3600, X_Rate_Limit_Problem="day"))
    with pytest.raises(DailyLimitReached) as ei:
        b.acquire(T1)
    assert "daily budget reached, resumes at" in str(ei.value)
    assert b.status(T1)["remaining"] == 0
    clock.advance(3601)
    with b.acquire(T1):
        pass


def test_minute_429_makes_others_wait(settings):
    clock = FakeClock()
    a = SharedRateLimiter(settings, clock)
    a.observe(T1, resp(429, Retry_After=22, X_Rate_Limit_Problem="minute"))
    t0 = clock.time()
    with SharedRateLimiter(settings, clock).acquire(T1):
        pass
    assert clock.time() - t0 >= 22


def test_app_wide_minute_limit(settings):
    clock = FakeClock()
    lim = SharedRateLimiter(settings, clock, app_per_minute=20)
    t0 = clock.time()
    for i in range(21):
        with lim.acquire(f"tenant-{i}"):
            pass
    assert clock.time() - t0 >= 60


class ScaledClock:
    """Real time sped up, identical in every process: virtual = base + (real - real0) * speed."""

    def __init__(self, base: float, real0: float, speed: float):
        self.base, self.real0, self.speed = base, real0, speed

    def time(self) -> float:
        return self.base + (time.time() - self.real0) * self.speed

    def sleep(self, s: float) -> None:
        if s > 0:
            time.sleep(s / self.speed)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), timezone.utc)


WORKER = textwrap.dedent("""
    import json, sys
    from xero_core.client import XeroClient
    from xero_core.settings import load_settings
    from xero_core.ratelimit import SharedRateLimiter
    from test_ratelimit import ScaledClock

    s = load_settings()
    clock = ScaledClock(float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]))
    client = XeroClient(s, sys.argv[5], clock=clock, limiter=SharedRateLimiter(s, clock))
    out = []
    for _ in range(int(sys.argv[4])):
        client.request("GET", "/api.xro/2.0/Organisation")
        out.append(clock.time())
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_three_processes_share_one_tenant_within_60_a_minute(make_settings, tmp_path):
    """Three processes call one tenant of the fake (served on loopback, on the same scaled clock):
    together they never pass 60 a minute and draw no 429."""
    from xero_core import oauth
    from xero_core.fake.app import FakeXero
    from xero_core.fake.server import serve

    # 1 real second = 30 s: a loopback call delayed by a loaded machine stays well inside the headroom.
    base, speed, per_proc = 1_800_000_000.0, 30.0, 50
    real0 = time.time()
    clock = ScaledClock(base, real0, speed)
    fake = FakeXero(seed=3, today=date(2027, 1, 15), clock=clock, invoices=20,
                    org_factory=lambda seed, today, **kw: __import__("xero_core.fake.ledger", fromlist=["x"])
                    .generate_org(seed, today, years=0.1, **kw))
    with serve(fake) as server:
        s = make_settings(**fake.settings_env(server.url))
        tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s)), transport=fake.transport())
        tenant = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")
        env = {**os.environ, "XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(s.data_dir),
               "XERO_ENCRYPTION_KEY": s.encryption_key.hex(), **fake.settings_env(server.url),
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
               "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        n0 = fake.api_calls(tenant)
        procs = [subprocess.Popen([sys.executable, str(script), str(base), str(real0), str(speed), str(per_proc),
                                   tenant], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        times = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-3000:]
            times += json.loads(out)
        served = [r for r in fake.requests if r.tenant_id == tenant and r.api == "accounting"]
    assert len(times) == 150 and fake.api_calls(tenant) - n0 == 150
    assert not [r for r in served if r.status == 429]
    assert max_in_window(times) <= 60  # together, never over Xero's minute limit
    span_min = (max(times) - min(times)) / 60
    assert 150 / max(span_min, 1e-9) >= 30  # and nobody starved (pace itself: the FakeClock tests)


def test_limiters_in_one_process_share_the_app_wide_count(settings):
    """A worker pool gives every tenant's client its own limiter: with the clock standing still
    (hundreds of calls granted in one instant), none of them may miss the others' calls."""
    clock = FakeClock(datetime(2026, 12, 31, 23, 59, 30, tzinfo=timezone.utc))  # the window spans a year end
    limiters = [SharedRateLimiter(settings, clock, app_per_minute=100) for _ in range(30)]
    times = []
    for _ in range(10):
        for i, lim in enumerate(limiters):
            with lim.acquire(f"tenant-{i}"):
                times.append(clock.time())
    assert len(times) == 300
    assert max_in_window(times) <= 100
    assert max_in_window(times) >= 95  # and the window is still used


def _hold_the_file(settings):
    import sqlite3
    from xero_core.ratelimit import db_path
    holder = sqlite3.connect(str(db_path(settings)), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # as another process mid-transaction
    return holder


def test_a_ratelimit_file_held_by_another_process_is_a_wait_not_an_error(settings, monkeypatch):
    import logging
    import threading
    from xero_core import ratelimit

    monkeypatch.setattr(ratelimit, "LOCK_TIMEOUT", 0.05)
    clock = FakeClock()
    lim = SharedRateLimiter(settings, clock)
    waiting = threading.Event()

    class Seen(logging.Handler):
        def emit(self, record):
            if "held by another process" in record.getMessage():
                waiting.set()

    handler = Seen()
    logging.getLogger("xero_core.ratelimit").addHandler(handler)
    got = []
    try:
        holder = _hold_the_file(settings)
        caller = threading.Thread(target=lambda: got.append(lim.acquire(T1)))
        caller.start()
        assert waiting.wait(30), "the limiter never said it was waiting"
        assert not got  # still waiting, not failed
        holder.execute("COMMIT")
        caller.join(30)
    finally:
        logging.getLogger("xero_core.ratelimit").removeHandler(handler)
    assert len(got) == 1 and got[0].lease_id
    assert lim.status(T1)["in_flight"] == 1


def test_a_ratelimit_file_stuck_for_too_long_is_one_sentence(settings, monkeypatch):
    from xero_core import ratelimit
    from xero_core.errors import StorageError

    monkeypatch.setattr(ratelimit, "LOCK_TIMEOUT", 0.05)
    monkeypatch.setattr(ratelimit, "LOCK_PATIENCE", 0.2)
    lim = SharedRateLimiter(settings, FakeClock())
    holder = _hold_the_file(settings)
    try:
        with pytest.raises(StorageError) as err:
            lim.acquire(T1)
    finally:
        holder.execute("ROLLBACK")
    msg = str(err.value)
    assert "ratelimit.sqlite" in msg and "locked by another process" in msg
    assert "python -m xero_core jobs" in msg and "delete the file" in msg
    with lim.acquire(T1):  # and nothing is left broken
        pass
