"""What a run returns: `SyncResult` (one tenant's run) of `StepResult`s (one per step), and their JSON
(a job keeps it in jobs.sqlite; `--json` prints it)."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any, Mapping


@dataclass
class StepResult:
    step: str
    status: str  # success | failed | partial | skipped
    rows: int = 0
    api_calls: int = 0
    bytes_downloaded: int = 0
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    period_start: date | None = None
    period_end: date | None = None
    benign_skip: bool = False  # skipped for the plan's tier or by the step's own choice: not a failure
    # What the step adds, in its own words: clients (linked / created / ambiguous ...), documents (pushed /
    # failed / messages), webhooks (processed / ignored / failed), xpm, chase (sent / skipped ...), plus a
    # "note". One shape per step, owned by practice/, and the same JSON sync_log.detail stores: an open
    # mapping, not a closed record (a union of five dataclasses here would make pipeline/ own practice/'s).
    detail: dict[str, Any] | None = None
    read: int | None = None  # units read against a known total (report weeks), when it said so

    @property
    def problem(self) -> bool:
        """Failed, partial, or skipped for a reason that is not the plan's own choice."""
        return self.status in ("failed", "partial") or (self.status == "skipped" and not self.benign_skip)

    def note_unlogged(self, note: str | None) -> None:
        """Its sync_log row could not be written: said on the step (the data is in; its row is not)."""
        if note:
            self.error = f"{self.error}; {note}" if self.error else note
            if self.status == "success":
                self.status = "partial"

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies `detail` value by value, ~1 ms a step, and every job's
        # result is written, and the scheduler prints, once per tenant (issue 15's CPU budget).
        d = {f.name: getattr(self, f.name) for f in _STEP_FIELDS}
        for k in ("started_at", "finished_at", "period_start", "period_end"):
            if d[k] is not None:
                d[k] = d[k].isoformat()
        d["detail"] = copy.deepcopy(self.detail)  # the dict's own: a caller editing it leaves the step's alone
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StepResult:
        """The inverse of to_dict; a key an older release did not write takes its default."""
        def when(k: str) -> datetime | None:
            return datetime.fromisoformat(d[k]) if d.get(k) else None

        def day(k: str) -> date | None:
            return date.fromisoformat(d[k]) if d.get(k) else None

        return cls(step=str(d.get("step") or ""), status=str(d.get("status") or "failed"),
                   rows=int(d.get("rows") or 0), api_calls=int(d.get("api_calls") or 0),
                   bytes_downloaded=int(d.get("bytes_downloaded") or 0), error=d.get("error"),
                   started_at=when("started_at"), finished_at=when("finished_at"),
                   period_start=day("period_start"), period_end=day("period_end"),
                   benign_skip=bool(d.get("benign_skip", False)), detail=d.get("detail"), read=d.get("read"))


_STEP_FIELDS = fields(StepResult)


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
    history_job: str | None = None  # the job the history backfill split off this run was queued as

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

    @property
    def api_calls(self) -> int:
        return sum(s.api_calls for s in self.steps)

    def first_problem(self) -> str | None:
        """The one sentence a failed job shows: Xero unreachable, a reconnect, busy, else the first
        failing step's error."""
        if self.unreachable or self.reconnect or self.busy:  # the one sentence, not repeated per step
            return self.unreachable or self.reconnect or self.busy
        return next((f"{s.step}: {s.error}" for s in self.steps if s.problem and s.error), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id, "tenant_name": self.tenant_name, "tenant_type": self.tenant_type,
            "run_id": self.run_id, "trigger": self.trigger, "status": self.status, "ok": self.ok, "busy": self.busy,
            "reconnect": self.reconnect, "cancelled": self.cancelled, "unreachable": self.unreachable,
            "api_calls": self.api_calls,
            "bytes_downloaded": sum(s.bytes_downloaded for s in self.steps),
            "steps": [s.to_dict() for s in self.steps],
        } | ({"history_job": self.history_job} if self.history_job else {})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SyncResult:
        """The inverse of to_dict (a job's stored result): status, ok and the sums are derived from the
        steps again; a key an older release did not write takes its default."""
        return cls(tenant_id=str(d.get("tenant_id") or ""), tenant_name=d.get("tenant_name"),
                   tenant_type=d.get("tenant_type"), run_id=str(d.get("run_id") or ""),
                   trigger=str(d.get("trigger") or "manual"),
                   steps=[StepResult.from_dict(s) for s in d.get("steps") or []],
                   busy=d.get("busy"), reconnect=d.get("reconnect"), cancelled=d.get("cancelled"),
                   unreachable=d.get("unreachable"), history_job=d.get("history_job"))
