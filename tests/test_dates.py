"""Dates on purpose (issue 13 §1): month ends, the Australian financial year end, the year end,
Sydney's DST changes and 29 February.

* The pure functions (reporting weeks, the analysis comparisons, the scheduler's daily slot) at those
  dates, spelled out: they run in every suite.
* End to end at the test date (`test_today`, so marked `dates`): today in the default run, and each
  date scripts/test pins (LEDGERLINK_TEST_TODAY). A small organisation synced in process; the CLI's
  sync in a subprocess, which gets the date only through XERO_TODAY.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from xero_core import analysis as an
from xero_core import db, oauth
from xero_core.fake.app import FakeXero
from xero_core.fake.clock import FakeClock
from xero_core.scheduling import catch_up_due, daily_slot, last_daily_slot, next_daily_run
from xero_core.settings import WEEKDAYS, load_settings
from xero_core.engine import Engine
from xero_core.sync.weeks import recent_weeks, week_ending_for, week_start

from test_sync_e2e import small_org

ROOT = Path(__file__).resolve().parents[1]
SYDNEY = ZoneInfo("Australia/Sydney")
UTC = timezone.utc
D = date.fromisoformat

# ---------------------------------------------------------------------------------------------
# Reporting weeks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("day, saturday_week", [
    ("2026-12-27", ("2026-12-27", "2027-01-02")),  # the week that spans the year end (Sun..Sat)
    ("2026-12-31", ("2026-12-27", "2027-01-02")),
    ("2027-01-01", ("2026-12-27", "2027-01-02")),
    ("2027-01-02", ("2026-12-27", "2027-01-02")),  # the week's last day is its own week ending
    ("2027-01-03", ("2027-01-03", "2027-01-09")),
    ("2028-02-29", ("2028-02-27", "2028-03-04")),  # the week holding 29 February has 7 days too
    ("2028-02-28", ("2028-02-27", "2028-03-04")),
    ("2028-03-01", ("2028-02-27", "2028-03-04")),
    ("2027-06-30", ("2027-06-27", "2027-07-03")),  # the financial year ends inside a week
    ("2027-07-01", ("2027-06-27", "2027-07-03")),
    ("2026-10-04", ("2026-10-04", "2026-10-10")),  # Sydney's DST starts (dates know no hours)
    ("2027-04-04", ("2027-04-04", "2027-04-10")),  # and ends
    ("2026-10-31", ("2026-10-25", "2026-10-31")),  # a month end on a Saturday
])
def test_a_week_is_seven_days_ending_on_the_configured_weekday(day, saturday_week):
    start, end = map(D, saturday_week)
    assert week_ending_for(D(day)) == end and week_start(end) == start
    assert (end - start).days == 6 and end.weekday() == WEEKDAYS.index("saturday")
    for weekday in WEEKDAYS:  # any configured week end: the week holds the day and ends on that weekday
        we = week_ending_for(D(day), weekday)
        assert we.weekday() == WEEKDAYS.index(weekday) and week_start(we) <= D(day) <= we


@pytest.mark.parametrize("today", ["2026-12-31", "2027-01-01", "2028-02-29", "2028-03-01", "2027-07-01",
                                   "2026-10-04", "2027-04-04", "2026-10-31"])
def test_recent_weeks_tile_the_calendar_without_gaps(today):
    weeks = recent_weeks(D(today), 60)
    assert weeks[-1] == week_ending_for(D(today)) and len(weeks) == 60 == len(set(weeks))
    days = [week_start(weeks[0]) + timedelta(days=i) for i in range(60 * 7)]
    assert [week_ending_for(d) for d in days] == [w for w in weeks for _ in range(7)]  # every day in one week


def test_same_week_last_year_keeps_the_weekday_across_leap_years():
    for latest in (D("2028-03-04"), D("2029-03-03"), D("2027-01-02"), D("2028-12-30")):
        w = an.comparison_weeks(latest)
        assert w["last_year"] == latest - timedelta(weeks=52) and w["last_year"].weekday() == latest.weekday()
        assert w["previous"] == latest - timedelta(days=7) and w["average_to"] == w["previous"]
        assert w["average_from"] == latest - timedelta(weeks=4)
    # 52 weeks is 364 days: the week holding 29 Feb 2028 compares with the week holding 1 Mar 2027
    assert an.comparison_weeks(D("2028-03-04"))["last_year"] == D("2027-03-06")


# ---------------------------------------------------------------------------------------------
# The scheduler's daily slot (Australia/Sydney: DST starts 02:00 first Sunday of October, ends
# 03:00 first Sunday of April)
# ---------------------------------------------------------------------------------------------


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize("day, sync_time, want_utc", [
    ("2026-10-03", "06:00", "2026-10-02T20:00"),  # AEST, +10
    ("2026-10-04", "06:00", "2026-10-03T19:00"),  # AEDT, +11: the change was at 02:00 that night
    ("2026-10-04", "02:30", "2026-10-03T16:30"),  # in the gap: runs at 03:30 AEDT (same offset as before)
    ("2026-10-04", "01:59", "2026-10-03T15:59"),
    ("2026-10-04", "03:00", "2026-10-03T16:00"),  # the first minute after the gap (also 16:00Z)
    ("2027-04-04", "02:30", "2027-04-03T15:30"),  # twice that night: the first (AEDT) one
    ("2027-04-04", "06:00", "2027-04-03T20:00"),  # AEST again
    ("2027-04-03", "06:00", "2027-04-02T19:00"),
    ("2028-02-29", "06:00", "2028-02-28T19:00"),
    ("2026-12-31", "23:30", "2026-12-31T12:30"),
    ("2027-01-01", "00:15", "2026-12-31T13:15"),  # a new year in Sydney, still the old one in UTC
    ("2027-07-01", "06:00", "2027-06-30T20:00"),
])
def test_daily_slot_is_the_wall_clock_time_in_sydney(day, sync_time, want_utc):
    assert daily_slot(D(day), sync_time, "Australia/Sydney") == _utc(want_utc)


@pytest.mark.parametrize("now_utc, want", [
    ("2026-10-02T21:00", "2026-10-03T19:00"),  # Sat 07:00 AEST -> Sun 06:00 AEDT: 22 h later
    ("2026-10-03T15:30", "2026-10-03T19:00"),  # Sun 01:30 AEST, just before the change
    ("2026-10-03T16:00", "2026-10-03T19:00"),  # Sun 03:00 AEDT, just after it
    ("2027-04-03T19:30", "2027-04-03T20:00"),  # Sun 05:30 AEST (the change was at 03:00 AEDT)
    ("2027-04-02T20:00", "2027-04-03T20:00"),  # Sat 07:00 AEDT -> Sun 06:00 AEST: 24 h later
    ("2026-12-31T20:00", "2027-01-01T19:00"),  # 1 Jan 07:00 AEDT -> 2 Jan 06:00
    ("2028-02-28T19:00", "2028-02-29T19:00"),  # exactly at a slot: the next one, on 29 Feb
    ("2027-06-30T19:59", "2027-06-30T20:00"),
])
def test_next_daily_run_across_dst_year_end_and_leap_day(now_utc, want):
    assert next_daily_run(_utc(now_utc), "06:00", "Australia/Sydney") == _utc(want)


def test_consecutive_daily_runs_are_23_and_25_hours_apart_at_the_dst_changes():
    def gaps(first: str, n: int) -> list[float]:
        t, out = _utc(first), []
        for _ in range(n):
            nxt = next_daily_run(t, "06:00", "Australia/Sydney")
            out.append((nxt - t).total_seconds() / 3600)
            t = nxt
        return out

    # slots from 6:00 on Thu 1 Oct 2026 (AEST): the one on Sunday 4 Oct comes 23 h after Saturday's
    assert gaps("2026-09-30T20:00", 6) == [24, 24, 23, 24, 24, 24]
    assert gaps("2027-03-31T19:00", 6) == [24, 24, 25, 24, 24, 24]  # and 25 h in April
    for day in ("2026-10-04", "2027-04-04"):  # every slot is at 06:00 on the wall clock
        for k in range(-3, 4):
            slot = daily_slot(D(day) + timedelta(days=k), "06:00", "Australia/Sydney")
            assert slot.astimezone(SYDNEY).time() == time(6, 0)


def test_catch_up_counts_a_missed_run_once_across_the_dst_change():
    last = _utc("2026-10-02T20:00")  # Sat 3 Oct 06:00 AEST ran
    assert not catch_up_due(last, _utc("2026-10-03T18:59"), "06:00", "Australia/Sydney")  # Sun 05:59 AEDT
    assert catch_up_due(last, _utc("2026-10-03T19:00"), "06:00", "Australia/Sydney")  # Sun 06:00 AEDT passed
    assert last_daily_slot(_utc("2026-10-03T19:00"), "06:00", "Australia/Sydney") == _utc("2026-10-03T19:00")
    last = _utc("2027-04-03T20:00")  # Sun 4 Apr 06:00 AEST ran
    assert not catch_up_due(last, _utc("2027-04-04T19:59"), "06:00", "Australia/Sydney")
    assert catch_up_due(last, _utc("2027-04-04T20:00"), "06:00", "Australia/Sydney")


# ---------------------------------------------------------------------------------------------
# End to end at the test date
# ---------------------------------------------------------------------------------------------

CENT = Decimal("0.01")


def _rows(s, sql, *args):
    with db.connect(s.db_path, read_only=True) as con:
        return con.execute(sql, list(args)).fetchall()


def _settings(tmp: Path):
    return load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp / "data"),
                          "XERO_ENCRYPTION_KEY": secrets.token_hex(32)})


@pytest.mark.slow
def test_sync_and_analysis_agree_with_the_fake_at_the_test_date(test_today, tmp_path):
    """The fake's data ends the day before `test_today`; the sync's weeks, the stored figures and the
    analysis functions' "latest complete week" all follow from that date and nothing else."""
    s = _settings(tmp_path)
    clock = FakeClock(test_today)  # 09:00 UTC: the same date in Sydney (19:00 or 20:00)
    fake = FakeXero(seed=29, today=test_today, clock=clock, invoices=60, org_factory=small_org)
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)),
                                     transport=fake.transport(), clock=clock)
    org_id = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")
    res = Engine(s, transport=fake.transport(), clock=clock).sync(org_id, weeks=6)  # "today" from the clock
    assert res.ok, res.to_dict()
    org = fake.org(org_id)
    weeks = recent_weeks(test_today, 6, s.week_ends_on)
    assert weeks[-1] >= test_today > weeks[-2]

    got = {r[0]: r[1:] for r in _rows(s, "SELECT week_ending, income, cost_of_sales, other_income, operating_expenses, "
                                         "net_profit FROM financial_weekly WHERE tenant_id = ?", org_id)}
    assert sorted(got) == weeks
    for we in weeks:
        truth = org.profit_and_loss(week_start(we), we)
        assert got[we] == tuple(truth[k] for k in ("income", "cost_of_sales", "other_income", "operating_expenses",
                                                   "net_profit")), we
    cash = {}
    for we, name, *vals in _rows(s, "SELECT week_ending, bank_account_name, opening, received, spent, closing "
                                    "FROM cash_position_weekly WHERE tenant_id = ?", org_id):
        cash.setdefault(we, {})[name] = dict(zip(("opening", "received", "spent", "closing"), vals))
    assert cash == {we: org.bank_summary(week_start(we), we) for we in weeks}

    # revenue_weekly: every sales invoice (less credit notes) in the week holding its date
    want = {}
    we = week_ending_for(org.start, s.week_ends_on)
    while week_start(we) <= test_today:
        for (region, job), v in org.sales_revenue(week_start(we), we).items():
            want[(we, region, job)] = (v["subtotal"], v["total"])
        we += timedelta(days=7)
    got_rev = {(r[0], r[1], r[2]): (r[3], r[4]) for r in _rows(
        s, "SELECT week_ending, region, revenue_type, subtotal, total FROM revenue_weekly WHERE tenant_id = ?", org_id)}
    assert got_rev == want and want
    assert max(k[0] for k in got_rev) <= weeks[-1]  # nothing dated after yesterday

    # the analysis functions: the current week is still filling up, the one before is the latest complete
    latest = week_ending_for(test_today, s.week_ends_on) - timedelta(days=7)
    assert an.latest_week(s) == latest
    pnl = an.weekly_pnl(s)  # complete weeks only by default (issue 23): the week under way is left out
    assert dict(zip(pnl["week_ending"].to_list(), pnl["complete"].to_list())) == {w: True for w in weeks[:-1]}
    pnl = an.weekly_pnl(s, include_current=True)  # asked for, it comes last and is not complete
    assert dict(zip(pnl["week_ending"].to_list(), pnl["complete"].to_list())) == {w: w != weeks[-1] for w in weeks}
    comp = {r["metric"]: r for r in an.latest_week_comparison(s).iter_rows(named=True)}["net_profit"]
    assert (comp["latest"], comp["previous_week"]) == (got[latest][4], got[latest - timedelta(days=7)][4])
    tie = _rows(s, "SELECT week_ending FROM pnl_tieout_weekly WHERE tenant_id = ? ORDER BY 1", org_id)
    assert [r[0] for r in tie] == weeks


