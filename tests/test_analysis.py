"""xero_core.analysis against a DuckDB filled with known rows: every figure below is worked out by
hand, so a wrong average, rounding, week alignment or sign fails here."""
from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal as D

import polars as pl
import pytest

from xero_core import analysis as an
from xero_core.db import connect

TODAY = date(2026, 11, 26)  # a Thursday: the week ending Sat 28 Nov is still running
LATEST = date(2026, 11, 21)  # the latest complete week
ORG, OTHER, PM = "org-alpha", "org-beta", "xpm-practice"


def wk(k: int) -> date:
    return LATEST - timedelta(days=7 * k)


def pnl_row(tenant, week, income, cos, other, opex):
    income, cos, other, opex = (D(x) for x in (income, cos, other, opex))
    gp = income - cos
    return (tenant, week, week - timedelta(days=6), income, cos, gp, other, opex, gp + other - opex)


def fill(path, *, tenants=(ORG,), skip_weeks=()):
    rows = []
    for k in range(60):
        if k in skip_weeks:
            continue
        income, cos, other, opex = "1000.00", "400.00", "0.00", "300.00"
        if k == 0:
            income, cos, other, opex = "1500.00", "600.00", "10.00", "450.50"
        elif k == 1:
            income, cos, opex = "1200.00", "500.00", "400.00"
        elif k in (2, 3):
            income = "1000.01"
        elif k == 52:  # the same week last year: 2025-11-22
            income, cos = "1250.00", "500.00"
        rows.append(pnl_row(ORG, wk(k), income, cos, other, opex))
    rows.append(pnl_row(ORG, date(2026, 11, 28), "100.00", "10.00", "0.00", "5.00"))  # unfinished week

    lines = [
        # week k=1
        (ORG, wk(1), "acc-sales", "income", "200", "Sales", "1200.00"),
        (ORG, wk(1), "acc-cogs", "cost_of_sales", "310", "Cost of Goods Sold", "500.00"),
        (ORG, wk(1), "acc-rent", "operating_expenses", "469", "Rent", "320.00"),
        (ORG, wk(1), "acc-repairs", "operating_expenses", "473", "Repairs", "80.00"),
        # week k=0
        (ORG, wk(0), "acc-sales", "income", "200", "Sales", "1500.00"),
        (ORG, wk(0), "acc-cogs", "cost_of_sales", "310", "Cost of Goods Sold", "600.00"),
        (ORG, wk(0), "acc-rent", "operating_expenses", "469", "Rent", "400.00"),
        (ORG, wk(0), "acc-wages", "operating_expenses", "477", "Wages", "50.50"),
        (ORG, wk(0), "acc-interest", "other_income", "270", "Interest Income", "10.00"),
    ]
    revenue = [
        (ORG, wk(0), "Sydney", "Residential", 3, "600.00", "60.00", "660.00"),
        (ORG, wk(0), "Newcastle", "Commercial", 1, "400.00", "40.00", "440.00"),
        (ORG, wk(1), "Sydney", "Residential", 2, "300.00", "30.00", "330.00"),
        (ORG, wk(1), "Sydney", "Commercial", 1, "100.00", "10.00", "110.00"),
        (ORG, wk(4), "Newcastle", "Residential", 5, "9999.00", "999.90", "10998.90"),  # outside 4 weeks
        (ORG, date(2026, 11, 28), "Sydney", "Residential", 1, "50.00", "5.00", "55.00"),  # unfinished week
    ]
    # (week, account, opening, received, spent, closing); total outflows 1000, 2000, 500, 500
    cash = [
        (wk(0), "A", "20000.00", "1000.00", "2500.00", "18500.00"), (wk(0), "B", "6000.00", "500.00", "0.00", "6500.00"),
        (wk(1), "A", "28000.00", "0.00", "2000.00", "26000.00"), (wk(1), "B", "0.00", "0.00", "0.00", "0.00"),
        (wk(2), "A", "28500.00", "1000.00", "1500.00", "28000.00"),
        (wk(3), "A", "29000.00", "0.00", "500.00", "28500.00"),
        (wk(4), "A", "0.00", "0.00", "99999.00", "29000.00"),  # outside the 4-week burn window
    ]
    with connect(path) as con:
        for t, name, ttype in ((ORG, "Alpha Pty", "ORGANISATION"), (OTHER, "Beta Ltd", "ORGANISATION"),
                               (PM, "Alpha Practice", "PRACTICEMANAGER")):
            if t in tenants or t == PM:
                con.execute("INSERT INTO connections (tenant_id, tenant_name, tenant_type, status) VALUES (?, ?, ?, 'connected')",
                            [t, name, ttype])
        con.execute("INSERT INTO connections (tenant_id, tenant_name, tenant_type, status) VALUES ('gone', 'Gone Co', 'ORGANISATION', 'disconnected')")
        con.executemany("INSERT INTO financial_weekly (tenant_id, week_ending, week_start, income, cost_of_sales, gross_profit, "
                        "other_income, operating_expenses, net_profit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        con.executemany("INSERT INTO pnl_lines (tenant_id, week_ending, account_id, section, account_code, account_name, amount) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)", lines)
        con.executemany("INSERT INTO revenue_weekly (tenant_id, week_ending, region, revenue_type, invoice_count, subtotal, "
                        "total_tax, total) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", revenue)
        con.executemany("INSERT INTO cash_position_weekly (tenant_id, week_ending, bank_account_id, bank_account_name, opening, "
                        "received, spent, closing) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(ORG, w, f"bank-{a}", f"Account {a}", *v) for w, a, *v in cash])
        if OTHER in tenants:  # a profitable business whose cash grows
            con.executemany("INSERT INTO financial_weekly (tenant_id, week_ending, week_start, income, cost_of_sales, gross_profit, "
                            "other_income, operating_expenses, net_profit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [pnl_row(OTHER, wk(k), "500.00", "100.00", "0.00", "100.00") for k in range(4)])
            con.executemany("INSERT INTO cash_position_weekly (tenant_id, week_ending, bank_account_id, bank_account_name, "
                            "opening, received, spent, closing) VALUES (?, ?, 'b', 'Main', ?, ?, ?, ?)",
                            [(OTHER, wk(k), "1000.00", "900.00", "600.00", "1300.00") for k in range(4)])


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """The standard rows, built once: these tests only read."""
    path = tmp_path_factory.mktemp("analysis") / "data" / "xero.duckdb"
    fill(path)
    return path


def by_metric(df: pl.DataFrame) -> dict[str, dict]:
    return {r["metric"]: r for r in df.iter_rows(named=True)}


# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_weekly_pnl_is_decimal_and_leaves_out_the_unfinished_week(db):
    """Issue 23 §3: complete weeks only by default (the week under way would plunge every trend at its
    right edge); asked for, it comes last, named "to date", never as a finished week."""
    df = an.weekly_pnl(db, today=TODAY)
    assert df.height == 60 and df["complete"].all() and df["week_ending"].max() == LATEST
    assert {df.schema[m] for m in an.METRICS} == {pl.Decimal(18, 2)}
    assert df["week"][-1] == "w/e Sat 21 Nov 2026"
    with_current = an.weekly_pnl(db, today=TODAY, include_current=True)
    last_two = with_current.tail(2).select("week_ending", "net_profit", "complete", "week").rows()
    assert last_two == [(LATEST, D("459.50"), True, "w/e Sat 21 Nov 2026"),
                        (date(2026, 11, 28), D("85.00"), False, "Sat 28 Nov 2026 (to date)")]
    assert an.weekly_pnl(db, weeks=3, today=TODAY).height == 3
    # every trend function: complete weeks only
    assert an.margins(db, today=TODAY)["week_ending"].max() == LATEST
    assert an.cash_position(db, today=TODAY)["week_ending"].max() == LATEST
    assert an.revenue_trend(db, today=TODAY)["week_ending"].max() == LATEST
    assert an.revenue_trend(db, today=TODAY, include_current=True)["week_ending"].max() == date(2026, 11, 28)
    assert an.rolling_averages(db, today=TODAY)["week_ending"].max() == LATEST


def test_headline_figures_against_last_week_and_last_year(db):
    """Issue 23 §5: the Data page's first figures, from analysis: income, gross margin %, operating
    expenses, net profit, cash at bank, with the change on the week before and the same week last year."""
    h = by_metric(an.headline(db, today=TODAY))
    assert list(h) == ["income", "gross_margin_pct", "operating_expenses", "net_profit", "cash_at_bank"]
    inc = h["income"]
    assert (inc["week_ending"], inc["latest"], inc["previous_week"], inc["change"], inc["change_pct"]) == \
        (LATEST, D("1500.00"), D("1200.00"), D("300.00"), 25.0)
    assert (inc["same_week_last_year"], inc["change_vs_last_year"], inc["change_vs_last_year_pct"]) == \
        (D("1250.00"), D("250.00"), 20.0)
    gm = h["gross_margin_pct"]     # 900 / 1500 = 60.00 %; 700 / 1200 = 58.33 %; last year 750 / 1250 = 60.00 %
    assert (gm["unit"], gm["latest"], gm["previous_week"], gm["change"], gm["change_pct"]) == \
        ("percent", D("60.00"), D("58.33"), D("1.67"), None)
    assert gm["change_vs_last_year"] == D("0.00")
    assert (h["operating_expenses"]["latest"], h["operating_expenses"]["change"]) == (D("450.50"), D("50.50"))
    assert (h["net_profit"]["latest"], h["net_profit"]["previous_week"]) == (D("459.50"), D("300.00"))
    cash = h["cash_at_bank"]        # accounts A + B: 18,500 + 6,500; the week before 26,000 + 0
    assert (cash["latest"], cash["previous_week"], cash["change"]) == (D("25000.00"), D("26000.00"), D("-1000.00"))
    assert cash["same_week_last_year"] is None and cash["change_vs_last_year"] is None


def test_latest_week_comparison_to_the_cent(db):
    df = an.latest_week_comparison(db, today=TODAY)
    assert df["metric"].to_list() == list(an.METRICS)
    assert df.schema["latest"] == pl.Decimal(18, 2) and df.schema["change_pct"] == pl.Float64
    inc, net = by_metric(df)["income"], by_metric(df)["net_profit"]
    assert (inc["latest"], inc["previous_week"], inc["change"], inc["change_pct"]) == (D("1500.00"), D("1200.00"), D("300.00"), 25.0)
    assert (inc["same_week_last_year"], inc["change_vs_last_year"], inc["change_vs_last_year_pct"]) == (D("1250.00"), D("250.00"), 20.0)
    # (1200.00 + 1000.01 + 1000.01 + 1000.00) / 4 = 1050.005 -> 1050.01 (half up)
    assert (inc["avg_4_weeks"], inc["change_vs_avg"], inc["change_vs_avg_pct"]) == (D("1050.01"), D("449.99"), 42.9)
    assert (net["latest"], net["previous_week"], net["change_pct"]) == (D("459.50"), D("300.00"), 53.2)
    assert (net["same_week_last_year"], net["avg_4_weeks"], net["change_vs_avg"]) == (D("450.00"), D("300.01"), D("159.49"))
    assert by_metric(df)["other_income"]["change_pct"] is None, "no percentage against zero"
    weeks = an.comparison_weeks(LATEST)
    assert weeks["last_year"] == date(2025, 11, 22) and weeks["last_year"].weekday() == LATEST.weekday()


def test_comparison_without_a_year_of_history_leaves_last_year_empty(settings):
    fill(settings.snapshot_path, skip_weeks=(52,))
    df = an.latest_week_comparison(settings, today=TODAY)
    assert by_metric(df)["income"]["same_week_last_year"] is None
    assert by_metric(df)["income"]["previous_week"] == D("1200.00")


def test_explicit_week_and_the_current_week_when_asked(db):
    df = an.latest_week_comparison(db, week_ending=date(2026, 11, 28))
    assert by_metric(df)["income"]["latest"] == D("100.00") and by_metric(df)["income"]["previous_week"] == D("1500.00")
    with pytest.raises(an.NoDataYet, match="week ending 2020-01-04"):
        an.latest_week_comparison(db, week_ending=date(2020, 1, 4))


def test_margins_and_rolling_margins(db):
    df = an.margins(db, today=TODAY).filter(pl.col("week_ending") == LATEST).row(0, named=True)
    assert (df["gross_margin_pct"], df["net_margin_pct"]) == (60.0, 30.6)
    # sums over 4 weeks: gross 2800.02 / income 4700.02
    assert df["gross_margin_pct_4w"] == 59.6
    assert df["complete"] is True


def test_rolling_averages_are_exact_and_respect_gaps(settings):
    fill(settings.snapshot_path, skip_weeks=(30,))
    df = an.rolling_averages(settings, window=4)
    at = {r["week_ending"]: r for r in df.iter_rows(named=True)}
    assert at[LATEST]["income_avg_4w"] == D("1175.01")  # 4700.02 / 4 = 1175.005
    assert df.schema["income_avg_4w"] == pl.Decimal(18, 2)
    # weeks whose 4-week window includes the missing week have no average (no silent 3-week mean)
    assert [at[wk(k)]["income_avg_4w"] for k in (26, 27, 28, 29, 31)] == [D("1000.00"), None, None, None, D("1000.00")]
    assert at[wk(59)]["income_avg_4w"] is None, "not a full window yet"


def test_revenue_mix_by_region_and_job_type(db):
    df = an.revenue_mix(db, weeks=4, today=TODAY)
    assert df.select("region", "revenue_type", "invoice_count", "subtotal", "total", "share_pct").rows() == [
        ("Sydney", "Residential", 5, D("900.00"), D("990.00"), 64.3),
        ("Newcastle", "Commercial", 1, D("400.00"), D("440.00"), 28.6),
        ("Sydney", "Commercial", 1, D("100.00"), D("110.00"), 7.1),
    ]
    assert (df["from_week_ending"][0], df["to_week_ending"][0]) == (wk(3), LATEST)
    by_region = an.revenue_mix(db, by="region", today=TODAY)
    assert by_region.select("region", "subtotal", "share_pct").rows() == [("Sydney", D("1000.00"), 71.4), ("Newcastle", D("400.00"), 28.6)]
    assert an.revenue_mix(db, weeks=5, today=TODAY)["subtotal"].sum() == D("11399.00")
    with pytest.raises(an.AnalysisError, match="region"):
        an.revenue_mix(db, by="customer")


def test_revenue_trend_long_format(db):
    df = an.revenue_trend(db, by="revenue_type", weeks=2)
    assert df.select("week_ending", "revenue_type", "subtotal").rows() == [
        (LATEST, "Commercial", D("400.00")), (LATEST, "Residential", D("600.00")),
        (date(2026, 11, 28), "Residential", D("50.00")),
    ]


def test_cash_position_and_runway_when_burning(db):
    cash = an.cash_position(db)
    assert cash.filter(pl.col("week_ending") == LATEST).select("accounts", "closing", "net_change").row(0) == (2, D("25000.00"), D("-1000.00"))
    assert an.cash_position(db, by_account=True).filter(pl.col("week_ending") == LATEST).height == 2
    r = an.cash_runway(db, today=TODAY).row(0, named=True)
    # outflows 1000, 2000, 500, 500 -> 1000.00 a week; 25000 / 1000 = 25 weeks
    assert (r["closing_cash"], r["avg_weekly_net_outflow"], r["weeks_of_runway"], r["status"]) == (D("25000.00"), D("1000.00"), 25.0, "burning cash")
    assert "25.0 weeks" in r["explanation"]
    r3 = an.cash_runway(db, weeks=2, today=TODAY).row(0, named=True)
    assert (r3["avg_weekly_net_outflow"], r3["weeks_of_runway"]) == (D("1500.00"), 16.7)


def test_runway_for_a_profitable_business_says_not_burning(settings):
    fill(settings.snapshot_path, tenants=(ORG, OTHER))
    r = an.cash_runway(settings, OTHER, today=TODAY).row(0, named=True)
    assert r["status"] == "not burning cash" and r["weeks_of_runway"] is None
    assert r["avg_weekly_net_outflow"] == D("-300.00")
    assert "not burning cash" in r["explanation"] and "300.00" in r["explanation"]


def test_top_account_movers(db):
    df = an.top_account_movers(db, n=5, today=TODAY)
    assert df.select("account_name", "previous", "latest", "change", "effect_on_profit").rows() == [
        ("Sales", D("1200.00"), D("1500.00"), D("300.00"), D("300.00")),
        ("Cost of Goods Sold", D("500.00"), D("600.00"), D("100.00"), D("-100.00")),
        ("Rent", D("320.00"), D("400.00"), D("80.00"), D("-80.00")),
        ("Repairs", D("80.00"), D("0.00"), D("-80.00"), D("80.00")),
        ("Wages", D("0.00"), D("50.50"), D("50.50"), D("-50.50")),
    ]
    assert df["change_pct"].to_list() == [25.0, 20.0, 25.0, -100.0, None]
    assert df["week_ending"][0] == LATEST and df["previous_week_ending"][0] == wk(1)
    assert an.top_account_movers(db, n=10, today=TODAY).height == 6


# -- choosing the organisation, and no data ---------------------------------------------------


def test_single_organisation_is_the_default_practice_tenants_ignored(db):
    orgs = an.organisations(db)
    assert orgs["tenant_id"].to_list() == [ORG], "practice manager and disconnected-without-data are not organisations"
    assert an.pick_tenant(db) == ORG


@pytest.mark.slow
def test_several_organisations_need_a_choice_never_the_first(settings):
    fill(settings.snapshot_path, tenants=(ORG, OTHER))
    with pytest.raises(an.ChooseOrganisation) as err:
        an.weekly_pnl(settings)
    msg = str(err.value)
    assert "2 organisations" in msg and ORG in msg and OTHER in msg and "Alpha Pty" in msg and "Beta Ltd" in msg
    assert an.weekly_pnl(settings, OTHER).height == 4
    with pytest.raises(an.UnknownOrganisation, match="(?s)org-nope.*Alpha Pty"):
        an.weekly_pnl(settings, "org-nope")


@pytest.mark.slow
def test_several_organisations_open_on_the_practice_ledger_an_admin_named(settings):
    """A practice's notebook opens on its own books once an admin has named them (issue 25's role);
    a role only suggested, or two ledgers, still asks."""
    import duckdb

    fill(settings.snapshot_path, tenants=(ORG, OTHER))
    con = duckdb.connect(str(settings.snapshot_path))
    try:
        con.execute("UPDATE connections SET role = 'client-organisation' WHERE tenant_id = ?", [ORG])
        with pytest.raises(an.ChooseOrganisation, match="client-organisation"):
            an.pick_tenant(settings)
        con.execute("UPDATE connections SET role = 'practice-ledger' WHERE tenant_id = ?", [OTHER])
    finally:
        con.close()
    assert an.pick_tenant(settings) == OTHER
    assert an.weekly_pnl(settings).height == an.weekly_pnl(settings, OTHER).height


def test_data_status_without_a_database_explains_and_creates_nothing(tmp_path):
    st = an.data_status(tmp_path / "empty")
    assert not st.exists and not st.has_data
    assert "python -m xero_core demo" in str(st) and "XERO_DATA_DIR" in str(st)
    assert not (tmp_path / "empty").exists()
    with pytest.raises(an.NoDataYet) as err:
        st.require()
    assert err.value._render_traceback_()[0].startswith("NoDataYet: No data yet")
    with pytest.raises(an.NoDataYet, match="no Ledgerlink database"):
        an.weekly_pnl(tmp_path / "empty")


def test_data_status_with_connections_but_no_sync(settings):
    with connect(settings.snapshot_path) as con:
        con.execute("INSERT INTO connections (tenant_id, tenant_name, tenant_type, status) VALUES ('t', 'Fresh Co', 'ORGANISATION', 'connected')")
    st = an.data_status(settings)
    assert st.exists and not st.has_data and "Fresh Co" in str(st) and "Sync now" in str(st)
    with pytest.raises(an.NoDataYet, match="no weekly P&L yet"):
        an.weekly_pnl(settings)


def test_data_status_with_data(db):
    st = an.data_status(db)
    assert st.has_data and "Alpha Pty" in str(st) and "61 weeks" in str(st)


def test_locate_database_resolves_from_the_repo_root_not_the_notebook_dir(tmp_path):
    root = tmp_path / "repo"
    (root / "xero_core").mkdir(parents=True)
    (root / "notebooks").mkdir()
    (root / "pyproject.toml").write_text("[project]\nname='x'\n")
    assert an.locate_database(root / "notebooks", env={}) == root / "data" / "xero.duckdb"
    (root / ".env").write_text("XERO_DATA_DIR=elsewhere/d\n")
    assert an.locate_database(root / "notebooks", env={}) == root / "elsewhere" / "d" / "xero.duckdb"
    assert an.locate_database(root / "notebooks", env={"XERO_DATA_DIR": str(tmp_path / "abs")}) == tmp_path / "abs" / "xero.duckdb"


def test_reads_are_brief_and_read_only(db):
    an.latest_week_comparison(db, today=TODAY)
    an.top_account_movers(db, today=TODAY)
    # DuckDB locks the file per process: another process can write only if we closed it.
    code = f"import duckdb; c = duckdb.connect({str(db)!r}); c.execute('CHECKPOINT'); c.close(); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.slow
def test_each_organisation_has_its_own_currency_today_and_weeks(tmp_path, monkeypatch):
    """Issue 23 §2/§3: an NZ and a UK organisation in one database. Their currency comes from
    `organisations`, and "complete" follows each one's own zone: at 14:00 UTC on Saturday 5 Dec 2026
    Auckland is already on Sunday (the week ending 5 Dec is done), London still on Saturday. Also across
    NZ's DST change (27 Sep 2026, 02:00 local) and at a year end."""
    import time_machine
    from datetime import datetime, timezone

    monkeypatch.delenv("XERO_TODAY", raising=False)
    path = tmp_path / "data" / "xero.duckdb"
    weeks = [date(2026, 9, 19), date(2026, 9, 26), date(2026, 11, 28), date(2026, 12, 5), date(2027, 1, 2)]
    with connect(path) as con:
        for t, name, cur, tz in ((ORG, "Kauri Coast", "NZD", "Pacific/Auckland"), (OTHER, "Thames Valley", "GBP", "Europe/London")):
            con.execute("INSERT INTO connections (tenant_id, tenant_name, tenant_type, status) VALUES (?, ?, 'ORGANISATION', 'connected')",
                        [t, name])
            con.execute("INSERT INTO organisations (tenant_id, name, base_currency, timezone, financial_year_end_month, "
                        "financial_year_end_day) VALUES (?, ?, ?, ?, 3, 31)", [t, name, cur, tz])
            con.executemany("INSERT INTO financial_weekly (tenant_id, week_ending, week_start, income, cost_of_sales, gross_profit, "
                            "other_income, operating_expenses, net_profit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [pnl_row(t, w, "100.00", "0.00", "0.00", "0.00") for w in weeks])
    assert (an.currency(path, ORG), an.currency(path, OTHER)) == ("NZD", "GBP")
    assert an.organisation(path, ORG)["timezone"] == "Pacific/Auckland"

    def latest(t, at):
        with time_machine.travel(at, tick=False):
            return an.weekly_pnl(path, t)["week_ending"].max(), an.today(path, t)

    sat = datetime(2026, 12, 5, 14, 0, tzinfo=timezone.utc)
    assert latest(ORG, sat) == (date(2026, 12, 5), date(2026, 12, 6))
    assert latest(OTHER, sat) == (date(2026, 11, 28), date(2026, 12, 5))
    # the Saturday before NZ's clocks go forward: 11:30 UTC is 23:30 (NZST, +12), 12:30 UTC is 00:30 Sunday
    assert latest(ORG, datetime(2026, 9, 26, 11, 30, tzinfo=timezone.utc))[0] == date(2026, 9, 19)
    assert latest(ORG, datetime(2026, 9, 26, 12, 30, tzinfo=timezone.utc))[0] == date(2026, 9, 26)
    # a week across the year end: 2 Jan 2027 is done on Sunday 3 Jan in Auckland (NZDT, +13)
    assert latest(ORG, datetime(2027, 1, 2, 11, 30, tzinfo=timezone.utc))[0] == date(2027, 1, 2)
    assert latest(OTHER, datetime(2027, 1, 2, 11, 30, tzinfo=timezone.utc))[0] == date(2026, 12, 5)
    assert an.financial_year(path, ORG, on=date(2027, 1, 2)) == (date(2026, 4, 1), date(2027, 3, 31))
    assert an.week_label(date(2027, 1, 2)) == "w/e Sat 2 Jan 2027"


@pytest.mark.slow
def test_table_reads_as_a_finance_lead_reads_it(db):
    """Issue 23 §5: notebook tables with readable headers (and the currency), sections as the report
    names them, blanks rather than null, names without quotes."""
    html = an.table(an.top_account_movers(db, today=TODAY), "NZD").to_html()
    assert "Effect on profit (NZD)" in html and "Operating expenses" in html and "operating_expenses" not in html
    assert "null" not in html and "&quot;" not in html and "None" not in html and "nan" not in html
