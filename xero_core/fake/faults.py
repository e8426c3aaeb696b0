"""Injected faults: what real Xero does on a bad day, on demand.

Kinds (each served as Xero serves it):
- ``429``        a rate-limit storm: empty body, Retry-After, X-Rate-Limit-Problem (``problem=``).
- ``500``/``503`` a server error; 503 is the gateway's problem JSON, Detail ServiceNotAvailable.
- ``slow``       the answer comes ``seconds`` late (through the fake's clock), or waits on ``gate``.
- ``timeout``    no answer: in-process `handle` raises httpx.ReadTimeout; the loopback server holds
                 the connection and then drops it.
- ``truncated``  the body is cut short (the server also declares the full Content-Length).
- ``malformed``  200 with a JSON content type and a body that is not JSON (a proxy's HTML page).
- ``expired_token`` the caller's access token expires now (mid-sync): 401 TokenExpired.
- ``revoked``    the tenant's connection is removed (the user disconnected in Xero): 403 from then on.
- ``invalid_grant`` the token endpoint refuses the next refresh.

A fault matches requests whose path contains ``path`` (case-insensitive) and, if given, whose
tenant is ``tenant_id``; without ``path`` it matches API calls only, not identity endpoints.
It skips the first ``after`` matches and then applies ``count`` times (``count=None``: forever).
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx

KINDS = ("429", "500", "503", "slow", "timeout", "truncated", "malformed", "expired_token", "revoked", "invalid_grant")
ALIASES = {"rate_limit": "429", "storm": "429", "ratelimit": "429", "server_error": "500", "unavailable": "503",
           "expired": "expired_token", "revoke": "revoked", "delay": "slow"}
_ids = itertools.count(1)


class InjectedTimeout(httpx.ReadTimeout):
    """The ``timeout`` fault raised in-process; `fake_hold` is how long the loopback server keeps the
    connection silent before dropping it (None: the server's default)."""

    def __init__(self, message: str, *, request: httpx.Request, fake_hold: float | None) -> None:
        super().__init__(message, request=request)
        self.fake_hold = fake_hold


@dataclass
class Fault:
    kind: str
    path: str | None = None
    tenant_id: str | None = None
    count: int | None = 1
    after: int = 0
    seconds: float | None = None
    problem: str = "minute"
    gate: threading.Event | None = field(default=None, repr=False, compare=False)
    id: int = field(default_factory=lambda: next(_ids))
    seen: int = 0
    applied: int = 0

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "path": self.path, "tenant_id": self.tenant_id, "count": self.count,
                "after": self.after, "seconds": self.seconds, "problem": self.problem, "applied": self.applied}


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, kind: str, path: str | None = None, tenant_id: str | None = None, count: int | None = 1,
            *, after: int = 0, seconds: float | None = None, problem: str = "minute",
            gate: threading.Event | None = None) -> Fault:
        kind = ALIASES.get(str(kind).lower(), str(kind).lower())
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}: use one of {', '.join(KINDS)}")
        if problem not in ("minute", "day", "appminute", "concurrent"):
            raise ValueError(f"unknown X-Rate-Limit-Problem {problem!r}: use minute, day, appminute or concurrent")
        if count is not None and count <= 0:
            count = None
        f = Fault(kind, path, tenant_id, count, after, seconds, problem, gate)
        with self._lock:
            self._faults.append(f)
        return f

    def take(self, path: str, tenant_id: str | None, *, api: bool, kinds: tuple[str, ...] = KINDS) -> list[Fault]:
        """The faults that apply to this request (each consumed once)."""
        p = path.lower()
        hits = []
        with self._lock:
            for f in self._faults:
                if f.kind not in kinds:
                    continue
                if f.path is None and not api:
                    continue
                if f.path is not None and f.path.lower() not in p:
                    continue
                if f.tenant_id is not None and f.tenant_id != tenant_id:
                    continue
                if f.count is not None and f.applied >= f.count:
                    continue
                f.seen += 1
                if f.seen <= f.after:
                    continue
                f.applied += 1
                hits.append(f)
        return hits

    def remove(self, fault_id: int) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if f.id != fault_id]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def __len__(self) -> int:
        return len(self.list())


def parse_spec(spec: str) -> dict[str, Any]:
    """``KIND[:key=value,...]`` (CLI --fault and /_fake/faults), e.g. ``503:path=Invoices,count=2``,
    ``429:count=10,seconds=30``, ``slow:seconds=5``, ``timeout:path=Journals,after=3``."""
    kind, _, rest = spec.strip().partition(":")
    out: dict[str, Any] = {"kind": kind}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"fault option {item!r} in {spec!r} must be key=value (e.g. count=3)")
        key = {"tenant": "tenant_id"}.get(key, key)
        if key in ("count", "after"):
            out[key] = None if value in ("inf", "forever", "0") and key == "count" else int(value)
        elif key in ("seconds", "retry_after"):
            out["seconds"] = float(value)
        elif key in ("path", "tenant_id", "problem"):
            out[key] = value
        else:
            raise ValueError(f"unknown fault option {key!r} in {spec!r}: use path, tenant, count, after, seconds, problem")
    return out