@pytest.mark.slow
def test_the_morning_after_a_week_ends_in_sydney_the_week_is_complete_on_a_utc_computer(test_today, tmp_path,
                                                                                        monkeypatch):
    """The scheduler syncs at 06:00 in XERO_TIMEZONE (Sydney), when a computer or container on UTC
    still has the day before: the analysis functions' "complete weeks" must use the sync's date
    (XERO_TIMEZONE's), not the computer's, or every Sunday morning's report shows the week before."""
    import time as _time

    import time_machine

    monkeypatch.setenv("TZ", "UTC")  # the computer's zone
    _time.tzset()
    monkeypatch.delenv("XERO_TODAY", raising=False)  # this test sets the instant itself
    try:
        saturday = week_ending_for(test_today)  # the week holding the test date ends then
        morning = datetime.combine(saturday + timedelta(days=1), time(7, 0), tzinfo=SYDNEY)
        assert morning.astimezone(UTC).date() == saturday and date.today() != saturday + timedelta(days=1)
        s = _settings(tmp_path)
        clock = FakeClock(morning)
        fake = FakeXero(seed=37, today=saturday + timedelta(days=1), clock=clock, invoices=30, org_factory=small_org)
        tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)),
                                         transport=fake.transport(), clock=clock)
        org_id = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")
        assert Engine(s, transport=fake.transport(), clock=clock).sync(org_id, only="pnl", weeks=2).ok
        assert sorted(r[0] for r in _rows(s, "SELECT week_ending FROM financial_weekly")) == \
            [saturday, saturday + timedelta(days=7)]  # the sync's today: Sunday, in Sydney
        with time_machine.travel(morning.astimezone(UTC), tick=False):  # UTC: a ZoneInfo would set TZ
            assert date.today() == saturday  # the computer: still Saturday
            assert an.latest_week(s) == saturday  # Sydney: the week ended yesterday
            pnl = an.weekly_pnl(s)  # complete weeks only: Saturday's week is in (on UTC it would not be)
            assert dict(zip(pnl["week_ending"].to_list(), pnl["complete"].to_list())) == {saturday: True}
            pnl = an.weekly_pnl(s, include_current=True)
            assert dict(zip(pnl["week_ending"].to_list(), pnl["complete"].to_list())) == \
                {saturday: True, saturday + timedelta(days=7): False}
            assert an.latest_week(s.db_path) == saturday  # from a path (a notebook): XERO_TIMEZONE's default
    finally:
        monkeypatch.undo()
        _time.tzset()


