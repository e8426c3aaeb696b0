"""What a financial step uses of the context the pipeline hands it, and what it returns.

The step protocol and the executor live in xero_core.pipeline (pipeline/step.py, executor.py), which
sits above sync/; sync/ never imports it (layers point one way). So sync/ says here, as a
typing.Protocol, which part of pipeline.step.StepContext its steps use, and makes its `Outcome`s,
which satisfy pipeline.step.StepOutcome; mypy checks both where the plan hands these steps to the
executor. Also the crash tests' checkpoints (pages fetched, frames written, steps ended).
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable, Protocol

from ..clock import Clock
from ..settings import Settings

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


class Context(Protocol):
    """The part of pipeline.step.StepContext a financial step reads and sets."""

    settings: Settings
    tenant_id: str
    client: Any  # XeroClient
    weeks: list[date]
    clock: Clock
    step: str
    state: dict[str, Any]
    log_in_tx: Callable[[Any, int], None] | None
    estimate_total: Callable[[int], int] | None

    def report(self, message: str | None = None, *, done: int | None = None, total: int | None = None,
               estimated: bool = False, per_call: int = 1) -> None: ...

    def check_cancel(self) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """A step's end as it returns it (pipeline.step.StepOutcome)."""

    rows: int = 0
    status: str = "success"  # success | failed | partial | skipped
    note: str | None = None
    detail: dict[str, Any] | None = None
