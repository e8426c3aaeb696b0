"""The scheduler's time arithmetic, pure (no I/O, no clock of its own): the daily slot in local time
across daylight-saving changes, the next run, catch-up, the retry back-off, XERO_SYNC_EXTRA.

Apart from the loop (xero_core/scheduling.py) so it can be read and tested on its own: every
function takes the instant it reasons about.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timedelta, timezone
from zoneinfo import ZoneInfo

from .errors import LedgerlinkError

MIN_EXTRA_MINUTES = 5  # Xero allows 60 calls/min and 5,000/day per tenant: no tighter loops
# A daily run with failed tenants is tried again the same day for those tenants: after 5 minutes,
# then 10, 20, 40, then every hour, until one succeeds or the next daily run is sooner. A held
# database or a network outage must not cost a day of data.
RETRY_FIRST_SECONDS = 300.0
RETRY_MAX_SECONDS = 3600.0


class SchedulerError(LedgerlinkError):
    """A scheduler setting or state problem; the message names the fix."""


class SchedulerAlreadyRunning(SchedulerError):
    pass


CHASE_TICK_MINUTES = 15  # how often the scheduler sends chase reminders that came due between cycles


def parse_sync_time(text: str) -> dtime:
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", text or "")
    if not m or not (0 <= int(m.group(1)) < 24 and 0 <= int(m.group(2)) < 60):
        raise SchedulerError(f"XERO_SYNC_TIME={text!r} must be HH:MM in 24-hour time, e.g. 06:00.")
    return dtime(int(m.group(1)), int(m.group(2)))


def daily_slot(day: date, sync_time: str, tz: str) -> datetime:
    """The UTC instant of `sync_time` on local calendar `day` in `tz`.

    zoneinfo's fold=0 resolves a time in a DST gap with the offset before the gap (02:30 on the
    Sydney change day is 03:30 AEDT) and an ambiguous time to its first occurrence.
    """
    local = datetime.combine(day, parse_sync_time(sync_time), tzinfo=ZoneInfo(tz))
    return local.astimezone(timezone.utc)


def _slots_around(now: datetime, sync_time: str, tz: str) -> list[datetime]:
    today = now.astimezone(ZoneInfo(tz)).date()
    return [daily_slot(today + timedelta(days=d), sync_time, tz) for d in (-2, -1, 0, 1, 2)]


def next_daily_run(now: datetime, sync_time: str, tz: str) -> datetime:
    """The first daily slot strictly after `now` (aware)."""
    return min(s for s in _slots_around(now, sync_time, tz) if s > now)


def last_daily_slot(now: datetime, sync_time: str, tz: str) -> datetime:
    """The most recent daily slot at or before `now` (aware)."""
    return max(s for s in _slots_around(now, sync_time, tz) if s <= now)


def retry_delay(attempt: int) -> float:
    """Seconds before retry number `attempt` (1, 2, ...) of a daily run's failed tenants."""
    return min(RETRY_FIRST_SECONDS * 2.0 ** max(attempt - 1, 0), RETRY_MAX_SECONDS)


def catch_up_due(last_daily: datetime | None, now: datetime, sync_time: str, tz: str) -> bool:
    """True when a scheduled daily run fell between the last recorded one and `now`.

    No record (a first start) is not a missed run: the first sync happens at the next slot,
    or now with `--once` / the app's "Sync now".
    """
    if last_daily is None:
        return False
    return last_daily < last_daily_slot(now, sync_time, tz)


@dataclass(frozen=True)
class ExtraInterval:
    """One XERO_SYNC_EXTRA entry: sync only `resources` every `seconds`."""

    resources: tuple[str, ...]
    seconds: int

    @property
    def label(self) -> str:
        mins = self.seconds // 60
        every = f"{mins // 60} h" if mins % 60 == 0 else f"{mins} min"
        return f"{'+'.join(self.resources)} every {every}"


def parse_extra(spec: str) -> list[ExtraInterval]:
    """Parse XERO_SYNC_EXTRA: comma-separated `resource=<n>m|<n>h`, e.g. "invoices=60m,contacts=2h".

    Several resources may share an interval with `+` ("invoices+contacts=30m").
    """
    out: list[ExtraInterval] = []
    for part in (p.strip() for p in (spec or "").split(",")):
        if not part:
            continue
        m = re.fullmatch(r"([a-z_][a-z0-9_]*(?:\+[a-z_][a-z0-9_]*)*)\s*=\s*(\d+)\s*([mh])", part, re.I)
        if not m:
            raise SchedulerError(
                f"XERO_SYNC_EXTRA entry {part!r} is not resource=<minutes>m or resource=<hours>h, "
                'e.g. XERO_SYNC_EXTRA="invoices=60m,contacts=2h".'
            )
        n = int(m.group(2)) * (60 if m.group(3).lower() == "h" else 1)
        if n < MIN_EXTRA_MINUTES:
            raise SchedulerError(
                f"XERO_SYNC_EXTRA entry {part!r}: the shortest interval is {MIN_EXTRA_MINUTES}m "
                "(Xero allows 5,000 calls a day per organisation)."
            )
        out.append(ExtraInterval(tuple(r.lower() for r in m.group(1).split("+")), n * 60))
    return out


