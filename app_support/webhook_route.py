"""POST /webhooks/xero mounted on the admin app's own server (st.App routes).

Xero wants 200 with an empty body within 5 s for a good signature and 401 for a bad one, and
no cookies. Verification, spooling and processing are xero_core.practice.webhooks'; this only
hands it the raw bytes off the event loop (it does file and DuckDB I/O).
"""
from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from xero_core.settings import load_settings

from . import engine

log = logging.getLogger("ledgerlink.app.webhooks")
PATH = "/webhooks/xero"


def _handle(raw: bytes, signature: str | None) -> int:
    try:
        settings = load_settings()
        return int(engine.handle_webhook(settings, raw, signature))
    except engine.NotAvailable:
        log.error("webhook received but the receiver is not in this build")
        return 503
    except Exception:
        log.exception("webhook handling failed")
        return 500


async def receive(request: Request) -> Response:
    raw = await request.body()
    status = await run_in_threadpool(_handle, raw, request.headers.get("x-xero-signature"))
    return Response(status_code=status)


def routes() -> list[Route]:
    return [Route(PATH, receive, methods=["POST"])]
