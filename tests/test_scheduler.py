"""The scheduler: local-time firing across DST, busy tenants, pause/resume, catch-up, failures, signals.

Every test drives the one path production runs: `Scheduler(Engine(settings, transport=, clock=))`,
its jobs run by the worker pool against the fake Xero (in process, or on loopback for
`scheduler.py` itself). The loop runs for real (`run_forever`) with time-machine as its clock: the
injected `wait` moves time forward instead of sleeping, so three simulated days take seconds, and
the engine and the fake read that same clock (`TravelClock`). Failures are the fake's faults.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import pytest
import time_machine

from xero_core import oauth, scheduling
from xero_core.clock import pin_shift
from xero_core.db import connect
from xero_core.engine import Engine
from xero_core.fake.app import FakeXero
from xero_core.fake.ledger import generate_org
from xero_core.pipeline import jobs as J
from xero_core.scheduling import (
    Scheduler,
    SchedulerAlreadyRunning,
    SchedulerError,
    catch_up_due,
    daily_slot,
    last_daily_slot,
    next_daily_run,
    parse_extra,
    read_state,
    set_paused,
    update_state,
)
from xero_core.settings import Settings, load_settings

UTC = timezone.utc
SYD = ZoneInfo("Australia/Sydney")
REPO = Path(__file__).resolve().parents[1]


def _load_entry_point():
    spec = importlib.util.spec_from_file_location("scheduler_entry", REPO / "scheduler.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tiny_org(seed, today, *, invoices=None, tenant_id=None):
    """Four weeks and three invoices: a whole sync in few calls, so a test can run days of cycles."""
    return generate_org(seed, today, years=0, invoices=3, tenant_id=tenant_id)


class TravelClock:
    """The engine's and the fake's clock in a loop test: time-machine's time (which `schedule`
    reads too); a sleep (a back-off, a slow answer) moves it instead of waiting."""

    def __init__(self, traveller) -> None:
        self.traveller = traveller

    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.traveller.shift(seconds)


@dataclass
class World:
    settings: Settings
    fake: FakeXero
    clock: TravelClock
    traveller: object
    tenants: dict[str, str]  # tenant id -> name, as list_connections orders them

    def engine(self) -> Engine:
        return Engine(self.settings, transport=self.fake.transport(), clock=self.clock)

    def scheduler(self, **kw) -> Scheduler:
        """A loop test's scheduler: the state file written at each tick, at most an hour between
        ticks, and no chase tick (each opens the database; test_chase_smtp covers it)."""
        kw.setdefault("heartbeat_seconds", None)
        kw.setdefault("max_wait", 3600)
        kw.setdefault("chase_minutes", None)
        return Scheduler(self.engine(), **kw)

    def id_of(self, name: str) -> str:
        return next(t for t, n in self.tenants.items() if n == name)

    def api_calls(self, tenant_id: str) -> int:
        return sum(1 for r in self.fake.requests if r.tenant_id == tenant_id)


@contextlib.contextmanager
def world(make_settings, start: datetime, *, tenants: int = 1, practices: int = 0, **env: str) -> Iterator[World]:
    """Time pinned at `start` (moved only by the test); a fake Xero with `tenants` small
    organisations and `practices` Practice Manager tenants, all connected."""
    with time_machine.travel(start, tick=False) as traveller:
        s = make_settings(**env)
        clock = TravelClock(traveller)
        fake = FakeXero(seed=3, today=start.date(), clock=clock, tenants=tenants, practices=practices,
                        org_factory=tiny_org)
        oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)), transport=fake.transport(),
                               clock=clock)
        from xero_core.connections import list_connections

        names = {c["tenant_id"]: c["tenant_name"] for c in list_connections(s)}
        yield World(s, fake, clock, traveller, names)


def drive(scheduler: Scheduler, traveller, until, max_iterations=20_000):
    """Make `wait` advance time-machine instead of sleeping; stop when `until()` holds."""
    n = 0

    def wait(seconds):
        nonlocal n
        n += 1
        traveller.shift(max(seconds, 0.001))
        if until() or n > max_iterations:
            scheduler.request_stop()

    scheduler._wait = wait
    assert scheduler.run_forever() == 0
    assert n <= max_iterations, "loop did not reach its goal"


def runs(sch: Scheduler, kind: str = "daily") -> list[datetime]:
    return [c.started_at for c in sch.cycles if c.kind == kind]


def tries(sch: Scheduler, tenant_id: str) -> list[datetime]:
    """When each cycle ran a job of the tenant."""
    return [c.started_at for c in sch.cycles for j in c.jobs if j.tenant_id == tenant_id]


def synced(cycle) -> list[tuple[str, str, str]]:
    """(tenant, job state, trigger) of each job the cycle ran."""
    return [(j.tenant_id, j.state, j.trigger) for j in cycle.jobs]


# ---------------------------------------------------------------------------------------------
# Pure time arithmetic
# ---------------------------------------------------------------------------------------------


def test_daily_slot_is_local_time_across_both_sydney_dst_changes():
    # First Sunday of October 2026: 02:00 AEST -> 03:00 AEDT. First Sunday of April 2027: back.
    assert daily_slot(datetime(2026, 10, 3).date(), "06:00", "Australia/Sydney") == datetime(2026, 10, 2, 20, 0, tzinfo=UTC)
    assert daily_slot(datetime(2026, 10, 4).date(), "06:00", "Australia/Sydney") == datetime(2026, 10, 3, 19, 0, tzinfo=UTC)
    assert daily_slot(datetime(2027, 4, 4).date(), "06:00", "Australia/Sydney") == datetime(2027, 4, 3, 20, 0, tzinfo=UTC)
    # 02:30 does not exist on 4 Oct 2026: it runs an hour later in wall time, 03:30 AEDT.
    gap = daily_slot(datetime(2026, 10, 4).date(), "02:30", "Australia/Sydney")
    assert gap.astimezone(SYD).strftime("%H:%M %Z") == "03:30 AEDT"
    # 02:30 happens twice on 4 Apr 2027: the first one (AEDT).
    twice = daily_slot(datetime(2027, 4, 4).date(), "02:30", "Australia/Sydney")
    assert twice.astimezone(SYD).strftime("%H:%M %Z") == "02:30 AEDT"


def test_next_and_last_slot_and_catch_up_rule():
    now = datetime(2026, 11, 26, 0, 30, tzinfo=UTC)  # 11:30 AEDT, Thursday
    assert next_daily_run(now, "06:00", "Australia/Sydney") == datetime(2026, 11, 26, 19, 0, tzinfo=UTC)
    assert last_daily_slot(now, "06:00", "Australia/Sydney") == datetime(2026, 11, 25, 19, 0, tzinfo=UTC)
    # exactly at the slot: it is the last slot, and the next is tomorrow
    at = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)
    assert last_daily_slot(at, "06:00", "Australia/Sydney") == at
    assert next_daily_run(at, "06:00", "Australia/Sydney") == at + timedelta(days=1)
    assert catch_up_due(datetime(2026, 11, 25, 18, 59, tzinfo=UTC), now, "06:00", "Australia/Sydney")
    assert not catch_up_due(datetime(2026, 11, 25, 19, 0, 5, tzinfo=UTC), now, "06:00", "Australia/Sydney")
    assert not catch_up_due(None, now, "06:00", "Australia/Sydney"), "a first start is not a missed run"


def test_parse_extra_intervals_and_clear_errors():
    got = parse_extra("invoices=60m, contacts=2h,invoices+contacts=15m")
    assert [(e.resources, e.seconds) for e in got] == [(("invoices",), 3600), (("contacts",), 7200), (("invoices", "contacts"), 900)]
    assert got[0].label == "invoices every 1 h"
    assert parse_extra("") == []
    with pytest.raises(SchedulerError, match="XERO_SYNC_EXTRA.*invoices=hourly"):
        parse_extra("invoices=hourly")
    with pytest.raises(SchedulerError, match="shortest interval is 5m"):
        parse_extra("invoices=1m")


# ---------------------------------------------------------------------------------------------
# The loop, with time-machine as the clock, the real engine and the fake Xero
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start, sync_time, expected_local",
    [
        # October: AEST -> AEDT on Sunday 4 Oct 2026
        (datetime(2026, 10, 2, 12, 0, tzinfo=UTC), "06:00", ["2026-10-03 06:00 AEST", "2026-10-04 06:00 AEDT", "2026-10-05 06:00 AEDT"]),
        # April: AEDT -> AEST on Sunday 4 Apr 2027
        (datetime(2027, 4, 2, 12, 0, tzinfo=UTC), "06:00", ["2027-04-03 06:00 AEDT", "2027-04-04 06:00 AEST", "2027-04-05 06:00 AEST"]),
        # a time inside the October gap: once a day, 03:30 on the change day, 02:30 after
        (datetime(2026, 10, 2, 12, 0, tzinfo=UTC), "02:30", ["2026-10-03 02:30 AEST", "2026-10-04 03:30 AEDT", "2026-10-05 02:30 AEDT"]),
    ],
)
def test_daily_run_fires_at_configured_local_time_across_dst(make_settings, start, sync_time, expected_local):
    with world(make_settings, start, XERO_SYNC_TIME=sync_time, XERO_TIMEZONE="Australia/Sydney") as w:
        sch = w.scheduler()
        drive(sch, w.traveller, until=lambda: len(runs(sch)) >= 3)
    fired = [t.astimezone(SYD).strftime("%Y-%m-%d %H:%M %Z") for t in runs(sch)]
    assert fired == expected_local
    # each cycle ran the organisation's whole pipeline as a job, trigger "scheduler", against the fake
    (org,) = w.tenants
    assert [synced(c) for c in sch.cycles] == [[(org, "done", "scheduler")]] * 3
    assert all({"organisation", "accounts", "invoices"} <= {st.step for st in c.job_steps} for c in sch.cycles)
    assert {r.at for r in w.fake.requests if r.tenant_id == org} >= set(runs(sch))


@pytest.mark.slow  # days of real cycles, or real runs of several organisations
def test_dst_firing_does_not_depend_on_the_machine_time_zone(make_settings, monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        with world(make_settings, datetime(2026, 10, 2, 12, 0, tzinfo=UTC), XERO_SYNC_TIME="06:00") as w:
            sch = w.scheduler()
            drive(sch, w.traveller, until=lambda: len(runs(sch)) >= 2)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert [t.astimezone(SYD).strftime("%d %H:%M") for t in runs(sch)] == ["03 06:00", "04 06:00"]
    assert all(c.ok and len(c.jobs) == 1 for c in sch.cycles)


def test_extra_intervals_sync_only_those_resources(make_settings):
    with world(make_settings, datetime(2026, 11, 26, 0, 0, tzinfo=UTC), XERO_SYNC_EXTRA="invoices=60m") as w:
        sch = w.scheduler()
        drive(sch, w.traveller, until=lambda: len(runs(sch, "extra:invoices")) >= 3)
    assert runs(sch, "extra:invoices") == [datetime(2026, 11, 26, h, 0, tzinfo=UTC) for h in (1, 2, 3)]
    assert not runs(sch), "no daily run before 06:00 in Sydney"
    for c in sch.cycles:
        (job,) = c.jobs
        assert job.state == "done" and job.request.only == frozenset({"invoices"})
        assert [st.step for st in c.job_steps] == ["invoices"], c.job_steps
    assert {r.path.rsplit("/", 1)[-1] for r in w.fake.requests  # (the organisation was read at connect)
            if r.api == "accounting" and r.at >= runs(sch, "extra:invoices")[0]} == {"Invoices"}


def test_daily_slot_passing_during_a_long_interval_job_still_runs_today(make_settings):
    start = datetime(2026, 11, 25, 18, 50, tzinfo=UTC)  # 05:50 AEDT
    with world(make_settings, start, XERO_SYNC_EXTRA="invoices=5m") as w:
        # the 05:55 interval job's invoices take ten minutes: the daily slot passes meanwhile
        slow = w.fake.faults.add("slow", path="/Invoices", seconds=600, count=1)
        sch = w.scheduler()
        drive(sch, w.traveller, until=lambda: len(runs(sch)) >= 1, max_iterations=300)
    assert slow.applied == 1
    assert sch.cycles[0].kind == "extra:invoices" and sch.cycles[0].finished_at == datetime(2026, 11, 25, 19, 5, tzinfo=UTC)
    (fired,) = runs(sch)
    assert fired.astimezone(SYD).strftime("%d %H:%M") == "26 06:05", "today's run, not tomorrow's"


def test_a_tenant_held_by_another_sync_is_busy_not_run_twice(make_settings):
    """"Sync now" (or the CLI) holds an organisation's lock outside the jobs: the cycle records it as
    busy, with a sync_log row, and not a single call to Xero for it; the other one syncs."""
    from xero_core.sync.locks import tenant_lock

    with world(make_settings, datetime(2026, 11, 26, 9, 0, tzinfo=UTC), tenants=2) as w:
        held, other = w.tenants
        served = w.api_calls(held)
        with tenant_lock(w.settings, held, trigger="manual"):
            sch = w.scheduler()
            assert sch.run_once() == 0, "a busy tenant is not a failure"
        report = sch.cycles[-1]
        assert [(s.tenant_id, s.status) for s in report.steps] == [(held, "busy"), (other, "ok")]
        assert "another sync is running" in report.steps[0].detail
        assert w.api_calls(held) == served, "not a single call to Xero for a tenant already syncing"
        assert w.api_calls(other) > 0
        assert read_state(w.settings)["last_result"]["steps"][0]["status"] == "busy"
        with connect(w.settings.db_path, read_only=True) as con:
            rows = con.execute("SELECT status, trigger, error FROM sync_log WHERE tenant_id = ?", [held]).fetchall()
        assert len(rows) == 1 and rows[0][:2] == ("skipped", "scheduler") and "another sync is running" in rows[0][2]


def test_pause_and_resume_without_restart(make_settings):
    skipped_seen = []
    with world(make_settings, datetime(2026, 11, 26, 0, 0, tzinfo=UTC)) as w:
        set_paused(w.settings, True, by="admin")

        def until():
            st = read_state(w.settings)
            if st.get("last_skipped") and not skipped_seen:
                skipped_seen.append(st["last_skipped"])
                assert st["paused"] is True and st["paused_by"] == "admin"
                set_paused(w.settings, False)  # what the app's Sync page does
            return len([c for c in sch.cycles if c.jobs]) >= 1

        sch = w.scheduler()
        drive(sch, w.traveller, until=until)
    # 27 Nov 06:00 was skipped while paused; 28 Nov 06:00 ran after the resume, same process.
    assert skipped_seen[0]["skipped_reason"] == "paused"
    assert skipped_seen[0]["started_at"] == "2026-11-26T19:00:00+00:00"
    assert [c.started_at.isoformat() for c in sch.cycles if c.jobs] == ["2026-11-27T19:00:00+00:00"]
    assert [c for c in sch.cycles if c.skipped_reason] and sch.cycles[-1].skipped_reason is None
    assert min(r.at for r in w.fake.requests if r.api == "accounting" and r.at > datetime(2026, 11, 26, 0, 0, tzinfo=UTC)) \
        == datetime(2026, 11, 27, 19, 0, tzinfo=UTC), "no call to Xero while paused"


def test_once_honours_pause(make_settings):
    with world(make_settings, datetime(2026, 11, 26, 9, 0, tzinfo=UTC)) as w:
        set_paused(w.settings, True)
        served = len(w.fake.requests)
        sch = w.scheduler()
        assert sch.run_once() == 0
        assert sch.cycles[-1].skipped_reason == "paused" and not sch.cycles[-1].jobs
        assert len(w.fake.requests) == served and J.active_jobs(w.settings) == []


def test_catch_up_once_after_downtime_spanning_a_run(make_settings):
    start = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    with world(make_settings, start) as w:
        # Last daily run three days ago; the scheduler comes back at 11:00 AEDT.
        update_state(w.settings, last_daily_run="2026-11-22T19:00:05+00:00")
        sch = w.scheduler()
        drive(sch, w.traveller, until=lambda: len(runs(sch)) >= 1)
    assert [c.kind for c in sch.cycles] == ["catch-up", "daily"], "one catch-up, however many days were missed"
    assert [c.started_at for c in sch.cycles] == [start, datetime(2026, 11, 26, 19, 0, tzinfo=UTC)]
    assert all(c.ok and len(c.jobs) == 1 for c in sch.cycles)
    assert read_state(w.settings)["last_daily_run"] == "2026-11-26T19:00:00+00:00"


def test_no_catch_up_when_the_last_run_is_recent(make_settings):
    with world(make_settings, datetime(2026, 11, 26, 0, 0, tzinfo=UTC)) as w:
        update_state(w.settings, last_daily_run="2026-11-25T19:00:03+00:00")  # this morning's run happened
        sch = w.scheduler()
        drive(sch, w.traveller, until=lambda: len(runs(sch)) >= 1)
    assert [c.kind for c in sch.cycles] == ["daily"]


@pytest.mark.slow  # days of real cycles, or real runs of several organisations
def test_failing_job_is_logged_and_the_loop_keeps_running(make_settings, caplog):
    with world(make_settings, datetime(2026, 11, 26, 0, 0, tzinfo=UTC), tenants=2) as w:
        bad, good = w.tenants
        # Xero answers the organisation with something that is not JSON (a proxy's page), every call
        fault = w.fake.faults.add("malformed", tenant_id=bad, count=None)

        def until():
            if len(runs(sch)) == 1:
                w.fake.faults.remove(fault.id)  # it works again after the first daily run
            return len(runs(sch)) >= 2

        sch = w.scheduler()
        with caplog.at_level(logging.INFO):
            drive(sch, w.traveller, until=until)
    first, retry, second = sch.cycles
    assert [(s.tenant_id, s.status) for s in first.steps] == [(bad, "failed"), (good, "ok")]
    assert first.steps[0].detail.startswith("organisation: ") and "JSON" in first.steps[0].detail  # the first step's
    # the failed tenant is tried again the same day (it works by then), not left to tomorrow
    assert retry.kind == "retry" and [(s.tenant_id, s.status) for s in retry.steps] == [(bad, "ok")]
    assert second.kind == "daily" and second.ok and len(second.jobs) == 2
    assert f"sync {w.tenants[bad]} failed: organisation: " in caplog.text
    with connect(w.settings.db_path, read_only=True) as con:
        failed = con.execute("SELECT DISTINCT tenant_id, trigger FROM sync_log WHERE status = 'failed'").fetchall()
        errors = [r[0] for r in con.execute("SELECT error FROM sync_log WHERE status = 'failed'").fetchall()]
    assert failed == [(bad, "scheduler")] and errors and all("JSON" in e for e in errors if e)


@pytest.mark.slow  # days of real cycles, or real runs of several organisations
def test_a_failed_daily_run_is_retried_the_same_day_with_backoff(make_settings):
    """A tenant that fails the daily run is retried for that tenant only, after 5, 10, 20, 40
    minutes, then hourly, never past the next daily run; once it works, no more."""
    states = []
    start = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    with world(make_settings, start, tenants=2) as w:
        bad, good = w.tenants
        fault = w.fake.faults.add("malformed", tenant_id=bad, count=None)

        def until():
            n = len(tries(sch, bad))
            if n == 7:
                w.fake.faults.remove(fault.id)  # after seven failures, the next try works
            if n == 2 and not states:
                states.append(read_state(w.settings))
            return len(runs(sch)) >= 2

        sch = w.scheduler()
        drive(sch, w.traveller, until=until)
    slot = datetime(2026, 11, 26, 19, 0, tzinfo=UTC)  # 06:00 in Sydney
    minutes = [round((t - slot).total_seconds() / 60) for t in tries(sch, bad)]
    # 5, 10, 20, 40, then 60 minutes apart; the eighth try works, so the next is tomorrow's daily run
    assert minutes == [0, 5, 15, 35, 75, 135, 195, 255, 24 * 60], minutes
    assert [c.kind for c in sch.cycles] == ["daily"] + ["retry"] * 7 + ["daily"]
    assert all([s.tenant_id for s in c.steps] == [bad] for c in sch.cycles[1:8]), "only the failed tenant is retried"
    assert [c.ok for c in sch.cycles] == [False] * 7 + [True, True]
    assert len(tries(sch, good)) == 2  # the other ran once a day
    assert states[0]["next_retry"] == {"at": "2026-11-26T19:15:00+00:00", "attempt": 2, "tenants": [bad]}
    assert read_state(w.settings)["next_retry"] is None


def test_a_job_that_blows_up_entirely_does_not_kill_run_pending(make_settings, monkeypatch):
    real = scheduling.list_connections
    broken = {"on": True}

    def list_connections(settings):
        if broken["on"]:
            broken["on"] = False
            raise OSError("database file vanished")
        return real(settings)

    monkeypatch.setattr(scheduling, "list_connections", list_connections)
    with world(make_settings, datetime(2026, 11, 26, 0, 0, tzinfo=UTC)) as w:
        sch = w.scheduler()
        drive(sch, w.traveller, until=lambda: len(sch.cycles) >= 2)
    assert sch.cycles[0].steps[0].status == "failed" and sch.cycles[0].steps[0].step == "list organisations"
    assert sch.cycles[1].kind == "retry" and sch.cycles[1].ok and len(sch.cycles[1].jobs) == 1
    with connect(w.settings.db_path, read_only=True) as con:
        assert con.execute("SELECT tenant_id, sync_type, status, error FROM sync_log WHERE status = 'failed'").fetchall() \
            == [(None, "scheduler", "failed", "OSError: database file vanished")]


@pytest.mark.slow  # days of real cycles, or real runs of several organisations
def test_once_from_the_command_line_prints_steps_and_exits_nonzero_when_a_step_failed(make_settings, monkeypatch,
                                                                                      capsys, caplog):
    """`scheduler.py --once` as cron runs it: mock mode's fake Xero on loopback, each organisation's
    steps on stderr, the summary counting organisations, steps and failures, exit 1 after a failure."""
    from xero_core.fake.server import serve

    with world(make_settings, datetime(2026, 11, 26, 9, 0, tzinfo=UTC), tenants=2) as w, serve(w.fake) as server:
        for k, v in {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(w.settings.data_dir), "XERO_FAKE_PORT": str(server.port),
                     "XERO_ENCRYPTION_KEY": w.settings.encryption_key.hex(), "XERO_ENV_FILE": os.devnull}.items():
            monkeypatch.setenv(k, v)
        entry = _load_entry_point()
        with caplog.at_level(logging.INFO, logger="xero_core.scheduling"):
            assert entry.main(["--once"]) == 0
        printed = capsys.readouterr().err
        assert printed.count("(ORGANISATION): success") == 2 and "  invoices " in printed, printed
        steps = read_state(w.settings)["last_result"]["steps_run"]
        assert steps >= 16 and f"2 organisation(s), {steps} step(s), 0 step(s) failed, 0 organisation(s) failed" \
            in caplog.text
        bad = next(iter(w.tenants))
        w.fake.faults.add("malformed", tenant_id=bad, count=None)
        assert entry.main(["--once"]) == 1
        state = read_state(w.settings)
        assert state["last_result"]["ok"] is False and state["last_result"]["failed"] == 1
        assert state["last_result"]["steps_failed"] >= 1 and "1 organisation(s) failed" in caplog.text
        assert "JSON" in capsys.readouterr().err
        assert entry.main(["--pause"]) == 0 and read_state(w.settings)["paused"] is True
        assert entry.main(["--resume"]) == 0 and read_state(w.settings)["paused"] is False
        capsys.readouterr()
        assert entry.main(["--status"]) == 0
        assert json.loads(capsys.readouterr().out)["status"] == "stopped"


def test_help_documents_everything():
    text = _load_entry_point().build_parser().format_help()
    for needle in ("--once", "--status", "--pause", "--resume", "--verbose", "XERO_SYNC_TIME", "XERO_TIMEZONE",
                   "XERO_SYNC_EXTRA", "scheduler_state.json", "SIGTERM", "catch-up", "exit codes", "busy", "cron"):
        assert needle in text, needle


# ---------------------------------------------------------------------------------------------
# State for the admin app
# ---------------------------------------------------------------------------------------------


def test_read_state_derives_running_from_heartbeat_and_pid(settings):
    assert read_state(settings)["status"] == "never started"
    now = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    update_state(settings, pid=os.getpid(), heartbeat=now.isoformat(), next_run="2026-11-26T19:00:00+00:00")
    st = read_state(settings, now=now + timedelta(seconds=40))
    assert st["running"] is True and st["status"] == "running" and st["paused"] is False
    set_paused(settings, True)
    st = read_state(settings, now=now + timedelta(seconds=40))
    assert st["status"] == "paused" and st["next_run"] == "2026-11-26T19:00:00+00:00", "pause keeps the rest"
    assert read_state(settings, now=now + timedelta(minutes=5))["status"] == "not responding"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    update_state(settings, pid=int(dead.stdout))
    st = read_state(settings, now=now + timedelta(seconds=40))
    assert st["running"] is False and st["status"] == "stopped"


def test_heartbeat_stays_fresh_while_a_long_step_runs(make_settings, monkeypatch):
    beat = threading.Event()
    real_update = scheduling.update_state

    def spy(s, **changes):
        if set(changes) == {"heartbeat"}:
            beat.set()
        return real_update(s, **changes)

    monkeypatch.setattr(scheduling, "update_state", spy)
    with world(make_settings, datetime(2026, 11, 26, 9, 0, tzinfo=UTC)) as w:
        # Xero takes its time over the accounts: the answer waits until the scheduler has beaten
        # (30 s at most: then the assertion below fails)
        slow = w.fake.faults.add("slow", path="/Accounts", gate=beat, seconds=30)
        sch = w.scheduler(heartbeat_seconds=0.05)
        sch.build()
        assert sch.run_cycle("daily").ok
    assert slow.applied == 1 and beat.is_set(), "no heartbeat while the step ran"
    assert read_state(w.settings)["current"] is None


def test_damaged_state_file_does_not_break_readers_or_the_scheduler(settings):
    path = scheduling.state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert read_state(settings)["status"] == "never started"
    set_paused(settings, True)
    assert json.loads(path.read_text())["paused"] is True


def test_only_one_scheduler_loop_per_data_dir(settings):
    first = Scheduler(Engine(settings))
    with first._process_lock():
        with pytest.raises(SchedulerAlreadyRunning, match="already running"):
            Scheduler(Engine(settings)).run_forever()


def test_loop_writes_heartbeat_next_run_and_clears_pid_on_exit(make_settings):
    seen = {}
    with world(make_settings, datetime(2026, 11, 26, 0, 0, tzinfo=UTC)) as w:
        sch = w.scheduler(heartbeat_seconds=30, chase_minutes=15, max_wait=scheduling.MAX_WAIT_SECONDS)

        def until():
            seen.update(read_state(w.settings, now=datetime.now(UTC)))
            return True

        drive(sch, w.traveller, until=until)
    assert seen["running"] is True and seen["pid"] == os.getpid()
    assert seen["next_run"] == seen["next_daily_run"] == "2026-11-26T19:00:00+00:00", "the chase tick is not a run"
    assert seen["timezone"] == "Australia/Sydney" and seen["sync_time"] == "06:00"
    after = read_state(w.settings)
    assert after["pid"] is None and after["status"] == "stopped"


# ---------------------------------------------------------------------------------------------
# Signals: `scheduler.py` in a real process, against the fake on loopback, synchronised through
# the fake (a request held open until the test lets it go) and the child's stderr
# ---------------------------------------------------------------------------------------------

TODAY = date(2026, 11, 26)


class PinnedClock:
    """Real time moved onto TODAY, as the child's clock moves with XERO_TODAY (clock.pin_shift)."""

    def __init__(self) -> None:
        self.shift = pin_shift(TODAY, time.time())

    def time(self) -> float:
        return time.time() + self.shift

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0))


