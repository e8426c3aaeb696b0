"""The notebooks, end to end: the fake Xero in process → OAuth connect → Engine.sync (54 weeks) → the
analysis functions reconcile with the fake's own ledger to the cent → each notebook runs in a fresh
`python3` kernel, run as `jupyter nbconvert --execute --to html` in a subprocess (cwd notebooks/,
XERO_DATA_DIR pointing at the synced data), and the exported page shows those figures and every chart
as an image.

Pinned to TODAY: the fake's data ends on its `today`, and the kernel decides "complete weeks" with
XERO_TODAY (xero_core.clock.today), so nothing here depends on the date the suite runs. TODAY is a
day whose top account mover is named with an `&` (escaped in the HTML table): names are compared
after unescaping.
"""
from __future__ import annotations

import base64
import contextlib
import os
import secrets
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timezone, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from xero_core import analysis as an
from xero_core import oauth
from xero_core.fake.app import FakeXero
from xero_core.fake.clock import FakeClock
from xero_core.fake.ledger import to_base
from xero_core.settings import load_settings
from xero_core.engine import Engine
from xero_core.sync.weeks import week_ending_for, week_start

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CENT = Decimal("0.01")
WEEKS = 54  # a year and a bit: "same week last year" has data
TODAY = date(2026, 12, 5)  # a Saturday; its top mover is "Sales - Service & Maintenance"

pytestmark = pytest.mark.slow  # each test starts a Jupyter kernel or the CLI on a synced database


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    """One small fake organisation synced into a private data dir (the notebook kernel reads it)."""
    tmp = tmp_path_factory.mktemp("notebooks")
    s = load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp / "data"),
                       "XERO_ENCRYPTION_KEY": secrets.token_hex(32)})
    today = TODAY
    clock = FakeClock(datetime(2026, 12, 5, 1, 0, tzinfo=timezone.utc))  # TODAY in UTC and in Sydney
    fake = FakeXero(seed=7, today=today, clock=clock, invoices=600)
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)),
                                     transport=fake.transport(), clock=clock)
    org_id = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")
    # Engine.sync publishes the readers' copy the notebooks open (data/xero.duckdb)
    res = Engine(s, transport=fake.transport(), clock=clock, today=today).sync(
        org_id, weeks=WEEKS, only="pnl,bank,invoices", trigger="cli")
    assert res.ok, res.to_dict()
    return s, fake.org(org_id), org_id, today


def truth_pnl(org, week_ending):
    return org.profit_and_loss(week_start(week_ending), week_ending)


