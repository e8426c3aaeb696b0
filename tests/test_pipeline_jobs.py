"""Jobs under faults (issue 15): kill -9 of the process running a job, many tenants in one pool,
two processes asking for the same tenant, a tenant needing reconnect, the DuckDB file held by
another process, cancel mid-step. Dates are pinned (FakeXero(today=...), FakeClock).

These tests sit below the Engine on purpose: what they test is the queue itself (jobs.sqlite's
rows, claims, leases, joins, cancels) and the WorkerPool that drains it, so they call
`pipeline.jobs` and `WorkerPool` directly. A test of the product queueing a sync goes through
`Engine.enqueue` / `Engine.submit` instead (tests/test_pipeline.py, test_figures_first.py)."""
from __future__ import annotations

import pytest
import multiprocessing
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from xero_core.snapshot import working_path
from xero_core import db, oauth
from xero_core.fake.app import FakeXero
from xero_core.fake.clock import FakeClock
from xero_core.pipeline import jobs as J
from xero_core.pipeline.progress import ProgressEvent
from xero_core.pipeline.request import SyncRequest
from xero_core.pipeline.worker import WorkerPool
from xero_core.settings import load_settings

from test_sync_crash import TABLES
from test_sync_e2e import connect, rows, small_org

START = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
FAKE_KW = dict(seed=11, today=date(2026, 11, 26), invoices=60)
WEEKS = 3


# -- kill -9 mid-job, then resume ----------------------------------------------------------------
def job_worker(env: dict, fake_state: str, tenant: str, kill_at: int | None, out_q) -> None:
    """One job in a child process: queue it (or find the tenant's), run it in a one-thread pool."""
    import os as _os

    from xero_core.sync import context, incremental

    incremental.CHUNK = 50  # several chunks per resource, so kills also land between chunk commits
    if kill_at is not None:
        _os.environ[context.KILL_ENV] = str(kill_at)
    s = load_settings(env)
    clock = FakeClock(START)
    fake = FakeXero(clock=clock, state_dir=fake_state, org_factory=small_org, **FAKE_KW)
    job = J.enqueue(s, SyncRequest(tenant, weeks=WEEKS, trigger="cli"))
    pool = WorkerPool(s, workers=1, label="cli", job_ids=[job.job_id], transport=fake.transport(), clock=clock)
    (done,) = pool.run_until_done([job.job_id])
    pool.stop()
    out_q.put({"state": done.state, "error": done.error, "joined": job.joined, "checkpoints": context._checkpoints,
               "data_dir": env["XERO_DATA_DIR"]})


def snapshot(db_path: Path) -> dict:
    out = {}
    with db.connect(db_path, read_only=True) as con:
        for t in TABLES:
            cols = [c[0] for c in con.execute(f"DESCRIBE {t}").fetchall()
                    if c[0] not in ("synced_at",) and not (t == "sync_cursors" and c[0] == "updated_at")]
            # the clients' cursors hold contacts' synced_at (wall clock): compared through the clients below
            where = " WHERE resource NOT LIKE 'clients%'" if t == "sync_cursors" else ""
            out[t] = con.execute(f"SELECT {', '.join(cols)} FROM {t}{where} ORDER BY ALL").fetchall()
        # clients get fresh ids per run: compare what they are matched to
        out["clients"] = con.execute("SELECT tenant_id, xero_contact_id, name, match_status FROM clients ORDER BY ALL").fetchall()
    return out


