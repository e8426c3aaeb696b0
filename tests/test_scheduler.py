"""The scheduler: local-time firing across DST, busy tenants, pause/resume, catch-up, failures, signals.

The loop runs for real (`run_forever`) with time-machine as its clock: the injected `wait`
moves time forward instead of sleeping, so three simulated days take milliseconds.
"""
from __future__ import annotations

import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine

from xero_core import scheduling
from xero_core.db import connect
from xero_core.scheduling import (
    Jobs,
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

UTC = timezone.utc
SYD = ZoneInfo("Australia/Sydney")
REPO = Path(__file__).resolve().parents[1]


def _load_entry_point():
    spec = importlib.util.spec_from_file_location("scheduler_entry", REPO / "scheduler.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Busy(Exception):
    """Stands in for sync.locks.SyncBusy."""


class FakeEngine:
    """Records every call with the (time-machine) time it happened."""

    def __init__(self, tenants=(("t1", "Alpha Pty", "connected"), ("t2", "Beta Ltd", "connected"))):
        self.tenants = list(tenants)
        self.calls: list[tuple[str, str | None, datetime, object]] = []
        self.fail: dict[str, Exception] = {}
        self.busy: set[str] = set()

    def organisations(self, settings):
        return list(self.tenants)

    def sync_tenant(self, settings, tenant_id, *, trigger, only=None):
        assert trigger == "scheduler"
        self.calls.append(("tenant", tenant_id, datetime.now(UTC), only))
        if tenant_id in self.busy:
            raise Busy(f"tenant {tenant_id} is already syncing (pid 4242)")
        if tenant_id in self.fail:
            raise self.fail[tenant_id]
        return None

    def sync_practices(self, settings, *, trigger):
        self.calls.append(("practices", None, datetime.now(UTC), None))

    def jobs(self) -> Jobs:
        return Jobs(self.organisations, self.sync_tenant, self.sync_practices, busy=(Busy,))

    def daily_fire_times(self):
        return [c[2] for c in self.calls if c[0] == "practices"]


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
# The loop, with time-machine as the clock
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
    settings = make_settings(XERO_SYNC_TIME=sync_time, XERO_TIMEZONE="Australia/Sydney")
    engine = FakeEngine()
    with time_machine.travel(start, tick=False) as traveller:
        sch = Scheduler(settings, jobs=engine.jobs(), heartbeat_seconds=None, max_wait=3600)
        drive(sch, traveller, until=lambda: len(engine.daily_fire_times()) >= 3)
    fired = [t.astimezone(SYD).strftime("%Y-%m-%d %H:%M %Z") for t in engine.daily_fire_times()]
    assert fired == expected_local
    # each cycle syncs both organisations, then the practices, with trigger=scheduler
    assert [c[:2] for c in engine.calls[:3]] == [("tenant", "t1"), ("tenant", "t2"), ("practices", None)]


def test_dst_firing_does_not_depend_on_the_machine_time_zone(make_settings, monkeypatch):
    settings = make_settings(XERO_SYNC_TIME="06:00")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        engine = FakeEngine()
        with time_machine.travel(datetime(2026, 10, 2, 12, 0, tzinfo=UTC), tick=False) as traveller:
            sch = Scheduler(settings, jobs=engine.jobs(), heartbeat_seconds=None, max_wait=3600)
            drive(sch, traveller, until=lambda: len(engine.daily_fire_times()) >= 2)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert [t.astimezone(SYD).strftime("%d %H:%M") for t in engine.daily_fire_times()] == ["03 06:00", "04 06:00"]


def test_extra_intervals_sync_only_those_resources(make_settings):
    settings = make_settings(XERO_SYNC_EXTRA="invoices=60m")
    engine = FakeEngine(tenants=[("t1", "Alpha", "connected")])
    with time_machine.travel(datetime(2026, 11, 26, 0, 0, tzinfo=UTC), tick=False) as traveller:
        sch = Scheduler(settings, jobs=engine.jobs(), heartbeat_seconds=None, max_wait=3600)
        drive(sch, traveller, until=lambda: sum(c[3] == ("invoices",) for c in engine.calls) >= 3)
    extra = [c for c in engine.calls if c[3] == ("invoices",)]
    assert [c[2] for c in extra] == [datetime(2026, 11, 26, h, 0, tzinfo=UTC) for h in (1, 2, 3)]
    assert not engine.daily_fire_times(), "interval jobs do not run the practices"


def test_daily_slot_passing_during_a_long_interval_job_still_runs_today(make_settings):
    settings = make_settings(XERO_SYNC_EXTRA="invoices=5m")
    engine = FakeEngine(tenants=[("t1", "Alpha", "connected")])
    start = datetime(2026, 11, 25, 18, 50, tzinfo=UTC)  # 05:50 AEDT

    with time_machine.travel(start, tick=False) as traveller:
        real = engine.sync_tenant

        def slow_interval_job(settings, tenant_id, *, trigger, only=None):
            out = real(settings, tenant_id, trigger=trigger, only=only)
            if only:
                traveller.shift(timedelta(minutes=10))  # 05:55 -> 06:05: the daily slot passes meanwhile
            return out

        jobs = engine.jobs()
        jobs.sync_tenant = slow_interval_job
        sch = Scheduler(settings, jobs=jobs, heartbeat_seconds=None, max_wait=3600)
        drive(sch, traveller, until=lambda: len(engine.daily_fire_times()) >= 1, max_iterations=300)
    (fired,) = engine.daily_fire_times()
    assert fired.astimezone(SYD).strftime("%d %H:%M") == "26 06:05", "today's run, not tomorrow's"


def test_tenant_already_syncing_is_skipped_not_run_twice(make_settings):
    settings = make_settings()
    engine = FakeEngine()
    engine.busy.add("t1")
    sch = Scheduler(settings, jobs=engine.jobs())
    assert sch.run_once() == 0, "a busy tenant is not a failure"
    report = sch.cycles[-1]
    assert [(s.tenant_id, s.status) for s in report.steps] == [("t1", "busy"), ("t2", "ok"), (None, "ok")]
    assert "already syncing" in report.steps[0].detail
    assert sum(1 for c in engine.calls if c[1] == "t1") == 1
    assert read_state(settings)["last_result"]["steps"][0]["status"] == "busy"


def test_pause_and_resume_without_restart(make_settings):
    settings = make_settings()
    engine = FakeEngine(tenants=[("t1", "Alpha", "connected")])
    set_paused(settings, True, by="admin")
    skipped_seen = []

    def until():
        st = read_state(settings)
        if st.get("last_skipped") and not skipped_seen:
            skipped_seen.append(st["last_skipped"])
            assert st["paused"] is True and st["paused_by"] == "admin"
            set_paused(settings, False)  # what the app's Sync page does
        return len(engine.daily_fire_times()) >= 1

    with time_machine.travel(datetime(2026, 11, 26, 0, 0, tzinfo=UTC), tick=False) as traveller:
        sch = Scheduler(settings, jobs=engine.jobs(), heartbeat_seconds=None, max_wait=3600)
        drive(sch, traveller, until=until)
    # 27 Nov 06:00 was skipped while paused; 28 Nov 06:00 ran after the resume, same process.
    assert skipped_seen[0]["skipped_reason"] == "paused"
    assert skipped_seen[0]["started_at"] == "2026-11-26T19:00:00+00:00"
    assert [t.isoformat() for t in engine.daily_fire_times()] == ["2026-11-27T19:00:00+00:00"]
    assert [c for c in sch.cycles if c.skipped_reason] and sch.cycles[-1].skipped_reason is None


def test_once_honours_pause(make_settings):
    settings = make_settings()
    engine = FakeEngine()
    set_paused(settings, True)
    assert Scheduler(settings, jobs=engine.jobs()).run_once() == 0
    assert engine.calls == []


def test_catch_up_once_after_downtime_spanning_a_run(make_settings):
    settings = make_settings()
    engine = FakeEngine(tenants=[("t1", "Alpha", "connected")])
    # Last daily run three days ago; the scheduler comes back at 11:00 AEDT.
    update_state(settings, last_daily_run="2026-11-22T19:00:05+00:00")
    start = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        sch = Scheduler(settings, jobs=engine.jobs(), heartbeat_seconds=None, max_wait=3600)
        drive(sch, traveller, until=lambda: len(engine.daily_fire_times()) >= 2)
    kinds = [c.kind for c in sch.cycles]
    assert kinds == ["catch-up", "daily"], "one catch-up, however many days were missed"
    assert engine.daily_fire_times() == [start, datetime(2026, 11, 26, 19, 0, tzinfo=UTC)]
    assert read_state(settings)["last_daily_run"] == "2026-11-26T19:00:00+00:00"


def test_no_catch_up_when_the_last_run_is_recent(make_settings):
    settings = make_settings()
    engine = FakeEngine(tenants=[("t1", "Alpha", "connected")])
    update_state(settings, last_daily_run="2026-11-25T19:00:03+00:00")  # this morning's run happened
    with time_machine.travel(datetime(2026, 11, 26, 0, 0, tzinfo=UTC), tick=False) as traveller:
        sch = Scheduler(settings, jobs=engine.jobs(), heartbeat_seconds=None, max_wait=3600)
        drive(sch, traveller, until=lambda: len(engine.daily_fire_times()) >= 1)
    assert [c.kind for c in sch.cycles] == ["daily"]


def test_failing_job_is_logged_and_the_loop_keeps_running(make_settings, caplog):
    settings = make_settings()
    engine = FakeEngine()
    engine.fail["t1"] = RuntimeError("Xero said no")
    days = []

    def until():
        days.append(1) if len(engine.daily_fire_times()) > len(days) else None
        if len(engine.daily_fire_times()) == 1:
            engine.fail.clear()  # day two works again
        return len(engine.daily_fire_times()) >= 2

    with time_machine.travel(datetime(2026, 11, 26, 0, 0, tzinfo=UTC), tick=False) as traveller:
        sch = Scheduler(settings, jobs=engine.jobs(), heartbeat_seconds=None, max_wait=3600)
        drive(sch, traveller, until=until)
    first, retry, second = sch.cycles
    assert [(s.tenant_id, s.status) for s in first.steps] == [("t1", "failed"), ("t2", "ok"), (None, "ok")]
    assert "RuntimeError: Xero said no" in first.steps[0].detail
    # the failed tenant is tried again the same day (it works by then), not left to tomorrow
    assert retry.kind == "retry" and [(s.tenant_id, s.status) for s in retry.steps] == [("t1", "ok")]
    assert second.ok
    assert "sync Alpha Pty failed: RuntimeError: Xero said no" in caplog.text
    with connect(settings.db_path, read_only=True) as con:
        rows = con.execute("SELECT tenant_id, status, trigger, error FROM sync_log WHERE sync_type='scheduler'").fetchall()
    assert rows == [("t1", "failed", "scheduler", "RuntimeError: Xero said no")]


def test_a_failed_daily_run_is_retried_the_same_day_with_backoff(make_settings):
    """A tenant that fails the daily run (e.g. its database held) is retried for that tenant only,
    after 5, 10, 20, 40 minutes, then hourly, never past the next daily run; once it works, no more."""
    settings = make_settings()
    engine = FakeEngine()
    engine.fail["t1"] = RuntimeError("database held")
    states = []

    def until():
        tries = [c[2] for c in engine.calls if c[1] == "t1"]
        if len(tries) == 7:
            engine.fail.clear()  # after seven failures, the next try works
        if len(tries) == 2 and not states:
            states.append(read_state(settings))
        return len(engine.daily_fire_times()) >= 2

    start = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        sch = Scheduler(settings, jobs=engine.jobs(), heartbeat_seconds=None, max_wait=3600)
        drive(sch, traveller, until=until)
    slot = datetime(2026, 11, 26, 19, 0, tzinfo=UTC)  # 06:00 in Sydney
    tries = [c[2] for c in engine.calls if c[1] == "t1"]
    minutes = [round((t - slot).total_seconds() / 60) for t in tries]
    # 5, 10, 20, 40, then 60 minutes apart; the eighth try works, so the next is tomorrow's daily run
    assert minutes == [0, 5, 15, 35, 75, 135, 195, 255, 24 * 60], minutes
    assert [c.kind for c in sch.cycles] == ["daily"] + ["retry"] * 7 + ["daily"]
    assert all([s.tenant_id for s in c.steps] == ["t1"] for c in sch.cycles[1:8]), "only the failed tenant is retried"
    assert sch.cycles[7].ok
    assert [c[1] for c in engine.calls if c[0] == "tenant"].count("t2") == 2  # t2 ran once a day
    assert states[0]["next_retry"] == {"at": "2026-11-26T19:15:00+00:00", "attempt": 2, "tenants": ["t1"]}
    assert read_state(settings)["next_retry"] is None


def test_a_job_that_blows_up_entirely_does_not_kill_run_pending(make_settings):
    settings = make_settings()
    engine = FakeEngine()
    broken = {"on": True}

    def organisations(s):
        if broken["on"]:
            broken["on"] = False
            raise OSError("database file vanished")
        return engine.organisations(s)

    jobs = engine.jobs()
    jobs.organisations = organisations
    with time_machine.travel(datetime(2026, 11, 26, 0, 0, tzinfo=UTC), tick=False) as traveller:
        sch = Scheduler(settings, jobs=jobs, heartbeat_seconds=None, max_wait=3600)
        drive(sch, traveller, until=lambda: len(engine.daily_fire_times()) >= 1)
    assert sch.cycles[0].steps[0].status == "failed" and sch.cycles[0].steps[0].step == "list organisations"
    assert sch.cycles[1].ok


def test_once_exit_code_is_nonzero_when_a_step_failed(make_settings, monkeypatch, capsys):
    settings = make_settings()
    for k, v in {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(settings.data_dir), "XERO_ENCRYPTION_KEY": bytes(range(32)).hex(),
                 "XERO_ENV_FILE": os.devnull}.items():
        monkeypatch.setenv(k, v)
    entry = _load_entry_point()
    engine = FakeEngine()
    assert entry.main(["--once"], jobs=engine.jobs()) == 0
    engine.fail["t2"] = ValueError("boom")
    assert entry.main(["--once"], jobs=engine.jobs()) == 1
    state = read_state(settings)
    assert state["last_result"]["ok"] is False and state["last_result"]["failed"] == 1
    assert entry.main(["--pause"]) == 0 and read_state(settings)["paused"] is True
    assert entry.main(["--resume"]) == 0 and read_state(settings)["paused"] is False
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


def test_heartbeat_stays_fresh_while_a_long_step_runs(settings, monkeypatch):
    beat = threading.Event()
    real_update = scheduling.update_state

    def spy(s, **changes):
        if set(changes) == {"heartbeat"}:
            beat.set()
        return real_update(s, **changes)

    monkeypatch.setattr(scheduling, "update_state", spy)

    def long_step(settings, tenant_id, *, trigger, only=None):
        assert beat.wait(10), "no heartbeat while the step ran"

    sch = Scheduler(settings, jobs=Jobs(lambda s: [("t1", "Alpha", "connected")], long_step, None, busy=()),
                    heartbeat_seconds=0.05)
    sch.build()
    assert sch.run_cycle("daily").ok
    assert read_state(settings)["current"] is None


def test_damaged_state_file_does_not_break_readers_or_the_scheduler(settings):
    path = scheduling.state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    assert read_state(settings)["status"] == "never started"
    set_paused(settings, True)
    assert json.loads(path.read_text())["paused"] is True


def test_only_one_scheduler_loop_per_data_dir(settings):
    first = Scheduler(settings, jobs=FakeEngine().jobs())
    with first._process_lock():
        with pytest.raises(SchedulerAlreadyRunning, match="already running"):
            Scheduler(settings, jobs=FakeEngine().jobs()).run_forever()


def test_loop_writes_heartbeat_next_run_and_clears_pid_on_exit(settings):
    engine = FakeEngine()
    seen = {}
    with time_machine.travel(datetime(2026, 11, 26, 0, 0, tzinfo=UTC), tick=False) as traveller:
        sch = Scheduler(settings, jobs=engine.jobs(), heartbeat_seconds=30)

        def until():
            seen.update(read_state(settings, now=datetime.now(UTC)))
            return True

        drive(sch, traveller, until=until)
    assert seen["running"] is True and seen["pid"] == os.getpid()
    assert seen["next_run"] == seen["next_daily_run"] == "2026-11-26T19:00:00+00:00"
    assert seen["timezone"] == "Australia/Sydney" and seen["sync_time"] == "06:00"
    after = read_state(settings)
    assert after["pid"] is None and after["status"] == "stopped"


# ---------------------------------------------------------------------------------------------
# Signals: a real process, synchronised through its pipes
# ---------------------------------------------------------------------------------------------

CHILD = r"""
import sys
import scheduler
from xero_core.scheduling import Jobs

def organisations(settings):
    return [("t1", "One", "connected"), ("t2", "Two", "connected")]

def sync_tenant(settings, tenant_id, *, trigger, only=None):
    print("started", tenant_id, flush=True)
    sys.stdin.readline()          # the test says when this step may finish
    print("finished", tenant_id, flush=True)

def sync_practices(settings, *, trigger):
    print("practices", flush=True)

sys.exit(scheduler.main(sys.argv[1:], jobs=Jobs(organisations, sync_tenant, sync_practices, busy=())))
"""


def _lines(stream) -> "queue.Queue[str]":
    """A reader thread, so a child that never prints fails the test instead of hanging it."""
    q: queue.Queue[str] = queue.Queue()

    def pump():
        for line in stream:
            q.put(line)
        q.put("")

    threading.Thread(target=pump, daemon=True).start()
    return q


def _child(tmp_path, *args):
    env = dict(os.environ)
    env.update(XERO_MOCK_MODE="true", XERO_DATA_DIR=str(tmp_path / "data"), XERO_ENCRYPTION_KEY=bytes(range(32, 64)).hex(),
               XERO_ENV_FILE=os.devnull, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args], cwd=REPO, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.parametrize("mode", ["--once", "loop"])
def test_sigterm_mid_step_finishes_the_step_and_exits_zero(tmp_path, make_settings, mode):
    settings = make_settings()
    if mode == "loop":  # a missed run makes the loop start a catch-up cycle at once
        update_state(settings, last_daily_run="2020-01-01T00:00:00+00:00")
    proc = _child(tmp_path, *([mode] if mode != "loop" else []))
    out_q, err_q = _lines(proc.stdout), _lines(proc.stderr)
    try:
        assert out_q.get(timeout=30).strip() == "started t1"
        proc.send_signal(signal.SIGTERM)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        proc.wait(timeout=30)
    finally:
        proc.kill() if proc.poll() is None else None
    out = "".join(iter(out_q.get, ""))
    err = "".join(iter(err_q.get, ""))
    assert proc.returncode == 0, err
    assert out.split("\n")[0] == "finished t1", out
    assert "started t2" not in out and "practices" not in out, "the rest of the cycle is skipped"
    assert "received SIGTERM" in err
    state = read_state(settings)
    assert state["last_result"]["interrupted"] is True
    if mode == "loop":
        assert state["last_daily_run"] == "2020-01-01T00:00:00+00:00", "an interrupted run is caught up next start"
        assert state["pid"] is None


def test_sigterm_while_idle_exits_promptly(tmp_path, make_settings):
    make_settings()
    proc = _child(tmp_path)
    err_q = _lines(proc.stderr)
    try:
        while "scheduler started" not in (line := err_q.get(timeout=30)):
            assert line, "the child exited before starting"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0
    assert time.monotonic() - started < 10, "the wait is interruptible, not a long sleep"


# ---------------------------------------------------------------------------------------------
# With the real sync engine and the fake Xero: the tenant lock is what keeps syncs apart
# ---------------------------------------------------------------------------------------------


def test_tenant_held_by_sync_now_is_skipped_with_a_sync_log_row(tmp_path):
    import secrets

    from xero_core import oauth
    from xero_core.fake.app import FakeXero
    from xero_core.fake.clock import FakeClock
    from xero_core.settings import load_settings
    from xero_core.sync.locks import tenant_lock
    from xero_core.engine import Engine

    s = load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
                       "XERO_ENCRYPTION_KEY": secrets.token_hex(32)})
    clock = FakeClock(datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    fake = FakeXero(seed=3, today=datetime(2026, 11, 26).date(), clock=clock, invoices=50)
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)), transport=fake.transport(), clock=clock)
    org_id = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")

    def sync_tenant(settings, tenant_id, *, trigger, only=None):
        return Engine(settings, transport=fake.transport(), clock=clock).sync(tenant_id, only=only, trigger=trigger)

    jobs = Jobs(sync_tenant=sync_tenant, sync_practices=None)  # the real list of organisations
    served = len(fake.requests)
    with tenant_lock(s, org_id, trigger="manual"):  # "Sync now" is running for this organisation
        sch = Scheduler(s, jobs=jobs, clock=clock)
        assert sch.run_once() == 0
    (step,) = sch.cycles[-1].steps
    assert (step.tenant_id, step.status) == (org_id, "busy") and "another sync is running" in step.detail
    assert len(fake.requests) == served, "not a single call to Xero for a tenant already syncing"
    with connect(s.db_path, read_only=True) as con:
        rows = con.execute("SELECT status, trigger, error FROM sync_log WHERE tenant_id = ?", [org_id]).fetchall()
    assert len(rows) == 1 and rows[0][:2] == ("skipped", "scheduler") and "another sync is running" in rows[0][2]


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


def test_with_xero_unreachable_a_run_says_so_in_one_line_and_tries_each_tenant_once(tmp_path, caplog):
    """Issue 24 §2: a refused connection is not retried, the other steps are not tried, and the
    run's log has the sentence once, not once per tenant or step."""
    import logging

    from test_sync_e2e import connect as connect_fake, small_org

    s, clock, fake, org = connect_fake(tmp_path, invoices=30, org_factory=small_org)
    refused = RefusedTransport()
    calls = refused.calls
    sch = Scheduler(s, jobs=Jobs(workers=2, pool_options={"transport": refused, "clock": clock}), clock=clock)
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

    jobs = Jobs(workers=2, pool_options={"transport": Spy(), "clock": clock})
    assert jobs.pipeline
    sch = Scheduler(s, jobs=jobs, clock=clock, heartbeat_seconds=30)
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
    sch = Scheduler(s, jobs=Jobs(workers=2, pool_options={"transport": inner, "clock": clock}), clock=clock)
    assert sch.run_once() == 1
    by = {st.tenant_id: st for st in sch.cycles[-1].steps}
    assert by[org].status == "failed" and "reconnect" in by[org].detail and "revoked" in by[org].detail
    assert [st.status for t, st in by.items() if t != org] == ["ok"]