@pytest.mark.slow
def test_the_cli_in_a_subprocess_syncs_the_weeks_of_the_test_date(test_today, tmp_path):
    """A subprocess cannot share this process's clock: XERO_TODAY (set by test_today when a date
    is pinned) moves its clock, and its sync must pick the weeks around that date."""
    from xero_core.commands.sync import connect_via_consent_form
    from xero_core.fake.server import serve

    fake = FakeXero(seed=31, today=test_today, clock=FakeClock(test_today), invoices=40, org_factory=small_org)
    server = serve(fake)
    try:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("XERO_") or k == "XERO_TODAY"},
               "XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
               "XERO_ENCRYPTION_KEY": secrets.token_hex(32), "XERO_ENV_FILE": "/dev/null",
               **fake.settings_env(server.url)}
        s = load_settings(env)
        org_id = next(t["tenant_id"] for t in connect_via_consent_form(s) if t["tenant_type"] == "ORGANISATION")
        sydney_today = lambda: datetime.now(UTC).astimezone(SYDNEY).date()  # noqa: E731 (what the sync uses)
        before = sydney_today()
        out = subprocess.run([sys.executable, "-m", "xero_core", "sync", "--tenant", org_id, "--only", "pnl",
                              "--weeks", "3", "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=120)
        after = sydney_today()
    finally:
        server.close()
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["ok"]
    synced = sorted(r[0] for r in _rows(s, "SELECT week_ending FROM financial_weekly WHERE tenant_id = ?", org_id))
    assert synced in (recent_weeks(before, 3, s.week_ends_on), recent_weeks(after, 3, s.week_ends_on)), \
        (synced, before, after)
    assert before == test_today  # the test date, in Sydney
    org = fake.org(org_id)
    income = dict(_rows(s, "SELECT week_ending, income FROM financial_weekly WHERE tenant_id = ?", org_id))
    assert income == {we: org.profit_and_loss(week_start(we), we)["income"] for we in synced}


# ---------------------------------------------------------------------------------------------
# XERO_TODAY: the product's pin for processes a test cannot hand a clock to
# ---------------------------------------------------------------------------------------------


def test_xero_today_moves_the_system_clock_onto_that_date_in_xero_timezone(monkeypatch):
    from xero_core.clock import SystemClock, today

    monkeypatch.delenv("XERO_TODAY", raising=False)
    monkeypatch.delenv("XERO_TIMEZONE", raising=False)
    c = SystemClock()
    assert abs(c.time() - datetime.now(UTC).timestamp()) < 5
    assert today() == datetime.now(SYDNEY).date()  # XERO_TIMEZONE's date, not the computer's
    for pin in ("2028-02-29", "2026-10-04", "2027-04-04", "2026-12-31"):
        monkeypatch.setenv("XERO_TODAY", pin)
        now, real = c.now().astimezone(SYDNEY), datetime.now(SYDNEY)
        assert now.date() == D(pin) and today() == D(pin)
        wall = lambda t: t.hour * 3600 + t.minute * 60 + t.second  # noqa: E731
        in_gap = pin == "2026-10-04" and real.hour == 2  # 02:xx does not exist that night in Sydney
        assert abs(wall(now) - wall(real)) < 5 or in_gap  # the same wall-clock time, on that date
        t0 = c.time()
        assert c.time() >= t0  # it runs on, and the shift stays put (never back to 00:00 at midnight)
    monkeypatch.setenv("XERO_TIMEZONE", "Europe/London")
    monkeypatch.setenv("XERO_TODAY", "2027-07-01")
    assert c.now().astimezone(ZoneInfo("Europe/London")).date() == D("2027-07-01")
    monkeypatch.setenv("XERO_TODAY", "")
    assert abs(c.time() - datetime.now(UTC).timestamp()) < 5


def test_a_malformed_xero_today_stops_with_a_sentence(monkeypatch, tmp_path):
    from xero_core.settings import SettingsError

    monkeypatch.setenv("XERO_TODAY", "29/02/2028")
    monkeypatch.setenv("XERO_MOCK_MODE", "true")
    monkeypatch.setenv("XERO_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("XERO_ENCRYPTION_KEY", secrets.token_hex(32))
    monkeypatch.setenv("XERO_ENV_FILE", "/dev/null")
    with pytest.raises(SettingsError, match=r"XERO_TODAY='29/02/2028' must be a date as YYYY-MM-DD"):
        load_settings()


@pytest.mark.slow
def test_the_apps_ago_counts_from_the_products_clock_under_a_pinned_day(monkeypatch):
    """A workshop pins XERO_TODAY; stamps are written by the product's clock, so "3 h ago" must be
    counted from that clock too (the computer's clock put them months in the future)."""
    from app_support.widgets import when
    from xero_core.clock import SYSTEM_CLOCK

    monkeypatch.setenv("XERO_TODAY", "2028-02-29")
    stamp = SYSTEM_CLOCK.now() - timedelta(hours=3, minutes=5)
    assert stamp.date() in (date(2028, 2, 28), date(2028, 2, 29))
    assert when(stamp.isoformat()).endswith("(3 h ago)")
