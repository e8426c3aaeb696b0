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
import os
import random
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import duckdb

from . import snapshot, storage
from .errors import LedgerlinkError, StorageError
from .schema import MIGRATIONS

log = logging.getLogger(__name__)

_migrated: set[str] = set()
_migrate_lock = threading.Lock()
# DuckDB 2.0: two threads opening connections at once (while the last one to the file closes) can
# leave a connection without its Arrow scan ("python_arrow_scan does not exist"); opens are serialized.
_open_lock = threading.Lock()


class DatabaseBusy(LedgerlinkError):
    """Another process held the database for longer than we were willing to wait."""


class _Shared:
    """One open instance of a database file that this process's `connect()` calls share while a
    `shared()` block is active: opening and closing the file costs ~18 ms of CPU (catalog load,
    checkpoint), a cursor on an open instance ~0.2 ms. Workers syncing many tenants would
    otherwise spend most of their CPU opening the file.

    Other processes (notebooks, the CLI, the app) still get their turn: after `max_hold` seconds
    the instance is closed as soon as no cursor is in use, and left closed for `pause` seconds,
    longer than `_open`'s longest retry delay, so a process waiting for the lock gets it.
    """

    def __init__(self, path: Path, max_hold: float, pause: float, idle: float):
        self.path, self.max_hold, self.pause, self.idle = path, max_hold, pause, idle
        self.base: duckdb.DuckDBPyConnection | None = None
        self.holds = self.users = 0
        self.opened_at = self.last_used = 0.0
        self.closed_at = float("-inf")
        self.draining = False
        self.cv = threading.Condition()
        self.reaper: threading.Thread | None = None

    def reap(self) -> None:
        """Close the file when no cursor has used it for `idle` seconds (a worker waiting on
        Xero's rate limit must not keep a notebook out), until the last block ends."""
        with self.cv:
            while self.holds > 0:
                if self.base is not None and self.users == 0:
                    now = time.monotonic()
                    due = min(self.last_used + self.idle, self.opened_at + self.max_hold)
                    if now >= due:
                        self._close(now if now >= self.opened_at + self.max_hold else float("-inf"))
                        continue
                    self.cv.wait(due - now)
                else:
                    self.cv.wait()
            self.reaper = None

    def acquire(self, timeout: float) -> duckdb.DuckDBPyConnection:
        with self.cv:
            while True:
                now = time.monotonic()
                if self.base is not None and not self.draining and now - self.opened_at < self.max_hold:
                    self.users += 1
                    base = self.base
                    break
                if self.base is not None:  # held long enough: let other processes in
                    self.draining = True
                    if self.users == 0:
                        self._close(now)
                    else:
                        self.cv.wait(0.05)
                    continue
                wait = self.closed_at + self.pause - now
                if wait > 0:
                    self.cv.wait(wait)
                    continue
                # One DuckDB thread: the pool's many workers are the parallelism, and small
                # statements on 2+ threads cost ~30% more CPU in thread hand-offs.
                # (A SET, not a connect config: a config that differs from a connection already
                # open in this process would be refused.)
                self.base = _open(self.path, False, timeout)
                self.base.execute("SET threads = 1")
                # Every cursor starts in UTC (a SET on each cursor cost 0.25 ms, several a sync).
                self.base.execute("SET GLOBAL TimeZone = 'UTC'")
                self.opened_at = time.monotonic()
        try:
            with _open_lock:
                cur = base.cursor()
            return cur
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        with self.cv:
            self.users -= 1
            self.last_used = time.monotonic()
            if self.users == 0:
                if self.holds == 0 and self.base is not None:
                    self._close(float("-inf"))
                self.cv.notify_all()

    def _close(self, at: float) -> None:
        base, self.base = self.base, None
        self.draining = False
        self.closed_at = at
        if base is not None:  # every caller checked, under self.cv
            with _open_lock:
                base.close()
        self.cv.notify_all()


_shared: dict[str, _Shared] = {}
_shared_lock = threading.Lock()


@contextlib.contextmanager
def shared(db_path: Path | str, *, max_hold: float = 5.0, pause: float = 0.6, idle: float = 0.5) -> Iterator[None]:
    """While this block runs, `connect(db_path)` in this process hands out cursors on one open
    instance instead of opening the file each time (the worker pool wraps its jobs in it).
    Blocks nest and may overlap across threads; the file closes when the last one ends."""
    key = str(Path(db_path).resolve())
    with _shared_lock:
        h = _shared.get(key)
        if h is None:
            h = _shared[key] = _Shared(Path(db_path), max_hold, pause, idle)
        with h.cv:
            h.holds += 1
            if h.reaper is None:
                h.reaper = threading.Thread(target=h.reap, name="duckdb-shared-reaper", daemon=True)
                h.reaper.start()
    try:
        yield
    finally:
        with _shared_lock, h.cv:
            h.holds -= 1
            h.cv.notify_all()
            if h.holds == 0:
                if h.users == 0 and h.base is not None:
                    h._close(float("-inf"))
                if h.users == 0:
                    _shared.pop(key, None)


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
                    raise DatabaseBusy(busy_sentence(path, str(exc), timeout)) from None
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


