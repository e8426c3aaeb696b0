"""The data directory on disk: owner-only modes, and one sentence for every storage failure.

Every store (DuckDB `xero.duckdb`, the SQLite files through `sqlite_wal.open_wal`, the vault, the
scheduler state, the lock files) keeps its files under `settings.data_dir`. This module is the one
place that

- keeps that directory private: `secure_dir(data_dir)` creates it 0700 and, once per process,
  repairs Ledgerlink's own files and folders in it that are readable by others (files 0600,
  folders 0700). `private_umask()` (run by `load_settings`) adds 077 to the process umask, so
  every file created afterwards, including the ones DuckDB and SQLite create on their own
  (`.wal`, `-shm`, locks), is owner-only from its first byte;
- turns what the operating system, DuckDB or SQLite raise about the disk (a file where the folder
  should be, no permission, a read-only or full disk, a damaged database) into a `StorageError`:
  one sentence naming the file or XERO_DATA_DIR and the fix, which every entry point (CLI,
  webhook receiver, scheduler, app) prints as it is.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Iterator

from .errors import StorageError

log = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600

# What Ledgerlink itself keeps directly in the data dir (repaired on open); anything else a person
# put there is left alone. Sub-folders named here are Ledgerlink's entirely.
OWN_FILE_PREFIXES = ("xero.duckdb", ".xero.duckdb", "ledger-work.", ".ledger-work.", "ratelimit.sqlite", "webhook_spool.sqlite", "jobs.sqlite", "scheduler",
                     ".scheduler", "mock-encryption.key")
OWN_SUBDIRS = ("vault", "locks", "documents", "fake-xero")

# What a damaged SQLite file holds, for the sentence that says what deleting it costs.
SQLITE_CONTENTS = {
    "ratelimit.sqlite": "It holds only Xero call counters for the rate limits: delete it and Ledgerlink starts a new one.",
    "webhook_spool.sqlite": ("It holds webhook deliveries not yet moved into the database: move it aside and "
                             "Ledgerlink starts a new one; the next sync fetches whatever those deliveries announced."),
    "jobs.sqlite": ("It holds the sync job queue and history: move it aside and Ledgerlink starts a new one "
                    "(queued jobs are lost; the synced data is not)."),
}

_umask_lock = threading.Lock()
_umask_done = False
_secured: set[str] = set()
_secure_lock = threading.Lock()


# --------------------------------------------------------------------------------------- modes


def private_umask() -> None:
    """Add 077 to this process's umask (once): files and folders it creates are owner-only."""
    global _umask_done
    if _umask_done or os.name != "posix":
        return
    with _umask_lock:
        if not _umask_done:
            old = os.umask(0o077)  # reading the umask means setting it; the stricter value is safe meanwhile
            os.umask(old | 0o077)
            _umask_done = True