class Gate(threading.Event):
    """A slow fault's gate that says when a request reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.reached = threading.Event()

    def wait(self, timeout=None):
        self.reached.set()
        return super().wait(timeout)


def _lines(stream) -> "queue.Queue[str]":
    """A reader thread, so a child that never prints fails the test instead of hanging it."""
    q: queue.Queue[str] = queue.Queue()

    def pump():
        for line in stream:
            q.put(line)
        q.put("")

    threading.Thread(target=pump, daemon=True).start()
    return q


@contextlib.contextmanager
def loopback_world(tmp_path, tenants: int = 2):
    """Two small organisations connected, the fake serving on loopback, and the environment that
    runs `scheduler.py` against it (one worker: the second organisation waits for the first)."""
    from xero_core.fake.server import serve

    env = {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"), "XERO_ENCRYPTION_KEY": secrets.token_hex(32),
           "XERO_ENV_FILE": os.devnull, "XERO_TODAY": TODAY.isoformat(), "XERO_SYNC_WORKERS": "1"}
    s = load_settings(env)
    clock = PinnedClock()
    fake = FakeXero(seed=3, today=TODAY, clock=clock, tenants=tenants, practices=0, org_factory=tiny_org)
    oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)), transport=fake.transport(), clock=clock)
    with serve(fake) as server:
        child_env = dict(os.environ, PYTHONUNBUFFERED="1", XERO_FAKE_PORT=str(server.port), **env)
        yield s, fake, child_env


def _child(env, *args):
    return subprocess.Popen([sys.executable, "scheduler.py", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # two scheduler.py processes, each syncing against the fake on loopback
@pytest.mark.parametrize("mode", ["--once", "loop"])
def test_sigterm_mid_step_finishes_the_step_and_exits_zero(tmp_path, mode):
    with loopback_world(tmp_path) as (s, fake, env):
        if mode == "loop":  # a missed run makes the loop start a catch-up cycle at once
            update_state(s, last_daily_run="2020-01-01T00:00:00+00:00")
        gate = Gate()
        fault = fake.faults.add("slow", path="/Organisation", gate=gate, seconds=60)  # the first step's call
        since = fake.clock.now()  # (connecting read each organisation)
        proc = _child(env, *([mode] if mode != "loop" else []))
        err_q = _lines(proc.stderr)
        try:
            assert gate.reached.wait(60), "the child never reached Xero"
            proc.send_signal(signal.SIGTERM)
            while "received SIGTERM" not in (line := err_q.get(timeout=30)):
                assert line, "the child exited before its signal handler said anything"
            gate.set()  # the step under way may finish now
            proc.wait(timeout=60)
        finally:
            gate.set()
            proc.kill() if proc.poll() is None else None
        err = "".join(iter(err_q.get, ""))
        served = [r for r in fake.requests if r.api == "accounting" and r.at >= since]
    assert proc.returncode == 0, err
    assert fault.applied == 1
    # the step under way finished; no other step, and no other organisation, started
    assert [r.path.rsplit("/", 1)[-1] for r in served] == ["Organisation"], [(r.path, r.tenant_id) for r in served]
    held = served[0].tenant_id
    jobs = {j.tenant_id: j for j in J.list_jobs(s)}
    assert jobs[held].state == "interrupted" and "before this sync finished" in jobs[held].error
    assert [j.state for t, j in jobs.items() if t != held] == ["queued"], "left for the next run"
    state = read_state(s)
    assert state["last_result"]["interrupted"] is True
    assert sorted(st["status"] for st in state["last_result"]["steps"]) == ["skipped", "skipped"]
    assert state["pid"] is None
    if mode == "loop":
        assert state["last_daily_run"] == "2020-01-01T00:00:00+00:00", "an interrupted run is caught up next start"


def test_sigterm_while_idle_exits_promptly(tmp_path):
    with loopback_world(tmp_path, tenants=1) as (s, fake, env):
        since = fake.clock.now()
        proc = _child(env)
        err_q = _lines(proc.stderr)
        try:
            while "scheduler started" not in (line := err_q.get(timeout=60)):
                assert line, "the child exited before starting"
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        finally:
            proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0
    assert time.monotonic() - started < 10, "the wait is interruptible, not a long sleep"
    assert [r for r in fake.requests if r.api == "accounting" and r.at >= since] == [], "nothing was due"


# ---------------------------------------------------------------------------------------------
# The real pipeline: --once queues a job per tenant and runs them concurrently
# ---------------------------------------------------------------------------------------------


class RefusedTransport:
    """Every request meets a real refused connection (a loopback port nothing listens on), as
    httpx reports it: a ConnectError caused by ConnectionRefusedError."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.calls: list[str] = []

    def handle_request(self, request):
        import socket

        import httpx

        self.calls.append(request.url.path)
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
        except ConnectionRefusedError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        raise AssertionError("the closed port answered")

    def close(self) -> None:
        pass


