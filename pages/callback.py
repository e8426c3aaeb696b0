"""Where Xero sends the browser back after consent (XERO_REDIRECT_URI = <app>/callback)."""
import streamlit as st

from app_support import engine, widgets
from app_support.connect import callback_url, forget_consent_url
from app_support.guard import shown_errors
from xero_core.errors import OAuthError
from app_support.shell import ensure_frame
from app_support.text import md

ensure_frame()  # before anything renders: sign-in and the banner come from app.py

s = widgets.settings()
st.title("Finishing the connection")

params = st.query_params.to_dict()
done = st.session_state.get("_callback_done")

if "code" in params or "error" in params:
    # The code is single-use: complete once, then drop it from the URL so a rerun cannot replay it.
    url = callback_url(s, params)
    st.query_params.clear()
    forget_consent_url()
    try:
        tenants = widgets.as_rows(engine.complete_connect(s, url))
    except OAuthError as exc:
        st.session_state["_callback_done"] = {"ok": False, "code": exc.code}
    else:
        st.cache_data.clear()
        st.session_state["_callback_done"] = {"ok": True, "tenants": tenants}
        if len(tenants) == 1:
            st.session_state[widgets.TENANT_KEY] = tenants[0].get("tenant_id")
    st.rerun()  # so the sidebar's organisation picker shows the new connection

if not done:
    st.info("Nothing to finish here: start from **Connect to Xero** on the Connection page.")
elif done["ok"]:
    names = ", ".join(f"**{md(t.get('tenant_name') or t.get('tenant_id'))}** ({md(t.get('tenant_type'))})"
                      for t in done["tenants"]) or "no organisation"
    st.success(f"Connected: {names}.", icon=":material/check_circle:")
    st.write("Next: run a first sync from the Sync page.")
else:
    with shown_errors():
        advice = engine.oauth_error_advice(done["code"])
        st.error(f"Xero did not connect ({md(done['code'])}). {md(advice, 1000)}", icon=":material/error:")
st.page_link("pages/connection.py", label="Back to Connection", icon=":material/link:")
