"""Clients & documents: Xero matches, ambiguous matches, edits, documents and the push queue."""
import json

import streamlit as st

from app_support import engine, widgets
from app_support.guard import shown_errors
from app_support.shell import ensure_frame
from app_support.text import md, plain, rows
from xero_core.clock import SYSTEM_CLOCK

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
    """Plain words (names and all): widgets.flash shows them escaped, as text."""
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


def _section(title: str, table: list[dict], empty: str, key: str) -> None:
    """One part of a client's overview: a heading of ours, then its rows as text cells, or `empty`."""
    st.markdown(f"**{md(title)}**")
    if table:
        st.dataframe(rows(table), hide_index=True, width="stretch", placeholder="", key=key)
    else:
        st.caption(md(empty))


def orgs_name(doc: dict, tenant_id: str | None) -> str:
    return next((o["tenant_name"] for o in doc.get("organisations") or [] if o["tenant_id"] == tenant_id), tenant_id or "")


SKIP_WORDS = {
    "supplier_only": "suppliers only", "government": "government bodies", "placeholder": "placeholders (Cash Sales ...)",
    "not_customer": "not customers", "archived": "archived in Xero", "merged": "merged into another contact",
    "no_name": "without a name",
}

# -- Where clients come from: the practice ledger and Practice Manager -----------------------------
st.subheader("Where your clients come from")
st.caption("Clients are the practice ledger's customers and Practice Manager's clients, matched to each other (Xero "
           "id, then email, then name) so one client is one row. A client organisation's customers are never your "
           "clients. Suppliers, government bodies and placeholders such as Cash Sales are left out unless you add them.")
with shown_errors():
    orgs = widgets.as_dict(engine.organisations(s))
    if orgs.get("problem"):
        st.warning(md(orgs["problem"], 1000), icon=":material/domain:")
    elif orgs.get("suggested"):
        st.info(f"{md(orgs_name(orgs, orgs['suggested']))} is used as the practice ledger because it is the only "
                "organisation connected: confirm it (or make it a client organisation) on the Connection page.",
                icon=":material/domain:")
    removed = widgets.as_rows(engine.removal_report(s))
    if removed:
        with st.container(border=True, key="removals"):
            st.warning(f"Removed {len(removed)} client(s) that an earlier version imported from client organisations' "
                       "customers (nothing of yours hung on them):", icon=":material/person_remove:")
            st.dataframe(rows([{"name": r.get("name"), "email": r.get("email"), "imported from": r.get("tenant_name"),
                                "removed": widgets.when(r.get("removed_at"))} for r in removed]),
                         hide_index=True, width="stretch", placeholder="", key="removals_table")
            if st.button("Dismiss this report", key="removals_ok"):
                engine.acknowledge_removals(s)
                _done("Dismissed the report of removed clients.")
    state = widgets.as_rows(engine.reconciliation_state(s))
    for rec in state:
        pm = rec.get("tenant_type") == "PRACTICEMANAGER"
        with st.container(border=True, key=f"recon-{rec['tenant_id']}"):
            st.text(plain(f"{rec.get('tenant_name') or rec['tenant_id']}: "
                          + ("Practice Manager's clients" if pm else "the practice ledger's customers")))
            m = st.columns(5)
            m[0].metric("Clients", md(rec.get("clients", 0)), help="clients linked to it now")
            m[1].metric("Imported", md(rec.get("imported", 0)),
                        help="clients it created (the rest were matched to clients you already had)")
            m[2].metric("Matched", md(rec.get("matched", 0)), help="clients you already had, matched to it")
            m[3].metric("Waiting for you", md(rec.get("waiting", 0)), help="clients under Ambiguous matches below")
            if not pm:
                m[4].metric("Contacts not clients", md(rec.get("not_clients", 0)),
                            help="its active contacts that are no client (suppliers, government ...)")
            last = rec.get("last") or {}
            rep = last.get("report") or {}
            if last.get("status") == "failed":
                st.error(f"The last pass failed: {md(last.get('error'), 1000)}", icon=":material/error:")
            elif last:
                st.caption(f"Last pass {widgets.when(last.get('finished_at'))} ({md(last.get('trigger') or 'sync')}): "
                           f"imported {md(rep.get('imported', 0))}, matched {md(rep.get('matched', 0))}, "
                           f"{md(rep.get('ambiguous', 0))} ambiguous, skipped {md(rep.get('skipped', 0))}.")
                why = rep.get("skipped_by_reason") or {}
                examples = rep.get("skipped_examples") or {}
                for k, n in sorted(why.items(), key=lambda kv: -kv[1]):
                    # contact names as Xero has them: text, each one's controls made visible
                    st.text(f"  skipped {n} {SKIP_WORDS.get(k, k)}"
                            + (f": {', '.join(plain(e) for e in examples.get(k) or [])}" if examples.get(k) else ""))
            else:
                st.caption("No pass yet: sync it, or press Match clients now.")
    if not state and not orgs.get("problem"):
        st.info("No reconciliation yet: connect the practice's own Xero (and Practice Manager) and sync.")
    if st.button("Match clients now", icon=":material/sync:", help="Match the contacts already synced, without calling Xero"):
        done = engine.match_clients_now(s, trigger="app")
        parts = [f"{r.get('tenant_name')}: {r.get('summary')}." for r in widgets.as_rows(done)]
        _done("Matched. " + (" ".join(parts) if parts else "No connected organisation."))

