"""Practice Manager: enable XPM per connection, map job states to "needs documents", campaigns."""
import streamlit as st

from app_support import engine, widgets
from app_support.guard import say, shown_errors
from app_support.shell import ensure_frame
from xero_core.errors import LedgerlinkError

ensure_frame()  # before anything renders: sign-in and the banner come from app.py

s = widgets.settings()
st.title("Practice Manager")

practices = [c for c in widgets.connections(s) if c.get("tenant_type") == "PRACTICEMANAGER"]
if not practices:
    st.info("No Xero Practice Manager is connected: on the Connection page, connect and tick your practice "
            "(it appears next to your organisations on Xero's consent page).", icon=":material/link_off:")
    st.stop()

st.subheader("Follow Practice Manager jobs")
st.caption("When on, each sync reads the practice's jobs; a job entering a mapped state opens a "
           "document-chasing campaign for its client, and leaving it completes the campaign.")
for c in practices:
    tid = c["tenant_id"]
    with shown_errors():
        on = st.toggle(c.get("tenant_name") or tid, value=bool(c.get("xpm_enabled")), key=f"xpm-on-{tid}")
        if on != bool(c.get("xpm_enabled")):
            engine.xpm_set_enabled(s, tid, on)
            st.cache_data.clear()
            st.rerun()
    if c.get("tier_note"):
        st.warning(c["tier_note"], icon=":material/block:")

by_id = {c["tenant_id"]: c for c in practices}
default = widgets.chosen_tenant() if widgets.chosen_tenant() in by_id else None
if default is None and len(practices) == 1:
    default = practices[0]["tenant_id"]
st.subheader("Which job states need documents")
tid = st.selectbox("Practice", list(by_id), index=list(by_id).index(default) if default else None,
                   format_func=lambda t: by_id[t].get("tenant_name") or t, placeholder="Choose a practice",
                   key="xpm_tenant")
if tid is None:
    st.stop()
practice = by_id[tid]

with shown_errors():
    current = set(engine.xpm_get_mapping(s, tid))
    states = list(engine.xpm_known_states(s, tid))
    if not states:
        st.info("No job state seen yet: run a sync (Sync page, or **Sync jobs now** below) so Ledgerlink reads "
                "this practice's jobs.")
    chosen = st.multiselect(
        "Job states meaning “we need documents from the client”",
        options=sorted(set(states) | current, key=str.casefold),
        default=sorted(current, key=str.casefold), key=f"xpm-map-{tid}",
        help="Offered: the states seen in synced jobs plus the ones already configured.",
    )
    preview = widgets.as_rows(engine.xpm_preview_mapping(s, tid, chosen))
    changed = set(chosen) != current
    head = "With this mapping" if changed else "With the saved mapping"
    st.caption(f"{head}, {len(preview)} current job(s) would be in a chasing campaign:")
    if preview:
        st.dataframe(preview, hide_index=True, width="stretch",
                     column_order=("job_id", "job_name", "state", "client_name", "ledgerlink_client_name", "due_date"), placeholder="")
    if not practice.get("xpm_enabled"):
        st.caption("Following jobs is off for this practice: the mapping is kept, no campaign opens.")
    save, sync_now = st.columns([1, 1])
    if save.button("Save mapping and apply", type="primary", disabled=not changed):
        engine.xpm_set_mapping(s, tid, chosen)
        st.session_state["_xpm_apply"] = tid
    if sync_now.button("Sync jobs now", icon=":material/sync:"):
        st.session_state["_xpm_apply"] = tid

if st.session_state.pop("_xpm_apply", None) == tid:
    # Campaigns follow the jobs' states at each XPM sync: run that one step now, so the admin sees
    # the result of the mapping at once rather than after tomorrow's scheduled sync.
    with st.spinner("Reading the practice's jobs…"):
        try:
            res = engine.sync_now(s, tid, only="xpm,chase", trigger="manual")
        except (LedgerlinkError, ValueError) as exc:
            st.error(say(exc), icon=":material/error:")
        else:
            st.cache_data.clear()  # the sync may have recorded a tier note on the connection
            step = next((x for x in res.steps if x.step == "xpm"), None)
            if res.busy:
                st.warning(f"Not synced now: {res.busy}")
            elif step is not None and step.status == "success":
                st.session_state["_flash"] = f"Mapping applied: {step.rows} job(s) read."
                st.rerun()
            elif step is not None:
                st.warning(f"Practice Manager sync {step.status}: {step.error or ''}", icon=":material/warning:")

st.subheader("Chasing campaigns")
with shown_errors():
    camps = widgets.as_rows(engine.list_campaigns(s, tid))
    open_c = [c for c in camps if c.get("status") == "open"]
    done_c = [c for c in camps if c.get("status") != "open"]
    cols = ("job_id", "job_name", "client_name", "job_state", "status", "opened_at", "completed_at", "completion_reason")
    t_open, t_done = st.tabs([f"Open ({len(open_c)})", f"Completed ({len(done_c)})"])
    with t_open:
        if open_c:
            st.dataframe(widgets.local_times(open_c, ("opened_at", "completed_at")), hide_index=True, width="stretch", column_order=cols, placeholder="")
        else:
            st.caption("No open campaign.")
    with t_done:
        if done_c:
            st.dataframe(widgets.local_times(done_c, ("opened_at", "completed_at")), hide_index=True, width="stretch", column_order=cols, placeholder="")
        else:
            st.caption("No completed campaign yet.")
