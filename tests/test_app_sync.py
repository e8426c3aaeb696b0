"""Admin app: the Sync page (Sync now, progress, budget, scheduler, history) and the Data page."""
from __future__ import annotations

import pytest
import os
from datetime import datetime, timedelta, timezone

from app_testing import (  # noqa: F401 - fixtures
    app_settings, button, choose_tenant, connect, errors, fake_xero, new_app, open_page, tenant_of, texts,
)


def _sync_now(at, scope: str = "one", settings=None, fails: bool = False):
    """Press Sync now: it only queues jobs and returns. Then run them as the scheduler or the app
    server would (a worker pool; AppTest runs no server), and draw the page again."""
    from xero_core.pipeline import jobs as J
    from xero_core.pipeline.worker import WorkerPool

    at.radio[0].set_value(scope)
    at.number_input[0].set_value(2)  # two weeks of reports: the same steps, fewer calls
    button(at, "Sync now").click().run()
    assert not errors(at), errors(at)
    ids = at.session_state["_sync_jobs"]
    assert ids and all(J.get(settings, i).state == "queued" for i in ids), "Sync now must only queue"
    assert "waiting for a worker" in texts(at)
    pool = WorkerPool(settings, workers=2, label="test", job_ids=ids)
    try:
        pool.run_until_done(ids)
    finally:
        pool.stop()
    at.run()
    assert bool(errors(at)) == fails, errors(at)
    return at


def _last_rows(at) -> list[dict]:
    frame = at.dataframe[0].value  # "What each step did": the first table on the page
    return frame.to_dict("records")


@pytest.mark.slow
def test_sync_now_queues_a_job_that_a_worker_runs(app_settings, fake_xero):
    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    at = choose_tenant(open_page("sync"), org)
    _sync_now(at, settings=app_settings)
    assert f"{fake.org().name}" in texts(at) and "done" in texts(at)
    rows = _last_rows(at)
    steps = {r["step"]: r for r in rows}
    assert {"accounts", "contacts", "clients", "invoices", "pnl", "bank"} <= set(steps)
    assert all(r["organisation"] == fake.org().name for r in rows)
    assert steps["invoices"]["rows"] > 0 and steps["invoices"]["api_calls"] > 0
    assert steps["invoices"]["status"] == "success"

    # the history (newest first) has the same steps, filterable
    hist = at.dataframe[1].value
    assert {"accounts", "invoices", "pnl", "bank"} <= set(hist["sync_type"])
    starts = list(hist["started_at"])
    assert starts == sorted(starts, reverse=True)
    at.multiselect[2].set_value(["invoices"]).run()
    assert set(at.dataframe[1].value["sync_type"]) == {"invoices"}

    # the budget went down by what the sync spent (its history backfill's journals included), and the
    # one GET /Organisation made at connect
    from xero_core import db

    with db.connect(app_settings.db_path, read_only=True) as con:
        spent = con.execute("SELECT sum(api_calls) FROM sync_log WHERE tenant_id = ?", [org]).fetchone()[0] + 1
    assert spent > sum(r["api_calls"] or 0 for r in rows) + 1, "the journal history came as a backfill of its own"
    (metric,) = [m for m in at.metric if m.label == fake.org().name]
    assert metric.value == f"{app_settings.daily_budget - spent:,} calls"


@pytest.mark.slow
def test_sync_now_twice_joins_the_job_under_way(app_settings, fake_xero):
    from xero_core.pipeline import jobs as J

    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    at = choose_tenant(open_page("sync"), org)
    button(at, "Sync now").click().run()
    first = at.session_state["_sync_jobs"]
    at2 = choose_tenant(open_page("sync"), org)  # a second browser
    button(at2, "Sync now").click().run()
    assert at2.session_state["_sync_jobs"] == first
    assert len(J.active_jobs(app_settings)) == 1
    # Cancel from the second browser: the queued job never runs
    button(at2, "Cancel").click().run()
    assert J.get(app_settings, first[0]).cancel_requested


@pytest.mark.slow
def test_sync_all_organisations_runs_each_tenant(app_settings, fake_xero):
    fake, _ = fake_xero
    connect(app_settings, fake)
    at = open_page("sync")
    # the one organisation (beside the practice) is chosen by itself; "all" is the other choice
    assert at.radio[0].options == [f"{fake.org().name} (chosen in the sidebar)", "All connected organisations (2)"]
    _sync_now(at, "all", settings=app_settings)
    orgs = {r["organisation"] for r in _last_rows(at)}
    assert orgs == {fake.org().name, fake.practice().name}


@pytest.mark.slow
def test_sync_of_a_disconnected_tenant_says_so(app_settings, fake_xero):
    from xero_core.connections import set_status
    from xero_core.pipeline import jobs as J

    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    at = choose_tenant(open_page("sync"), org)
    set_status(app_settings, org, "needs_reconnect", "refresh token expired")
    _sync_now(at, settings=app_settings, fails=True)
    (job,) = [J.get(app_settings, i) for i in at.session_state["_sync_jobs"]]
    assert job.state == "failed" and "reconnect" in (job.error or "").lower()
    assert "reconnect" in texts(at).lower()