with shown_errors():
    skipped = [c for c in widgets.as_rows(engine.skipped_contacts(s)) if c.get("reason")]
    if skipped:
        with st.expander(f"Xero contacts that are not clients ({len(skipped)}): add one by hand"):
            by_key = {f"{c['tenant_id']}|{c['contact_id']}": c for c in skipped}
            pick = st.selectbox("Contact", list(by_key), key="skipped_pick",
                                format_func=lambda k: plain(f"{by_key[k]['name']} ({by_key[k]['why']})"))
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
    extra = {}
    with shown_errors():
        extra = {r["client_id"]: r for r in widgets.as_rows(engine.clients_summary(s))}
    table = [
        {
            "name": c["name"], "email": c.get("email"), "phone": c.get("phone"),
            "jobs": extra.get(c["client_id"], {}).get("jobs"),
            "documents": extra.get(c["client_id"], {}).get("documents"),
            "open campaigns": extra.get(c["client_id"], {}).get("open_campaigns"),
            "organisation": extra.get(c["client_id"], {}).get("organisations"),
            "match": c.get("match_status"), "matched by": c.get("match_method"),
            "Xero contact": c.get("xero_contact_id"), "XPM client": c.get("xpm_client_id"),
            "edited by hand": ", ".join(sorted(_edited(c))) or None,
            "archived": bool(c.get("archived")),
        }
        for c in clients
    ]
    st.dataframe(rows(table), hide_index=True, width="stretch", placeholder="", key="clients_table")
    names = {c["client_id"]: c for c in clients}
    with st.expander("A client's jobs, documents, campaigns and figures"):
        pick = st.selectbox("Client", list(names), format_func=lambda k: plain(names[k]["name"]), key="overview_pick")
        with shown_errors():
            view = widgets.as_dict(engine.client_overview(s, pick))
            _section("Jobs", [{"job": j.get("job_id"), "name": j.get("name"), "state": j.get("state"),
                               "due": widgets.day(j.get("due_date")), "current": bool(j.get("is_current"))}
                              for j in view.get("jobs") or []], "No Practice Manager job.", "ov_jobs")
            _section("Documents", [{"file": d.get("file_name"), "status": d.get("status"), "error": d.get("error"),
                                    "pushed": widgets.when(d.get("pushed_at")) if d.get("pushed_at") else None}
                                   for d in view.get("documents") or []], "No document.", "ov_docs")
            _section("Campaigns", [{"job": m.get("job_id"), "state": m.get("job_state"), "status": m.get("status"),
                                    "opened": widgets.when(m.get("opened_at")),
                                    "closed": widgets.when(m.get("completed_at")) if m.get("completed_at") else None}
                                   for m in view.get("campaigns") or []], "No chase campaign.", "ov_camps")
            st.markdown("**Latest weekly figures**")
            if not view.get("organisations"):
                st.caption("No client organisation of theirs is connected (or linked to them on the Connection page).")
            for o in view.get("organisations") or []:
                f = o.get("figures") or {}
                if f.get("error"):
                    st.text(plain(f"{o['tenant_name']}: {f['error']}", 1000))
                    continue
                st.text(plain(f"{o['tenant_name']}: week ending {widgets.day(f.get('week_ending'))}"))
                fm = st.columns(3)
                fm[0].metric("Income", md(f.get("income")))
                fm[1].metric("Gross profit", md(f.get("gross_profit")))
                delta = None
                if f.get("net_profit") is not None and f.get("net_profit_previous") is not None:
                    delta = f"{md(f['net_profit'] - f['net_profit_previous'])} on the week before"
                fm[2].metric("Net profit", md(f.get("net_profit")), delta=delta)
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
            msg = f"Imported {len(res.created)} clients ({res.linked} matched to Xero, {res.ambiguous} ambiguous)."
            if res.skipped:
                msg += " Skipped: " + "; ".join(res.skipped[:10])
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
                st.markdown(f"**{md(first.get('client_name'))}** {md(first.get('client_email') or '')}")
                labels = [f"{o.get('contact_name') or o['contact_id']} {o.get('contact_email') or ''}"
                          f" — {o.get('reason') or ''}" for o in options]
                picked = st.radio("Xero contact", list(range(len(options))), key=f"amb-pick-{cid}",
                                  format_func=lambda i: md(labels[i]))  # radio options parse markdown
                if st.button("Link this contact", key=f"amb-link-{cid}"):
                    o = options[picked]
                    engine.resolve_match(s, cid, o["tenant_id"], o["contact_id"])
                    _done(f"Linked {first.get('client_name')} to {o.get('contact_name') or o['contact_id']}.")

