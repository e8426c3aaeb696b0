"""Limits and faults against the fake Xero, one FakeClock shared by the fake, the client and the
shared limiter: pacing with no 429, injected 429/5xx/timeouts/garbled bodies recovered, and a
day-limit 429 that stops the sync cleanly (and every later call, in any process, until it resumes)."""
from __future__ import annotations

from datetime import datetime

import pytest

from xero_core import db
from xero_core.client import XeroClient
from xero_core.ratelimit import SharedRateLimiter, budget_status
from xero_core.engine import Engine

from test_sync_e2e import connect, small_org


@pytest.fixture
def small(tmp_path):
    return connect(tmp_path, invoices=80, org_factory=small_org)


@pytest.mark.slow
def test_300_calls_no_429_and_at_least_55_a_minute(small):
    s, clock, fake, org_id = small
    client = XeroClient(s, org_id, transport=fake.transport(), clock=clock, limiter=SharedRateLimiter(s, clock))
    def ours():  # connecting already read the organisation once (issue 23): count from here
        return [r for r in fake.requests if r.tenant_id == org_id and r.api == "accounting"]

    before, calls_before = len(ours()), budget_status(s, org_id, clock)["calls_today"]
    t0 = clock.time()
    for _ in range(300):
        client.request("GET", "/api.xro/2.0/Organisation")
    minutes = (clock.time() - t0) / 60
    served = ours()[before:]
    assert len(served) == 300 and not [r for r in served if r.status == 429]
    assert 300 / minutes >= 55
    assert budget_status(s, org_id, clock)["calls_today"] - calls_before == 300


def table_rows(s):
    out = {}
    with db.connect(s.db_path, read_only=True) as con:
        for t in ("financial_weekly", "revenue_weekly", "cash_position_weekly", "invoices", "contacts"):
            out[t] = con.execute(f"SELECT * EXCLUDE (synced_at) FROM {t} ORDER BY ALL").fetchall()
    return out


@pytest.mark.slow
def test_injected_429_5xx_timeouts_and_garbled_bodies_recover(tmp_path):
    s0, clock0, fake0, org0 = connect(tmp_path / "clean", invoices=80, org_factory=small_org)
    assert Engine(s0, transport=fake0.transport(), clock=clock0).sync(org0, only="contacts,invoices,pnl,bank").ok
    s, clock, fake, org_id = connect(tmp_path / "faulty", invoices=80, org_factory=small_org)
    fake.faults.add("429", path="Invoices", count=2)
    fake.faults.add("500", path="ProfitAndLoss", count=1)
    fake.faults.add("503", path="BankSummary", count=1)
    fake.faults.add("timeout", path="Contacts", count=1)
    fake.faults.add("malformed", path="ProfitAndLoss", count=1, after=1)
    fake.faults.add("truncated", path="Accounts", count=1)
    res = Engine(s, transport=fake.transport(), clock=clock).sync(org_id, only="contacts,invoices,pnl,bank")
    assert res.ok, res.to_dict()
    assert all(f.applied for f in fake.faults.list()), [f.public() for f in fake.faults.list()]
    assert table_rows(s) == table_rows(s0)


@pytest.mark.slow
def test_day_limit_429_stops_cleanly_and_holds_for_every_process(small):
    s, clock, fake, org_id = small
    fake.faults.add("429", path="ProfitAndLoss", count=1, problem="day")
    res = Engine(s, transport=fake.transport(), clock=clock).sync(org_id)
    st = {x.step: x for x in res.steps}
    assert st["invoices"].status == "success"
    assert st["pnl"].status == "failed" and st["pnl"].error.startswith("daily budget reached, resumes at")
    assert st["bank"].status == st["journals"].status == "skipped"
    assert st["bank"].error.startswith("daily budget reached, resumes at")
    assert not res.ok
    with db.connect(s.db_path, read_only=True) as con:
        log = dict(con.execute("SELECT sync_type, status FROM sync_log").fetchall())
    assert log["pnl"] == "failed" and log["bank"] == "skipped"
    # Another run (the scheduler, the app) does not call Xero until the day resumes.
    n = fake.api_calls(org_id)
    again = Engine(s, transport=fake.transport(), clock=clock).sync(org_id, trigger="scheduler")
    assert fake.api_calls(org_id) == n
    assert all(x.error and x.error.startswith("daily budget reached") for x in again.steps)
    status = budget_status(s, org_id, clock)
    assert status["remaining"] == 0 and status["resumes_at"]
    clock.advance(datetime.fromisoformat(status["resumes_at"]).timestamp() - clock.time() + 1)
    later = Engine(s, transport=fake.transport(), clock=clock).sync(org_id, only="pnl")
    assert later.ok, [(x.step, x.status, x.error) for x in later.steps]


def test_an_answer_that_is_not_json_is_one_sentence_on_every_step(small):
    """A proxy's page instead of JSON: the organisation step (which read the body itself) said the raw
    'JSONDecodeError: unexpected character...'; every step says the client's sentence instead."""
    s, clock, fake, org_id = small
    fake.faults.add("malformed", count=None)
    res = Engine(s, transport=fake.transport(), clock=clock).sync(org_id, only="organisation,contacts,pnl")
    failed = [x for x in res.steps if x.status == "failed"]
    assert "organisation" in [x.step for x in failed], res.to_dict()
    assert all(x.error.startswith("Xero's answer was not JSON") for x in failed), res.to_dict()
    assert not any("JSONDecodeError" in (x.error or "") for x in res.steps), res.to_dict()
