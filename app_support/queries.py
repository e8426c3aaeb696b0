"""Read-only looks at the DuckDB contract tables for the pages, cached briefly.

Each read opens a short-lived connection and closes it before returning (db.connect); results,
never connections, are cached, and only for a few seconds, so the scheduler and the webhook
receiver are never locked out and the pages stay fresh. Always a read-write open: DuckDB refuses
a read-only connection in a process that already holds a read-write one (e.g. a sync running in
another session's thread).
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from xero_core import db

TTL = 5  # seconds


def _fetch(db_path: str, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    with db.connect(db_path) as con:
        cur = con.execute(sql, list(params))
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


@st.cache_data(ttl=TTL, show_spinner=False)
def sync_history(db_path: str, limit: int = 500) -> list[dict[str, Any]]:
    return _fetch(
        db_path,
        """SELECT l.started_at, l.finished_at, coalesce(c.tenant_name, l.tenant_id) AS organisation,
                  l.tenant_id, l.sync_type, l.status, l.rows, l.api_calls, l.bytes_downloaded, l.error,
                  l.trigger, l.period_start, l.period_end, l.run_id
           FROM sync_log l LEFT JOIN connections c USING (tenant_id)
           ORDER BY l.started_at DESC NULLS LAST, l.sync_id DESC LIMIT ?""",
        (limit,),
    )