# -- Edit a client ----------------------------------------------------------------------------
if clients:
    st.subheader("Edit a client")
    by_id = {c["client_id"]: c for c in clients}
    cid = st.selectbox("Client", list(by_id), format_func=lambda k: plain(by_id[k]["name"]), key="edit_pick")
    c = by_id[cid]
    edited = _edited(c)
    if edited:
        st.caption("Edited by hand (a sync never overwrites these): "
                   + ", ".join(f"{md(f)} ({widgets.when(t)})" for f, t in sorted(edited.items())))
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
                    # the clock by name: **changes could otherwise fill the keyword `clock` (mypy)
                    engine.edit_client(s, cid, clock=SYSTEM_CLOCK, **changes)
                    _done(f"Saved {', '.join(sorted(changes))} for {new['name']} (marked as edited by hand).")

# -- Documents --------------------------------------------------------------------------------
st.subheader("Documents for Xero Files")
with shown_errors():
    if clients:
        by_id = {c["client_id"]: c for c in clients}
        # Outside the form: a form cleared on submit would reset it to the first client, and the next file
        # would silently go to the wrong client. The choice stays until the admin changes it.
        if st.session_state.get("doc_client") not in by_id:
            st.session_state.pop("doc_client", None)
        dcid = st.selectbox("Client for the next document", list(by_id), format_func=lambda k: plain(by_id[k]["name"]),
                            key="doc_client")
        with st.form("add_doc", clear_on_submit=True):
            st.text(plain(f"For {by_id[dcid]['name']}"))
            upload = st.file_uploader("Document", key="doc_file")
            if st.form_submit_button("Add to the push queue"):
                if upload is None:
                    st.warning("Choose a file first.")
                else:
                    doc = engine.add_document(s, dcid, upload.getvalue(), file_name=upload.name)
                    if doc.get("status") == "skipped":
                        _done(f"Kept {doc['file_name']} for {by_id[dcid]['name']}, but Xero Files will not take it: "
                              f"{doc.get('error')}")
                    _done(f"Queued {doc['file_name']} for {by_id[dcid]['name']}; push it below.")
    docs = widgets.as_rows(engine.list_documents(s))
    if docs:
        st.dataframe(
            rows([{"client": d.get("client_name") or d.get("client_id"), "file": d.get("file_name"),
              "status": d.get("status"), "attempts": d.get("attempts"), "error": d.get("error"),
              "pushed": widgets.when(d.get("pushed_at")) if d.get("pushed_at") else None,
              "size (bytes)": d.get("size_bytes")} for d in docs]),
            hide_index=True, width="stretch", placeholder="",
        )
        queue = widgets.as_rows(engine.push_queue(s))
        st.markdown("**Push queue**")
        if queue:
            st.caption("Every sync pushes what is ready and retries failures with growing waits (5 min, 10 min, "
                       "... up to a day); after many failures it gives up and waits for you.")
            st.dataframe(
                rows([{"client": q.get("client_name") or q.get("client_id"), "file": q.get("file_name"),
                  "status": q.get("status"), "why it waits": q.get("why"), "attempts": q.get("attempts"),
                  "next attempt": widgets.when(q.get("next_attempt_at")) if q.get("next_attempt_at") else None}
                 for q in queue]),
                hide_index=True, width="stretch", key="push_queue", placeholder="",
            )
        else:
            st.caption("Nothing waiting: every document is in Xero.")
        waiting = [d for d in docs if d.get("status") in ("pending", "skipped")]
        failed = [d for d in docs if d.get("status") in ("failed", "gave_up")]
        if waiting and st.button(f"Push {len(waiting)} waiting document(s) to Xero Files", type="primary"):
            _pushed(engine.push_documents(s))
        for d in failed:
            if st.button(f"Retry {md(d.get('file_name'))}", key=f"retry-{d['document_id']}", icon=":material/replay:"):
                _pushed(engine.push_documents(s, document_id=d["document_id"]))
        st.caption("A document goes to the practice ledger's Xero Files, attached to its client's contact there; "
                   "clients without a contact in the practice ledger wait here.")
    else:
        st.caption("The push queue is empty.")
