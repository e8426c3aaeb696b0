"""Times for people, in one format everywhere (the admin app, the CLI): '7 Dec 2026 20:42 AEDT' in
XERO_TIMEZONE, and '7 Dec 2026' for a day. Machine output (--json, DuckDB) keeps ISO 8601."""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def as_datetime(value: Any) -> datetime | None:
    """A timestamp from the database, a vault file, JSON or unix seconds as an aware datetime (naive = UTC)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, timezone.utc)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def zone(name: str | ZoneInfo | None) -> ZoneInfo:
    if isinstance(name, ZoneInfo):
        return name
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def stamp(value: Any, tz: str | ZoneInfo | None = None) -> str:
    """'5 Dec 2026 19:04 AEDT' in `tz`; blank for no value; text that is not a timestamp as it is."""
    if value in (None, ""):
        return ""
    dt = as_datetime(value)
    if dt is None:
        return str(value)
    local = dt.astimezone(zone(tz))
    return f"{local.day} {local:%b %Y %H:%M %Z}"


def day(value: Any) -> str:
    """A date for people: '5 Dec 2026' (the same day-month-year order as `stamp`)."""
    if value in (None, ""):
        return ""
    if isinstance(value, str):
        text: str = value
        try:
            value = date.fromisoformat(text[:10])
        except ValueError:
            return text
    return f"{value.day} {value:%b %Y}" if isinstance(value, date) else str(value)
