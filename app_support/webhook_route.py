"""POST /webhooks/xero mounted on the admin app's own server (st.App routes), and its worker.

Xero wants 200 with an empty body within 5 s for a good signature and 401 for a bad one, and
no cookies. Verifying, spooling and processing are xero_core.practice.webhooks'; this hands it
the raw bytes off the event loop (the spool append waits for an fsync) and runs its background
worker (a mover that puts spooled deliveries into DuckDB within a moment, and a processor that
re-fetches from Xero) for as long as the server runs.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Any, AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from xero_core.practice.webhooks import MAX_BODY_BYTES, refuse_oversized
from xero_core.settings import load_settings

from . import engine, job_runner

log = logging.getLogger("ledgerlink.app.webhooks")
PATH = "/webhooks/xero"
_worker: dict[str, Any] = {}


def _handle(raw: bytes, signature: str | None) -> int:
    try:
        # The settings read at start-up (the key itself is looked up per delivery, from the vault
        # or XERO_WEBHOOK_KEY): nothing on the request path that can wait.
        settings = _worker.get("settings") or load_settings()
        worker = _worker.get("worker")
        return int(engine.handle_webhook(settings, raw, signature,
                                         on_spooled=worker.wake if worker is not None else None))
    except Exception:
        log.exception("webhook handling failed")
        return 503  # Xero retries a 5xx; the delivery is not lost


def _refuse_oversized() -> int:
    try:
        return refuse_oversized(load_settings())
    except Exception:
        log.exception("could not record an oversized webhook delivery")
        return 413


async def receive(request: Request) -> Response:
    # Refuse an oversized delivery before reading it: a declared length first, then while streaming.
    try:
        declared = int(request.headers.get("content-length") or 0)
    except ValueError:
        return Response(status_code=400)
    if declared > MAX_BODY_BYTES:
        return Response(status_code=await run_in_threadpool(_refuse_oversized))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return Response(status_code=await run_in_threadpool(_refuse_oversized))
        chunks.append(chunk)
    raw = b"".join(chunks)
    status = await run_in_threadpool(_handle, raw, request.headers.get("x-xero-signature"))
    return Response(status_code=status)


def routes() -> list[Route]:
    return [Route(PATH, receive, methods=["POST"])]


@contextlib.asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[dict]:
    try:
        settings = _worker["settings"] = load_settings()
        _worker["worker"] = engine.webhook_worker(settings).start()
    except Exception as exc:  # the admin app must start even if the worker cannot
        log.error("webhook worker not started: %s", exc)
    try:
        job_runner.start(load_settings())
    except Exception as exc:  # the pages still work; Sync now then waits for a scheduler
        log.error("the app's sync job runner did not start: %s", exc)
    try:
        yield {}
    finally:
        job_runner.stop()
        _worker.pop("settings", None)
        worker = _worker.pop("worker", None)
        if worker is not None:
            worker.stop()
