"""The pipeline: one plan for every trigger, durable jobs, worker pools (issue 15), and the
executor's fault handling (issue 14: a database error between steps loses nothing)."""
from __future__ import annotations

import ast
import os
import stat
from datetime import date
from pathlib import Path

import duckdb
import pytest

from xero_core.engine import Engine
from xero_core.pipeline import jobs as J
from xero_core.pipeline import plan as P
from xero_core.pipeline.request import SyncRequest

from test_sync_e2e import connect, rows, small_org

ROOT = Path(__file__).resolve().parents[1]


def _imports_of(package: str, forbidden: set[str]) -> list[str]:
    bad = []
    for f in sorted((ROOT / "xero_core" / package).rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                names = [mod] + [mod.rstrip(".") + "." + a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(forbidden & set(n.split(".")) for n in names):
                bad.append(f"{f.relative_to(ROOT)}:{node.lineno}")
    return bad


def test_sync_package_imports_nothing_of_practice_or_pipeline():
    assert not _imports_of("sync", {"practice", "pipeline"})


def test_practice_does_not_import_the_pipeline():
    assert not _imports_of("practice", {"pipeline"})


def test_request_json_round_trip_and_priority():
    r = SyncRequest("t1", only=frozenset({"pnl"}), week_ending=date(2026, 11, 21), trigger="cli", requested_by="me")
    assert SyncRequest.from_json(r.to_json()) == r
    assert SyncRequest("t1").priority == 0 and SyncRequest("t1", weeks=104).priority == 0 \
        and SyncRequest("t1", weeks=104, skip_weeks=4, history=True).priority == 1
    with pytest.raises(ValueError):
        SyncRequest("t1", weeks=2, week_ending=date(2026, 11, 21))


def test_plan_is_data():
    names = lambda tt, **kw: [n for n, _ in P.plan(tt, SyncRequest("t", **kw))]  # noqa: E731
    org = names("ORGANISATION")
    assert org[:5] == ["organisation", "accounts", "contacts", "invoices", "clients"]
    assert org[-2:] == ["documents", "webhooks"]
    assert {"credit_notes", "pnl", "bank", "journals"} <= set(org)
    assert names("PRACTICEMANAGER") == ["xpm", "chase", "clients"]
    assert names("ORGANISATION", only=P.parse_only("contacts")) == ["contacts", "clients"]
    assert names("ORGANISATION", only=P.parse_only("pnl")) == ["accounts", "pnl"]
    assert names("ORGANISATION", week_ending=date(2026, 11, 18)) == ["accounts", "pnl", "bank"]
    with pytest.raises(ValueError, match="unknown sync step"):
        P.parse_only("pnl,nope")


def test_one_active_job_per_tenant_joins_and_cancel(settings):
    engine = Engine(settings)
    a = engine.enqueue(SyncRequest("t1", trigger="manual"), tenant_name="Alpha")
    b = engine.enqueue(SyncRequest("t1", weeks=104, trigger="cli"))
    assert not a.joined and b.joined and b.job_id == a.job_id
    assert stat.S_IMODE(os.stat(J.path(settings)).st_mode) == 0o600
    c = J.request_cancel(settings, a.job_id[:8], by="test")
    assert c.state == "cancelled" and "cancelled by test" in c.error
    again = engine.enqueue(SyncRequest("t1"))
    assert not again.joined and again.job_id != a.job_id
    with pytest.raises(J.JobError, match="No job"):
        J.find(settings, "zzzz")


def test_daily_jobs_are_claimed_before_backfills(settings):
    engine = Engine(settings)
    back = engine.enqueue(SyncRequest("t1", weeks=104, history=True))
    daily = engine.enqueue(SyncRequest("t2"))
    owner = J.Owner(label="test")
    assert J.claim(settings, owner).job_id == daily.job_id
    assert J.claim(settings, owner, allow_backfill=False) is None
    assert J.claim(settings, owner).job_id == back.job_id


@pytest.mark.slow
def test_pool_runs_every_tenant_once_with_clients_matched_and_a_log_row_per_step(tmp_path):
    s, clock, fake, org = connect(tmp_path, invoices=50, org_factory=small_org)
    from xero_core.connections import list_connections

    conns = list_connections(s)
    engine = Engine(s, transport=fake.transport(), clock=clock)
    ids = [engine.submit(SyncRequest(c["tenant_id"], trigger="manual")) for c in conns]
    pool = engine.pool(workers=4, label="test", job_ids=ids)
    seen = []
    done = pool.run_until_done(ids, on_change=lambda j: seen.append((j.job_id, j.state, j.progress.step)))
    pool.stop()
    assert [j.state for j in done] == ["done", "done"], [j.error for j in done]
    org_job = next(j for j in done if j.tenant_id == org)
    steps = [st.step for st in org_job.result.steps]
    assert steps[:2] == ["organisation", "accounts"] and steps.index("clients") > steps.index("invoices")
    logged = rows(s, "SELECT sync_type, count(*) FROM sync_log WHERE tenant_id = ? AND run_id = ? GROUP BY ALL",
                  org, org_job.result.run_id)
    assert dict(logged) == {name: 1 for name in steps}, "one sync_log row per step, clients included"
    assert rows(s, "SELECT count(*) FROM clients WHERE xero_contact_id IS NOT NULL")[0][0] > 0, "Sync now matches clients"
    assert [st.step for st in org_job.progress.steps] == steps, "the job's progress lists every step"
    assert seen and seen[-1][1] == "done"


@pytest.mark.slow
def test_a_database_error_between_steps_loses_nothing(tmp_path, monkeypatch):
    """issue 14: the sync_log write after a step fails (disk full): the other steps still run and are
    logged, the result names the failure, and nothing raises."""
    s, clock, fake, org = connect(tmp_path, invoices=30, org_factory=small_org)
    from xero_core.sync import store

    real = store.log_finish

    def flaky(con, **kw):
        if kw["sync_type"] in ("contacts", "documents"):
            raise duckdb.TransactionException("TransactionContext Error: Failed to commit: could not write (disk full)")
        return real(con, **kw)

    real_rows = store.log_rows

    def flaky_rows(con, rows, **kw):
        if any(r["sync_type"] in ("contacts", "documents") for r in rows):
            raise duckdb.TransactionException("TransactionContext Error: Failed to commit: could not write (disk full)")
        return real_rows(con, rows, **kw)

    monkeypatch.setattr(store, "log_finish", flaky)
    monkeypatch.setattr(store, "log_rows", flaky_rows)
    res = Engine(s, transport=fake.transport(), clock=clock).sync(SyncRequest(org, trigger="cli"))
    by = {st.step: st for st in res.steps}
    assert set(by) >= {"accounts", "contacts", "clients", "invoices", "pnl", "bank", "journals", "documents", "webhooks"}
    assert "not recorded in sync_log" in by["documents"].error and "disk full" in by["documents"].error
    assert by["invoices"].status == "success" and by["journals"].status == "success"
    assert not res.ok
    logged = {r[0] for r in rows(s, "SELECT sync_type FROM sync_log WHERE tenant_id = ?", org)}
    assert {"accounts", "invoices", "pnl", "bank", "journals", "webhooks"} <= logged


@pytest.mark.slow
def test_the_app_servers_background_pool_is_one_per_process_and_runs_queued_jobs(tmp_path):
    from xero_core.pipeline import worker

    s, clock, fake, org = connect(tmp_path, invoices=20, org_factory=small_org)
    try:
        pool = worker.ensure_background_pool(s, transport=fake.transport(), clock=clock)
        assert worker.ensure_background_pool(s) is pool, "idempotent per process and data dir"
        job_id = Engine(s).submit(org, only="accounts", trigger="manual", requested_by="admin")
        (done,) = J.wait(s, [job_id], timeout=120)
        assert done.state == "done" and done.owner_label == "app" and done.requested_by == "admin"
    finally:
        worker.stop_background_pools()


@pytest.mark.slow
def test_a_storage_fault_mid_sync_is_one_sentence_in_the_log_and_the_step(tmp_path, monkeypatch, caplog):
    """issue 14: a full disk met by a step is said as the StorageError's sentence, with no traceback."""
    import logging

    from xero_core.errors import StorageError
    from xero_core.sync import steps as fin

    s, clock, fake, org = connect(tmp_path, invoices=30, org_factory=small_org)
    sentence = "The disk holding /data/xero.duckdb is full: free some space, then sync again."

    def full_disk(ctx):
        raise StorageError(sentence, problem="full")

    monkeypatch.setattr(fin, "ORGANISATION_STEPS",
                        tuple((n, full_disk if n == "bank" else f) for n, f in fin.ORGANISATION_STEPS))
    with caplog.at_level(logging.ERROR):
        res = Engine(s, transport=fake.transport(), clock=clock).sync(
            SyncRequest(org, only=frozenset({"accounts", "bank"}), trigger="cli"))
    bank = next(x for x in res.steps if x.step == "bank")
    assert bank.status == "failed" and bank.error == sentence
    assert any(sentence in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a fault already said in a sentence"


def test_a_raw_disk_error_mid_sync_is_translated_not_a_traceback(tmp_path, monkeypatch, caplog):
    """issue 21 §4: a DuckDB or OS disk error a step meets before anything translated it was logged
    with a traceback; it is the StorageError's sentence naming the file, in the log and the step."""
    import logging

    import duckdb

    from xero_core.sync import steps as fin

    s, clock, fake, org = connect(tmp_path, invoices=30, org_factory=small_org)

    def full_disk(ctx):
        raise duckdb.IOException(f'IO Error: Could not write file "{s.db_path}.wal": No space left on device')

    monkeypatch.setattr(fin, "ORGANISATION_STEPS",
                        tuple((n, full_disk if n == "bank" else f) for n, f in fin.ORGANISATION_STEPS))
    with caplog.at_level(logging.ERROR):
        res = Engine(s, transport=fake.transport(), clock=clock).sync(
            SyncRequest(org, only=frozenset({"accounts", "bank"}), trigger="cli"))
    bank = next(x for x in res.steps if x.step == "bank")
    assert bank.status == "failed" and bank.error.startswith(f"The disk holding {s.db_path}.wal is full")
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a disk fault"