@pytest.mark.slow
def test_kill_9_mid_job_is_interrupted_then_resumes_to_a_clean_sync(tmp_path):
    key = secrets.token_hex(32)
    base = tmp_path / "base"
    env = {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(base / "data"), "XERO_ENCRYPTION_KEY": key}
    s = load_settings(env)
    clock = FakeClock(START)
    fake = FakeXero(clock=clock, state_dir=base / "fake", org_factory=small_org, **FAKE_KW)
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)),
                                     transport=fake.transport(), clock=clock)
    tenant = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")

    ctx = multiprocessing.get_context("forkserver")
    # pyarrow too: the product imports it lazily (the clients step's first batch), ~1 s in every child otherwise
    ctx.set_forkserver_preload(["xero_core.pipeline.worker", "xero_core.fake.app", "xero_core.client", "pyarrow", __name__])
    results = ctx.Queue()

    def clone(name: str) -> Path:
        d = tmp_path / name
        shutil.copytree(base, d)
        return d

    def start(d: Path, kill_at):
        p = ctx.Process(target=job_worker, args=({**env, "XERO_DATA_DIR": str(d / "data")}, str(d / "fake"),
                                                 tenant, kill_at, results))
        p.start()
        return p

    def wait_all(procs: dict) -> dict:
        for p in procs.values():
            p.join(180)
        return {k: p.exitcode for k, p in procs.items()}

    clean = clone("clean")
    assert wait_all({0: start(clean, 10**9)}) == {0: 0}
    info = results.get(timeout=10)
    assert info["state"] == "done", info
    n = info["checkpoints"]
    want = snapshot(working_path(clean / "data"))
    assert want["journal_lines"] and want["clients"]

    # first page, mid-invoices, between steps, late (journals): killed, all at once
    points = sorted({2, n // 4, n // 2, n - 3})
    dirs = {k: clone(f"kill{k}") for k in points}
    assert wait_all({k: start(d, k) for k, d in dirs.items()}) == {k: -signal.SIGKILL for k in points}
    for k, d in dirs.items():
        ds = load_settings({**env, "XERO_DATA_DIR": str(d / "data")})
        # looking at the jobs reaps the dead owner; the history backfill a first sync queues waits
        (job,) = [j for j in J.list_jobs(ds, active_only=False) if j.state != "queued" and j.state != "done"]
        assert job.state == "interrupted", (k, job.state)
        assert "stopped before it finished" in job.error and "resumes from where it got to" in job.error
    # resumed: a new job each, ending with exactly the tables of the clean sync
    assert wait_all({k: start(d, None) for k, d in dirs.items()}) == {k: 0 for k in points}
    for _ in points:
        again = results.get(timeout=10)
        assert again["state"] == "done" and not again["joined"], again
    for k, d in dirs.items():
        got = snapshot(working_path(d / "data"))
        for t in want:
            assert got[t] == want[t], f"table {t} differs after a kill at checkpoint {k} of {n}"


# -- many tenants in one pool --------------------------------------------------------------------
@pytest.mark.slow
def test_many_tenants_in_one_pool_respect_limits_and_run_once_each(tmp_path):
    s = load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
                       "XERO_ENCRYPTION_KEY": secrets.token_hex(32)})
    clock = FakeClock(START)
    fake = FakeXero(seed=5, today=date(2026, 11, 26), clock=clock, tenants=4, practices=0, invoices=30)
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)),
                                     transport=fake.transport(), clock=clock)
    orgs = [t["tenant_id"] for t in tenants]
    # one backfill (40 weeks: ~80 calls, more than a minute of Xero's pace) and daily syncs for the rest
    reqs = [SyncRequest(orgs[0], weeks=40, only=frozenset({"pnl", "bank"}), history=True)] + \
        [SyncRequest(t) for t in orgs[1:]]
    submitted = [J.enqueue(s, r) for r in reqs]
    assert J.enqueue(s, SyncRequest(orgs[1])).joined, "a second request for a busy tenant joins"
    ids = [j.job_id for j in submitted]
    pool = WorkerPool(s, workers=3, label="test", job_ids=ids, transport=fake.transport(), clock=clock)
    done = pool.run_until_done(ids)
    pool.stop()
    assert [j.state for j in done] == ["done"] * len(orgs), [(j.state, j.error) for j in done]
    served = [r for r in fake.requests if r.tenant_id in orgs and r.api == "accounting"]
    assert not [r for r in served if r.status == 429]
    per_tenant = defaultdict(list)
    for r in served:
        per_tenant[r.tenant_id].append(r.at)
    for tid, times in per_tenant.items():  # no 60-second window holds more than 60 calls of one tenant
        times.sort()
        j = 0
        for i, t in enumerate(times):
            while times[j] <= t - timedelta(seconds=60):
                j += 1
            assert i - j + 1 <= 60, f"tenant {tid}: {i - j + 1} calls in a minute"
    # every tenant synced exactly once (one accounts row each), the backfill did not hold the others
    runs = [j.result.run_id for j in done]  # (the daily syncs' journal histories are backfills of their own)
    assert sorted(r[0] for r in rows(s, "SELECT tenant_id FROM sync_log WHERE sync_type = 'accounts' AND run_id IN "
                                        f"({', '.join('?' * len(runs))})", *runs)) == sorted(orgs)
    back = done[0]
    assert all(j.started_at <= back.started_at for j in done[1:]), "daily syncs are claimed before the backfill"


