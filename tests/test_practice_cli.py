"""The practice commands: clients, documents, xpm map, and `webhooks` served by a real subprocess."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from xero_core.snapshot import working_path
from xero_core.cli import main
from xero_core.db import connect
from xero_core.fake import FakeClock, FakeXero

KEY = "cli-webhook-key-0123456789abcdefghijkl"


@pytest.fixture
def env(tmp_path, monkeypatch):
    values = {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
              "XERO_ENCRYPTION_KEY": secrets.token_hex(32), "XERO_ENV_FILE": os.devnull,
              "XERO_WEBHOOK_KEY": KEY}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def run_json(capsys, *argv):
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.mark.slow
def test_clients_and_documents_commands(env, capsys, tmp_path):
    code, row = run_json(capsys, "clients", "add", "Acme Pty Ltd", "--email", "a@acme.example")
    assert code == 0 and row["name"] == "Acme Pty Ltd" and row["match_status"] == "unmatched"
    csv = tmp_path / "c.csv"
    csv.write_text("name,email\nBeta,b@beta.example\n,\n")
    code, res = run_json(capsys, "clients", "import", str(csv))
    assert code == 0 and len(res["created"]) == 1 and res["skipped"] == ["line 3: no name"]
    code, rows = run_json(capsys, "clients", "list")
    assert sorted(r["name"] for r in rows) == ["Acme Pty Ltd", "Beta"]
    f = tmp_path / "statement.pdf"
    f.write_bytes(b"%PDF-1.4")
    code, doc = run_json(capsys, "documents", "add", "--client", row["client_id"], str(f))
    assert code == 0 and doc["status"] == "pending"
    bad = tmp_path / "run.bat"
    bad.write_bytes(b"echo")
    code, doc = run_json(capsys, "documents", "add", "--client", row["client_id"], str(bad))
    assert code == 1 and "does not accept .bat" in doc["error"]
    code, s = run_json(capsys, "documents", "push")  # the client has no Xero contact yet
    assert code == 0 and s["skipped"] == 2 and "not matched to a Xero contact" in " ".join(s["messages"])
    assert main(["documents", "add", "--client", "cl_nope", str(f)]) == 1
    assert "No client 'cl_nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_xpm_map_command(env, capsys):
    with connect(working_path(env["XERO_DATA_DIR"])) as con:
        con.execute("INSERT INTO connections (tenant_id, tenant_name, tenant_type, status) "
                    "VALUES ('pm-1', 'Harbour', 'PRACTICEMANAGER', 'connected')")
    code, doc = run_json(capsys, "xpm", "map", "--tenant", "pm-1", "--state", "Waiting on Client", "--state", "Review")
    assert code == 0 and doc["needs_documents"] == ["Review", "Waiting on Client"]
    code, doc = run_json(capsys, "xpm", "map", "--tenant", "pm-1", "--state", "Review", "--off")
    assert doc["needs_documents"] == ["Waiting on Client"] and doc["xpm_enabled"] is False
    assert main(["xpm", "enable", "--tenant", "pm-1"]) == 0
    assert main(["xpm", "map", "--tenant", "nope", "--state", "X"]) == 1
    assert "No connection nope" in capsys.readouterr().err


@pytest.mark.slow
def test_webhooks_command_passes_the_fakes_intent_to_receive(env, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "xero_core", "webhooks", "--port", "0"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env}, cwd=Path(__file__).resolve().parents[1])
    try:
        line = ""
        while "listening on" not in line:
            line = proc.stderr.readline()
            assert line, "the webhooks command exited early"
        url = line.split("listening on ", 1)[1].split(" ", 1)[0]
        fake = FakeXero(clock=FakeClock(), invoices=5)
        result = fake.intent_to_receive(url, KEY)
        assert result.passed, result.public()
        assert max(a.elapsed for a in result.answers) < 5
    finally:
        proc.terminate()
        try:
            # a worker pass in progress finishes first; on a loaded 2-core machine that takes a while
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
