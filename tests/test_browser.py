"""The admin app in a real browser: `streamlit run app.py` in mock mode, driven by Playwright
with Debian's chromium, against the fake Xero on loopback. Screenshots go to test-output/.

One test drives one stack (fake + app + browser), so pytest-xdist can never split it across
workers and start it twice: the workshop flow first, then the concurrency check (a scheduler sync
and a webhook burst while pages refresh).
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]  # the whole workshop in one test

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-output" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
CLIENT_ID, CLIENT_SECRET = "BROWSERTESTCLIENT000000000000000", "browser-test-secret-only-valid-on-the-fake"
HEALTHY_WITHIN = 90  # seconds: a shared 2-core machine under load took 86 s to start streamlit
WEBHOOK_KEY = "browserWebhookKey/0123456789abcdefghijklmnopqrstuvwxyzABCD=="

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to run the "
                "browser tests", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
expect = sync_api.expect
expect.set_options(timeout=30_000)  # a loaded CI machine (2 cores, -n 2) is slow to render


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """The fake Xero (in this process), the admin app (a `streamlit run` child) and a browser."""

    def __init__(self, tmp: Path, *, tenants: int = 1, invoices: int = 80, before_serving=None,
                 env: dict[str, str] | None = None):
        from xero_core.fake import FakeXero, serve
        from xero_core.settings import load_settings

        self.app_port = _free_port()
        self.app_url = f"http://localhost:{self.app_port}"
        self.fake = FakeXero(seed=23, tenants=tenants, practices=1, invoices=invoices)
        self.fake.register_app(CLIENT_ID, CLIENT_SECRET, [self.app_url + "/callback"], name="Ledgerlink (browser test)")
        if before_serving is not None:
            before_serving(self.fake)  # e.g. hostile names (test_browser_hostile)
        self.server = serve(self.fake, port=0)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("XERO_")},
            **self.fake.settings_env(self.server.url, client_id=CLIENT_ID),
            "XERO_MOCK_MODE": "true",
            "XERO_DATA_DIR": str(tmp / "data"),
            "XERO_ENCRYPTION_KEY": secrets.token_hex(32),
            "XERO_APP_URL": self.app_url,
            "XERO_REDIRECT_URI": self.app_url + "/callback",
            "XERO_FAKE_PORT": str(self.server.port),
            "XERO_ENV_FILE": os.devnull,
            "XERO_TODAY": self.fake.today.isoformat(),  # the app and scheduler run on the fake's (fixed) date
            # chase reminders: mock mode's app starts its loopback mail catcher here (never a demo's 8025)
            "SMTP_PORT": str(_free_port()),
            **(env or {}),
        }
        self.settings = load_settings(self.env)
        self.log = open(tmp / "streamlit.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address=127.0.0.1",
             f"--server.port={self.app_port}", "--server.headless=true", "--server.fileWatcherType=none",
             "--browser.gatherUsageStats=false"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        try:
            self._wait_healthy()
        except BaseException:  # no fixture teardown runs for a half-built stack: stop what it started
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.log.close()
            self.server.close()
            raise
        self.pw = sync_api.sync_playwright().start()
        self.browser = self.pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.context = self.browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.set_default_timeout(30_000)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTHY_WITHIN
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}: {self.app_log()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.app_port}/_stcore/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # polling a child process's port: there is no event to wait on
        raise RuntimeError(f"streamlit did not become healthy in {HEALTHY_WITHIN} s")

    def app_log(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def close(self) -> None:
        for step in (self.context.close, self.browser.close, self.pw.stop):
            try:
                step()
            except Exception:
                pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        self.server.close()


@pytest.fixture
def stack(tmp_path_factory):
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    s = Stack(tmp_path_factory.mktemp("browser"))
    try:
        yield s
    finally:
        s.close()


# -- helpers ----------------------------------------------------------------------------------
def shot(page, name: str, streamlit: bool = True) -> None:
    if streamlit:
        idle(page)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until the script run has finished (Streamlit marks its root element), twice over a
    short gap: a widget change can start a rerun right after a run ends."""
    for _ in range(2):
        page.wait_for_selector(IDLE, timeout=timeout_ms)
        page.wait_for_timeout(200)
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def no_error(page) -> None:
    errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    assert not errors, errors
    assert page.locator('[data-testid="stException"]').count() == 0


