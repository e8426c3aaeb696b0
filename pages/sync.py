"""Sync: Sync now (one organisation or all) with live progress, API budget, scheduler, history."""
import streamlit as st

from app_support import engine, queries, widgets
from app_support.guard import say, shown_errors
from app_support.sync_view import STEP_COLUMNS, LiveProgress, all_ok, result_rows
from xero_core.errors import LedgerlinkError
from app_support.shell import ensure_frame

ensure_frame()  # before anything renders: sign-in and the banner come from app.py

s = widgets.settings()
st.title("Sync")

conns = widgets.connections(s)
names = {c["tenant_id"]: c.get("tenant_name") or c["tenant_id"] for c in conns}
chosen = widgets.chosen_tenant()

# -- Sync now ---------------------------------------------------------------------------------
st.subheader("Sync now")
if not conns:
    st.info("No organisation is connected yet: connect one on the Connection page.", icon=":material/link_off:")
else:
    scope_options = (["one"] if chosen else []) + ["all"]
    scope = st.radio(
        "What to sync",
        scope_options,
        format_func=lambda v: f"{names.get(chosen, chosen)} (chosen in the sidebar)" if v == "one"
        else f"All connected organisations ({len(conns)})",
        horizontal=True,
    )
    weeks = st.number_input("Weeks of history", min_value=1, max_value=260, value=12, step=1,
                            help="How many weeks back the weekly tables are (re)built.")
    if st.button("Sync now", type="primary", icon=":material/sync:"):
        targets = [chosen] if scope == "one" else [c["tenant_id"] for c in conns]
        results, failures = [], []
        with st.status("Syncing…", expanded=True) as box:
            progress = LiveProgress(box, names, targets)
            for tid in targets:  # one after another, in this thread: progress draws on the page
                try:
                    results.append(engine.sync_all(s, tid, weeks=int(weeks), trigger="manual", progress=progress))
                except (LedgerlinkError, ValueError) as exc:
                    failures.append(f"{names.get(tid, tid)}: {say(exc)}")
            ok = not failures and all_ok(results)
            box.update(label="Sync finished" if ok else "Sync finished with problems: see the steps below",
                       state="complete" if ok else "error", expanded=not ok)
        for f in failures:
            st.error(f, icon=":material/error:")
        st.session_state["_last_sync_rows"] = result_rows(results, names)
        st.cache_data.clear()

    last = st.session_state.get("_last_sync_rows")
    if last:
        st.caption("What each step did in the last sync from this page")
        st.dataframe(last, column_order=STEP_COLUMNS, hide_index=True, width="stretch")

# -- API budget -------------------------------------------------------------------------------
st.subheader("API budget left today")
with shown_errors():
    if conns:
        cols = st.columns(min(4, len(conns)))
        for i, c in enumerate(conns):
            b = engine.budget_status(s, c["tenant_id"])
            col = cols[i % len(cols)]
            col.metric(names[c["tenant_id"]], f"{b.get('remaining', 0):,} calls",
                       help=f"{b.get('calls_today', 0):,} used in the last 24 h of a {b.get('budget', 0):,} daily budget")
            if b.get("resumes_at"):
                col.caption(f"Budget spent; resumes {widgets.when(b['resumes_at'])}")
    else:
        st.caption("Shown per organisation once one is connected.")

# -- Scheduler --------------------------------------------------------------------------------
st.subheader("Scheduler")
with shown_errors():
    state = engine.read_scheduler_state(s) or {}
    running = bool(state.get("running"))
    paused = bool(state.get("paused"))
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Scheduler", state.get("status") or ("running" if running else "not running"))
    c2.metric("Scheduled syncs", "paused" if paused else "enabled")
    c3.markdown(f"**Last heartbeat**  \n{widgets.when(state.get('heartbeat'))}")
    c4.markdown(f"**Next run**  \n{'paused' if paused else widgets.when(state.get('next_run'))}")
    cur = state.get("current")
    if isinstance(cur, dict):
        st.caption(f"Under way: {cur.get('kind')} · {cur.get('step')} for "
                   f"{names.get(cur.get('tenant_id'), cur.get('tenant_id') or 'all')} since {widgets.when(cur.get('since'))}")
    cycle = state.get("last_result")
    if isinstance(cycle, dict):
        outcome = "all steps ok" if cycle.get("ok") else f"{cycle.get('failed', 0)} step(s) failed"
        if cycle.get("skipped_reason"):
            outcome = f"skipped: {cycle['skipped_reason']}"
        st.caption(f"Last run ({cycle.get('kind')}) {widgets.when(state.get('last_run'))}: {outcome}.")
    if not running:
        st.caption("The scheduler process is not running: start it with `python scheduler.py` (see the README). "
                   "Sync now on this page works without it.")
    if paused:
        if st.button("Resume the scheduler", icon=":material/play_arrow:"):
            engine.set_scheduler_paused(s, False, by="admin app")
            st.rerun()
    elif st.button("Pause the scheduler", icon=":material/pause:"):
        engine.set_scheduler_paused(s, True, by="admin app")
        st.rerun()

# -- History ----------------------------------------------------------------------------------
st.subheader("Sync history")
with shown_errors():
    hist = queries.sync_history(str(s.db_path))
    if not hist:
        st.caption("No sync has run yet.")
    else:
        f1, f2, f3 = st.columns(3)
        orgs = f1.multiselect("Organisation", sorted({h["organisation"] for h in hist if h["organisation"]}))
        statuses = f2.multiselect("Status", sorted({h["status"] for h in hist if h["status"]}))
        types = f3.multiselect("Step", sorted({h["sync_type"] for h in hist if h["sync_type"]}))
        shown = [h for h in hist
                 if (not orgs or h["organisation"] in orgs)
                 and (not statuses or h["status"] in statuses)
                 and (not types or h["sync_type"] in types)]
        st.dataframe(
            widgets.local_times(shown, ("started_at", "finished_at")), hide_index=True, width="stretch",
            column_order=("started_at", "organisation", "sync_type", "status", "rows", "api_calls",
                          "bytes_downloaded", "error", "trigger", "period_start", "period_end", "finished_at"),
        )
        st.caption(f"{len(shown)} of {len(hist)} most recent steps, newest first.")
