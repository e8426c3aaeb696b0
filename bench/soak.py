"""Soak: the whole product at once, in several processes, against a flaky fake Xero on loopback.

    .venv/bin/python bench/soak.py [--duration 600 | --rounds N] [--invoices 20] [--years 2] [--keep]

Processes (each its own DuckDB client: the file lock is per process, which is the point):
  fake       the fake Xero (3 organisations + 1 Practice Manager) served on a loopback port
  webhooks   the standalone webhook receiver (xero_core.practice.webhook_server) and its worker
  scheduler  `scheduler.py --once` in a loop (every organisation, then the practice workflows)
  manual     "Sync now": Engine.sync(trigger="manual") for a random organisation at random moments
  reader     a notebook's reads: xero_core.analysis when present, else the contract tables in SQL
  pages      the admin app's pages rendered again and again (streamlit AppTest) with errors collected
and this process, which injects faults (429s, 500/503, dropped connections, an expired token, a
revoked connection later reconnected) and sends webhook bursts (good, replayed, badly signed).

Afterwards, with faults cleared and one last sync, it prints and checks: lock errors and
tracebacks shown to a user (0), webhook events lost or duplicated (0), every organisation's tables
against the fake's own ledger to the cent, 429s not injected by us (0), and each process's RSS
at start and end. Loopback only; every loop is bounded by the duration (or, with `--rounds`, this
process's rounds of faults and webhook bursts: a count of operations, so a slow machine makes the
run longer, not smaller; the test uses that); it stops by itself. Each role does at least one
unit of work whatever the timing: on a busy machine a role still starting when the load ends
finishes its first operation before it stops, so "every process worked" is a count too.
`--years` is each organisation's history (2 by default, as the bench has always run; the test runs a
quarter of trading: what it is about is several processes at once, and a first sync of three
two-year organisations made most of its minutes).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, Unpack

if TYPE_CHECKING:
    from xero_core.fake import FakeXero

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SEED = 5
WEBHOOK_KEY = "soak-webhook-key-" + "q" * 24
LOCK_PATTERNS = re.compile(r"Could not set lock|Conflicting lock|DatabaseBusy|stayed locked|busy with the database|"
                           r"ResourceInUse|database is locked", re.I)
ROLES = ("fake", "webhooks", "scheduler", "manual", "reader", "pages")
CENT = Decimal("0.01")


# ------------------------------------------------------------------------------ shared helpers

def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RoleFigures(TypedDict, total=False):
    """What one kind of role counts, given to `Role.finish`."""
    ops: int  # the fake and webhook roles count their work at the end
    runs: list[dict[str, Any]]  # scheduler: each `scheduler.py --once` (rc, seconds, children's peak RSS, sigterm)
    first_run_peak_rss_mb: float | None
    last_run_peak_rss_mb: float | None
    outcomes: dict[str, int]  # manual: Sync now results by kind
    used: dict[str, int]  # reader: calls by analysis function
    views: dict[str, int]  # pages: views by page


class RoleReport(RoleFigures):
    """report-<role>.json, which `Soak.conclude` reads back."""
    role: str
    pid: int
    rss_start_mb: float
    errors: list[str]
    lock_errors: list[str]
    tracebacks: list[str]
    shown_to_user: list[str]
    rss_warm_mb: NotRequired[float]  # after the first unit of work
    rss_end_mb: NotRequired[float]
    rss_peak_mb: NotRequired[float]
    plain_errors: NotRequired[Counter[str]]  # pages: messages expected under faults, by text


class Role:
    """A role process's loop: runs `step` until the stop file appears (or the deadline), then writes
    its report (RSS at start and end, operations, errors, tracebacks) as JSON."""

    def __init__(self, name: str, workdir: Path):
        self.name, self.workdir = name, workdir
        self.report: RoleReport = {"role": name, "pid": os.getpid(), "rss_start_mb": rss_mb(), "ops": 0,
                                   "errors": [], "lock_errors": [], "tracebacks": [], "shown_to_user": []}
        self.deadline = time.time() + float(os.environ.get("SOAK_MAX_SECONDS", "3600"))

    def op(self) -> None:
        """One unit of work done; the RSS after the first is the process's warm starting size."""
        self.report["ops"] += 1
        if self.report["ops"] == 1:
            self.report["rss_warm_mb"] = rss_mb()

    def stop_asked(self) -> bool:
        return (self.workdir / "stop").exists() or time.time() > self.deadline

    def stopping(self) -> bool:
        """Asked to stop, once this role has done at least one unit of work (the deadline regardless)."""
        return (self.stop_asked() and self.report["ops"] >= 1) or time.time() > self.deadline

    def error(self, text: str, *, shown: bool = False) -> None:
        text = str(text)[:500]
        self.report["errors"].append(text)
        if LOCK_PATTERNS.search(text):
            self.report["lock_errors"].append(text)
        if shown:
            self.report["shown_to_user"].append(text)

    def crashed(self, exc: BaseException) -> None:
        self.report["tracebacks"].append("".join(traceback.format_exception(exc))[-2000:])
        self.error(f"{type(exc).__name__}: {exc}")

    def pause(self, lo: float, hi: float) -> None:
        end = time.time() + random.uniform(lo, hi)
        while time.time() < end and not self.stopping():
            time.sleep(0.05)

    def finish(self, **extra: Unpack[RoleFigures]) -> None:
        self.report.update(extra)
        self.report["rss_end_mb"] = rss_mb()
        self.report["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        tmp = self.workdir / f".report-{self.name}.json"
        tmp.write_text(json.dumps(self.report, default=str, indent=1))
        os.replace(tmp, self.workdir / f"report-{self.name}.json")


def settings():
    from xero_core.settings import load_settings

    return load_settings()


# ------------------------------------------------------------------------------ roles

def org_factory(years: float) -> Callable[..., Any]:
    """The fake's organisations with `years` of history (the fake process and the truth build the same)."""
    from functools import partial

    from xero_core.fake.ledger import generate_org

    return partial(generate_org, years=years)


def role_fake(r: Role) -> None:
    from xero_core.fake import FakeXero, serve
    from xero_core.fake.clock import OffsetClock

    today = date.fromisoformat(os.environ["SOAK_TODAY"])
    fake = FakeXero(seed=SEED, today=today, clock=OffsetClock(today), tenants=3, practices=1,
                    invoices=int(os.environ["SOAK_INVOICES"]), timeout_hold=2.0,
                    org_factory=org_factory(float(os.environ["SOAK_YEARS"])))
    server = serve(fake, port=int(os.environ["SOAK_FAKE_PORT"]))
    (r.workdir / "fake-ready").write_text(server.url)
    r.report["rss_warm_mb"] = rss_mb()
    while not (r.workdir / "fake-stop").exists() and time.time() < r.deadline:
        time.sleep(0.1)
    server.close()
    r.finish(ops=len(fake.requests))


def role_webhooks(r: Role) -> None:
    from xero_core.practice.webhook_server import serve

    s = settings()
    srv = serve(s, port=int(os.environ["SOAK_WEBHOOK_PORT"]), worker_interval=1.0)
    (r.workdir / "webhooks-ready").write_text(srv.url)
    passes = 0
    while not (r.workdir / "webhooks-stop").exists() and time.time() < r.deadline:
        time.sleep(0.2)
        w = srv.worker
        if w is not None and w.last is not None and w.passes != passes:
            passes = w.passes
            r.report.setdefault("rss_warm_mb", rss_mb())
            for e in w.last.errors:
                r.error(e)
    srv.close()
    r.finish(ops=passes)


def role_scheduler(r: Role) -> None:
    """`scheduler.py --once` again and again, as cron would run it (each run a fresh process). At the
    stop, a run still going gets SIGTERM, as systemd would send: it must finish its step and exit 0."""
    runs = []
    while not r.stopping():
        t0 = time.time()
        err = open(r.workdir / "scheduler-run.log", "w+")
        p = subprocess.Popen([sys.executable, str(ROOT / "scheduler.py"), "--once"], cwd=str(ROOT),
                             stdout=subprocess.DEVNULL, stderr=err)
        terminated = False
        while p.poll() is None:
            if r.stop_asked() and not terminated:  # even the first run: its SIGTERM ends it, and it counts
                p.send_signal(signal.SIGTERM)
                terminated = True
            time.sleep(0.1)
        err.seek(0)
        stderr = err.read()
        err.close()
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        runs.append({"rc": p.returncode, "seconds": round(time.time() - t0, 1), "children_peak_rss_mb": peak,
                     "sigterm": terminated})
        if "Traceback (most recent call last)" in stderr:
            r.report["tracebacks"].append(stderr[-3000:])
        for line in stderr.splitlines():
            if LOCK_PATTERNS.search(line):
                r.report["lock_errors"].append(line[:300])
        # 0 ok; 1 a step failed (faults do that); anything else (or a signal) is a crash
        if p.returncode not in (0, 1):
            r.error(f"scheduler.py --once exited {p.returncode}{' after SIGTERM' if terminated else ''}: "
                    f"{stderr[-300:]}")
        r.op()
        r.pause(0.5, 1.5)
    r.finish(runs=runs, first_run_peak_rss_mb=runs[0]["children_peak_rss_mb"] if runs else None,
             last_run_peak_rss_mb=runs[-1]["children_peak_rss_mb"] if runs else None)


def role_manual(r: Role) -> None:
    """The app's "Sync now": the same Engine.sync, trigger manual, at random."""
    from xero_core.connections import list_connections
    from xero_core.engine import Engine

    s = settings()
    outcomes: Counter[str] = Counter()
    while not r.stopping():
        r.pause(0.5, 3.0)
        if r.stopping():
            break
        try:
            orgs = [c["tenant_id"] for c in list_connections(s) if c.get("tenant_type") == "ORGANISATION"]
            if not orgs:
                continue
            res = Engine(s).sync(random.choice(orgs), trigger="manual")
            outcomes["busy" if res.busy else ("ok" if res.ok else "step failed")] += 1
            for st in res.steps:
                if st.error and LOCK_PATTERNS.search(st.error):
                    r.error(f"{st.step}: {st.error}", shown=True)
            r.op()
        except Exception as exc:  # the app would show this to a person
            r.crashed(exc)
    r.finish(outcomes=dict(outcomes))


def role_reader(r: Role) -> None:
    """A finance lead's notebook reading while everything else writes (xero_core.analysis)."""
    from xero_core import analysis as an
    from xero_core.connections import list_connections

    s = settings()
    readers: list[Callable[..., object]] = [  # each (settings, tenant_id=)
        an.weekly_pnl, an.latest_week_comparison, an.margins, an.rolling_averages, an.revenue_mix,
        an.revenue_trend, an.cash_position, an.cash_runway, an.top_account_movers]
    used: Counter[str] = Counter()
    orgs: list[str] = []
    while not r.stopping():
        r.pause(0.2, 1.0)
        try:
            orgs = orgs or [c["tenant_id"] for c in list_connections(s) if c.get("tenant_type") == "ORGANISATION"]
            try:
                an.organisations(s)
                an.data_status(s)
            except an.NoDataYet:
                # Nothing published for readers yet (the first sync, or its publish, has not ended):
                # the notebook's own sentence, a fine answer, and then every reader would say it too.
                used["no data yet"] += 1
                r.op()
                continue
            for fn in readers:
                try:
                    fn(s, tenant_id=random.choice(orgs))
                    used[fn.__name__] += 1
                except an.NoDataYet:
                    used["no data yet"] += 1  # before the first sync of that organisation: a fine answer
            r.op()
        except Exception as exc:
            r.crashed(exc)
    r.finish(used=dict(used))


PAGES = ("connection", "sync", "data", "clients", "practice_manager", "webhooks")


def role_pages(r: Role) -> None:
    """The admin app's pages, rendered over and over (AppTest runs the real script in-process)."""
    from streamlit.testing.v1 import AppTest

    views: Counter[str] = Counter()
    while not r.stopping():
        try:
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
            at.run()
            for page in PAGES:
                if r.stopping():
                    break
                if page != "connection":
                    at.switch_page(f"pages/{page}.py").run()
                views[page] += 1
                r.op()  # one page view
                for e in at.exception:
                    r.report["tracebacks"].append(f"{page}: {e.message}\n{''.join(e.stack_trace)[-1500:]}")
                    r.error(f"{page}: exception {e.message}", shown=True)
                for shown in at.error:
                    text = str(shown.value)
                    if LOCK_PATTERNS.search(text) or "Traceback" in text or "unexpected" in text.lower():
                        r.error(f"{page}: {text}", shown=True)
                    else:
                        r.report.setdefault("plain_errors", Counter())[text[:160]] += 1
        except Exception as exc:
            r.crashed(exc)
            r.pause(0.5, 1.0)
    r.finish(views=dict(views))


def role_main(name: str, workdir: Path) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")
    r = Role(name, workdir)
    try:
        globals()[f"role_{name}"](r)
    except BaseException as exc:  # report whatever happened
        r.crashed(exc)
        r.finish()
        return 1
    return 0


# ------------------------------------------------------------------------------ the orchestra

class Soak:
    def __init__(self, duration: float | None, invoices: int = 20, workdir: Path | None = None, verbose: bool = True,
                 rounds: int | None = None, years: float = 2.0):
        """`duration` seconds of load, or `rounds` rounds of it (faults and a webhook burst each);
        `years` of each organisation's history."""
        if (duration is None) == (rounds is None):
            raise ValueError("give a duration or a number of rounds")
        self.duration, self.rounds, self.invoices, self.verbose = duration, rounds, invoices, verbose
        self.years = years
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="ledgerlink-soak-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.today = datetime.now(timezone.utc).date()
        self.fake_port, self.webhook_port = free_port(), free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("XERO_")},
            "XERO_ENV_FILE": os.devnull,
            "XERO_MOCK_MODE": "true",
            "XERO_DATA_DIR": str(self.workdir / "data"),
            "XERO_ENCRYPTION_KEY": secrets.token_hex(32),
            "XERO_WEBHOOK_KEY": WEBHOOK_KEY,
            "XERO_FAKE_PORT": str(self.fake_port),
            "XERO_SYNC_EXTRA": "",
            "SOAK_TODAY": self.today.isoformat(),
            "SOAK_INVOICES": str(invoices),
            "SOAK_YEARS": str(years),
            "SOAK_FAKE_PORT": str(self.fake_port),
            "SOAK_WEBHOOK_PORT": str(self.webhook_port),
            # a backstop only: the orchestra stops every role
            "SOAK_MAX_SECONDS": str((duration if duration is not None else 10 * (rounds or 0)) + 900),
            "PYTHONPATH": str(ROOT),
        }
        self.procs: dict[str, subprocess.Popen] = {}
        self.sent_keys: set[str] = set()
        self.forged_keys: set[str] = set()
        self.actions: Counter[str] = Counter()
        self.truth: FakeXero  # the ground truth the fake serves, built when run() starts

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # -- processes --
    def start(self, role: str) -> None:
        out = open(self.workdir / f"{role}.log", "w")
        self.procs[role] = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--role", role,
                                             "--workdir", str(self.workdir)], cwd=str(ROOT), env=self.env,
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_file(self, name: str, timeout: float = 60) -> str:
        end = time.time() + timeout
        while time.time() < end:
            p = self.workdir / name
            if p.exists():
                return p.read_text()
            dead = [k for k, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead} exited early: {(self.workdir / (dead[0] + '.log')).read_text()[-2000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"{name} did not appear in {timeout} s")

    def settings(self):
        from xero_core.settings import load_settings

        return load_settings(self.env)

    def http(self):
        import httpx

        return httpx.Client(base_url=f"http://127.0.0.1:{self.fake_port}", timeout=30)

    def fake_admin(self, method: str, path: str, **kw):
        with self.http() as h:
            r = h.request(method, "/_fake" + path, **kw)
            r.raise_for_status()
            return r.json()

    def connect(self) -> list[dict]:
        import httpx

        from xero_core import oauth
        from xero_core.fake.consent import drive_consent

        s = self.settings()
        with httpx.Client(timeout=30) as h:
            redirect = drive_consent(h, oauth.begin_connect(s))
        return oauth.complete_connect(s, redirect)

    # -- load --
    def webhook_burst(self, http, rng: random.Random) -> None:
        from xero_core.practice import webhooks as W

        events = []
        for _ in range(rng.randint(1, 12)):
            org = rng.choice(self.truth.orgs)
            if rng.random() < 0.5:
                cat, rid = "CONTACT", rng.choice(org.contacts).id
            else:
                cat, rid = "INVOICE", rng.choice(org.invoices).id
            self.actions["event seq"] += 1
            at = datetime.now(timezone.utc) + timedelta(microseconds=self.actions["event seq"] * 1000)
            events.append({"resourceUrl": f"https://api.xero.com/api.xro/2.0/{cat.title()}s/{rid}", "resourceId": rid,
                           "eventDateUtc": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3], "eventType": "UPDATE",
                           "eventCategory": cat, "tenantId": org.tenant_id, "tenantType": "ORGANISATION"})
        body = json.dumps({"events": events, "firstEventSequence": 1, "lastEventSequence": len(events),
                           "entropy": "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(20))}).encode()
        url = f"http://127.0.0.1:{self.webhook_port}/webhooks/xero"
        keys = {W.event_key(e) for e in events}
        if rng.random() < 0.25:  # forged: must be refused and never stored
            resp = http.post(url, content=body, headers={"x-xero-signature": W.sign("forged-" + WEBHOOK_KEY, body)})
            self.actions[f"webhook forged -> {resp.status_code}"] += 1
            self.forged_keys |= keys
            return
        sig = W.sign(WEBHOOK_KEY, body)
        for attempt in range(2 if rng.random() < 0.3 else 1):  # a replayed delivery (Xero retries)
            resp = http.post(url, content=body, headers={"x-xero-signature": sig})
            self.actions[f"webhook {'replay' if attempt else 'good'} -> {resp.status_code}"] += 1
            if resp.status_code == 200:
                self.sent_keys |= keys

    def inject(self, rng: random.Random) -> None:
        paths = ["Invoices", "Contacts", "Reports/ProfitAndLoss", "Reports/BankSummary", "Journals", "Accounts"]
        kind = rng.choice(["429", "429", "500", "503", "timeout", "expired_token"])
        spec = {"kind": kind, "count": 1, "path": rng.choice(paths)}
        if kind == "429":
            spec["seconds"] = rng.choice([1, 2, 3])
        if kind == "expired_token":
            spec.pop("path")
            # never two pending at once: back-to-back expiries mark the tenant needs_reconnect, a known client
            # policy (tests/test_soak.py::test_token_expired_twice_in_a_row_does_not_need_a_person)
            if any(f.get("kind") == "expired_token" and f.get("applied", 0) < (f.get("count") or 1)
                   for f in self.fake_admin("GET", "/faults")):
                spec = {"kind": "500", "count": 1, "path": spec.get("path") or rng.choice(paths)}
                kind = "500"
        self.fake_admin("POST", "/faults", json=spec)
        self.actions[f"fault {kind}"] += 1

    def run(self) -> dict:
        from xero_core.fake import FakeXero
        from xero_core.fake.clock import FakeClock

        t_start = time.time()
        self.truth = FakeXero(seed=SEED, today=self.today, clock=FakeClock(self.today), tenants=3, practices=1,
                              invoices=self.invoices, org_factory=org_factory(self.years))
        self.start("fake")
        self.wait_file("fake-ready")
        tenants = self.connect()
        orgs = [t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION"]
        assert sorted(orgs) == sorted(o.tenant_id for o in self.truth.orgs), "fake and truth differ"
        self.log(f"connected {len(tenants)} tenants; starting {', '.join(ROLES[1:])}")
        for role in ROLES[1:]:
            self.start(role)
        self.wait_file("webhooks-ready")
        rng = random.Random(SEED)
        rounds = self.rounds
        span = self.duration if rounds is None else float(rounds)
        assert span is not None, "__init__ takes a duration or a number of rounds"

        def progress() -> float:  # seconds, or rounds, done: what the revoke and reconnect are placed on
            return time.time() - t_start if rounds is None else float(done)

        revoked_at = span / 3
        reconnect_at: float | None = 2 * span / 3  # None once reconnected
        victim = None
        done = 0
        import httpx

        with httpx.Client(timeout=10) as http:
            while progress() < span:
                done += 1
                if victim is None and progress() > revoked_at:
                    victim = rng.choice(orgs)
                    self.fake_admin("POST", "/revoke-connection", json={"tenant_id": victim})
                    self.actions["revoked a connection"] += 1
                    self.log(f"revoked {victim}")
                elif victim and reconnect_at and progress() > reconnect_at:
                    from xero_core.db import DatabaseBusy
                    from xero_core.errors import OAuthError

                    for attempt in range(5):  # a fault may hit the consent's own calls: a person retries
                        try:
                            self.connect()
                            break
                        except OAuthError as exc:
                            self.actions["reconnect retried"] += 1
                            self.log(f"reconnect failed ({exc.code}); again")
                        except DatabaseBusy as exc:  # its sentence says "try again in a minute": a person does
                            self.actions["reconnect retried: database busy"] += 1
                            self.log(f"reconnect failed ({exc}); again")
                    self.actions["reconnected"] += 1
                    reconnect_at = None
                    self.log(f"reconnected {victim}")
                if rng.random() < 0.5:
                    self.inject(rng)
                self.webhook_burst(http, rng)
                time.sleep(rng.uniform(0.2, 1.0))
        self.log("load over: stopping the roles")
        (self.workdir / "stop").write_text("")
        for role in ("scheduler", "manual", "reader", "pages"):
            self.wait_exit(role, 180)
        self.log("roles stopped")
        self.fake_admin("DELETE", "/faults")
        return self.conclude(victim, time.time() - t_start)

    def wait_exit(self, role: str, timeout: float) -> None:
        try:
            self.procs[role].wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.procs[role].pid, signal.SIGTERM)
            self.procs[role].wait(10)

    # -- the verdict --
    def conclude(self, victim: str | None, elapsed: float) -> dict:
        from xero_core import db
        from xero_core.connections import list_connections
        from xero_core.engine import Engine
        from xero_core.practice.sql import value

        s = self.settings()
        # let the receiver's worker finish moving the spool, then stop it
        end = time.time() + 60
        stored: set[str] = set()
        while time.time() < end:
            with db.connect(s.db_path, read_only=True) as con:
                stored = {r[0] for r in con.execute("SELECT event_key FROM webhook_events").fetchall()}
            if self.sent_keys <= stored:
                break
            time.sleep(0.5)
        (self.workdir / "webhooks-stop").write_text("")
        self.wait_exit("webhooks", 60)
        # what the receiver accepted but its worker has not moved yet is durable in the spool: not lost
        from xero_core.practice import webhooks as W
        from xero_core.practice.spool import Spool

        spooled: set[str] = set()
        for _id, _at, body in Spool.for_settings(s).unmoved(1_000_000):
            spooled |= {W.event_key(e) for e in json.loads(bytes(body)).get("events", [])}
        self.log(f"webhooks drained ({len(stored)} events); final sync")
        # one last sync of every organisation, faults off, then reconcile
        conns = {c["tenant_id"]: c for c in list_connections(s)}
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(self.truth.orgs)) as pool:
            done = dict(zip([o.tenant_id for o in self.truth.orgs], pool.map(
                lambda tid: Engine(s).sync(tid, trigger="manual"), [o.tenant_id for o in self.truth.orgs])))
        final = {tid: {"ok": res.ok, "busy": res.busy,
                       "errors": [f"{st.step}: {st.status}: {st.error}" for st in res.steps
                                  if st.status != "success" and not getattr(st, "benign_skip", False)]}
                 for tid, res in done.items()}
        self.log("reconciling")
        recon = {o.tenant_id: self.reconcile(s, o) for o in self.truth.orgs}
        with db.connect(s.db_path, read_only=True) as con:
            events = dict(con.execute("SELECT status, count(*) FROM webhook_events GROUP BY ALL").fetchall())
            dup_keys = value(con, "SELECT count(*) - count(DISTINCT event_key) FROM webhook_events")
            event_errors = dict(con.execute(
                "SELECT left(error, 160), count(*) FROM webhook_events WHERE status = 'failed' GROUP BY ALL "
                "ORDER BY 2 DESC LIMIT 5").fetchall())
            triggers = dict(con.execute("SELECT trigger || ':' || status, count(*) FROM sync_log GROUP BY ALL").fetchall())
        requests = self.fake_admin("GET", "/requests")["requests"]
        (self.workdir / "fake-stop").write_text("")
        self.wait_exit("fake", 30)
        api = [q for q in requests if q["api"] in ("accounting", "files", "practice")]
        ours_429 = [q for q in api if q["status"] == 429 and q["fault"] != "429"]
        reports: dict[str, dict[str, Any]] = {}  # each role's report-<role>.json (RoleReport), or "missing"
        for role in ROLES:
            p = self.workdir / f"report-{role}.json"
            reports[role] = json.loads(p.read_text()) if p.exists() else {"role": role, "missing": True}
        logs_tracebacks = {role: (self.workdir / f"{role}.log").read_text().count("Traceback (most recent call last)")
                           for role in ROLES}
        out = {
            "duration_s": round(elapsed, 1),
            "workdir": str(self.workdir),
            "actions": dict(self.actions),
            "api_calls": len(api),
            "api_status": dict(Counter(q["status"] for q in api)),
            "faults_served": dict(Counter(q["fault"] for q in api if q["fault"])),
            "http_429_injected": sum(1 for q in api if q["status"] == 429 and q["fault"] == "429"),
            "http_429_ours": len(ours_429),
            "http_429_ours_detail": ours_429[:5],
            "webhook_sent_unique": len(self.sent_keys),
            "webhook_lost": len(self.sent_keys - stored - spooled),
            "webhook_in_spool": len((self.sent_keys - stored) & spooled),
            "webhook_forged_stored": len(self.forged_keys & stored),
            "webhook_unexpected_stored": len(stored - self.sent_keys),
            "webhook_duplicate_rows": dup_keys,
            "webhook_event_status": events,
            "webhook_event_errors": event_errors,
            "sync_log": triggers,
            "victim": victim,
            "victim_status": conns.get(victim, {}).get("status") if victim else None,
            "final_sync": final,
            "reconcile": recon,
            "lock_errors": {k: v.get("lock_errors", []) for k, v in reports.items() if v.get("lock_errors")},
            "shown_to_user": {k: v.get("shown_to_user", []) for k, v in reports.items() if v.get("shown_to_user")},
            "tracebacks": {k: len(reports[k].get("tracebacks", [])) + logs_tracebacks.get(k, 0) for k in ROLES},
            "traceback_samples": {k: v["tracebacks"][:2] for k, v in reports.items() if v.get("tracebacks")},
            "processes": {k: {f: v.get(f) for f in ("pid", "ops", "rss_start_mb", "rss_warm_mb", "rss_end_mb", "rss_peak_mb",
                                                    "first_run_peak_rss_mb", "last_run_peak_rss_mb", "outcomes",
                                                    "views", "used", "missing")}
                          for k, v in reports.items()},
            "role_errors": {k: v.get("errors", [])[:5] for k, v in reports.items() if v.get("errors")},
            "page_messages": reports.get("pages", {}).get("plain_errors") or {},
        }
        return out

    def reconcile(self, s, org) -> dict:
        """The organisation's tables against the fake's own ledger: differences, to the cent."""
        from xero_core import db
        from xero_core.sync.weeks import week_ending_for, week_start

        diffs = []
        with db.connect(s.db_path, read_only=True) as con:
            q = lambda sql: con.execute(sql, [org.tenant_id]).fetchall()  # noqa: E731
            fw = q("SELECT week_ending, income, cost_of_sales, gross_profit, other_income, operating_expenses, "
                   "net_profit FROM financial_weekly WHERE tenant_id = ?")
            for we, *vals in fw:
                truth = org.profit_and_loss(week_start(we), we)
                want = [truth[k] for k in ("income", "cost_of_sales", "gross_profit", "other_income",
                                           "operating_expenses", "net_profit")]
                if list(vals) != want:
                    diffs.append(f"financial_weekly {we}: {vals} != {want}")
            cash: defaultdict[date, dict[str, dict[str, Decimal]]] = defaultdict(dict)
            for we, name, opening, received, spent, closing in q(
                    "SELECT week_ending, bank_account_name, opening, received, spent, closing FROM cash_position_weekly "
                    "WHERE tenant_id = ?"):
                cash[we][name] = {"opening": opening, "received": received, "spent": spent, "closing": closing}
            for we, got in cash.items():
                want = org.bank_summary(week_start(we), we)
                if got != want:
                    diffs.append(f"cash_position_weekly {we}: {got} != {want}")
            # revenue_weekly: sales invoices net of sales credit notes, per week (the fake's own truth)
            got_rev = {(r[0], r[1], r[2]): tuple(r[3:]) for r in q(
                "SELECT week_ending, region, revenue_type, invoice_count, credit_note_count, subtotal, total_tax, total "
                "FROM revenue_weekly WHERE tenant_id = ?")}
            weeks = {k[0] for k in got_rev} | {week_ending_for(d.date, s.week_ends_on)
                                              for d in (*org.invoices, *org.credit_notes)}
            want_rev2 = {(we, region, job): (v["invoices"], v["credit_notes"], v["subtotal"], v["total_tax"], v["total"])
                         for we in weeks for (region, job), v in org.sales_revenue(week_start(we), we).items()}
            for k in set(got_rev) | set(want_rev2):
                if got_rev.get(k) != want_rev2.get(k):
                    diffs.append(f"revenue_weekly {k}: {got_rev.get(k)} != {want_rev2.get(k)}")
            inv_rows = q("SELECT count(*), count(DISTINCT invoice_id), coalesce(sum(total), 0) FROM invoices "
                         "WHERE tenant_id = ?")[0]
            want_n = len(org.invoices)
            want_total = sum((Decimal(i.total) * CENT for i in org.invoices), Decimal("0.00"))
            if (inv_rows[0], inv_rows[1], inv_rows[2]) != (want_n, want_n, want_total):
                diffs.append(f"invoices: {inv_rows} != {(want_n, want_n, want_total)}")
            jl = q("SELECT count(*), count(DISTINCT journal_number), coalesce(sum(net_amount), 0) FROM journal_lines "
                   "WHERE tenant_id = ?")[0]
            if jl[1] != len(org.journals) or jl[2] != 0:  # every journal, each balanced
                diffs.append(f"journal_lines: {jl[1]} journals, net {jl[2]} != ({len(org.journals)}, 0)")
        return {"weeks": len(fw), "invoices": inv_rows[0], "journal_lines": jl[0], "differences": diffs[:10],
                "n_differences": len(diffs)}


def summary_lines(rep: dict) -> list[str]:
    lines = [f"soak: {rep['duration_s']} s, {rep['api_calls']} API calls {rep['api_status']}, "
             f"faults served {rep['faults_served']}"]
    lines.append(f"actions: {rep['actions']}")
    lines.append(f"429s: injected {rep['http_429_injected']}, caused by our own pacing {rep['http_429_ours']}")
    lines.append(f"webhooks: {rep['webhook_sent_unique']} unique events accepted, lost {rep['webhook_lost']}, "
                 f"still in the spool (durable, not yet moved) {rep['webhook_in_spool']}, "
                 f"duplicated rows {rep['webhook_duplicate_rows']}, forged stored {rep['webhook_forged_stored']}, "
                 f"status {rep['webhook_event_status']}")
    if rep.get("webhook_event_errors"):
        lines.append(f"webhook events failed (retried later), by error: {rep['webhook_event_errors']}")
    lines.append(f"lock errors: {sum(len(v) for v in rep['lock_errors'].values())}; shown to a user: "
                 f"{sum(len(v) for v in rep['shown_to_user'].values())}; tracebacks: {rep['tracebacks']}")
    lines.append(f"revoked {rep['victim']} -> after reconnect: {rep['victim_status']}")
    if rep.get("page_messages"):
        lines.append(f"plain messages the pages showed (expected under faults): {rep['page_messages']}")
    for tid, r in rep["reconcile"].items():
        lines.append(f"reconcile {tid[:8]}: {r['weeks']} weeks, {r['invoices']} invoices, {r['journal_lines']} journal "
                     f"lines, differences {r['n_differences']} {r['differences'][:2]}; final sync {rep['final_sync'][tid]}")
    lines.append("process           pid    ops  RSS start MB  after 1st op  RSS end MB  peak MB")
    for role, p in rep["processes"].items():
        extra = ""
        if p.get("first_run_peak_rss_mb"):
            extra = f"  (scheduler.py runs: first {p['first_run_peak_rss_mb']:.0f} MB, max {p['last_run_peak_rss_mb']:.0f} MB)"
        if p.get("missing"):
            lines.append(f"{role:<12} no report")
            continue
        warm = f"{p['rss_warm_mb']:>13.0f}" if p.get("rss_warm_mb") else f"{'-':>13}"
        lines.append(f"{role:<12} {p['pid']:>8} {p['ops']:>6} {p['rss_start_mb']:>13.0f} {warm} {p['rss_end_mb']:>11.0f} "
                     f"{p['rss_peak_mb']:>8.0f}{extra}")
    return lines


def problems(rep: dict) -> list[str]:
    """What failed the soak (empty = passed)."""
    out = []
    if rep["lock_errors"]:
        out.append(f"lock errors: {rep['lock_errors']}")
    if rep["shown_to_user"]:
        out.append(f"errors shown to a user: {rep['shown_to_user']}")
    if any(rep["tracebacks"].values()):
        out.append(f"tracebacks: {rep['tracebacks']} {rep['traceback_samples']}")
    if rep["webhook_lost"] or rep["webhook_duplicate_rows"] or rep["webhook_forged_stored"] or rep["webhook_unexpected_stored"]:
        out.append("webhook events lost, duplicated or forged")
    if rep["http_429_ours"]:
        out.append(f"{rep['http_429_ours']} 429s caused by our own pacing: {rep['http_429_ours_detail']}")
    for tid, r in rep["reconcile"].items():
        if r["n_differences"]:
            out.append(f"{tid} does not reconcile: {r['differences']}")
    for tid, f in rep["final_sync"].items():
        if not f["ok"]:
            out.append(f"final sync of {tid} failed: {f}")
    if any(p.get("missing") for p in rep["processes"].values()):
        out.append("a process wrote no report")
    reads = {k: v for k, v in ((rep["processes"].get("reader") or {}).get("used") or {}).items() if k != "no data yet"}
    if "reader" in rep["processes"] and not rep["processes"]["reader"].get("missing") and not reads:
        out.append("the reader never read any figures (only 'no data yet')")
    return out


def run_soak(duration: float | None = None, *, rounds: int | None = None, invoices: int = 20, years: float = 2.0,
             workdir: Path | None = None, keep: bool = False, verbose: bool = True) -> dict:
    soak = Soak(duration, invoices=invoices, workdir=workdir, verbose=verbose, rounds=rounds, years=years)
    try:
        rep = soak.run()
    finally:
        (soak.workdir / "stop").write_text("")
        (soak.workdir / "webhooks-stop").write_text("")
        (soak.workdir / "fake-stop").write_text("")
        for role, p in soak.procs.items():
            if p.poll() is None:
                soak.wait_exit(role, 20)
    if not keep and workdir is None:
        shutil.rmtree(soak.workdir, ignore_errors=True)
    return rep


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--duration", type=float, default=None, help="seconds of load (default 600)")
    how.add_argument("--rounds", type=int, default=None, help="rounds of faults and webhook bursts instead of seconds")
    ap.add_argument("--invoices", type=int, default=20, help="sales invoices per organisation")
    ap.add_argument("--years", type=float, default=2.0, help="each organisation's years of history")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, DuckDB, reports)")
    ap.add_argument("--role", choices=ROLES, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.role:
        return role_main(args.role, Path(args.workdir))
    duration = None if args.rounds is not None else (args.duration or 600.0)
    rep = run_soak(duration, rounds=args.rounds, invoices=args.invoices, years=args.years, keep=args.keep)
    print("\n".join(summary_lines(rep)))
    bad = problems(rep)
    for p in bad:
        print("PROBLEM:", p)
    print("soak passed" if not bad else f"soak FAILED ({len(bad)} problems)")
    return 0 if not bad else 1


if __name__ == "__main__":
    raise SystemExit(main())
