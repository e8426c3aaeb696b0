"""The one entry (issue 22): `Engine.sync` runs a tenant's whole plan in this thread, `Engine.submit`
queues it as a durable job, and every trigger goes through them."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from xero_core.engine import Engine
from xero_core.pipeline import jobs as J
from xero_core.pipeline.progress import ProgressEvent
from xero_core.pipeline.request import SyncRequest

from test_sync_e2e import connect

ROOT = Path(__file__).resolve().parents[1]


def test_every_engine_name_a_page_calls_exists():
    """The app's adapter imports plainly: a page calling a name it does not have fails here, not
    when someone clicks."""
    from app_support import engine

    missing = []
    for f in sorted([*(ROOT / "pages").glob("*.py"), *(ROOT / "app_support").glob("*.py"), ROOT / "app.py"]):
        for node in ast.walk(ast.parse(f.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "engine"
                    and not hasattr(engine, node.attr)):
                missing.append(f"{f.relative_to(ROOT)}:{node.lineno} engine.{node.attr}")
    assert not missing


def test_no_trigger_calls_the_pipeline_below_the_engine():
    """Entry points (app, CLI, scheduler, demo, benches) build an Engine; none runs a sync or queues
    a job through the layers below it."""
    below = {"run_sync", "execute", "enqueue", "sync_all", "sync_tenant", "sync_tenants", "sync_practices"}
    files = [*(ROOT / "pages").glob("*.py"), *(ROOT / "app_support").glob("*.py"), ROOT / "app.py",
             ROOT / "scheduler.py", *(ROOT / "xero_core" / "commands").glob("*.py"), ROOT / "xero_core" / "scheduling.py",
             *(ROOT / "bench").glob("*.py")]
    bad = []
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and "engine" not in (node.module or "") and any(
                    a.name in below for a in node.names):
                bad.append(f"{f.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr in {"run_sync", "enqueue"} and not isinstance(node.value, ast.Call) \
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("engine", "self", "eng")):
                bad.append(f"{f.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert not bad


@pytest.mark.slow
def test_sync_runs_the_whole_plan_and_submit_queues_a_job(tmp_path):
    s, clock, fake, org = connect(tmp_path, invoices=60)
    eng = Engine(s, transport=fake.transport(), clock=clock)
    res = eng.sync(org, weeks=1)
    assert res.ok, res.to_dict()
    assert [x.step for x in res.steps] == ["organisation", "accounts", "contacts", "invoices", "clients", "credit_notes", "pnl",
                                           "bank", "journals", "documents", "webhooks"]
    with pytest.raises(ValueError, match="unknown sync step"):
        eng.sync(org, only="pnl,bnak")
    job_id = eng.submit(SyncRequest(org, only=frozenset({"accounts"}), trigger="cli"))
    assert J.get(s, job_id).state == "queued"
    assert eng.submit(org, only="accounts") == job_id  # joined: one job per tenant
    (job,) = eng.run_jobs([SyncRequest(org, only=frozenset({"accounts"}))], label="test")
    assert job.job_id == job_id and job.state == "done", job.to_dict()


@pytest.mark.slow
def test_progress_says_what_it_waits_for_and_each_step_once(tmp_path):
    """issue 24 §3: while the rate limiter holds the sync, progress says so and when it resumes; a
    step's line names the step once and what it read."""
    from xero_core.ratelimit import SharedRateLimiter

    s, clock, fake, org = connect(tmp_path, invoices=60)
    eng = Engine(s, transport=fake.transport(), clock=clock)
    assert eng.sync(org, only="accounts,pnl", weeks=3).ok
    limiter = SharedRateLimiter(s, clock=clock)
    clock.advance(61)  # a fresh minute, then all of it spent at once
    for _ in range(limiter.per_minute):  # this minute's calls are spent
        with limiter.acquire(org):
            pass
    events: list[ProgressEvent] = []
    res = eng.sync(org, only="pnl", weeks=3, progress=events.append)
    assert res.ok, res.to_dict()
    waits = [e for e in events if e.status == "waiting"]
    assert waits and waits[0].step == "accounts" and waits[0].waiting_for == "rate_limit", events
    assert re.fullmatch(r"waiting for Xero's minute limit, resumes in \d+ s", waits[0].message or "")
    ended = {e.step: e.message for e in events if e.status == "success"}
    assert ended["pnl"] == "pnl: success, 3 rows (unchanged)", ended  # read again, nothing new to write
