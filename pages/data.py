"""Data: a quick look that a sync worked — weekly P&L, revenue mix and cash position."""
import streamlit as st

from app_support import data_view, widgets
from app_support.guard import shown_errors
from app_support.shell import ensure_frame

ensure_frame()  # before anything renders: sign-in and the banner come from app.py

s = widgets.settings()
st.title("Data")
conn = widgets.require_tenant(s, tenant_types=("ORGANISATION",))
tid = conn["tenant_id"]
st.caption(f"{conn.get('tenant_name')} · the same frames the notebooks use (xero_core.analysis).")

with shown_errors():
    status = data_view.status(str(s.db_path), tid)
    if status:
        st.dataframe(status, hide_index=True, width="stretch")

pnl_tab, mix_tab, cash_tab = st.tabs(["Weekly P&L", "Revenue mix", "Cash position"])
with pnl_tab, shown_errors():
    frame = data_view.weekly_pnl(str(s.db_path), tid)
    if frame is None or frame.is_empty():
        st.info("No weekly P&L yet: run a sync on the Sync page.", icon=":material/hourglass_empty:")
    else:
        st.line_chart(frame, x="week_ending", y=[c for c in ("income", "gross_profit", "net_profit") if c in frame.columns])
        st.dataframe(frame, hide_index=True, width="stretch")
with mix_tab, shown_errors():
    frame = data_view.revenue_mix(str(s.db_path), tid)
    if frame is None or frame.is_empty():
        st.info("No revenue yet: run a sync on the Sync page.", icon=":material/hourglass_empty:")
    else:
        x, y, colour = data_view.mix_axes(frame)
        st.bar_chart(frame, x=x, y=y, color=colour, stack=True)
        st.dataframe(frame, hide_index=True, width="stretch")
with cash_tab, shown_errors():
    frame = data_view.cash_position(str(s.db_path), tid)
    if frame is None or frame.is_empty():
        st.info("No cash position yet: run a sync on the Sync page.", icon=":material/hourglass_empty:")
    else:
        x, y, colour = data_view.cash_axes(frame)
        st.line_chart(frame, x=x, y=y, color=colour)
        st.dataframe(frame, hide_index=True, width="stretch")
