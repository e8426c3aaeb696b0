"""How Ledgerlink scales with the number of organisations: 1, 10, 100, 500 small orgs on the fake.

    .venv/bin/python bench/tenants.py [--sizes 1,10,100,500] [--invoices 20] [--workers 32] [--weeks 2]

For each size: one fake Xero with N small organisations (about 220 invoices, 1,200 bank
transactions and 1,600 journals each, two years of history), one consent connecting all of them,
then every organisation's first full sync (`Engine.sync`, every step) at once on a pool of worker
threads, through the real client, token manager and shared rate limiter (per tenant 57/min and 5
in flight, app-wide 9,500/min: our margins under Xero's 60 and 10,000), into one DuckDB file.

Time is virtual (bench/simclock.py): it stands still while the CPU works and jumps when every worker
waits for a rate-limit window, so "virtual min" is what the limits alone cost and "floor min" is
the least Xero's own limits allow for the same calls (per tenant 60/min after a first burst of 60;
app-wide 10,000/min); "calls/min" is calls over the virtual run, counted as one minute when shorter,
and "peak/60s" the most calls in any 60 s. CPU is measured for real, split into the product and the in-process fake.
Prints one table; nothing is written outside a temporary directory.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import os
import resource
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone

import httpx
import psutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from simclock import SimClock  # noqa: E402

from xero_core import oauth  # noqa: E402
from xero_core.fake import FakeXero  # noqa: E402
from xero_core.settings import load_settings  # noqa: E402
from xero_core.engine import Engine  # noqa: E402

TODAY = date(2026, 11, 26)
XERO_TENANT_MINUTE, XERO_APP_MINUTE = 60, 10_000


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def floor_minutes(per_tenant_calls: Collection[int]) -> float:
    """The least time Xero's fixed windows allow: a tenant makes at most 60 calls per minute window
    and the app 10,000, so n calls need ceil(n / limit) windows, the first starting at once."""
    if not per_tenant_calls:
        return 0.0
    tenant = max(math.ceil(n / XERO_TENANT_MINUTE) - 1 for n in per_tenant_calls)
    app = math.ceil(sum(per_tenant_calls) / XERO_APP_MINUTE) - 1
    return float(max(tenant, app, 0))


def peak_window(times: list[float], width: float = 60.0) -> int:
    times = sorted(times)
    best = j = 0
    for i, t in enumerate(times):
        while times[j] <= t - width:
            j += 1
        best = max(best, i - j + 1)
    return best


def run_pool(s, orgs: list[str], *, weeks: int | None, transport, clock: SimClock) -> dict:
    """Every organisation's sync as a job, run by the product's own WorkerPool with its own thread
    settings (XERO_SYNC_WORKERS, XERO_BACKFILL_WORKERS), as the scheduler runs them. Each claimed job
    counts as a worker of the simulated clock from its claim to its end."""
    from xero_core.pipeline.request import SyncRequest
    from xero_core.pipeline.worker import WorkerPool

    class SimPool(WorkerPool):
        def _claim(self):
            job = super()._claim()
            if job is not None:
                held = clock.worker()
                held.__enter__()
                registered[job.job_id] = held
            return job

        def _run_and_release(self, job):
            try:
                super()._run_and_release(job)
            finally:
                registered.pop(job.job_id).__exit__(None, None, None)

    registered: dict = {}
    engine = Engine(s, transport=transport, clock=clock)
    # A long run is a history backfill as a whole (issue 24 split a first sync into figures and history;
    # this bench measures the backfill path itself, as its figures in docs/scaling.md always did).
    backfill = bool(weeks and weeks > 8)
    ids = [engine.submit(SyncRequest(t, weeks=weeks, trigger="scheduler", history=backfill)) for t in orgs]
    pool = SimPool(s, label="bench", job_ids=ids, transport=transport, clock=clock)
    try:
        done = pool.run_until_done(ids)
    finally:
        pool.stop()
    out = {}
    for j in done:
        out[j.tenant_id] = j
    return {"jobs": out, "workers": pool.workers, "backfill_workers": pool.backfill_workers}


def run(n: int, *, invoices: int, workers: int, weeks: int | None, keep: bool, pool: bool = False) -> dict:
    tmp = tempfile.mkdtemp(prefix=f"ledgerlink-tenants-{n}-")
    rss0 = rss_mb()
    clock = SimClock(datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc))
    t0 = time.perf_counter()
    fake = FakeXero(seed=7, today=TODAY, clock=clock, tenants=n, practices=0, invoices=invoices)
    build_s = time.perf_counter() - t0
    rss_fake = rss_mb()

    fake_cpu = [0.0]
    cpu_lock = threading.Lock()

    def handle(request: httpx.Request) -> httpx.Response:
        c0 = time.thread_time()
        try:
            return fake.handle(request)
        finally:
            with cpu_lock:
                fake_cpu[0] += time.thread_time() - c0

    transport = httpx.MockTransport(handle)
    s = load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": os.path.join(tmp, "data"),
                       "XERO_ENCRYPTION_KEY": secrets.token_hex(32), **fake.settings_env("http://fake.test"),
                       **{k: v for k, v in os.environ.items() if k in ("XERO_SYNC_WORKERS", "XERO_BACKFILL_WORKERS")}})
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)), transport=transport,
                                     clock=clock)
    orgs = [t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION"]
    assert len(orgs) == n, (len(orgs), n)
    n_requests0 = len(fake.requests)

    results = {}
    cpu0, real0, v0 = time.process_time(), time.perf_counter(), clock.time()
    fake_cpu0 = fake_cpu[0]

    engine = Engine(s, transport=transport, clock=clock)

    def one(tid: str):
        with clock.worker():
            results[tid] = engine.sync(tid, weeks=weeks, trigger="scheduler")

    pool_info = None
    if pool:
        pool_info = run_pool(s, orgs, weeks=weeks, transport=transport, clock=clock)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, n), thread_name_prefix="bench-sync") as threads:
            for f in [threads.submit(one, tid) for tid in orgs]:
                f.result()
    real_s = time.perf_counter() - real0
    cpu_s = time.process_time() - cpu0
    fake_s = fake_cpu[0] - fake_cpu0
    virtual_min = (clock.time() - v0) / 60

    served = fake.requests[n_requests0:]
    api = [r for r in served if r.api in ("accounting", "files", "practice")]
    per_tenant = Counter(r.tenant_id for r in api)
    statuses = Counter(r.status for r in api)
    failed: dict[str, list[tuple[str | None, ...]]]  # tenant -> what did not succeed
    if pool_info is not None:
        failed = {tid: [(j.state, j.error)] for tid, j in pool_info["jobs"].items() if j.state != "done"}
    else:
        failed = {tid: [(st.step, st.status, st.error) for st in r.steps if st.status not in ("success", "skipped")]
                  for tid, r in results.items()}
    failed = {k: v for k, v in failed.items() if v}
    db_bytes = sum(os.path.getsize(p) for p in (s.db_path, str(s.db_path) + ".wal") if os.path.exists(p))
    out = {
        "tenants": n,
        "api_calls": len(api),
        "calls_per_tenant": len(api) / n,
        "virtual_min": virtual_min,
        "floor_min": floor_minutes(per_tenant.values()),
        "avg_per_min": len(api) / max(virtual_min, 1.0),  # a run inside one minute: its calls
        "peak_60s": peak_window([r.at.timestamp() for r in api]),
        "http_429": statuses.get(429, 0),
        "failed_tenants": len(failed),
        "real_s": real_s,
        "build_s": build_s,
        "cpu_product_ms_per_tenant": 1000 * (cpu_s - fake_s) / n,
        "cpu_fake_ms_per_tenant": 1000 * fake_s / n,
        "rss_fake_mb": rss_fake - rss0,
        "rss_end_mb": rss_mb(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "duckdb_mb": db_bytes / 2**20,
        "duckdb_kb_per_tenant": db_bytes / 1024 / n,
        "forced_clock_steps": clock.forced_steps,
        "forced_clock_s": sum(b - a for a, b in clock.forced),
        "failures": dict(list(failed.items())[:3]),
        "runner": (f"WorkerPool ({pool_info['workers']} + {pool_info['backfill_workers']} backfill threads)"
                   if pool_info else f"{workers} threads"),
    }
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        out["data_dir"] = tmp
    return out


COLUMNS = [
    ("tenants", "{:>7}", "orgs"), ("api_calls", "{:>8}", "calls"), ("calls_per_tenant", "{:>8.1f}", "calls/org"),
    ("virtual_min", "{:>8.2f}", "virt min"), ("floor_min", "{:>9.2f}", "floor min"),
    ("avg_per_min", "{:>9.0f}", "calls/min"), ("peak_60s", "{:>8}", "peak/60s"), ("http_429", "{:>5}", "429s"),
    ("failed_tenants", "{:>6}", "failed"), ("real_s", "{:>7.1f}", "real s"),
    ("cpu_product_ms_per_tenant", "{:>10.0f}", "cpu ms/org"), ("cpu_fake_ms_per_tenant", "{:>10.0f}", "fake ms/org"),
    ("rss_end_mb", "{:>8.0f}", "RSS MB"), ("duckdb_mb", "{:>9.1f}", "DuckDB MB"),
    ("duckdb_kb_per_tenant", "{:>8.0f}", "KB/org"),
]


def print_table(rows: list[dict]) -> None:
    widths = [max(len(h), *(len(fmt.format(r[k])) for r in rows)) for k, fmt, h in COLUMNS]
    print("  ".join(h.rjust(w) for (_, _, h), w in zip(COLUMNS, widths)))
    for r in rows:
        print("  ".join(fmt.format(r[k]).strip().rjust(w) for (k, fmt, _), w in zip(COLUMNS, widths)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,10,100,500", help="comma-separated organisation counts")
    ap.add_argument("--invoices", type=int, default=20, help="sales invoices per org (small orgs)")
    ap.add_argument("--workers", type=int, default=32, help="sync threads (each syncs one org at a time)")
    ap.add_argument("--weeks", type=int, default=None,
                    help="weeks of P&L/bank reports (default: the daily 2; e.g. 26 for a half-year backfill)")
    ap.add_argument("--keep", action="store_true", help="keep each run's data dir and print where")
    ap.add_argument("--pool", action="store_true",
                    help="run the syncs as jobs through the product's WorkerPool (the scheduler's path: every "
                         "step of the pipeline, its own thread settings) instead of --workers threads of Engine.sync")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # one size, in this process, JSON out
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.one:
        print(json.dumps(run(args.one, invoices=args.invoices, workers=args.workers, weeks=args.weeks,
                             keep=args.keep, pool=args.pool), default=str))
        return 0
    rows = []
    how = "the product's WorkerPool" if args.pool else f"{args.workers} threads"
    print(f"# first sync of every organisation, {args.weeks or 2} weeks of reports, {how}; "
          "each size in a fresh process", flush=True)
    for n in [int(x) for x in args.sizes.split(",") if x.strip()]:
        cmd = [sys.executable, os.path.abspath(__file__), "--one", str(n), "--invoices", str(args.invoices),
               "--workers", str(args.workers)] + (["--weeks", str(args.weeks)] if args.weeks else []) \
            + (["--keep"] if args.keep else []) + (["--pool"] if args.pool else [])
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(f"# {n} orgs: failed\n{p.stderr[-2000:]}", flush=True)
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"# {n} orgs: fake built in {r['build_s']:.1f} s (+{r['rss_fake_mb']:.0f} MB of the {r['rss_end_mb']:.0f} MB), "
              f"peak RSS {r['peak_rss_mb']:.0f} MB, forced clock steps {r['forced_clock_steps']} "
              f"({r['forced_clock_s']:.1f} virtual s)"
              + (f", failures {r['failures']}" if r["failures"] else ""), flush=True)
    print()
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
