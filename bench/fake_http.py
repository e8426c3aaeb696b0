"""Benchmark the whole fake Xero handler (identity, limits, envelope, logging), in-process and over
the loopback server, as the product's client sees it.

    .venv/bin/python bench/fake_http.py [--calls 2000] [--invoices 2000]

Prints calls per second and mean latency for a small call (Organisation), a page of 100 invoices,
a Files upload, and the 429 path; limits are lifted for the timing runs and checked separately.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import httpx  # noqa: E402

from xero_core.fake import FakeClock, FakeXero, serve  # noqa: E402
from xero_core.fake.consent import drive_consent  # noqa: E402
from xero_core.settings import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET  # noqa: E402

SCOPES = "offline_access accounting.settings.read accounting.invoices.read files"


def token(client: httpx.Client, base: str) -> str:
    url = (f"{base}/identity/connect/authorize?response_type=code&client_id={DEMO_CLIENT_ID}"
           f"&redirect_uri=http://localhost:8501/callback&scope={SCOPES.replace(' ', '%20')}&state=b")
    code = httpx.URL(drive_consent(client, url)).params["code"]
    return client.post(f"{base}/connect/token", data={"grant_type": "authorization_code", "code": code,
                                                     "redirect_uri": "http://localhost:8501/callback"},
                       auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)).json()["access_token"]


def run(label: str, client: httpx.Client, base: str, fake: FakeXero, calls: int) -> None:
    tok = token(client, base)
    h = {"Authorization": f"Bearer {tok}", "xero-tenant-id": fake.orgs[0].tenant_id, "Accept": "application/json"}
    cases = [
        ("GET Organisation", lambda: client.get(base + "/api.xro/2.0/Organisation", headers=h)),
        ("GET Invoices page (100)", lambda: client.get(base + "/api.xro/2.0/Invoices", params={"page": 1}, headers=h)),
        ("GET Folders", lambda: client.get(base + "/files.xro/1.0/Folders", headers=h)),
        ("POST Files (20 KB)", lambda: client.post(base + "/files.xro/1.0/Files", headers=h,
                                                   files={"body": ("a.pdf", b"x" * 20_000, "application/pdf")},
                                                   data={"name": "a.pdf", "filename": "a.pdf"})),
    ]
    for name, call in cases:
        n = calls if "Invoices" not in name else max(50, calls // 10)
        lat = []
        size = 0
        t0 = time.perf_counter()
        for _ in range(n):
            s = time.perf_counter()
            r = call()
            lat.append(time.perf_counter() - s)
            size += len(r.content)
            assert r.status_code in (200, 201), (name, r.status_code, r.text[:200])
        dt = time.perf_counter() - t0
        print(f"{label:<10} {name:<26} {n / dt:8.0f} calls/s  mean {statistics.mean(lat) * 1000:6.2f} ms  "
              f"p95 {sorted(lat)[int(n * .95) - 1] * 1000:6.2f} ms  {size / n / 1024:7.1f} KB/call")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--invoices", type=int, default=2000)
    a = ap.parse_args()
    t = time.perf_counter()
    fake = FakeXero(clock=FakeClock(), invoices=a.invoices)
    print(f"built the fake ({len(fake.orgs[0].invoices)} invoices) in {time.perf_counter() - t:.2f} s")
    fake.limits.per_minute = fake.limits.per_day = fake.limits.app_per_minute = 10 ** 9
    with httpx.Client(transport=fake.transport()) as c:
        run("in-process", c, "http://fake", fake, a.calls)
    with serve(fake) as server, httpx.Client(timeout=30) as c:
        run("loopback", c, server.url, fake, a.calls // 2)
    fake.limits.per_minute = 60
    fake.limits.reset()
    with httpx.Client(transport=fake.transport()) as c:
        tok = token(c, "http://fake")
        h = {"Authorization": f"Bearer {tok}", "xero-tenant-id": fake.orgs[0].tenant_id}
        codes = [c.get("http://fake/files.xro/1.0/Folders", headers=h).status_code for _ in range(61)]
    print(f"limits: {codes.count(200)} answered, then {codes[-1]} (X-MinLimit 60/minute)")
    print(f"served-request log: {len(fake.requests)} entries, {fake.api_calls()} API calls")


if __name__ == "__main__":
    main()