def _enqueue_in_child(data_dir: str, key: str, tenant: str, barrier, out_q) -> None:
    s = load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": data_dir, "XERO_ENCRYPTION_KEY": key})
    barrier.wait()
    job = J.enqueue(s, SyncRequest(tenant, trigger="cli"))
    out_q.put((job.job_id, job.joined))


@pytest.mark.slow
def test_two_processes_asking_at_once_share_one_job(tmp_path):
    key = secrets.token_hex(32)
    ctx = multiprocessing.get_context("spawn")
    barrier, out_q = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_enqueue_in_child, args=(str(tmp_path / "data"), key, "t-same", barrier, out_q))
             for _ in range(2)]
    for p in procs:
        p.start()
    got = [out_q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
    assert len({g[0] for g in got}) == 1, got
    assert sorted(g[1] for g in got) == [False, True]


# -- a tenant needing reconnect ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_tenant_needing_reconnect_fails_at_once_with_the_fix_while_others_go_on(tmp_path):
    s, clock, fake, org = connect(tmp_path, invoices=30, org_factory=small_org)
    from xero_core.connections import list_connections, set_status

    pm = next(c["tenant_id"] for c in list_connections(s) if c["tenant_id"] != org)
    set_status(s, org, "needs_reconnect", "the refresh token was revoked in Xero")
    served = len(fake.requests)
    jobs = [J.enqueue(s, SyncRequest(t)) for t in (org, pm)]
    pool = WorkerPool(s, workers=2, label="test", job_ids=[j.job_id for j in jobs], transport=fake.transport(),
                      clock=clock)
    bad, good = pool.run_until_done([j.job_id for j in jobs])
    pool.stop()
    assert bad.state == "failed" and "reconnect" in bad.error and "revoked" in bad.error
    assert "python -m xero_core connect" in bad.error or "Connection page" in bad.error
    assert good.state == "done"
    assert not [r for r in fake.requests[served:] if r.tenant_id == org], "no call for a tenant needing reconnect"


@pytest.mark.slow
def test_with_xero_unreachable_a_job_says_so_once_and_tries_nothing_else(tmp_path):
    """Issue 24 §2, as the app shows a job: its error is the sentence, each step's line is short."""
    from test_scheduler import RefusedTransport

    s, clock, fake, org = connect(tmp_path, invoices=30, org_factory=small_org)
    refused = RefusedTransport()
    job = J.enqueue(s, SyncRequest(org))
    pool = WorkerPool(s, workers=1, label="test", job_ids=[job.job_id], transport=refused, clock=clock)
    (done,) = pool.run_until_done([job.job_id])
    pool.stop()
    assert done.state == "failed" and done.error == s.unreachable_hint and len(refused.calls) == 1
    steps = done.progress.steps
    assert steps[0].message == f"{steps[0].step}: failed (Xero unreachable)"
    assert len(steps) > 5 and all((x.message or "").endswith("skipped (not tried: Xero unreachable)") for x in steps[1:])
    assert done.result.unreachable == s.unreachable_hint


# -- the DuckDB file held by another process ---------------------------------------------------------
HOLDER = r"""
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.readline()
con.close()
print("released", flush=True)
"""


@pytest.mark.slow
def test_database_held_by_another_process_makes_the_job_wait_then_finish(tmp_path):
    s, clock, fake, org = connect(tmp_path, invoices=30, org_factory=small_org)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(s.db_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        job = J.enqueue(s, SyncRequest(org, only=frozenset({"accounts", "pnl"}), weeks=1))
        pool = WorkerPool(s, workers=1, label="test", job_ids=[job.job_id], transport=fake.transport(), clock=clock)
        waiting = threading.Event()

        def on_change(j):
            if j.progress.status == "waiting" and not waiting.is_set():
                assert "waiting for the database" in (j.progress.message or "")
                assert j.state == "running"
                waiting.set()
                holder.stdin.write("go\n")  # the notebook lets go
                holder.stdin.flush()

        (done,) = pool.run_until_done([job.job_id], on_change=on_change)
        pool.stop()
    finally:
        holder.kill() if holder.poll() is None else None
    assert waiting.is_set(), "the job said it was waiting for the database"
    assert done.state == "done", done.error
    assert {st.step for st in done.result.steps} == {"accounts", "pnl"}


# -- cancel mid-step ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_cancel_mid_step_keeps_whole_weeks_and_the_next_run_finishes(tmp_path):
    import httpx

    s, clock, fake, org = connect(tmp_path, invoices=30, org_factory=small_org)
    inner = fake.transport()
    state = {"pnl": 0, "pool": None, "job": None}

    class CancelAtFourthWeek(httpx.BaseTransport):
        """A person presses Cancel while the 4th week's P&L is being fetched."""

        def handle_request(self, request):
            if "ProfitAndLoss" in request.url.path:
                state["pnl"] += 1
                if state["pnl"] == 4:
                    J.request_cancel(s, state["job"], by="test")
                    pool = state["pool"]
                    # the pool learns of it with its next heartbeat (every 0.05 s here)
                    for _ in range(2000):
                        if pool._cancel.get(state["job"]):
                            break
                        pool._stopping.wait(0.005)
                    assert pool._cancel.get(state["job"]), "the cancel reached the worker"
            return inner.handle_request(request)

    job = J.enqueue(s, SyncRequest(org, only=frozenset({"pnl"}), weeks=30, history=True))
    state["job"] = job.job_id
    pool = WorkerPool(s, workers=1, label="test", job_ids=[job.job_id], transport=CancelAtFourthWeek(), clock=clock,
                      heartbeat=0.05)
    state["pool"] = pool
    (done,) = pool.run_until_done([job.job_id])
    pool.stop()
    assert done.state == "cancelled" and "cancelled by test" in done.error, (done.state, done.error)
    (pnl,) = [st for st in done.result.steps if st.step == "pnl"]
    assert pnl.status == "partial" and pnl.rows == 4
    def weeks_written():
        return {t: rows(s, f"SELECT * EXCLUDE (synced_at) FROM {t} WHERE tenant_id = ? AND week_ending IN "
                           "(SELECT DISTINCT week_ending FROM financial_weekly WHERE tenant_id = ? ORDER BY 1 LIMIT 4) "
                           "ORDER BY ALL", org, org) for t in ("financial_weekly", "pnl_lines")}

    assert rows(s, "SELECT count(DISTINCT week_ending) FROM financial_weekly WHERE tenant_id = ?", org)[0][0] == 4
    at_cancel = weeks_written()
    again = J.enqueue(s, SyncRequest(org, only=frozenset({"pnl"}), weeks=30, history=True))
    assert not again.joined
    pool = WorkerPool(s, workers=1, label="test", job_ids=[again.job_id], transport=inner, clock=clock)
    (fin,) = pool.run_until_done([again.job_id])
    pool.stop()
    assert fin.state == "done"
    assert rows(s, "SELECT count(DISTINCT week_ending) FROM financial_weekly WHERE tenant_id = ?", org)[0][0] == 30
    assert weeks_written() == at_cancel, "the weeks written before the cancel were whole: a full run changes none"


def test_backfills_get_threads_of_their_own_and_never_hold_a_daily_sync(tmp_path, monkeypatch):
    """One claiming thread, three backfills held mid-run: a daily sync queued behind them still runs
    at once, the backfills run side by side (up to XERO_BACKFILL_WORKERS), and a fourth waits."""
    import threading

    from xero_core.pipeline import worker as W
    from xero_core.pipeline.result import SyncResult

    s = load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
                       "XERO_ENCRYPTION_KEY": secrets.token_hex(32)})
    release, three = threading.Event(), threading.Event()
    running: set[str] = set()
    most = [0]
    lock = threading.Lock()

    def fake_run(settings, request, **kw):
        with lock:
            running.add(request.tenant_id)
            most[0] = max(most[0], len([t for t in running if t.startswith("back")]))
            if most[0] >= 3:
                three.set()
        if request.is_backfill:
            assert release.wait(30), "the test never released the backfills"
        with lock:
            running.discard(request.tenant_id)
        return SyncResult(tenant_id=request.tenant_id, run_id="r", trigger=request.trigger)

    monkeypatch.setattr(W, "run_sync", fake_run)
    backs = [J.enqueue(s, SyncRequest(f"back-{i}", weeks=104, history=True)) for i in range(4)]
    pool = W.WorkerPool(s, workers=1, backfill_workers=3, label="test", poll=0.05)
    pool.start()
    try:
        assert three.wait(20), "three backfills should run at once"
        daily = J.enqueue(s, SyncRequest("daily-1"))
        (done,) = J.wait(s, [daily.job_id], timeout=20)
        assert done.state == "done", "the daily sync ran while three backfills held their threads"
        assert most[0] == 3 and J.get(s, backs[3].job_id).state == "queued", "the fourth backfill waits for a slot"
        release.set()
        finished = J.wait(s, [b.job_id for b in backs], timeout=20)
        assert [j.state for j in finished] == ["done"] * 4
    finally:
        release.set()
        pool.stop()


