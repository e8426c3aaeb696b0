"""Short-lived DuckDB connections that share one file between processes.

DuckDB locks the file per process: while one process holds it, no other can open it at all.
So every unit of work opens, does its work, and closes; an open that meets another process's
lock retries with backoff instead of failing.

Anything the disk says (no folder, no permission, read-only, full, a damaged file) comes out as a
`StorageError` sentence naming the file and the fix (`xero_core.storage`), from the open and from
the work done on the connection alike.
"""
from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from pathlib import Path
from typing import Iterator

import duckdb

from . import storage
from .errors import LedgerlinkError
from .schema import MIGRATIONS

log = logging.getLogger(__name__)

_migrated: set[str] = set()
_migrate_lock = threading.Lock()
# DuckDB 2.0: two threads opening connections at once (while the last one to the file closes) can
# leave a connection without its Arrow scan ("python_arrow_scan does not exist"); opens are serialized.
_open_lock = threading.Lock()


class DatabaseBusy(LedgerlinkError):
    """Another process held the database for longer than we were willing to wait."""


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Could not set lock" in text or "Conflicting lock" in text or "lock on file" in text)


def _open(path: Path, read_only: bool, timeout: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            with _open_lock:
                con = duckdb.connect(str(path), read_only=read_only)
            con.execute("SET TimeZone='UTC'")
            return con
        except duckdb.IOException as exc:
            if not _is_lock_error(exc) or time.monotonic() >= deadline:
                if _is_lock_error(exc):
                    raise DatabaseBusy(
                        f"The database {path} stayed locked by another Ledgerlink process for "
                        f"{timeout:.0f} s. A long sync may be running; try again in a minute."
                    ) from None
                raise storage.describe(exc, path) or exc from None
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 0.25)
        except duckdb.ConnectionException as exc:
            # Within one process DuckDB refuses a read-only and a read-write connection to the same
            # file at once ("different configuration"), e.g. the app's webhook receiver writing while
            # a page reads. A reader then simply opens read-write (same data; the file lock is per
            # process anyway); a writer waits for the short-lived reader to close.
            if "different configuration" not in str(exc):
                raise storage.describe(exc, path) or exc from None
            if read_only:
                read_only = False
                continue
            if time.monotonic() >= deadline:
                raise DatabaseBusy(
                    f"The database {path} stayed open read-only in this process for {timeout:.0f} s; "
                    "try again in a minute."
                ) from None
            time.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 0.25)
        except duckdb.Error as exc:  # e.g. a damaged file: "Corrupt database file: computed checksum ..."
            se = storage.describe(exc, path)
            if se is None:
                raise
            raise se from None


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the named migrations not yet recorded. Returns the names applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ DEFAULT now())"
    )
    done = {r[0] for r in con.execute("SELECT name FROM schema_migrations").fetchall()}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        con.execute("BEGIN")
        try:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (name) VALUES (?)", [name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


@contextlib.contextmanager
def connect(db_path: Path | str, *, read_only: bool = False, timeout: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database for one short unit of work, migrating it on first use.

    `db_path` is usually `settings.db_path`. Read-only opens of a database that does not exist
    yet create and migrate it first, so readers (notebooks, the app) never see a missing table.
    """
    path = Path(db_path)
    key = str(path.resolve())
    con = None
    if not (read_only and path.exists()):
        # Writers (and the first open, which creates the file) keep the folder private; a reader of
        # an existing file, e.g. a notebook opening a copy elsewhere, leaves its folder as it is.
        storage.secure_dir(path.parent)
    if key not in _migrated and read_only and path.exists():
        # A reader of an up-to-date file never needs the write lock (a sync may hold it).
        con = _open(path, True, timeout)
        if _is_current(con):
            _migrated.add(key)
        else:
            con.close()
            con = None
    if key not in _migrated:
        with _migrate_lock:
            if key not in _migrated:
                rw = _open(path, False, timeout)
                try:
                    with storage.translated(path):
                        migrate(rw)
                finally:
                    rw.close()
                _migrated.add(key)
    if con is None:
        con = _open(path, read_only, timeout)
    try:
        yield con
    except duckdb.Error as exc:
        se = storage.describe(exc, path)
        if se is None:
            raise
        raise se from exc
    finally:
        con.close()


def _is_current(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        done = {r[0] for r in con.execute("SELECT name FROM schema_migrations").fetchall()}
    except duckdb.Error:
        return False
    return all(name in done for name, _ in MIGRATIONS)


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        # A rollback that fails too (a full disk, an invalidated database) must not hide the cause.
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")
