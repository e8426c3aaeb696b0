"""Xero's rate limits (xero-notes §2): per tenant per app 60/minute, 5,000/day, 5 in flight;
10,000/minute per app across tenants. Fixed windows that start at a tenant's first call, so
tenants reset at different times, as Xero's do.

Every admitted tenant call counts, whatever its answer (4xx too); a refused call (429) does not.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

from .clock import Clock

MINUTE = 60.0
DAY = 86400.0


@dataclass
class Window:
    length: float
    start: float = -1e18
    used: int = 0

    def roll(self, now: float) -> None:
        if now - self.start >= self.length:
            self.start, self.used = now, 0

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.start + self.length - now))


@dataclass
class Decision:
    ok: bool
    headers: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # minute | day | appminute | concurrent
    retry_after: int | None = None


class Limits:
    def __init__(self, clock: Clock, per_minute: int = 60, per_day: int = 5000, concurrent: int = 5,
                 app_per_minute: int = 10000):
        self.clock = clock
        self.per_minute, self.per_day, self.concurrent, self.app_per_minute = per_minute, per_day, concurrent, app_per_minute
        self._minute: dict[tuple[str, str], Window] = {}
        self._day: dict[tuple[str, str], Window] = {}
        self._app: dict[str, Window] = {}
        self._in_flight: dict[tuple[str, str], int] = {}
        self._cond = threading.Condition()

    def _windows(self, client_id: str, tenant_id: str, now: float) -> tuple[Window, Window, Window]:
        key = (client_id, tenant_id)
        m = self._minute.setdefault(key, Window(MINUTE))
        d = self._day.setdefault(key, Window(DAY))
        a = self._app.setdefault(client_id, Window(MINUTE))
        for w in (m, d, a):
            w.roll(now)
        return m, d, a

    def _headers(self, m: Window | None, d: Window | None, a: Window) -> dict[str, str]:
        h = {}
        if d is not None:
            h["X-DayLimit-Remaining"] = str(max(0, self.per_day - d.used))
        if m is not None:
            h["X-MinLimit-Remaining"] = str(max(0, self.per_minute - m.used))
        h["X-AppMinLimit-Remaining"] = str(max(0, self.app_per_minute - a.used))
        return h

    def admit(self, client_id: str, tenant_id: str) -> Decision:
        """Count one tenant-scoped call, or refuse it. An admitted call must be `release`d."""
        now = self.clock.time()
        with self._cond:
            m, d, a = self._windows(client_id, tenant_id, now)
            problem, retry = None, None
            if d.used >= self.per_day:
                problem, retry = "day", d.retry_after(now)
            elif m.used >= self.per_minute:
                problem, retry = "minute", m.retry_after(now)
            elif a.used >= self.app_per_minute:
                problem, retry = "appminute", a.retry_after(now)
            elif self._in_flight.get((client_id, tenant_id), 0) >= self.concurrent:
                problem, retry = "concurrent", 1
            if problem:
                h = self._headers(m, d, a)
                h.update({"Retry-After": str(retry), "X-Rate-Limit-Problem": problem})
                return Decision(False, h, problem, retry)
            m.used += 1
            d.used += 1
            a.used += 1
            self._in_flight[(client_id, tenant_id)] = self._in_flight.get((client_id, tenant_id), 0) + 1
            self._cond.notify_all()
            return Decision(True, self._headers(m, d, a))

    def release(self, client_id: str, tenant_id: str) -> None:
        with self._cond:
            key = (client_id, tenant_id)
            self._in_flight[key] = max(0, self._in_flight.get(key, 0) - 1)
            self._cond.notify_all()

    def admit_app(self, client_id: str) -> Decision:
        """A call that is not tenant-scoped (/connections) counts only against the app."""
        now = self.clock.time()
        with self._cond:
            a = self._app.setdefault(client_id, Window(MINUTE))
            a.roll(now)
            if a.used >= self.app_per_minute:
                h = self._headers(None, None, a)
                retry = a.retry_after(now)
                h.update({"Retry-After": str(retry), "X-Rate-Limit-Problem": "appminute"})
                return Decision(False, h, "appminute", retry)
            a.used += 1
            return Decision(True, self._headers(None, None, a))

    def app_headers(self, client_id: str) -> dict[str, str]:
        with self._cond:
            a = self._app.setdefault(client_id, Window(MINUTE))
            a.roll(self.clock.time())
            return self._headers(None, None, a)

    def in_flight(self, client_id: str | None = None, tenant_id: str | None = None) -> int:
        with self._cond:
            return sum(n for (c, t), n in self._in_flight.items()
                       if (client_id is None or c == client_id) and (tenant_id is None or t == tenant_id))

    def wait_in_flight(self, n: int, timeout: float = 10.0, tenant_id: str | None = None) -> bool:
        """Block until at least n calls are being served (tests use it instead of sleeping)."""
        with self._cond:
            return self._cond.wait_for(lambda: sum(v for (c, t), v in self._in_flight.items()
                                                   if tenant_id is None or t == tenant_id) >= n, timeout)

    def used(self, client_id: str, tenant_id: str) -> dict[str, int]:
        with self._cond:
            m, d, a = self._windows(client_id, tenant_id, self.clock.time())
            return {"minute": m.used, "day": d.used, "app_minute": a.used}

    def set_used(self, client_id: str, tenant_id: str, *, day: int | None = None, minute: int | None = None) -> None:
        """Jump a tenant's counters (tests and workshops: "you have 10 calls left today")."""
        with self._cond:
            m, d, _ = self._windows(client_id, tenant_id, self.clock.time())
            if day is not None:
                d.used = day
            if minute is not None:
                m.used = minute

    def reset(self) -> None:
        with self._cond:
            self._minute.clear()
            self._day.clear()
            self._app.clear()

    def dump(self) -> dict[str, Any]:
        with self._cond:
            return {"day": [[c, t, w.start, w.used] for (c, t), w in self._day.items()]}

    def load(self, data: dict[str, Any]) -> None:
        with self._cond:
            for c, t, start, used in data.get("day", []):
                self._day[(c, t)] = Window(DAY, start, used)
