"""What a sync is asked to do: `SyncRequest`, plain data with a JSON round-trip (jobs store it)."""
from __future__ import annotations

from typing import Any

import json
from dataclasses import dataclass
from datetime import date

TRIGGERS = ("manual", "scheduler", "cli", "webhook", "demo")
DEFAULT_WEEKS = 2  # the daily run: current and previous week (Xero reports change retroactively)
# What `demo` syncs by default: two years of weekly reports (the notebooks compare a week with the same
# week last year); the latest weeks come first, the rest as a history backfill. analysis.HOW_TO_GET_DATA
# quotes it.
DEMO_WEEKS = 104


@dataclass(frozen=True)
class SyncRequest:
    """One tenant's sync: which steps (`only`, None = the whole plan), which report weeks (`weeks`
    ending with the current week, or the one week holding `week_ending`), who asked and why.

    `history`: this is a history backfill (pipeline.plan.split_history makes them): the report weeks
    older than the latest `skip_weeks` of the `weeks`, and the journal history. It runs at a lower
    priority and steps aside for any other sync of the same organisation (pipeline.worker)."""

    tenant_id: str
    only: frozenset[str] | None = None
    weeks: int | None = None
    week_ending: date | None = None
    trigger: str = "manual"
    requested_by: str | None = None
    history: bool = False
    skip_weeks: int = 0

    def __post_init__(self) -> None:
        if self.only is not None and not isinstance(self.only, frozenset):
            object.__setattr__(self, "only", frozenset(self.only))
        if isinstance(self.week_ending, str):
            object.__setattr__(self, "week_ending", date.fromisoformat(self.week_ending))
        if self.weeks is not None and int(self.weeks) < 1:
            raise ValueError("weeks must be 1 or more")
        if self.weeks is not None and self.week_ending is not None:
            raise ValueError("give either a number of weeks or one week ending date, not both")

    @property
    def is_backfill(self) -> bool:
        return self.history

    @property
    def priority(self) -> int:
        """Lower runs first: daily syncs and Sync now (0) before history backfills (1)."""
        return 1 if self.is_backfill else 0

    def covers(self, other: "SyncRequest") -> bool:
        """True when running this request does everything `other` asks (its steps, its report weeks):
        a request joining a job that does not cover it must not be reported as done (issue 21 §3)."""
        if self.only is not None and (other.only is None or not other.only <= self.only):
            return False
        if self.history and other.history and self.skip_weeks > other.skip_weeks:
            return False  # a history that leaves out more of the newest weeks
        if other.week_ending is not None or self.week_ending is not None:
            return self.week_ending == other.week_ending and other.weeks is None
        return (other.weeks or DEFAULT_WEEKS) <= (self.weeks or DEFAULT_WEEKS)

    def describe(self) -> str:
        if self.history:
            bits = []
            if self.weeks and self.weeks > self.skip_weeks and (self.only is None or self.only & {"pnl", "bank"}):
                bits.append(f"{self.weeks - self.skip_weeks} older weeks of reports")
            if self.only is None or "journals" in self.only:
                bits.append("the journal history")
            return "history: " + (" and ".join(bits) or "nothing")
        bits = []
        if self.only is not None:
            bits.append("only " + ",".join(sorted(self.only)))
        if self.week_ending is not None:
            bits.append(f"week ending {self.week_ending.isoformat()}")
        elif self.weeks:
            bits.append(f"{self.weeks} weeks")
        return "full sync" + (f" ({'; '.join(bits)})" if bits else "")

    def to_dict(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "only": sorted(self.only) if self.only is not None else None,
                "weeks": self.weeks, "week_ending": self.week_ending.isoformat() if self.week_ending else None,
                "trigger": self.trigger, "requested_by": self.requested_by,
                **({"history": True, "skip_weeks": self.skip_weeks} if self.history else {})}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SyncRequest":
        return cls(tenant_id=d["tenant_id"], only=frozenset(d["only"]) if d.get("only") is not None else None,
                   weeks=d.get("weeks"), week_ending=date.fromisoformat(d["week_ending"]) if d.get("week_ending") else None,
                   trigger=d.get("trigger") or "manual", requested_by=d.get("requested_by"),
                   history=bool(d.get("history")), skip_weeks=int(d.get("skip_weeks") or 0))

    @classmethod
    def from_json(cls, text: str) -> "SyncRequest":
        return cls.from_dict(json.loads(text))
