"""What a sync step receives and returns, and the result of a whole run."""
from __future__ import annotations

import os
import signal
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Callable

from ..clock import Clock
from ..errors import XeroError

STATUSES = ("success", "failed", "partial", "skipped")
# Crash tests: `XERO_SYNC_KILL_AT=N` makes this process SIGKILL itself at its N-th checkpoint
# (pages fetched, frames written, steps ended), to prove a sync killed anywhere resumes cleanly.
KILL_ENV = "XERO_SYNC_KILL_AT"
_checkpoints = 0


def checkpoint(label: str) -> None:
    global _checkpoints
    target = os.environ.get(KILL_ENV)
    if not target:
        return
    _checkpoints += 1
    if _checkpoints == int(target):
        os.kill(os.getpid(), signal.SIGKILL)


class SyncCancelled(XeroError):
    """The sync was asked to stop (a person pressed Cancel, or the process is shutting down).

    A XeroError on purpose: every step already treats one mid-paging as "keep what was fetched,
    leave the cursor where the last committed chunk put it", so a cancelled step writes whole
    chunks only and the next run resumes from its cursor."""


@dataclass
class StepContext:
    settings: Any
    tenant_id: str
    tenant_type: str
    client: Any  # XeroClient
    weeks: list[date]  # the report weeks (week_ending), oldest first
    today: date
    clock: Clock
    trigger: str
    run_id: str
    progress: Callable[[dict], None] | None = None
    step: str = ""
    explicit_weeks: bool = False  # --weeks given (a backfill) rather than the daily default
    state: dict = field(default_factory=dict)  # read once per run before any fetch (cursors)
    log_in_tx: Callable[[Any, int], None] | None = None  # writes this step's success row in a transaction
    logged: bool = False
    cancel: Callable[[], str | None] | None = None  # a reason when the sync must stop at the next page
    transport: Any = None  # the HTTP transport the run's client uses (tests: the fake), for steps making their own
    estimate_total: Callable[[int], int] | None = None  # no total from Xero: the step's guess, from what it has seen
    done: int | None = None  # the step's last `report`: units done of total (estimated or not)
    total: int | None = None
    estimated: bool = False

    def check_cancel(self) -> None:
        reason = self.cancel() if self.cancel else None
        if reason:
            raise SyncCancelled(reason, tenant_id=self.tenant_id)

    def report(self, message: str | None = None, fraction: float | None = None, status: str = "running", *,
               done: int | None = None, total: int | None = None, estimated: bool = False, per_call: int = 1,
               count: int | None = None) -> None:
        """Progress of the step (between pages and chunks); also where a cancel is noticed.

        `done` of `total` units (weeks, records, journal numbers: the step's own), `estimated` when the
        total is a guess, `per_call` units a Xero call brings (what the time left is paced by: Xero
        allows 60 calls a minute). The tracker computes the time left from these alone; it knows no
        step by name. `count` is `done`'s older name."""
        done = done if done is not None else count
        if done is not None:
            self.done, self.total, self.estimated = done, total, estimated
        if self.progress:
            try:
                self.progress({"tenant_id": self.tenant_id, "step": self.step, "status": status,
                               "message": (message or f"{self.step}: {done:,}") if done is not None else message,
                               "fraction": fraction, "count": done, "total": total, "estimated_total": estimated,
                               "per_call": per_call})
            except Exception:  # a broken progress bar never breaks a sync
                pass
        self.check_cancel()

    def units_read(self) -> int | None:
        """What the step read, when it said so against a known total (report weeks): None otherwise."""
        return self.done if self.done is not None and self.total and not self.estimated else None


@dataclass
class StepOutcome:
    rows: int = 0
    status: str = "success"  # success | failed | partial | skipped
    note: str | None = None
    detail: dict | None = None


@dataclass
class StepResult:
    step: str
    status: str
    rows: int = 0
    api_calls: int = 0
    bytes_downloaded: int = 0
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    period_start: date | None = None
    period_end: date | None = None
    benign_skip: bool = False  # skipped for the plan's tier or by the step's own choice: not a failure
    detail: dict | None = None  # what the step adds (e.g. the clients step's linked / created / ambiguous)
    read: int | None = None  # units read against a known total (report weeks), when it said so

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("started_at", "finished_at", "period_start", "period_end"):
            if d[k] is not None:
                d[k] = d[k].isoformat()
        return d


@dataclass
class SyncResult:
    tenant_id: str
    tenant_name: str | None = None
    tenant_type: str | None = None
    run_id: str = ""
    trigger: str = "manual"
    steps: list[StepResult] = field(default_factory=list)
    busy: str | None = None  # another sync held the tenant: who
    reconnect: str | None = None  # the connection needs a person: the reason and the fix
    cancelled: str | None = None  # stopped on request (cancel or shutdown): why
    unreachable: str | None = None  # Xero's address refused or did not resolve: the one sentence saying so

    @property
    def ok(self) -> bool:
        """Every step succeeded; a step skipped because the plan refuses it is not a failure."""
        if self.busy:
            return False
        return all(s.status == "success" or (s.status == "skipped" and s.benign_skip) for s in self.steps)

    @property
    def status(self) -> str:
        if self.busy:
            return "skipped"
        if self.ok:
            return "success"
        if any(s.status == "success" for s in self.steps):
            return "partial"
        return "failed"

    def to_dict(self) -> dict:
        return {
            "tenant_id": self.tenant_id, "tenant_name": self.tenant_name, "tenant_type": self.tenant_type,
            "run_id": self.run_id, "trigger": self.trigger, "status": self.status, "ok": self.ok, "busy": self.busy,
            "reconnect": self.reconnect, "cancelled": self.cancelled, "unreachable": self.unreachable,
            "api_calls": sum(s.api_calls for s in self.steps),
            "bytes_downloaded": sum(s.bytes_downloaded for s in self.steps),
            "steps": [s.to_dict() for s in self.steps],
        }
