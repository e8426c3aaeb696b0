"""Clients & documents: Xero matches, ambiguous matches, edits, documents and the push queue."""
import json

import streamlit as st

from app_support import engine, widgets
from app_support.guard import shown_errors
from app_support.shell import ensure_frame

ensure_frame()  # before anything renders: sign-in and the banner come from app.py

s = widgets.settings()
st.title("Clients & documents")


def _edited(c: dict) -> dict:
    raw = c.get("edited_fields")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = {}
    return raw or {}


def _done(msg: str) -> None:
    st.cache_data.clear()
    st.session_state["_flash"] = msg
    st.rerun()


def _pushed(summary) -> None:
    r = widgets.as_dict(summary)
    msg = f"Pushed {r.get('pushed', 0)}, failed {r.get('failed', 0)}, waiting {r.get('skipped', 0)}."
    if r.get("gave_up"):
        msg += f" Gave up on {r['gave_up']} after repeated failures: retry by hand once the cause is fixed."
    if r.get("messages"):
        msg += " " + " ".join(r["messages"][:5])
    _done(msg)


SKIP_WORDS = {
    "supplier_only": "suppliers only", "government": "government bodies", "placeholder": "placeholders (Cash Sales ...)",
    "not_customer": "not customers", "archived": "archived in Xero", "merged": "merged into another contact",
    "no_name": "without a name",
}

# -- Reconciliation: Xero contacts -> clients -------------------------------------------------
st.subheader("Matching Xero contacts to clients")
st.caption("Every sync matches the organisation's contacts to your clients: customers become clients, existing "
           "clients are matched (Xero id, then email, then name) and never duplicated, ambiguous ones wait below, "
           "suppliers, government bodies and placeholders such as Cash Sales are left out unless you add them.")
with shown_errors():
    reports = widgets.as_rows(engine.last_reconciliations(s))
    if not reports:
        st.info("No reconciliation yet: sync an organisation, or press Match clients now.")
    for rec in reports:
        rep = rec.get("report") or {}
        with st.container(border=True, key=f"recon-{rec['tenant_id']}"):
            st.markdown(f"**{rec.get('tenant_name') or rec['tenant_id']}**: last reconciliation "
                        f"{widgets.when(rec.get('finished_at'))} ({rec.get('trigger') or 'sync'})")
            if rec.get("status") == "failed":
                st.error(f"It failed: {rec.get('error')}", icon=":material/error:")
                continue
            m = st.columns(5)
            m[0].metric("Imported", rep.get("imported", 0))
            m[1].metric("Matched", rep.get("matched", 0))
            m[2].metric("Already linked", rep.get("already_linked", 0))
            m[3].metric("Ambiguous", rep.get("ambiguous", 0))
            m[4].metric("Skipped", rep.get("skipped", 0))
            why = rep.get("skipped_by_reason") or {}
            examples = rep.get("skipped_examples") or {}
            lines = [f"- {n} {SKIP_WORDS.get(k, k)}" + (f": {', '.join(examples.get(k) or [])}" if examples.get(k) else "")
                     for k, n in sorted(why.items(), key=lambda kv: -kv[1])]
            if lines:
                st.markdown("Skipped, and why:\n" + "\n".join(lines))
            if rep.get("waiting"):
                st.caption(f"{rep['waiting']} client(s) wait for your choice under Ambiguous matches.")
            if rep.get("removed"):
                st.caption(f"Removed {rep['removed']} client(s) that an earlier version imported from non-customers.")
    if st.button("Match clients now", icon=":material/sync:", help="Match the contacts already synced, without calling Xero"):
        done = engine.match_clients_now(s, trigger="app")
        parts = [f"{r.get('tenant_name')}: {r.get('summary')}" for r in widgets.as_rows(done)]
        _done("Matched. " + (" ".join(parts) if parts else "No connected organisation."))

