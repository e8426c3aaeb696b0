"""The webhook spool: verified deliveries made durable before we answer Xero, without DuckDB.

DuckDB's file lock is per process and a long sync can hold it for minutes, while Xero wants a 200
within 5 seconds. So the receiver writes each verified delivery to its own small SQLite file (WAL,
synchronous=FULL: the commit is fsync'd before the 200 goes out; concurrent deliveries share one
commit, see `Spool.put`) and a worker moves deliveries into DuckDB `webhook_events` whenever DuckDB
is free. The spool also keeps the receiver's
counters (last event, last verification failure, Intent to Receive) so status never needs DuckDB.
"""
from __future__ import annotations

import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from .. import storage
from ..settings import Settings
from ..sqlite_wal import open_wal

_P = ParamSpec("_P")
_R = TypeVar("_R")

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
PRUNE_EVERY_SECONDS = 600  # the 7-day clean-up scans the table: at most every 10 minutes, off the request path
WAL_BACKSTOP_PAGES = 20000  # the worker checkpoints after each move; this only bounds a WAL nobody moves


def _locked(method: Callable[Concatenate[Spool, _P], _R]) -> Callable[Concatenate[Spool, _P], _R]:
    """Under the spool's lock; a disk problem (full, read-only, damaged file) is a StorageError."""
    @functools.wraps(method)
    def wrapper(self: Spool, /, *a: _P.args, **kw: _P.kwargs) -> _R:
        with self._mutex, storage.translated(self.path):
            return method(self, *a, **kw)

    return wrapper


def spool_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / "webhook_spool.sqlite"


class _Pending:
    __slots__ = ("body", "now", "id", "error", "done")

    def __init__(self, body: bytes, now: float) -> None:
        self.body, self.now = body, now
        self.id: int | None = None
        self.error: BaseException | None = None
        self.done = False

    def result(self) -> int:
        """Its id once its commit is done, or the commit's error."""
        if self.error is not None:
            raise self.error
        if self.id is None:  # pragma: no cover - a commit without error gave every row its id
            raise RuntimeError("a spooled delivery was committed without an id")
        return self.id


