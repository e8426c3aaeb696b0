"""Issue 25 in a real browser (Playwright + Debian's chromium, the stack of test_browser.py): a practice
connects two organisations (two trades companies sharing some customers) and Practice Manager, sets the
roles on the Connection page, sees a client list made only of the practice ledger's customers and
Practice Manager's clients, and queues two documents for two clients, which land on the right contacts
in the practice ledger's Xero Files. Screenshots go to test-output/browser-clients/."""
from __future__ import annotations

import re
import shutil

import pytest

from test_browser import ROOT, Stack, expect, idle, nav, no_error  # noqa: F401 - skips without chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = ROOT / "test-output" / "browser-clients"


def shot(page, name: str) -> None:
    idle(page)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _rows(stack, sql, *params):
    from xero_core.db import connect

    with connect(stack.settings.db_path, read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


def _pick(page, label: str, option: str) -> None:
    """Choose in a long selectbox as a person does: type to filter, Enter (its list only renders what is in view)."""
    combo = page.get_by_role("combobox", name=label)
    combo.click()
    combo.fill(option)
    page.keyboard.press("Enter")
    idle(page)
    expect(combo).to_have_value(option)


def test_roles_client_list_and_two_documents_for_two_clients(tmp_path_factory):
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    stack = Stack(tmp_path_factory.mktemp("browser-clients"), tenants=2, invoices=30)
    try:
        _flow(stack, tmp_path_factory.mktemp("uploads"))
    finally:
        stack.close()


def _flow(stack, uploads):
    from xero_core import oauth
    from xero_core.engine import Engine

    s, fake = stack.settings, stack.fake
    oauth.complete_connect(s, fake.consent(oauth.begin_connect(s)))
    a, b = (o.tenant_id for o in fake.orgs)
    a_name, b_name = fake.org(a).name, fake.org(b).name
    engine = Engine(s)
    for org in (a, b):  # contacts stored; with two organisations and no role, none becomes a client
        result = engine.sync(org, only="contacts")
        assert next(st for st in result.steps if st.step == "clients").status == "skipped"
    assert _rows(stack, "SELECT count(*) FROM clients")[0][0] == 0

    page = stack.context.new_page()
    page.goto(stack.app_url + "/connection")
    idle(page)
    expect(page.get_by_text(re.compile("none is the practice ledger")).first).to_be_visible()
    shot(page, "01-connection-no-roles")
    for tid, label in ((a, "Practice ledger"), (b, "Client organisation")):
        box = page.locator(f".st-key-conn-{tid}")
        combo = box.get_by_role("combobox", name="Role")
        combo.click()
        combo.fill(label)
        page.keyboard.press("Enter")
        idle(page)
        box.get_by_role("button", name=re.compile("Save role|Confirm role")).click()
        idle(page)
        no_error(page)
    expect(page.get_by_text(f"{b_name} is now the client organisation.")).to_be_visible()
    assert {r[0]: r[1] for r in _rows(stack, "SELECT tenant_id, role FROM connections WHERE role IS NOT NULL")} == \
        {a: "practice-ledger", b: "client-organisation"}
    shot(page, "02-connection-roles")

    nav(page, "Clients & documents")
    page.get_by_role("button", name="Match clients now").click()
    idle(page)
    no_error(page)
    rows = _rows(stack, "SELECT client_id, name, tenant_id, xero_contact_id FROM clients ORDER BY lower(name)")
    assert rows and {r[2] for r in rows} <= {a, None}, "a client organisation's customer became a client"
    ledger_card = page.locator(f".st-key-recon-{a}")
    n_linked = sum(1 for r in rows if r[2] == a)
    expect(ledger_card.locator('[data-testid="stMetricValue"]').first).to_have_text(str(n_linked))
    shot(page, "03-clients-from-the-practice-ledger")

    # two documents for two different clients: the chosen client stays chosen after each
    first, second = [r for r in rows if r[3] and re.fullmatch(r"[A-Za-z ]+", r[1])][:2]
    for (cid, name, _, _), fname in ((first, "engagement.pdf"), (second, "tax-return.pdf")):
        _pick(page, "Client for the next document", name)
        path = uploads / fname
        path.write_bytes(f"%PDF-1.4 {fname} for {name}".encode())
        page.locator(".st-key-doc_file").locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(path))
        idle(page)
        page.get_by_role("button", name="Add to the push queue").click()
        idle(page)
        expect(page.get_by_text(f"Queued {fname} for {name}")).to_be_visible()
        # the bug: the selector jumped back to the first client, so the next file went to the wrong one
        expect(page.get_by_role("combobox", name="Client for the next document")).to_have_value(name)
        no_error(page)
    queued = {r[0]: r[1] for r in _rows(stack, "SELECT d.file_name, c.name FROM client_documents d "
                                               "JOIN clients c USING (client_id)")}
    assert queued == {"engagement.pdf": first[1], "tax-return.pdf": second[1]}
    shot(page, "04-two-documents-queued")

    page.get_by_role("button", name="Push 2 waiting document(s) to Xero Files").click()
    idle(page)
    no_error(page)
    for fname, name in (("engagement.pdf", first[1]), ("tax-return.pdf", second[1])):
        expect(page.get_by_text(re.compile(re.escape(f"{fname} pushed to Ledgerlink Uploads in {a_name}'s Xero "
                                                     f"Files and attached to {name}'s contact there")))).to_be_visible()
    shot(page, "05-pushed")
    store = fake.files[a]
    by_name = {f.name: f for f in store.files.values()}
    assert set(by_name) == {"engagement.pdf", "tax-return.pdf"} and not fake.files[b].files
    attached = {n: {x.object_id for x in store.associations if x.file_id == f.id} for n, f in by_name.items()}
    assert attached == {"engagement.pdf": {first[3]}, "tax-return.pdf": {second[3]}}
    page.close()