_PID = re.compile(r"\(PID (\d+)\)")
# Command lines that are Ledgerlink's own processes (they hold the file for short units of work).
_OURS = ("scheduler.py", "xero_core", "streamlit", "app.py")


def holder(path: Path, message: str = "") -> dict[str, Any] | None:
    """The process holding `path` open: {pid, name, command, ours}, from the pid DuckDB names in
    its lock error, else by looking for the file among every process's open files (psutil)."""
    import psutil

    pids: list[int] = [int(m) for m in _PID.findall(message or "")]
    if not pids:
        target = os.path.realpath(path)
        for proc in psutil.process_iter(["pid"]):
            if proc.pid == os.getpid():
                continue
            try:
                if any(os.path.realpath(f.path) == target for f in proc.open_files()):
                    pids.append(proc.pid)
                    break
            except (psutil.Error, OSError):
                continue
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            cmd = proc.cmdline() or [proc.name()]
            name = proc.name()
        except (psutil.Error, OSError):
            return {"pid": pid, "name": None, "command": None, "ours": False}
        command = " ".join(cmd)
        # a Jupyter kernel is "python -m ipykernel_launcher": name what a person recognises
        if "ipykernel" in command:
            name = "a Jupyter notebook kernel"
        elif cmd and os.path.basename(cmd[0]).startswith("python"):
            name = _python_program(cmd)
        ours = any(o in command for o in _OURS) and "ipykernel" not in command
        return {"pid": pid, "name": name, "command": command[:200], "ours": ours}
    return None


def _python_program(cmd: list[str]) -> str:
    """'python3.11 -m jupyter', 'jupyter-lab' (a script run by python), 'python3.11 -c'."""
    base, args = os.path.basename(cmd[0]), cmd[1:]
    while args and args[0] in ("-B", "-u", "-O", "-OO", "-s", "-S", "-E", "-I", "-q"):
        args = args[1:]
    if args[:1] == ["-m"] and len(args) > 1:
        return f"{base} -m {args[1]}"
    if args[:1] == ["-c"] or not args:
        return f"{base} -c" if args else base
    return os.path.basename(args[0])


def busy_sentence(path: Path, message: str, timeout: float) -> str:
    """Why the database could not be opened, naming the process holding it and how to release it."""
    try:
        h = holder(path, message)
    except Exception:  # finding the holder is a courtesy; the sentence stands without it
        h = None
    snap = snapshot.snapshot_for(path) if snapshot.is_working_path(path) else None
    if h is None:
        who = "another process"
    else:
        who = f"{h['name'] or 'a process'} (pid {h['pid']})"
    if h is not None and h["ours"]:
        return (f"The database {path} stayed locked by {who}, another Ledgerlink process, for {timeout:.0f} s. "
                "A long sync may be running; try again in a minute.")
    release = ("close that program's connection to it (in a notebook: con.close(), or restart the kernel)"
               + (f"; notebooks and your own tools should read the readers' copy {snap}, which never gets in "
                  "Ledgerlink's way" if snap else ""))
    return (f"The database {path} stayed locked by {who} for {timeout:.0f} s, so Ledgerlink could not write to it: "
            f"{release}. Then run it again.")


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
            with contextlib.suppress(duckdb.Error):  # a failed COMMIT (full disk) has nothing to roll back
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
    if not path.exists() and snapshot.is_working_path(path):
        # First use of the working database: start from the readers' copy when there is one (an
        # installation from before the snapshot, or a damaged working file moved aside).
        snapshot.adopt(path)
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
    release = None
    if con is None:
        h = _shared.get(key)
        if h is not None and h.holds > 0:
            # A reader gets the writer's instance: same data, and DuckDB refuses mixing the two
            # configurations in one process anyway.
            try:
                con, release = h.acquire(timeout), h.release
            except StorageError:
                if not read_only:
                    raise
                # The shared instance opens read-write; a reader on a read-only disk still reads.
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
        try:
            con.close()
        finally:
            if release is not None:
                release()


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
