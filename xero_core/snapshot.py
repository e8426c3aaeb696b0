"""The readers' copy of the database: a reader must never stop a writer, whatever tool it uses.

DuckDB locks a file per process: while any process holds even a read-only connection to a file,
no other process can open it to write ("Could not set lock on file"). Finance leads keep notebooks
open all day, so the file they read cannot be the file Ledgerlink writes.

Two files in the data dir (`XERO_DATA_DIR`):

- `ledger-work.duckdb` (`settings.db_path`): the working database. Only Ledgerlink's own
  processes (sync, scheduler, app, CLI, webhook receiver) open it, each for one short unit of
  work (xero_core.db). The app reads it too, so its own writes show at once.
- `xero.duckdb` (`settings.snapshot_path`): the readers' snapshot, where notebooks,
  `xero_core.analysis` and anyone's own tools look (the path the README always documented, so
  existing tools keep working and stop getting in the way). Ledgerlink never opens it to write.

`publish(settings)` makes a new snapshot: CHECKPOINT the working database (everything committed
lands in the main file), copy that file (in a child process: see _COPIER) to a temporary file
beside the snapshot, fsync, and
`os.replace` it onto `xero.duckdb`. A reader holding the old file keeps its old inode (POSIX) and
its old data, and is never in the way; the next connection it opens sees the new snapshot.

Why a file copy and not DuckDB's `COPY FROM DATABASE`: the copy is 0.19 s for the 34 MB demo
database and 2.6 s for 480 MB (about 500 organisations), at ~70 MB of memory; the logical copy took
2.9 s and 30 s, and 1 GB of memory. A byte copy is consistent because DuckDB rewrites the blocks
the file's header points to only at a checkpoint: commits made meanwhile go to the WAL (or to free
blocks nothing points to yet). The copy is kept only if the file's headers did not change while it
was read (no checkpoint ran meanwhile); otherwise it is made again.

When: after a run of sync jobs ends and at most every PUBLISH_EVERY seconds while jobs keep
running (a pool of hundreds of jobs copies the file once a minute, not once a job), when a CLI
command that changed the database ends, and after webhook updates (at most once a minute).
`publish_if_changed` compares the working file's size and times (and its WAL's) with those
recorded at the last publish, so any process may publish what another one changed, and nothing
is copied when nothing changed.

First run of this layout: an existing `xero.duckdb` (and its `.wal`) is copied into
`ledger-work.duckdb` before anything opens the working database (`adopt`), so no data is lost,
and the old file keeps serving readers until the first publish replaces it. The same rule
recovers a working database moved aside (damaged): Ledgerlink starts again from the snapshot,
i.e. the last publish, and the next sync fetches what came after.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import storage
from .errors import StorageError

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger(__name__)

WORK_FILE = "ledger-work.duckdb"
SNAPSHOT_FILE = "xero.duckdb"
PUBLISHED_FILE = "ledger-work.published.json"  # what the last publish copied, and when
PUBLISH_EVERY = 60.0  # seconds between publishes while jobs keep running
HEADER_BYTES = 3 * 4096  # DuckDB's main header and its two database headers
COPY_ATTEMPTS = 5
# While syncs keep writing, a publish waits for an idle moment; this long without one (and changes
# waiting) is said once, so a readers' copy that silently stays old is seen.
UNPUBLISHED_WARNING_AFTER = 15 * 60.0

_locks: dict[str, threading.Lock] = {}
_last_failure: dict[str, str] = {}
_waiting_since: dict[str, float] = {}  # working file -> monotonic time a publish first met a writer
_waiting_said: set[str] = set()
_locks_guard = threading.Lock()


def working_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / WORK_FILE


def snapshot_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / SNAPSHOT_FILE


def is_working_path(path: Path) -> bool:
    return Path(path).name == WORK_FILE


def snapshot_for(work: Path) -> Path:
    """The snapshot that belongs to a working database path."""
    return Path(work).parent / SNAPSHOT_FILE


def _lock(work: Path) -> threading.Lock:
    key = os.path.abspath(work)
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


# ------------------------------------------------------------------------------------- adopting


def adopt(work: Path) -> bool:
    """Before the working database is first created: start it from the snapshot (an existing
    installation's database, or the last publish when the working file was moved aside).
    True when a copy was made. Safe across processes (a file lock) and threads."""
    work = Path(work)
    snap = snapshot_for(work)
    if work.exists() or not snap.exists():
        return False
    from filelock import FileLock

    data_dir = storage.secure_dir(work.parent)
    locks = storage.secure_dir(data_dir / "locks")
    with _lock(work), FileLock(str(locks / "working-db.lock"), timeout=600):
        if work.exists() or not snap.exists():
            return False
        t0 = time.perf_counter()
        tmp = work.with_name(f".{work.name}.adopting")
        with storage.translated(work):
            _copy(snap, tmp)
            wal, work_wal = Path(str(snap) + ".wal"), Path(str(work) + ".wal")
            if wal.exists():  # commits an old process had not checkpointed: replayed on first open
                tmp_wal = Path(str(work) + ".wal.adopting")
                _copy(wal, tmp_wal)
                os.replace(tmp_wal, work_wal)
            elif work_wal.exists():
                # The WAL of a working file moved aside without it (the damaged-file sentence names
                # only the .duckdb): DuckDB would replay it onto the snapshot, and one from a later
                # checkpoint makes the new working file refuse to open ("WAL checkpoint iteration
                # does not match"). Kept beside it, not deleted: it is the only copy of its commits.
                aside = work_wal.with_name(f"{work_wal.name}.{time.strftime('%Y%m%d-%H%M%S')}.{os.getpid()}.aside")
                os.replace(work_wal, aside)
                log.warning("%s belonged to a working database that is no longer there: moved to %s so it is "
                            "not replayed onto the copy of %s.", work_wal, aside.name, snap.name)
            os.replace(tmp, work)
            _fsync_dir(work.parent)
        log.warning("Ledgerlink's working database is now %s, copied from %s (%.1f MB in %.2f s); %s stays "
                    "the readers' copy and is replaced after each sync.", work, snap,
                    work.stat().st_size / 1e6, time.perf_counter() - t0, snap.name)
        return True


# ------------------------------------------------------------------------------------ publishing


def _fingerprint(work: Path) -> list[int | None]:
    """What changes whenever something is committed or checkpointed (reads change nothing)."""
    out: list[int | None] = []
    for p in (work, Path(str(work) + ".wal")):
        try:
            st = p.stat()
            out += [st.st_size, st.st_mtime_ns]
        except FileNotFoundError:
            out += [None, None]
    return out


def _record_path(work: Path) -> Path:
    return work.parent / PUBLISHED_FILE


def last_published(work: Path) -> dict[str, Any]:
    try:
        data = json.loads(_record_path(work).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def changed_since_publish(settings: Settings) -> bool:
    work = Path(settings.db_path)
    if not work.exists():
        return False
    if not Path(settings.snapshot_path).exists():
        return True
    return last_published(work).get("fingerprint") != _fingerprint(work)


# The bytes are read by a child process. POSIX drops every lock a process holds on a file (fcntl
# locks, which is what DuckDB's is) when that process closes ANY descriptor of the file, not only
# the one that took the lock. Reading the working file here, even read-only, while this process's
# connection holds it, released DuckDB's lock: another Ledgerlink process (a CLI sync, the app, the
# scheduler) could then open the working file for writing while this one still had it open, and
# two processes writing one DuckDB file damage it ("checksum mismatch", "No more data remaining in
# MetadataReader"; tests/test_snapshot.py). A child's descriptors are its own: closing them drops
# nothing of ours. (storage.create_private_file avoids the same trap for SQLite files.) The child
# imports only os and sys: about 10 ms of CPU, against ~190 ms for the copy of a 34 MB database.
_COPIER = """
import os, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    with open(src, "rb") as f, open(dst, "wb") as g:
        size, sent = os.fstat(f.fileno()).st_size, 0
        try:
            while sent < size:
                k = os.sendfile(g.fileno(), f.fileno(), sent, size - sent)
                if k == 0:
                    break
                sent += k
        except OSError as exc:
            if sent or exc.errno not in (22, 38):  # EINVAL, ENOSYS: a file system without sendfile
                raise
            import shutil
            shutil.copyfileobj(f, g, 1 << 20)
        g.flush()
        os.fsync(g.fileno())
    with open(src, "rb") as f, open(dst, "rb") as g:
        same = f.read(n) == g.read(n)
except OSError as exc:
    import json
    print(json.dumps([exc.errno, exc.strerror, exc.filename]))
    sys.exit(2)
sys.exit(0 if same else 3)
"""


def _copy(src: Path, dst: Path) -> bool:
    """Copy src to dst (fsynced), in a child process. True when src's headers after the copy are
    the ones copied, i.e. no checkpoint rewrote them meanwhile: the copy is consistent."""
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", _COPIER, str(src), str(dst), str(HEADER_BYTES)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except OSError as exc:  # no python to start (a full process table, ...)
        raise StorageError(f"Could not start the copy of {src} to {dst} ({exc}); the next sync tries again.",
                           path=dst, problem="io") from exc
    if done.returncode in (0, 3):
        return done.returncode == 0
    if done.returncode == 2:
        with contextlib.suppress(ValueError, TypeError):
            code, reason, filename = json.loads(done.stdout)
            raise OSError(code, reason, filename)
    raise StorageError(f"Copying {src} to {dst} failed (exit {done.returncode}: "
                       f"{(done.stderr or done.stdout).strip()[-200:]}); the next sync tries again.",
                       path=dst, problem="io")


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class WriterActive(Exception):
    """CHECKPOINT met a write transaction of another connection of this process (a sync's job):
    nothing is wrong, the publish is for the next idle moment. (FORCE CHECKPOINT would abort the
    writer; waiting for it would stall this thread, the pool's heartbeat.)"""


def _checkpoint(con: Any) -> None:
    import duckdb

    try:
        con.execute("CHECKPOINT")
    except duckdb.TransactionException as exc:
        if "other write transactions" not in str(exc):
            raise
        raise WriterActive(str(exc)) from None


def publish(settings: Settings, *, timeout: float = 30.0) -> dict[str, Any] | None:
    """Copy the working database onto the readers' snapshot, atomically. Returns
    {seconds, bytes, snapshot}, or None when there is no working database yet.
    Raises StorageError (one sentence) when the disk refuses, WriterActive when another connection
    of this process is writing (publish_if_changed waits for the next idle moment); callers that
    publish on the side of a sync log a failure and carry on: the working database holds
    everything either way."""
    from . import db

    work, snap = Path(settings.db_path), Path(settings.snapshot_path)
    if not work.exists():
        return None
    t0 = time.perf_counter()
    with _lock(work), db.connect(work, timeout=timeout) as con:
        # The connection holds the working file (other processes wait) until the snapshot is in place,
        # so two processes' publishes never land out of order.
        tmp = snap.with_name(f".{snap.name}.{os.getpid()}.{threading.get_ident()}.publishing")
        for stale in snap.parent.glob(f".{snap.name}.*.publishing"):
            # left by a publisher killed mid-copy: publishes are one at a time (we hold the working file)
            with contextlib.suppress(OSError):
                stale.unlink()
        try:
            with storage.translated(snap):
                for _ in range(COPY_ATTEMPTS):
                    with storage.translated(work):  # a full disk fails here: the working file's sentence
                        _checkpoint(con)
                    fingerprint = _fingerprint(work)
                    if _copy(work, tmp):
                        break
                    log.info("a checkpoint ran while %s was being copied: copying it again", work)
                else:
                    raise StorageError(
                        f"Could not publish a consistent copy of {work} to {snap} in {COPY_ATTEMPTS} attempts "
                        "(the database kept changing); the next sync tries again.", path=snap, problem="io")
                # A WAL beside the snapshot belongs to an older file (a pre-snapshot installation, or
                # someone who opened the snapshot to write): never let DuckDB replay it onto this one.
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(str(snap) + ".wal")
                os.replace(tmp, snap)
                _fsync_dir(snap.parent)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        size = snap.stat().st_size
        record = {"fingerprint": fingerprint, "published_at": time.time(), "bytes": size,
                  "seconds": round(time.perf_counter() - t0, 3)}
        rec = _record_path(work)
        rtmp = rec.with_name(f".{rec.name}.{os.getpid()}.{threading.get_ident()}")
        with storage.translated(rec):
            rtmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(rtmp, rec)
    log.debug("published %s (%.1f MB) in %.2f s", snap, size / 1e6, record["seconds"])
    return {"seconds": record["seconds"], "bytes": size, "snapshot": str(snap)}


def publish_if_changed(settings: Settings, *, min_interval: float = 0.0, quiet: bool = True) -> dict[str, Any] | None:
    """Publish when the working database changed since the last publish and that was at least
    `min_interval` seconds ago. With `quiet`, a failure is a logged sentence, never an exception:
    a snapshot that could not be made must not fail the sync that asked for it."""
    key = str(getattr(settings, "db_path", ""))
    try:
        if not changed_since_publish(settings):
            _stop_waiting(key)  # published meanwhile (another process): nothing waits
            return None
        if min_interval > 0:
            at = last_published(Path(settings.db_path)).get("published_at")
            if isinstance(at, (int, float)) and time.time() - at < min_interval:
                return None
        done = publish(settings)
        _last_failure.pop(key, None)
        _stop_waiting(key)
        return done
    except WriterActive:
        if not quiet:
            raise
        _wait_for_idle(settings)
        return None
    except Exception as exc:
        if not quiet:
            raise
        se = storage.as_storage_error(exc)
        sentence = str(se or f"{type(exc).__name__}: {exc}")
        # said once while it lasts: a pool asks every second
        level = logging.DEBUG if _last_failure.get(key) == sentence else logging.WARNING
        _last_failure[key] = sentence
        log.log(level, "could not publish the readers' copy %s: %s", getattr(settings, "snapshot_path", "?"), sentence)
        return None


def waiting(settings: Settings) -> bool:
    """True while a publish of this process waits for its writers to pause."""
    return str(getattr(settings, "db_path", "")) in _waiting_since


def _stop_waiting(key: str) -> None:
    _waiting_since.pop(key, None)
    _waiting_said.discard(key)


def _wait_for_idle(settings: Settings) -> None:
    key = str(getattr(settings, "db_path", ""))
    since = _waiting_since.setdefault(key, time.monotonic())
    waited = time.monotonic() - since
    log.debug("publish of %s waits: a sync is writing (%.0f s so far)", getattr(settings, "snapshot_path", "?"), waited)
    if waited >= UNPUBLISHED_WARNING_AFTER and key not in _waiting_said:
        _waiting_said.add(key)
        log.warning("The readers' copy %s has not been updated for %.0f minutes: syncs kept writing without a "
                    "pause to publish in, so notebooks and analysis see older data; it is published as soon as "
                    "they pause.",
                    getattr(settings, "snapshot_path", "?"), waited / 60)


class Debounced:
    """Publishing for a process that runs many jobs: `job_ended()` after each, `tick(busy)` from a
    periodic thread. Publishes when no job runs any more (a batch ended), else at most every
    `every` seconds while jobs keep running."""

    def __init__(self, settings: Settings, every: float = PUBLISH_EVERY):
        self.settings, self.every = settings, every
        self._ended = threading.Event()

    def job_ended(self) -> None:
        self._ended.set()

    def tick(self, busy: int) -> dict[str, Any] | None:
        if busy == 0 and self._ended.is_set():
            self._ended.clear()
            done = publish_if_changed(self.settings)
            if done is None and waiting(self.settings):
                self._ended.set()  # another writer was active: the next idle tick tries again
            return done
        return publish_if_changed(self.settings, min_interval=self.every)
