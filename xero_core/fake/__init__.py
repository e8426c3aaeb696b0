"""Fake Xero: an independent, offline model of Xero (identity, Accounting, Files, Practice
Manager, webhooks, limits, faults) for mock mode, tests and workshops.

It never imports the client side of xero_core. See docs/internals.md for the interface.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import FakeXero
    from .clock import FakeClock
    from .server import FakeServer


def __getattr__(name: str) -> object:
    # Lazy, so `xero_core.fake.demo_app` (read by the product's settings) loads nothing else.
    if name == "FakeXero":
        from .app import FakeXero

        return FakeXero
    if name == "FakeClock":
        from .clock import FakeClock

        return FakeClock
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def serve(fake: FakeXero, host: str = "127.0.0.1", port: int = 0) -> FakeServer:
    from .server import serve as _serve  # here: lazy, as __getattr__ above

    return _serve(fake, host, port)


__all__ = ["FakeXero", "FakeClock", "serve"]
