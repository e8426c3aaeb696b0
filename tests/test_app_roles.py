"""Roles in the admin app (issue 25 §1): with two organisations and Practice Manager the Connection page
says none is the practice ledger, sets the roles, suggests the client a client organisation belongs to
and links it once confirmed; the Clients page then shows that client's organisation's latest figures."""
from __future__ import annotations

import pytest

from app_testing import app_settings, button, connect, errors, open_page, texts  # noqa: F401 - fixtures


@pytest.fixture
def fake_xero():
    """Two trades companies (sharing a few customers) and Practice Manager, on loopback."""
    from xero_core.fake import FakeXero, serve

    fake = FakeXero(seed=11, tenants=2, practices=1, invoices=30)
    server = serve(fake, port=0)
    try:
        yield fake, server
    finally:
        server.close()


@pytest.mark.slow
def test_roles_are_set_and_a_client_organisation_linked_on_the_connection_page(app_settings, fake_xero):
    from xero_core.engine import Engine
    from xero_core.practice import clients as C
    from xero_core.practice.roles import roles

    fake, _ = fake_xero
    connect(app_settings, fake)
    a, b = (o.tenant_id for o in fake.orgs)
    at = open_page("connection")
    assert "none is the practice ledger" in texts(at)

    at.selectbox(key=f"role-{a}").set_value("practice-ledger").run()
    at.button(key=f"role-save-{a}").click().run()
    assert not errors(at), errors(at)
    assert f"{fake.org(a).name} is now the practice ledger." in texts(at)
    assert button(at, "Confirm role") is not None  # B is now taken as a client organisation: confirm it
    at.button(key=f"role-save-{b}").click().run()
    r = roles(app_settings)
    assert (r.ledger, r.confirmed, r.client_orgs, r.problem) == (a, True, [b], None)

    Engine(app_settings).sync(b, only="accounts,pnl", weeks=3)  # the client's books: its weekly figures
    owner = C.add_client(app_settings, fake.org(b).name)
    at = open_page("connection")
    assert f"Belongs to client? Suggested: {fake.org(b).name} (same name)" in texts(at)
    assert at.selectbox(key=f"owner-{b}").value == owner  # suggested, not linked until confirmed
    at.button(key=f"link-{b}").click().run()
    assert not errors(at), errors(at)
    assert f"{fake.org(b).name} belongs to client {fake.org(b).name}." in texts(at)

    at = open_page("clients")
    at.selectbox(key="overview_pick").set_value(owner).run()
    assert not errors(at), errors(at)
    page = texts(at)
    assert f"{fake.org(b).name}: week ending" in page and "Net profit" in page
