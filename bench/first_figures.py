"""Time to first figures: the workshop's first Sync now, as the admin app runs it (issue 24 §1).

    .venv/bin/python bench/first_figures.py [--weeks 12] [--seed 42] [--keep]

A fresh data dir; the fake Xero as its own process on a free loopback port (real HTTP, real time, its
real 60 calls a minute per organisation); the demo organisation connected through the fake's consent
form (what Connect does); then "Sync now" as the Sync page queues it (weeks from its input, default 12,
trigger manual), run by the app server's pool (pipeline.worker.ensure_background_pool). It prints:

- time to first figures: until the Data page's frames (xero_core.analysis, what pages/data.py reads)
  hold the latest complete week's P&L, cash position and sales;
- time to complete history: until the organisation has no queued or running sync job left;
- calls spent (sync_log) and the rate-limit floor for them: Xero admits 60 calls in any minute, so N
  calls take at least (N - 60) / 60 minutes after the first burst.

The same script runs before and after a change (it only queues a request and reads the jobs file).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weeks", type=int, default=12, help="the Sync page's 'Weeks of history' (default 12, its default)")
    ap.add_argument("--seed", type=int, default=42, help="the fake's seed (default 42, the demo's)")
    ap.add_argument("--keep", action="store_true", help="keep the data dir (printed) instead of deleting it")
    ap.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds (default 1800)")
    args = ap.parse_args()

    data = Path(tempfile.mkdtemp(prefix="ledgerlink-first-figures-"))
    port = free_port()
    os.environ.update({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(data / "data"), "XERO_FAKE_PORT": str(port),
                       "XERO_ENCRYPTION_KEY": secrets.token_hex(32), "XERO_ENV_FILE": os.devnull})
    from xero_core import analysis, db
    from xero_core.clock import today
    from xero_core.commands.sync import connect_via_consent_form
    from xero_core.engine import Engine
    from xero_core.fake.server import start_fake
    from xero_core.pipeline import jobs as J
    from xero_core.pipeline.request import SyncRequest
    from xero_core.pipeline.worker import ensure_background_pool, stop_background_pools
    from xero_core.practice.sql import one, value
    from xero_core.settings import load_settings
    from xero_core.sync.weeks import week_ending_for

    s = load_settings()
    fake = start_fake(port, data / "fake-xero", args.seed, owned=True)
    try:
        tenants = connect_via_consent_form(s)
        org = next(t for t in tenants if t["tenant_type"] == "ORGANISATION")
        tid = org["tenant_id"]
        latest_complete = week_ending_for(today(s.timezone), s.week_ends_on) - timedelta(weeks=1)
        pool = ensure_background_pool(s, label="app")

        def figures_shown() -> bool:
            try:
                pnl = analysis.weekly_pnl(s, tenant_id=tid)
                cash = analysis.cash_position(s, tenant_id=tid)
                with db.connect(s.db_path, read_only=True) as con:
                    sales = value(con, "SELECT count(*) FROM revenue_weekly WHERE tenant_id = ? AND week_ending = ?",
                                  [tid, latest_complete])
            except Exception:
                return False
            weeks = set(pnl["week_ending"].to_list()) if pnl.height else set()
            cash_weeks = set(cash["week_ending"].to_list()) if cash.height else set()
            return latest_complete in weeks and latest_complete in cash_weeks and sales > 0

        t0, wall0 = time.monotonic(), time.time()
        job_id = Engine(s).submit(SyncRequest(tid, weeks=args.weeks, trigger="manual", requested_by="admin app"),
                                  tenant_name=org.get("tenant_name"))
        first = None
        while time.monotonic() - t0 < args.timeout:
            if first is None and figures_shown():
                first = time.monotonic() - t0
                print(f"first figures after {first:.1f} s", file=sys.stderr)
            active = [j for j in J.active_jobs(s) if j.tenant_id == tid]
            if not active and first is not None:
                break
            if not active:
                job = J.get(s, job_id)
                if job is None or job.state != "done":  # failed, or gone: no figures will come
                    break
            time.sleep(0.25)
        history = time.monotonic() - t0
        stop_background_pools("the bench ended")
        del pool
        ran = [j for j in J.list_jobs(s, tenant_id=tid, limit=20)]
        with db.connect(s.db_path, read_only=True) as con:
            calls, journals = one(
                con, "SELECT sum(api_calls), sum(api_calls) FILTER (WHERE sync_type = 'journals') FROM sync_log "
                "WHERE tenant_id = ?", [tid])
            weeks = value(con, "SELECT count(*) FROM financial_weekly WHERE tenant_id = ?", [tid])
            steps = con.execute(
                "SELECT run_id, sync_type, status, api_calls, epoch(started_at), epoch(finished_at) FROM sync_log "
                "WHERE tenant_id = ? ORDER BY started_at", [tid]).fetchall()
        calls = int(calls or 0)
        floor = max(calls - 60, 0) / 60 * 60
        doc = {
            "weeks_asked": args.weeks, "time_to_first_figures_s": round(first, 1) if first is not None else None,
            "time_to_complete_history_s": round(history, 1), "calls": calls, "journal_calls": int(journals or 0),
            "floor_s": round(floor, 1), "history_over_floor": round(history / floor, 2) if floor else None,
            "weeks_stored": weeks,
            "steps": [f"{r[1]} {r[2]}: {r[3]} calls, {r[4] - wall0:.1f} s to {r[5] - wall0:.1f} s" for r in steps],
            "jobs": [{"job": j.job_id[:8], "what": j.request.describe(), "state": j.state, "priority": j.priority,
                      "seconds": round((j.finished_at or 0) - (j.started_at or 0), 1) if j.finished_at else None}
                     for j in reversed(ran)],
        }
        print(json.dumps(doc, indent=2))
        return 0 if first is not None and all(j.state == "done" for j in ran) else 1
    finally:
        fake.stop()
        if args.keep:
            print(f"data kept in {data}", file=sys.stderr)
        else:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
