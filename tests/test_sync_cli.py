"""`python -m xero_core sync` against the fake served on loopback: the demo's no-browser consent
driver connects both tenants over HTTP, `--json` prints one document, and the exit code says whether
every step succeeded."""
from __future__ import annotations

import json
import secrets
from datetime import date

import pytest

from xero_core.cli import main
from xero_core.commands.sync import connect_via_consent_form
from xero_core.fake.app import FakeXero
from xero_core.fake.server import serve
from xero_core.settings import load_settings

from test_sync_e2e import small_org


@pytest.fixture
def served(tmp_path, monkeypatch):
    fake = FakeXero(seed=42, today=date(2026, 11, 26), invoices=40, org_factory=small_org)
    server = serve(fake)
    env = {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
           "XERO_ENCRYPTION_KEY": secrets.token_hex(32), **fake.settings_env(server.url)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("XERO_SYNC_KILL_AT", raising=False)
    try:
        yield fake, load_settings(env)
    finally:
        server.close()


def test_consent_form_then_sync_json(served, capsys):
    fake, s = served
    tenants = connect_via_consent_form(s)
    assert {t["tenant_type"] for t in tenants} == {"ORGANISATION", "PRACTICEMANAGER"}
    org = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")

    code = main(["sync", "--all", "--only", "pnl,bank,xpm", "--weeks", "1", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["ok"]
    by_type = {t["tenant_type"]: t for t in doc["tenants"]}
    steps = {st["step"]: st for st in by_type["ORGANISATION"]["steps"]}
    assert set(steps) == {"accounts", "pnl", "bank"}
    assert all(st["status"] == "success" and st["api_calls"] >= 1 and st["bytes_downloaded"] > 0
               for st in steps.values())
    assert [st["step"] for st in by_type["PRACTICEMANAGER"]["steps"]] == ["xpm"]

    # Without --tenant or --all, several tenants: refuse to pick one silently.
    assert main(["sync", "--only", "pnl"]) == 2
    assert "--tenant ID or --all" in capsys.readouterr().err

    # A failing step makes the exit code non-zero.
    fake.revoke_connection(org)
    code = main(["sync", "--tenant", org, "--only", "bank", "--weeks", "1", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and not doc["ok"]
    assert any(st["status"] == "failed" for st in doc["tenants"][0]["steps"])
    from xero_core.connections import get_connection

    # the sync (the client's caller) marked the connection: the next run says "reconnect" at once
    row = get_connection(s, org)
    assert row["status"] == "needs_reconnect" and "Reconnect it" in row["status_reason"]


def test_unknown_step_is_a_usage_error(served, capsys):
    assert main(["sync", "--all", "--only", "pnl,nope"]) == 2
    assert "unknown sync step" in capsys.readouterr().err


def test_week_ending_and_the_jobs_command(served, capsys):
    fake, s = served
    tenants = connect_via_consent_form(s)
    org = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")

    assert main(["sync", "--tenant", org, "--week-ending", "2026-11-18", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (t,) = doc["tenants"]
    assert t["job_state"] == "done" and [st["step"] for st in t["steps"]] == ["accounts", "pnl", "bank"]
    pnl = next(st for st in t["steps"] if st["step"] == "pnl")
    assert pnl["period_end"] == "2026-11-21", "the Saturday ending the week that holds the 18th"
    assert main(["sync", "--tenant", org, "--week-ending", "18/11/2026"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err

    assert main(["jobs", "--all", "--json"]) == 0
    jobs = json.loads(capsys.readouterr().out)["jobs"]
    assert jobs[0]["state"] == "done" and jobs[0]["request"]["week_ending"] == "2026-11-18"
    assert jobs[0]["trigger"] == "cli" and jobs[0]["owner"]["label"] == "cli"
    assert main(["jobs"]) == 0 and "no sync jobs queued or running" in capsys.readouterr().err
    assert main(["jobs", "cancel", jobs[0]["job_id"][:8]]) == 1
    assert "already done" in capsys.readouterr().err
    assert main(["jobs", "cancel", "nope"]) == 1 and "No job" in capsys.readouterr().err
