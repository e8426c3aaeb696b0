"""SQLite files that several Ledgerlink processes share (rate limits, the webhook spool).

Two processes opening a fresh file at once race to switch it to WAL: the loser gets "database is
locked" at once, because SQLite's busy handler does not cover that switch. So the switch retries.
"""
from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path


def open_wal(path: Path | str, *, timeout: float, check_same_thread: bool = True) -> sqlite3.Connection:
    """An autocommit connection in WAL mode, waiting up to `timeout` seconds for other processes."""
    con = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=check_same_thread)
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            con.execute("PRAGMA journal_mode=WAL")
            return con
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                con.close()
                raise
            time.sleep(delay + random.random() * delay)  # real I/O contention, not a schedule
            delay = min(delay * 2, 0.1)
