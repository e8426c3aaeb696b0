"""The fake over real loopback HTTP: consent in a browser's shoes, limits with real concurrency,
wire-level faults, the CLI process and state that survives a restart."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from fake_support import REDIRECT, authorize_url, connect, make_fake, pkce_pair, query_of
from xero_core.fake import serve
from xero_core.fake.consent import drive_consent
from xero_core.fake.server import ensure_running
from xero_core.settings import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake():
    return make_fake()


@pytest.fixture
def server(fake):
    with serve(fake, port=0) as s:
        yield s


def test_consent_page_and_full_flow_over_http(fake, server):
    with httpx.Client(base_url=server.url, timeout=10) as http:
        page = http.get(authorize_url(server.url))
        assert page.status_code == 200 and "<form" in page.text and 'type="checkbox"' in page.text
        tokens = connect(fake, client=http, base=server.url)
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        conns = http.get("/connections", headers=auth).json()
        org = next(c["tenantId"] for c in conns if c["tenantType"] == "ORGANISATION")
        practice = next(c["tenantId"] for c in conns if c["tenantType"] == "PRACTICEMANAGER")
        r = http.get("/api.xro/2.0/Organisation", headers={**auth, "xero-tenant-id": org, "Accept": "application/json"})
        assert r.status_code == 200 and r.json()["Id"] == r.headers["xero-correlation-id"]
        assert r.headers["x-minlimit-remaining"] == "59"
        up = http.post("/files.xro/1.0/Files", headers={**auth, "xero-tenant-id": org},
                       files={"body": ("scan.pdf", b"%PDF-1.4", "application/pdf")}, data={"name": "scan.pdf",
                                                                                          "filename": "scan.pdf"})
        assert up.status_code == 201 and up.json()["Size"] == 8
        xml = http.get("/practicemanager/3.0/job.api/current", headers={**auth, "xero-tenant-id": practice})
        assert xml.headers["content-type"] == "text/xml; charset=utf-8" and b"<Status>OK</Status>" in xml.content
        refreshed = http.post("/connect/token", data={"grant_type": "refresh_token",
                                                      "refresh_token": tokens["refresh_token"]},
                              auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
        assert refreshed.status_code == 200
    served = [(r.method, r.path) for r in fake.requests]
    assert ("POST", "/connect/token") in served and ("GET", "/api.xro/2.0/Organisation") in served


def test_deny_over_http(server):
    with httpx.Client(timeout=10) as http:
        url = drive_consent(http, authorize_url(server.url), allow=False)
    assert url.startswith(REDIRECT) and query_of(url)["error"] == "access_denied"


def test_concurrency_limit_on_the_loopback_server(fake, server):
    tokens = connect(fake)
    org = fake.orgs[0].tenant_id
    gate = threading.Event()
    fake.faults.add("slow", path="Folders", count=5, gate=gate, seconds=20)
    headers = {"Authorization": f"Bearer {tokens['access_token']}", "xero-tenant-id": org}
    statuses = []

    def call():
        with httpx.Client(timeout=30) as c:
            statuses.append(c.get(server.url + "/files.xro/1.0/Folders", headers=headers).status_code)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    try:
        assert fake.limits.wait_in_flight(5, timeout=20, tenant_id=org)
        with httpx.Client(timeout=10) as c:
            sixth = c.get(server.url + "/files.xro/1.0/Folders", headers=headers)
        assert sixth.status_code == 429 and sixth.headers["x-rate-limit-problem"] == "concurrent"
        assert sixth.content == b"" and sixth.headers["retry-after"]
    finally:
        gate.set()
        for t in threads:
            t.join(20)
    assert statuses == [200] * 5


def test_wire_faults_timeout_and_truncation(fake, server):
    tokens = connect(fake)
    org = fake.orgs[0].tenant_id
    headers = {"Authorization": f"Bearer {tokens['access_token']}", "xero-tenant-id": org,
               "Accept": "application/json"}
    fake.timeout_hold = 5
    fake.faults.add("timeout", path="Folders")
    with httpx.Client(timeout=httpx.Timeout(10, read=0.3)) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.get(server.url + "/files.xro/1.0/Folders", headers=headers)
    fake.faults.add("truncated", path="Organisation")
    with httpx.Client(timeout=10) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            c.get(server.url + "/api.xro/2.0/Organisation", headers=headers)
        assert c.get(server.url + "/api.xro/2.0/Organisation", headers=headers).status_code == 200


def _start_cli(state_dir: Path, *extra: str) -> tuple[subprocess.Popen, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "xero_core", "fake-xero", "--port", "0", "--invoices", "50",
                             "--state-dir", str(state_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    settings = {}
    while len(settings) < 6:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"fake-xero exited early: {proc.stderr.read()}")
        k, _, v = line.strip().partition("=")
        settings[k] = v
    return proc, settings


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    return err


@pytest.mark.slow
def test_cli_prints_settings_logs_requests_and_state_survives_restart(tmp_path, make_settings):
    state = tmp_path / "fake"
    proc, env = _start_cli(state, "--client-id", "WORKSHOPAPP", "--client-secret", "ws-secret",
                           "--redirect-uri", REDIRECT)
    try:
        assert set(env) == {"XERO_AUTHORIZE_URL", "XERO_TOKEN_URL", "XERO_REVOKE_URL", "XERO_API_URL",
                            "XERO_CLIENT_ID", "XERO_CLIENT_SECRET"}
        assert (env["XERO_CLIENT_ID"], env["XERO_CLIENT_SECRET"]) == ("WORKSHOPAPP", "ws-secret")
        s = make_settings(**env)  # the product accepts them as they are
        base = s.api_url
        verifier, challenge = pkce_pair()
        with httpx.Client(timeout=10) as http:
            url = drive_consent(http, authorize_url(base, client_id="WORKSHOPAPP", scope="offline_access files",
                                                    challenge=challenge))
            tok = http.post(s.token_url, data={"grant_type": "authorization_code", "code": query_of(url)["code"],
                                               "redirect_uri": REDIRECT, "code_verifier": verifier},
                            auth=("WORKSHOPAPP", "ws-secret")).json()
            org = http.get(base + "/connections", headers={"Authorization": "Bearer " + tok["access_token"]}).json()[0]
            up = http.post(base + "/files.xro/1.0/Files", files={"body": ("a.pdf", b"%PDF", "application/pdf")},
                           data={"name": "a.pdf", "filename": "a.pdf"},
                           headers={"Authorization": "Bearer " + tok["access_token"], "xero-tenant-id": org["tenantId"]})
            assert up.status_code == 201
    finally:
        err = _stop(proc)
    assert "POST /connect/token" in err and "GET /connections" in err and "-> 201" in err
    assert "ws-secret" not in err and tok["refresh_token"] not in err
    proc, env2 = _start_cli(state, "--client-id", "WORKSHOPAPP", "--client-secret", "ws-secret",
                            "--redirect-uri", REDIRECT)
    try:
        base = env2["XERO_API_URL"]
        with httpx.Client(timeout=10) as http:
            r = http.post(base + "/connect/token", data={"grant_type": "refresh_token",
                                                         "refresh_token": tok["refresh_token"]},
                          auth=("WORKSHOPAPP", "ws-secret"))
            assert r.status_code == 200, r.text  # the grant survived the restart
            h = {"Authorization": "Bearer " + r.json()["access_token"], "xero-tenant-id": org["tenantId"]}
            files = http.get(base + "/files.xro/1.0/Files", headers=h)
            assert files.json()["TotalCount"] == 1
            fid = files.json()["Items"][0]["Id"]
            assert http.get(base + f"/files.xro/1.0/Files/{fid}/Content", headers=h).content == b"%PDF"
    finally:
        _stop(proc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ensure_running_starts_one_detached_fake_and_reuses_it(tmp_path):
    port = _free_port()
    state = tmp_path / "fake"
    url = ensure_running(port, state, seed=7, extra_args=["--invoices", "50"])
    pid = int((state / "fake-xero.pid").read_text())
    try:
        assert url == f"http://127.0.0.1:{port}"
        assert httpx.get(url + "/_fake/health", timeout=5).json()["seed"] == 7
        assert ensure_running(port, state, seed=7) == url
        assert int((state / "fake-xero.pid").read_text()) == pid  # no second process
    finally:
        os.kill(pid, signal.SIGTERM)


def test_ensure_running_refuses_a_port_taken_by_something_else(tmp_path):
    other = make_fake()
    other_server = serve(other, port=0)
    other_server.fake = None  # break /_fake/health so the port looks foreign
    try:
        with pytest.raises(RuntimeError, match="not the fake Xero"):
            ensure_running(other_server.port, tmp_path)
    finally:
        other_server.close()


def test_admin_routes_over_http(fake, server):
    tokens = connect(fake)
    org = fake.orgs[0].tenant_id
    auth = {"Authorization": f"Bearer {tokens['access_token']}", "xero-tenant-id": org}
    with httpx.Client(base_url=server.url, timeout=10) as c:
        health = c.get("/_fake/health").json()
        assert {t["tenantType"] for t in health["tenants"]} == {"ORGANISATION", "PRACTICEMANAGER"}
        assert c.get("/files.xro/1.0/Folders", headers=auth).status_code == 200
        log = c.get("/_fake/requests").json()
        assert log["requests"][-1]["path"] == "/files.xro/1.0/Folders" and log["requests"][-1]["status"] == 200
        assert c.post("/_fake/limits", json={"tenant_id": org, "minute": 60}).json()["minute"] == 60
        assert c.get("/files.xro/1.0/Folders", headers=auth).status_code == 429
        before = c.get("/_fake/clock").json()["time"]
        assert c.post("/_fake/clock/advance", json={"seconds": 61}).status_code == 200
        assert c.get("/_fake/clock").json()["time"] - before == 61
        assert c.get("/files.xro/1.0/Folders", headers=auth).status_code == 200
        assert c.post("/_fake/tier", json={"tier": "starter"}).json() == {"tier": "starter"}
        assert c.post("/_fake/tier", json={"tier": "gold"}).status_code == 400
        c.post("/_fake/tier", json={"tier": "advanced"})
        assert c.post("/_fake/expire-tokens").status_code == 200
        assert c.get("/files.xro/1.0/Folders", headers=auth).status_code == 401
        assert c.post("/_fake/revoke-connection", json={"tenant_id": org}).json() == {"removed": 1}
        assert c.post("/_fake/reset").status_code == 200
        assert fake.requests == [] and fake.identity.grants == {}
        assert c.get("/_fake/nope").status_code == 404


def test_cli_options_build_the_fake_they_describe(tmp_path):
    import argparse

    from xero_core.commands import fake as cmd

    parser = argparse.ArgumentParser()
    cmd.register(parser.add_subparsers())
    args = parser.parse_args(["fake-xero", "--seed", "5", "--today", "2026-06-30", "--invoices", "50", "--tenants", "2",
                              "--tier", "core", "--legacy-scopes", "--redirect-uri", "http://localhost:9501/callback",
                              "--fault", "503:path=Invoices,count=2", "--webhook-url", "http://127.0.0.1:1/wh",
                              "--webhook-key", "k"])
    fake = cmd.build(args)
    assert fake.tier == "core" and len(fake.orgs) == 2 and fake.clock.today().isoformat() == "2026-06-30"
    assert fake.orgs[0].today.isoformat() == "2026-06-30"
    assert "http://localhost:9501/callback" in fake.primary_app.redirect_uris and fake.primary_app.legacy_scopes
    assert [(f.kind, f.path, f.count) for f in fake.faults.list()] == [("503", "Invoices", 2)]
    assert (fake.webhook_url, fake.webhook_key) == ("http://127.0.0.1:1/wh", "k")
    with pytest.raises(SystemExit):
        parser.parse_args(["fake-xero", "--today", "26/11/2026"])
    with pytest.raises(ValueError, match="redirect-uri"):
        cmd.build(parser.parse_args(["fake-xero", "--client-id", "X"]))
