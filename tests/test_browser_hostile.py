"""Hostile names in a real browser (issue 21 item 1): anyone who can edit a contact, a job or an
organisation's name in a connected Xero can write markdown and HTML into it. Every page of the
admin app must show such text as text: no link, image or element that the app did not put there,
no request to the address they name, and the words themselves visible.

The fake Xero's organisation, practice, contacts, XPM clients and jobs get hostile names before a
real sync; documents, error details and notes get them through the product's own functions or the
columns a failed step writes. Then chromium walks every page.
"""
from __future__ import annotations

import re

import pytest

from test_browser import SHOTS, Stack, idle, nav  # noqa: E402 - the same stack the workshop test drives

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EVIL = "127.0.0.1:9199"  # nothing listens here; a request to it means an injected image or link was followed
ORG_NAME = f"Org <b id=pwn-org>bold</b> [Reconnect](http://{EVIL}/org) www.evil9199.example"
CONTACT = f"Australian Taxation Office [Reconnect](http://{EVIL}/ato) ![p](http://{EVIL}/ato.png)"
SUPPLIER = f"Supplier [click](javascript:alert(1)) **loud** <img src=http://{EVIL}/s.png> http://{EVIL}/bare"
PRACTICE = f"Practice \u202egnp.exe [p](http://{EVIL}/practice) :red[alarm] $x^2$"
XPM_CLIENT = f"XPM client ![i](http://{EVIL}/xc.png) <marquee id=pwn-xc>m</marquee>"
JOB = f"Job <marquee id=pwn-job>x</marquee> [j](http://{EVIL}/job) ops@evil9199.example"
CUSTOMER = f"Acme [Pay here](http://{EVIL}/pay) ![t](http://{EVIL}/t.png) _under_ `tick`"
LONG = "W" * 4000 + f"[x](http://{EVIL}/long)"
ERROR = f"Xero said: [Reconnect now](http://{EVIL}/err) <img src=http://{EVIL}/err.png> <script>alert(1)</script>"
NOTE = f"Tier note [upgrade](javascript:alert(2)) <iframe src=http://{EVIL}/f></iframe> " + "N" * 3000
DOC = "Invoice [x](javascript:alert(3)) _z_ ~y~.pdf"  # stored as Xero Files takes it: ':' becomes '_'
DOC_STORED = "Invoice [x](javascript_alert(3)) _z_ ~y~.pdf"

# Elements hostile text would create if it were parsed.
INJECTED = ("#pwn-org, #pwn-job, #pwn-xc, marquee, iframe, script, img[src*='9199'], a[href*='9199']:not([href^='#']), "
            "a[href^='javascript:' i], a[href*='alert'], a[href^='mailto:' i], [onerror]")


def _seed_fake(fake) -> None:
    org = fake.org()
    org.name = org.legal_name = ORG_NAME
    billed = {id(i.contact) for i in org.invoices if i.type == "ACCREC"}
    customers = [c for c in org.contacts if c.kind != "supplier" and id(c) in billed]
    suppliers = [c for c in org.contacts if c.kind == "supplier"]
    # the example: a government body's name, so it is skipped and named in "Skipped, and why"
    customers[0].name, customers[1].name, customers[2].name = CONTACT, LONG, CUSTOMER
    suppliers[0].name = SUPPLIER
    p = fake.practice()
    p.name = PRACTICE
    client = next(iter(p.clients.values()))
    client.name = XPM_CLIENT
    for j in p.jobs.values():
        j.name = JOB