def test_progress_is_written_in_batches_except_waiting_for_the_database(tmp_path, monkeypatch):
    """A quiet daily sync reports a score of step changes in a fraction of a second: the pool writes
    its jobs' latest progress together (one transaction per flush, not one per event), yet a job
    held up by the database says so in the jobs file at once."""
    from xero_core.pipeline import worker as W
    from xero_core.pipeline.result import SyncResult

    s = load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
                       "XERO_ENCRYPTION_KEY": secrets.token_hex(32)})
    flushes: list[dict] = []
    flushed_pnl, release = threading.Event(), threading.Event()
    real_many = J.set_progress_many

    def counting_many(settings, progress):
        if progress:
            flushes.append({jid: p.to_dict() for jid, p in progress.items()})
        real_many(settings, progress)
        if any(p.step == "pnl" for p in progress.values()):
            flushed_pnl.set()

    seen_waiting = {}

    def fake_run(settings, request, *, progress, **kw):
        for step in ("accounts", "contacts", "invoices"):
            progress(ProgressEvent("running", request.tenant_id, step, f"{step}…"))
            progress(ProgressEvent("success", request.tenant_id, step, "0 rows", rows=0))
        jid = next(j.job_id for j in J.active_jobs(settings) if j.tenant_id == request.tenant_id)
        progress(ProgressEvent("waiting", request.tenant_id, "pnl", "waiting for the database (held by a notebook)"))
        seen_waiting[request.tenant_id] = J.get(settings, jid).progress  # before any flush could carry it
        progress(ProgressEvent("running", request.tenant_id, "pnl", "week 1 of 5", count=1, total=5))
        assert release.wait(30), "the test never let the job finish"
        return SyncResult(tenant_id=request.tenant_id, run_id="r", trigger=request.trigger)

    monkeypatch.setattr(W, "run_sync", fake_run)
    monkeypatch.setattr(J, "set_progress_many", counting_many)
    jobs = [J.enqueue(s, SyncRequest(f"org-{i}")) for i in range(3)]
    pool = W.WorkerPool(s, workers=3, label="test", job_ids=[j.job_id for j in jobs], heartbeat=0.1)
    pool.start()
    try:
        for _ in range(200):  # each flush is one transaction; wait for those that carry all three at pnl
            flushed_pnl.clear()
            now = {j.job_id: J.get(s, j.job_id).progress for j in jobs}
            if all(p.step == "pnl" and p.status == "running" for p in now.values()):
                break
            assert flushed_pnl.wait(10), ("a flush carried the pnl step", now, flushes)
        assert all(p.step == "pnl" and p.count == 1 and p.total == 5 for p in now.values()), now
        assert {t: p.status for t, p in seen_waiting.items()} == {f"org-{i}": "waiting" for i in range(3)}, \
            "waiting for the database is in the jobs file the moment it is reported"
        events = 3 * 8  # per job: six step events and two pnl events go through the flushes
        carried = sum(len(f) for f in flushes)
        assert carried < events / 2, f"{carried} progress writes for {events} events: not batched"
    finally:
        release.set()
        done = J.wait(s, [j.job_id for j in jobs], timeout=30)
        pool.stop()
    assert [j.state for j in done] == ["done"] * 3


