"""Xero's call limits, shared by every process that calls Xero (scheduler, app, webhooks, CLI).

Xero allows, per tenant and app: 5 calls in flight, 60 per minute, 5,000 per day; and 10,000 per
minute across the app (xero-notes §2). Its windows are fixed and reset at times we cannot see, so
we keep *sliding* windows a little under the limits: a sliding window never holds more calls than
any fixed window inside it, so normal operation draws no 429 at all.

State lives in one SQLite file (`data_dir/ratelimit.sqlite`, WAL, short `BEGIN IMMEDIATE`
transactions) because several processes share one tenant's budget. Within a process, the threads
of a worker pool take turns on the file through one lock (`_FileState`): SQLite's busy handler
sleeps and retries without any order, so two hundred threads contending for it starved one past
its timeout ("database is locked" failed a backfill), and the lock also keeps the process's
cached app-wide count exact for every limiter instance on the file.

- `calls(scope, t, weight, win)` – every call started (scope = tenant id, or `*app` for corrections of the
  app-wide count). Xero's `X-*Limit-Remaining` headers add a weighted "phantom" row when Xero has
  counted more than we did (another installation, a crashed process), never fewer.
- `leases` – calls in flight. A lease expires by time, and at once when its process is gone, so a
  killed process never holds a slot.
- `blocks` – a 429 told us to wait (`Retry-After`), or that the day is spent
  (`X-Rate-Limit-Problem: day`): every process honours it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from . import storage
from .clock import SYSTEM_CLOCK, Clock
from .errors import DailyLimitReached, StorageError
from .sqlite_wal import open_wal

if TYPE_CHECKING:
    import httpx

    from .settings import Settings

XERO_PER_MINUTE = 60
XERO_PER_DAY = 5000
XERO_APP_PER_MINUTE = 10000
XERO_CONCURRENT = 5

MINUTE = 60.0
DAY = 86400.0
APP_SCOPE = "*app"
# A lease outlives any single HTTP attempt (timeouts are far shorter); it only matters when a
# process on another host dies mid-call.
LEASE_SECONDS = 300.0
POLL_SECONDS = 0.05
TIDY_EVERY = 60.0  # seconds of the clock between deletions of calls older than a day
# How old this thread's view of a tenant's counts (taken at its grant) may be for `observe` to
# trust it; a response slower than this is checked against the file.
AGREE_SECONDS = 5.0
APP_RECOUNT = 0.5  # seconds between reads of the app-wide count while it is under 80% of the limit
# Another process holding the file: SQLite's own wait (per attempt), then how long, in all, a call
# waits for the file before giving up with a sentence. Real seconds: this is I/O, not Xero's pace.
LOCK_TIMEOUT = 30.0
LOCK_PATIENCE = 600.0

WAIT_NOTICE = 2.0  # a hold at least this long is told to whoever listens (a job's progress says why it stands still)
WAIT_REASONS = {"minute": "Xero's minute limit", "app": "Xero's app-wide minute limit",
                "retry": "Xero's Retry-After"}

log = logging.getLogger(__name__)
# Who hears of a long hold in this thread: `callback(seconds, reason)` (reason a WAIT_REASONS key).
# A context variable, not an argument: the limiter sits under the client, far from the sync that cares.
_on_wait: ContextVar[Callable[[float, str], None] | None] = ContextVar("ledgerlink_limiter_wait", default=None)


@contextlib.contextmanager
def waits_reported_to(callback: Callable[[float, str], None]) -> Iterator[None]:
    """While this block runs, every hold of WAIT_NOTICE seconds or more in this thread calls
    `callback(seconds, reason)` before the limiter sleeps."""
    token = _on_wait.set(callback)
    try:
        yield
    finally:
        _on_wait.reset(token)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    scope TEXT NOT NULL, t REAL NOT NULL, weight INTEGER NOT NULL DEFAULT 1,
    win TEXT NOT NULL DEFAULT 'all');  -- all: a call of ours; minute/day: a correction for that window only
CREATE INDEX IF NOT EXISTS calls_scope_t ON calls (scope, t);
CREATE INDEX IF NOT EXISTS calls_t ON calls (t);
CREATE TABLE IF NOT EXISTS leases (
    lease_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, host TEXT, pid INTEGER, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    scope TEXT NOT NULL, kind TEXT NOT NULL, until REAL NOT NULL, reason TEXT, PRIMARY KEY (scope, kind));
"""


def db_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / "ratelimit.sqlite"


