"""The step protocol: what the executor (pipeline/executor.py) hands a step and reads back.

A step is `fn(ctx: StepContext) -> StepOutcome`, planned as data by pipeline/plan.py: the financial
steps of xero_core.sync and the plan's adapters of xero_core.practice. The executor builds one
`StepContext` per step; a step reports its progress through it (`ctx.report(done=, total=,
estimated=)`) and notices a cancel there.

Layers point one way (pipeline -> sync/practice -> engine), so sync/ never imports this module: it
declares, as a typing.Protocol (sync/context.py `Context`), the part of a StepContext its steps use,
and returns sync.context.Outcome, one of the objects `StepOutcome` describes. mypy checks both where
the plan hands sync's steps to the executor (`Step`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable, Protocol

from ..clock import Clock
from ..errors import XeroError
from ..settings import Settings
from .progress import ProgressEvent


class SyncCancelled(XeroError):
    """The sync was asked to stop (a person pressed Cancel, or the process is shutting down).

    A XeroError on purpose: every step already treats one mid-paging as "keep what was fetched,
    leave the cursor where the last committed chunk put it", so a cancelled step writes whole
    chunks only and the next run resumes from its cursor."""


class StepOutcome(Protocol):
    """What a step returns; the executor reads these four (sync.context.Outcome is the plain one)."""

    @property
    def rows(self) -> int: ...

    @property
    def status(self) -> str: ...  # success | failed | partial | skipped

    @property
    def note(self) -> str | None: ...

    @property
    def detail(self) -> dict[str, Any] | None: ...


@dataclass
class StepContext:
    """One step's view of the run (the executor builds it; sync.context.Context is the part sync uses)."""

    settings: Settings
    tenant_id: str
    client: Any  # XeroClient (its counters: api_calls, bytes_downloaded)
    weeks: list[date]  # the report weeks (week_ending), oldest first
    clock: Clock
    step: str = ""
    state: dict[str, Any] = field(default_factory=dict)  # read once per run before any fetch (cursors)
    log_in_tx: Callable[[Any, int], None] | None = None  # writes this step's success row in a transaction
    logged: bool = False
    progress: Callable[[ProgressEvent], None] | None = None
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

    def report(self, message: str | None = None, *, done: int | None = None, total: int | None = None,
               estimated: bool = False, per_call: int = 1) -> None:
        """Progress of the step (between pages and chunks); also where a cancel is noticed.

        `done` of `total` units (weeks, records, journal numbers: the step's own), `estimated` when the
        total is a guess, `per_call` units a Xero call brings (what the time left is paced by: Xero
        allows 60 calls a minute). The tracker computes the time left from these alone; it knows no
        step by name."""
        if done is not None:
            self.done, self.total, self.estimated = done, total, estimated
        if self.progress:
            try:
                self.progress(ProgressEvent(
                    "running", self.tenant_id, self.step,
                    (message or f"{self.step}: {done:,}") if done is not None else message,
                    count=done, total=total, estimated=estimated, per_call=per_call))
            except Exception:  # last-resort boundary: a broken progress bar never breaks a sync
                pass
        self.check_cancel()

    def units_read(self) -> int | None:
        """What the step read, when it said so against a known total (report weeks): None otherwise."""
        return self.done if self.done is not None and self.total and not self.estimated else None


Step = Callable[[StepContext], StepOutcome]
