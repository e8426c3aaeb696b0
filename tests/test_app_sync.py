"""Admin app: the Sync page (Sync now, progress, budget, scheduler, history) and the Data page."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from app_testing import (  # noqa: F401 - fixtures
    app_settings, button, choose_tenant, connect, errors, fake_xero, new_app, open_page, tenant_of, texts,
)


def _sync_now(at, scope: str = "one"):
    at.radio[0].set_value(scope)
    at.number_input[0].set_value(2)  # two weeks of reports: the same steps, fewer calls
    button(at, "Sync now").click().run()
    assert not errors(at), errors(at)
    return at


def _last_rows(at) -> list[dict]:
    frame = at.dataframe[0].value  # "What each step did": the first table on the page
    return frame.to_dict("records")


def test_sync_now_for_the_chosen_organisation(app_settings, fake_xero):
    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    at = choose_tenant(open_page("sync"), org)
    _sync_now(at)
    (box,) = at.status
    assert box.label == "Sync finished" and box.state == "complete"
    lines = " ".join(m.value for m in box.markdown)
    assert "invoices" in lines and ":material/check_circle:" in lines  # Material icons: no emoji font in chromium
    rows = _last_rows(at)
    steps = {r["step"]: r for r in rows}
    assert {"accounts", "contacts", "invoices", "pnl", "bank"} <= set(steps)
    assert all(r["organisation"] == fake.org().name for r in rows)
    assert steps["invoices"]["rows"] > 0 and steps["invoices"]["api_calls"] > 0
    assert steps["invoices"]["bytes_downloaded"] > 0 and steps["invoices"]["status"] == "success"

    # the history (newest first) has the same steps, filterable
    hist = at.dataframe[1].value
    assert set(steps) <= set(hist["sync_type"])
    starts = list(hist["started_at"])
    assert starts == sorted(starts, reverse=True)
    at.multiselect[2].set_value(["invoices"]).run()
    assert set(at.dataframe[1].value["sync_type"]) == {"invoices"}

    # the budget went down by what the sync spent
    spent = sum(r["api_calls"] for r in rows)
    (metric,) = [m for m in at.metric if m.label == fake.org().name]
    assert metric.value == f"{app_settings.daily_budget - spent:,} calls"


def test_sync_all_organisations_runs_each_tenant(app_settings, fake_xero):
    fake, _ = fake_xero
    connect(app_settings, fake)
    at = open_page("sync")
    assert at.radio[0].options == ["All connected organisations (2)"]  # nothing chosen: only "all"
    _sync_now(at, "all")
    orgs = {r["organisation"] for r in _last_rows(at)}
    assert orgs == {fake.org().name, fake.practice().name}


def test_sync_of_a_disconnected_tenant_says_so(app_settings, fake_xero):
    from xero_core.connections import set_status

    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    at = choose_tenant(open_page("sync"), org)
    set_status(app_settings, org, "needs_reconnect", "refresh token expired")
    _sync_now(at)
    rows = _last_rows(at)
    assert rows and all(r["status"] == "skipped" and "reconnect" in r["error"] for r in rows)
    (box,) = at.status
    assert "problems" in box.label and box.state == "error"


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


def test_scheduler_not_running_is_explained(app_settings):
    at = open_page("sync")
    assert "not running" in texts(at) and "python scheduler.py" in texts(at)


def test_data_page_charts_after_a_sync(app_settings, fake_xero, test_today):
    from xero_core.sync.runner import sync_all

    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    at = choose_tenant(open_page("data"), org)
    assert "run a sync" in texts(at)  # nothing synced yet
    sync_all(app_settings, org, weeks=4, only="pnl,bank,invoices")
    import streamlit as st

    st.cache_data.clear()  # what the Sync page does after a sync (otherwise: fresh within 5 s)
    at.run()
    assert not errors(at), errors(at)
    charts = at.get("vega_lite_chart")
    assert len(charts) == 3  # weekly P&L, revenue mix, cash position
    assert "run a sync" not in texts(at)


def test_data_page_needs_an_organisation_not_a_practice(app_settings, fake_xero):
    fake, _ = fake_xero
    connect(app_settings, fake)
    at = choose_tenant(open_page("data"), tenant_of(app_settings, "PRACTICEMANAGER"))
    assert "needs a ORGANISATION connection" in texts(at) or "ORGANISATION" in texts(at)


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
