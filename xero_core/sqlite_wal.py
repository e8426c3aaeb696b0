"""SQLite files that several Ledgerlink processes share (rate limits, the webhook spool, jobs).

Two processes opening a fresh file at once race to switch it to WAL: the loser gets "database is
locked" at once, because SQLite's busy handler does not cover that switch. So the switch retries.

The file is created owner-only (0600) in a private data dir before SQLite opens it (SQLite gives
its -wal and -shm files the database's mode), and a disk problem on opening (no folder, no
permission, read-only, full, a damaged file) is a `StorageError` naming the file and the fix.
Errors later on the connection: wrap the work in `storage.translated(path)`.

A file opened by a connection per use (jobs.sqlite) is also held by one idle connection
(`hold_open`): when the last connection to a WAL file closes, SQLite checkpoints it and deletes
its -wal and -shm files, and the next open builds them again; that was two thirds of each use's
cost (0.78 against 0.30 ms).
"""
from __future__ import annotations

import collections
import os
import random
import sqlite3
import threading
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


HELD_FILES = 4  # files held open at once; a process opens one or two (tests: a data dir each)
_held: collections.OrderedDict[str, sqlite3.Connection] = collections.OrderedDict()
_held_lock = threading.Lock()


def hold_open(path: Path | str) -> None:
    """Keep one idle connection on `path` (which `open_wal` has opened) for as long as it is among
    the last HELD_FILES files held; it is never used, only keeps the WAL index alive."""
    key = os.path.realpath(path)
    with _held_lock:
        if key in _held:
            _held.move_to_end(key)
            return
        con = sqlite3.connect(key, timeout=5, isolation_level=None, check_same_thread=False)
        try:
            con.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # maps the WAL index
        except sqlite3.Error:
            con.close()
            return  # only an optimisation: the caller's own open says what is wrong
        _held[key] = con
        while len(_held) > HELD_FILES:
            _, old = _held.popitem(last=False)
            old.close()


def release_held(path: Path | str) -> None:
    """Close the idle connection on `path`, if any (the file is about to be replaced)."""
    with _held_lock:
        con = _held.pop(os.path.realpath(path), None)
    if con is not None:
        con.close()