@pytest.mark.slow
def test_with_xero_unreachable_a_run_says_so_in_one_line_and_tries_each_tenant_once(tmp_path, caplog):
    """Issue 24 §2: a refused connection is not retried, the other steps are not tried, and the
    run's log has the sentence once, not once per tenant or step."""
    import logging

    from test_sync_e2e import connect as connect_fake, small_org

    s, clock, fake, org = connect_fake(tmp_path, invoices=30, org_factory=small_org)
    refused = RefusedTransport()
    calls = refused.calls
    sch = Scheduler(Engine(s, transport=refused, clock=clock), workers=2)
    with caplog.at_level(logging.INFO):
        assert sch.run_once() == 1
    report = sch.cycles[-1]
    assert len(report.steps) == 2 and {st.detail for st in report.steps} == {"Xero unreachable"}
    assert len(calls) == 2, calls  # one try per tenant: no retries, no second step
    assert caplog.text.count(s.unreachable_hint) == 1, caplog.text
    assert report.as_dict()["unreachable"] == s.unreachable_hint
    with connect(s.db_path, read_only=True) as con:
        errors = [r[0] for r in con.execute("SELECT error FROM sync_log WHERE tenant_id = ? AND status = 'skipped'",
                                            [org]).fetchall()]
    assert errors and set(errors) == {"not tried: Xero unreachable"}