class Spool:
    """One per process and path, with one writing connection used under a lock.

    Threads take turns in Python rather than contending on SQLite's file lock: SQLite's busy
    handler can back off in whole seconds, which a burst of concurrent deliveries turns into
    multi-second answers.

    `put` is a group commit: deliveries that arrive while a commit is being fsync'd queue up, and
    the next thread to find no commit in flight writes the whole queue in one transaction, one
    fsync, for everyone in it. So a burst of N senders costs about two fsyncs of waiting each, not
    N. Counters (`note`: rejected, Intent to Receive…) need no fsync of their own: they are kept in
    memory and written with the next commit or the worker's next `flush_notes`.
    """

    _instances: dict[str, "Spool"] = {}
    _resolved: dict[str, str] = {}
    _lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._mutex = threading.RLock()
        self._conn = open_wal(self.path, timeout=4.0, check_same_thread=False)
        with storage.translated(self.path):
            self._conn.execute("PRAGMA synchronous=FULL")  # fsync the WAL on every commit
            self._conn.execute("PRAGMA busy_timeout=4000")  # another process (rare): wait, briefly
            self._conn.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
            self._conn.executescript(SCHEMA)
        self._reader: sqlite3.Connection | None = None  # the worker's reads and checkpoints
        self._rlock = threading.Lock()
        self._gc = threading.Condition(threading.Lock())
        self._queue: list[_Pending] = []
        self._committing = False
        self._notes: dict[str, int] = {}
        self._stamps: dict[str, str] = {}
        self._pruned_at = 0.0
        self.commits = 0  # transactions that wrote deliveries (the group commit's effect, for tests)

    @classmethod
    def for_settings(cls, settings: Settings) -> Spool:
        path = str(spool_path(settings))
        key = cls._resolved.get(path)
        if key is None:  # one instance per file however it is spelt (its notes live in memory)
            key = cls._resolved[path] = str(Path(path).resolve())
        with cls._lock:
            sp = cls._instances.get(key)
            if sp is None or not sp.path.exists():
                sp = cls._instances[key] = cls(spool_path(settings))
            return sp

    def _con(self) -> sqlite3.Connection:
        return self._conn

    # -- receiver side ------------------------------------------------------------------
    def put(self, body: bytes, events: int = -1, now: float | None = None) -> int:
        """Make one delivery durable (fsync'd) and return its id; `events` is unused (-1: counted
        when moved), kept for callers of the old signature."""
        mine = _Pending(body, time.time() if now is None else now)
        with self._gc:
            self._queue.append(mine)
            while not mine.done:
                if not self._committing:
                    self._committing = True
                    batch, self._queue = self._queue, []
                    break
                self._gc.wait()
            else:
                return mine.result()
        try:  # this thread leads: one transaction for everyone queued
            self._write(batch)
        except BaseException as exc:
            for p in batch:
                p.error = exc
        finally:
            with self._gc:
                for p in batch:
                    p.done = True
                self._committing = False
                self._gc.notify_all()
        return mine.result()

    @_locked
    def _write(self, batch: list[_Pending]) -> None:
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            for p in batch:
                p.id = con.execute("INSERT INTO deliveries (received_at, body, events) VALUES (?, ?, -1)",
                                   (p.now, p.body)).lastrowid
            self._bump(con, "verified", len(batch), {"last_event_received_at": repr(max(p.now for p in batch))})
            self._write_notes(con)
            con.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise
        self.commits += 1

    def note(self, counter: str, stamp_key: str, extra: dict[str, object] | None = None, now: float | None = None) -> None:
        """Count a verification failure, an Intent to Receive, a malformed delivery, with its time.

        In memory only (no fsync on the request path): written with the next commit, or by the
        worker's `flush_notes`, and always before `meta()` answers in this process."""
        now = time.time() if now is None else now
        with self._gc:
            self._notes[counter] = self._notes.get(counter, 0) + 1
            self._stamps[stamp_key] = repr(now)
            for k, v in (extra or {}).items():
                self._stamps[k] = str(v)

    def _take_notes(self) -> tuple[dict[str, int], dict[str, str]]:
        with self._gc:
            notes, stamps = self._notes, self._stamps
            self._notes, self._stamps = {}, {}
        return notes, stamps

    def _write_notes(self, con: sqlite3.Connection) -> None:
        notes, stamps = self._take_notes()
        try:
            for counter, n in notes.items():
                self._bump(con, counter, n, {})
            for k, v in stamps.items():
                con.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (k, v))
        except BaseException:
            with self._gc:  # give them back: the caller rolls back
                for counter, n in notes.items():
                    self._notes[counter] = self._notes.get(counter, 0) + n
                for k, v in stamps.items():
                    self._stamps.setdefault(k, v)
            raise

    @_locked
    def flush_notes(self) -> None:
        """Write pending counters (best effort: they are statistics, not deliveries)."""
        with self._gc:
            if not self._notes and not self._stamps:
                return
        con = self._con()
        try:
            con.execute("PRAGMA synchronous=NORMAL")  # statistics: no fsync of their own
            con.execute("BEGIN IMMEDIATE")
            self._write_notes(con)
            con.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
        finally:
            with contextlib.suppress(sqlite3.Error):
                con.execute("PRAGMA synchronous=FULL")

    @staticmethod
    def _bump(con: sqlite3.Connection, counter: str, n: int, stamps: dict[str, str]) -> None:
        con.execute(
            "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = CAST(v AS INTEGER) + excluded.v",
            ("count_" + counter, n),
        )
        for k, v in stamps.items():
            con.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (k, v))

    # -- worker side --------------------------------------------------------------------
    def _read(self) -> sqlite3.Connection:
        """A second connection for the worker's reads: WAL readers never wait for the writer."""
        if self._reader is None:
            self._reader = open_wal(self.path, timeout=4.0, check_same_thread=False)
            self._reader.execute("PRAGMA busy_timeout=4000")
        return self._reader

    def unmoved(self, limit: int = 500) -> list[tuple[int, float, bytes]]:
        with self._rlock, storage.translated(self.path):
            return self._read().execute(
                "SELECT id, received_at, body FROM deliveries WHERE moved_at IS NULL ORDER BY id LIMIT ?", (limit,)
            ).fetchall()

    @_locked
    def mark_moved(self, ids: list[int], now: float | None = None) -> None:
        if not ids:
            return
        now = time.time() if now is None else now
        con = self._con()
        # No fsync of its own (WAL + NORMAL: durable at the next fsync'd commit or checkpoint): a
        # mark lost to a power cut only moves a delivery again, which webhook_events absorbs.
        con.execute("PRAGMA synchronous=NORMAL")
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany("UPDATE deliveries SET moved_at = ? WHERE id = ?", [(now, i) for i in ids])
                if now - self._pruned_at >= PRUNE_EVERY_SECONDS:
                    con.execute("DELETE FROM deliveries WHERE moved_at IS NOT NULL AND moved_at < ?",
                                (now - KEEP_MOVED_SECONDS,))
                self._write_notes(con)
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise
        finally:
            with contextlib.suppress(sqlite3.Error):
                con.execute("PRAGMA synchronous=FULL")
        if now - self._pruned_at >= PRUNE_EVERY_SECONDS:
            self._pruned_at = now

    def checkpoint(self) -> None:
        """Copy the WAL into the database file without blocking the receivers (worker side)."""
        with self._rlock:
            try:
                self._read().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                pass

    def backlog(self) -> int:
        with self._rlock, storage.translated(self.path):
            return int(self._read().execute("SELECT count(*) FROM deliveries WHERE moved_at IS NULL").fetchone()[0])

    def meta(self) -> dict[str, str]:
        self.flush_notes()
        with self._rlock, storage.translated(self.path):
            return dict(self._read().execute("SELECT k, v FROM meta").fetchall())
