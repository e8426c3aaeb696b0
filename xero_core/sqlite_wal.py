"""SQLite files that several Ledgerlink processes share (rate limits, the webhook spool, jobs).

Two processes opening a fresh file at once race to switch it to WAL: the loser gets "database is
locked" at once, because SQLite's busy handler does not cover that switch. So the switch retries.

The file is created owner-only (0600) in a private data dir before SQLite opens it (SQLite gives
its -wal and -shm files the database's mode), and a disk problem on opening (no folder, no
permission, read-only, full, a damaged file) is a `StorageError` naming the file and the fix.
Errors later on the connection: wrap the work in `storage.translated(path)`.
"""
from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

from . import storage


def open_wal(path: Path | str, *, timeout: float, check_same_thread: bool = True) -> sqlite3.Connection:
    """An autocommit connection in WAL mode, waiting up to `timeout` seconds for other processes."""
    path = Path(path)
    storage.secure_dir(path.parent)
    storage.create_private_file(path)
    try:
        con = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=check_same_thread)
    except sqlite3.Error as exc:
        raise storage.describe(exc, path) or exc from None
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            con.execute("PRAGMA journal_mode=WAL")
            return con
        except sqlite3.Error as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                con.close()
                raise storage.describe(exc, path) or exc from None
            time.sleep(delay + random.random() * delay)  # real I/O contention, not a schedule
            delay = min(delay * 2, 0.1)