def test_a_request_joining_a_job_that_does_less_is_not_lost(settings):
    """Issue 21 §3: joining widens a queued job; a running one queues the request when it ends."""
    from xero_core.pipeline.request import SyncRequest

    daily = J.enqueue(settings, SyncRequest("t-1", trigger="scheduler"))
    widened = J.enqueue(settings, SyncRequest("t-1", weeks=8, trigger="cli"))
    assert widened.joined and widened.job_id == daily.job_id and J.get(settings, daily.job_id).request.weeks == 8
    assert J.enqueue(settings, SyncRequest("t-1", weeks=4)).follow_up is None  # covered: nothing more

    J.claim(settings, J.Owner(label="scheduler"))
    joined = J.enqueue(settings, SyncRequest("t-1", weeks=26, only=frozenset({"pnl"}), trigger="manual"))
    assert joined.job_id == daily.job_id and joined.follow_up.weeks == 26
    J.finish(settings, daily.job_id, "done")
    (after,) = [j for j in J.list_jobs(settings, active_only=True)]
    assert after.request.weeks == 26 and after.request.only == frozenset({"pnl"}) and after.trigger == "manual"
    assert after.priority == 0  # a sync: its older weeks become its own history backfill when it runs (issue 24 §1)


@pytest.mark.slow
def test_a_full_disk_on_the_jobs_file_ends_the_run_with_its_sentence_and_no_thread_traceback(tmp_path, monkeypatch, caplog):
    """Issue 21 §3: the jobs file full mid-run printed 'Exception in thread sync-cli-0' and 'could not
    claim a sync job' tracebacks and no summary; now the job ends failed with the sentence."""
    import logging

    from xero_core.errors import StorageError

    s, clock, fake, org = connect(tmp_path, invoices=30, org_factory=small_org)
    sentence = f"The disk holding {J.path(s)} is full (database or disk is full); free some space."
    escaped: list = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args))
    real_finish = J.finish

    def full(*a, **kw):
        raise StorageError(sentence, path=J.path(s), problem="full")

    monkeypatch.setattr(J, "finish", full)
    job = J.enqueue(s, SyncRequest(org, only=frozenset({"accounts"}), trigger="cli"))
    pool = WorkerPool(s, workers=2, label="cli", job_ids=[job.job_id], transport=fake.transport(), clock=clock)
    tried = threading.Event()

    def failing_claim(*a, **kw):
        tried.set()
        full()

    with caplog.at_level(logging.WARNING):
        (ended,) = pool.run_until_done([job.job_id])
        pool.stop(timeout=30)
        monkeypatch.setattr(J, "claim", failing_claim)  # and claiming fails too
        other = WorkerPool(s, workers=1, label="cli", job_ids=["another"], poll=0.05).start()
        assert tried.wait(30)
        other.stop(timeout=30)
    assert ended.state == "failed" and ended.error == sentence
    assert not escaped, "no exception escaped a worker thread"
    assert not [r for r in caplog.records if r.exc_info], "sentences, no tracebacks"
    assert any(r.getMessage() == f"could not claim a sync job; trying again: {sentence}" for r in caplog.records)
    monkeypatch.setattr(J, "finish", real_finish)


