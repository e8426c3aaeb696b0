"""Connection: each organisation's status, Connect (real OAuth redirect), Disconnect, OAuth advice."""
import streamlit as st

from app_support import engine, widgets
from app_support.connect import consent_url, known_oauth_errors, token_summary
from app_support.guard import shown_errors
from app_support.shell import ensure_frame

ensure_frame()  # before anything renders: sign-in and the banner come from app.py

s = widgets.settings()
st.title("Connection")

with shown_errors():
    conns = widgets.connections(s, include_disconnected=True)
    if not conns:
        st.info("No organisation is connected yet. Connect one below.", icon=":material/link_off:")
    for c in conns:
        tid = c["tenant_id"]
        status = c.get("status") or "unknown"
        with st.container(border=True, key=f"conn-{tid}"):
            head, badges = st.columns([3, 2])
            head.subheader(c.get("tenant_name") or tid)
            head.caption(f"{c.get('tenant_type') or 'unknown type'} · tenant id `{tid}`")
            colour = {"connected": "green", "needs_reconnect": "orange"}.get(status, "gray")
            with badges:
                st.badge(widgets.STATUS_LABELS.get(status, status), color=colour)
                if s.mock_mode:
                    st.badge("Mock: fake Xero", color="violet", icon=":material/science:")
            if c.get("status_reason") and status != "connected":
                st.write(c["status_reason"])
            info = st.columns(3)
            info[0].markdown(f"**Last sync**  \n{widgets.when(c.get('last_sync_at'))}")
            info[1].markdown(f"**Connected**  \n{widgets.when(c.get('connected_at'))}")
            if status != "disconnected":
                tok = token_summary(s, tid)
                info[2].markdown(f"**Access token**  \n{tok.access}")
                if tok.unusable and status == "connected":
                    badges.badge("Unusable: syncs cannot run", color="red", icon=":material/block:")
                if tok.unusable:
                    st.error(tok.warning, icon=":material/key_off:")
                elif tok.warning:
                    st.warning(tok.warning, icon=":material/schedule:")
            if c.get("tier_note"):
                st.caption(c["tier_note"])
            if status == "disconnected":
                continue
            if st.session_state.get("_confirm_disconnect") == tid:
                st.warning(
                    f"Disconnect **{c.get('tenant_name') or tid}**? Ledgerlink stops syncing it and Xero "
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
with shown_errors():
    url = consent_url(s)
    where = "the fake Xero's consent page" if s.mock_mode else "Xero's sign-in and consent page"
    st.write(
        f"**Connect to Xero** opens {where} in a new tab. Choose the organisations to share, "
        f"and Xero sends you back to `{s.redirect_uri}`, which finishes the connection. "
        "Reconnecting an organisation uses the same button."
    )
    st.link_button("Connect to Xero", url, type="primary", icon=":material/add_link:")
    st.caption("The link is single-use and valid for 10 minutes; this page makes a fresh one when needed.")

with st.expander("If connecting fails: what each Xero error means"):
    with shown_errors():
        for code, advice in known_oauth_errors():
            st.markdown(f"**`{code}`** — {advice}")
