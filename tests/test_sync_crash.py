"""A sync killed with SIGKILL at any point, then run again, ends with exactly the rows a clean sync
gives. The worker kills itself at its N-th checkpoint (pages fetched, frames written, steps ended:
XERO_SYNC_KILL_AT), so the kill points are exact and repeatable. Each run is its own process with
its own copy of the data dir and of the fake's saved state (grants, tokens)."""
from __future__ import annotations

import pytest
import secrets
import shutil
import signal
import multiprocessing
import multiprocessing.connection
import time
from datetime import date, datetime, timezone
from pathlib import Path

from xero_core.snapshot import working_path
from xero_core import db, oauth
from xero_core.fake.app import FakeXero
from xero_core.fake.clock import FakeClock
from xero_core.settings import load_settings

from test_sync_e2e import small_org

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
FAKE_KW = dict(seed=7, today=date(2026, 11, 26), invoices=60)
WEEKS = 3
HANG_CEILING = 600  # seconds for a batch of runs to end: far beyond a slow machine's, only a hang reaches it
TABLES = ("accounts", "contacts", "invoices", "invoice_lines", "credit_notes", "credit_note_lines", "financial_weekly",
          "pnl_lines", "revenue_weekly", "cash_position_weekly", "journal_lines", "pnl_tieout_weekly", "sync_cursors")

def worker(env: dict, data_dir: str, fake_state: str, tenant: str, kill_at: int | None, out_q) -> None:
    """One sync in a child process (forked from a server that has imported everything already)."""
    import os as _os

    from xero_core.engine import Engine
    from xero_core.sync import context, incremental

    incremental.CHUNK = 50  # several chunks per resource, so kills also land between chunk commits

    if kill_at is not None:
        _os.environ[context.KILL_ENV] = str(kill_at)
    s = load_settings(env)
    clock = FakeClock(START)
    fake = FakeXero(clock=clock, state_dir=fake_state, org_factory=small_org, **FAKE_KW)
    res = Engine(s, transport=fake.transport(), clock=clock).sync(tenant, weeks=WEEKS)
    out_q.put({"ok": res.ok, "checkpoints": context._checkpoints, "kill_at": kill_at, "data_dir": data_dir})


def snapshot(db_path: Path) -> dict:
    out = {}
    with db.connect(db_path, read_only=True) as con:
        for t in TABLES:
            cols = [c[0] for c in con.execute(f"DESCRIBE {t}").fetchall()
                    if c[0] not in ("synced_at",) and not (t == "sync_cursors" and c[0] == "updated_at")]
            out[t] = con.execute(f"SELECT {', '.join(cols)} FROM {t} ORDER BY ALL").fetchall()
        # The clients step's cursors hold the newest synced_at it matched: a wall-clock time, which
        # differs between any two runs. That they exist is compared, not their value.
        out["sync_cursors"] = [r if not str(r[1]).startswith("clients_reconcile") else r[:2] for r in out["sync_cursors"]]
    return out


@pytest.mark.slow
def test_killed_anywhere_then_resumed_equals_a_clean_sync(tmp_path):
    key = secrets.token_hex(32)
    base = tmp_path / "base"
    env = {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(base / "data"), "XERO_ENCRYPTION_KEY": key}
    s = load_settings(env)
    clock = FakeClock(START)
    fake = FakeXero(clock=clock, state_dir=base / "fake", org_factory=small_org, **FAKE_KW)
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)),
                                     transport=fake.transport(), clock=clock)
    tenant = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")

    # Children fork from a server that imported the product once: no interpreter start per run.
    ctx = multiprocessing.get_context("forkserver")
    # pyarrow too: the product imports it lazily (the clients step's first batch), ~1 s in every child otherwise
    ctx.set_forkserver_preload(["xero_core.engine", "xero_core.pipeline.executor", "xero_core.fake.app", "xero_core.client",
                                "pyarrow", __name__])
    results = ctx.Queue()

    def clone(name: str) -> Path:
        d = tmp_path / name
        shutil.copytree(base, d)
        return d

    def run(d: Path, kill_at: int | None) -> multiprocessing.Process:
        p = ctx.Process(target=worker, args=({**env, "XERO_DATA_DIR": str(d / "data")}, str(d / "data"),
                                             str(d / "fake"), tenant, kill_at, results))
        p.start()
        return p

    def wait_all(procs: dict) -> dict:
        """Each process's exit code, once all have ended. Bounded by their completion, not by a time
        per process: a dozen syncs at once on a busy machine take what they take. HANG_CEILING only
        catches a real hang (then the ones left are killed, and their code is None)."""
        left = {p.sentinel: p for p in procs.values()}
        deadline = time.monotonic() + HANG_CEILING
        while left and time.monotonic() < deadline:
            for ended in multiprocessing.connection.wait(list(left), timeout=deadline - time.monotonic()):
                left.pop(ended)
        hung = [k for k, p in procs.items() if p.sentinel in left]
        for p in left.values():
            p.kill()
            p.join()
        assert not hung, f"runs {hung} had not ended after {HANG_CEILING} s: a hang"
        return {k: p.exitcode for k, p in procs.items()}

    # A clean sync, counting its checkpoints (an unreachable kill point keeps the counter on).
    clean = clone("clean")
    assert wait_all({0: run(clean, 10**9)}) == {0: 0}
    info = results.get(timeout=10)
    assert info["ok"], info
    n = info["checkpoints"]
    assert n >= 15, f"only {n} checkpoints: the kill points would not cover the sync"
    want = snapshot(working_path(clean / "data"))
    assert want["journal_lines"] and want["revenue_weekly"] and want["financial_weekly"] and want["credit_notes"]

    # Kill at 11+ points spread over the whole sync (first page, mid-write, between steps, last step).
    points = sorted({1, n} | {round(1 + i * (n - 1) / 10) for i in range(11)})
    assert len(points) >= 10
    runs = {k: clone(f"kill{k}") for k in points}
    codes = wait_all({k: run(d, k) for k, d in runs.items()})
    assert codes == {k: -signal.SIGKILL for k in points}, "every kill point must be reached"
    # Resume each: every one ends identical to the clean sync.
    codes = wait_all({k: run(d, None) for k, d in runs.items()})
    assert codes == {k: 0 for k in points}
    oks = [results.get(timeout=10) for _ in points]
    assert all(r["ok"] for r in oks), oks
    for k, d in runs.items():
        got = snapshot(working_path(d / "data"))
        for t in TABLES:
            assert got[t] == want[t], f"table {t} differs after a kill at checkpoint {k} of {n}"
