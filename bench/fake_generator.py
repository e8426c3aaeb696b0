"""Benchmark the fake's generator and accounting handler at scale.

    .venv/bin/python bench/fake_generator.py [--invoices 100000] [--years 2] [--seed 42]

Prints, for building the organisation and for serving every page of Invoices (pageSize 100, as a
sync would), every page of BankTransactions/Payments (pageSize 1000), all Journals (offset paging)
and a year of weekly P&L reports: wall time, CPU time (steadier on a shared machine), API calls,
bytes and peak RSS.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from datetime import date, datetime, timedelta, timezone

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from xero_core.fake.accounting import handle_accounting  # noqa: E402
from xero_core.fake.ledger import generate_org  # noqa: E402

JSON = {"accept": "application/json"}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def serve_all(org, now, sub, plural, page_size):
    calls = nbytes = items = 0
    page = 1
    while True:
        status, _, body = handle_accounting(org, "GET", sub, {"page": str(page), "pageSize": str(page_size)},
                                            JSON, b"", now)
        assert status == 200
        calls += 1
        nbytes += len(body)
        n = body.count(b'"' + plural[:-1].encode() + b'ID":') if plural != "BankTransactions" else \
            body.count(b'"BankTransactionID":')
        items += n
        if n < page_size:
            return calls, nbytes, items
        page += 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--invoices", type=int, default=100_000)
    ap.add_argument("--years", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--today", default="2026-11-26")
    args = ap.parse_args(argv)
    today = date.fromisoformat(args.today)
    now = datetime.combine(today, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=3)

    rss0 = peak_rss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    org = generate_org(args.seed, today, years=args.years, invoices=args.invoices)
    build, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    sales = sum(1 for i in org.invoices if i.type == "ACCREC")
    print(f"build: {build:.2f} s ({build_cpu:.2f} s CPU), peak RSS {peak_rss_mb():.0f} MB (start {rss0:.0f} MB); "
          f"{sales:,} sales invoices, {len(org.invoices) - sales:,} bills, {len(org.bank_transactions):,} bank "
          f"transactions, {len(org.payments):,} payments, {len(org.journals):,} journals, "
          f"{len(org.contacts):,} contacts")

    for sub, plural, size in (("/Invoices", "Invoices", 100), ("/BankTransactions", "BankTransactions", 1000),
                              ("/Payments", "Payments", 1000)):
        t0, c0 = time.perf_counter(), time.process_time()
        calls, nbytes, items = serve_all(org, now, sub, plural, size)
        el, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"serve {sub} (pageSize {size}): {items:,} items in {calls:,} calls, {nbytes / 1e6:.1f} MB, "
              f"{el:.2f} s, {cpu:.2f} s CPU ({cpu / calls * 1000:.1f} ms CPU/call), peak RSS {peak_rss_mb():.0f} MB")

    t0, c0 = time.perf_counter(), time.process_time()
    offset = calls = nbytes = 0
    while True:
        status, _, body = handle_accounting(org, "GET", "/Journals", {"offset": str(offset)}, JSON, b"", now)
        calls += 1
        nbytes += len(body)
        n = body.count(b'"JournalNumber":')
        if n == 0:
            break
        offset += n
        if n < 100:
            break
    el, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"serve /Journals (offset): {offset:,} journals in {calls:,} calls, {nbytes / 1e6:.1f} MB, {el:.2f} s, "
          f"{cpu:.2f} s CPU ({cpu / calls * 1000:.1f} ms CPU/call), peak RSS {peak_rss_mb():.0f} MB")

    t0 = time.perf_counter()
    end = today - timedelta(days=1)
    for k in range(52):
        d_to = end - timedelta(days=7 * k)
        handle_accounting(org, "GET", "/Reports/ProfitAndLoss",
                          {"fromDate": str(d_to - timedelta(days=6)), "toDate": str(d_to)}, JSON, b"", now)
        handle_accounting(org, "GET", "/Reports/BankSummary",
                          {"fromDate": str(d_to - timedelta(days=6)), "toDate": str(d_to)}, JSON, b"", now)
    el = time.perf_counter() - t0
    print(f"52 weekly ProfitAndLoss + BankSummary reports: {el:.2f} s ({el / 104 * 1000:.1f} ms/report)")
    print(f"peak RSS overall: {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
