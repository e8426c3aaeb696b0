"""The admin app server's lifespan (app.py): the demo's services, then the webhook worker."""
from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator

from .demo_services import demo_services
from .webhook_route import lifespan as webhook_lifespan


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[dict]:
    with demo_services():  # first: the app URL and, in mock mode, the fake Xero the worker calls
        async with webhook_lifespan(app) as state:
            yield state