class _FileState:
    """What every limiter in this process shares for one ratelimit file."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # one transaction at a time from this process
        # (when counted, count then + calls granted in this process since); read and written
        # under `lock`, so instances never miss each other's grants.
        self.app_seen: tuple[float, int] | None = None
        self.tidied: float | None = None  # clock time of the last `_tidy`
        self.cons = threading.local()  # each thread's connection to the file
        self.schema_ready: tuple[int, int] | None = None  # (st_dev, st_ino) of the file the tables were made in


_FILES: dict[str, _FileState] = {}
_LEFT_BY_FORK: list[threading.local] = []
_FILES_LOCK = threading.Lock()


def _file_state(path: Path) -> _FileState:
    key = os.path.realpath(path)
    with _FILES_LOCK:
        state = _FILES.get(key)
        if state is None:
            state = _FILES[key] = _FileState()
        return state


def _fresh_locks_after_fork() -> None:
    # A forked child must not inherit a lock some other thread of the parent held; limiters the
    # child inherited keep their state object, so the lock is replaced in it, not the dict emptied.
    global _FILES_LOCK
    _FILES_LOCK = threading.Lock()
    for state in _FILES.values():
        state.lock = threading.Lock()
        # The parent's connections are never used (nor closed) here: SQLite forbids both across a fork.
        _LEFT_BY_FORK.append(state.cons)
        state.cons = threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_locks_after_fork)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class _Granted:
    """A thread's last grant: the tenant's counts then, its own call included."""
    tenant_id: str
    at: float
    minute: int
    day: int


class _Lease:
    def __init__(self, limiter: "SharedRateLimiter", lease_id: str) -> None:
        self._limiter = limiter
        self.lease_id = lease_id

    def __enter__(self) -> "_Lease":
        return self

    def __exit__(self, *exc: object) -> None:
        self._limiter._release(self.lease_id)


class SharedRateLimiter:
    """The client's limiter: `acquire(tenant_id)` before each HTTP attempt, `observe()` after.

    `per_minute`, `app_per_minute` and `concurrent` default to Xero's limits less headroom; the daily
    budget is `settings.daily_budget` (default 4,900 of Xero's 5,000).
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock = SYSTEM_CLOCK,
        *,
        per_minute: int = 57,
        app_per_minute: int = 9500,
        concurrent: int = XERO_CONCURRENT,
        daily_budget: int | None = None,
        path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.per_minute = per_minute
        self.app_per_minute = app_per_minute
        self.concurrent = concurrent
        self.daily_budget = int(daily_budget if daily_budget is not None else settings.daily_budget)
        self.path = Path(path) if path else db_path(settings)
        self._local = threading.local()
        self._why = threading.local()  # why this thread's last try must wait (WAIT_REASONS)
        # The app-wide count (every tenant's calls in the last minute) is the costliest read here
        # and changes the least: re-read at most every APP_RECOUNT seconds, adding the calls this
        # process granted since. Other processes' calls in that gap are few against the 500-call
        # margin under Xero's 10,000.
        self._state = _file_state(self.path)
        self._host = socket.gethostname()
        with storage.translated(self.path):
            self._con()  # makes the tables, once per file and process

    # -- SQLite plumbing -------------------------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        """This thread's connection to the file, whichever limiter asks (a sync makes a limiter per
        tenant); a new one when the file was deleted and made anew meanwhile."""
        held: tuple[sqlite3.Connection, tuple[int, int]] | None = getattr(self._state.cons, "held", None)
        try:
            st = os.stat(self.path)
            ident: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            ident = None
        if held is not None and held[1] == ident:
            return held[0]
        if held is not None:
            held[0].close()
        con = open_wal(self.path, timeout=LOCK_TIMEOUT)
        con.execute("PRAGMA synchronous=NORMAL")
        st = os.stat(self.path)
        ident = (st.st_dev, st.st_ino)
        if self._state.schema_ready != ident:
            con.executescript(_SCHEMA)
            self._state.schema_ready = ident
        self._state.cons.held = (con, ident)
        return con

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # storage.translated: a full disk or damaged file is one sentence naming it.
        with self._state.lock, storage.translated(self.path):
            con = self._con()
            self._begin(con)
            try:
                yield con
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    con.execute("ROLLBACK")
                raise
            else:
                con.execute("COMMIT")

    def _begin(self, con: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, waiting for as long as another process holds the file: a busy file
        is a wait, never a failed call, until LOCK_PATIENCE says something is stuck."""
        deadline = None
        while True:
            try:
                con.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if "locked" not in text and "busy" not in text:
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + LOCK_PATIENCE
                    log.warning("%s is held by another process; calls to Xero wait for it", self.path)
                elif now >= deadline:
                    raise StorageError(
                        f"{self.path} has been locked by another process for {LOCK_PATIENCE:.0f} seconds, so no "
                        "call to Xero could be counted against its limits. Stop the Ledgerlink process that is "
                        "stuck (see `python -m xero_core jobs`), or delete the file (it holds only call counters), "
                        "then run it again.", path=self.path, problem="io", reason=str(exc)) from None

    # -- the protocol ----------------------------------------------------------------------
    def acquire(self, tenant_id: str) -> _Lease:
        """Block (through `clock.sleep`) until a call for `tenant_id` may go; returns a lease to
        hold for the duration of the HTTP attempt. Raises DailyLimitReached when the day is spent."""
        while True:
            wait, lease_id = self._try_acquire(tenant_id)
            if lease_id is not None:
                return _Lease(self, lease_id)
            listener = _on_wait.get()
            if listener is not None and wait >= WAIT_NOTICE:
                try:
                    listener(wait, getattr(self._why, "reason", "minute"))
                except Exception:  # progress is best effort
                    log.debug("a limiter wait listener failed", exc_info=True)
            self.clock.sleep(max(wait, 0.001))

    def _try_acquire(self, tenant_id: str) -> tuple[float, str | None]:
        now = self.clock.time()
        self._local.granted = None
        with self._tx() as con:
            self._tidy(con, now)
            blocks = con.execute(
                "SELECT kind, until, reason FROM blocks WHERE scope IN (?, ?) AND until > ?", (tenant_id, APP_SCOPE, now)
            ).fetchall()
            for kind, until, reason in blocks:
                if kind == "day":
                    raise DailyLimitReached(
                        f"daily budget reached, resumes at {_iso(until)} ({reason})",
                        resumes_at=datetime.fromtimestamp(until, timezone.utc),
                        tenant_id=tenant_id,
                    )
            if blocks:
                self._why.reason = "retry"
                return max(until for _, until, _ in blocks) - now, None

            minute_used, day_used = self._used_both(con, tenant_id, now)
            if day_used >= self.daily_budget:
                resumes = self._frees_at(con, tenant_id, now, "day", day_used - self.daily_budget + 1) + DAY
                raise DailyLimitReached(
                    f"daily budget reached, resumes at {_iso(resumes)} "
                    f"({day_used} calls in the last 24 hours; budget {self.daily_budget} of Xero's {XERO_PER_DAY})",
                    resumes_at=datetime.fromtimestamp(resumes, timezone.utc),
                    tenant_id=tenant_id,
                )
            if self._in_flight(con, tenant_id) >= self.concurrent:
                # Only now is it worth looking for leases whose process or time is gone.
                self._reap_leases(con, now)
                if self._in_flight(con, tenant_id) >= self.concurrent:
                    return POLL_SECONDS, None
            if minute_used >= self.per_minute:
                t = self._frees_at(con, tenant_id, now, "minute", minute_used - self.per_minute + 1)
                self._why.reason = "minute"
                return t + MINUTE - now + 0.001, None
            app_used = self._app_count(con, now)
            if app_used >= self.app_per_minute:
                t = con.execute("SELECT min(t) FROM calls WHERE t > ? AND win != 'day'", (now - MINUTE,)).fetchone()[0]
                self._why.reason = "app"
                return t + MINUTE - now + 0.001, None
            lease_id = uuid.uuid4().hex
            con.execute("INSERT INTO calls (scope, t, weight, win) VALUES (?, ?, 1, 'all')", (tenant_id, now))
            self._counted(1)
            con.execute(
                "INSERT INTO leases VALUES (?, ?, ?, ?, ?)",
                (lease_id, tenant_id, self._host, os.getpid(), now + LEASE_SECONDS),
            )
            # What `observe` compares Xero's headers with, so that agreeing headers need no transaction.
            self._local.granted = _Granted(tenant_id, now, minute_used + 1, day_used + 1)
            return 0.0, lease_id

    def _release(self, lease_id: str) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))

    @staticmethod
    def _used(con: sqlite3.Connection, scope: str, now: float, win: str) -> int:
        since = now - (DAY if win == "day" else MINUTE)
        return int(con.execute(
            "SELECT coalesce(sum(weight), 0) FROM calls WHERE scope = ? AND t > ? AND win IN ('all', ?)",
            (scope, since, win)).fetchone()[0])

    @staticmethod
    def _used_both(con: sqlite3.Connection, scope: str, now: float) -> tuple[int, int]:
        """(minute, day) counts of `scope` in one pass over its day."""
        minute, day = con.execute(
            "SELECT coalesce(sum(weight) FILTER (WHERE t > ? AND win IN ('all', 'minute')), 0), "
            "coalesce(sum(weight) FILTER (WHERE win IN ('all', 'day')), 0) FROM calls WHERE scope = ? AND t > ?",
            (now - MINUTE, scope, now - DAY)).fetchone()
        return int(minute), int(day)

    @staticmethod
    def _in_flight(con: sqlite3.Connection, tenant_id: str) -> int:
        return int(con.execute("SELECT count(*) FROM leases WHERE tenant_id = ?", (tenant_id,)).fetchone()[0])

    @staticmethod
    def _frees_at(con: sqlite3.Connection, scope: str, now: float, win: str, need: int) -> float:
        """The time of the call whose ageing-out frees `need` units of the window."""
        since = now - (DAY if win == "day" else MINUTE)
        acc = 0
        t = since
        for t, w in con.execute("SELECT t, weight FROM calls WHERE scope = ? AND t > ? AND win IN ('all', ?) ORDER BY t",
                                (scope, since, win)):
            acc += w
            if acc >= need:
                break
        return t

    def _app_count(self, con: sqlite3.Connection, now: float) -> int:
        """Called inside `_tx` (the process lock held)."""
        seen = self._state.app_seen
        if seen is not None and 0 <= now - seen[0] < APP_RECOUNT and seen[1] < self.app_per_minute * 0.8:
            return seen[1]
        n = self._app_used(con, now)
        self._state.app_seen = (now, n)
        return n

    def _counted(self, weight: int) -> None:
        """Calls (or a correction) just added to the app-wide window; inside `_tx`."""
        seen = self._state.app_seen
        if seen is not None:
            self._state.app_seen = (seen[0], seen[1] + weight)

    @staticmethod
    def _app_used(con: sqlite3.Connection, now: float) -> int:
        return int(con.execute("SELECT coalesce(sum(weight), 0) FROM calls WHERE t > ? AND win != 'day'",
                               (now - MINUTE,)).fetchone()[0])

    def _reap_leases(self, con: sqlite3.Connection, now: float) -> None:
        con.execute("DELETE FROM leases WHERE expires_at <= ?", (now,))
        for lease_id, pid in con.execute(
            "SELECT lease_id, pid FROM leases WHERE host = ? AND pid != ?", (self._host, os.getpid())
        ).fetchall():
            if not _pid_alive(pid):
                con.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))

    def _tidy(self, con: sqlite3.Connection, now: float) -> None:
        """Keep the file small: nothing older than a day matters, nor a block that has ended.
        Every query filters by time already, so once per TIDY_EVERY of the clock is enough."""
        last = self._state.tidied
        if last is not None and 0 <= now - last < TIDY_EVERY:
            return
        self._state.tidied = now
        con.execute("DELETE FROM calls WHERE t <= ?", (now - DAY - MINUTE,))
        con.execute("DELETE FROM blocks WHERE until <= ?", (now,))
        self._reap_leases(con, now)

    def observe(self, tenant_id: str, response: httpx.Response) -> None:
        """Correct the local counts from Xero's headers; record 429 waits for every process."""
        h = response.headers
        now = self.clock.time()

        def header_int(name: str) -> int | None:
            v = h.get(name)
            try:
                return int(v) if v is not None else None
            except ValueError:
                return None

        minute_left = header_int("X-MinLimit-Remaining")
        day_left = header_int("X-DayLimit-Remaining")
        app_left = header_int("X-AppMinLimit-Remaining")
        status = getattr(response, "status_code", 200)
        if minute_left is None and day_left is None and app_left is None and status != 429:
            return
        if status != 429 and self._agrees(tenant_id, now, minute_left, day_left, app_left):
            return
        with self._tx() as con:
            if status == 429:
                self._record_429(con, tenant_id, h, now)
                return
            # Xero counted more than we did: someone else uses this tenant. Add the difference.
            # Tolerance 1: a call of ours may be in flight between Xero's count and ours.
            if minute_left is not None:
                gap = (XERO_PER_MINUTE - minute_left) - self._used(con, tenant_id, now, "minute")
                if gap > 1:
                    con.execute("INSERT INTO calls VALUES (?, ?, ?, 'minute')", (tenant_id, now, gap))
                    self._counted(gap)  # the app-wide window counts it too
            if day_left is not None:
                gap = (XERO_PER_DAY - day_left) - self._used(con, tenant_id, now, "day")
                if gap > 1:
                    con.execute("INSERT INTO calls VALUES (?, ?, ?, 'day')", (tenant_id, now, gap))
            if app_left is not None:
                gap = (XERO_APP_PER_MINUTE - app_left) - self._app_used(con, now)
                if gap > 1:
                    con.execute("INSERT INTO calls VALUES (?, ?, ?, 'minute')", (APP_SCOPE, now, gap))
                    self._counted(gap)

    def _agrees(self, tenant_id: str, now: float, minute_left: int | None, day_left: int | None,
                app_left: int | None) -> bool:
        """Whether Xero's counts are within the tolerance of ours as this thread last saw them
        (at its grant, moments ago): then no correction is due and no transaction is needed.
        Ours then is a lower bound of ours now (other calls only add), so a gap it shows may be
        none; `observe` then recounts exactly."""
        g = getattr(self._local, "granted", None)
        if g is None or g.tenant_id != tenant_id or not 0 <= now - g.at < AGREE_SECONDS:
            return False
        if minute_left is not None and (XERO_PER_MINUTE - minute_left) - g.minute > 1:
            return False
        if day_left is not None and (XERO_PER_DAY - day_left) - g.day > 1:
            return False
        if app_left is not None:
            seen = self._state.app_seen
            if seen is None or not 0 <= now - seen[0] < APP_RECOUNT:
                return False
            if (XERO_APP_PER_MINUTE - app_left) - seen[1] > 1:
                return False
        return True

    @staticmethod
    def _record_429(con: sqlite3.Connection, tenant_id: str, h: httpx.Headers, now: float) -> None:
        """A 429's Retry-After is Xero's own word on when its window reopens: trust it over any
        count (its X-*Remaining headers read 0 and would otherwise block a whole day)."""
        try:
            retry_after = float(h.get("Retry-After") or "")
        except ValueError:
            retry_after = None
        problem = (h.get("X-Rate-Limit-Problem") or "").strip().lower()
        scope = tenant_id
        if problem == "day":
            until = now + (retry_after if retry_after is not None else DAY)
            kind, reason = "day", "Xero answered 429: day limit"
            # The day window restarts when it reopens: corrections for the old window go.
            con.execute("DELETE FROM calls WHERE scope = ? AND win = 'day'", (tenant_id,))
        elif problem in ("appminute", "app"):
            until = now + (retry_after if retry_after is not None else MINUTE)
            kind, reason, scope = "minute", "Xero answered 429: app minute limit", APP_SCOPE
        else:
            until = now + (retry_after if retry_after is not None else 1.0)
            kind, reason = "minute", f"Xero answered 429: {problem or 'rate limit'}"
        con.execute(
            "INSERT INTO blocks VALUES (?, ?, ?, ?) ON CONFLICT (scope, kind) DO UPDATE SET "
            "until = max(until, excluded.until), reason = excluded.reason",
            (scope, kind, until, reason),
        )

    # -- reporting -------------------------------------------------------------------------
    def status(self, tenant_id: str) -> dict[str, Any]:
        now = self.clock.time()
        with self._tx() as con:
            used = self._used(con, tenant_id, now, "day")
            minute = self._used(con, tenant_id, now, "minute")
            in_flight = con.execute("SELECT count(*) FROM leases WHERE tenant_id = ?", (tenant_id,)).fetchone()[0]
            day_block = con.execute(
                "SELECT until FROM blocks WHERE scope = ? AND kind = 'day' AND until > ?", (tenant_id, now)
            ).fetchone()
            resumes = None
            if day_block:
                resumes = day_block[0]
            elif used >= self.daily_budget:
                resumes = self._frees_at(con, tenant_id, now, "day", used - self.daily_budget + 1) + DAY
        return {
            "tenant_id": tenant_id,
            "calls_today": int(used),
            "budget": self.daily_budget,
            "remaining": max(0, self.daily_budget - int(used)) if not day_block else 0,
            "calls_last_minute": int(minute),
            "in_flight": int(in_flight),
            "resumes_at": datetime.fromtimestamp(resumes, timezone.utc).isoformat() if resumes else None,
        }


def budget_status(settings: Settings, tenant_id: str, clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """Calls used in the last 24 hours, what remains of the daily budget, and when it resumes."""
    return SharedRateLimiter(settings, clock).status(tenant_id)
