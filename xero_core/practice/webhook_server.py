"""`POST /webhooks/xero` on the standard library's threading HTTP server.

Every response has an empty body and sets no cookie. Each request runs in its own thread and
touches only the spool (see spool.py), so a locked DuckDB or a slow Xero cannot hold up the answer;
the worker thread moves and processes events in the background.
"""
from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import httpx

from ..clock import SYSTEM_CLOCK, Clock
from ..settings import Settings
from .webhooks import MAX_BODY_BYTES, Worker, handle_webhook, refuse_oversized

log = logging.getLogger(__name__)

PATH = "/webhooks/xero"


def _handler_class(settings: Settings, worker: Worker | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "Ledgerlink"
        sys_version = ""
        protocol_version = "HTTP/1.1"
        timeout = 10  # a client that stalls mid-request does not pin a thread

        def _reply(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()

        def do_POST(self) -> None:  # noqa: N802
            raw_len = self.headers.get("Content-Length")
            try:
                length = int(raw_len) if raw_len is not None else -1
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                return self._reply(411)
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                return self._reply(refuse_oversized(settings))
            # Read the body even when refusing it, so the client is not reset mid-send.
            body = self.rfile.read(length)
            if self.path.split("?", 1)[0] != PATH:
                return self._reply(404)
            status = handle_webhook(
                settings, body, self.headers.get("x-xero-signature"),
                on_spooled=worker.wake if worker is not None else None,
            )
            self._reply(status)

        def do_GET(self) -> None:  # noqa: N802
            self.close_connection = True
            self._reply(405 if self.path.split("?", 1)[0] == PATH else 404)

        do_PUT = do_DELETE = do_PATCH = do_GET

        def log_message(self, fmt: str, *args: Any) -> None:  # never the body or headers
            log.debug("webhook %s - %s", self.address_string(), fmt % args)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class WebhookServer:
    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 0, *,
                 transport: httpx.BaseTransport | None = None, clock: Clock = SYSTEM_CLOCK, worker: bool = True,
                 worker_interval: float = 5.0) -> None:
        self.worker = Worker(settings, transport=transport, clock=clock, interval=worker_interval) if worker else None
        self.httpd = _Server((host, port), _handler_class(settings, self.worker))
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{host}:{self.port}{PATH}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="webhook-http", daemon=True)

    def start(self) -> "WebhookServer":
        if self._thread.is_alive():
            return self
        if self.worker is not None:
            self.worker.start()
            self.worker.wake()  # pick up anything spooled before a restart
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self.worker is not None:
            self.worker.stop()

    def __enter__(self) -> "WebhookServer":
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 0, **kw: Any) -> WebhookServer:
    """Start the receiver in background threads; `.url` is the full webhook URL, `.close()` stops it."""
    return WebhookServer(settings, host, port, **kw).start()