def run_notebook(name: str, data_dir: Path, *, expect_stop: bool = False) -> nbformat.NotebookNode:
    """Execute like "Run All" in a fresh python3 kernel, cwd notebooks/; outputs land in the
    returned notebook (the file on disk is untouched)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    env = {**os.environ, "XERO_DATA_DIR": str(data_dir), "XERO_ENV_FILE": os.devnull,
           "XERO_TODAY": TODAY.isoformat()}
    env.pop("PYTHONPATH", None)  # the notebook must find xero_core by itself
    client = NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(NOTEBOOKS)}})
    try:
        client.execute(env=env, cwd=str(NOTEBOOKS))
    except CellExecutionError:
        if not expect_stop:
            raise
        return nb
    assert not expect_stop, "the notebook ran through although it should have stopped"
    return nb


@dataclass
class ExportedPage:
    """A notebook as `jupyter nbconvert --execute --to html` exported it."""

    name: str
    html: str

    def __post_init__(self):
        self.soup = BeautifulSoup(self.html, "html.parser")

    def cells(self, tag: str) -> list:
        return self.soup.select(f"div.jp-Cell.celltag_{tag}")  # nbconvert marks each cell with its tags

    def text(self, tag: str) -> str:
        """What a reader sees in the cell tagged `tag` (its outputs; entities such as &amp; unescaped)."""
        (cell,) = self.cells(tag)
        return "\n".join(o.get_text() for o in cell.select(".jp-OutputArea-output"))

    def assert_every_chart_is_an_image(self, charts: int) -> None:
        source = nbformat.read(NOTEBOOKS / f"{self.name}.ipynb", as_version=4)
        assert len(tagged(source, "chart")) == charts, "the notebook's chart cells"
        cells = self.cells("chart")
        assert len(cells) == charts
        for cell in cells:
            outputs = cell.select(".jp-OutputArea-output")
            imgs = [i for o in outputs for i in o.select("img")]
            assert len(imgs) == 1, f"a chart shows as {len(imgs)} images: {cell.get_text(' ', strip=True)[-300:]!r}"
            img = imgs[0]
            assert img["src"].startswith("data:image/png;base64,"), img["src"][:40]
            png = base64.b64decode(img["src"].split(",", 1)[1])
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000, "a drawn chart, not an empty image"
            assert float(img["width"]) > 100 and float(img["height"]) > 100
            assert all(o.select("img") for o in outputs), "nothing but the image (no placeholder sentence)"
        images = self.soup.select('img[src^="data:image/png"]')
        assert len(images) == charts, "one image per chart, none elsewhere"
        assert "&lt;chart" not in self.html and "open this notebook in" not in self.html


@pytest.fixture(scope="module")
def exported(synced, tmp_path_factory) -> dict[str, ExportedPage]:
    """Both notebooks executed and exported by `jupyter nbconvert --execute --to html`, as a reader
    would (the project's venv, a fresh kernel each, cwd notebooks/); one nbconvert for both (its own
    start-up costs seconds of CPU), one run per module."""
    s = synced[0]
    out = tmp_path_factory.mktemp("html")
    jupyter = Path(sys.executable).with_name("jupyter")
    env = {**os.environ, "XERO_DATA_DIR": str(s.data_dir), "XERO_ENV_FILE": os.devnull,
           "XERO_TODAY": TODAY.isoformat(), "JUPYTER_RUNTIME_DIR": str(out / "runtime")}
    env.pop("PYTHONPATH", None)  # the notebook must find xero_core by itself
    names = ("weekly_pnl", "query_tables")
    p = subprocess.run(
        [str(jupyter), "nbconvert", "--execute", "--to", "html", "--ExecutePreprocessor.timeout=180",
         "--output-dir", str(out), *(str(NOTEBOOKS / f"{n}.ipynb") for n in names)],
        cwd=NOTEBOOKS, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=400)
    assert p.returncode == 0, f"nbconvert exited {p.returncode}:\n{p.stdout[-3000:]}"
    return {n: ExportedPage(n, (out / f"{n}.html").read_text()) for n in names}


def tagged(nb, tag) -> list:
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def money(d: Decimal) -> str:
    return f"{d:,.2f}"


# ---------------------------------------------------------------------------------------------


def test_analysis_reconciles_with_the_fakes_ledger_to_the_cent(synced):
    s, org, org_id, today = synced
    week = an.latest_week(s, today=TODAY)
    assert week == week_ending_for(today, s.week_ends_on) - timedelta(days=7), "the latest complete week"
    df = an.latest_week_comparison(s, today=TODAY)
    got = {r["metric"]: r for r in df.iter_rows(named=True)}
    latest, prev, last_year = (truth_pnl(org, w) for w in (week, week - timedelta(days=7), week - timedelta(days=364)))
    avg_weeks = [truth_pnl(org, week - timedelta(days=7 * i)) for i in range(1, 5)]
    for m in an.METRICS:
        assert got[m]["latest"] == latest[m], m
        assert got[m]["previous_week"] == prev[m], m
        assert got[m]["same_week_last_year"] == last_year[m], m
        want_avg = (sum(w[m] for w in avg_weeks) / 4).quantize(CENT, rounding=ROUND_HALF_UP)
        assert got[m]["avg_4_weeks"] == want_avg, m
        assert got[m]["change"] == latest[m] - prev[m]
    assert latest["income"] > 0 and latest["net_profit"] == latest["income"] - latest["cost_of_sales"] + \
        latest["other_income"] - latest["operating_expenses"]

    # every synced week, not just the latest
    pnl = an.weekly_pnl(s, today=TODAY)
    assert pnl.height == WEEKS - 1 and pnl["week_ending"].max() == week    # complete weeks: TODAY's week still runs
    assert an.weekly_pnl(s, today=TODAY, include_current=True).height == WEEKS
    for r in pnl.iter_rows(named=True):
        assert r["net_profit"] == truth_pnl(org, r["week_ending"])["net_profit"], r["week_ending"]

    # cash: closing balances and the burn behind the runway
    runway = an.cash_runway(s, today=TODAY).row(0, named=True)
    summaries = [org.bank_summary(week_start(week - timedelta(days=7 * i)), week - timedelta(days=7 * i)) for i in range(4)]
    assert runway["closing_cash"] == sum(a["closing"] for a in summaries[0].values())
    outflow = [sum(a["spent"] - a["received"] for a in wk.values()) for wk in summaries]
    assert runway["avg_weekly_net_outflow"] == (sum(outflow) / 4).quantize(CENT, rounding=ROUND_HALF_UP)
    assert runway["status"] in ("burning cash", "not burning cash")

    # revenue mix of the last 4 weeks = the fake's sales invoice lines regrouped
    mix = an.revenue_mix(s, weeks=4, today=TODAY)
    want = defaultdict(int)
    first = week - timedelta(days=21)
    for inv in org.invoices:
        if inv.type == "ACCREC" and inv.status in ("AUTHORISED", "PAID") and first - timedelta(days=6) <= inv.date <= week:
            for ln in inv.lines:    # in the base currency: each line / its invoice's rate (issue 23 §1)
                want[(ln.region.name if ln.region else "Unassigned", ln.job.name if ln.job else "Unassigned")] += \
                    to_base(ln.amount, inv.rate)
    assert {(r["region"], r["revenue_type"]): r["subtotal"] for r in mix.iter_rows(named=True)} == {
        k: Decimal(v) * CENT for k, v in want.items()}
    assert abs(sum(mix["share_pct"].to_list()) - 100) < 0.5

    # account movers = the fake's per-account P&L, latest week against the week before
    movers = an.top_account_movers(s, n=5, today=TODAY)
    for r in movers.iter_rows(named=True):
        acct = org.account(r["account_code"])
        sign = -1 if acct.cls == "REVENUE" else 1
        for col, we in (("latest", week), ("previous", week - timedelta(days=7))):
            cents = sign * org.account_net(acct, week_start(we), we)
            assert r[col] == Decimal(cents) * CENT, (r["account_name"], col)
    changes = [abs(c) for c in movers["change"].to_list()]
    assert changes == sorted(changes, reverse=True)


def test_weekly_pnl_html_export_shows_the_reconciled_figures_and_every_chart_as_an_image(synced, exported):
    s, org, org_id, today = synced
    page = exported["weekly_pnl"]
    week = an.latest_week(s, today=TODAY)
    truth = truth_pnl(org, week)

    assert f"latest complete week ending {week:%a %d %b %Y}" in page.text("check")
    shown = page.text("comparison")
    for m in ("income", "gross_profit", "net_profit", "operating_expenses"):
        assert money(truth[m]) in shown, (m, truth[m])
    assert money(truth_pnl(org, week - timedelta(days=364))["income"]) in shown, "same week last year"
    assert an.cash_runway(s, today=TODAY)["explanation"][0] in page.text("runway")
    top = an.top_account_movers(s, n=10, today=TODAY)
    assert "&" in top["account_name"][0], "TODAY was picked for an account name the HTML escapes"
    assert top["account_name"][0] in page.text("movers") and money(top["change"][0]) in page.text("movers")
    assert "Residential" in page.text("mix") or "Commercial" in page.text("mix")
    page.assert_every_chart_is_an_image(7)
    # Issue 23 §2/§5: tables a finance lead reads: headers in words with the organisation's currency
    # (from Xero, not written in the notebook), names without quotes, blanks rather than null
    assert f"amounts in {an.currency(s)}" in page.text("check") and an.currency(s) == "AUD"
    for tag in ("comparison", "mix", "movers"):
        text = page.text(tag)
        assert "null" not in text and '"' not in text, (tag, text[:300])
    assert "Previous week (AUD)" in shown and "Same week last year (AUD)" in shown
    assert "Effect on profit (AUD)" in page.text("movers")


def test_query_tables_html_export_shows_the_answers_and_its_chart(synced, exported):
    s, org, org_id, today = synced
    page = exported["query_tables"]
    for t in ("financial_weekly", "pnl_lines", "revenue_weekly", "cash_position_weekly", "invoices"):
        assert t in page.text("tables")
    assert str(truth_pnl(org, an.latest_week(s, today=TODAY))["net_profit"]) in page.text("sql")
    assert "AUTHORISED" in page.text("polars") or "PAID" in page.text("polars")
    page.assert_every_chart_is_an_image(1)


def test_notebook_without_data_says_how_to_get_some_and_stops_without_a_traceback(tmp_path):
    empty = tmp_path / "nodata"
    nb = run_notebook("weekly_pnl.ipynb", empty, expect_stop=True)
    (check,) = tagged(nb, "check")
    (err,) = [o for o in check.outputs if o.output_type == "error"]
    assert err.ename == "NoDataYet"
    shown = "\n".join(err.traceback)
    assert shown.startswith("NoDataYet: No data yet") and "python -m xero_core demo" in shown and str(empty) in shown
    assert "Traceback" not in shown and "File " not in shown and "---" not in shown, "a sentence, not a stack"
    later = nb.cells[nb.cells.index(check) + 1:]
    assert all(not c.get("outputs") for c in later if c.cell_type == "code"), "nothing after the check ran"
    assert not (empty / "xero.duckdb").exists(), "looking for data must not create a database"


def test_no_currency_is_written_in_a_notebook():
    """Every currency shown comes from the organisation (an.currency): a notebook that says "AUD" is
    wrong for an NZ or UK organisation."""
    import re

    for path in NOTEBOOKS.glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            assert not re.search(r"\b(AUD|NZD|GBP|USD|EUR)\b", cell.source), (path.name, cell.source[:200])


def test_notebooks_are_committed_without_outputs():
    for name in ("weekly_pnl.ipynb", "query_tables.ipynb"):
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), name


def test_xero_today_pins_the_date_the_analysis_calls_today(synced, monkeypatch):
    s, org, org_id, today = synced
    from xero_core import clock

    monkeypatch.setenv("XERO_TODAY", "2026-12-06")  # the day after TODAY: the week ending TODAY is complete
    assert clock.today() == date(2026, 12, 6)
    assert an.latest_week(s) == TODAY
    monkeypatch.setenv("XERO_TODAY", TODAY.isoformat())
    assert an.latest_week(s) == TODAY - timedelta(days=7)
    monkeypatch.setenv("XERO_TODAY", "5/12/2026")
    with pytest.raises(ValueError, match="XERO_TODAY='5/12/2026' must be a date as YYYY-MM-DD"):
        clock.today()


def test_scripts_notebooks_opens_jupyterlab_on_the_data_with_the_printed_url(synced, tmp_path):
    """The README's command (without its install step, which bootstrap already did): it finds the
    synced data, starts JupyterLab on --port with the notebooks and the project's kernel, and the
    URL it prints opens."""
    import signal
    import socket

    import httpx

    s = synced[0]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = NOTEBOOKS.parent
    env = {**os.environ, "XERO_DATA_DIR": str(s.data_dir), "XERO_ENV_FILE": os.devnull,
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    env.pop("DISPLAY", None), env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.Popen(["bash", str(root / "scripts" / "notebooks"), "--port", str(port), "--no-install"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if "is running at" in line:
                break
        log = "".join(lines)
        assert "is running at" in log, log[-3000:]
        assert f"Data found in {s.snapshot_path}" in log, "it looked where the notebooks look, and found the data"
        (url,) = [w for w in log.split() if w.startswith(f"http://localhost:{port}/lab/tree/weekly_pnl.ipynb?token=")]
        token = url.split("token=", 1)[1]
        with httpx.Client(timeout=30) as http:
            assert http.get(url).status_code == 200
            listing = http.get(f"http://localhost:{port}/api/contents", params={"token": token}).json()
            assert {c["name"] for c in listing["content"]} >= {"weekly_pnl.ipynb", "query_tables.ipynb"}
            specs = http.get(f"http://localhost:{port}/api/kernelspecs", params={"token": token}).json()
            assert "python3" in specs["kernelspecs"]
        assert httpx.get(f"http://localhost:{port}/api/contents", timeout=30).status_code == 403, "token required"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the script's own process group (JupyterLab after exec)
        proc.wait(timeout=60)
        proc.stdout.close()


def test_scripts_notebooks_stopped_while_its_demo_loads_stops_the_fake_it_started(tmp_path):
    """With no data the script runs the demo, which starts the fake Xero in a session of its own (it
    outlives the demo, for the app). The script stops it once the demo is done; stopped meanwhile
    (Ctrl-C, a test's timeout) it left the fake listening on its port (8765 by default) for good."""
    import signal
    import socket
    import time

    import httpx

    ports = []
    for _ in range(2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    fake_port, lab_port = ports
    env = {k: v for k, v in os.environ.items() if not k.startswith("XERO_")}
    env.update(XERO_DATA_DIR=str(tmp_path / "data"), XERO_ENV_FILE=os.devnull, XERO_FAKE_PORT=str(fake_port),
               XERO_ENCRYPTION_KEY=secrets.token_hex(32), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"))

    def fake_answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{fake_port}/_fake/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_until(condition, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)  # another process's port: there is no event to wait on
        return True

    proc = subprocess.Popen(["bash", str(NOTEBOOKS.parent / "scripts" / "notebooks"), "--port", str(lab_port),
                             "--no-install", "--weeks", "1"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    pidfile = tmp_path / "data" / "fake-xero" / "fake-xero.pid"
    try:
        assert wait_until(lambda: fake_answers() and pidfile.exists(), 180), "the demo started no fake Xero"
        os.killpg(proc.pid, signal.SIGTERM)  # what a test runner's timeout (or Ctrl-C: SIGINT) does
        log, _ = proc.communicate(timeout=60)
        assert wait_until(lambda: not fake_answers(), 30), log[-2000:]
        assert "Stopped the fake Xero the demo started." in log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        if pidfile.exists():  # before the fix: the fake this test made the script start
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
