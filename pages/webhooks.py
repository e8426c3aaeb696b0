"""Webhooks: the URL to register, the signing key (vault, masked), status and recent events."""
import streamlit as st

from app_support import engine, widgets
from app_support.guard import shown_errors
from app_support.webhook_route import PATH
from app_support.shell import ensure_frame
from app_support.text import code, md, plain, rows

ensure_frame()  # before anything renders: sign-in and the banner come from app.py

s = widgets.settings()
st.title("Webhooks")

st.subheader("1. Register this URL in Xero")
st.write("In Xero's developer portal (My Apps › your app › Webhooks), add a webhook with this delivery URL "
         f"and tick {md(engine.webhook_categories())}. Xero requires https; put the app behind a TLS proxy first "
         "(see the README's *Exposing the admin app safely*).")
st.code(plain(s.app_url.rstrip("/") + PATH), language=None)
st.caption("This admin app receives the webhooks itself. If you run the separate receiver instead "
           "(`python -m xero_core webhooks`), register that server's public URL with the same path.")

st.subheader("2. Paste the webhook key")
with shown_errors():
    mask = engine.webhook_key_mask(s)
    if mask:
        st.write(f"A key is set: {code(mask)}. Paste a new one below to replace it.")
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
    c1.metric("Intent to Receive", "passed" if status.get("intent_to_receive_passed") else "not yet")
    c1.caption(f"Last passed: {widgets.when(status.get('intent_to_receive_at'))}")
    probes = status.get("intent_probes_refused") or 0
    if probes:
        c1.caption(f"{md(probes)} wrongly signed Intent to Receive probe(s) refused, as Xero expects: it sends one "
                   "correctly signed request and several deliberately wrongly signed ones, and passes the URL "
                   "only if those are refused. These are not failures.")
    c2.markdown(f"**Last event received**  \n{widgets.when(status.get('last_event_received_at'))}")
    c2.caption(f"{md(status.get('deliveries_verified', 0))} deliveries verified")
    c3.markdown(f"**Last refused delivery**  \n{widgets.when(status.get('last_verification_failure_at'))}")
    if status.get("last_verification_failure"):
        c3.caption(f"Why: {md(status['last_verification_failure'])} · {md(status.get('deliveries_rejected', 0))} refused "
                   "(Intent to Receive probes not counted). Refusals you did not expect mean the key here "
                   "differs from your Xero app's, or someone else is posting to this URL.")
    counts = status.get("events") or {}
    backlog = status.get("spool_backlog") or 0
    if counts or backlog:
        st.caption("Events: " + ", ".join(f"{md(n)} {md(k)}" for k, n in sorted(counts.items()))
                   + (f"; {md(backlog)} deliveries waiting in the spool" if backlog else ""))
    b1, b2, b3 = st.columns([1, 1, 1])
    if b1.button("Process received events now", icon=":material/play_arrow:"):
        res = engine.drain_webhooks(s)
        st.session_state["_flash"] = "Processed: " + ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in widgets.as_dict(res).items()
            if isinstance(v, int) and not isinstance(v, bool) and v)
        st.rerun()
    if s.mock_mode and b3.button("Send a test event", icon=":material/send:",
                                 help="The fake Xero signs a delivery and posts it to this app's webhook URL, "
                                      "as Xero does when a contact or invoice changes."):
        from app_support.demo_events import send_test_event

        with shown_errors():
            st.session_state["_flash"] = send_test_event(s)
            st.rerun()
    if counts.get("failed") and b2.button(f"Retry {md(counts['failed'])} failed event(s)", icon=":material/replay:"):
        n = engine.retry_failed_webhooks(s)
        st.session_state["_flash"] = f"{n} failed event(s) will be retried at the next pass."
        st.rerun()

st.subheader("Recent events")
with shown_errors():
    events = widgets.as_rows(engine.recent_webhook_events(s))
    if events:
        st.dataframe(
            rows(widgets.local_times(events, ("received_at", "processed_at", "event_date_utc"))), hide_index=True,
            width="stretch",
            column_order=("received_at", "event_category", "event_type", "resource_id", "status", "error",
                          "attempts", "processed_at", "event_date_utc", "tenant_id"),
            column_config={"received_at": "Received", "event_category": "Category", "event_type": "Type",
                           "resource_id": "Resource id", "status": "Status", "error": "Error",
                           "attempts": "Attempts", "processed_at": "Processed", "event_date_utc": "Event time",
                           "tenant_id": "Tenant id"}, placeholder="",
        )
    else:
        st.caption("No event received yet.")
