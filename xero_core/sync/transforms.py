"""Pure transforms: Xero JSON (as real Xero sends it, xero-notes §3/§4) → polars frames and values.

No I/O here. Money stays exact: Xero sends it as JSON numbers (2 dp) or, in reports, as strings;
both become `Decimal`/`pl.Decimal(18, 2)` through their decimal text, never through float sums.
Unknown fields and enum values pass through untouched (the raw record is kept as JSON).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Iterable, overload

import orjson
import polars as pl

from ..errors import MissingCurrencyRate
from .weeks import week_ending_for

MONEY = pl.Decimal(18, 2)
QTY = pl.Decimal(18, 4)
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
UNASSIGNED = "Unassigned"

_MS_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")


# -- scalars ---------------------------------------------------------------------------------
def parse_xero_datetime(value: Any) -> datetime | None:
    """`\\/Date(1563753600000+0000)\\/` (a UTC instant; the offset is informational), or an ISO
    string such as `2019-07-22T00:00:00` / `2019-12-07T18:46:19.5165400` (read as UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    s = str(value)
    m = _MS_DATE.search(s)
    if m:
        return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=int(m.group(1)))
    s = s.strip().replace("Z", "+00:00")
    frac = re.match(r"^(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$", s)
    if frac:  # Xero writes 7 fractional digits; Python takes at most 6
        s = f"{frac.group(1)}.{frac.group(2)[:6].ljust(6, '0')}{frac.group(3)}"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def parse_xero_date(value: Any) -> date | None:
    """A Xero *date* is the UTC calendar day of its instant, whatever the machine's time zone."""
    dt = parse_xero_datetime(value)
    return dt.astimezone(timezone.utc).date() if dt else None


