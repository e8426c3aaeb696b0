"""Fake Xero: an independent, offline model of Xero (identity, Accounting, Files, Practice
Manager, webhooks, limits, faults) for mock mode, tests and workshops.

It never imports the client side of xero_core. See docs/internals.md for the interface.
"""
from .app import FakeXero
from .clock import FakeClock


def serve(fake, host: str = "127.0.0.1", port: int = 0):
    from .server import serve as _serve

    return _serve(fake, host, port)


__all__ = ["FakeXero", "FakeClock", "serve"]
