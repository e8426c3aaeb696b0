"""What a sync is asked to do: `SyncRequest`, plain data with a JSON round-trip (jobs store it)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

TRIGGERS = ("manual", "scheduler", "cli", "webhook", "demo")
BACKFILL_WEEKS = 8  # more report weeks than this is a backfill: it queues behind daily syncs


@dataclass(frozen=True)
class SyncRequest:
    """One tenant's sync: which steps (`only`, None = the whole plan), which report weeks (`weeks`
    ending with the current week, or the one week holding `week_ending`), who asked and why."""

    tenant_id: str
    only: frozenset[str] | None = None
    weeks: int | None = None
    week_ending: date | None = None
    trigger: str = "manual"
    requested_by: str | None = None

    def __post_init__(self):
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
        return bool(self.weeks and self.weeks > BACKFILL_WEEKS)

    @property
    def priority(self) -> int:
        """Lower runs first: daily syncs and Sync now (0) before backfills (1)."""
        return 1 if self.is_backfill else 0

    def covers(self, other: "SyncRequest") -> bool:
        """True when running this request does everything `other` asks (its steps, its report weeks):
        a request joining a job that does not cover it must not be reported as done (issue 21 §3)."""
        if self.only is not None and (other.only is None or not other.only <= self.only):
            return False
        if other.week_ending is not None or self.week_ending is not None:
            return self.week_ending == other.week_ending and other.weeks is None
        from ..sync.runner import DEFAULT_WEEKS

        return (other.weeks or DEFAULT_WEEKS) <= (self.weeks or DEFAULT_WEEKS)

    def describe(self) -> str:
        bits = []
        if self.only is not None:
            bits.append("only " + ",".join(sorted(self.only)))
        if self.week_ending is not None:
            bits.append(f"week ending {self.week_ending.isoformat()}")
        elif self.weeks:
            bits.append(f"{self.weeks} weeks")
        return "full sync" + (f" ({'; '.join(bits)})" if bits else "")

    def to_dict(self) -> dict:
        return {"tenant_id": self.tenant_id, "only": sorted(self.only) if self.only is not None else None,
                "weeks": self.weeks, "week_ending": self.week_ending.isoformat() if self.week_ending else None,
                "trigger": self.trigger, "requested_by": self.requested_by}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "SyncRequest":
        return cls(tenant_id=d["tenant_id"], only=frozenset(d["only"]) if d.get("only") is not None else None,
                   weeks=d.get("weeks"), week_ending=date.fromisoformat(d["week_ending"]) if d.get("week_ending") else None,
                   trigger=d.get("trigger") or "manual", requested_by=d.get("requested_by"))

    @classmethod
    def from_json(cls, text: str) -> "SyncRequest":
        return cls.from_dict(json.loads(text))