with shown_errors():
    skipped = [c for c in widgets.as_rows(engine.skipped_contacts(s)) if c.get("reason")]
    if skipped:
        with st.expander(f"Xero contacts that are not clients ({len(skipped)}): add one by hand"):
            by_key = {f"{c['tenant_id']}|{c['contact_id']}": c for c in skipped}
            pick = st.selectbox("Contact", list(by_key), key="skipped_pick",
                                format_func=lambda k: f"{by_key[k]['name']} ({by_key[k]['why']})")
            if st.button("Add this contact as a client", key="skipped_add"):
                c = by_key[pick]
                engine.add_client_from_contact(s, c["tenant_id"], c["contact_id"])
                _done(f"Added {c['name']} as a client, linked to its Xero contact.")

clients = []
with shown_errors():
    clients = widgets.as_rows(engine.list_clients(s))

# -- Clients and their Xero match -------------------------------------------------------------
st.subheader("Clients")
if clients:
    table = [
        {
            "name": c["name"], "email": c.get("email"), "phone": c.get("phone"),
            "match": c.get("match_status"), "matched by": c.get("match_method"),
            "Xero contact": c.get("xero_contact_id"), "XPM client": c.get("xpm_client_id"),
            "edited by hand": ", ".join(sorted(_edited(c))) or None,
            "archived": bool(c.get("archived")),
        }
        for c in clients
    ]
    st.dataframe(table, hide_index=True, width="stretch", placeholder="")
else:
    st.caption("No clients yet: add one or import a CSV below.")

with st.expander("Add a client or import a CSV"):
    with st.form("add_client", clear_on_submit=True):
        a1, a2, a3 = st.columns(3)
        name = a1.text_input("Name")
        email = a2.text_input("Email")
        phone = a3.text_input("Phone")
        if st.form_submit_button("Add client"):
            with shown_errors():
                engine.add_client(s, name, email or None, phone or None)
                _done(f"Added {name}; it is matched to Xero contacts already synced.")
    csv_file = st.file_uploader("Clients CSV (header row: name, email, phone)", type=["csv"], key="clients_csv")
    if csv_file is not None and st.button("Import clients"):
        with shown_errors():
            res = engine.import_clients_csv(s, csv_file.getvalue())
            res = res.as_dict() if hasattr(res, "as_dict") else widgets.as_dict(res)
            msg = f"Imported {len(res['created'])} clients ({res['linked']} matched to Xero, {res['ambiguous']} ambiguous)."
            if res["skipped"]:
                msg += " Skipped: " + "; ".join(res["skipped"][:10])
            _done(msg)

# -- Ambiguous matches ------------------------------------------------------------------------
with shown_errors():
    cands = widgets.as_rows(engine.match_candidates(s))
    if cands:
        st.subheader("Ambiguous matches to resolve")
        st.caption("Several Xero contacts fit these clients equally well: choose the right one.")
        by_client: dict[str, list[dict]] = {}
        for c in cands:
            by_client.setdefault(c["client_id"], []).append(c)
        for cid, options in by_client.items():
            first = options[0]
            with st.container(border=True, key=f"amb-{cid}"):
                st.markdown(f"**{first.get('client_name')}** {first.get('client_email') or ''}")
                pick = st.radio(
                    "Xero contact", range(len(options)), key=f"amb-pick-{cid}",
                    format_func=lambda i, o=options: f"{o[i].get('contact_name') or o[i]['contact_id']}"
                    f" {o[i].get('contact_email') or ''} — {o[i].get('reason') or ''}",
                )
                if st.button("Link this contact", key=f"amb-link-{cid}"):
                    o = options[pick]
                    engine.resolve_match(s, cid, o["tenant_id"], o["contact_id"])
                    _done(f"Linked {first.get('client_name')} to {o.get('contact_name') or o['contact_id']}.")

