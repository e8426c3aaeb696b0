"""How long Practice Manager's job list takes to parse, by size (issue 21 item 5: it grew faster
than its size: 100k jobs 3.9 s, 200k jobs / 8 MB 19 s).

    .venv/bin/python bench/xpm_parse.py            # 25k, 50k, 100k and 200k jobs
    .venv/bin/python bench/xpm_parse.py --repeat=1 100000 200000

Prints one line per size: bytes, seconds to parse (best of 2, or --repeat=N), microseconds per job. Linear parsing
keeps the last column flat.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xero_core.practice.xpm_xml import parse_jobs  # noqa: E402

STATES = ("Planned", "In Progress", "Waiting on Client", "Review", "Completed")


def job_list(n: int) -> bytes:
    """`n` jobs shaped as job.api/current answers them, compact (about 90 bytes a job, so 200,000 jobs
    stay under the 20 MB the parser accepts; the issue's 200,000 jobs were 8 MB)."""
    parts = ['<?xml version="1.0" encoding="utf-8"?><Response api-method="Current"><Status>OK</Status><Jobs>']
    for i in range(n):
        parts.append(f"<Job><ID>J{i}</ID><State>{STATES[i % len(STATES)]}</State>"
                     f"<DueDate>2026-10-31T00:00:00</DueDate></Job>")
    parts.append("</Jobs></Response>")
    return "".join(parts).encode()


def measure(n: int, repeat: int) -> tuple[int, float]:
    data = job_list(n)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        jobs = parse_jobs(data)
        best = min(best, time.perf_counter() - t0)
        assert len(jobs) == n
    return len(data), best


def main(argv: list[str]) -> None:
    repeat = 2
    if argv and argv[0].startswith("--repeat="):
        repeat, argv = int(argv[0].split("=", 1)[1]), argv[1:]
    sizes = [int(a) for a in argv] or [25_000, 50_000, 100_000, 200_000]
    print(f"{'jobs':>8} {'bytes':>12} {'seconds':>8} {'us/job':>7}")
    for n in sizes:
        size, secs = measure(n, repeat)
        print(f"{n:>8,} {size:>12,} {secs:>8.2f} {secs / n * 1e6:>7.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
