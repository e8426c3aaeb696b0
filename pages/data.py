"""Data: what a finance lead looks at first, for the latest complete week (income, gross margin,
operating expenses, net profit, cash at bank, against the week before and the same week last year),
then the 13-week trend, then the tables. Every figure comes from xero_core.analysis, so a notebook
shows the same numbers; amounts are in the organisation's base currency (GET /Organisation)."""
import polars as pl
import streamlit as st

from app_support import data_view, widgets
from app_support.guard import shown_errors
from app_support.shell import ensure_frame
from app_support.text import md
from xero_core.errors import LedgerlinkError

ensure_frame()  # before anything renders: sign-in and the banner come from app.py

s = widgets.settings()
st.title("Data")
conn = widgets.require_tenant(s, tenant_types=("ORGANISATION",))
tid, name = conn["tenant_id"], conn.get("tenant_name") or conn["tenant_id"]
db = str(s.db_path)
TREND_WEEKS = 13


def show_table(frame, hide: tuple[str, ...] = ()) -> None:
    shown, config, order = data_view.table(frame, currency, hide=hide)
    st.dataframe(shown, hide_index=True, width="stretch", column_config=config, column_order=order, placeholder="")


def nothing_yet(what: str) -> None:
    st.info(f"No {md(what)} for {md(name)} yet: run a sync on the Sync page.", icon=":material/hourglass_empty:")


currency = ""
with shown_errors():
    currency = data_view.base_currency(db, tid)
    st.text(name)  # Xero's text, shown as text
    st.caption(f"Amounts in {md(currency or 'the organisation’s base currency')} (its base currency in Xero; "
               "foreign-currency invoices converted at their own rate). Complete weeks only: the week under way "
               "appears once it has ended. The same figures as the notebooks (xero_core.analysis).")

with shown_errors():
    head: pl.DataFrame | None
    try:
        head = data_view.headline(db, tid)
    except LedgerlinkError:  # analysis.NoDataYet and friends: nothing synced for this organisation
        head = None
        nothing_yet("weekly P&L")
    if head is not None and head.height:
        week = head["week_ending"][0]
        st.subheader(md(f"Week ending {week:%a} {week.day} {week:%b %Y}"))
        st.caption("Each figure with its change on the week before; the same week last year beneath it. "
                   "Rounded to whole units here; the tables below are to the cent.")
        cols = st.columns(len(head))
        for col, r in zip(cols, head.iter_rows(named=True)):
            unit = r["unit"]
            label = md(r["label"] + (" (%)" if unit == "percent" else (f" ({currency})" if currency else "")))
            last_year = md(f"Same week last year: {data_view.figure(r['same_week_last_year'], unit, cents=False)} "
                           f"({data_view.signed(r['change_vs_last_year'], unit)})")
            change = md(data_view.signed(r["change"], unit)) if r["change"] is not None else None
            col.metric(label, md(data_view.figure(r["latest"], unit, cents=False)), delta=change,
                       delta_color="inverse" if r["metric"] == "operating_expenses" else "normal",
                       help=last_year, border=True)
            col.caption(last_year)

pnl_tab, mix_tab, cash_tab = st.tabs(["Weekly P&L", "Revenue mix", "Cash position"])
with pnl_tab, shown_errors():
    try:
        pnl = data_view.weekly_pnl(db, tid)
    except LedgerlinkError:
        nothing_yet("weekly P&L")
    else:
        lines = {c: data_view.label(c) for c in ("income", "gross_profit", "operating_expenses", "net_profit")}
        data, spec = data_view.pnl_trend(pnl.tail(TREND_WEEKS), lines, currency,
                                         f"The last {TREND_WEEKS} complete weeks")
        st.vega_lite_chart(data, spec, width="stretch")
        show_table(pnl, hide=("complete", "week_start"))
with mix_tab, shown_errors():
    weeks = st.slider("Weeks", 1, 26, 4, key="mix_weeks")
    try:
        mix = data_view.revenue_mix(db, tid, weeks)
    except LedgerlinkError:
        nothing_yet("sales invoices")
    else:
        st.vega_lite_chart(data_view.chartable(mix), {
            "height": 280, "mark": "bar",
            "encoding": {"x": {"field": "region", "type": "nominal", "title": "Region", "axis": {"labelAngle": 0}},
                         "y": {"field": "subtotal", "type": "quantitative", "stack": True,
                               "title": f"Sales ex tax ({currency})" if currency else "Sales ex tax"},
                         "color": {"field": "revenue_type", "type": "nominal", "title": "Job type"},
                         "tooltip": [{"field": "region"}, {"field": "revenue_type", "title": "Job type"},
                                     {"field": "subtotal", "type": "quantitative", "format": ",.2f"}]}},
            width="stretch")
        show_table(mix)
with cash_tab, shown_errors():
    cash = data_view.cash_position(db, tid)
    if cash.is_empty():
        nothing_yet("bank summary")
    else:
        recent = sorted(set(cash["week_ending"].to_list()))[-TREND_WEEKS:]
        data, spec = data_view.week_chart(cash.filter(cash["week_ending"].is_in(recent)), value="closing",
                                          series="bank_account_name", title="Closing balance by bank account",
                                          y_title=f"Closing balance ({currency})" if currency else "Closing balance")
        st.vega_lite_chart(data, spec, width="stretch")
        show_table(cash, hide=("bank_account_id",))
