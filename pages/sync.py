"""Sync: Sync now (one organisation or all) with live progress, API budget, scheduler, history."""
import streamlit as st

from app_support import engine, queries, widgets
from app_support.guard import say, shown_errors
from app_support.jobs_view import REFRESH, STEP_COLUMNS, job_card, result_rows
from xero_core.errors import LedgerlinkError
from app_support.shell import ensure_frame
from app_support.text import md, plain, rows

ensure_frame()  # before anything renders: sign-in and the banner come from app.py

s = widgets.settings()
st.title("Sync")

conns = widgets.connections(s)
names = {c["tenant_id"]: c.get("tenant_name") or c["tenant_id"] for c in conns}
chosen = widgets.chosen_tenant()

# -- Sync now ---------------------------------------------------------------------------------
# A sync is a job (xero_core.pipeline): the button queues it and returns at once; the scheduler or
# this app's server runs it. Leave the page, close the tab: the job goes on, and comes back here.
st.subheader("Sync now")
if not conns:
    st.info("No organisation is connected yet: connect one on the Connection page.", icon=":material/link_off:")
else:
    scope_options = (["one"] if chosen else []) + ["all"]
    scope = st.radio(
        "What to sync",
        scope_options,
        # radio options parse markdown
        format_func=lambda v: f"{md(names.get(chosen, chosen))} (chosen in the sidebar)" if v == "one"
        else f"All connected organisations ({len(conns)})",
        horizontal=True,
    )
    weeks = st.number_input("Weeks of history", min_value=1, max_value=260, value=12, step=1,
                            help="How many weeks back the weekly tables are (re)built. The latest 4 come "
                                 "first; older weeks, and a journal history never fetched, follow as a history "
                                 "backfill with its own line below, which steps aside for any other sync.")
    if st.button("Sync now", type="primary", icon=":material/sync:"):
        targets = [chosen] if scope == "one" and chosen else [c["tenant_id"] for c in conns]
        with shown_errors():
            queued = []
            for tid in targets:
                req = engine.sync_request(tid, weeks=int(weeks), trigger="manual", requested_by="admin app")
                queued.append(engine.submit_sync(s, req, tenant_name=names.get(tid)))
            st.session_state["_sync_jobs"] = [j.job_id for j in queued]
            joined = [j for j in queued if j.joined]
            after = [j for j in joined if j.follow_up is not None]  # the job under way does less than asked
            msg = f"Queued {len(queued) - len(joined)} sync(s)" + (
                f"; {len(joined)} organisation(s) already had one under way: following it" if joined else "") + (
                f"; {len(after)} of them do(es) fewer weeks than asked: {int(weeks)} weeks run as their own job "
                "right after" if after else "")
            st.toast(msg + ". You can leave this page: the sync goes on.", icon=":material/schedule:")

    with st.expander("Re-sync one past week", icon=":material/event_repeat:"):
        st.caption("Xero's reports change when someone edits a past transaction: rebuild one week's "
                   "P&L and cash position for the organisation chosen in the sidebar.")
        week = st.date_input("Week ending", value=None, format="YYYY-MM-DD",
                             help=f"The last day of the week ({md(s.week_ends_on.capitalize())}s). Another day "
                                  "is moved to the end of its week.")
        if st.button("Re-sync this week", icon=":material/sync:", disabled=not (chosen and week)) and chosen:
            with shown_errors():
                req = engine.sync_request(chosen, week_ending=week, trigger="manual", requested_by="admin app")
                job = engine.submit_sync(s, req, tenant_name=names.get(chosen))
                st.session_state["_sync_jobs"] = [job.job_id]
                st.toast(f"Queued: {md(names.get(chosen, chosen))}, {md(req.describe())}.", icon=":material/schedule:")
        if not chosen:
            st.caption("Choose an organisation in the sidebar first.")


