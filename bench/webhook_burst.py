"""Both webhook receivers under a burst of concurrent senders: how fast does Xero get its answer?

    .venv/bin/python bench/webhook_burst.py --good 2000 --bad 200 --concurrency 64
    .venv/bin/python bench/webhook_burst.py --receiver cli --burn 2     # add two CPU-bound processes

Each receiver runs as it does in production, in its own process: `python -m xero_core webhooks`
(xero_core/practice/webhook_server.py) and the admin app's route (`streamlit run app.py`,
app_support/webhook_route.py). For each, two bursts of signed deliveries (and badly signed ones,
interleaved) from `--concurrency` senders: one while another process holds the DuckDB file (the
worker can move nothing), one with DuckDB free (the worker moves and processes while the burst
arrives). Prints response-time percentiles per burst (Xero wants every answer within 5 s) and how
long the spool took to reach DuckDB. Exit status 1 if any answer was wrong or took 5 s or more.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-webhook-key-" + secrets.token_hex(16)
TENANT = str(uuid.uuid4())  # not connected: events are moved into DuckDB and marked ignored


def sign(body: bytes, key: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bodies(good: int, bad: int, salt: str) -> list[tuple[bytes, bool]]:
    out = []
    for i in range(good):
        ev = {"resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{uuid.uuid4()}", "resourceId": str(uuid.uuid4()),
              "eventDateUtc": f"2026-11-26T08:{i // 6000 % 60:02d}:{i // 100 % 60:02d}.{i % 1000:03d}",
              "eventType": "UPDATE", "eventCategory": "CONTACT", "tenantId": TENANT, "tenantType": "ORGANISATION"}
        out.append((json.dumps({"events": [ev], "firstEventSequence": i + 1, "lastEventSequence": i + 1,
                                "entropy": salt}).encode(), True))
    out += [(json.dumps({"events": [], "entropy": f"{salt}{i}"}).encode(), False) for i in range(bad)]
    return out[::2] + out[1::2]


class Receiver:
    def __init__(self, kind: str, data: Path, port: int):
        self.kind, self.data, self.port = kind, data, port
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XERO_", "STREAMLIT_"))}
        env.update({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(data), "XERO_ENCRYPTION_KEY": secrets.token_hex(32),
                    "XERO_WEBHOOK_KEY": KEY, "XERO_ENV_FILE": os.devnull, "PYTHONUNBUFFERED": "1"})
        self.log = open(data.parent / f"{kind}.log", "wb")
        if kind == "cli":
            args = [sys.executable, "-m", "xero_core", "webhooks", "--port", str(port)]
            self.url = f"http://127.0.0.1:{port}/webhooks/xero"
            ready = self.url
        else:
            args = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address=127.0.0.1",
                    f"--server.port={port}", "--server.headless=true", "--server.fileWatcherType=none",
                    "--browser.gatherUsageStats=false"]
            self.url = f"http://127.0.0.1:{port}/webhooks/xero"
            ready = f"http://127.0.0.1:{port}/_stcore/health"
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{kind} receiver exited: {(data.parent / f'{kind}.log').read_text()[-2000:]}")
            try:
                r = httpx.get(ready, timeout=1) if kind == "app" else httpx.get(ready, timeout=1)
                if r.status_code in (200, 405):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # waiting for a child process's port
        raise SystemExit(f"{kind} receiver did not start in 60 s")

    def cpu_seconds(self) -> float:
        """User + system CPU the receiver process has used so far (Linux /proc; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def backlog(self) -> int:
        con = sqlite3.connect(f"file:{self.data / 'webhook_spool.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM deliveries WHERE moved_at IS NULL").fetchone()[0]
        finally:
            con.close()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def hold_duckdb(path: Path) -> subprocess.Popen[str]:
    """A process holding the file open until its stdin is closed."""
    p = subprocess.Popen([sys.executable, "-c", f"import duckdb,sys; c=duckdb.connect({str(path)!r}); "
                          "print('holding', flush=True); sys.stdin.readline()"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None  # PIPE
    assert p.stdout.readline().strip() == "holding"
    return p


def burst(url: str, items: list[tuple[bytes, bool]], concurrency: int) -> tuple[list[float], int, float]:
    times: list[float] = []
    lock = threading.Lock()
    local = threading.local()

    def post(item):
        body, good = item
        http = getattr(local, "http", None)
        if http is None:
            http = local.http = httpx.Client(timeout=30)
        t0 = time.perf_counter()
        try:
            r = http.post(url, content=body, headers={"x-xero-signature": sign(body, KEY if good else KEY + "x")})
            ok = r.status_code == (200 if good else 401) and r.content == b""
        except httpx.HTTPError:
            ok = False
        with lock:
            times.append(time.perf_counter() - t0)
        return ok

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        wrong = sum(1 for ok in pool.map(post, items) if not ok)
    return sorted(times), wrong, time.perf_counter() - t0


def report(label: str, times: list[float], wrong: int, total: float) -> str:
    pct = lambda p: times[min(len(times) - 1, int(p * len(times)))] * 1000  # noqa: E731
    over = sum(1 for t in times if t >= 5)
    line = (f"{label:44} {len(times)} requests in {total:5.1f} s, wrong {wrong}, >=5 s {over}; ms: p50 {pct(0.5):6.1f}  "
            f"p95 {pct(0.95):6.1f}  p99 {pct(0.99):6.1f}  max {times[-1] * 1000:6.1f}")
    print(line, flush=True)
    return line


def burn(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--good", type=int, default=2000)
    ap.add_argument("--bad", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--receiver", choices=("cli", "app", "both"), default="both")
    ap.add_argument("--burn", type=int, default=0, help="CPU-bound processes to run alongside (busy cores)")
    ap.add_argument("--cli-port", type=int, default=0)
    ap.add_argument("--app-port", type=int, default=0)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ll-webhook-bench-"))
    print(f"{args.concurrency} concurrent senders, {args.good} signed + {args.bad} badly signed deliveries per burst; "
          f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}, burners {args.burn}; logs in {tmp}", flush=True)
    burners = burn(args.burn)
    failed = False
    try:
        for kind in (("cli", "app") if args.receiver == "both" else (args.receiver,)):
            data = tmp / kind / "data"
            data.mkdir(parents=True)
            port = (args.cli_port if kind == "cli" else args.app_port) or free_port()
            rec = Receiver(kind, data, port)
            try:
                httpx.post(rec.url, content=b'{"events": []}', headers={"x-xero-signature": sign(b'{"events": []}', KEY)})
                holder = hold_duckdb(data / "xero.duckdb")
                try:
                    cpu = rec.cpu_seconds()
                    times, wrong, total = burst(rec.url, bodies(args.good, args.bad, "HELD" + kind), args.concurrency)
                    cpu = rec.cpu_seconds() - cpu
                finally:
                    holder.communicate(timeout=10)  # closes its stdin: it lets go and exits
                released = time.perf_counter()
                report(f"{kind}: DuckDB held by another process", times, wrong, total)
                print(f"{'':44} receiver CPU {cpu * 1000 / len(times):.2f} ms per request", flush=True)
                failed |= wrong > 0 or times[-1] >= 5
                while rec.backlog() and time.perf_counter() - released < 120:
                    time.sleep(0.1)
                print(f"{'':44} spool moved into DuckDB {time.perf_counter() - released:.1f} s after the release "
                      f"(backlog {rec.backlog()})", flush=True)
                cpu = rec.cpu_seconds()
                times, wrong, total = burst(rec.url, bodies(args.good, args.bad, "FREE" + kind), args.concurrency)
                done = time.perf_counter()
                cpu = rec.cpu_seconds() - cpu
                report(f"{kind}: DuckDB free, worker moving meanwhile", times, wrong, total)
                print(f"{'':44} receiver CPU {cpu * 1000 / len(times):.2f} ms per request (moving included)",
                      flush=True)
                failed |= wrong > 0 or times[-1] >= 5
                while rec.backlog() and time.perf_counter() - done < 120:
                    time.sleep(0.1)
                print(f"{'':44} backlog {rec.backlog()} {time.perf_counter() - done:.1f} s after the last answer",
                      flush=True)
            finally:
                rec.close()
    finally:
        for b in burners:
            b.kill()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
