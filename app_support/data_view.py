"""The Data page's frames: xero_core.analysis results, cached briefly, shaped for charts."""
from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from xero_core.settings import load_settings

from . import engine
from .queries import TTL


def _chartable(frame: Any) -> pl.DataFrame | None:
    """Decimals drawn as floats (display only: the database keeps DECIMAL(18,2))."""
    if frame is None:
        return None
    if not isinstance(frame, pl.DataFrame):
        frame = pl.DataFrame(frame)
    casts = [pl.col(n).cast(pl.Float64) for n, t in frame.schema.items() if isinstance(t, pl.Decimal)]
    return frame.with_columns(casts) if casts else frame


# The cache key is (db_path, tenant_id): settings are re-read from the environment inside.
@st.cache_data(ttl=TTL, show_spinner=False)
def weekly_pnl(db_path: str, tenant_id: str) -> pl.DataFrame | None:
    return _chartable(engine.weekly_pnl(load_settings(), tenant_id))


@st.cache_data(ttl=TTL, show_spinner=False)
def revenue_mix(db_path: str, tenant_id: str) -> pl.DataFrame | None:
    return _chartable(engine.revenue_mix(load_settings(), tenant_id))


@st.cache_data(ttl=TTL, show_spinner=False)
def cash_position(db_path: str, tenant_id: str) -> pl.DataFrame | None:
    return _chartable(engine.cash_position(load_settings(), tenant_id))


@st.cache_data(ttl=TTL, show_spinner=False)
def status(db_path: str, tenant_id: str) -> pl.DataFrame | None:
    return _chartable(engine.data_status(load_settings(), tenant_id))


def mix_axes(frame: pl.DataFrame) -> tuple[str, str, str | None]:
    cols = frame.columns
    x = "week_ending" if "week_ending" in cols else cols[0]
    y = next((c for c in ("total", "revenue", "subtotal", "amount") if c in cols), cols[-1])
    colour = next((c for c in ("revenue_type", "region", "category") if c in cols), None)
    return x, y, colour


def cash_axes(frame: pl.DataFrame) -> tuple[str, str, str | None]:
    cols = frame.columns
    x = "week_ending" if "week_ending" in cols else cols[0]
    y = next((c for c in ("closing", "balance", "cash") if c in cols), cols[-1])
    colour = next((c for c in ("bank_account_name", "bank_account_id") if c in cols), None)
    return x, y, colour