def money(value: Any) -> Decimal:
    """Xero money (JSON number, or report string like "-1850.00"; blanks are zero) → Decimal 2 dp."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, float):
        d = Decimal(repr(value))  # the shortest text that round-trips: what Xero wrote
    else:
        s = str(value).strip().replace(",", "")
        if s in ("", "-"):
            return ZERO
        try:
            d = Decimal(s)
        except InvalidOperation:
            return ZERO
    return d.quantize(CENT, rounding=ROUND_HALF_UP)


def _num_text(value: Any) -> str | None:
    """Decimal text for a polars string→decimal cast (fast path for large frames)."""
    if value is None or value == "":
        return None
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _money_col(values: list[Any]) -> pl.Series:
    return pl.Series([_num_text(v) for v in values], dtype=pl.String).cast(MONEY, strict=False)


def _dumps(record: Any) -> str:
    return orjson.dumps(record, default=str).decode()


def _dt_col(name: str, values: list[Any]) -> pl.Series:
    return pl.Series(name, values, dtype=pl.Datetime("us", "UTC"))


# -- Accounts --------------------------------------------------------------------------------
# Account Type → the P&L section it reports in (xero-notes §4). Types we do not know map to None.
TYPE_SECTION = {
    "REVENUE": "income", "SALES": "income",
    "OTHERINCOME": "other_income",
    "DIRECTCOSTS": "cost_of_sales",
    "EXPENSE": "operating_expenses", "OVERHEADS": "operating_expenses", "DEPRECIATN": "operating_expenses",
}
PNL_CLASSES = ("REVENUE", "EXPENSE")


def accounts_frame(accounts: Iterable[dict[str, Any]]) -> pl.DataFrame:
    rows = list(accounts)
    return pl.DataFrame(
        {
            "account_id": [a.get("AccountID") for a in rows],
            "code": [a.get("Code") for a in rows],
            "name": [a.get("Name") for a in rows],
            "type": [a.get("Type") for a in rows],
            "class": [a.get("Class") for a in rows],
            "status": [a.get("Status") for a in rows],
            "bank_account_type": [a.get("BankAccountType") for a in rows],
            "currency_code": [a.get("CurrencyCode") for a in rows],
            "updated_at": _dt_col("updated_at", [parse_xero_datetime(a.get("UpdatedDateUTC")) for a in rows]),
            "raw": [_dumps(a) for a in rows],
        },
        schema_overrides={k: pl.String for k in ("account_id", "code", "name", "type", "class", "status",
                                                  "bank_account_type", "currency_code", "raw")},
    )


# -- ProfitAndLoss ---------------------------------------------------------------------------
SECTIONS = ("income", "cost_of_sales", "other_income", "operating_expenses")


def _norm_title(title: str | None) -> str:
    t = re.sub(r"\s+", " ", (title or "").strip().lower())
    return re.sub(r"^(less|plus|add)\s+", "", t)


def section_from_title(title: str | None) -> tuple[str | None, bool]:
    """(section, explicit). `explicit` is False where the title could mean more than one section
    ("Income", "Revenue" — trading or other?) or says nothing: account types decide those."""
    t = _norm_title(title)
    if not t:
        return None, False
    if "cost of sales" in t or "cost of goods" in t or "direct cost" in t or "cost of revenue" in t:
        return "cost_of_sales", True
    if "other income" in t or "non-operating income" in t or "other revenue" in t:
        return "other_income", True
    if "expense" in t or "overhead" in t:
        return "operating_expenses", True
    if t in ("trading income", "operating income", "trading revenue", "sales", "turnover"):
        return "income", True
    if "income" in t or "revenue" in t:
        return "income", False
    return None, False


def _row_account(row: dict[str, Any]) -> str | None:
    for cell in row.get("Cells") or []:
        for attr in cell.get("Attributes") or []:
            if (attr.get("Id") or "").lower() in ("account", "accountid") and attr.get("Value"):
                return str(attr["Value"])
    return None


def _cell(row: dict[str, Any], i: int) -> Any:
    cells = row.get("Cells") or []
    return cells[i].get("Value") if i < len(cells) else None


@dataclass
class PnL:
    """One week's ProfitAndLoss, mapped. Totals are Xero's own figures where the report has them."""

    income: Decimal = ZERO
    cost_of_sales: Decimal = ZERO
    other_income: Decimal = ZERO
    operating_expenses: Decimal = ZERO
    gross_profit: Decimal = ZERO
    net_profit: Decimal = ZERO
    lines: list[dict[str, Any]] = field(default_factory=list)  # account_id, section, account_code, account_name, account_type, amount
    warnings: list[str] = field(default_factory=list)


def map_profit_and_loss(report_doc: dict[str, Any], accounts: dict[str, dict[str, Any]] | None = None) -> PnL:
    """Map a ProfitAndLoss report (the response body, or its `Reports[0]`) to sections.

    Sections are read from the rows' structure: each titled (or untitled) Section holds account
    Rows and a SummaryRow. The title names the section when it is explicit; where it is ambiguous
    or blank, the account types of its rows decide (`accounts`: AccountID → Accounts record).
    Gross and net profit are Xero's own computed rows when present; we check them against ours.
    """
    accounts = accounts or {}
    report = (report_doc.get("Reports") or [report_doc])[0]
    out = PnL()
    totals = {s: ZERO for s in SECTIONS}
    xero_gross = xero_net = None
    col = 1  # single period: the value column; multi-period reports put the newest first

    for sec in report.get("Rows") or []:
        if sec.get("RowType") != "Section":
            continue
        rows = sec.get("Rows") or []
        acc_rows = [r for r in rows if r.get("RowType") == "Row" and _row_account(r)]
        plain_rows = [r for r in rows if r.get("RowType") == "Row" and not _row_account(r)]
        # Computed rows (Gross Profit, Net Profit) sit alone in untitled sections, without attributes.
        for r in plain_rows:
            label = _norm_title(str(_cell(r, 0) or ""))
            if label == "gross profit":
                xero_gross = money(_cell(r, col))
            elif label in ("net profit", "net loss", "net profit (loss)", "net income", "net profit/(loss)"):
                xero_net = money(_cell(r, col))
        data_rows = [r for r in rows if r.get("RowType") == "Row"
                     and _norm_title(str(_cell(r, 0) or "")) not in
                     ("gross profit", "net profit", "net loss", "net profit (loss)", "net income", "net profit/(loss)")]
        if not data_rows:
            continue
        section, explicit = section_from_title(sec.get("Title"))
        if not explicit:
            votes: dict[str, int] = {}
            for r in acc_rows:
                acct = accounts.get(_row_account(r) or "")
                s = TYPE_SECTION.get((acct or {}).get("Type") or "")
                if s:
                    votes[s] = votes.get(s, 0) + 1
            if votes:
                section = max(votes.items(), key=lambda kv: kv[1])[0]
        if section is None:
            out.warnings.append(
                f"P&L section {sec.get('Title')!r} matched no known section and its accounts have no "
                "known type; counted as operating expenses"
            )
            section = "operating_expenses"
        summary = [r for r in rows if r.get("RowType") == "SummaryRow"]
        line_sum = sum((money(_cell(r, col)) for r in data_rows), ZERO)
        sec_total = money(_cell(summary[-1], col)) if summary else line_sum
        if summary and sec_total != line_sum:
            out.warnings.append(f"P&L section {sec.get('Title')!r}: lines add to {line_sum}, Xero's total says {sec_total}")
        totals[section] += sec_total
        for r in data_rows:
            acct_id = _row_account(r) or f"name:{_cell(r, 0)}"
            acct = accounts.get(acct_id) or {}
            out.lines.append({
                "account_id": acct_id,
                "section": section,
                "account_code": acct.get("Code"),
                "account_name": str(_cell(r, 0) or acct.get("Name") or ""),
                "account_type": acct.get("Type"),
                "amount": money(_cell(r, col)),
            })

    out.income = totals["income"]
    out.cost_of_sales = totals["cost_of_sales"]
    out.other_income = totals["other_income"]
    out.operating_expenses = totals["operating_expenses"]
    gross = out.income - out.cost_of_sales
    net = gross + out.other_income - out.operating_expenses
    out.gross_profit = xero_gross if xero_gross is not None else gross
    out.net_profit = xero_net if xero_net is not None else net
    if xero_gross is not None and xero_gross != gross:
        out.warnings.append(f"Xero's Gross Profit {xero_gross} differs from income - cost of sales = {gross}")
    if xero_net is not None and xero_net != net:
        out.warnings.append(f"Xero's Net Profit {xero_net} differs from the mapped sections' {net}")
    # One row per account and week: the same account id in two sections (FXGROUPID) is kept apart.
    seen: dict[str, dict[str, Any]] = {}
    merged: list[dict[str, Any]] = []
    for line in out.lines:
        key = line["account_id"]
        prev = seen.get(key)
        if prev is not None and prev["section"] == line["section"]:
            prev["amount"] += line["amount"]
            continue
        if prev is not None:
            line = dict(line, account_id=f"{key}:{line['section']}")
        seen[line["account_id"]] = line
        merged.append(line)
    out.lines = merged
    return out


def pnl_frames(tenant_id: str, weeks: list[tuple[date, PnL]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(financial_weekly rows, pnl_lines rows) for several mapped weeks."""
    fw = pl.DataFrame({
        "tenant_id": [tenant_id] * len(weeks),
        "week_ending": pl.Series([w for w, _ in weeks], dtype=pl.Date),
        "week_start": pl.Series([w - timedelta(days=6) for w, _ in weeks], dtype=pl.Date),
        **{k: _money_col([str(getattr(p, k)) for _, p in weeks]) for k in (
            "income", "cost_of_sales", "gross_profit", "other_income", "operating_expenses", "net_profit")},
    })
    lines = [(w, ln) for w, p in weeks for ln in p.lines]
    pl_lines = pl.DataFrame({
        "tenant_id": [tenant_id] * len(lines),
        "week_ending": pl.Series([w for w, _ in lines], dtype=pl.Date),
        "account_id": pl.Series([ln["account_id"] for _, ln in lines], dtype=pl.String),
        "section": pl.Series([ln["section"] for _, ln in lines], dtype=pl.String),
        "account_code": pl.Series([ln["account_code"] for _, ln in lines], dtype=pl.String),
        "account_name": pl.Series([ln["account_name"] for _, ln in lines], dtype=pl.String),
        "account_type": pl.Series([ln["account_type"] for _, ln in lines], dtype=pl.String),
        "amount": _money_col([str(ln["amount"]) for _, ln in lines]),
    })
    return fw, pl_lines