def _tighten(path: Path, want: int) -> bool:
    """Drop group/other bits (files -> 0600, folders -> 0700). True if the mode was changed."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return False
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        new = DIR_MODE if want == DIR_MODE else mode & 0o700
    elif stat.S_ISREG(st.st_mode):
        new = (mode & 0o700) | 0o600
    else:
        return False
    if new == mode:
        return False
    os.chmod(path, new)
    return True


def _repair_tree(data_dir: Path) -> list[str]:
    fixed: list[str] = []

    def fix(p: Path, want: int) -> None:
        try:
            if _tighten(p, want):
                fixed.append(str(p))
        except FileNotFoundError:
            pass
        except OSError as exc:  # another owner's file: say so once, keep going
            log.warning("could not make %s private (%s); fix its permissions by hand", p, exc.strerror or exc)

    try:
        entries = list(os.scandir(data_dir))
    except OSError:
        return fixed
    for e in entries:
        p = Path(e.path)
        if e.is_dir(follow_symlinks=False) and e.name in OWN_SUBDIRS:
            fix(p, DIR_MODE)
            for root, dirs, files in os.walk(p):
                for d in dirs:
                    fix(Path(root, d), DIR_MODE)
                for f in files:
                    fix(Path(root, f), FILE_MODE)
        elif e.is_file(follow_symlinks=False) and (e.name.startswith(OWN_FILE_PREFIXES) or e.name.endswith(".lock")):
            fix(p, FILE_MODE)
    return fixed


def secure_dir(data_dir: Path | str) -> Path:
    """Create the data dir (0700) if missing and make it private; repair its files once per process.

    Raises StorageError (one sentence) when the folder cannot be created or used.
    """
    data_dir = Path(data_dir)
    private_umask()
    key = os.path.abspath(data_dir)
    if key in _secured and data_dir.is_dir():
        return data_dir
    with _secure_lock:
        try:
            data_dir.mkdir(parents=True, mode=DIR_MODE, exist_ok=True)
        except OSError as exc:
            raise describe(exc, data_dir, data_dir=data_dir) or exc from None
        if not data_dir.is_dir():  # e.g. a dangling symlink
            not_dir = OSError(errno.ENOTDIR, "Not a directory")
            raise describe(not_dir, data_dir, data_dir=data_dir) or not_dir
        if key not in _secured:
            try:
                changed = _tighten(data_dir, DIR_MODE)
            except OSError as exc:
                changed = False
                log.warning("could not make %s private (mode 0700): %s", data_dir, exc.strerror or exc)
            fixed = _repair_tree(data_dir)
            if changed or fixed:
                log.warning(
                    "The data folder %s was readable by other users: made it 0700 and %d of its files or folders "
                    "owner-only. Nothing else changed.", data_dir, len(fixed))
            _secured.add(key)
    return data_dir


_create_lock = threading.Lock()


def create_private_file(path: Path | str) -> Path:
    """Make sure `path` exists as an owner-only file (0600) before a library opens it.

    SQLite gives its -wal and -shm files the database file's mode, so creating the database 0600
    first keeps all three private whatever the umask. An existing file is never opened here:
    closing any descriptor of a SQLite file drops every POSIX lock this process holds on it (other
    threads' connections included), which corrupts it. So only O_EXCL creation opens (and closes)
    a descriptor, on a file nobody can have locked yet; a mode is repaired by path.
    """
    path = Path(path)
    with _create_lock:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
        except FileExistsError:
            if path.is_dir():  # said here: SQLite or DuckDB would only say it cannot open the file
                exc = IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
                raise describe(exc, path) or exc from None
            fd = None
        except OSError as exc:
            raise describe(exc, path) or exc from None
        if fd is not None:
            os.close(fd)
    try:
        _tighten(path, FILE_MODE)
    except OSError:
        pass
    return path


# ------------------------------------------------------------------------------------- errors

_FULL = ("no space left on device", "disk quota exceeded", "file too large", "database or disk is full")
_READ_ONLY = ("read-only file system", "attempt to write a readonly database", "readonly database")
_DENIED = ("permission denied", "operation not permitted")
_NOT_DIR = ("not a directory", "file exists")
_CORRUPT = ("not a valid duckdb database file", "corrupt database file", "does not match stored checksum",
            "file is not a database", "database disk image is malformed", "unable to read database header",
            "is not a valid duckdb", "invalid block",
            "could not read enough bytes")  # a truncated DuckDB file (`truncate -s 100000`)
_IO = ("disk i/o error", "input/output error", "could not write file", "could not read from file",
       "could not fsync", "could not truncate", "unable to open database file", "cannot open file")


def _data_dir_for(path: Path) -> Path:
    # the data dir is the nearest ancestor that is not one of Ledgerlink's own sub-folders
    p = path if path.suffix == "" and not path.name.startswith(OWN_FILE_PREFIXES) else path.parent
    while p.name in OWN_SUBDIRS and p.parent != p:
        p = p.parent
    return p


def _blocker(path: Path, *, itself: bool = True) -> Path | None:
    """The nearest existing ancestor of `path` (or path itself) that is not a folder."""
    for p in [path, *path.parents] if itself else list(path.parents):
        try:
            if p.exists() or p.is_symlink():
                return None if p.is_dir() else p
        except OSError:
            return None
    return None


def _classify(exc: BaseException) -> tuple[str, str] | None:
    """(problem, reason) for an error about the disk, or None for anything else."""
    if isinstance(exc, StorageError):
        return exc.problem, exc.reason
    if isinstance(exc, OSError) and exc.errno is not None:
        reason = exc.strerror or os.strerror(exc.errno)
        code = exc.errno
        if code in (errno.ENOTDIR, errno.EEXIST):
            return "not_a_directory", reason
        if code == errno.EISDIR:
            return "is_a_directory", reason
        if code in (errno.EACCES, errno.EPERM):
            return "permission", reason
        if code == errno.EROFS:
            return "read_only", reason
        if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return "full", reason
        if code == errno.EIO:
            return "io", reason
        return None
    if not _is_db_error(exc):
        return None
    text = str(exc)
    low = text.lower()
    reason = _short_reason(text)
    for problem, needles in (("full", _FULL), ("read_only", _READ_ONLY), ("permission", _DENIED),
                             ("corrupt", _CORRUPT), ("not_a_directory", _NOT_DIR), ("io", _IO)):
        if any(n in low for n in needles):
            return problem, reason
    if "has been invalidated because of a previous fatal error" in low:
        return "io", reason
    return None


def _is_db_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return True
    try:
        import duckdb
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, duckdb.Error)


def _short_reason(text: str) -> str:
    """The library's message without its class prefix, on one line, not too long."""
    text = re.sub(r"^[A-Za-z ]*(Error|Exception): ", "", text.strip().splitlines()[0] if text.strip() else text)
    return text if len(text) <= 160 else text[:157] + "..."


def describe(exc: BaseException, path: Path | str, *, data_dir: Path | str | None = None) -> StorageError | None:
    """The StorageError for `exc` met while using `path`, or None when it is not about the disk."""
    cls = _classify(exc)
    if cls is None:
        return None
    if isinstance(exc, StorageError):
        return exc
    problem, reason = cls
    path = Path(path)
    data_dir = Path(data_dir) if data_dir is not None else _data_dir_for(path)
    where = f"XERO_DATA_DIR ({data_dir})"
    if problem == "is_a_directory":
        msg = (f"{path} is a folder, but Ledgerlink keeps a file there. Move that folder away (Ledgerlink creates "
               f"the file again{_what_is_lost(path)}), then run it again.")
    elif problem == "not_a_directory" or (problem in ("io", "permission") and _blocker(path, itself=False)):
        blocker = _blocker(path) or data_dir
        problem = "not_a_directory"
        msg = (f"Ledgerlink keeps its data in {where}, but {blocker} is a file, not a folder. Move that file "
               "away, or set XERO_DATA_DIR to a folder this user can write.")
    elif problem == "permission":
        msg = (f"Ledgerlink may not write {path} ({reason}). Make {where} writable by the user running "
               "Ledgerlink, or set XERO_DATA_DIR to a folder it can write.")
    elif problem == "read_only":
        msg = (f"{path} cannot be written: {where} is read-only ({reason}). Set XERO_DATA_DIR to a writable "
               "folder, or make that one writable, then run it again.")
    elif problem == "full":
        msg = (f"The disk holding {path} is full ({reason}); the change being saved was not kept and nothing "
               f"saved before it was lost. Free some space on that disk, or move {where} to a bigger one, "
               "then run it again.")
    elif problem == "corrupt":
        msg = _corrupt_sentence(path, reason)
    else:
        msg = (f"Reading or writing {path} failed ({reason}). Check that {where} is a folder this user can "
               "write on a disk with free space, then run it again.")
    return StorageError(msg, path=path, problem=problem, reason=reason)


def _what_is_lost(path: Path) -> str:
    if path.name in SQLITE_CONTENTS:
        return "; " + {"jobs.sqlite": "queued sync jobs are not kept", "ratelimit.sqlite": "nothing is lost",
                       "webhook_spool.sqlite": "the next sync fetches what waiting deliveries announced"}[path.name]
    if path.parent.name == "vault":
        return "; a token set that was in it is gone: reconnect the organisations it served"
    return ""


def _corrupt_sentence(path: Path, reason: str) -> str:
    if path.name.startswith("ledger-work.duckdb"):  # the working database (xero_core/snapshot.py)
        snap = path.with_name("xero.duckdb")
        return (f"{path}, Ledgerlink's working database, is damaged or is not a DuckDB database ({reason}). Move it "
                f"aside (e.g. to ledger-work.duckdb.broken) and Ledgerlink starts again from the readers' copy {snap} "
                "(the last sync's data; the next sync fetches the rest); if that is damaged too, move it aside as well "
                "and run `python -m xero_core connect` then `sync` to rebuild from Xero (the vault's tokens are kept).")
    if path.name == "xero.duckdb" and path.with_name("ledger-work.duckdb").exists():
        return (f"{path}, the readers' copy of Ledgerlink's database, is damaged ({reason}); nothing is lost: the next "
                "sync replaces it, or run `python -m xero_core sync --all` now.")
    if path.suffix == ".duckdb" or path.name.startswith("xero.duckdb"):
        return (f"{path} is damaged or is not a DuckDB database ({reason}). Restore it from a backup, or move it "
                "aside (e.g. to xero.duckdb.broken) and run `python -m xero_core connect` then `sync` to rebuild it "
                "from Xero; the tokens in the vault are kept, but clients and documents entered in Ledgerlink were "
                "only in that file.")
    what = SQLITE_CONTENTS.get(path.name, "Move it aside and Ledgerlink starts a new one.")
    return f"{path} is damaged or is not a SQLite database ({reason}). {what}"


def as_storage_error(exc: BaseException, path: Path | str | None = None) -> StorageError | None:
    """For entry points: the StorageError behind `exc` (itself, its cause, or one recognised from an
    OSError/DuckDB/SQLite error naming a path), or None."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and all(e is not c for c in chain):
        if isinstance(e, StorageError):
            return e
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:  # e.g. "cannot rollback" raised while handling the full disk that caused it
        where = path if path is not None else getattr(e, "filename", None)
        if where is None and _is_db_error(e):
            m = re.search(r'"(/[^"]+)"', str(e))
            where = m.group(1) if m else None
        if where is not None:
            se = describe(e, where)
            if se is not None:
                return se
    return None


@contextlib.contextmanager
def translated(path: Path | str, *, data_dir: Path | str | None = None) -> Iterator[None]:
    """Re-raise disk errors met inside the block as StorageError; anything else passes through."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        se = describe(exc, path, data_dir=data_dir)
        if se is None:
            raise
        raise se from exc
