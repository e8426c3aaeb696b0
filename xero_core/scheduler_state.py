"""The scheduler's state file, `<data_dir>/scheduler_state.json`: small JSON, replaced atomically,
read-modify-written under a file lock. Never DuckDB: the database may be held by a sync.

The loop (xero_core/scheduling.py) writes its heartbeat, next run and last result here; the admin
app and `scheduler.py --status` read it (`read_state`) and pause or resume (`set_paused`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .clock import SYSTEM_CLOCK, Clock
from .settings import Settings

log = logging.getLogger("xero_core.scheduling")

STATE_FILE = "scheduler_state.json"
STALE_AFTER_SECONDS = 120.0  # a heartbeat older than this means the scheduler is not running


def state_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / STATE_FILE


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(timezone.utc).isoformat(timespec="seconds") if dt else None


def _parse_iso(text: Any) -> datetime | None:
    if not text or not isinstance(text, str):
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        # A damaged file must not stop the scheduler or the app: start over, say so.
        log.warning("scheduler state %s is unreadable (%s); starting a fresh one", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".scheduler_state.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)  # owner-only, like every file in the data dir (issue 14)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_state_thread_lock = threading.Lock()


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[Path]:
    from filelock import FileLock

    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _state_thread_lock, FileLock(str(path) + ".lock", timeout=10):
        yield path


def update_state(settings: Settings, **changes: Any) -> dict[str, Any]:
    """Merge `changes` into the state file (the app's pause and the loop's heartbeat both write)."""
    with _locked(settings) as path:
        data = _load(path)
        data.update(changes)
        _write_atomic(path, data)
        return data


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        import psutil

        if not psutil.pid_exists(pid):
            return False
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except Exception:
        return False


def read_state(settings: Settings, *, now: datetime | None = None) -> dict[str, Any]:
    """The scheduler's state for the admin app. Never raises for a missing or damaged file.

    Keys: pid, host, started_at, heartbeat, next_run, next_daily_run, last_run, last_result,
    last_daily_run, current (the job and step under way, or None), paused, paused_at,
    sync_time, timezone, extra; derived: `running` (heartbeat fresher than
    STALE_AFTER_SECONDS and, on this host, the pid alive), `heartbeat_age_seconds`, and
    `status`: "never started" | "stopped" | "not responding" | "running" | "paused".
    """
    data = _load(state_path(settings))
    now = now or SYSTEM_CLOCK.now()
    hb = _parse_iso(data.get("heartbeat"))
    age = (now - hb).total_seconds() if hb else None
    fresh = age is not None and -STALE_AFTER_SECONDS < age <= STALE_AFTER_SECONDS
    same_host = data.get("host") in (None, socket.gethostname())
    pid = data.get("pid")
    alive = _pid_alive(pid) if same_host else fresh  # another host: only the heartbeat can tell
    running = bool(pid) and fresh and alive
    if not data:
        status = "never started"
    elif running:
        status = "paused" if data.get("paused") else "running"
    elif pid and alive:
        status = "not responding"
    else:
        status = "stopped"
    out = dict(data)
    out.setdefault("paused", False)
    out.update(running=running, heartbeat_age_seconds=age, status=status, state_file=str(state_path(settings)))
    return out


def set_paused(settings: Settings, paused: bool, *, by: str | None = None, clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """Pause or resume scheduled syncs. A running scheduler obeys at its next due job."""
    return update_state(
        settings, paused=bool(paused), paused_at=_iso(clock.now()) if paused else None, paused_by=by if paused else None
    )


