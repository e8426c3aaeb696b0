"""The CLI as scripts and people use it (issue 24 §4): readable `jobs show`, `--json` wherever a command
prints (errors included: one JSON object on stdout, non-zero exit), a closed pipe ends quietly, the
app's time format, help texts, webhook status without nested parentheses, the demo's default weeks."""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from xero_core import cli
from xero_core.analysis import HOW_TO_GET_DATA
from xero_core.commands.practice import webhook_status_lines
from xero_core.engine import Engine
from xero_core.pipeline.request import SyncRequest
from xero_core.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
APP_TIME = re.compile(r"\b\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2} [A-Z+0-9-]+\b")
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
SERVERS = {"fake-xero", "run-demo"}  # they serve until stopped: nothing to print as JSON


@pytest.fixture
def env(tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("XERO_") and k != "XERO_TODAY":
            monkeypatch.delenv(k)
    values = {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
              "XERO_ENCRYPTION_KEY": secrets.token_hex(32), "XERO_ENV_FILE": os.devnull,
              "XERO_TIMEZONE": "Australia/Sydney"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _leaves(parser, path=()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if parser.get_default("handler") and not subs:
        yield " ".join(path), parser
    for s in subs:
        for name, sub in s.choices.items():
            yield from _leaves(sub, path + (name,))
    if parser.get_default("handler") and subs:
        yield " ".join(path), parser


def test_every_command_that_prints_takes_json():
    missing = [name for name, p in _leaves(cli.build_parser())
               if name.split()[0] not in SERVERS and "--json" not in {o for a in p._actions for o in a.option_strings}]
    assert missing == []


def test_an_error_under_json_is_one_json_object_on_stdout_with_a_non_zero_exit(env, capsys):
    code, out, err = run(capsys, "clients", "resolve", "--client", "nope", "--tenant", "t1", "--contact", "c1", "--json")
    assert code != 0 and json.loads(out)["ok"] is False and json.loads(out)["error"]
    code, out, _ = run(capsys, "xpm", "sync", "--json")
    assert code == 1 and json.loads(out) == {"ok": False, "error": "no connected Practice Manager tenant"}
    code, out, _ = run(capsys, "sync", "--weeks", "two", "--json")  # argparse's own refusal
    assert code == 2 and "--weeks" in json.loads(out)["error"]
    code, out, _ = run(capsys, "jobs", "show", "zzzz", "--json")
    assert code == 1 and "No job 'zzzz'" in json.loads(out)["error"]


def test_jobs_show_is_readable_text_on_stdout_and_jobs_use_the_apps_time_format(env, capsys):
    s = load_settings()
    job = Engine(s).enqueue(SyncRequest("t1", weeks=26, skip_weeks=4, history=True, trigger="manual",
                                        requested_by="admin app"), tenant_name="Demo Co")
    code, out, err = run(capsys, "jobs", "show", job.job_id[:8])
    assert code == 0 and err == ""
    assert out.startswith(f"Job {job.job_id}\n") and "Demo Co" in out
    assert "history: 22 older weeks of reports and the journal history; manual, by admin app" in out
    assert APP_TIME.search(out) and not ISO_TIME.search(out)
    code, out, _ = run(capsys, "jobs")
    assert code == 0 and "Demo Co · history: 22 older weeks" in out
    assert APP_TIME.search(out) and not ISO_TIME.search(out)
    code, out, _ = run(capsys, "jobs", "--json")
    assert ISO_TIME.search(json.loads(out)["jobs"][0]["created_at"]), "ISO under --json"


def test_jobs_json_gives_every_progress_field_null_until_known(env, capsys):
    """README: under --json a field not known yet is null, not missing (as `role` in status --json): a
    queued job's progress (stored as just its message) has the same keys as a running job's."""
    s = load_settings()
    Engine(s).submit(SyncRequest("t1", trigger="cli"), tenant_name="Demo Co")
    code, out, _ = run(capsys, "jobs", "--json")
    (job,) = json.loads(out)["jobs"]
    assert code == 0 and job["progress"] == {"step": None, "status": None, "message": "waiting for a worker",
                                             "count": None, "total": None, "eta_seconds": None, "steps": []}
    assert job["result"] is None and job["owner"] is None


def test_status_times_read_like_the_apps(env, capsys):
    from xero_core.commands.core import scheduler_line

    line = scheduler_line({"status": "running", "paused": False, "timezone": "Australia/Sydney",
                           "sync_time": "06:00", "next_run": "2026-12-07T19:00:00+00:00",
                           "last_run": "2026-12-06T19:00:02+00:00", "last_result": {"kind": "daily", "ok": True}})
    assert "next run 8 Dec 2026 06:00 AEDT" in line and "7 Dec 2026 06:00 AEDT" in line
    assert not ISO_TIME.search(line)


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly(env):
    proc = subprocess.Popen([sys.executable, "-m", "xero_core", "clients", "skipped"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env})
    proc.stdout.close()  # `| head` that has read all it wanted
    err = proc.stderr.read().decode()
    assert proc.wait(60) == cli.BROKEN_PIPE
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err


def test_connect_and_rotate_key_explain_themselves():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert "consent" in sub.choices["connect"].format_help() and "--callback" in sub.choices["connect"].description
    assert "XERO_ENCRYPTION_KEY_PREVIOUS" in sub.choices["rotate-key"].description


def _depth(text: str) -> int:
    most = level = 0
    for ch in text:
        level += ch == "("
        most = max(most, level)
        level -= ch == ")"
    return most


def test_webhook_status_reads_without_nested_parentheses(env):
    lines = webhook_status_lines({
        "key_configured": True, "key_mask": "…k3Xq (vault)", "intent_to_receive_passed": True,
        "intent_to_receive_at": "2026-12-07T09:42:00+00:00", "last_event_received_at": "2026-12-07T09:43:00+00:00",
        "deliveries_verified": 3, "intent_probes_refused": 2, "last_verification_failure_at": "2026-12-07T09:44:00+00:00",
        "last_verification_failure": "signature mismatch (x-xero-signature)", "deliveries_rejected": 1,
        "events": None, "spool_backlog": 0}, "Australia/Sydney")
    assert lines[0] == "Webhook key: set, ending k3Xq, from vault"
    assert all(_depth(line) <= 1 for line in lines), lines
    assert "7 Dec 2026 20:42 AEDT" in "\n".join(lines)


def test_the_notebooks_no_data_message_and_demo_help_agree_on_the_default_weeks():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    demo = sub.choices["demo"]
    weeks = next(a.default for a in demo._actions if "--weeks" in a.option_strings)
    assert f"default {weeks}" in demo.format_help()
    assert f"syncs {weeks} weeks" in HOW_TO_GET_DATA