def nav(page, title: str) -> None:
    heading = page.get_by_role("heading", name=title, exact=True).first
    for attempt in range(2):
        page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True).click()
        idle(page)
        try:
            # Streamlit drops a page switch that lands on a fragment's timer tick (the sidebar's job
            # list redraws while a sync runs): a person clicks again, so does the test, once.
            expect(heading).to_be_visible(timeout=15_000 if attempt == 0 else 30_000)
            return
        except AssertionError:
            if attempt:
                raise


def choose(page, label: str, option: str) -> None:
    """Pick an option in a selectbox or multiselect by its label."""
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option).first.click()
    idle(page)


def test_admin_app_in_a_real_browser(stack):
    workshop_flow(stack)
    scheduler_sync_and_webhook_burst_while_pages_refresh(stack)
    reset_demo_closes_its_popover(stack)


def reset_demo_closes_its_popover(stack):
    page = stack.context.new_page()
    page.goto(stack.app_url + "/connection")
    idle(page)
    page.get_by_role("button", name="Reset demo").click()
    button = page.get_by_role("button", name="Reset everything")
    expect(button).to_be_visible()
    shot(page, "12-reset-demo-open")
    button.click()
    idle(page)
    expect(page.get_by_text("The demo is back to its starting state.")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="Reset everything")).to_be_hidden()
    expect(page.get_by_text("No organisation is connected yet")).to_be_visible()
    no_error(page)
    shot(page, "13-reset-demo-done")
    page.close()


