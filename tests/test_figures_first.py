"""Figures first, history after (issue 24 §1): a first sync spends the organisation's minute limit on
the latest weeks' P&L, cash and revenue; the older weeks and the journal history are a backfill job of
their own, at a lower priority, which steps aside for a Sync now of the same organisation."""
from __future__ import annotations

import pytest

import threading
import time

import httpx

from xero_core.commands.sync import _job_line
from xero_core.engine import Engine
from xero_core.pipeline import jobs as J
from xero_core.pipeline import plan as P
from xero_core.pipeline.request import SyncRequest

from test_sync_e2e import connect, rows, small_org


def test_the_first_jobs_plan_holds_only_the_recent_weeks_and_the_history_is_a_lower_priority_backfill():
    now, later = P.split_history(SyncRequest("t1", weeks=12, trigger="manual", requested_by="admin app"),
                                 "ORGANISATION", {})
    assert now.weeks == P.FIGURES_WEEKS and not now.history and now.priority == 0
    assert [n for n, _ in P.figures_first(P.plan("ORGANISATION", now)) if n != "organisation"] == [
        "accounts", "pnl", "bank", "contacts", "invoices", "credit_notes", "clients", "documents", "webhooks"]
    assert later.history and later.priority == 1 and later.is_backfill
    assert later.only == {"pnl", "bank", "journals"} and later.weeks == 12 and later.skip_weeks == P.FIGURES_WEEKS
    assert (later.trigger, later.requested_by) == ("manual", "admin app")
    assert later.describe() == "history: 8 older weeks of reports and the journal history"
    assert SyncRequest.from_json(later.to_json()) == later
    # Journals already fetched and no more weeks than the figures: a daily sync is not split.
    daily = SyncRequest("t1", trigger="scheduler")
    assert P.split_history(daily, "ORGANISATION", {"journals": "120"}) == (daily, None)
    # ...unless a history job of the tenant is still to fetch them.
    assert "journals" in P.split_history(daily, "ORGANISATION", {"journals": "120"}, history_pending=True)[1].only
    assert P.split_history(daily, "PRACTICEMANAGER", {})[1] is None


def test_a_sync_now_is_claimed_before_its_organisations_queued_backfill_and_never_beside_a_running_one(settings):
    engine = Engine(settings)
    history = engine.enqueue(SyncRequest("t1", weeks=104, skip_weeks=4, history=True))
    sync_now = engine.enqueue(SyncRequest("t1", trigger="manual"))
    assert not sync_now.joined, "a Sync now does not join the organisation's backfill"
    assert engine.submit(SyncRequest("t1", trigger="scheduler")) == sync_now.job_id
    owner = J.Owner(label="test")
    assert J.claim(settings, owner).job_id == sync_now.job_id
    assert J.claim(settings, owner) is None, "one job of an organisation at a time"
    J.finish(settings, sync_now.job_id, "done")
    assert J.claim(settings, owner).job_id == history.job_id


def test_jobs_list_shows_the_backfill_line(settings):
    job = Engine(settings).enqueue(SyncRequest("t1", weeks=26, skip_weeks=4, history=True), tenant_name="Demo Co")
    assert "history: 22 older weeks of reports and the journal history" in _job_line(job)


class Gate(httpx.BaseTransport):
    """The fake's transport, holding the first Journals page until released."""

    def __init__(self, inner):
        self.inner = inner
        self.in_journals, self.release = threading.Event(), threading.Event()

    def handle_request(self, request):
        if request.url.path.endswith("/Journals") and not self.in_journals.is_set():
            self.in_journals.set()
            assert self.release.wait(30), "the test never released the journals"
        return self.inner.handle_request(request)


def _until(cond, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.mark.slow
def test_a_sync_now_goes_before_a_running_backfill_whose_journals_then_finish_and_land_the_cursor(tmp_path):
    s, clock, fake, org = connect(tmp_path, invoices=60, org_factory=small_org)
    gate = Gate(fake.transport())
    engine = Engine(s, transport=gate, clock=clock)
    first = engine.enqueue(SyncRequest(org, weeks=12, trigger="manual"))
    pool = engine.pool(workers=2, label="test", poll=0.05, heartbeat=0.1)
    pool.start()
    try:
        (done,) = J.wait(s, [first.job_id], timeout=60)
        assert done.state == "done", done.error
        steps = [st.step for st in done.result.steps]
        assert [x for x in steps if x != "organisation"][:3] == ["accounts", "pnl", "bank"], "the figures first"
        assert "journals" not in steps
        assert steps.index("clients") > steps.index("credit_notes") > steps.index("invoices")
        (span,) = rows(s, "SELECT period_end - period_start + 1 FROM sync_log WHERE run_id = ? AND sync_type = 'pnl'",
                       done.result.run_id)
        assert span == (7 * P.FIGURES_WEEKS,), "the first job fetched only the latest weeks' reports"
        history_id = done.result.history_job
        history = J.get(s, history_id)
        assert history.request.history and history.priority == 1

        assert gate.in_journals.wait(60), "the backfill reached the journals"
        sync_now = engine.enqueue(SyncRequest(org, trigger="manual"))
        _until(lambda: pool._yield, "the running backfill was asked to step aside")
        gate.release.set()
        (again,) = J.wait(s, [sync_now.job_id], timeout=60)
        assert again.state == "done", again.error
        assert "journals" not in [st.step for st in again.result.steps], "the history's journals stay its own"
        (history,) = J.wait(s, [history_id], timeout=60)
        assert history.state == "done", history.error
        assert again.finished_at < history.finished_at
    finally:
        gate.release.set()
        pool.stop()
    newest = len(fake.org(org).journals)
    assert rows(s, "SELECT cursor_value FROM sync_cursors WHERE tenant_id = ? AND resource = 'journals'", org) \
        == [(str(newest),)]
    assert rows(s, "SELECT count(DISTINCT journal_number), max(journal_number) FROM journal_lines WHERE tenant_id = ?",
                org) == [(newest, newest)]
    weeks = rows(s, "SELECT count(*) FROM financial_weekly WHERE tenant_id = ?", org)[0][0]
    assert weeks == 12, "the backfill stored the older weeks"
