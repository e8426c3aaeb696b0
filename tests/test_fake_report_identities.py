"""Accounting identities over every report the fake serves, at awkward dates (issue 13 §3).

Xero's reports obey identities whatever the date: a trial balance balances in both column pairs
(the month's movement, and the year to date); a balance sheet's assets equal liabilities plus
equity; a P&L's net profit is its sections' rows; a bank summary's closing balance is its opening
plus received less spent. The dates are the ones that break date arithmetic: a month end, the
financial year's last and first day (30 June / 1 July), 31 December, Sydney's DST changes, 29
February 2028 and a mid-month day. Every body is also validated against Xero's schema.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from fake_schema import template_for, validate_accounting
from xero_core.fake.accounting import handle_accounting
from xero_core.fake.ledger import generate_org

TODAY = date(2028, 3, 2)          # history reaches back over 2025, so every date below is inside it
NOW = datetime(2028, 3, 2, 3, 0, tzinfo=timezone.utc)
DATES = [
    date(2026, 10, 31),           # a month end
    date(2026, 6, 30),            # the Australian financial year's last day
    date(2026, 7, 1),             # and its first
    date(2025, 12, 31),           # calendar year end
    date(2026, 4, 5),             # Sydney: daylight saving ends (first Sunday of April)
    date(2026, 10, 4),            # Sydney: daylight saving starts (first Sunday of October)
    date(2028, 2, 29),            # leap day
    date(2027, 5, 17),            # mid-month
]
ZERO = Decimal("0.00")


@pytest.fixture(scope="module")
def org():
    return generate_org(13, TODAY, years=2.4, invoices=2000)


def served(org, sub, params):
    status, _, body = handle_accounting(org, "GET", sub, params, {"accept": "application/json"}, b"", NOW)
    assert status == 200, body[:300]
    return validate_accounting(template_for(sub), body)["Reports"][0]


def num(cell) -> Decimal:
    v = cell.get("Value") or ""
    return Decimal(v) if v else ZERO


def sections(report) -> dict[str, list[dict]]:
    return {s.get("Title", ""): s.get("Rows", []) for s in report["Rows"] if s["RowType"] == "Section" and s.get("Title")}


def labelled(report) -> dict[str, list[Decimal]]:
    """Every row by its first cell's label -> its numeric cells."""
    out = {}
    for s in report["Rows"]:
        for r in s.get("Rows", []):
            out[r["Cells"][0]["Value"]] = [num(c) for c in r["Cells"][1:]]
    return out


def check_section_totals(report):
    """Each section's SummaryRow is the sum of its account rows, column by column."""
    for title, rows in sections(report).items():
        accts = [r for r in rows if r["RowType"] == "Row"]
        summary = [r for r in rows if r["RowType"] == "SummaryRow"]
        if not accts:
            continue
        assert summary, title
        cols = len(summary[-1]["Cells"]) - 1
        for k in range(cols):
            assert sum(num(r["Cells"][k + 1]) for r in accts) == num(summary[-1]["Cells"][k + 1]), (title, k)


@pytest.mark.parametrize("d", DATES, ids=str)
def test_trial_balance_balances_in_both_column_pairs(org, d):
    tb = served(org, "/Reports/TrialBalance", {"date": d.isoformat()})
    header = [c["Value"] for c in tb["Rows"][0]["Cells"]]
    assert header == ["Account", "Debit", "Credit", "YTD Debit", "YTD Credit"]
    rows = [r for s in tb["Rows"] if s.get("Title") for r in s["Rows"] if r["RowType"] == "Row"]
    sums = [sum(num(r["Cells"][k]) for r in rows) for k in range(1, 5)]
    total = [num(c) for c in tb["Rows"][-1]["Rows"][0]["Cells"][1:]]
    assert total == sums, d
    assert sums[0] == sums[1], f"{d}: month Debit {sums[0]} vs Credit {sums[1]}"
    assert sums[2] == sums[3], f"{d}: YTD Debit {sums[2]} vs YTD Credit {sums[3]}"
    assert sums[0] > 0 and sums[2] > sums[0]
    for r in rows:   # an account is a debit or a credit in each pair, never both
        v = [num(c) for c in r["Cells"][1:]]
        assert not (v[0] and v[1]) and not (v[2] and v[3]), r["Cells"][0]["Value"]


