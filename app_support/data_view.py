"""The Data page's frames: xero_core.analysis results, cached briefly, shaped for charts."""
from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from xero_core.settings import load_settings

from . import engine
from .text import rows as text_rows
from .queries import TTL


def _working():
    """The app reads the working database (its own writes show at once), not the readers' snapshot."""
    return engine.working_copy(load_settings())


def chartable(frame: pl.DataFrame) -> pl.DataFrame:
    """Decimals drawn as floats (display only: the database and analysis keep Decimal)."""
    casts = [pl.col(n).cast(pl.Float64) for n, t in frame.schema.items() if isinstance(t, pl.Decimal)]
    return frame.with_columns(casts) if casts else frame


# Cached by (db_path, tenant_id) for a few seconds; settings are re-read inside. Errors (NoDataYet)
# are not cached, so a sync shows up at the next rerun.
@st.cache_data(ttl=TTL, show_spinner=False)
def weekly_pnl(db_path: str, tenant_id: str) -> pl.DataFrame:
    return engine.weekly_pnl(_working(), tenant_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def revenue_mix(db_path: str, tenant_id: str, weeks: int) -> pl.DataFrame:
    return engine.revenue_mix(_working(), tenant_id, weeks=weeks)


@st.cache_data(ttl=TTL, show_spinner=False)
def cash_position(db_path: str, tenant_id: str) -> pl.DataFrame:
    return engine.cash_position(_working(), tenant_id, by_account=True)


@st.cache_data(ttl=TTL, show_spinner=False)
def coverage(db_path: str, tenant_id: str) -> dict[str, Any] | None:
    """This organisation's weeks of data (from analysis.data_status), or None."""
    status = engine.data_status(_working())
    return next((o for o in status.organisations if o.get("tenant_id") == tenant_id), None)


@st.cache_data(ttl=60, show_spinner=False)
def base_currency(db_path: str, tenant_id: str) -> str:
    """The organisation's base currency as Xero gives it (GET /Organisation, `organisations`): every
    amount on the page is in it; '' before its first sync."""
    return engine.organisation_currency(load_settings(), tenant_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def headline(db_path: str, tenant_id: str) -> pl.DataFrame:
    return engine.headline(load_settings(), tenant_id)


def signed(value, unit: str, currency: str = "") -> str:
    """A change as a finance lead reads it: '+1,234.50', '-2.3 pts'."""
    if value is None:
        return "no data"
    if unit == "percent":
        return f"{value:+,.1f} pts"
    return f"{value:+,.0f}"


def figure(value, unit: str, cents: bool = True) -> str:
    """A headline figure: '84.4%', '271,765.42' (or '271,765' on a card, where five must fit a row)."""
    if value is None:
        return "–"
    return f"{value:,.1f}%" if unit == "percent" else (f"{value:,.2f}" if cents else f"{value:,.0f}")


def week_chart(frame: pl.DataFrame, *, value: str, series: str, y_title: str, title: str) -> tuple[pl.DataFrame, dict]:
    """(data, Vega-Lite spec) of a weekly line chart for st.vega_lite_chart: the x axis names each
    week's last day ("21 Nov"), not the calendar ticks Vega would pick ("Mon 05, Tue 13"). A spec by
    hand: altair's schema validation costs seconds on a busy machine, for a chart drawn every rerun."""
    weeks = frame["week_ending"].to_list()
    axis = engine.week_axis(weeks)
    data = chartable(frame).with_columns(pl.col("week_ending").cast(pl.String))
    spec = {
        "title": title, "height": 280, "mark": {"type": "line", "point": True},
        "encoding": {
            "x": {"field": "week_ending", "type": "temporal", "title": "Week ending (Saturday)",
                  "axis": {"values": axis["values"], "format": axis["format"], "labelAngle": 0}},
            "y": {"field": value, "type": "quantitative", "title": y_title},
            "color": {"field": series, "type": "nominal", "title": None,
                      "sort": list(dict.fromkeys(frame[series].to_list()))},
            "tooltip": [{"field": "week", "type": "nominal", "title": "Week"} if "week" in frame.columns else
                        {"field": "week_ending", "type": "temporal", "title": "Week ending", "format": "%d %b %Y"},
                        {"field": series, "type": "nominal"},
                        {"field": value, "type": "quantitative", "format": ",.2f"}],
        },
    }
    return data, spec


def pnl_trend(pnl: pl.DataFrame, columns: dict[str, str], currency: str, title: str) -> tuple[pl.DataFrame, dict]:
    long = pnl.select("week_ending", "week", *columns).rename(columns).unpivot(
        index=["week_ending", "week"], variable_name="Figure", value_name="amount")
    return week_chart(long, value="amount", series="Figure", title=title,
                      y_title=f"Amount ({currency})" if currency else "Amount")


# Column names for people; anything not listed is shown with its underscores as spaces.
LABELS = {
    "week_start": "Week start", "week_ending": "Week ending", "from_week_ending": "From week ending",
    "to_week_ending": "To week ending", "income": "Income", "cost_of_sales": "Cost of sales",
    "gross_profit": "Gross profit", "other_income": "Other income", "operating_expenses": "Operating expenses",
    "net_profit": "Net profit", "complete": "Complete week", "region": "Region", "revenue_type": "Job type",
    "invoice_count": "Invoices", "subtotal": "Sales ex tax", "total_tax": "Tax", "total": "Sales inc tax",
    "share_pct": "Share", "bank_account_name": "Bank account", "opening": "Opening", "received": "Received",
    "spent": "Spent", "closing": "Closing", "net_change": "Net change", "week": "Week",
    "credit_note_count": "Credit notes",
}
DATE_FORMAT = "D MMM YYYY"  # 5 Dec 2026, as in every date and time the app shows


def label(column: str) -> str:
    return LABELS.get(column, column.replace("_", " ").capitalize())


def table(frame: pl.DataFrame, currency: str, *, hide: tuple[str, ...] = ()) -> tuple[pl.DataFrame, dict, list]:
    """A frame ready for st.dataframe: newest week first, money with thousands separators and
    2 dp under a '(AUD)' heading, dates as '5 Dec 2026', blanks for missing text.
    Returns (frame, column_config, column_order)."""
    week = next((c for c in ("week_ending", "to_week_ending") if c in frame.columns), None)
    if week == "week_ending":
        frame = frame.sort(week, descending=True, maintain_order=True)
    money = [n for n, t in frame.schema.items() if isinstance(t, pl.Decimal)]
    texts = [n for n, t in frame.schema.items() if t == pl.String]
    frame = text_rows(frame.with_columns([pl.col(n).cast(pl.Float64) for n in money]
                                         + [pl.col(n).fill_null("") for n in texts]))
    suffix = f" ({currency})" if currency else ""
    config: dict[str, Any] = {}
    for name, dtype in frame.schema.items():
        if name in money:
            config[name] = st.column_config.NumberColumn(label(name) + suffix, format="%,.2f")
        elif dtype == pl.Date:
            config[name] = st.column_config.DateColumn(label(name), format=DATE_FORMAT)
        elif name == "share_pct":
            config[name] = st.column_config.NumberColumn(label(name), format="%.1f%%")
        elif dtype == pl.Boolean:
            config[name] = st.column_config.CheckboxColumn(label(name))
        else:
            config[name] = st.column_config.Column(label(name))
    order = [c for c in frame.columns if c not in hide]
    return frame, config, order
