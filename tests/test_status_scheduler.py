"""`status` shows the scheduler (issue 13 §4): `--json` has its state (running, paused, next run,
last result) from scheduling.read_state, the same the app's Sync page shows; the human form has a
line for it, and a scheduler that stopped answering or a failed last run is a warning."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from xero_core import cli, scheduling
from xero_core.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
UTC = timezone.utc


@pytest.fixture
def env(tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("XERO_") and k != "XERO_TODAY":  # XERO_TODAY: the test date's pin, if any
            monkeypatch.delenv(k)
    values = {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
              "XERO_ENCRYPTION_KEY": secrets.token_hex(32), "XERO_ENV_FILE": "/dev/null"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return load_settings()


def status(capsys, *args) -> tuple[int, str]:
    code = cli.main(["status", *args])
    out, err = capsys.readouterr()
    return code, out + err


def test_a_scheduler_never_started_says_how_to_start_it(env, capsys):
    code, out = status(capsys, "--json")
    sch = json.loads(out)["scheduler"]
    assert code == 0
    assert sch["status"] == "never started" and sch["running"] is False and sch["paused"] is False
    assert sch["next_run"] is None and sch["last_result"] is None
    assert (sch["sync_time"], sch["timezone"]) == ("06:00", "Australia/Sydney")
    code, text = status(capsys)
    assert "Scheduler: never started (daily at 06:00 Australia/Sydney once running): start it with " \
           "`python scheduler.py`." in text


@pytest.mark.slow
def test_a_running_scheduler_its_next_run_and_last_result(env, capsys, test_today):
    now = datetime.now(UTC)
    nxt = scheduling.next_daily_run(now, "06:00", "Australia/Sydney")
    last = scheduling.last_daily_slot(now, "06:00", "Australia/Sydney")
    result = {"kind": "daily", "ok": True, "interrupted": False, "skipped_reason": None, "failed": 0,
              "started_at": last.isoformat(), "finished_at": (last + timedelta(minutes=3)).isoformat(), "steps": []}
    scheduling.update_state(env, pid=os.getpid(), heartbeat=now.isoformat(), next_run=nxt.isoformat(),
                            next_daily_run=nxt.isoformat(), last_run=last.isoformat(), last_daily_run=last.isoformat(),
                            last_result=result, sync_time="06:00", timezone="Australia/Sydney")
    doc = json.loads(status(capsys, "--json")[1])
    sch = doc["scheduler"]
    assert sch["status"] == "running" and sch["running"] is True and sch["paused"] is False
    assert sch["next_run"] == nxt.isoformat() and sch["last_run"] == last.isoformat()
    assert sch["last_result"]["ok"] is True and sch["last_result"]["kind"] == "daily"
    assert 0 <= sch["heartbeat_age_seconds"] < 60 and doc["warnings"] == []
    text = status(capsys)[1]
    local = nxt.astimezone(ZoneInfo("Australia/Sydney"))
    assert f"Scheduler: running, daily at 06:00 Australia/Sydney; next run {local.day} {local:%b %Y} 06:00 " \
           f"{local:%Z}." in text  # 06:00 on the wall clock, AEST or AEDT as the date has it
    assert "Last run (daily)" in text and "all steps ok" in text

    # the same from another process: its clock (XERO_TODAY when the date is pinned) agrees with ours
    out = subprocess.run([sys.executable, "-m", "xero_core", "status", "--json"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    sch = json.loads(out.stdout)["scheduler"]
    assert sch["status"] == "running" and 0 <= sch["heartbeat_age_seconds"] < 60, sch

    # paused from the app: running, but paused, and the line says so
    scheduling.set_paused(env, True, by="admin app")
    sch = json.loads(status(capsys, "--json")[1])["scheduler"]
    assert sch["status"] == "paused" and sch["paused"] is True and sch["running"] is True
    assert "Scheduler: paused since " in status(capsys)[1] and "by admin app" in status(capsys)[1]


@pytest.mark.slow
def test_a_silent_scheduler_and_a_failed_run_are_warnings(env, capsys):
    old = datetime.now(UTC) - timedelta(minutes=10)
    failed = {"kind": "daily", "ok": False, "interrupted": False, "skipped_reason": None, "failed": 2,
              "started_at": old.isoformat(), "finished_at": old.isoformat(), "steps": []}
    scheduling.update_state(env, pid=os.getpid(), heartbeat=old.isoformat(), last_run=old.isoformat(),
                            last_result=failed)
    doc = json.loads(status(capsys, "--json")[1])
    assert doc["scheduler"]["status"] == "not responding" and doc["scheduler"]["running"] is False
    assert any("has not written a heartbeat for 10 minutes" in w for w in doc["warnings"])
    assert any("2 failed step(s)" in w for w in doc["warnings"])
    text = status(capsys)[1]
    assert "Scheduler: not responding (last heartbeat " in text and "2 step(s) failed" in text
    assert "WARNING: The scheduler (pid" in text

    scheduling.update_state(env, pid=None, stopped_at=old.isoformat())  # stopped cleanly: no warning for that
    doc = json.loads(status(capsys, "--json")[1])
    assert doc["scheduler"]["status"] == "stopped"
    assert not any("heartbeat" in w for w in doc["warnings"])


def test_a_damaged_state_file_is_not_a_crash(env, capsys):
    scheduling.state_path(env).parent.mkdir(parents=True, exist_ok=True)
    scheduling.state_path(env).write_text("{not json")
    code, out = status(capsys, "--json")
    assert code == 0 and json.loads(out)["scheduler"]["running"] is False
