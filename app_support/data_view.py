"""The Data page's frames: xero_core.analysis results, cached briefly, shaped for charts."""
from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from xero_core.settings import load_settings

from . import engine
from .queries import TTL


def chartable(frame: pl.DataFrame) -> pl.DataFrame:
    """Decimals drawn as floats (display only: the database and analysis keep Decimal)."""
    casts = [pl.col(n).cast(pl.Float64) for n, t in frame.schema.items() if isinstance(t, pl.Decimal)]
    return frame.with_columns(casts) if casts else frame


# Cached by (db_path, tenant_id) for a few seconds; settings are re-read inside. Errors (NoDataYet)
# are not cached, so a sync shows up at the next rerun.
@st.cache_data(ttl=TTL, show_spinner=False)
def weekly_pnl(db_path: str, tenant_id: str) -> pl.DataFrame:
    return engine.weekly_pnl(load_settings(), tenant_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def revenue_mix(db_path: str, tenant_id: str, weeks: int) -> pl.DataFrame:
    return engine.revenue_mix(load_settings(), tenant_id, weeks=weeks)


@st.cache_data(ttl=TTL, show_spinner=False)
def cash_position(db_path: str, tenant_id: str) -> pl.DataFrame:
    return engine.cash_position(load_settings(), tenant_id, by_account=True)


@st.cache_data(ttl=TTL, show_spinner=False)
def coverage(db_path: str, tenant_id: str) -> dict[str, Any] | None:
    """This organisation's weeks of data (from analysis.data_status), or None."""
    status = engine.data_status(load_settings())
    return next((o for o in status.organisations if o.get("tenant_id") == tenant_id), None)
