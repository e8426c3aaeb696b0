"""The fake on a loopback port: a ThreadingHTTPServer adapter over `FakeXero.handle`.

Used for the browser OAuth flow, webhooks, workshops and the demo (`ensure_running` starts one
detached process that the app, CLI and scheduler share). Faults that only make sense on a wire
are played out here: a timeout holds the connection and drops it unanswered; a truncated body is
sent with the full Content-Length and the connection closed mid-way.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from .app import FakeXero

log = logging.getLogger("xero_core.fake.server")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    # Headers and body go out in separate writes: without this, Nagle + delayed ACK add ~40 ms a call.
    disable_nagle_algorithm = True
    owner: "FakeServer"  # set on the subclass per server

    def log_message(self, fmt: str, *args: Any) -> None:  # the fake logs served requests itself
        log.debug("%s " + fmt, self.address_string(), *args)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _serve(self) -> None:
        fake = self.owner.fake
        body = self._read_body()
        addr = self.server.server_address
        host = self.headers.get("Host") or (f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr))
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in ("content-length", "transfer-encoding")]
        req = httpx.Request(self.command, f"http://{host}{self.path}", headers=headers, content=body)
        try:
            resp = fake.handle(req)
        except httpx.TimeoutException as exc:
            # Say nothing; drop the connection when the hold ends (or the server closes).
            self.owner.closing.wait(getattr(exc, "fake_hold", None) or fake.timeout_hold)
            self.close_connection = True
            return
        except Exception:
            log.exception("fake Xero crashed on %s %s", self.command, self.path)
            self.send_error(500)
            return
        content = resp.content
        declared = resp.extensions.get("fake_declared_length")
        self.send_response_only(resp.status_code)
        self.send_header("Date", formatdate(usegmt=True))
        for k, v in resp.headers.multi_items():
            if k.lower() in ("content-length", "transfer-encoding", "connection", "date"):
                continue
            self.send_header(k, v)
        self.send_header("Content-Length", str(declared if declared is not None else len(content)))
        if declared is not None:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve


class FakeServer:
    def __init__(self, fake: FakeXero, host: str = "127.0.0.1", port: int = 0) -> None:
        self.fake = fake
        self.closing = threading.Event()
        handler = type("FakeXeroHandler", (_Handler,), {"owner": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host, self.port = host, self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-xero:{self.port}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def __enter__(self) -> "FakeServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(fake: FakeXero, host: str = "127.0.0.1", port: int = 0) -> FakeServer:
    return FakeServer(fake, host, port)


def _probe(url: str) -> str:
    """'fake' if our fake answers there, 'other' if something else does, 'none' if nothing."""
    try:
        r = httpx.get(url + "/_fake/health", timeout=1.0)
    except httpx.HTTPError:
        return "none"
    try:
        return "fake" if r.status_code == 200 and r.json().get("ok") is True else "other"
    except ValueError:
        return "other"


def ensure_running(port: int, state_dir: Path | str, seed: int = 42, *, host: str = "127.0.0.1", timeout: float = 60.0,
                   extra_args: list[str] | None = None) -> str:
    """The URL of a fake on host:port, starting a detached `python -m xero_core fake-xero` if none
    answers. Its state lives in state_dir, so it survives restarts; its log is state_dir/fake-xero.log."""
    return start_fake(port, state_dir, seed, host=host, timeout=timeout, extra_args=extra_args).url


class FakeProcess:
    """A fake found on a port, or one this process started (`started`: then `stop()` ends it)."""

    def __init__(self, url: str, proc: subprocess.Popen[bytes] | None = None) -> None:
        self.url, self.proc = url, proc

    @property
    def started(self) -> bool:
        return self.proc is not None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)


def start_fake(port: int, state_dir: Path | str, seed: int = 42, *, host: str = "127.0.0.1", timeout: float = 60.0,
               extra_args: list[str] | None = None, owned: bool = False) -> FakeProcess:
    """The fake on host:port: the one already answering there, or a new `python -m xero_core fake-xero`.

    A new one is detached (its own session: it outlives this process) unless `owned`: then it stays
    in this process group (a terminal's Ctrl-C reaches it too), exits by itself when this process
    dies (`--exit-with`), and `stop()` ends it."""
    url = f"http://{host}:{port}"
    found = _probe(url)
    if found == "fake":
        return FakeProcess(url)
    if found == "other":
        raise RuntimeError(f"port {port} on {host} is taken by something that is not the fake Xero: "
                           f"stop it or set XERO_FAKE_PORT to a free port")
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    logfile = state_dir / "fake-xero.log"
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "xero_core", "fake-xero", "--host", host, "--port", str(port),
           "--state-dir", str(state_dir), "--seed", str(seed), *(extra_args or [])]
    if owned:
        cmd += ["--exit-with", str(os.getpid())]
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                start_new_session=not owned, close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _probe(url) == "fake":
            return FakeProcess(url, proc if owned else None)
        if proc.poll() is not None and _probe(url) != "fake":
            tail = logfile.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"the fake Xero exited with code {proc.returncode}; its log {logfile} ends:\n{tail}")
        time.sleep(0.1)  # waiting for another process to come up: there is no event to wait on
    proc.terminate()
    raise RuntimeError(f"the fake Xero did not answer on {url} within {timeout:.0f} s; see {logfile}")
