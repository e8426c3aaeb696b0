"""The DuckDB `connections` table: which tenants are connected and in what state. Never tokens."""
from __future__ import annotations

import logging
import re
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from . import db
from .errors import ReconnectNeeded, TokensUnreadable
from .settings import Settings

log = logging.getLogger(__name__)

STATUSES = ("connected", "needs_reconnect", "disconnected")
_COLUMNS = (
    "tenant_id", "tenant_name", "tenant_type", "connection_id", "auth_event_id", "status",
    "status_reason", "xpm_enabled", "tier_note", "created_at", "connected_at", "updated_at",
    "disconnected_at", "last_sync_at", "role", "practice_client_id", "practice_client_method", "practice_client_at",
)
_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_xero_timestamp(value: str | None) -> datetime | None:
    """Connections/Files timestamps: `2019-12-07T18:46:19.5165400`, no zone, meaning UTC."""
    if not value:
        return None
    text = _FRACTION.sub(r"\1", value.strip()).replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _row(cols: Iterable[str], values: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(cols, values))


def upsert_tenants(settings: Settings, tenants: Iterable[Mapping[str, Any]], at: datetime) -> list[dict[str, Any]]:
    """Record every tenant from GET /connections as connected (ORGANISATION, PRACTICEMANAGER, ...)."""
    recorded: list[dict[str, Any]] = []
    with db.connect(settings.db_path) as con, db.transaction(con):
        for t in tenants:
            tenant_id = t.get("tenantId")
            if not tenant_id:
                continue
            row = {
                "tenant_id": tenant_id,
                "tenant_name": t.get("tenantName") or tenant_id,
                "tenant_type": t.get("tenantType") or "ORGANISATION",
                "connection_id": t.get("id"),
                "auth_event_id": t.get("authEventId"),
            }
            created = parse_xero_timestamp(t.get("createdDateUtc")) or at
            con.execute(
                """
                INSERT INTO connections (tenant_id, tenant_name, tenant_type, connection_id, auth_event_id,
                    status, status_reason, xpm_enabled, created_at, connected_at, updated_at, disconnected_at)
                VALUES (?, ?, ?, ?, ?, 'connected', NULL, ?, ?, ?, ?, NULL)
                ON CONFLICT (tenant_id) DO UPDATE SET
                    tenant_name = excluded.tenant_name, tenant_type = excluded.tenant_type,
                    connection_id = excluded.connection_id, auth_event_id = excluded.auth_event_id,
                    status = 'connected', status_reason = NULL, connected_at = excluded.connected_at,
                    updated_at = excluded.updated_at, disconnected_at = NULL,
                    xpm_enabled = connections.xpm_enabled OR excluded.xpm_enabled
                """,
                [
                    row["tenant_id"], row["tenant_name"], row["tenant_type"], row["connection_id"],
                    row["auth_event_id"], row["tenant_type"] == "PRACTICEMANAGER", created, at, at,
                ],
            )
            recorded.append({**row, "status": "connected"})
    return recorded


def list_connections(settings: Settings, include_disconnected: bool = False) -> list[dict[str, Any]]:
    sql = f"SELECT {', '.join(_COLUMNS)} FROM connections"
    if not include_disconnected:
        sql += " WHERE status <> 'disconnected'"
    sql += " ORDER BY tenant_type, lower(tenant_name), tenant_id"
    with db.connect(settings.db_path) as con:
        return [_row(_COLUMNS, r) for r in con.execute(sql).fetchall()]


def get_connection(settings: Settings, tenant_id: str) -> dict[str, Any] | None:
    with db.connect(settings.db_path) as con:
        r = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM connections WHERE tenant_id = ?", [tenant_id]).fetchone()
    return _row(_COLUMNS, r) if r else None


def set_status(settings: Settings, tenant_id: str, status: str, reason: str | None = None,
               at: datetime | None = None, unless_connected_after: datetime | None = None) -> None:
    """`unless_connected_after`: leave a connection alone that was (re)connected after that moment
    (a refusal seen by a call sent before a reconnect is about the old grant, not the new one)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    at = at or datetime.now(timezone.utc)
    guard, extra = "", []
    if unless_connected_after is not None:
        guard, extra = " AND (connected_at IS NULL OR connected_at <= ?)", [unless_connected_after]
    with db.connect(settings.db_path) as con:
        con.execute(
            """UPDATE connections SET status = ?, status_reason = ?, updated_at = ?,
                   disconnected_at = CASE WHEN ? = 'disconnected' THEN ? ELSE disconnected_at END
               WHERE tenant_id = ?""" + guard,
            [status, reason, at, status, at, tenant_id, *extra],
        )


def mark_for_reconnect(settings: Settings, exc: BaseException, at: datetime | None = None) -> bool:
    """What a caller of the Xero client does with a refusal a person must fix: the connection is
    marked needs_reconnect with the refusal's sentence (unless it was reconnected after the call was
    sent). Nothing for other errors, nor for tokens this machine cannot read (the vault's sentence
    says that fix). True when it marked."""
    if not isinstance(exc, ReconnectNeeded) or isinstance(exc, TokensUnreadable) or not exc.tenant_id:
        return False
    try:
        set_status(settings, exc.tenant_id, "needs_reconnect", exc.message, at=at,
                   unless_connected_after=exc.sent_at)
        return True
    except Exception as err:  # the error itself still says so
        log.warning("Could not mark tenant %s as needs_reconnect: %s", exc.tenant_id, err)
        return False


def record_sync(settings: Settings, tenant_id: str, at: datetime) -> None:
    with db.connect(settings.db_path) as con:
        con.execute("UPDATE connections SET last_sync_at = ? WHERE tenant_id = ?", [at, tenant_id])
