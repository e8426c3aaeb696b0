"""`python -m xero_core connect | status | disconnect | rotate-key` end to end, against the
identity fake on a loopback port (the CLI makes real HTTP calls, as it would to Xero)."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from identity_fake import FakeClock, IdentityFake, LoopbackServer, fake_settings_env
from xero_core import cli, connections, tokens
from xero_core.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake():
    return IdentityFake(clock=FakeClock(start=time.time()))


@pytest.fixture
def env(fake, tmp_path, monkeypatch):
    server = LoopbackServer(fake)
    for k in list(os.environ):
        if k.startswith("XERO_"):
            monkeypatch.delenv(k)
    values = {
        "XERO_MOCK_MODE": "true",
        "XERO_DATA_DIR": str(tmp_path / "data"),
        "XERO_ENCRYPTION_KEY": secrets.token_hex(32),
        "XERO_ENV_FILE": os.devnull,
        **fake_settings_env(server.url),
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DISPLAY", raising=False)
    yield values
    server.close()


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def connect(capsys, fake):
    code, out, err = run(capsys, "connect", "--url")
    assert code == 0
    url = out.strip().splitlines()[-1]
    assert url.startswith(os.environ["XERO_AUTHORIZE_URL"] + "?")
    code, out2, err2 = run(capsys, "connect", "--callback", fake.consent(url))
    assert code == 0, err2
    return out + err + out2 + err2


def assert_no_tokens(fake, *texts):
    joined = "\n".join(texts)
    for token in fake.issued:
        assert token not in joined


@pytest.mark.slow
def test_connect_then_status_json(env, fake, capsys):
    outputs = connect(capsys, fake)
    assert "connected: Demo Company (AU) [ORGANISATION]" in outputs and "PRACTICEMANAGER" in outputs
    code, out, err = run(capsys, "status", "--json")
    assert code == 0
    doc = json.loads(out)  # exactly one JSON document on stdout
    assert doc["mock_mode"] is True and doc["api_url"] == env["XERO_API_URL"]
    assert {c["tenant_type"] for c in doc["connections"]} == {"ORGANISATION", "PRACTICEMANAGER"}
    for c in doc["connections"]:
        assert c["status"] == "connected" and c["has_tokens"] and c["refresh_warning"] is None
        assert c["access_token_expires_at"] and c["refresh_token_expires_at"] and c["last_sync_at"] is None
    assert doc["warnings"] == []
    # this identity-only fake serves no GET /Organisation: not known yet (tests/test_organisation.py reads it)
    org = next(c for c in doc["connections"] if c["tenant_type"] == "ORGANISATION")
    assert org["organisation"] is None
    from xero_core import db
    from xero_core.settings import load_settings

    with db.connect(load_settings().db_path) as con:     # as a sync's organisation step stores it
        con.execute("INSERT INTO organisations (tenant_id, base_currency, timezone, financial_year_end_month, "
                    "financial_year_end_day) VALUES (?, 'NZD', 'Pacific/Auckland', 3, 31)", [org["tenant_id"]])
    code, text, _ = run(capsys, "status")
    assert code == 0 and "MOCK MODE" in text and "Demo Company (AU)" in text
    assert "base currency NZD, time zone Pacific/Auckland, financial year ends 31 Mar" in text
    assert_no_tokens(fake, outputs, out, err, text)


@pytest.mark.slow
def test_status_warns_before_refresh_token_lapses(env, fake, capsys):
    connect(capsys, fake)
    s = load_settings()
    tid = fake.tenants[0].tenant_id
    gid, grant = tokens.find_grant(s, tid)
    grant["refresh_issued_at"] = time.time() - 50 * 86400
    tokens.write_grant(s, grant)
    connections.record_sync(s, tid, connections.parse_xero_timestamp("2026-11-01T06:00:00"))
    code, out, _ = run(capsys, "status", "--json")
    doc = json.loads(out)
    org = next(c for c in doc["connections"] if c["tenant_id"] == tid)
    assert "expires on" in org["refresh_warning"] and org["last_sync_at"].startswith("2026-11-01T06:00")
    assert any("Demo Company" in w for w in doc["warnings"])
    code, text, _ = run(capsys, "status")
    assert "WARNING: Demo Company (AU): The refresh token expires on" in text


def test_bad_callback_exits_1_with_one_line(env, fake, capsys):
    code, out, _ = run(capsys, "connect", "--url")
    callback = fake.consent(out.strip().splitlines()[-1]).replace("state=", "state=forged")
    code, out, err = run(capsys, "connect", "--callback", callback)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: state_mismatch:")
    code, out, _ = run(capsys, "connect", "--url")
    denied = fake.consent(out.strip().splitlines()[-1], allow=False)
    code, _, err = run(capsys, "connect", "--callback", denied)
    assert code == 1 and "access_denied" in err and "Allow access" in err


@pytest.mark.slow
def test_disconnect_needs_tenant_and_confirmation(env, fake, capsys, monkeypatch):
    connect(capsys, fake)
    org, xpm = fake.tenants
    code, _, err = run(capsys, "disconnect")
    assert code == 1 and "--tenant" in err and org.tenant_id in err
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    code, _, err = run(capsys, "disconnect", "--tenant", org.tenant_id)
    assert code == 1 and "--yes" in err and fake.deleted_connections == []
    code, out, err = run(capsys, "disconnect", "--tenant", org.tenant_id, "--yes")
    assert code == 0 and "disconnected: Demo Company (AU)" in out
    code, out, err = run(capsys, "disconnect", "--yes")  # one left: no --tenant needed
    assert code == 0 and "token set revoked" in out
    assert fake.deleted_connections == [org.connection_id, xpm.connection_id] and len(fake.revoked) == 1
    doc = json.loads(run(capsys, "status", "--json")[1])
    assert {c["status"] for c in doc["connections"]} == {"disconnected"}
    code, _, err = run(capsys, "disconnect", "--tenant", "nope", "--yes")
    assert code == 1 and "nope" in err


@pytest.mark.slow
def test_rotate_key_via_cli(env, fake, capsys, monkeypatch):
    connect(capsys, fake)
    old = env["XERO_ENCRYPTION_KEY"]
    new = secrets.token_hex(32)
    monkeypatch.setenv("XERO_ENCRYPTION_KEY", new)
    code, _, err = run(capsys, "rotate-key")  # the old key is not given: nothing changes
    assert code == 1 and "XERO_ENCRYPTION_KEY_PREVIOUS" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setenv("XERO_ENCRYPTION_KEY_PREVIOUS", old)
    code, out, _ = run(capsys, "rotate-key")
    assert code == 0 and "re-encrypted 1 vault file(s)" in out
    monkeypatch.delenv("XERO_ENCRYPTION_KEY_PREVIOUS")
    doc = json.loads(run(capsys, "status", "--json")[1])
    assert all(c["has_tokens"] and c["refresh_warning"] is None for c in doc["connections"])
    code, out, _ = run(capsys, "rotate-key")
    assert code == 0 and "re-encrypted 0" in out and "1 already current" in out


@pytest.mark.slow
def test_tampered_vault_shows_in_status_not_a_crash(env, fake, capsys):
    connect(capsys, fake)
    s = load_settings()
    (path,) = list(s.vault_dir.glob("grant-*.vault"))
    path.write_bytes(path.read_bytes()[:40])
    code, out, _ = run(capsys, "status", "--json")
    doc = json.loads(out)
    assert all("truncated" in c["refresh_warning"] for c in doc["connections"])
    # No token can be read: the tenants are unusable, whatever the connection row says (issue 14).
    assert code == 1 and doc["ok"] is False
    assert all(c["usable"] is False and "truncated" in c["problem"] for c in doc["connections"])
    code, text, _ = run(capsys, "status")
    assert code == 1 and text.count("UNUSABLE") == 2 and "cannot sync: Vault file" in text
    assert " connected  tenant" not in text


@pytest.mark.slow
def test_wrong_key_status_unusable_and_sync_one_sentence_per_step(env, fake, capsys, monkeypatch):
    connect(capsys, fake)
    monkeypatch.setenv("XERO_ENCRYPTION_KEY", secrets.token_hex(32))
    code, out, _ = run(capsys, "status", "--json")
    doc = json.loads(out)
    assert code == 1 and all(not c["usable"] and "different key" in c["problem"] for c in doc["connections"])
    # sync: the vault's sentence, no traceback (was: a 30-line traceback per step before it)
    code, out, err = run(capsys, "sync", "--all")
    assert "Traceback" not in err and "Traceback" not in out
    assert "XERO_ENCRYPTION_KEY_PREVIOUS" in out + err
    # a reconnect would change nothing here, so the connection is not marked needs_reconnect
    s = load_settings()
    assert {c["status"] for c in connections.list_connections(s)} == {"connected"}


@pytest.mark.slow
def test_loosened_vault_permissions_are_repaired_with_a_warning(env, fake, capsys, caplog):
    import stat as stat_

    connect(capsys, fake)
    s = load_settings()
    (path,) = list(s.vault_dir.glob("grant-*.vault"))
    os.chmod(path, 0o644)
    os.chmod(s.vault_dir, 0o755)
    with caplog.at_level("WARNING"):
        code, out, _ = run(capsys, "status", "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    assert stat_.S_IMODE(path.stat().st_mode) == 0o600
    assert stat_.S_IMODE(s.vault_dir.stat().st_mode) == 0o700
    text = caplog.text
    assert "made it 0600 again" in text and "made it 0700 again" in text and str(path) in text


@pytest.mark.slow
def test_process_exit_codes_and_single_json_document(env, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xero_core", "status", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["connections"] == []
    bad = {k: v for k, v in os.environ.items() if not k.startswith("XERO_")}
    bad.update(XERO_DATA_DIR=str(tmp_path / "d2"), XERO_ENV_FILE=os.devnull)
    proc = subprocess.run([sys.executable, "-m", "xero_core", "status"], cwd=ROOT, env=bad,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().count("\n") == 0 and "XERO_CLIENT_ID" in proc.stderr


def test_env_example_and_readme_cover_every_setting(tmp_path):
    import re

    names = set(re.findall(r"(?:XERO|SMTP)_[A-Z_]+|CHASE_FROM", (ROOT / "xero_core" / "settings.py").read_text()))
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in names:
        assert re.search(rf"^#?\s*{name}=", example, re.M), f"{name} missing from .env.example"
        assert f"| `{name}` |" in readme, f"{name} missing from README's Configuration table"
    # a copy of the example, with mock mode on, loads as it stands
    env_file = tmp_path / ".env"
    env_file.write_text(example.replace("XERO_MOCK_MODE=false", "XERO_MOCK_MODE=true")
                        .replace("XERO_DATA_DIR=data", f"XERO_DATA_DIR={tmp_path / 'data'}"))
    from dotenv import dotenv_values

    s = load_settings({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    assert s.mock_mode and s.redirect_uri == "http://localhost:8501/callback" and "offline_access" in s.scopes


def test_connect_opens_a_browser_only_when_there_is_one(env, capsys, monkeypatch):
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("CI", raising=False)
    code, out, err = run(capsys, "connect")
    assert code == 0 and opened == [out.strip().splitlines()[-1]] and "opened in your browser" in err
    for extra_env, argv in ((("CI", "true"),), ("connect",)), ((), ("connect", "--no-browser")), ((), ("connect", "--url")):
        for k, v in extra_env:
            monkeypatch.setenv(k, v)
        code, out, _ = run(capsys, *argv)
        assert code == 0 and out.strip().splitlines()[-1].startswith(env["XERO_AUTHORIZE_URL"])
    assert len(opened) == 1
