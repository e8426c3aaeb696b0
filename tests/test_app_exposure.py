"""The admin app refuses to start beyond loopback with no sign-in (no password, no OIDC).

The real check runs in a `streamlit run app.py` child bound to 0.0.0.0; the test only ever talks
to 127.0.0.1, and the child must exit before it serves anything there.
"""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app_support.auth import exposure_refusal, is_loopback

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("address,loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.0.2.10", False), ("", False), (None, False),
])
def test_which_addresses_are_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_a_host_name_whose_addresses_are_not_text_is_not_loopback(monkeypatch):
    """A Python built with --disable-ipv6 gives an IPv6 address as (int, bytes): refuse, not crash."""
    v4 = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))
    v6_raw = (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (int(socket.AF_INET6), bytes(16)))
    answers = {"only-v4": [v4], "raw-v6": [v4, v6_raw]}
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port: answers[host])
    assert is_loopback("only-v4") is True
    assert is_loopback("raw-v6") is False
    assert exposure_refusal("raw-v6", password_set=False, oidc=False) is not None


def test_refusal_only_without_any_sign_in_off_loopback():
    assert exposure_refusal("127.0.0.1", password_set=False, oidc=False) is None
    assert exposure_refusal("0.0.0.0", password_set=True, oidc=False) is None
    assert exposure_refusal("0.0.0.0", password_set=False, oidc=True) is None
    sentence = exposure_refusal("0.0.0.0", password_set=False, oidc=False)
    assert "XERO_ADMIN_PASSWORD" in sentence and "[auth]" in sentence and "0.0.0.0" in sentence
    assert "every network interface" in exposure_refusal(None, password_set=False, oidc=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("how", ["flag", "environment"])
@pytest.mark.slow
def test_streamlit_run_on_all_interfaces_without_sign_in_exits_before_serving(tmp_path, how):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XERO_", "STREAMLIT_"))}
    env.update({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
                "XERO_ENCRYPTION_KEY": secrets.token_hex(32), "XERO_ENV_FILE": os.devnull})
    args = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), f"--server.port={port}",
            "--server.headless=true", "--server.fileWatcherType=none", "--browser.gatherUsageStats=false"]
    if how == "flag":
        args.append("--server.address=0.0.0.0")
    else:
        env["STREAMLIT_SERVER_ADDRESS"] = "0.0.0.0"
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    served = False
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:  # loopback only: if the app ever answers here, it was serving everyone
                served = httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                pass
            if served:
                break
            time.sleep(0.1)  # polling a child process's port: there is no event to wait on
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=30)
    text = (out + err).decode(errors="replace")
    assert not served, "the app served requests while listening on 0.0.0.0 with no sign-in"
    assert proc.returncode == 2, text[-2000:]
    assert "Refusing to start" in text and "XERO_ADMIN_PASSWORD" in text and "[auth]" in text
    assert "Traceback" not in text and "Application startup complete" not in text
