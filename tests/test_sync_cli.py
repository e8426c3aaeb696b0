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
from xero_core.pipeline.result import SyncResult
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_sync_all_names_a_tenant_it_did_not_sync_and_exits_1(served, capsys):
    """Issue 21 §3: an organisation needing a reconnect made `sync --all` exit 0 without a word."""
    from xero_core.connections import set_status

    fake, s = served
    tenants = connect_via_consent_form(s)
    org = next(t for t in tenants if t["tenant_type"] == "ORGANISATION")
    set_status(s, org["tenant_id"], "needs_reconnect", "the refresh token was revoked in Xero")
    code = main(["sync", "--all", "--only", "xpm"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{org['tenant_name']} (ORGANISATION): not synced" in err
    assert "needs reconnect (the refresh token was revoked in Xero); reconnect it: `python -m xero_core connect`" in err
    assert "(PRACTICEMANAGER): success" in err  # the others still synced
    code = main(["sync", "--all", "--only", "xpm", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and not doc["ok"]
    assert [t["tenant_id"] for t in doc["tenants"] if not t["ok"]] == [org["tenant_id"]]


@pytest.mark.slow
def test_explicit_weeks_joining_a_shorter_running_job_runs_as_its_own_job_after_it(served, capsys):
    """Issue 21 §3: `--weeks 8` joining the scheduler's running 2-week job reported success after
    only 2 weeks; now the 8 weeks run as their own job right after, and that is what is reported."""
    import threading

    from xero_core.engine import Engine
    from xero_core.pipeline import jobs as J
    from xero_core.pipeline.request import SyncRequest

    fake, s = served
    org = next(t["tenant_id"] for t in connect_via_consent_form(s) if t["tenant_type"] == "ORGANISATION")
    running = Engine(s).enqueue(SyncRequest(org, only=frozenset({"pnl"}), trigger="scheduler"))
    assert J.claim(s, J.Owner(label="scheduler"), job_ids=[running.job_id]).job_id == running.job_id
    result: dict = {}
    cli = threading.Thread(target=lambda: result.update(code=main(["sync", "--tenant", org, "--only", "pnl",
                                                                      "--weeks", "8", "--json"])))
    cli.start()
    joined = J.wait(s, [running.job_id], timeout=60, poll=0.05,
                    stop=type("E", (), {"is_set": lambda self: J.get(s, running.job_id).follow_up is not None})())
    assert J.get(s, running.job_id).follow_up.weeks == 8, "the CLI joined the running job and asked for more"
    J.finish(s, running.job_id, "done", result=SyncResult(org))
    cli.join(120)
    assert not cli.is_alive() and joined
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert result["code"] == 0 and doc["ok"], out.err
    (tenant,) = doc["tenants"]
    assert tenant["job_id"] != running.job_id, "the reported job is the 8-week one, not the one it joined"
    assert J.get(s, tenant["job_id"]).request.weeks == 8
    assert "does not cover what was asked (full sync (only pnl; 8 weeks))" in out.err
    pnl = next(st for st in tenant["steps"] if st["step"] == "pnl")
    # figures first (issue 24 §1): the latest weeks in that job, the older ones in the history it queued,
    # which the CLI also runs before it exits; together they are the 8 weeks asked for
    job = J.get(s, tenant["job_id"])
    history = J.get(s, job.result.history_job) if job.result.history_job else None
    later = [st for st in (history.result.steps if history and history.result else []) if st.step == "pnl"]
    assert pnl["status"] == "success" and all(st.status == "success" for st in later)
    assert pnl["api_calls"] + sum(st.api_calls for st in later) >= 8


def test_unknown_step_is_a_usage_error(served, capsys):
    assert main(["sync", "--all", "--only", "pnl,nope"]) == 2
    assert "unknown sync step" in capsys.readouterr().err


@pytest.mark.slow
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
