"""Hundreds of organisations' daily sync through the scheduler's own path, in real time.

    .venv/bin/python bench/scheduler_fleet.py [--orgs 500] [--invoices 20] [--keep]

Processes, as in production: the fake Xero serving N small organisations on a loopback port (its
own process), and `scheduler.py --once` (a fresh process each run, as cron starts it). This process
only connects the organisations (one consent, as an admin ticking every organisation) and measures.

Runs `scheduler.py --once` twice:
  first  the first sync of every organisation (everything is new);
  daily  the next day's run with nothing changed in Xero: what the scheduler costs every day.
For each: wall time, API calls per organisation, 429s the fake answered, the scheduler's CPU
(user + system, from the kernel's accounting of the finished child) in ms per organisation, the
scheduler's and the fake's peak RSS. Goals (issue 15, on 2 cores): daily <= 3 min wall, 0 429s,
<= 100 ms CPU per organisation. Loopback only; it stops by itself.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TODAY = "2026-11-26"  # pinned: the same figures whatever day the bench runs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stat(pid: int) -> tuple[float, float]:
    """(cpu seconds, peak RSS MB) of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cpu, peak


def wait_for_fake(proc: subprocess.Popen, port: int, timeout: float = 600) -> None:
    import httpx

    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the fake Xero exited ({proc.returncode})")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_fake/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the fake Xero did not start")


def served(port: int) -> list[dict]:
    import httpx

    r = httpx.get(f"http://127.0.0.1:{port}/_fake/requests", timeout=120)
    r.raise_for_status()
    return r.json()["requests"]


def run_once(env: dict, label: str, fake_pid: int, port: int, orgs: int, workdir: Path,
             prefix: list[str] | None = None) -> dict:
    import httpx

    httpx.delete(f"http://127.0.0.1:{port}/_fake/requests", timeout=30).raise_for_status()
    fake_cpu0, _ = proc_stat(fake_pid)
    log = open(workdir / f"scheduler-{label}.log", "w")
    t0 = time.perf_counter()
    p = subprocess.Popen([*(prefix or []), sys.executable, str(ROOT / "scheduler.py"), "--once"], cwd=str(ROOT), env=env,
                         stdout=log, stderr=subprocess.STDOUT)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    fake_cpu1, fake_peak = proc_stat(fake_pid)
    reqs = served(port)
    api = [r for r in reqs if r.get("api")]
    statuses = Counter(r.get("status") for r in api)
    return {
        "run": label, "exit": p.returncode, "wall_s": round(wall, 1),
        "calls_per_org": round(len(api) / orgs, 1), "429s": statuses.get(429, 0),
        "errors_5xx": sum(v for k, v in statuses.items() if isinstance(k, int) and k >= 500),
        "cpu_ms_per_org": round((ru.ru_utime + ru.ru_stime) * 1000 / orgs, 1),
        "scheduler_peak_rss_mb": round(ru.ru_maxrss / 1024), "fake_cpu_s": round(fake_cpu1 - fake_cpu0, 1),
        "fake_peak_rss_mb": round(fake_peak),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orgs", type=int, default=500, help="organisations the fake serves (default 500)")
    ap.add_argument("--invoices", type=int, default=20, help="sales invoices per organisation (default 20: small)")
    ap.add_argument("--workers", type=int, default=None, help="XERO_SYNC_WORKERS for the scheduler (default: its own)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, database)")
    ap.add_argument("--profile", metavar="FILE",
                    help="sample the daily run's every thread with py-spy (on PATH) into FILE as collapsed stacks "
                         "(its CPU figures then include py-spy's)")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ledgerlink-fleet-"))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("XERO_")},
        "XERO_ENV_FILE": os.devnull, "XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(workdir / "data"),
        "XERO_ENCRYPTION_KEY": secrets.token_hex(32), "XERO_FAKE_PORT": str(port), "XERO_SYNC_EXTRA": "",
        "XERO_TODAY": TODAY, "PYTHONPATH": str(ROOT),
    }
    if args.workers:
        env["XERO_SYNC_WORKERS"] = str(args.workers)
    fake_log = open(workdir / "fake.log", "w")
    t0 = time.perf_counter()
    fake = subprocess.Popen([sys.executable, "-m", "xero_core", "fake-xero", "--port", str(port), "--tenants",
                             str(args.orgs), "--practices", "0", "--invoices", str(args.invoices), "--today", TODAY,
                             "--seed", "11"], cwd=str(ROOT), env=env, stdout=fake_log, stderr=subprocess.STDOUT)
    try:
        wait_for_fake(fake, port)
        print(f"fake Xero with {args.orgs} organisations up in {time.perf_counter() - t0:.0f} s", flush=True)
        import httpx

        from xero_core import oauth
        from xero_core.fake.consent import drive_consent
        from xero_core.settings import load_settings

        s = load_settings(env)
        with httpx.Client(timeout=120) as h:
            redirect = drive_consent(h, oauth.begin_connect(s))
        tenants = oauth.complete_connect(s, redirect)
        print(f"connected {len(tenants)} organisations", flush=True)
        rows = [run_once(env, "first", fake.pid, port, len(tenants), workdir)]
        print(json.dumps(rows[-1]), flush=True)
        spy = (["py-spy", "record", "--format", "raw", "--rate", "250", "--nonblocking",
                "-o", args.profile, "--"] if args.profile else None)
        rows.append(run_once(env, "daily", fake.pid, port, len(tenants), workdir, spy))
        print(json.dumps(rows[-1]), flush=True)
        cols = list(rows[0])
        print()
        print(" | ".join(cols))
        for r in rows:
            print(" | ".join(str(r[c]) for c in cols))
        d = rows[-1]
        print(f"\ngoals for the daily run: wall <= 180 s ({d['wall_s']}), 0 429s ({d['429s']}), "
              f"<= 100 ms CPU per organisation ({d['cpu_ms_per_org']})")
    finally:
        fake.terminate()
        try:
            fake.wait(30)
        except subprocess.TimeoutExpired:
            fake.kill()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
