"""Practice Manager: enable XPM per connection, map job states to "needs documents", campaigns."""
import streamlit as st

from app_support import engine, widgets
from app_support.guard import say, shown_errors
from xero_core.errors import TierRefused
from app_support.shell import ensure_frame

ensure_frame()  # before anything renders: sign-in and the banner come from app.py

s = widgets.settings()
st.title("Practice Manager")

conns = widgets.connections(s)
if not conns:
    st.info("No organisation is connected yet: connect your Practice Manager on the Connection page.",
            icon=":material/link_off:")
    st.stop()

st.subheader("Practice Manager per connection")
st.caption("Jobs are read from connections with Practice Manager switched on; its daily sync opens a "
           "document-chasing campaign when a job enters a mapped state and completes it when the job leaves.")
for c in conns:
    tid = c["tenant_id"]
    with shown_errors():
        on = st.toggle(widgets.tenant_label(c), value=bool(c.get("xpm_enabled")), key=f"xpm-on-{tid}")
        if on != bool(c.get("xpm_enabled")):
            engine.xpm_set_enabled(s, tid, on)
            st.cache_data.clear()
            st.rerun()
        if c.get("tier_note"):
            st.caption(c["tier_note"])

enabled = [c for c in conns if c.get("xpm_enabled")]
if not enabled:
    st.info("Switch Practice Manager on for a connection to map its job states.")
    st.stop()

st.subheader("Which job states need documents")
by_id = {c["tenant_id"]: c for c in enabled}
default = widgets.chosen_tenant() if widgets.chosen_tenant() in by_id else None
if default is None and len(enabled) == 1:
    default = enabled[0]["tenant_id"]
tid = st.selectbox("Practice", list(by_id), index=list(by_id).index(default) if default else None,
                   format_func=lambda t: widgets.tenant_label(by_id[t]), placeholder="Choose a practice",
                   key="xpm_tenant")
if tid is None:
    st.stop()

try:
    states = list(engine.xpm_known_states(s, tid))
    current = list(engine.xpm_get_mapping(s, tid))
except TierRefused as exc:
    st.warning(f"Xero refused Practice Manager for this connection: {say(exc)}", icon=":material/block:")
    st.stop()

if not states:
    st.info("No job state seen yet: run a sync (Sync page) so Ledgerlink reads this practice's jobs.")
chosen = st.multiselect(
    "Job states meaning “we need documents from the client”",
    options=sorted(set(states) | set(current)),
    default=current, key=f"xpm-map-{tid}",
    help="Offered: the states seen in synced jobs plus the ones already configured.",
)
with shown_errors():
    preview = widgets.as_rows(engine.xpm_preview_mapping(s, tid, chosen))
    if set(chosen) != set(current):
        st.caption(f"With this mapping, {len(preview)} job(s) would be in a campaign:")
    else:
        st.caption(f"{len(preview)} job(s) match the saved mapping:")
    if preview:
        st.dataframe(preview, hide_index=True, width="stretch")
    if st.button("Save mapping", type="primary", disabled=set(chosen) == set(current)):
        res = engine.xpm_set_mapping(s, tid, chosen)
        st.cache_data.clear()
        opened = res.get("opened") if isinstance(res, dict) else None
        st.session_state["_flash"] = "Mapping saved." + (f" {opened} campaign(s) opened." if opened is not None else "")
        st.rerun()

st.subheader("Campaigns")
with shown_errors():
    camps = widgets.as_rows(engine.list_campaigns(s, tid))
    open_c = [c for c in camps if c.get("status") == "open"]
    done_c = [c for c in camps if c.get("status") != "open"]
    t_open, t_done = st.tabs([f"Open ({len(open_c)})", f"Completed ({len(done_c)})"])
    with t_open:
        if open_c:
            st.dataframe(open_c, hide_index=True, width="stretch")
        else:
            st.caption("No open campaign.")
    with t_done:
        if done_c:
            st.dataframe(done_c, hide_index=True, width="stretch")
        else:
            st.caption("No completed campaign yet.")
