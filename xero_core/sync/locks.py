"""One sync per tenant at a time, across threads and processes (scheduler, app, CLI, webhooks)."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import filelock

from ..errors import LedgerlinkError
from ..settings import Settings


class SyncBusy(LedgerlinkError):
    """Another sync holds this tenant. `holder` says who (pid, trigger, since)."""

    def __init__(self, message: str, holder: dict[str, Any] | None = None):
        super().__init__(message)
        self.holder = holder or {}


def _lock_dir(settings: Settings) -> Path:
    d = Path(settings.data_dir) / "locks"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _safe(tenant_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in tenant_id)


@contextlib.contextmanager
def tenant_lock(settings: Settings, tenant_id: str, wait: float = 0, *, trigger: str = "manual") -> Iterator[None]:
    """Hold the tenant's sync lock; raises SyncBusy naming the holder when it is taken after `wait` s."""
    base = _lock_dir(settings) / f"sync-{_safe(tenant_id)}"
    lock = filelock.FileLock(str(base) + ".lock", is_singleton=False)
    holder_file = Path(str(base) + ".holder.json")
    try:
        lock.acquire(timeout=max(float(wait), 0.0))
    except filelock.Timeout:
        try:
            holder = json.loads(holder_file.read_text())
        except (OSError, ValueError):  # gone, unreadable or half-written by the holder: say "another process"
            holder = {}
        if not isinstance(holder, dict):
            holder = {}
        who = (f"process {holder.get('pid')} on {holder.get('host')} ({holder.get('trigger')} sync since "
               f"{holder.get('since')})") if holder else "another process"
        raise SyncBusy(f"another sync is running for tenant {tenant_id}: {who}", holder) from None
    try:
        holder_file.write_text(json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "trigger": trigger,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }))
        yield
    finally:
        with contextlib.suppress(OSError):
            holder_file.unlink()
        lock.release()
