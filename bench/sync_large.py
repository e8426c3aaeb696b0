"""Benchmark: a first sync of a large organisation (>= 100,000 invoices, >= 10,000 contacts).

Runs the real sync (XeroClient + shared rate limiter + DuckDB) against the in-process fake Xero on a
FakeClock shared by both, so Xero's 60 calls/minute cost virtual time only. Prints, per step: API
calls, calls per 1,000 records, rows/s of transform+load (time outside the fake), and the
rate-limited floor (calls / 60 per minute, what real Xero would impose) beside the measured time;
plus peak memory (RSS above the process before the sync; the in-process fake's serving buffers included).

    .venv/bin/python bench/sync_large.py [--invoices 100000] [--contacts 10000] [--weeks 104] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xero_core import oauth  # noqa: E402
from xero_core.fake.app import FakeXero  # noqa: E402
from xero_core.fake.clock import FakeClock  # noqa: E402
from xero_core.settings import load_settings  # noqa: E402
from xero_core.engine import Engine  # noqa: E402

TODAY = date(2026, 11, 26)


class TimedTransport:
    """Wraps the fake's handler to count the time spent inside the fake (Xero's side)."""

    def __init__(self, fake):
        self.fake = fake
        self.seconds = 0.0
        self.lock = threading.Lock()

    def __call__(self, request):
        t = time.perf_counter()
        try:
            return self.fake.handle(request)
        finally:
            with self.lock:
                self.seconds += time.perf_counter() - t


class PeakRSS:
    def __init__(self):
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--invoices", type=int, default=100_000)
    ap.add_argument("--contacts", type=int, default=10_000)
    ap.add_argument("--weeks", type=int, default=104)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="ledgerlink-bench-"))
    s = load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp / "data"),
                       "XERO_ENCRYPTION_KEY": secrets.token_hex(32), "XERO_DAILY_BUDGET": "5000"})
    clock = FakeClock(datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc))
    t = time.perf_counter()
    fake = FakeXero(seed=42, today=TODAY, clock=clock, invoices=args.invoices, practices=0)
    org = fake.org()
    created = clock.now() - timedelta(days=400)
    for i in range(max(0, args.contacts - len(org.contacts))):
        org.add_contact(f"Bench Customer {i:05d}", created, email=f"bench{i:05d}@example.com")
    build_s = time.perf_counter() - t
    print(f"fake org built in {build_s:.1f} s: {len(org.invoices):,} invoices, {len(org.contacts):,} contacts, "
          f"{len(org.journals):,} journals", file=sys.stderr)

    timed = TimedTransport(fake)
    transport = httpx.MockTransport(timed)
    redirect = fake.consent(oauth.begin_connect(s, clock=clock))
    tenants = oauth.complete_connect(s, redirect, transport=transport, clock=clock)
    tenant = next(x["tenant_id"] for x in tenants if x["tenant_type"] == "ORGANISATION")

    step_times: dict[str, dict] = {}
    current = {"step": None, "t": 0.0, "fake": 0.0}

    def progress(ev):
        if ev.status == "running" and ev.step != current["step"]:
            current.update(step=ev.step, t=time.perf_counter(), fake=timed.seconds, v=clock.time())
        elif ev.status != "running" and ev.step == current["step"]:
            step_times[ev.step] = {"wall": time.perf_counter() - current["t"],
                                   "fake": timed.seconds - current["fake"],
                                   "virtual": clock.time() - current["v"]}
            current["step"] = None
            print(f"  {ev.message}", file=sys.stderr)

    rss0 = psutil.Process().memory_info().rss
    v0 = clock.time()
    t0 = time.perf_counter()
    with PeakRSS() as peak:
        res = Engine(s, transport=transport, clock=clock).sync(tenant, weeks=args.weeks, progress=progress)
    wall = time.perf_counter() - t0
    virtual_min = (clock.time() - v0) / 60

    rows_out = []
    for st in res.steps:
        tm = step_times.get(st.step, {"wall": 0.0, "fake": 0.0, "virtual": 0.0})
        ours = max(tm["wall"] - tm["fake"], 1e-9)
        rows_out.append({
            "step": st.step, "status": st.status, "rows": st.rows, "api_calls": st.api_calls,
            "calls_per_1000_records": round(1000 * st.api_calls / st.rows, 2) if st.rows else None,
            "mb_downloaded": round(st.bytes_downloaded / 1e6, 1),
            "wall_s": round(tm["wall"], 2), "fake_s": round(tm["fake"], 2), "transform_load_s": round(ours, 2),
            "rows_per_s_transform_load": int(st.rows / ours) if st.rows else None,
            "floor_min_at_60_per_min": round(st.api_calls / 60, 1),
            "virtual_min_at_our_pace": round(tm["virtual"] / 60, 1),
            "error": st.error,
        })
    total_calls = sum(r["api_calls"] for r in rows_out)
    summary = {
        "invoices": len(org.invoices), "contacts": len(org.contacts), "journals": len(org.journals),
        "weeks": args.weeks, "fake_build_s": round(build_s, 1),
        "api_calls": total_calls, "rate_limited_floor_min": round(total_calls / 60, 1),
        "virtual_min_taken": round(virtual_min, 1), "measured_wall_s": round(wall, 1),
        "wall_in_fake_s": round(timed.seconds, 1), "wall_transform_load_s": round(wall - timed.seconds, 1),
        "peak_rss_mb": round(peak.peak / 2**20), "rss_before_sync_mb": round(rss0 / 2**20),
        "sync_peak_above_fake_mb": round((peak.peak - rss0) / 2**20),
        "db_mb": round(os.path.getsize(s.db_path) / 2**20, 1), "steps": rows_out,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"\nLarge-org first sync: {summary['invoices']:,} invoices, {summary['contacts']:,} contacts, "
          f"{summary['journals']:,} journals, {args.weeks} report weeks")
    hdr = (f"{'step':<9}{'status':<9}{'rows':>9}{'calls':>7}{'calls/1k':>9}{'MB':>8}{'wall s':>8}{'fake s':>8}"
           f"{'ours s':>8}{'rows/s ours':>12}{'floor min':>10}{'virt min':>9}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows_out:
        print(f"{r['step']:<9}{r['status']:<9}{r['rows']:>9,}{r['api_calls']:>7}"
              f"{(r['calls_per_1000_records'] if r['calls_per_1000_records'] is not None else '-'):>9}"
              f"{r['mb_downloaded']:>8}{r['wall_s']:>8}{r['fake_s']:>8}{r['transform_load_s']:>8}"
              f"{(r['rows_per_s_transform_load'] or '-'):>12}{r['floor_min_at_60_per_min']:>10}"
              f"{r['virtual_min_at_our_pace']:>9}")
    print(f"\ntotal: {total_calls} API calls; rate-limited floor {summary['rate_limited_floor_min']} min at 60/min "
          f"(our pace took {summary['virtual_min_taken']} virtual min) vs measured {summary['measured_wall_s']} s "
          f"wall ({summary['wall_in_fake_s']} s inside the fake, {summary['wall_transform_load_s']} s ours)")
    print(f"memory: peak RSS {summary['peak_rss_mb']} MB, {summary['sync_peak_above_fake_mb']} MB above the "
          f"{summary['rss_before_sync_mb']} MB before the sync (the fake runs in this process: its per-page "
          f"JSON buffers count too); database {summary['db_mb']} MB")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
