"""Workshop reset: back to the starting state in seconds.

Fresh fake org (the fake's own /_fake/reset), no connection, empty tables, empty vault, and the
side stores emptied too (webhook spool and its counters, our API-budget counts, stored document
files, the scheduler's last run). Only in mock mode: it deletes data, and with real Xero there is nothing to "reset" to.
"""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import httpx

from xero_core import db
from xero_core.errors import LedgerlinkError
from xero_core.schema import TABLES
from xero_core.settings import Settings


def reset_demo(settings: Settings, *, transport: httpx.BaseTransport | None = None) -> None:
    if not settings.mock_mode:
        raise LedgerlinkError(
            "Reset demo only runs in mock mode (XERO_MOCK_MODE=true): it would delete real data."
        )
    try:
        with httpx.Client(transport=transport, timeout=10) as http:
            r = http.post(settings.api_url.rstrip("/") + "/_fake/reset")
    except httpx.HTTPError:
        raise LedgerlinkError(
            f"The fake Xero at {settings.api_url} did not answer, so nothing was reset. "
            "Start it with `bash scripts/demo` (or `python -m xero_core fake-xero`) and try again."
        ) from None
    if r.status_code >= 400:
        raise LedgerlinkError(
            f"The fake Xero at {settings.api_url} refused the reset (HTTP {r.status_code}); nothing else "
            "was reset. Restart the demo with `bash scripts/demo`."
        )
    with db.connect(settings.db_path) as con, db.transaction(con):
        for table in TABLES:
            con.execute(f'DELETE FROM "{table}"')
    from xero_core.practice.documents import docs_dir
    from xero_core.practice.spool import spool_path
    from xero_core.ratelimit import db_path as ratelimit_path

    from xero_core.settings import demo_mail_dir

    for folder in (settings.vault_dir, docs_dir(settings), demo_mail_dir(settings.data_dir)):  # + the caught mail
        _empty_folder(folder)
    from xero_core.practice.spool import Spool

    Spool.for_settings(settings).flush_notes()  # counters it holds in memory, or they come back after the reset
    for store in (spool_path(settings), ratelimit_path(settings)):
        _empty_sqlite(store)
    _forget_scheduler_runs(settings)
    from xero_core import snapshot

    snapshot.publish_if_changed(settings)  # notebooks see the reset too


# What the scheduler remembers about runs of the data just deleted; its pid, heartbeat, pause and
# next run stay (a scheduler may be running and keeps running).
SCHEDULER_RUN_KEYS = ("last_run", "last_result", "last_skipped", "last_daily_run", "last_extra_run", "current")


def _forget_scheduler_runs(settings: Settings) -> None:
    from xero_core import scheduling

    if scheduling.state_path(settings).exists():
        scheduling.update_state(settings, **{k: None for k in SCHEDULER_RUN_KEYS})


def _empty_folder(folder: Path) -> None:
    if folder.exists():
        for child in folder.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()


def _empty_sqlite(path: Path) -> None:
    """Delete every row but keep the file: other processes may hold it open (WAL mode)."""
    if not path.exists():
        return
    con = sqlite3.connect(path, timeout=5.0)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND name NOT LIKE 'sqlite_%'")]
        with con:
            for table in tables:
                con.execute(f'DELETE FROM "{table}"')
    finally:
        con.close()