@pytest.mark.parametrize("d", DATES, ids=str)
def test_balance_sheet_assets_equal_liabilities_plus_equity(org, d):
    bs = served(org, "/Reports/BalanceSheet", {"date": d.isoformat(), "periods": "2", "timeframe": "MONTH"})
    check_section_totals(bs)
    rows = labelled(bs)
    assert len(rows["Total Assets"]) == 3
    for k in range(3):
        assets, liab, equity = rows["Total Assets"][k], rows["Total Liabilities"][k], rows["Total Equity"][k]
        assert assets == liab + equity, (d, k)
        assert rows["Net Assets"][k] == rows["Total Equity"][k], (d, k)
    # Current Year Earnings is the P&L from 1 July to the date
    fy = date(d.year if d.month >= 7 else d.year - 1, 7, 1)
    pnl = labelled(served(org, "/Reports/ProfitAndLoss", {"fromDate": fy.isoformat(), "toDate": d.isoformat()}))
    assert rows["Current Year Earnings"][0] == pnl["Net Profit"][0], d


def check_pnl(report):
    check_section_totals(report)
    secs = sections(report)
    total = {}
    for title in ("Income", "Less Cost of Sales", "Plus Other Income", "Less Operating Expenses"):
        rows = [r for r in secs.get(title, []) if r["RowType"] == "Row"]
        cols = len(report["Rows"][0]["Cells"]) - 1
        total[title] = [sum(num(r["Cells"][k + 1]) for r in rows) for k in range(cols)]
    got = labelled(report)
    for k, net in enumerate(got["Net Profit"]):
        gross = total["Income"][k] - total["Less Cost of Sales"][k]
        assert got["Gross Profit"][k] == gross, k
        assert net == gross + total["Plus Other Income"][k] - total["Less Operating Expenses"][k], k


@pytest.mark.parametrize("d", DATES, ids=str)
def test_profit_and_loss_net_profit_is_its_rows(org, d):
    sunday = d - timedelta(days=(d.weekday() + 1) % 7)
    for params in ({"fromDate": d.replace(day=1).isoformat(), "toDate": d.isoformat()},
                   {"fromDate": sunday.isoformat(), "toDate": (sunday + timedelta(days=6)).isoformat()},
                   {"fromDate": d.isoformat(), "toDate": d.isoformat()},
                   {"fromDate": d.replace(day=1).isoformat(), "toDate": d.isoformat(), "periods": "3",
                    "timeframe": "MONTH"},
                   {"fromDate": d.replace(day=1).isoformat(), "toDate": d.isoformat(),
                    "trackingCategoryID": org.tracking[0].id}):
        check_pnl(served(org, "/Reports/ProfitAndLoss", params))


@pytest.mark.parametrize("d", DATES, ids=str)
def test_bank_summary_closing_is_opening_plus_received_less_spent(org, d):
    for d_from in (d.replace(day=1), d - timedelta(days=6), d):
        bs = served(org, "/Reports/BankSummary", {"fromDate": d_from.isoformat(), "toDate": d.isoformat()})
        rows = [r for s in bs["Rows"] if s["RowType"] == "Section" for r in s["Rows"]]
        accts = [[num(c) for c in r["Cells"][1:]] for r in rows if r["RowType"] == "Row"]
        total = next([num(c) for c in r["Cells"][1:]] for r in rows if r["RowType"] == "SummaryRow")
        assert accts
        for opening, received, spent, closing in accts + [total]:
            assert closing == opening + received - spent, (d_from, d)
        assert total == [sum(a[k] for a in accts) for k in range(4)]
    # the closing balances are the balance sheet's bank rows on the same date
    sheet = sections(served(org, "/Reports/BalanceSheet", {"date": d.isoformat()}))
    bank = {r["Cells"][0]["Value"]: num(r["Cells"][1]) for r in sheet["Bank"] if r["RowType"] == "Row"}
    summary = {r["Cells"][0]["Value"]: num(r["Cells"][4]) for r in rows if r["RowType"] == "Row"}
    assert {k: v for k, v in summary.items() if v} == bank, d