@pytest.mark.slow
def test_resync_one_past_week(app_settings, fake_xero):
    from datetime import date

    from xero_core.pipeline import jobs as J

    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    at = choose_tenant(open_page("sync"), org)
    at.date_input[0].set_value(date(2026, 3, 4)).run()  # a Wednesday: the week ending Sat 7 March
    button(at, "Re-sync this week").click().run()
    (job,) = [J.get(app_settings, i) for i in at.session_state["_sync_jobs"]]
    assert job.request.week_ending == date(2026, 3, 4) and job.state == "queued"


@pytest.mark.slow
def test_scheduler_state_and_pause_resume(app_settings, fake_xero):
    from xero_core import scheduling

    now = datetime.now(timezone.utc)
    scheduling.update_state(app_settings, pid=os.getpid(), heartbeat=now.isoformat(),
                            next_run=(now + timedelta(hours=3)).isoformat())
    at = open_page("sync")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Scheduler"] == "running" and metrics["Scheduled syncs"] == "enabled"
    assert "in 2 h" in texts(at) or "in 3 h" in texts(at)

    button(at, "Pause the scheduler").click().run()
    assert scheduling.read_state(app_settings)["paused"] is True
    assert {m.label: m.value for m in at.metric}["Scheduled syncs"] == "paused"
    button(at, "Resume the scheduler").click().run()
    assert scheduling.read_state(app_settings)["paused"] is False


@pytest.mark.slow
def test_scheduler_not_running_is_explained(app_settings):
    at = open_page("sync")
    assert "not running" in texts(at) and "python scheduler.py" in texts(at)


@pytest.mark.slow
def test_data_page_charts_after_a_sync(app_settings, fake_xero, test_today):
    from xero_core.engine import Engine

    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    at = choose_tenant(open_page("data"), org)
    assert "run a sync" in texts(at)  # nothing synced yet
    Engine(app_settings).sync(org, weeks=4, only="pnl,bank,invoices")
    import streamlit as st

    st.cache_data.clear()  # what the Sync page does after a sync (otherwise: fresh within 5 s)
    at.run()
    assert not errors(at), errors(at)
    charts = at.get("vega_lite_chart")
    assert len(charts) == 3  # weekly P&L, revenue mix, cash position
    assert "run a sync" not in texts(at)
    # Issue 23 §3/§5: it opens on the latest complete week's figures, in the organisation's base
    # currency, each with its change on the week before: the same numbers as analysis.headline.
    from xero_core import analysis as an

    head = {r["label"]: r for r in an.headline(app_settings, org).iter_rows(named=True)}
    week = head["Income"]["week_ending"]
    assert week < test_today and week >= test_today - timedelta(days=7)     # complete: never the week under way
    plain = lambda x: (x or "").replace("\\", "")  # noqa: E731  (the page escapes its markdown: md())
    shown = {plain(m.label): m for m in at.metric}
    assert list(shown) == ["Income (AUD)", "Gross margin (%)", "Operating expenses (AUD)", "Net profit (AUD)",
                           "Cash at bank (AUD)"]
    assert plain(shown["Income (AUD)"].value) == f"{head['Income']['latest']:,.0f}"
    assert plain(shown["Net profit (AUD)"].value) == f"{head['Net profit']['latest']:,.0f}"
    assert plain(shown["Income (AUD)"].delta) == f"{head['Income']['change']:+,.0f}"
    assert plain(shown["Gross margin (%)"].value) == f"{head['Gross margin']['latest']:,.1f}%"
    assert f"Week ending {week:%a} {week.day} {week:%b %Y}" in [plain(h.value) for h in at.subheader]
    table = at.dataframe[0].value
    assert table["week_ending"].max().date() == week         # the P&L table ends with it too


@pytest.mark.slow
def test_data_page_needs_an_organisation_not_a_practice(app_settings, fake_xero):
    fake, _ = fake_xero
    connect(app_settings, fake)
    at = choose_tenant(open_page("data"), tenant_of(app_settings, "PRACTICEMANAGER"))
    assert "needs a ORGANISATION connection" in texts(at) or "ORGANISATION" in texts(at)


@pytest.mark.slow
def test_reads_and_writes_in_app_threads_never_clash(settings):
    """The app runs page reads (engine helpers open read-only) next to the webhook worker and Sync
    now (read-write) in one process; DuckDB refuses mixing the two modes in a process, so
    db.connect must make readers fall back and writers wait, not fail."""
    import threading

    from xero_core import db

    with db.connect(settings.db_path) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
    errors_: list[str] = []
    go = threading.Barrier(4)

    def work(read_only: bool):
        go.wait()
        for _ in range(60):
            try:
                with db.connect(settings.db_path, read_only=read_only) as con:
                    if read_only:
                        con.execute("SELECT count(*) FROM t").fetchone()
                    else:
                        con.execute("INSERT INTO t VALUES (1)")
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors_.append(repr(exc))

    threads = [threading.Thread(target=work, args=(ro,)) for ro in (True, False, True, False)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors_ == []
    with db.connect(settings.db_path) as con:
        assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 120
