"""Reports built from the ledger's per-day aggregates (xero-notes §4 shapes).

All values are strings with 2 dp; account rows carry `{"Id": "account", "Value": AccountID}` on
every cell (BankSummary's first cell uses `accountID`, as in Xero's captured example); computed
rows (Gross Profit, Net Profit, totals) have no attributes. Sections with no accounts are left
out, as Xero does. The P&L includes report-only revaluations (see ledger.fx_revaluation)."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from xero_core.fake import chart, wire
from xero_core.fake.ledger import Account, Org, TrackingCategory, TrackingOption, _month_end


class ReportError(ValueError):
    """Bad report parameters; served as a 400 ValidationException."""


def build(org: Org, name: str, p: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    fn = {"profitandloss": profit_and_loss, "banksummary": bank_summary, "balancesheet": balance_sheet,
          "trialbalance": trial_balance}.get(name.lower())
    return None if fn is None else fn(org, p, now)


# ---- helpers ----------------------------------------------------------------------------------

def _date(p: dict[str, Any], name: str, default: date) -> date:
    v = p.get(name.lower())
    if not v:
        return default
    try:
        return date.fromisoformat(v[:10])
    except ValueError:
        raise ReportError(f"{name} '{v}' is not a date: use YYYY-MM-DD") from None


def _label(d: date, long_year: bool = False) -> str:
    return f"{d.day} {d:%b} {d:%Y}" if long_year else f"{d.day} {d:%b} {d:%y}"


def _long(d: date) -> str:
    return f"{d.day} {d:%B %Y}"


def fy_start(d: date) -> date:
    """Australian financial year (1 July - 30 June)."""
    return date(d.year if d.month >= 7 else d.year - 1, 7, 1)


def shift_months(d: date, months: int) -> date:
    """Move by whole months keeping the day number, clamped to the month's length. This is Xero's
    known quirk: a comparison P&L to 30 Sep ends its August column on 30 Aug (not 31 Aug), so
    callers who want whole months ask for a 31st."""
    m = d.month - 1 + months
    y, m = d.year + m // 12, m % 12 + 1
    return date(y, m, min(d.day, _month_end(date(y, m, 1)).day))


def _periods(p: dict[str, Any]) -> tuple[int, int]:
    raw = p.get("periods")
    try:
        n = int(raw) if raw not in (None, "") else 0
    except ValueError:
        raise ReportError(f"periods '{raw}' must be a whole number between 1 and 12") from None
    if not 0 <= n <= 12:
        raise ReportError(f"periods {n} must be between 1 and 12")
    tf = (p.get("timeframe") or "MONTH").upper()
    step = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}.get(tf)
    if step is None:
        raise ReportError(f"timeframe '{tf}' must be MONTH, QUARTER or YEAR")
    return n, step


def _acct_cell(a: Account, value: str, attr_id: str = "account") -> dict[str, Any]:
    return {"Value": value, "Attributes": [{"Value": a.id, "Id": attr_id}]}


def _row(cells: list[Any]) -> dict[str, Any]:
    return {"RowType": "Row", "Cells": cells}


def _summary(label: str, values: list[int]) -> dict[str, Any]:
    return {"RowType": "SummaryRow", "Cells": [{"Value": label}] + [{"Value": wire.money_text(v)} for v in values]}


def _report(org: Org, report_id: str | None, name: str, type_: str, titles: list[str], now: datetime,
            rows: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if report_id:
        out["ReportID"] = report_id
    out.update({"ReportName": name, "ReportType": type_, "ReportTitles": titles,
                "ReportDate": _long(now.date()), "UpdatedDateUTC": wire.msdate(now, offset=False),
                "Fields": [], "Rows": rows})
    return out


def _option(org: Org, cat_id: str | None,
            opt_id: str | None) -> tuple[TrackingCategory | None, TrackingOption | None]:
    """(category, option) from the tracking parameters; unknown ids are a 400 as in Xero."""
    if not cat_id and not opt_id:
        return None, None
    cats = {c.id: c for c in org.tracking}
    cat = cats.get((cat_id or "").lower()) if cat_id else None
    if cat_id and cat is None:
        raise ReportError(f"trackingCategoryID '{cat_id}' is not a tracking category of this organisation")
    if opt_id:
        for c in org.tracking:
            for o in c.options:
                if o.id == opt_id.lower() and (cat is None or c is cat):
                    return c, o
        raise ReportError(f"trackingOptionID '{opt_id}' is not an option of the tracking category")
    return cat, None


def _filter(opt: TrackingOption | None) -> dict[str, Any]:
    if opt is None:
        return {}
    return {"region": opt} if opt.category.name == "Region" else {"job": opt}


# ---- ProfitAndLoss ----------------------------------------------------------------------------

def _range(p: dict[str, Any], today: date) -> tuple[date, date]:
    """No dates: this month. Only fromDate: up to today. Only toDate: from the 1st of its month."""
    has_from, has_to = bool(p.get("fromdate")), bool(p.get("todate"))
    if not has_from and not has_to:
        return today.replace(day=1), _month_end(today)
    d_to = _date(p, "toDate", today)
    d_from = _date(p, "fromDate", d_to.replace(day=1))
    if d_to < d_from:
        raise ReportError(f"toDate {d_to} is before fromDate {d_from}")
    return d_from, d_to


def profit_and_loss(org: Org, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    d_from, d_to = _range(p, now.date())
    n, step = _periods(p)
    cat, opt = _option(org, p.get("trackingcategoryid"), p.get("trackingoptionid"))
    cat2, opt2 = _option(org, p.get("trackingcategoryid2"), p.get("trackingoptionid2"))
    base = {**_filter(opt), **_filter(opt2)}
    # Columns: (label, from, to, filter); newest period first.
    cols: list[tuple[str, date, date, dict[str, Any] | None]] = []
    if cat is not None and opt is None:
        for o in cat.options:
            cols.append((o.name, d_from, d_to, {**base, **_filter(o)}))
        cols.append(("Unassigned", d_from, d_to, None))
        cols.append(("Total", d_from, d_to, dict(base)))
    else:
        for k in range(n + 1):
            f, t = shift_months(d_from, -k * step), shift_months(d_to, -k * step)
            cols.append((_label(t), f, t, dict(base)))

    def value(a: Account, col: tuple[str, date, date, dict[str, Any] | None]) -> int:
        _, f, t, flt = col
        if flt is None:    # "Unassigned": total less every option of the category
            tot = org.account_net(a, f, t, **base)
            options = cat.options if cat is not None else []  # the "Unassigned" column comes with a category
            assigned = 0
            for o in options:
                assigned += org.account_net(a, f, t, **{**base, **_filter(o)})
            v = tot - assigned
        else:
            v = org.account_net(a, f, t, **flt)
        return -v if a.cls == "REVENUE" else v

    rows: list[Any] = [{"RowType": "Header", "Cells": [{"Value": ""}] + [{"Value": c[0]} for c in cols]}]
    totals = {}
    for title, types in chart.PNL_SECTIONS:
        sec_rows = []
        sums = [0] * len(cols)
        for a in org.accounts:
            if a.type not in types:
                continue
            vals = [value(a, c) for c in cols]
            if not any(vals):
                continue
            sums = [s + v for s, v in zip(sums, vals)]
            sec_rows.append(_row([_acct_cell(a, a.name)] + [_acct_cell(a, wire.money_text(v)) for v in vals]))
        totals[title] = sums
        if sec_rows:
            label = "Total " + title.split(" ", 1)[1] if title.startswith(("Less ", "Plus ")) else f"Total {title}"
            sec_rows.append(_summary(label, sums))
            rows.append({"RowType": "Section", "Title": title, "Rows": sec_rows})
        if title == "Less Cost of Sales":
            gp = [i - c for i, c in zip(totals["Income"], sums)]
            rows.append({"RowType": "Section", "Title": "",
                         "Rows": [_row([{"Value": "Gross Profit"}] + [{"Value": wire.money_text(v)} for v in gp])]})
    gp = [i - c for i, c in zip(totals["Income"], totals["Less Cost of Sales"])]
    net = [g + o - e for g, o, e in zip(gp, totals["Plus Other Income"], totals["Less Operating Expenses"])]
    rows.append({"RowType": "Section", "Title": "",
                 "Rows": [_row([{"Value": "Net Profit"}] + [{"Value": wire.money_text(v)} for v in net])]})
    titles = ["Profit & Loss", org.name, f"{_long(d_from)} to {_long(d_to)}"]
    return _report(org, "ProfitAndLoss", "Profit and Loss", "ProfitAndLoss", titles, now, rows)


# ---- BankSummary ------------------------------------------------------------------------------

def bank_summary(org: Org, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    d_from, d_to = _range(p, now.date())
    rows: list[Any] = [{"RowType": "Header", "Cells": [{"Value": v} for v in
                                                  ("Bank Accounts", "Opening Balance", "Cash Received",
                                                   "Cash Spent", "Closing Balance")]}]
    sec = []
    tot = [0, 0, 0, 0]
    for a in org.bank_accounts:
        o, r, s, c = org.bank_flows(a, d_from, d_to)
        tot = [x + y for x, y in zip(tot, (o, r, s, c))]
        sec.append(_row([_acct_cell(a, a.name, "accountID"), {"Value": wire.money_text(o)},
                         _acct_cell(a, wire.money_text(r)), _acct_cell(a, wire.money_text(s)),
                         {"Value": wire.money_text(c)}]))
    sec.append(_summary("Total", tot))
    rows.append({"RowType": "Section", "Title": "", "Rows": sec})
    titles = ["Bank Summary", org.name, f"From {_long(d_from)} to {_long(d_to)}"]
    return _report(org, None, "Bank Summary", "BankSummary", titles, now, rows)


# ---- BalanceSheet -------------------------------------------------------------------------------

_BS_SECTIONS = [
    ("Bank", ("BANK",)), ("Current Assets", ("CURRENT", "INVENTORY", "PREPAYMENT")),
    ("Fixed Assets", ("FIXED",)), ("Non-current Assets", ("NONCURRENT",)),
    ("Current Liabilities", ("CURRLIAB", "PAYG")), ("Non-Current Liabilities", ("TERMLIAB", "LIABILITY")),
]


def _profit(org: Org, d_from: date | None, d_to: date) -> int:
    """Net profit (credit positive) over the dates; d_from None = since the beginning."""
    if d_from is not None and d_to < d_from:
        return 0
    return -sum(org.account_net(a, d_from, d_to) for a in org.accounts if a.type in chart.PNL_TYPES)


def balance_sheet(org: Org, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    d = _date(p, "date", _month_end(now.date()))
    n, step = _periods(p)
    dates = [shift_months(d, -k * step) for k in range(n + 1)]
    rows: list[Any] = [{"RowType": "Header", "Cells": [{"Value": ""}] + [{"Value": _label(x, True)} for x in dates]}]

    def section(title: str, types: Iterable[str], sign: int) -> list[int]:
        out: list[Any] = []
        sums = [0] * len(dates)
        for a in org.accounts:
            if a.type not in types:
                continue
            vals = [sign * org.account_net(a, None, x) for x in dates]
            if not any(vals):
                continue
            sums = [s + v for s, v in zip(sums, vals)]
            out.append(_row([_acct_cell(a, a.name)] + [_acct_cell(a, wire.money_text(v)) for v in vals]))
        if out:
            out.append(_summary(f"Total {title}", sums))
            rows.append({"RowType": "Section", "Title": title, "Rows": out})
        return sums

    def computed(label: str, vals: list[int]) -> None:
        rows.append({"RowType": "Section", "Title": "",
                     "Rows": [_row([{"Value": label}] + [{"Value": wire.money_text(v)} for v in vals])]})

    rows.append({"RowType": "Section", "Title": "Assets", "Rows": []})
    assets = [0] * len(dates)
    for title, types in _BS_SECTIONS[:4]:
        assets = [x + y for x, y in zip(assets, section(title, types, 1))]
    computed("Total Assets", assets)
    rows.append({"RowType": "Section", "Title": "Liabilities", "Rows": []})
    liab = [0] * len(dates)
    for title, types in _BS_SECTIONS[4:]:
        liab = [x + y for x, y in zip(liab, section(title, types, -1))]
    computed("Total Liabilities", liab)
    computed("Net Assets", [a - l for a, l in zip(assets, liab)])
    eq_rows, eq = [], [0] * len(dates)
    re_acct = next(a for a in org.accounts if a.system == "RETAINEDEARNINGS")
    for a in org.accounts:
        if a.type != "EQUITY":
            continue
        vals = [-org.account_net(a, None, x) for x in dates]
        if a is re_acct:
            vals = [v + _profit(org, None, fy_start(x) - timedelta(days=1)) for v, x in zip(vals, dates)]
        if not any(vals):
            continue
        eq = [s + v for s, v in zip(eq, vals)]
        eq_rows.append(_row([_acct_cell(a, a.name)] + [_acct_cell(a, wire.money_text(v)) for v in vals]))
    cye = [_profit(org, fy_start(x), x) for x in dates]
    eq = [s + v for s, v in zip(eq, cye)]
    eq_rows.insert(0, _row([{"Value": "Current Year Earnings"}] + [{"Value": wire.money_text(v)} for v in cye]))
    eq_rows.append(_summary("Total Equity", eq))
    rows.append({"RowType": "Section", "Title": "Equity", "Rows": eq_rows})
    titles = ["Balance Sheet", org.name, f"As at {_long(d)}"]
    return _report(org, None, "Balance Sheet", "BalanceSheet", titles, now, rows)


# ---- TrialBalance -------------------------------------------------------------------------------

_TB_SECTIONS = [("Revenue", "REVENUE"), ("Expenses", "EXPENSE"), ("Assets", "ASSET"),
                ("Liabilities", "LIABILITY"), ("Equity", "EQUITY")]


def trial_balance(org: Org, p: dict[str, Any], now: datetime) -> dict[str, Any]:
    d = _date(p, "date", now.date())
    fy = fy_start(d)
    month = d.replace(day=1)
    rows: list[Any] = [{"RowType": "Header", "Cells": [{"Value": v} for v in
                                                  ("Account", "Debit", "Credit", "YTD Debit", "YTD Credit")]}]
    re_acct = next(a for a in org.accounts if a.system == "RETAINEDEARNINGS")
    tot = [0, 0, 0, 0]

    def dc(v: int) -> tuple[str, str]:
        return (wire.money_text(v), "") if v > 0 else (("", wire.money_text(-v)) if v < 0 else ("", ""))

    for title, cls in _TB_SECTIONS:
        sec = []
        for a in org.accounts:
            if a.cls != cls:
                continue
            # The first pair is every account's movement in the report's month (Xero: "the balance
            # just for the month"), so it balances as the month's journals do. The YTD pair is the
            # movement since 1 July for P&L accounts and the balance for balance-sheet accounts,
            # with earlier years' profit closed into Retained Earnings.
            period = org.account_net(a, month, d)
            if a.type in chart.PNL_TYPES:
                ytd = org.account_net(a, fy, d)
            else:
                ytd = org.account_net(a, None, d)
                if a is re_acct:
                    ytd -= _profit(org, None, fy - timedelta(days=1))
            if not period and not ytd:
                continue
            (pd_, pc), (yd, yc) = dc(period), dc(ytd)
            tot = [tot[0] + max(period, 0), tot[1] + max(-period, 0), tot[2] + max(ytd, 0), tot[3] + max(-ytd, 0)]
            label = f"{a.name} ({a.code})"
            sec.append(_row([_acct_cell(a, label), _acct_cell(a, pd_), _acct_cell(a, pc), _acct_cell(a, yd),
                             _acct_cell(a, yc)]))
        if sec:
            rows.append({"RowType": "Section", "Title": title, "Rows": sec})
    rows.append({"RowType": "Section", "Title": "", "Rows": [_summary("Total", tot)]})
    titles = ["Trial Balance", org.name, f"As at {_long(d)}"]
    return _report(org, "TrialBalance", "Trial Balance", "TrialBalance", titles, now, rows)
