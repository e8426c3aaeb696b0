"""Practice Manager: enable XPM per connection, map job states to "needs documents", campaigns."""
import streamlit as st

from app_support import engine, widgets
from app_support.guard import say, shown_errors
from app_support.shell import ensure_frame
from app_support.text import md, plain, rows as text_rows
from xero_core.errors import LedgerlinkError

ensure_frame()  # before anything renders: sign-in and the banner come from app.py

# Column headers as the other pages write them: words, not field names.
PREVIEW_HEADERS = {"job_id": "Job", "job_name": "Job name", "state": "State", "client_name": "Client in XPM",
                   "ledgerlink_client_name": "Ledgerlink client", "due_date": "Due"}
CAMPAIGN_HEADERS = {"job_id": "Job", "job_name": "Job name", "client_name": "Client", "job_state": "Job state",
                    "status": "Campaign", "next_reminder_at": "Next reminder", "opened_at": "Opened",
                    "stop_reason": "Why it stopped", "completed_at": "Completed", "completion_reason": "Why it completed"}


def synced_sentence(detail: dict, rows: int) -> str:
    """What the Practice Manager sync did: jobs read, campaigns opened and completed."""
    jobs = int(detail.get("jobs", rows) or 0)
    opened, completed = int(detail.get("campaigns_opened") or 0), int(detail.get("campaigns_completed") or 0)
    said = f"Practice Manager synced: {jobs} job{'s' if jobs != 1 else ''} read"
    if not detail.get("xpm_enabled", True):
        return said + "; following jobs is off for this practice, so no campaign opened or completed."
    return (said + f", {opened} campaign{'s' if opened != 1 else ''} opened and {completed} completed.")

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
        on = st.toggle(md(c.get("tenant_name") or tid), value=bool(c.get("xpm_enabled")), key=f"xpm-on-{tid}")
        if on != bool(c.get("xpm_enabled")):
            engine.xpm_set_enabled(s, tid, on)
            st.cache_data.clear()
            st.rerun()
    if c.get("tier_note"):
        st.warning(md(c["tier_note"], 1000), icon=":material/block:")

by_id = {c["tenant_id"]: c for c in practices}
default = widgets.chosen_tenant() if widgets.chosen_tenant() in by_id else None
if default is None and len(practices) == 1:
    default = practices[0]["tenant_id"]
st.subheader("Which job states need documents")
tid = st.selectbox("Practice", list(by_id), index=list(by_id).index(default) if default else None,
                   format_func=lambda t: plain(by_id[t].get("tenant_name") or t), placeholder="Choose a practice",
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
        default=sorted(current, key=str.casefold), key=f"xpm-map-{tid}", format_func=plain,
        help="Offered: the states seen in synced jobs plus the ones already configured.",
    )
    preview = widgets.as_rows(engine.xpm_preview_mapping(s, tid, chosen))
    changed = set(chosen) != current
    head = "With this mapping" if changed else "With the saved mapping"
    if preview:  # the sentence ends with its list: the table right under it
        st.caption(f"{head}, {len(preview)} current job{'s' if len(preview) != 1 else ''} would be in a "
                   "chasing campaign:")
        for row in preview:
            row["due_date"] = widgets.day(row.get("due_date"))
        st.dataframe(text_rows(preview), hide_index=True, width="stretch", column_config=PREVIEW_HEADERS,
                     column_order=tuple(PREVIEW_HEADERS), placeholder="")
    else:
        st.caption(f"{head}, no current job would be in a chasing campaign.")
    if not practice.get("xpm_enabled"):
        st.caption("Following jobs is off for this practice: the mapping is kept, no campaign opens.")
    save, sync_now = st.columns([1, 1])
    if save.button("Save mapping and apply", type="primary", disabled=not changed):
        engine.xpm_set_mapping(s, tid, chosen)
        st.session_state["_xpm_apply"] = (tid, "Mapping saved. ")
    if sync_now.button("Sync jobs now", icon=":material/sync:"):
        st.session_state["_xpm_apply"] = (tid, "")

applying = st.session_state.pop("_xpm_apply", None)
if applying and applying[0] == tid:
    # Campaigns follow the jobs' states at each XPM sync: run that one step now, so the admin sees
    # the result of the mapping at once rather than after tomorrow's scheduled sync.
    with st.spinner("Reading the practice's jobs…"):
        try:
            res = engine.sync_now(s, tid, only="xpm,chase", trigger="manual")
        except (LedgerlinkError, ValueError) as exc:
            st.error(md(say(exc), 1000), icon=":material/error:")
        else:
            st.cache_data.clear()  # the sync may have recorded a tier note on the connection
            step = next((x for x in res.steps if x.step == "xpm"), None)
            if res.busy:
                st.warning(f"Not synced now: {md(res.busy, 1000)}")
            elif step is not None and step.status == "success":
                st.session_state["_flash"] = applying[1] + synced_sentence(step.detail or {}, step.rows)
                st.rerun()
            elif step is not None:
                st.warning(f"Practice Manager sync {md(step.status)}: {md(step.error or '', 1000)}", icon=":material/warning:")

