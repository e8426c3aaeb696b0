"""The Clients page: the last reconciliation's report (imported, matched, ambiguous, skipped and why),
"Match clients now", adding a skipped contact by hand, and the push queue (what waits, why, when)."""
from __future__ import annotations

import pytest

from app_testing import (  # noqa: F401 - fixtures
    app_settings, button, connect, errors, fake_xero, open_page, tenant_of, texts,
)


def _queue(at):
    return next(df.value for df in at.dataframe if "why it waits" in df.value.columns)


@pytest.mark.slow
def test_clients_page_shows_the_reconciliation_and_the_push_queue(app_settings, fake_xero):
    from xero_core.engine import Engine
    from xero_core.practice import clients as C
    from xero_core.practice import documents as D

    fake, _ = fake_xero
    connect(app_settings, fake)
    org = tenant_of(app_settings, "ORGANISATION")
    at = open_page("clients")
    assert "No pass yet" in texts(at)

    result = Engine(app_settings).sync(org, only="contacts")  # contacts, then the clients step
    report = next(s.detail for s in result.steps if s.step == "clients")
    assert report["imported"] > 0 and report["skipped_by_reason"]["supplier_only"] > 0
    loose = C.add_client(app_settings, "Nobody In Xero Pty Ltd")
    D.add_document(app_settings, loose, b"%PDF-1.4 letter", file_name="letter.pdf")

    at = open_page("clients")
    assert not errors(at), errors(at)
    page = texts(at)
    metrics = {m.label: m.value for m in at.metric[:5]}  # the practice ledger's card
    assert metrics["Imported"] == str(report["imported"]) and metrics["Matched"] == str(report["matched"])
    assert metrics["Clients"] == str(report["imported"] + report["matched"])
    assert "suppliers only" in page and "Australian Taxation Office" in page and "Cash Sales" in page
    queue = _queue(at)
    assert list(queue["file"]) == ["letter.pdf"]
    assert "not matched to a Xero contact yet" in queue["why it waits"][0]

    button(at, "Match clients now").click().run()
    assert not errors(at), errors(at)
    assert "Matched." in texts(at) and "imported 0" in texts(at)
    # the cards show the clients there are, not what the last pass changed (it imported nothing new)
    metrics = {m.label: m.value for m in at.metric[:5]}
    assert metrics["Clients"] == str(report["imported"] + report["matched"])
    assert metrics["Imported"] == str(report["imported"]) and metrics["Imported"] != "0"

    # a person links the loose client to a supplier contact by hand: its document is ready to go
    supplier = next(c for c in C.skipped_contacts(app_settings, org) if c["reason"] == "supplier_only")
    at.selectbox(key="skipped_pick").set_value(f"{org}|{supplier['contact_id']}").run()
    button(at, "Add this contact as a client").click().run()
    assert not errors(at), errors(at)
    assert f"Added {supplier['name']} as a client" in texts(at)
    assert any(c["xero_contact_id"] == supplier["contact_id"] for c in C.list_clients(app_settings))