# -- Edit a client ----------------------------------------------------------------------------
if clients:
    st.subheader("Edit a client")
    by_id = {c["client_id"]: c for c in clients}
    cid = st.selectbox("Client", list(by_id), format_func=lambda k: by_id[k]["name"], key="edit_pick")
    c = by_id[cid]
    edited = _edited(c)
    if edited:
        st.caption("Edited by hand (a sync never overwrites these): "
                   + ", ".join(f"{f} ({widgets.when(t)})" for f, t in sorted(edited.items())))
    with st.form(f"edit-{cid}"):
        e1, e2, e3 = st.columns(3)
        new = {
            "name": e1.text_input("Name", c["name"] or ""),
            "email": e2.text_input("Email", c.get("email") or ""),
            "phone": e3.text_input("Phone", c.get("phone") or ""),
        }
        new["archived"] = st.checkbox("Archived", bool(c.get("archived")))
        if st.form_submit_button("Save changes"):
            changes = {k: v for k, v in new.items()
                       if (bool(c.get(k)) if k == "archived" else (c.get(k) or "")) != v}
            if not changes:
                st.info("Nothing changed.")
            else:
                with shown_errors():
                    engine.edit_client(s, cid, **changes)
                    _done(f"Saved {', '.join(sorted(changes))} for {new['name']} (marked as edited by hand).")

# -- Documents --------------------------------------------------------------------------------
st.subheader("Documents for Xero Files")
with shown_errors():
    if clients:
        by_id = {c["client_id"]: c for c in clients}
        with st.form("add_doc", clear_on_submit=True):
            dcid = st.selectbox("Client", list(by_id), format_func=lambda k: by_id[k]["name"], key="doc_client")
            upload = st.file_uploader("Document", key="doc_file")
            if st.form_submit_button("Add to the push queue"):
                if upload is None:
                    st.warning("Choose a file first.")
                else:
                    doc = engine.add_document(s, dcid, upload.getvalue(), file_name=upload.name)
                    if doc.get("status") == "skipped":
                        _done(f"Kept {doc['file_name']}, but Xero Files will not take it: {doc.get('error')}")
                    _done(f"Queued {doc['file_name']} for {by_id[dcid]['name']}; push it below.")
    docs = widgets.as_rows(engine.list_documents(s))
    if docs:
        st.dataframe(
            [{"file": d.get("file_name"), "client": d.get("client_name") or d.get("client_id"),
              "status": d.get("status"), "attempts": d.get("attempts"), "error": d.get("error"),
              "pushed": widgets.when(d.get("pushed_at")) if d.get("pushed_at") else None,
              "size (bytes)": d.get("size_bytes")} for d in docs],
            hide_index=True, width="stretch", placeholder="",
        )
        queue = widgets.as_rows(engine.push_queue(s))
        st.markdown("**Push queue**")
        if queue:
            st.caption("Every sync pushes what is ready and retries failures with growing waits (5 min, 10 min, "
                       "... up to a day); after many failures it gives up and waits for you.")
            st.dataframe(
                [{"file": q.get("file_name"), "client": q.get("client_name") or q.get("client_id"),
                  "status": q.get("status"), "why it waits": q.get("why"), "attempts": q.get("attempts"),
                  "next attempt": widgets.when(q.get("next_attempt_at")) if q.get("next_attempt_at") else None}
                 for q in queue],
                hide_index=True, width="stretch", key="push_queue", placeholder="",
            )
        else:
            st.caption("Nothing waiting: every document is in Xero.")
        waiting = [d for d in docs if d.get("status") in ("pending", "skipped")]
        failed = [d for d in docs if d.get("status") in ("failed", "gave_up")]
        if waiting and st.button(f"Push {len(waiting)} waiting document(s) to Xero Files", type="primary"):
            _pushed(engine.push_documents(s))
        for d in failed:
            if st.button(f"Retry {d.get('file_name')}", key=f"retry-{d['document_id']}", icon=":material/replay:"):
                _pushed(engine.push_documents(s, document_id=d["document_id"]))
        st.caption("A document goes to its client's matched Xero contact; clients without a match wait here.")
    else:
        st.caption("The push queue is empty.")
