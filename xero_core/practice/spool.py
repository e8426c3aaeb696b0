"""The webhook spool: verified deliveries made durable before we answer Xero, without DuckDB.

DuckDB's file lock is per process and a long sync can hold it for minutes, while Xero wants a 200
within 5 seconds. So the receiver writes each verified delivery to its own small SQLite file (WAL,
synchronous=FULL: the commit is fsync'd before the 200 goes out) and a worker moves deliveries
into DuckDB `webhook_events` whenever DuckDB is free. The spool also keeps the receiver's
counters (last event, last verification failure, Intent to Receive) so status never needs DuckDB.
"""
from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
from pathlib import Path

from .. import storage
from ..sqlite_wal import open_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at REAL NOT NULL,
    body        BLOB NOT NULL,
    events      INTEGER NOT NULL,
    moved_at    REAL
);
CREATE INDEX IF NOT EXISTS deliveries_unmoved ON deliveries (moved_at) WHERE moved_at IS NULL;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
"""

KEEP_MOVED_SECONDS = 7 * 86400


def _locked(method):
    """Under the spool's lock; a disk problem (full, read-only, damaged file) is a StorageError."""
    @functools.wraps(method)
    def wrapper(self, *a, **kw):
        with self._mutex, storage.translated(self.path):
            return method(self, *a, **kw)

    return wrapper


def spool_path(settings) -> Path:
    return Path(settings.data_dir) / "webhook_spool.sqlite"


class Spool:
    """One per process and path, with one connection used under a lock.

    Threads take turns in Python rather than contending on SQLite's file lock: SQLite's busy
    handler can back off in whole seconds, which a burst of concurrent deliveries turns into
    multi-second answers. A commit here takes about a millisecond.
    """

    _instances: dict[str, "Spool"] = {}
    _lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = Path(path)
        self._mutex = threading.RLock()
        self._conn = open_wal(self.path, timeout=4.0, check_same_thread=False)
        with storage.translated(self.path):
            self._conn.execute("PRAGMA synchronous=FULL")  # fsync the WAL on every commit
            self._conn.execute("PRAGMA busy_timeout=4000")  # another process (rare): wait, briefly
            self._conn.executescript(SCHEMA)

    @classmethod
    def for_settings(cls, settings) -> "Spool":
        key = str(spool_path(settings).resolve())
        with cls._lock:
            sp = cls._instances.get(key)
            if sp is None or not sp.path.exists():
                sp = cls._instances[key] = cls(spool_path(settings))
            return sp

    def _con(self) -> sqlite3.Connection:
        return self._conn

    # -- receiver side ------------------------------------------------------------------
    @_locked
    def put(self, body: bytes, events: int, now: float | None = None) -> int:
        now = time.time() if now is None else now
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            cur = con.execute("INSERT INTO deliveries (received_at, body, events) VALUES (?, ?, ?)", (now, body, events))
            self._bump(con, "verified", now, "last_event_received_at")
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise
        return int(cur.lastrowid)

    @_locked
    def note(self, counter: str, stamp_key: str, extra: dict | None = None, now: float | None = None) -> None:
        """Count a verification failure or an Intent to Receive, with its time (best effort)."""
        now = time.time() if now is None else now
        con = self._con()
        try:
            con.execute("BEGIN IMMEDIATE")
            self._bump(con, counter, now, stamp_key)
            for k, v in (extra or {}).items():
                con.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (k, str(v)))
            con.execute("COMMIT")
        except sqlite3.Error:
            try:
                con.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    @staticmethod
    def _bump(con: sqlite3.Connection, counter: str, now: float, stamp_key: str) -> None:
        con.execute(
            "INSERT INTO meta (k, v) VALUES (?, '1') ON CONFLICT(k) DO UPDATE SET v = CAST(v AS INTEGER) + 1",
            ("count_" + counter,),
        )
        con.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (stamp_key, repr(now)))

    # -- worker side --------------------------------------------------------------------
    @_locked
    def unmoved(self, limit: int = 500) -> list[tuple[int, float, bytes]]:
        return self._con().execute(
            "SELECT id, received_at, body FROM deliveries WHERE moved_at IS NULL ORDER BY id LIMIT ?", (limit,)
        ).fetchall()

    @_locked
    def mark_moved(self, ids: list[int], now: float | None = None) -> None:
        if not ids:
            return
        now = time.time() if now is None else now
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany("UPDATE deliveries SET moved_at = ? WHERE id = ?", [(now, i) for i in ids])
            con.execute("DELETE FROM deliveries WHERE moved_at IS NOT NULL AND moved_at < ?", (now - KEEP_MOVED_SECONDS,))
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise

    @_locked
    def backlog(self) -> int:
        return int(self._con().execute("SELECT count(*) FROM deliveries WHERE moved_at IS NULL").fetchone()[0])

    @_locked
    def meta(self) -> dict[str, str]:
        return dict(self._con().execute("SELECT k, v FROM meta").fetchall())
