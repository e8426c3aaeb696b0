"""Webhooks: the URL to register, the signing key (vault, masked), status and recent events."""
import streamlit as st

from app_support import engine, widgets
from app_support.guard import shown_errors
from app_support.webhook_route import PATH

s = widgets.settings()
st.title("Webhooks")

st.subheader("1. Register this URL in Xero")
st.write("In Xero's developer portal (My Apps › your app › Webhooks), add a webhook with this delivery URL "
         "and tick Contacts and Invoices. Xero requires https; put the app behind a TLS proxy first "
         "(see the README's *Exposing the admin app safely*).")
st.code(s.app_url.rstrip("/") + PATH, language=None)

st.subheader("2. Paste the webhook key")
with shown_errors():
    mask = engine.webhook_key_mask(s)
    if mask:
        st.write(f"A key is stored (encrypted in the vault): `{mask}`")
    else:
        st.write("No key is stored yet: every delivery is refused with 401 until one is.")
    with st.form("webhook_key", clear_on_submit=True):
        key = st.text_input("Webhook key (from the same Xero page)", type="password")
        if st.form_submit_button("Save key", type="primary"):
            if not key.strip():
                st.warning("Paste the key first.")
            else:
                engine.set_webhook_key(s, key.strip())
                st.session_state["_flash"] = "Webhook key saved (encrypted). Now press “Send Intent to Receive” in Xero."
                st.rerun()

st.subheader("3. Status")
with shown_errors():
    status = engine.webhook_status(s) or {}
    c1, c2, c3 = st.columns(3)
    itr = status.get("intent_to_receive_passed") or status.get("intent_passed")
    c1.metric("Intent to Receive", "passed" if itr else "not yet")
    c2.markdown(f"**Last event received**  \n{widgets.when(status.get('last_event_at'))}")
    c3.markdown(f"**Last verification failure**  \n{widgets.when(status.get('last_failure_at'))}")
    if status.get("pending"):
        st.caption(f"{status['pending']} event(s) waiting to be processed.")

st.subheader("Recent events")
with shown_errors():
    events = widgets.as_rows(engine.recent_webhook_events(s))
    if events:
        st.dataframe(
            events, hide_index=True, width="stretch",
            column_order=("received_at", "event_category", "event_type", "resource_id", "tenant_id", "status",
                          "error", "attempts", "processed_at"),
        )
    else:
        st.caption("No event received yet.")