st.subheader("How each state chases")
st.caption("Reminders go to the client's email on the days after the campaign opens (0 is at once; "
           "\"then every 7\" repeats weekly), on business days in sending hours only; a campaign stops by itself "
           "when the job leaves the state, when a document is recorded for the client, or when paused.")
with shown_errors():
    cad_rows = engine.chase_mapping_rows(s, tid)
    if not cad_rows:
        st.caption("No state is mapped yet: choose the states above and save.")
    else:
        edited = st.data_editor(
            [{"state": r["state"], "cadence": r["cadence"], "needed": r["needed"], "in words": r["cadence_words"]}
             for r in cad_rows],
            key=f"chase-cadence-{tid}", hide_index=True, width="stretch", disabled=("state", "in words"), placeholder="",
            column_config={"cadence": st.column_config.TextColumn("Cadence (days)", help="e.g. 0, 3, 7, 14, then every 7"),
                           "needed": st.column_config.TextColumn("What is needed", help="{needed} in the email")})
        if st.button("Save cadences", key=f"chase-cadence-save-{tid}"):
            for before, after in zip(cad_rows, edited):
                if (after["cadence"], after["needed"]) != (before["cadence"], before["needed"]):
                    engine.chase_set_cadence(s, tid, before["state"], after["cadence"] or "", after["needed"] or "")
            st.session_state["_flash"] = "Cadences saved."
            st.rerun()

st.subheader("Reminder email")
with shown_errors():
    smtp = engine.chase_smtp_status(s)
    if smtp["problem"]:
        st.warning(("Chasing is on but reminders cannot be sent: " if practice.get("xpm_enabled") else "")
                   + md(smtp["problem"], 1000), icon=":material/mail:")
    else:
        st.text(plain(f"Sent from {smtp['sender']} through {smtp['host']}:{smtp['port']} ({smtp['security']}); "
                      f"password: {smtp['password']}.", 1000))
    cfg = engine.chase_get_config(s, tid)
    with st.expander("Template, reply-to and sending hours"):
        with st.form(f"chase-template-{tid}"):
            subject = st.text_input("Subject", value=cfg["subject"])
            body = st.text_area("Message", value=cfg["body"], height=220,
                                help="Fields: {client_name}, {job_name}, {job_id}, {needed}, {reply_to}, {practice_name}")
            reply_to = st.text_input("Reply-to", value=cfg["reply_to"] or "",
                                     placeholder=cfg.get("reply_to_effective") or "CHASE_FROM's address")
            c1, c2 = st.columns(2)
            send_from = c1.text_input("Sending from (quiet before)", value=cfg["send_from"])
            send_until = c2.text_input("Sending until (quiet after; 24:00 for none)", value=cfg["send_until"])
            if st.form_submit_button("Save template and hours"):
                engine.chase_set_config(s, tid, subject=subject, body=body, reply_to=reply_to, send_from=send_from,
                                        send_until=send_until)
                st.session_state["_flash"] = "Reminder email saved."
                st.rerun()
        st.caption(f"Sending hours: {md(cfg['window'])}.")
        pv = engine.chase_preview(s, tid)
        st.caption("Preview (the newest campaign's client, or an example):")
        st.text(plain(f"From: {pv['from'] or ''}\nTo: {pv['to'] or '(' + (pv['to_problem'] or '') + ')'}\n"
                      f"Reply-To: {pv['reply_to'] or ''}\nSubject: {pv['subject']}\n\n{pv['body']}", 20000, lines=True))
    with st.expander("SMTP password in the vault"):
        st.caption("Stored encrypted; it wins over SMTP_PASSWORD and is never shown again.")
        with st.form(f"chase-smtp-password-{tid}", clear_on_submit=True):
            pw = st.text_input("SMTP password", type="password")
            if st.form_submit_button("Store password"):
                engine.chase_set_smtp_password(s, pw or None)
                st.session_state["_flash"] = "SMTP password stored." if pw else "SMTP password removed from the vault."
                st.rerun()

