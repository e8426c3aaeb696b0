"""Connection: each organisation's status, Connect (real OAuth redirect), Disconnect, OAuth advice."""
import time
from typing import Literal

import streamlit as st

from app_support import demo_services, engine, jobs_view, widgets
from app_support.connect import CONSENT_LINK_TTL, consent_settled, consent_url, forget_consent_url, known_oauth_errors, token_summary
from app_support.guard import shown_errors
from app_support.shell import ensure_frame
from app_support.text import code, md, plain

ensure_frame()  # before anything renders: sign-in and the banner come from app.py

s = widgets.settings()
st.title("Connection")

ROLE_LABELS = {"practice-ledger": "Practice ledger: the practice's own Xero (its customers are your clients)",
               "client-organisation": "Client organisation: a client's books (synced for its figures)"}


def _roles_section(tid: str, org: dict, clients: list[dict]) -> None:
    """An organisation's role, and for a client organisation the practice client it belongs to."""
    role, effective = org.get("role"), org.get("effective")
    proposed = org.get("suggested") and not effective  # several organisations: Practice Manager's namesake
    if proposed:
        st.text("Role: not set. Suggested: practice ledger (it has your Practice Manager's name): confirm it if it "
                "is the practice's own Xero.")
        effective = "practice-ledger"
    elif role:
        st.text(f"Role: {ROLE_LABELS[role].split(':')[0].lower()}")
    elif effective:
        st.text(f"Role: {ROLE_LABELS[effective].split(':')[0].lower()} (suggested: the only organisation connected; "
                "confirm it)")
    else:
        st.text("Role: not set. Choose one: until one organisation is the practice ledger, no organisation's "
                "customers become clients.")
    options = list(ROLE_LABELS)
    c1, c2 = st.columns([3, 1])
    current = role or effective
    choice = c1.selectbox("Role", options, index=options.index(current) if current else None,
                          format_func=ROLE_LABELS.__getitem__, key=f"role-{tid}", placeholder="Choose a role")
    label = "Confirm role" if (choice and choice == effective and not role) else "Save role"
    effective = None if proposed else effective  # only a suggestion: it makes no client organisation of anyone
    if c2.button(label, key=f"role-save-{tid}", disabled=choice is None or choice == role) and choice is not None:
        with shown_errors():
            change = widgets.as_dict(engine.set_role(s, tid, choice))
            lines = [f"{change['tenant_name']} is now the {'practice ledger' if choice == 'practice-ledger' else 'client organisation'}."]
            lines += [f"{n} is now a client organisation." for n in change.get("demoted") or []]
            if change.get("removed"):
                lines.append(f"Removed {len(change['removed'])} client(s) imported from client organisations' "
                             "customers (listed on the Clients page).")
            if change.get("kept"):
                lines.append(f"Kept {len(change['kept'])} of them that have documents, campaigns or edits; they now "
                             "look for their contact in the practice ledger.")
            st.cache_data.clear()
            for k in [k for k in st.session_state if str(k).startswith("role-")]:
                del st.session_state[k]  # every organisation's selector shows its role as it now stands
            st.session_state["_flash"] = " ".join(lines)
            st.rerun()
    if effective != "client-organisation" or not clients:
        return
    by_id = {c["client_id"]: c for c in clients}
    if org.get("practice_client_id"):
        st.text(plain(f"Belongs to client: {org.get('client_name') or org['practice_client_id']}"))
        if st.button("Unlink from this client", key=f"unlink-{tid}"):
            with shown_errors():
                engine.link_organisation(s, tid, None)
                st.session_state["_flash"] = f"{org['tenant_name']} is linked to no client."
                st.rerun()
        return
    suggested = [x["client_id"] for x in org.get("suggested_clients") or [] if x["client_id"] in by_id]
    why = {x["client_id"]: x["method"].replace("_", " ") for x in org.get("suggested_clients") or []}
    ordered = suggested + [k for k in by_id if k not in suggested]
    if suggested:
        st.text(plain("Belongs to client? Suggested: " + ", ".join(f"{by_id[k]['name']} (same {why[k]})" for k in suggested),
                      1000))
    d1, d2 = st.columns([3, 1])
    pick = d1.selectbox("Belongs to client", ordered, index=0 if suggested else None, key=f"owner-{tid}",
                        format_func=lambda k: plain(by_id[k]["name"] + (f" (suggested: same {why[k]})" if k in why else "")),
                        placeholder="Choose the client this organisation belongs to")
    if d2.button("Link to this client", key=f"link-{tid}", disabled=pick is None):
        with shown_errors():
            link = widgets.as_dict(engine.link_organisation(s, tid, pick))
            st.session_state["_flash"] = f"{link['tenant_name']} belongs to client {link['client_name']}."
            st.rerun()