def _seed_product(stack) -> dict:
    """Connect, sync (the hostile names reach DuckDB as Xero sent them), then hostile documents,
    error details and notes through the product's own functions or the columns a failure writes."""
    from xero_core import db, oauth
    from xero_core.engine import Engine
    from xero_core.practice import documents, xpm

    s = stack.settings
    sync_tenant = Engine(s).sync
    oauth.complete_connect(s, stack.fake.consent(oauth.begin_connect(s)))
    org_tid, practice_tid = stack.fake.org().tenant_id, stack.fake.practice().tenant_id
    res = sync_tenant(org_tid, weeks=2, trigger="manual")
    assert not res.busy
    xpm.set_xpm_enabled(s, practice_tid, True)
    sync_tenant(practice_tid, trigger="manual")
    jobs = xpm.list_jobs(s, practice_tid)
    assert jobs and all(j["name"] == JOB for j in jobs), jobs[:2]
    xpm.set_mapping(s, practice_tid, {jobs[0]["state"]})
    sync_tenant(practice_tid, only="xpm", trigger="manual")
    with db.connect(s.db_path) as con:
        client_id = con.execute("SELECT client_id FROM clients WHERE name = ?", [CUSTOMER]).fetchone()[0]
    documents.add_document(s, client_id, b"%PDF-1.4 hostile\n", file_name=DOC)
    documents.add_document(s, client_id, b"MZ hostile\n", file_name="tool \u202efdp.exe")
    stack.fake.faults.add("500", path="files.xro", count=None)
    documents.push_documents(s)
    stack.fake.faults.clear()
    with db.connect(s.db_path) as con:
        con.execute("UPDATE connections SET tier_note = ?", [NOTE])
        con.execute("UPDATE client_documents SET error = ? WHERE status = 'failed'", [ERROR])
        con.execute("UPDATE sync_log SET error = ?, status = 'failed' WHERE sync_id = (SELECT sync_id FROM sync_log "
                    "WHERE sync_type = 'clients' AND tenant_id = ? ORDER BY finished_at DESC LIMIT 1)", [ERROR, practice_tid])
    return {"org": org_tid, "practice": practice_tid}


def _visible(page) -> str:
    return page.inner_text("body").replace("\u2060", "")


def _injected(page) -> list[str]:
    # inside the app's own root: Streamlit's index.html has a script of its own outside it
    return page.eval_on_selector('[data-testid="stApp"]', f"""root => Array.from(root.querySelectorAll(
        {INJECTED!r})).map(e => e.outerHTML.slice(0, 200))""")


def test_hostile_names_are_text_on_every_page(tmp_path_factory):
    SHOTS.mkdir(parents=True, exist_ok=True)
    stack = Stack(tmp_path_factory.mktemp("hostile"), before_serving=_seed_fake)
    try:
        _walk(stack)
    finally:
        stack.close()


def _walk(stack) -> None:
    _seed_product(stack)
    followed: list[str] = []
    stack.context.route(re.compile(r"https?://127\.0\.0\.1:9199/.*|https?://[^/]*evil9199[^/]*/.*"),
                        lambda route: (followed.append(route.request.url), route.abort()))
    page = stack.context.new_page()
    seen: dict[str, str] = {}

    def check(where: str, *must_show: str) -> None:
        idle(page)
        bad = _injected(page)
        assert not bad, f"{where}: elements the app did not make: {bad}"
        text = _visible(page)
        (SHOTS / f"hostile-{re.sub(r'[^a-z]+', '-', where)}.txt").write_text(text)
        for s in must_show:
            assert s in text, f"{where}: {s!r} is not shown as text"
        assert not followed, f"{where}: the browser fetched {followed}"
        # no page grows sideways however long a name is
        wide = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert wide <= 0, f"{where}: the page is {wide}px wider than the window"
        seen[where] = text

    page.goto(stack.app_url + "/connection")
    check("connection", ORG_NAME, "[U+202E]gnp.exe [p](http://", ":red[alarm] $x^2$", "[upgrade](javascript:alert(2))",
          "NNN… (2,")  # 3,000 characters without a space: cut, and the page does not grow sideways
    page.get_by_role("combobox", name="Organisation").click()
    page.get_by_role("option").filter(has_text="Org <b id=pwn-org>").first.click()
    idle(page)
    check("connection, organisation chosen", ORG_NAME)

    nav(page, "Sync")
    check("sync", ORG_NAME)
    nav(page, "Data")
    check("data", ORG_NAME)
    nav(page, "Clients & documents")
    check("clients", ERROR, CONTACT)
    page.screenshot(path=str(SHOTS / "hostile-clients.png"), full_page=True)
    # "Skipped, and why" names suppliers; the flash after Match clients now names the organisation
    page.get_by_role("button", name="Match clients now").click()
    check("clients, matched", "Matched. " + ORG_NAME)
    page.get_by_role("button", name=re.compile(r"^Retry ")).first.wait_for()
    check("clients, retry buttons", "Retry " + DOC_STORED)
    page.screenshot(path=str(SHOTS / "hostile-clients-matched.png"), full_page=True)

    nav(page, "Practice Manager")
    check("practice manager", PRACTICE.replace("\u202e", "[U+202E]"))
    nav(page, "Webhooks")
    check("webhooks")
    page.close()
    assert not followed, followed