def test_preparing_jobs_sqlite_again_keeps_this_process_s_locks_on_it(tmp_path):
    """POSIX drops every lock a process holds on a file when it closes any descriptor of it. _create
    opened and closed an existing jobs.sqlite, so a second preparation (the same file under another
    spelling of its path) released the SQLite locks of connections already open in this process:
    another process could then switch the file out of WAL mode under them."""
    import os

    from xero_core.pipeline import jobs as J
    from xero_core.sqlite_wal import open_wal

    p = tmp_path / "data" / "jobs.sqlite"
    J._ensure(p)
    held = open_wal(p, timeout=5)  # a connection another thread of this process is using
    try:
        J._ensure(Path(os.path.relpath(p)))  # the same file, prepared again
        probe = subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0.2);"
                                " print(c.execute('PRAGMA journal_mode=DELETE').fetchone()[0])", str(p)],
                               capture_output=True, text=True, timeout=120)
        assert "database is locked" in probe.stderr, probe.stdout  # before the fix: 'delete'
        assert held.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        held.close()


def test_a_stale_heartbeat_is_a_dead_owner_except_for_this_very_process(settings, monkeypatch):
    """Another process (here: another host, or a live pid that stopped beating) not heard from for
    STALE_SECONDS is taken for dead; the asking process never takes its own jobs for dead, however
    far the clock jumped (a resumed laptop; a scheduler test's clock moving an hour at once)."""
    import time as _time

    mine = J.enqueue(settings, SyncRequest("t-mine"))
    theirs = J.enqueue(settings, SyncRequest("t-theirs"))
    me = J.Owner(label="scheduler")
    other = J.Owner(label="scheduler", host="another-host", pid=4242)
    assert J.claim(settings, me, job_ids=[mine.job_id]).job_id == mine.job_id
    assert J.claim(settings, other, job_ids=[theirs.job_id]).job_id == theirs.job_id
    assert J.reap(settings) == []
    later = _time.time() + J.STALE_SECONDS + 3600
    monkeypatch.setattr(J.time, "time", lambda: later)
    reaped = J.reap(settings)
    assert [j.job_id for j in reaped] == [theirs.job_id]
    assert reaped[0].state == "interrupted" and "not been heard from for 62 min" in reaped[0].error
    assert J.get(settings, mine.job_id).state == "running"