def _draw_jobs() -> None:
    mine = st.session_state.get("_sync_jobs") or []
    try:
        active = engine.active_jobs(s)
        own = [j for j in (engine.get_job(s, i) for i in mine) if j is not None]
    except LedgerlinkError as exc:
        st.error(md(say(exc), 1000), icon=":material/error:")
        return
    shown = {j.job_id: j for j in active}
    for j in own:
        shown.setdefault(j.job_id, j)
    if not shown:
        st.caption("No sync is under way.")
        return
    all_names = {**names, **{j.tenant_id: j.tenant_name for j in shown.values() if j.tenant_name and j.tenant_id not in names}}
    for job in sorted(shown.values(), key=lambda j: (not j.active, -(j.created_at or 0))):
        job_card(s, job, all_names, key="sync")
    finished = [j for j in own if not j.active]
    if own and len(finished) == len(own):
        rows = result_rows(finished, all_names)
        if rows:
            st.caption("What each step did")
            st.dataframe(rows, column_order=STEP_COLUMNS, hide_index=True, width="stretch", placeholder="")
        if st.session_state.get("_sync_jobs_seen_done") != mine:
            st.session_state["_sync_jobs_seen_done"] = mine
            st.cache_data.clear()  # the Data and Connection pages show the new figures
    if not any(j.active for j in shown.values()) and st.session_state.get("_jobs_live"):
        st.session_state["_jobs_live"] = False
        st.rerun()  # stop redrawing on a timer


st.subheader("Syncs under way and just finished")
live = bool(engine.active_jobs(s))
st.session_state["_jobs_live"] = live
st.fragment(_draw_jobs, run_every=REFRESH if live else None)()

# -- API budget -------------------------------------------------------------------------------
st.subheader("API budget left today")
with shown_errors():
    if conns:
        cols = st.columns(min(4, len(conns)))
        for i, c in enumerate(conns):
            b = engine.budget_status(s, c["tenant_id"])
            col = cols[i % len(cols)]
            col.metric(md(names[c["tenant_id"]]), f"{b.get('remaining', 0):,} calls",
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
    c1.metric("Scheduler", md(state.get("status") or ("running" if running else "not running")))
    c2.metric("Scheduled syncs", "paused" if paused else "enabled")
    c3.markdown(f"**Last heartbeat**  \n{widgets.when(state.get('heartbeat'))}")
    c4.markdown(f"**Next run**  \n{'paused' if paused else widgets.when(state.get('next_run'))}")
    cur = state.get("current")
    if isinstance(cur, dict):
        st.caption(f"Under way: {md(cur.get('kind'))} · {md(cur.get('step'))} for "
                   f"{md(names.get(cur.get('tenant_id'), cur.get('tenant_id') or 'all'))} since {widgets.when(cur.get('since'))}")
    cycle = state.get("last_result")
    if isinstance(cycle, dict):
        outcome = "all steps ok" if cycle.get("ok") else f"{md(cycle.get('failed', 0))} step(s) failed"
        if cycle.get("skipped_reason"):
            outcome = f"skipped: {md(cycle['skipped_reason'], 1000)}"
        st.caption(f"Last run ({md(cycle.get('kind'))}) {widgets.when(state.get('last_run'))}: {outcome}.")
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
        orgs = f1.multiselect("Organisation", sorted({h["organisation"] for h in hist if h["organisation"]}),
                              format_func=plain)
        statuses = f2.multiselect("Status", sorted({h["status"] for h in hist if h["status"]}), format_func=plain)
        types = f3.multiselect("Step", sorted({h["sync_type"] for h in hist if h["sync_type"]}), format_func=plain)
        shown = [h for h in hist
                 if (not orgs or h["organisation"] in orgs)
                 and (not statuses or h["status"] in statuses)
                 and (not types or h["sync_type"] in types)]
        st.dataframe(
            rows(widgets.local_times(shown, ("started_at", "finished_at"))), hide_index=True, width="stretch",
            column_order=("started_at", "organisation", "sync_type", "status", "rows", "api_calls",
                          "bytes_downloaded", "error", "trigger", "period_start", "period_end", "finished_at"), placeholder="",
        )
        st.caption(f"{len(shown)} of {len(hist)} most recent steps, newest first.")