@pytest.mark.slow
def test_once_runs_every_tenant_as_concurrent_jobs_and_says_running_meanwhile(tmp_path, capsys, caplog):
    import httpx

    from xero_core.connections import set_status
    from xero_core.pipeline import jobs as J

    from test_sync_e2e import connect as connect_fake, small_org

    s, clock, fake, org = connect_fake(tmp_path, invoices=30, org_factory=small_org)
    inner = fake.transport()
    seen: list[dict] = []
    first = threading.Lock()

    class Spy(httpx.BaseTransport):
        def handle_request(self, request):
            with first:  # both jobs' threads call at once: look once
                if not seen:
                    seen.append(read_state(s, now=clock.now()))
                    seen.append({"running_jobs": len([j for j in J.active_jobs(s) if not j.request.history])})
            return inner.handle_request(request)

    sch = Scheduler(Engine(s, transport=Spy(), clock=clock), workers=2, heartbeat_seconds=30)
    with caplog.at_level("INFO"):
        assert sch.run_once() == 0
    state, active = seen
    # issue 24 §3: the summary counts organisations, steps and failures; each job's steps print as `sync`'s
    done = sch.cycles[-1].as_dict()
    assert (done["organisations"], done["steps_failed"]) == (2, 0) and done["steps_run"] >= 12, done
    assert f"2 organisation(s), {done['steps_run']} step(s), 0 step(s) failed" in caplog.text
    from xero_core.commands.sync import print_jobs

    print_jobs(sch.cycles[-1].jobs)
    printed = capsys.readouterr().err
    assert "(ORGANISATION): success" in printed and "(PRACTICEMANAGER): success" in printed
    # (a first sync's journal history is the organisation's own history backfill job: issue 24 §1)
    assert printed.count("\n  ") >= done["steps_run"] and "  pnl " in printed and "  xpm " in printed
    assert state["status"] == "running" and state["mode"] == "once" and state["pid"] == os.getpid(), state
    assert active["running_jobs"] == 2, "both tenants queued at once"
    assert read_state(s, now=clock.now())["status"] == "stopped"
    report = sch.cycles[-1]
    assert sorted(st.status for st in report.steps) == ["ok", "ok"]
    with connect(s.db_path, read_only=True) as con:
        logged = con.execute("SELECT DISTINCT sync_type FROM sync_log WHERE trigger = 'scheduler'").fetchall()
    assert {"accounts", "clients", "xpm", "documents", "webhooks"} <= {r[0] for r in logged}

    # a tenant needing reconnect fails the run (exit 1) with the fix; the other one still syncs
    set_status(s, org, "needs_reconnect", "the refresh token was revoked in Xero")
    sch = Scheduler(Engine(s, transport=inner, clock=clock), workers=2)
    assert sch.run_once() == 1
    by = {st.tenant_id: st for st in sch.cycles[-1].steps}
    assert by[org].status == "failed" and "reconnect" in by[org].detail and "revoked" in by[org].detail
    assert [st.status for t, st in by.items() if t != org] == ["ok"]
