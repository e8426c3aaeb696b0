"""Data: a quick look that a sync worked — weekly P&L, revenue mix and cash position."""
import streamlit as st

from app_support import data_view, engine, widgets
from app_support.guard import shown_errors
from app_support.shell import ensure_frame
from xero_core.errors import LedgerlinkError

ensure_frame()  # before anything renders: sign-in and the banner come from app.py

s = widgets.settings()
st.title("Data")
conn = widgets.require_tenant(s, tenant_types=("ORGANISATION",))
tid, name = conn["tenant_id"], conn.get("tenant_name") or conn["tenant_id"]
db = str(s.db_path)


WEEKS = {c: st.column_config.DateColumn(c.replace("_", " "), format="YYYY-MM-DD")
         for c in ("week_start", "week_ending", "from_week_ending", "to_week_ending")}


def nothing_yet(what: str) -> None:
    st.info(f"No {what} for {name} yet: run a sync on the Sync page.", icon=":material/hourglass_empty:")


with shown_errors():
    cov = data_view.coverage(db, tid)
    if cov and cov.get("weeks"):
        st.caption(f"{name}: {cov['weeks']} weeks of P&L, {cov['first_week']} to {cov['latest_week']}. "
                   "The same frames the notebooks use (xero_core.analysis).")

pnl_tab, mix_tab, cash_tab = st.tabs(["Weekly P&L", "Revenue mix", "Cash position"])
with pnl_tab, shown_errors():
    try:
        pnl = data_view.weekly_pnl(db, tid)
    except engine.NotAvailable:
        raise
    except LedgerlinkError:  # analysis.NoDataYet and friends: nothing synced for this organisation
        nothing_yet("weekly P&L")
    else:
        st.line_chart(data_view.chartable(pnl), x="week_ending", y=["income", "gross_profit", "net_profit"],
                      x_label="week ending", y_label="amount")
        st.dataframe(pnl, hide_index=True, width="stretch", column_config=WEEKS)
with mix_tab, shown_errors():
    weeks = st.slider("Weeks", 1, 26, 4, key="mix_weeks")
    try:
        mix = data_view.revenue_mix(db, tid, weeks)
    except engine.NotAvailable:
        raise
    except LedgerlinkError:
        nothing_yet("sales invoices")
    else:
        st.bar_chart(data_view.chartable(mix), x="region", y="subtotal", color="revenue_type", stack=True,
                     x_label="region", y_label="sales ex tax")
        st.dataframe(mix, hide_index=True, width="stretch", column_config=WEEKS)
with cash_tab, shown_errors():
    cash = data_view.cash_position(db, tid)
    if cash.is_empty():
        nothing_yet("bank summary")
    else:
        st.line_chart(data_view.chartable(cash), x="week_ending", y="closing", color="bank_account_name",
                      x_label="week ending", y_label="closing balance")
        st.dataframe(cash, hide_index=True, width="stretch", column_config=WEEKS,
                     column_order=[c for c in cash.columns if c != "bank_account_id"])
