"""Data: a quick look that a sync worked — weekly P&L, revenue mix and cash position."""
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


def show_table(frame, hide: tuple[str, ...] = ()) -> None:
    shown, config, order = data_view.table(frame, currency, hide=hide)
    st.dataframe(shown, hide_index=True, width="stretch", column_config=config, column_order=order, placeholder="")


def nothing_yet(what: str) -> None:
    st.info(f"No {md(what)} for {md(name)} yet: run a sync on the Sync page.", icon=":material/hourglass_empty:")


currency = ""
with shown_errors():
    currency = data_view.base_currency(db, tid)
    cov = data_view.coverage(db, tid)
    if cov and cov.get("weeks"):
        st.caption(f"{md(name)}: {md(cov['weeks'])} weeks of P&L, {widgets.day(cov['first_week'])} to "
                   f"{widgets.day(cov['latest_week'])}; amounts in {md(currency or 'the organisation’s currency')}, "
                   "newest week first. The same frames the notebooks use (xero_core.analysis).")

pnl_tab, mix_tab, cash_tab = st.tabs(["Weekly P&L", "Revenue mix", "Cash position"])
with pnl_tab, shown_errors():
    try:
        pnl = data_view.weekly_pnl(db, tid)
    except LedgerlinkError:  # analysis.NoDataYet and friends: nothing synced for this organisation
        nothing_yet("weekly P&L")
    else:
        lines = {c: data_view.label(c) for c in ("income", "gross_profit", "net_profit")}
        st.line_chart(data_view.chartable(pnl).rename(lines), x="week_ending", y=list(lines.values()),
                      x_label="week ending", y_label=f"amount {currency}".strip())
        show_table(pnl)
with mix_tab, shown_errors():
    weeks = st.slider("Weeks", 1, 26, 4, key="mix_weeks")
    try:
        mix = data_view.revenue_mix(db, tid, weeks)
    except LedgerlinkError:
        nothing_yet("sales invoices")
    else:
        st.bar_chart(data_view.chartable(mix).rename({"revenue_type": "Job type"}), x="region", y="subtotal",
                     color="Job type", stack=True, x_label="region", y_label=f"sales ex tax {currency}".strip())
        show_table(mix)
with cash_tab, shown_errors():
    cash = data_view.cash_position(db, tid)
    if cash.is_empty():
        nothing_yet("bank summary")
    else:
        st.line_chart(data_view.chartable(cash).rename({"bank_account_name": "Bank account"}), x="week_ending",
                      y="closing", color="Bank account", x_label="week ending",
                      y_label=f"closing balance {currency}".strip())
        show_table(cash, hide=("bank_account_id",))