def test_a_campaign_opened_by_a_job_state_sends_its_first_reminder(stack):
    """Connected (in-process, as the consent tab would), the Practice Manager page: a mapped job state
    opens campaigns and each first reminder is in the Outbox, sent to the app's loopback SMTP server
    (mock mode: aiosmtpd started by the app), which caught it."""
    from app_support.demo_services import caught_mail
    from xero_core import oauth
    from xero_core.practice import chase, xpm

    oauth.complete_connect(stack.settings, stack.fake.consent(oauth.begin_connect(stack.settings)),
                           transport=stack.fake.transport())
    tid = next(c["tenant_id"] for c in _connections(stack) if c["tenant_type"] == "PRACTICEMANAGER")
    page = stack.context.new_page()
    page.goto(stack.app_url)
    idle(page)
    nav(page, "Practice Manager")
    # No quiet hours for this run (the test runs at any hour): the campaigns' first reminders go at once.
    page.get_by_text("Template, reply-to and sending hours").click()
    for label, value in (("Sending from (quiet before)", "00:00"), ("Sending until (quiet after; 24:00 for none)", "24:00")):
        box = page.get_by_label(label)
        box.fill(value)
        box.press("Tab")
    page.get_by_role("button", name="Save template and hours").click()
    idle(page)
    page.get_by_text("Template, reply-to and sending hours").click()  # the rerun closed it
    expect(page.get_by_text("Sending hours: 00:00-24:00 Monday to Friday")).to_be_visible()
    page.get_by_role("button", name="Sync jobs now").click()
    expect(page.get_by_text(re.compile(r"Practice Manager synced: \d+ jobs? read"))).to_be_visible(timeout=30_000)
    jobs = xpm.list_jobs(stack.settings, tid)
    state = max({j["state"] for j in jobs}, key=lambda s: sum(j["state"] == s for j in jobs))
    n = sum(j["state"] == state for j in jobs)
    choose(page, "Job states meaning “we need documents from the client”", state)
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Save mapping and apply").click()
    expect(page.get_by_role("tab", name=f"Open ({n})")).to_be_visible(timeout=30_000)
    no_error(page)
    expect(page.get_by_text("Caught by the demo's mail server")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Message-ID: <rem_\w+\.chase@demo\.invalid>"))).to_be_visible()
    page.get_by_text("Caught by the demo's mail server").scroll_into_view_if_needed()
    shot(page, "10-practice-manager-outbox")
    rows = chase.outbox(stack.settings, tenant_id=tid)
    sent = [r for r in rows if r["state"] == "sent"]
    assert {r["campaign_id"] for r in rows} == {c["campaign_id"] for c in xpm.campaigns(stack.settings, tid, "open")}
    assert sent and all(r["state"] in ("sent", "skipped") for r in rows)
    assert sorted(m["message_id"] for m in caught_mail(stack.settings)) == sorted(r["message_id"] for r in sent)


# -- the workshop flow ------------------------------------------------------------------------
ADDRESSES = (("/practice-manager", "Practice Manager"), ("/connection", "Connection"), ("/sync", "Sync"),
             ("/data", "Data"), ("/clients", "Clients & documents"), ("/webhooks", "Webhooks"),
             ("/", "Connection"))


def every_address_opens_its_page(stack):
    """Each address the README promises, typed into a new tab, shows its page and no "Page not found"
    dialog. Run first on a fresh server: its first run is where Streamlit's legacy pages/ mode put
    that dialog over /practice-manager (file practice_manager.py). The first tab opens alone, the
    others at once (each its own session), to keep this short."""
    def check(tab, path, title):
        idle(tab)
        expect(tab.get_by_role("heading", name=title, exact=True).first).to_be_visible()
        expect(tab).to_have_url(stack.app_url + (path if path != "/" else "/connection"))
        assert tab.get_by_text("Page not found").count() == 0, path

    (first, first_title), *rest = ADDRESSES
    tab = stack.context.new_page()
    tab.goto(stack.app_url + first)
    check(tab, first, first_title)
    shot(tab, "00-direct-practice-manager")
    tab.close()
    tabs = []
    for path, _ in rest:
        tabs.append(stack.context.new_page())
        tabs[-1].goto(stack.app_url + path)
    for tab, (path, title) in zip(tabs, rest):
        check(tab, path, title)
        tab.close()


def workshop_flow(stack):
    """Connect through the consent page, Sync now fills Data, an XPM mapping opens campaigns, a
    pasted webhook key passes Intent to Receive, disconnect; a screenshot of each page."""
    every_address_opens_its_page(stack)
    page = stack.context.new_page()
    page.goto(stack.app_url)
    expect(page).to_have_url(stack.app_url + "/connection")
    expect(page.get_by_text("Mock mode")).to_be_visible()
    expect(page.get_by_text("No organisation is connected yet")).to_be_visible()
    shot(page, "01-connection-empty")

    # Connect: Xero's (here: the fake's) consent page opens in a new tab and lands back on /callback
    with stack.context.expect_page() as consent_info:
        page.get_by_role("link", name="Connect to Xero").click()
    consent = consent_info.value
    consent.wait_for_load_state()
    assert consent.url.startswith(stack.server.url + "/identity/connect/authorize")
    shot(consent, "02-fake-consent", streamlit=False)
    # each scope once, with what it allows (not its name twice), in the app's colours
    scopes = consent.locator("ul.scopes li")
    listed = [li.inner_text() for li in scopes.all()]
    assert len(listed) == len(set(stack.settings.scopes)) == len(set(listed)), listed
    assert all(not li.startswith(code.inner_text()) for li, code in zip(listed, scopes.locator("code").all()))
    assert "View your profit and loss report" in "\n".join(listed)
    assert consent.locator("button.primary").evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(19, 181, 234)"
    consent.get_by_role("button", name="Allow access").click()
    consent.wait_for_url(re.compile(re.escape(stack.app_url) + r"/callback.*"))
    expect(consent.get_by_text("Connected:")).to_be_visible()
    no_error(consent)
    shot(consent, "03-callback-connected")
    assert "code=" not in consent.url  # the single-use code is dropped from the address bar
    consent.close()

    # the first tab redraws itself once the other tab finished the connection: no reload
    org, practice = stack.fake.org().name, stack.fake.practice().name
    expect(page.get_by_role("heading", name=org)).to_be_visible(timeout=15_000)
    expect(page.get_by_text("No organisation is connected yet")).to_have_count(0)
    expect(page.get_by_role("heading", name=practice)).to_be_visible()
    shot(page, "04-connection-connected")
    # a new tab: the one organisation (beside the practice) is chosen by itself
    fresh = stack.context.new_page()
    fresh.goto(stack.app_url + "/data")
    idle(fresh)
    expect(fresh.get_by_role("combobox", name="Organisation")).to_have_value(f"{org} (ORGANISATION)")
    expect(fresh.get_by_text("Choose an organisation in the sidebar first")).to_have_count(0)
    fresh.close()

    # Sync now fills the Data page; the one organisation is chosen by itself in this tab too
    nav(page, "Sync")
    expect(page.get_by_role("combobox", name="Organisation")).to_have_value(f"{org} (ORGANISATION)")
    weeks = page.get_by_role("spinbutton", name="Weeks of history")
    weeks.fill("4")
    weeks.press("Enter")
    idle(page)
    from xero_core import db as _db
    from xero_core.pipeline import jobs as J

    gate = threading.Event()  # Xero's Journals answer waits: the history job is surely running when we leave
    stack.fake.faults.add("slow", path="Journals", gate=gate, seconds=120)
    page.get_by_role("button", name="Sync now").click()
    idle(page)
    # the Sync now's job (on a quiet machine its 4 weeks may be done already: every job, not just active ones)
    (job,) = [j for j in J.list_jobs(stack.settings) if not j.request.history]
    expect(page.get_by_text("Syncs under way")).to_be_visible()  # the sidebar, on every page
    no_error(page)
    # status icons are Material icons: Debian's chromium has no emoji font (they were empty boxes)
    assert not re.search("[\u2600-\u27bf\U0001F300-\U0001FAFF]", page.inner_text("body"))
    shot(page, "05-sync")
    # Leave the page at once: the job belongs to the app server, not to the Sync page's script run.
    nav(page, "Data")
    # Figures first: the Sync now's job runs the latest weeks and queues the journal history as a
    # backfill of its own, which the held Journals answer keeps running while we leave the page.
    (job,) = J.wait(stack.settings, [job.job_id], timeout=180)
    assert job.state == "done", job.to_dict()
    history = J.get(stack.settings, job.result.history_job)
    assert history.request.history and history.active, "the history ended before we left the page"
    gate.set()
    (history,) = J.wait(stack.settings, [history.job_id], timeout=180)
    assert history.state == "done", history.to_dict()
    assert job.owner_label == history.owner_label == "app"
    with _db.connect(stack.settings.db_path, read_only=True) as con:
        logged = {r[0] for r in con.execute("SELECT sync_type FROM sync_log WHERE run_id = ?",
                                            [job.result.run_id]).fetchall()}
        logged_later = {r[0] for r in con.execute("SELECT sync_type FROM sync_log WHERE run_id = ?",
                                                  [history.result.run_id]).fetchall()}
    assert {st.step for st in job.result.steps} <= logged and "clients" in logged and "journals" not in logged
    assert "journals" in logged_later
    nav(page, "Connection")  # the same session (a reload would start a new one, without the org chosen)
    nav(page, "Data")
    expect(page.locator('[data-testid="stVegaLiteChart"]').first).to_be_visible()
    no_error(page)
    # the latest complete week first (a Saturday: weeks end on Saturday), in the organisation's base currency
    expect(page.get_by_text(re.compile(r"^Week ending Sat \d{1,2} [A-Z][a-z]{2} 20\d\d$"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Amounts in AUD \(its base currency in Xero"))).to_be_visible()
    shot(page, "06-data")
    for tab, name in (("Revenue mix", "06b-data-revenue-mix"), ("Cash position", "06c-data-cash")):
        page.get_by_role("tab", name=tab).click()
        expect(page.locator('[data-testid="stVegaLiteChart"]').filter(visible=True).first).to_be_visible()
        shot(page, name)

    # Practice Manager: read jobs, map a state, see a campaign open
    nav(page, "Practice Manager")
    page.get_by_role("button", name="Sync jobs now").click()
    expect(page.get_by_text(re.compile(r"Practice Manager synced: \d+ jobs? read, \d+ campaigns? opened and \d+ "
                                       r"completed\."))).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Mapping applied")).to_have_count(0)
    expect(page.get_by_text("no current job would be in a chasing campaign.")).to_be_visible()
    from xero_core.practice import xpm

    tid = next(c["tenant_id"] for c in _connections(stack) if c["tenant_type"] == "PRACTICEMANAGER")
    jobs = xpm.list_jobs(stack.settings, tid)
    state = max({j["state"] for j in jobs}, key=lambda s: sum(j["state"] == s for j in jobs))
    n = sum(j["state"] == state for j in jobs)
    choose(page, "Job states meaning “we need documents from the client”", state)
    page.keyboard.press("Escape")
    expect(page.get_by_text(f"{n} current job{'s' if n != 1 else ''} would be in a chasing campaign:")).to_be_visible()
    grid = page.locator('[data-testid="stDataFrame"]').first
    for header in ("Job name", "Client in XPM", "Ledgerlink client", "Due"):  # the grid's (hidden) header row
        expect(grid.get_by_role("columnheader", name=header, exact=True, include_hidden=True)).to_have_count(1)
    expect(grid.get_by_role("columnheader", name="ledgerlink_client_name", include_hidden=True)).to_have_count(0)
    page.get_by_role("button", name="Save mapping and apply").click()
    expect(page.get_by_role("tab", name=f"Open ({n})")).to_be_visible(timeout=30_000)
    expect(page.get_by_text(re.compile(r"Mapping saved\. Practice Manager synced: .* opened"))).to_be_visible()
    no_error(page)
    shot(page, "07-practice-manager")
    # the sidebar's organisation stayed chosen across the pages of this session
    expect(page.get_by_role("combobox", name="Organisation")).to_have_value(f"{org} (ORGANISATION)")

    # Webhooks: paste the key; Xero's Intent to Receive then passes against the app's own server
    nav(page, "Webhooks")
    expect(page.get_by_text(f"{stack.app_url}/webhooks/xero")).to_be_visible()
    expect(page.get_by_text("tick Contacts, Invoices and Credit Notes")).to_be_visible()
    assert "tick Contacts, Invoices and Credit Notes" in (ROOT / "README.md").read_text()
    page.get_by_label("Webhook key (from the same Xero page)").fill(WEBHOOK_KEY)
    page.get_by_role("button", name="Save key").click()
    expect(page.get_by_text("Webhook key saved")).to_be_visible()
    expect(page.get_by_text("…CD== (vault)")).to_be_visible()
    # mock mode: the fake signs a delivery and posts it to the app's own route, no curl
    page.get_by_role("button", name="Send a test event").click()
    expect(page.get_by_text(re.compile(r"The fake Xero signed .* this app answered 200"))).to_be_visible()
    no_error(page)
    nav(page, "Sync")
    nav(page, "Webhooks")
    expect(page.get_by_text("No event received yet.")).to_have_count(0)
    expect(page.locator('[data-testid="stDataFrame"]').filter(visible=True).first).to_be_visible()
    shot(page, "08b-webhooks-test-event")
    itr = stack.fake.intent_to_receive(stack.app_url + "/webhooks/xero", WEBHOOK_KEY)
    assert itr.passed, itr.public()
    nav(page, "Clients & documents")
    no_error(page)
    shot(page, "09-clients")
    nav(page, "Webhooks")
    expect(page.locator('[data-testid="stMetricValue"]').filter(has_text="passed")).to_be_visible()
    # Xero's deliberately wrongly signed probes are explained, not reported as failures
    expect(page.get_by_text(re.compile(r"\d+ wrongly signed Intent to Receive probe\(s\) refused, as Xero expects"))).to_be_visible()
    expect(page.get_by_text("Why: bad signature")).to_have_count(0)
    assert WEBHOOK_KEY not in page.content()
    shot(page, "08-webhooks")

    # Disconnect, with confirmation
    nav(page, "Connection")
    page.get_by_role("button", name="Disconnect…").first.click()
    idle(page)
    shot(page, "10-disconnect-confirm")
    page.get_by_role("button", name="Yes, disconnect").click()
    expect(page.get_by_text(f"Disconnected {org}.")).to_be_visible()
    no_error(page)
    shot(page, "11-disconnected")
    assert {c["tenant_id"]: c["status"] for c in _connections(stack, True)}[stack.fake.org().tenant_id] == "disconnected"
    page.close()


def _connections(stack, include_disconnected: bool = False) -> list[dict]:
    from xero_core.connections import list_connections

    return list_connections(stack.settings, include_disconnected=include_disconnected)


# -- no lock-outs -----------------------------------------------------------------------------
def scheduler_sync_and_webhook_burst_while_pages_refresh(stack):
    """The app's page reads, a scheduler sync (another process) and a webhook burst (the app's own
    server) all share one DuckDB file: everything finishes and nobody sees a lock error."""
    from xero_core import db, oauth
    from xero_core.practice.webhooks import set_webhook_key

    s = stack.settings
    oauth.complete_connect(s, stack.fake.consent(oauth.begin_connect(s)))  # reconnect after the flow above
    set_webhook_key(s, WEBHOOK_KEY)
    sched = subprocess.Popen([sys.executable, "scheduler.py", "--once"], cwd=ROOT, env=stack.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    answers, burst_errors = [], []

    def burst():
        try:
            for _ in range(15):
                r = stack.fake.deliver_webhooks(stack.app_url + "/webhooks/xero", WEBHOOK_KEY)
                answers.extend(r.answers)
        except Exception as exc:  # noqa: BLE001 - reported below
            burst_errors.append(repr(exc))

    sender = threading.Thread(target=burst)
    sender.start()
    page = stack.context.new_page()
    page.goto(stack.app_url)
    seen: list[str] = []
    refreshes = 0
    while sched.poll() is None or sender.is_alive() or refreshes < 4:
        for title in ("Sync", "Webhooks", "Data", "Connection"):
            nav(page, title)
            seen += page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
            refreshes += 1
    out = sched.stdout.read().decode(errors="replace")
    sender.join()
    page.close()

    assert sched.returncode == 0, out[-3000:]
    assert not burst_errors, burst_errors
    assert len(answers) == 15 and all(a.ok for a in answers), [a.public() for a in answers if not a.ok]
    assert not [e for e in seen if re.search(r"lock|busy|IOException", e, re.I)], seen
    db_lock = re.compile(r"Could not set lock|Conflicting lock|different configuration|DatabaseBusy|stayed locked")
    assert not db_lock.search(out), out[-3000:]
    assert not db_lock.search(stack.app_log()), stack.app_log()[-3000:]
    with db.connect(s.db_path) as con:
        statuses = dict(con.execute("SELECT status, count(*) FROM sync_log WHERE trigger = 'scheduler' GROUP BY 1").fetchall())
    assert statuses.get("success", 0) > 0 and not statuses.get("failed"), statuses
    # every delivered event reaches DuckDB through the app's own worker
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with db.connect(s.db_path) as con:
            n = con.execute("SELECT count(*) FROM webhook_events").fetchone()[0]
        if n >= 4:
            break
        time.sleep(0.2)  # the worker drains on its own thread in the app process
    assert n >= 4