with shown_errors():
    conns = widgets.connections(s, include_disconnected=True)
    role_doc = widgets.as_dict(engine.organisations(s))
    role_orgs = {o["tenant_id"]: o for o in role_doc.get("organisations") or []}
    practice_clients = widgets.as_rows(engine.list_clients(s, include_archived=False)) if role_orgs else []
    if role_doc.get("problem"):
        st.warning(md(role_doc["problem"], 1000), icon=":material/domain:")
    if not conns:
        st.info("No organisation is connected yet. Connect one below.", icon=":material/link_off:")
    for c in conns:
        tid = c["tenant_id"]
        status = c.get("status") or "unknown"
        with st.container(border=True, key=f"conn-{tid}"):
            head, badges = st.columns([3, 2])
            head.subheader(md(c.get("tenant_name") or tid))
            head.caption(f"{md(c.get('tenant_type') or 'unknown type')} · tenant id {code(tid)}")
            colour: Literal["green", "orange", "gray"] = (
                "green" if status == "connected" else "orange" if status == "needs_reconnect" else "gray")
            with badges:
                st.badge(md(widgets.STATUS_LABELS.get(status, status)), color=colour)
                if s.mock_mode:
                    st.badge("Mock: fake Xero", color="violet", icon=":material/science:")
            if c.get("status_reason") and status != "connected":
                st.write(md(c["status_reason"], 1000))
            info = st.columns(3)
            failure = jobs_view.last_sync_failure(engine.list_jobs(s, tenant_id=tid, limit=5))
            if failure is not None:  # issue 24 §3: a failed last sync reads as failed, with its reason
                job, reason = failure
                info[0].markdown(f"**Last sync**  \n:red[failed] {widgets.when(job.finished_at)}")
                st.error(md(f"The last sync failed: {reason}", 1000), icon=":material/sync_problem:")
            else:
                info[0].markdown(f"**Last sync**  \n{widgets.when(c.get('last_sync_at'))}")
            info[1].markdown(f"**Connected**  \n{widgets.when(c.get('connected_at'))}")
            if status != "disconnected":
                tok = token_summary(s, tid)
                info[2].markdown(f"**Access token**  \n{md(tok.access)}")
                if tok.unusable and status == "connected":
                    badges.badge("Unusable: syncs cannot run", color="red", icon=":material/block:")
                if tok.unusable:
                    st.error(md(tok.warning, 1000), icon=":material/key_off:")
                elif tok.warning:
                    st.warning(md(tok.warning, 1000), icon=":material/schedule:")
            if c.get("tier_note"):
                st.caption(md(c["tier_note"], 1000))
            if status == "disconnected":
                continue
            if tid in role_orgs:
                _roles_section(tid, role_orgs[tid], practice_clients)
            if st.session_state.get("_confirm_disconnect") == tid:
                st.warning(
                    f"Disconnect **{md(c.get('tenant_name') or tid)}**? Ledgerlink stops syncing it and Xero "
                    "revokes this app's access. The data already synced stays in the database.",
                    icon=":material/warning:",
                )
                yes, no = st.columns([1, 4])
                if yes.button("Yes, disconnect", type="primary", key=f"disc-yes-{tid}"):
                    with shown_errors():
                        engine.disconnect(s, tid)
                        st.session_state.pop("_confirm_disconnect", None)
                        st.cache_data.clear()
                        st.session_state["_flash"] = f"Disconnected {c.get('tenant_name') or tid}."
                        st.rerun()
                if no.button("Cancel", key=f"disc-no-{tid}"):
                    st.session_state.pop("_confirm_disconnect", None)
                    st.rerun()
            elif st.button("Disconnect…", key=f"disc-{tid}"):
                st.session_state["_confirm_disconnect"] = tid
                st.rerun()

st.subheader("Connect an organisation")
fake_down = s.mock_mode and not demo_services.fake_answers(s)
if fake_down:
    if demo_services.FAKE["starting"]:
        st.info(f"The fake Xero is starting on {code(s.api_url)} (about 15 seconds): Connect to Xero works once it "
                "answers. This page updates by itself.", icon=":material/hourglass_top:")
    else:
        fake_why = f" ({md(demo_services.FAKE['error'], 1000)})" if demo_services.FAKE["error"] else ""
        st.warning(f"The fake Xero does not answer on {code(s.api_url)}{fake_why}, so Connect to Xero cannot work. "
                   f"{md(s.unreachable_hint, 1000)} This page updates by itself once it answers.", icon=":material/cloud_off:")


CLICKED = "_connect_clicked"


def _clicked() -> None:
    st.session_state[CLICKED] = time.time()


# Poll only while it matters: after Connect to Xero was clicked (until the link's lifetime ends) or
# while the fake is down. (Streamlit folds a timer tick that lands on a pending page switch into a
# rerun of this page, so an always-on timer could swallow a click in the menu.)
waiting = time.time() - st.session_state.get(CLICKED, 0) < CONSENT_LINK_TTL


@st.fragment(run_every=2 if (waiting or fake_down) else None)
def watch() -> None:
    """Redraw the page by itself when another tab finishes the connection (Xero's consent page
    opens in a new tab and lands on /callback there), when the consent link is due for renewal,
    and in mock mode when the fake Xero comes up. Each tick is a file check (and a loopback
    health check while the fake is down)."""
    if (waiting and consent_settled(s)) or (fake_down and demo_services.fake_answers(s)):
        forget_consent_url()
        st.session_state.pop(CLICKED, None)
        st.cache_data.clear()
        st.rerun(scope="app")


watch()
with shown_errors():
    url = consent_url(s)
    where = "the fake Xero's consent page" if s.mock_mode else "Xero's sign-in and consent page"
    st.write(
        f"**Connect to Xero** opens {where} in a new tab. Choose the organisations to share, "
        f"and Xero sends you back to {code(s.redirect_uri)}, which finishes the connection. "
        "Reconnecting an organisation uses the same button."
    )
    st.link_button("Connect to Xero", url, type="primary", icon=":material/add_link:", disabled=fake_down,
                   on_click=_clicked)
    st.caption("The link is single-use and valid for 10 minutes; this page makes a fresh one when needed.")

with st.expander("If connecting fails: what each Xero error means"):
    with shown_errors():
        for error, advice in known_oauth_errors():
            st.markdown(f"**{code(error)}** — {md(advice, 1000)}")