# -- BankSummary -----------------------------------------------------------------------------
def map_bank_summary(report_doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per bank account row: bank_account_id, bank_account_name, opening, received, spent, closing.
    Columns are found by their header labels (falling back to Xero's usual order)."""
    report = (report_doc.get("Reports") or [report_doc])[0]
    cols = {"opening": 1, "received": 2, "spent": 3, "closing": 4}
    out: list[dict[str, Any]] = []
    for row in report.get("Rows") or []:
        if row.get("RowType") == "Header":
            for i, c in enumerate(row.get("Cells") or []):
                label = str(c.get("Value") or "").lower()
                for key, word in (("opening", "opening"), ("received", "received"), ("spent", "spent"), ("closing", "closing")):
                    if word in label:
                        cols[key] = i
            continue
        if row.get("RowType") != "Section":
            continue
        for r in row.get("Rows") or []:
            if r.get("RowType") != "Row":
                continue
            acct = _row_account(r) or f"name:{_cell(r, 0)}"
            out.append({
                "bank_account_id": acct,
                "bank_account_name": str(_cell(r, 0) or ""),
                **{k: money(_cell(r, i)) for k, i in cols.items()},
            })
    return out


def bank_frame(tenant_id: str, weeks: list[tuple[date, list[dict[str, Any]]]]) -> pl.DataFrame:
    rows = [(w, r) for w, rs in weeks for r in rs]
    return pl.DataFrame({
        "tenant_id": pl.Series([tenant_id] * len(rows), dtype=pl.String),
        "week_ending": pl.Series([w for w, _ in rows], dtype=pl.Date),
        "bank_account_id": pl.Series([r["bank_account_id"] for _, r in rows], dtype=pl.String),
        "bank_account_name": pl.Series([r["bank_account_name"] for _, r in rows], dtype=pl.String),
        **{k: _money_col([str(r[k]) for _, r in rows]) for k in ("opening", "received", "spent", "closing")},
    })


# -- Currencies -------------------------------------------------------------------------------
RATE = pl.Decimal(18, 6)


def document_rate(doc: dict[str, Any], base_currency: str | None, *, kind: str = "Invoice") -> Decimal | None:
    """The rate to divide a document's amounts by to get the base currency (Xero's CurrencyRate:
    units of the document's currency per unit of base), or None when it is in the base currency.

    Xero may leave CurrencyRate out (or send 1) for a base-currency document. A document in another
    currency with no usable rate raises MissingCurrencyRate naming it: a silent 1 would add foreign
    amounts as if they were base currency. Without a known base currency (the organisation not read
    yet) a document's own rate is used as sent and a missing one counts as base."""
    code = str(doc.get("CurrencyCode") or "").strip().upper()
    base = (base_currency or "").strip().upper()
    if base and code == base:
        return None
    raw = doc.get("CurrencyRate")
    try:
        text = _num_text(raw)
        rate = Decimal(text) if text is not None else None
    except InvalidOperation:
        rate = None
    if rate is None or rate <= 0:
        if base and code:
            number = doc.get(f"{kind}Number") or doc.get("InvoiceNumber") or doc.get("CreditNoteNumber")
            ident = doc.get(f"{kind}ID") or doc.get("InvoiceID") or doc.get("CreditNoteID")
            label = f"{kind} {number} ({ident})" if number else f"{kind} {ident}"
            raise MissingCurrencyRate(
                f"{label} is in {code}, not the organisation's base currency {base}, and Xero sent "
                f"{'no CurrencyRate' if raw in (None, '') else f'CurrencyRate {raw!r}'}: its {base} amounts "
                f"cannot be known. Check the document's currency rate in Xero, then sync again.")
        return None
    return None if rate == 1 else rate


@overload
def to_base(amount: Decimal, rate: Decimal | None) -> Decimal: ...
@overload
def to_base(amount: None, rate: Decimal | None) -> None: ...
def to_base(amount: Decimal | None, rate: Decimal | None) -> Decimal | None:
    """A document-currency amount in the base currency: amount / rate, rounded to the cent half away
    from zero (ROUND_HALF_UP on the magnitude), the way the ledger converts each line."""
    if amount is None or rate is None:
        return amount
    return (amount / rate).quantize(CENT, rounding=ROUND_HALF_UP)


def _base_columns(docs: list[dict[str, Any]], rates: list[Decimal | None]) -> dict[str, pl.Series]:
    """base_subtotal / base_total_tax / base_total of each document: the sum of its lines' converted
    amounts when its lines add up to it in its own currency (so the base figures are what the journals
    carry, line by line), else its own SubTotal / TotalTax converted."""
    subs, taxes = [], []
    for d, rate in zip(docs, rates):
        sub, tax = money(d.get("SubTotal")), money(d.get("TotalTax"))
        lines = d.get("LineItems") or []
        inclusive = str(d.get("LineAmountTypes") or "").lower() == "inclusive"
        if rate is not None and lines:
            l_tax = [money(li.get("TaxAmount")) for li in lines]
            l_net = [money(li.get("LineAmount")) - (t if inclusive else ZERO) for li, t in zip(lines, l_tax)]
            if sum(l_net, ZERO) == sub and sum(l_tax, ZERO) == tax:
                subs.append(sum((to_base(x, rate) for x in l_net), ZERO))
                taxes.append(sum((to_base(x, rate) for x in l_tax), ZERO))
                continue
        subs.append(to_base(sub, rate))
        taxes.append(to_base(tax, rate))
    return {"base_subtotal": _money_col([str(x) for x in subs]),
            "base_total_tax": _money_col([str(x) for x in taxes]),
            "base_total": _money_col([str(a + b) for a, b in zip(subs, taxes)])}


# -- Invoices --------------------------------------------------------------------------------
def tracking_option(tracking: list[dict[str, Any]] | None, category: str) -> str:
    want = category.strip().lower()
    for t in tracking or []:
        if str(t.get("Name") or "").strip().lower() == want and t.get("Option"):
            return str(t["Option"])
    return UNASSIGNED


INVOICE_COLUMNS = (
    "invoice_id", "invoice_number", "type", "contact_id", "contact_name", "date", "due_date", "status",
    "currency_code", "currency_rate", "line_amount_types", "reference", "subtotal", "total_tax", "total",
    "amount_due", "amount_paid", "amount_credited", "updated_at", "raw",
)


def invoice_frames(invoices: list[dict[str, Any]], region_category: str = "Region",
                   revenue_type_category: str = "Job Type",
                   base_currency: str | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(invoices rows, invoice_lines rows). Lines carry region/revenue_type from tracking. Amounts stay
    in the invoice's currency; `base_*` columns beside them are in the organisation's base currency
    (`document_rate`: MissingCurrencyRate for a foreign invoice without a rate)."""
    inv = invoices
    rates = [document_rate(i, base_currency, kind="Invoice") for i in inv]
    contact = [i.get("Contact") or {} for i in inv]
    inv_df = pl.DataFrame({
        "invoice_id": pl.Series([i.get("InvoiceID") for i in inv], dtype=pl.String),
        "invoice_number": pl.Series([i.get("InvoiceNumber") for i in inv], dtype=pl.String),
        "type": pl.Series([i.get("Type") for i in inv], dtype=pl.String),
        "contact_id": pl.Series([c.get("ContactID") for c in contact], dtype=pl.String),
        "contact_name": pl.Series([c.get("Name") for c in contact], dtype=pl.String),
        "date": pl.Series([parse_xero_date(i.get("Date")) for i in inv], dtype=pl.Date),
        "due_date": pl.Series([parse_xero_date(i.get("DueDate")) for i in inv], dtype=pl.Date),
        "status": pl.Series([i.get("Status") for i in inv], dtype=pl.String),
        "currency_code": pl.Series([i.get("CurrencyCode") for i in inv], dtype=pl.String),
        "currency_rate": pl.Series([_num_text(i.get("CurrencyRate")) for i in inv], dtype=pl.String).cast(pl.Decimal(18, 6), strict=False),
        "line_amount_types": pl.Series([i.get("LineAmountTypes") for i in inv], dtype=pl.String),
        "reference": pl.Series([i.get("Reference") for i in inv], dtype=pl.String),
        "subtotal": _money_col([i.get("SubTotal") for i in inv]),
        "total_tax": _money_col([i.get("TotalTax") for i in inv]),
        "total": _money_col([i.get("Total") for i in inv]),
        "amount_due": _money_col([i.get("AmountDue") for i in inv]),
        "amount_paid": _money_col([i.get("AmountPaid") for i in inv]),
        "amount_credited": _money_col([i.get("AmountCredited") for i in inv]),
        **_base_columns(inv, rates),
        "updated_at": _dt_col("updated_at", [parse_xero_datetime(i.get("UpdatedDateUTC")) for i in inv]),
        "raw": pl.Series([_dumps(i) for i in inv], dtype=pl.String),
    })
    lines_df = _line_frame(inv, "InvoiceID", "invoice_id", region_category, revenue_type_category, rates)
    return inv_df, lines_df


def _line_frame(docs: list[dict[str, Any]], id_field: str, parent_col: str, region_category: str,
                revenue_type_category: str, rates: list[Decimal | None] | None = None) -> pl.DataFrame:
    """The line items of invoices or credit notes. A line without a LineItemID (older payloads,
    the spec's own examples) gets `<document id>:<n>`; a line without Tracking is Unassigned.
    `base_line_amount` / `base_tax_amount`: each line's amounts / its document's rate, to the cent."""
    lid, pid, no, code, desc, qty, unit, amt, tax, reg, rtype, trk = ([] for _ in range(12))
    b_amt, b_tax = [], []
    rates = rates if rates is not None else [None] * len(docs)
    for d, rate in zip(docs, rates):
        for n, li in enumerate(d.get("LineItems") or []):
            b_amt.append(str(to_base(money(li.get("LineAmount")), rate)))
            b_tax.append(str(to_base(money(li.get("TaxAmount")), rate)))
            lid.append(li.get("LineItemID") or f"{d.get(id_field)}:{n}")
            pid.append(d.get(id_field))
            no.append(n)
            code.append(li.get("AccountCode"))
            desc.append(li.get("Description"))
            qty.append(_num_text(li.get("Quantity")))
            unit.append(_num_text(li.get("UnitAmount")))
            amt.append(li.get("LineAmount"))
            tax.append(li.get("TaxAmount"))
            tracking = li.get("Tracking") or []
            reg.append(tracking_option(tracking, region_category))
            rtype.append(tracking_option(tracking, revenue_type_category))
            trk.append(_dumps(tracking))
    return pl.DataFrame({
        "line_item_id": pl.Series(lid, dtype=pl.String),
        parent_col: pl.Series(pid, dtype=pl.String),
        "line_no": pl.Series(no, dtype=pl.Int32),
        "account_code": pl.Series(code, dtype=pl.String),
        "description": pl.Series(desc, dtype=pl.String),
        "quantity": pl.Series(qty, dtype=pl.String).cast(QTY, strict=False),
        "unit_amount": pl.Series(unit, dtype=pl.String).cast(QTY, strict=False),
        "line_amount": _money_col(amt),
        "tax_amount": _money_col(tax),
        "base_line_amount": _money_col(b_amt),
        "base_tax_amount": _money_col(b_tax),
        "region": pl.Series(reg, dtype=pl.String),
        "revenue_type": pl.Series(rtype, dtype=pl.String),
        "tracking": pl.Series(trk, dtype=pl.String),
    })


# -- Credit notes ----------------------------------------------------------------------------
def _allocated(doc: dict[str, Any], key: str) -> Decimal:
    return sum((money(a.get("Amount")) for a in doc.get(key) or [] if not a.get("IsDeleted")), ZERO)


def credit_note_frames(credit_notes: list[dict[str, Any]], region_category: str = "Region",
                       revenue_type_category: str = "Job Type",
                       base_currency: str | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(credit_notes rows, credit_note_lines rows), read as real Xero sends them: `/Date(ms)/`
    dates, money as JSON numbers, `CurrencyRate`, `LineAmountTypes`, `Allocations` (to invoices;
    `amount_allocated`) and `Payments` (cash refunds; `amount_refunded`) kept beside the raw record."""
    cn = credit_notes
    rates = [document_rate(c, base_currency, kind="CreditNote") for c in cn]
    contact = [c.get("Contact") or {} for c in cn]
    cn_df = pl.DataFrame({
        "credit_note_id": pl.Series([c.get("CreditNoteID") for c in cn], dtype=pl.String),
        "credit_note_number": pl.Series([c.get("CreditNoteNumber") for c in cn], dtype=pl.String),
        "type": pl.Series([c.get("Type") for c in cn], dtype=pl.String),
        "contact_id": pl.Series([x.get("ContactID") for x in contact], dtype=pl.String),
        "contact_name": pl.Series([x.get("Name") for x in contact], dtype=pl.String),
        "date": pl.Series([parse_xero_date(c.get("Date")) for c in cn], dtype=pl.Date),
        "status": pl.Series([c.get("Status") for c in cn], dtype=pl.String),
        "currency_code": pl.Series([c.get("CurrencyCode") for c in cn], dtype=pl.String),
        "currency_rate": pl.Series([_num_text(c.get("CurrencyRate")) for c in cn], dtype=pl.String).cast(pl.Decimal(18, 6), strict=False),
        "line_amount_types": pl.Series([c.get("LineAmountTypes") for c in cn], dtype=pl.String),
        "reference": pl.Series([c.get("Reference") for c in cn], dtype=pl.String),
        "subtotal": _money_col([c.get("SubTotal") for c in cn]),
        "total_tax": _money_col([c.get("TotalTax") for c in cn]),
        "total": _money_col([c.get("Total") for c in cn]),
        "remaining_credit": _money_col([c.get("RemainingCredit") for c in cn]),
        "amount_allocated": _money_col([str(_allocated(c, "Allocations")) for c in cn]),
        "amount_refunded": _money_col([str(_allocated(c, "Payments")) for c in cn]),
        "fully_paid_on_date": pl.Series([parse_xero_date(c.get("FullyPaidOnDate")) for c in cn], dtype=pl.Date),
        **_base_columns(cn, rates),
        "updated_at": _dt_col("updated_at", [parse_xero_datetime(c.get("UpdatedDateUTC")) for c in cn]),
        "raw": pl.Series([_dumps(c) for c in cn], dtype=pl.String),
    })
    return cn_df, _line_frame(cn, "CreditNoteID", "credit_note_id", region_category, revenue_type_category, rates)


def _cents(d: Decimal) -> int:
    return int((d * 100).to_integral_value())


def allocate(amount_cents: int, weights: list[int]) -> list[int]:
    """Split `amount_cents` in proportion to `weights` so the parts add up exactly (largest
    remainder). Zero total weight: equal shares."""
    n = len(weights)
    if n == 1:
        return [amount_cents]
    total_w = sum(weights)
    if total_w == 0:
        weights, total_w = [1] * n, n
    exact = [Fraction(amount_cents * w, total_w) for w in weights]
    floors = [int(e.__floor__()) for e in exact]
    short = amount_cents - sum(floors)
    order = sorted(range(n), key=lambda k: (-(exact[k] - floors[k]), k))
    for k in order[:short]:
        floors[k] += 1
    return floors


REVENUE_TYPES = ("ACCREC",)
CREDIT_TYPES = ("ACCRECCREDIT",)
REVENUE_STATUSES = ("AUTHORISED", "PAID")


def _doc_parts(docs: pl.DataFrame, lines: pl.DataFrame, id_col: str) -> dict[str, list[tuple[str, str, int, int]]]:
    grp = (lines.filter(pl.col(id_col).is_in(docs[id_col].implode()))
           .group_by(id_col, "region", "revenue_type")
           .agg(pl.col("line_amount").sum().alias("amount"), pl.col("tax_amount").sum().alias("tax"))
           .sort(id_col, "region", "revenue_type"))
    groups: dict[str, list[tuple[str, str, int, int]]] = {}
    for did, reg, rt, amount, tax in grp.iter_rows():
        groups.setdefault(did, []).append((reg, rt, _cents(amount or ZERO), _cents(tax or ZERO)))
    return groups


def revenue_weekly_frame(tenant_id: str, invoices: pl.DataFrame, lines: pl.DataFrame,
                         week_ends_on: str = "saturday", credit_notes: pl.DataFrame | None = None,
                         credit_lines: pl.DataFrame | None = None) -> pl.DataFrame:
    """Sales invoices (ACCREC, AUTHORISED|PAID) less sales credit notes (ACCRECCREDIT,
    AUTHORISED|PAID), each in the week of its own `date`, by region and revenue type.

    A document whose lines fall in several (region, type) groups is split by its lines: each
    group's subtotal is its lines' net amounts and its tax their TaxAmounts. Where those do not add
    up to the document's SubTotal/TotalTax (rounding on tax-inclusive documents, tax set on the
    document), subtotal and tax are shared in proportion to the lines' net amounts instead. Each
    part's total is its subtotal plus tax, so the parts always add up to the document's Total.
    A credit note counts negative and in `credit_note_count`, never in `invoice_count`.
    Money is in the base currency: `base_*` columns are used where the frames have them.
    `invoices` needs invoice_id, type, status, date, line_amount_types, subtotal, total_tax;
    `lines` needs invoice_id, line_amount, tax_amount, region, revenue_type; `credit_notes` and
    `credit_lines` the same with credit_note_id.
    """
    acc: dict[tuple[Any, ...], list[int]] = {}
    week_cache: dict[date, date] = {}
    sources: list[tuple[pl.DataFrame, pl.DataFrame | None, str, tuple[str, ...], int]] = [
        (invoices, lines, "invoice_id", REVENUE_TYPES, 1)]
    if credit_notes is not None and credit_notes.height:
        sources.append((credit_notes, credit_lines, "credit_note_id", CREDIT_TYPES, -1))
    for docs, doc_lines, id_col, types, sign in sources:
        docs, doc_lines = _in_base(docs, doc_lines)
        docs = docs.filter(pl.col("type").is_in(types) & pl.col("status").is_in(REVENUE_STATUSES)
                           & pl.col("date").is_not_null())
        if docs.height == 0:
            continue
        assert doc_lines is not None, "documents come with their lines"
        groups = _doc_parts(docs, doc_lines, id_col)
        lat = "line_amount_types" in docs.columns
        cols = [id_col, "date", "subtotal", "total_tax"] + (["line_amount_types"] if lat else [])
        for rec in docs.select(cols).iter_rows():
            did, d, sub, tax = rec[:4]
            inclusive = lat and str(rec[4] or "").lower() == "inclusive"
            we = week_cache.get(d)
            if we is None:
                we = week_cache[d] = week_ending_for(d, week_ends_on)
            parts = groups.get(did) or [(UNASSIGNED, UNASSIGNED, 0, 0)]
            sub_c, tax_c = _cents(sub or ZERO), _cents(tax or ZERO)
            nets = [a - t if inclusive else a for _, _, a, t in parts]
            line_taxes = [t for _, _, _, t in parts]
            if sum(nets) == sub_c and sum(line_taxes) == tax_c:
                subs, taxes = nets, line_taxes
            else:
                subs, taxes = allocate(sub_c, nets), allocate(tax_c, nets)
            for (reg, rt, _, _), s_, t_ in zip(parts, subs, taxes):
                a = acc.setdefault((we, reg, rt), [0, 0, 0, 0])
                a[0 if sign > 0 else 3] += 1
                a[1] += sign * s_
                a[2] += sign * t_
    if not acc:
        return _empty_revenue()
    keys = sorted(acc)
    return pl.DataFrame({
        "tenant_id": pl.Series([tenant_id] * len(keys), dtype=pl.String),
        "week_ending": pl.Series([k[0] for k in keys], dtype=pl.Date),
        "region": pl.Series([k[1] for k in keys], dtype=pl.String),
        "revenue_type": pl.Series([k[2] for k in keys], dtype=pl.String),
        "invoice_count": pl.Series([acc[k][0] for k in keys], dtype=pl.Int32),
        "credit_note_count": pl.Series([acc[k][3] for k in keys], dtype=pl.Int32),
        "subtotal": _cents_col([acc[k][1] for k in keys]),
        "total_tax": _cents_col([acc[k][2] for k in keys]),
        "total": _cents_col([acc[k][1] + acc[k][2] for k in keys]),
    })


def _in_base(docs: pl.DataFrame, lines: pl.DataFrame | None) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Documents and lines with their base-currency amounts where they carry them: every figure in
    revenue_weekly is in the organisation's base currency."""
    if "base_subtotal" in docs.columns:
        docs = docs.with_columns(pl.col("base_subtotal").alias("subtotal"), pl.col("base_total_tax").alias("total_tax"))
    if lines is not None and "base_line_amount" in lines.columns:
        lines = lines.with_columns(pl.col("base_line_amount").alias("line_amount"),
                                   pl.col("base_tax_amount").alias("tax_amount"))
    return docs, lines


def _cents_col(cents: list[int]) -> pl.Series:
    return pl.Series([str(Decimal(c).scaleb(-2)) for c in cents], dtype=pl.String).cast(MONEY)


def _empty_revenue() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "tenant_id": pl.String, "week_ending": pl.Date, "region": pl.String, "revenue_type": pl.String,
        "invoice_count": pl.Int32, "credit_note_count": pl.Int32, "subtotal": MONEY, "total_tax": MONEY,
        "total": MONEY,
    })


# -- Organisation ----------------------------------------------------------------------------
# The organisation's row is made where the connect flow can reach it too (xero_core.organisation,
# below sync/ in the layers); it is a pure transform like the rest of this module.
from ..organisation import ORGANISATION_COLUMNS, organisation_row  # noqa: E402,F401


# -- Contacts --------------------------------------------------------------------------------
def contacts_frame(contacts: list[dict[str, Any]]) -> pl.DataFrame:
    c = contacts
    return pl.DataFrame({
        "contact_id": pl.Series([x.get("ContactID") for x in c], dtype=pl.String),
        "name": pl.Series([x.get("Name") for x in c], dtype=pl.String),
        "first_name": pl.Series([x.get("FirstName") for x in c], dtype=pl.String),
        "last_name": pl.Series([x.get("LastName") for x in c], dtype=pl.String),
        "email": pl.Series([x.get("EmailAddress") or None for x in c], dtype=pl.String),
        "status": pl.Series([x.get("ContactStatus") for x in c], dtype=pl.String),
        "is_customer": pl.Series([x.get("IsCustomer") for x in c], dtype=pl.Boolean),
        "is_supplier": pl.Series([x.get("IsSupplier") for x in c], dtype=pl.Boolean),
        "merged_to_contact_id": pl.Series([x.get("MergedToContactID") or None for x in c], dtype=pl.String),
        "updated_at": _dt_col("updated_at", [parse_xero_datetime(x.get("UpdatedDateUTC")) for x in c]),
        "raw": pl.Series([_dumps(x) for x in c], dtype=pl.String),
    })


# -- Journals --------------------------------------------------------------------------------
def journal_lines_frame(journals: list[dict[str, Any]]) -> pl.DataFrame:
    cols: dict[str, list[Any]] = {k: [] for k in (
        "journal_line_id", "journal_id", "journal_number", "journal_date", "created_at", "source_type",
        "source_id", "reference", "account_id", "account_code", "account_type", "account_name",
        "description", "net_amount", "gross_amount", "tax_amount", "tax_type", "tracking")}
    for j in journals:
        jd = parse_xero_date(j.get("JournalDate"))
        created = parse_xero_datetime(j.get("CreatedDateUTC"))
        for n, ln in enumerate(j.get("JournalLines") or []):
            cols["journal_line_id"].append(ln.get("JournalLineID") or f"{j.get('JournalID')}:{n}")
            cols["journal_id"].append(j.get("JournalID"))
            cols["journal_number"].append(j.get("JournalNumber"))
            cols["journal_date"].append(jd)
            cols["created_at"].append(created)
            cols["source_type"].append(j.get("SourceType"))
            cols["source_id"].append(j.get("SourceID"))
            cols["reference"].append(j.get("Reference"))
            cols["account_id"].append(ln.get("AccountID"))
            cols["account_code"].append(ln.get("AccountCode"))
            cols["account_type"].append(ln.get("AccountType"))
            cols["account_name"].append(ln.get("AccountName"))
            cols["description"].append(ln.get("Description"))
            cols["net_amount"].append(ln.get("NetAmount"))
            cols["gross_amount"].append(ln.get("GrossAmount"))
            cols["tax_amount"].append(ln.get("TaxAmount"))
            cols["tax_type"].append(ln.get("TaxType"))
            cols["tracking"].append(_dumps(ln.get("TrackingCategories") or []))
    out = {}
    for k, v in cols.items():
        if k in ("net_amount", "gross_amount", "tax_amount"):
            out[k] = _money_col(v)
        elif k == "journal_number":
            out[k] = pl.Series(k, [int(x) if x is not None else None for x in v], dtype=pl.Int64)
        elif k == "journal_date":
            out[k] = pl.Series(k, v, dtype=pl.Date)
        elif k == "created_at":
            out[k] = _dt_col(k, v)
        else:
            out[k] = pl.Series(k, v, dtype=pl.String)
    return pl.DataFrame(out)


# -- P&L tie-out: the cause of a difference, account by account ----------------------------------
# Xero's system accounts for currency gains. Unrealised gains are computed when a report runs and
# are in no journal; the three are often one "Foreign Currency Gains and Losses" row (FXGROUPID).
FX_SYSTEM_ACCOUNTS = ("UNREALISEDCURRENCYGAIN", "REALISEDCURRENCYGAIN", "BANKCURRENCYGAIN")
PROFIT_SIGN = {"income": 1, "other_income": 1, "cost_of_sales": -1, "operating_expenses": -1}
CAUSES = {
    "unrealised_fx": "unrealised currency gains (Xero computes them when the report runs; no journal carries them)",
    "journal_after_report": "journals posted after the report was fetched (the next sync refetches the report)",
    "journal_not_synced": "a journal dated in the week not yet synced (the report was fetched after the journals)",
    "layout": "an account the report layout moves out of or into the P&L",
}


@dataclass
class TieoutCauses:
    explained: bool
    sentence: str
    accounts: list[dict[str, Any]]     # account_id, account_code, account_name, difference, cause (None: not found)


def tieout_causes(difference: Decimal, report_lines: list[dict[str, Any]], journal_lines: list[dict[str, Any]], accounts: dict[str, dict[str, Any]],
                  *, report_synced_at: datetime | None = None, journals_synced_at: datetime | None = None) -> TieoutCauses:
    """Why a week's P&L report and its journals disagree, account by account.

    `report_lines`: the week's pnl_lines (account_id, section, account_code, account_name, amount as
    the report shows it); `journal_lines`: its journal lines on any account (account_id, account_code,
    account_type, account_name, net_amount debit-positive, created_at); `accounts`: account_id ->
    {code, name, type, system}. Each account's effect on profit is compared; the currency-gain
    accounts are compared as one (Xero may show them as one FXGROUPID row). A difference's cause:
    `unrealised_fx` on the currency-gain accounts; `journal_after_report` when journals created after
    the report was fetched account for it exactly; `journal_not_synced` when the report is newer than
    the last journal sync; `layout` for a report row with no account, a journal account the report
    leaves out, or a report account that is not a P&L account. Explained only when every difference
    has a cause and the accounts' differences add up to the week's."""
    def key(aid: str | None) -> str:
        a = accounts.get(aid or "") or {}
        return "fx" if (aid == "FXGROUPID" or a.get("system") in FX_SYSTEM_ACCOUNTS) else (aid or "")

    report: dict[str, Decimal] = {}
    info: dict[str, dict[str, Any]] = {}
    for ln in report_lines:
        k = key(ln["account_id"])
        report[k] = report.get(k, ZERO) + PROFIT_SIGN.get(ln["section"], -1) * (ln["amount"] or ZERO)
        info.setdefault(k, {"account_id": ln["account_id"], "account_code": ln.get("account_code"),
                            "account_name": ln.get("account_name")})
    journal: dict[str, Decimal] = {}
    late: dict[str, Decimal] = {}
    for ln in journal_lines:
        typ = ln.get("account_type") or (accounts.get(ln["account_id"] or "") or {}).get("type")
        if typ not in TYPE_SECTION:
            continue
        k = key(ln["account_id"])
        effect = -(ln["net_amount"] or ZERO)
        journal[k] = journal.get(k, ZERO) + effect
        created = ln.get("created_at")
        if report_synced_at is not None and created is not None and created > report_synced_at:
            late[k] = late.get(k, ZERO) + effect
        info.setdefault(k, {"account_id": ln["account_id"], "account_code": ln.get("account_code"),
                            "account_name": ln.get("account_name")})
    found: list[dict[str, Any]] = []
    for k in sorted(set(report) | set(journal), key=lambda x: (info[x].get("account_code") or "", x)):
        d = report.get(k, ZERO) - journal.get(k, ZERO)
        if not d:
            continue
        acct = accounts.get(info[k]["account_id"] or "") or {}
        if k == "fx":
            cause = "unrealised_fx"
            info[k] = {"account_id": info[k]["account_id"], "account_code": acct.get("code") or info[k]["account_code"],
                       "account_name": "Foreign currency gains and losses"}
        elif late.get(k) and d == -late[k]:
            cause = "journal_after_report"
        elif k not in report or str(k).startswith("name:") or (acct and acct.get("type") not in TYPE_SECTION):
            cause = "layout"
        elif (report_synced_at is not None and journals_synced_at is not None and report_synced_at > journals_synced_at):
            cause = "journal_not_synced"
        else:
            cause = None
        found.append({**info[k], "difference": d, "cause": cause})
    explained = bool(found) and all(f["cause"] for f in found) and sum((f["difference"] for f in found), ZERO) == difference
    parts = []
    for c in dict.fromkeys(f["cause"] for f in found):
        amount = sum((f["difference"] for f in found if f["cause"] == c), ZERO)
        names = ", ".join(f"{f['account_code'] or ''} {f['account_name'] or ''}".strip() for f in found if f["cause"] == c)
        parts.append(f"{CAUSES[c] if c else 'no cause found'}: {amount:,.2f} on {names}")
    rest = difference - sum((f["difference"] for f in found), ZERO)
    if rest:
        parts.append(f"no cause found: {rest:,.2f} not on any account (the report's lines do not add up to its net profit)")
    return TieoutCauses(explained, "; ".join(parts), [{**f, "difference": str(f["difference"])} for f in found])
