"""Reporting weeks. A week is named by its last day, `week_ending` (settings.week_ends_on)."""
from __future__ import annotations

from datetime import date, timedelta

from ..settings import WEEKDAYS


def week_ending_for(day: date, week_ends_on: str = "saturday") -> date:
    """The last day of the week holding `day` (the same day when `day` is that weekday)."""
    target = WEEKDAYS.index(week_ends_on.lower())
    return day + timedelta(days=(target - day.weekday()) % 7)


def week_start(week_ending: date) -> date:
    return week_ending - timedelta(days=6)


def recent_weeks(today: date, count: int, week_ends_on: str = "saturday") -> list[date]:
    """The `count` weeks ending with the current (possibly unfinished) week, oldest first."""
    last = week_ending_for(today, week_ends_on)
    return [last - timedelta(weeks=i) for i in range(count - 1, -1, -1)]
