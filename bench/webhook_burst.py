"""Webhook receiver under a burst while another process holds the DuckDB file.

    .venv/bin/python bench/webhook_burst.py --good 2000 --bad 200 --concurrency 32

Prints response-time percentiles (Xero wants every answer within 5 s), then how long the worker
takes to move and process the backlog once the database is free (against the in-process fake).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xero_core import oauth  # noqa: E402
from xero_core.fake import FakeClock, FakeXero  # noqa: E402
from xero_core.practice import webhooks as W  # noqa: E402
from xero_core.practice.webhook_server import serve  # noqa: E402
from xero_core.settings import load_settings  # noqa: E402

KEY = "bench-webhook-key-" + secrets.token_hex(16)


def sign(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--good", type=int, default=2000)
    ap.add_argument("--bad", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    clock = FakeClock()
    fake = FakeXero(clock=clock, invoices=50)
    data = Path(tempfile.mkdtemp(prefix="ll-webhook-bench-"))
    s = load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(data), "XERO_ENCRYPTION_KEY": secrets.token_hex(32),
                       "XERO_WEBHOOK_KEY": KEY, **fake.settings_env("http://fake.test")})
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)), transport=fake.transport(),
                                     clock=clock)
    org = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")
    contacts = [c.id for c in fake.org(org).contacts]
    bodies = []
    for i in range(args.good):
        ev = fake.webhooks.event(org, "CONTACT", "UPDATE", contacts[i % len(contacts)], at=1.7e9 + i)
        bodies.append((json.dumps({"events": [ev], "firstEventSequence": i + 1, "lastEventSequence": i + 1,
                                   "entropy": "BENCHBENCHBENCHBENCH"}).encode(), True))
    bodies += [(json.dumps({"events": [], "entropy": str(i)}).encode(), False) for i in range(args.bad)]

    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb,sys; c=duckdb.connect({str(s.db_path)!r}); "
                               "print('holding', flush=True); sys.stdin.readline()"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    times, wrong = [], 0
    try:
        with serve(s, port=0, worker=True, transport=fake.transport(), clock=clock) as srv, \
                httpx.Client(timeout=30, limits=httpx.Limits(max_connections=args.concurrency)) as http:
            def post(item):
                body, good = item
                t0 = time.perf_counter()
                r = http.post(srv.url, content=body, headers={"x-xero-signature": sign(body, KEY if good else KEY + "x")})
                times.append(time.perf_counter() - t0)
                return r.status_code == (200 if good else 401) and r.content == b""

            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                wrong = sum(1 for ok in pool.map(post, bodies[::2] + bodies[1::2]) if not ok)
            total = time.perf_counter() - t0
    finally:
        holder.stdin.close()
        holder.wait(10)
    times.sort()
    pct = lambda p: times[min(len(times) - 1, int(p * len(times)))] * 1000  # noqa: E731
    print(f"{len(times)} requests in {total:.2f} s with DuckDB held by another process; wrong answers: {wrong}")
    print(f"response ms: p50 {pct(0.5):.1f}  p95 {pct(0.95):.1f}  p99 {pct(0.99):.1f}  max {times[-1] * 1000:.1f}")
    t0 = time.perf_counter()
    r = W.drain(s, transport=fake.transport(), clock=clock)
    print(f"drain after release: {time.perf_counter() - t0:.2f} s; moved {r.moved_deliveries}, new events {r.new_events}, "
          f"processed {r.processed}, failed {r.failed}, API calls {r.api_calls}")
    return 0 if wrong == 0 and times[-1] < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