st.subheader("Chasing campaigns")
with shown_errors():
    camps = widgets.as_rows(engine.list_campaigns(s, tid))
    open_c = [c for c in camps if c.get("status") == "open"]
    held_c = [c for c in camps if c.get("status") in ("paused", "stopped")]
    done_c = [c for c in camps if c.get("status") == "completed"]
    cols = ("job_id", "job_name", "client_name", "job_state", "status", "next_reminder_at", "opened_at",
            "stop_reason", "completed_at", "completion_reason")
    times = ("opened_at", "completed_at", "next_reminder_at")
    t_open, t_held, t_done = st.tabs([f"Open ({len(open_c)})", f"Paused or stopped ({len(held_c)})",
                                      f"Completed ({len(done_c)})"])
    for tab, rows, empty in ((t_open, open_c, "No open campaign."), (t_held, held_c, "No paused or stopped campaign."),
                             (t_done, done_c, "No completed campaign yet.")):
        with tab:
            if rows:
                st.dataframe(text_rows(widgets.local_times(rows, times)), hide_index=True, width="stretch", column_order=cols,
                             column_config=CAMPAIGN_HEADERS, placeholder="")
            else:
                st.caption(empty)
    live = open_c + held_c
    if live:
        by_c = {c["campaign_id"]: c for c in live}
        cid = st.selectbox("Campaign", list(by_c), key=f"chase-campaign-{tid}",
                           format_func=lambda k: plain(f"{by_c[k]['job_id']} · {by_c[k].get('client_name') or by_c[k].get('xpm_client_id') or ''} · {by_c[k]['status']}"))
        camp = engine.chase_campaign(s, cid)
        nxt = widgets.stamp(camp.get("next_reminder_at")) if camp.get("next_reminder_at") else "none planned"
        st.text(plain(f"{camp['status']}: next reminder {nxt}; cadence {camp.get('cadence') or 'default'}"
                      + (f"; {camp['stop_reason']}" if camp.get("stop_reason") else ""), 1000))
        b1, b2, _ = st.columns([1, 1, 3])
        if camp["status"] == "open":
            if b1.button("Send now", icon=":material/send:", key=f"chase-send-{cid}"):
                sent = engine.chase_send_now(s, cid)
                why = f" ({'; '.join(sent.messages)})" if sent.messages else ""
                # No reminder went (no address, a refusing server): say why, not in a success's green.
                st.session_state["_flash" if sent.sent else "_flash_warning"] = f"Send now: {sent.summary()}{why}"
                st.rerun()
            if b2.button("Pause", icon=":material/pause:", key=f"chase-pause-{cid}"):
                engine.chase_pause(s, cid)
                st.rerun()
        elif b1.button("Resume", icon=":material/play_arrow:", key=f"chase-resume-{cid}"):
            engine.chase_resume(s, cid)
            st.rerun()
        hist = camp.get("history") or []
        if hist:
            st.dataframe(text_rows(widgets.local_times(hist, ("due_at", "next_try_at", "sent_at"))), hide_index=True,
                         width="stretch", placeholder="",
                         column_order=("state", "why", "address", "subject", "attempts", "due_at", "next_try_at", "sent_at"))
        else:
            st.caption("No reminder yet.")

st.subheader("Outbox")
with shown_errors():
    box = widgets.as_rows(engine.chase_outbox(s, tenant_id=tid))
    if box:
        counts: dict[str, int] = {}
        for r in box:
            counts[r["state"]] = counts.get(r["state"], 0) + 1
        st.caption(", ".join(f"{md(n)} {md(k)}" for k, n in sorted(counts.items())))
        st.dataframe(text_rows(widgets.local_times(box, ("due_at", "next_try_at", "sent_at"))), hide_index=True, width="stretch",
                     placeholder="", column_order=("state", "why", "client_name", "job_id", "address", "subject",
                                                   "attempts", "next_try_at", "sent_at", "message_id"))
        again = [r for r in box if r["state"] in ("unconfirmed", "failed", "bounced")]
        if again:
            by_r = {r["reminder_id"]: r for r in again}
            rid = st.selectbox("Send a reminder again", list(by_r), key=f"chase-again-{tid}",
                               format_func=lambda k: plain(f"{by_r[k]['state']} · {by_r[k].get('client_name') or ''} · {by_r[k]['address'] or ''}"))
            if st.button("Send again", icon=":material/forward_to_inbox:", key=f"chase-again-btn-{tid}"):
                again_result = engine.chase_send_again(s, rid)
                st.session_state["_flash"] = f"Send again: {again_result.summary()}"
                st.rerun()
    else:
        st.caption("No reminder yet: a campaign's first one is recorded here when it opens.")
    caught = engine.caught_mail(s)
    if caught is not None:
        st.markdown("**Caught by the demo's mail server** (mock mode: nothing leaves this machine)")
        if caught:
            st.dataframe(text_rows([{k: r[k] for k in ("to", "subject", "reply_to", "message_id")} for r in caught]),
                         hide_index=True, width="stretch", placeholder="")
            subjects = [f"{m['to']} · {m['subject']}" for m in caught]
            pick = st.selectbox("Read a caught message", list(range(len(caught))), key=f"chase-caught-{tid}",
                                format_func=lambda i: plain(subjects[i]))
            m = caught[pick]
            st.text(plain(f"From: {m['from']}\nTo: {m['to']}\nReply-To: {m['reply_to']}\nSubject: {m['subject']}\n"
                          f"Message-ID: {m['message_id']}\n\n{m['body']}", 20000, lines=True))
        else:
            st.caption("Nothing caught yet.")
