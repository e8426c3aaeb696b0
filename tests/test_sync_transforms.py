"""Pure transforms on hand-made payloads shaped exactly like real Xero (xero-notes §3/§4, xero-samples)."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import polars as pl
import pytest

from xero_core.sync import transforms as T
from xero_core.sync.weeks import recent_weeks, week_ending_for, week_start
from xero_reference import SAMPLES

D = Decimal


def acct_cell(value, acct):
    return {"Value": value, "Attributes": [{"Value": acct, "Id": "account"}]}


def row(name, amount, acct):
    return {"RowType": "Row", "Cells": [acct_cell(name, acct), acct_cell(amount, acct)]}


def summary(name, amount):
    return {"RowType": "SummaryRow", "Cells": [{"Value": name}, {"Value": amount}]}


def computed(name, amount):
    return {"RowType": "Section", "Rows": [{"RowType": "Row", "Cells": [{"Value": name}, {"Value": amount}]}]}


def pnl(sections, gross=None, net=None):
    rows = [{"RowType": "Header", "Cells": [{"Value": ""}, {"Value": "28 Feb 18"}]}]
    rows += sections
    if gross is not None:
        rows.append(computed("Gross Profit", gross))
    if net is not None:
        rows.append(computed("NET PROFIT", net))
    return {"Id": "x", "Status": "OK", "ProviderName": "t", "DateTimeUTC": "/Date(1519593468971)/",
            "Reports": [{"ReportID": "ProfitAndLoss", "ReportName": "Profit and Loss", "ReportType": "ProfitAndLoss",
                         "ReportTitles": ["Profit & Loss", "Demo", "1 to 7"], "ReportDate": "25 February 2018",
                         "UpdatedDateUTC": "/Date(1519593468971)/", "Fields": [], "Rows": rows}]}


def section(title, rows, total_name=None, total=None):
    s = {"RowType": "Section", "Title": title, "Rows": list(rows)}
    if total_name:
        s["Rows"].append(summary(total_name, total))
    return s


ACCOUNTS = {
    "a-sales": {"Type": "REVENUE", "Code": "200", "Name": "Sales"},
    "a-int": {"Type": "OTHERINCOME", "Code": "270", "Name": "Interest Income"},
    "a-cos": {"Type": "DIRECTCOSTS", "Code": "310", "Name": "Cost of Goods Sold"},
    "a-rent": {"Type": "EXPENSE", "Code": "469", "Name": "Rent"},
    "a-wages": {"Type": "OVERHEADS", "Code": "477", "Name": "Wages"},
}


def test_standard_au_layout_totals_to_the_cent():
    doc = pnl([
        section(" Income", [row("Sales", "9220.05", "a-sales")], "Total Income", "9220.05"),
        section("Less Cost of Sales", [row("Cost of Goods Sold", "2766.02", "a-cos")], "Total Cost of Sales", "2766.02"),
        section("Plus Other Income", [row("Interest Income", "10.10", "a-int")], "Total Other Income", "10.10"),
        section("Less Operating Expenses", [row("Rent", "1850.00", "a-rent"), row("Wages", "10864.22", "a-wages")],
                "Total Operating Expenses", "12714.22"),
    ], gross="6454.03", net="-6250.09")
    p = T.map_profit_and_loss(doc, ACCOUNTS)
    assert (p.income, p.cost_of_sales, p.other_income, p.operating_expenses) == (
        D("9220.05"), D("2766.02"), D("10.10"), D("12714.22"))
    assert p.gross_profit == D("6454.03") == p.income - p.cost_of_sales
    assert p.net_profit == D("-6250.09") == p.gross_profit + p.other_income - p.operating_expenses
    assert p.warnings == []
    assert {(ln["account_id"], ln["section"], ln["amount"]) for ln in p.lines} >= {
        ("a-sales", "income", D("9220.05")), ("a-rent", "operating_expenses", D("1850.00"))}


@pytest.mark.parametrize("income_title,cos_title,opex_title", [
    ("Trading Income", "Cost of Sales", "Operating Expenses"),
    ("Revenue", "Less Cost of Sales", "Expenses"),
    ("Income", "Direct Costs", "Less Operating Expenses"),
])
def test_title_variants(income_title, cos_title, opex_title):
    doc = pnl([
        section(income_title, [row("Sales", "100.00", "a-sales")], "Total", "100.00"),
        section(cos_title, [row("COGS", "30.00", "a-cos")], "Total", "30.00"),
        section(opex_title, [row("Rent", "50.00", "a-rent")], "Total", "50.00"),
    ], gross="70.00", net="20.00")
    p = T.map_profit_and_loss(doc, ACCOUNTS)
    assert (p.income, p.cost_of_sales, p.operating_expenses, p.net_profit) == (D("100"), D("30"), D("50"), D("20"))


def test_ambiguous_title_decided_by_account_types():
    # Two sections both titled "Income": the second holds OTHERINCOME accounts.
    doc = pnl([
        section("Income", [row("Sales", "500.00", "a-sales")], "Total Income", "500.00"),
        section("", [row("Rent", "100.00", "a-rent")], "Total", "100.00"),
        section("Income", [row("Interest", "7.25", "a-int")], "Total Income", "7.25"),
    ], net="407.25")
    p = T.map_profit_and_loss(doc, ACCOUNTS)
    assert p.income == D("500.00") and p.other_income == D("7.25") and p.operating_expenses == D("100.00")
    assert p.net_profit == D("407.25") and not p.warnings


def test_fxgroupid_and_unknown_account_kept_by_section():
    doc = pnl([
        section("Income", [row("Sales", "1000.00", "a-sales")], "Total Income", "1000.00"),
        section("Less Operating Expenses", [row("Rent", "100.00", "a-rent"),
                                            row("Foreign Currency Gains and Losses", "-3.17", "FXGROUPID"),
                                            row("Brand new account", "1.00", "a-new")],
                "Total Operating Expenses", "97.83"),
    ], gross="1000.00", net="902.17")
    p = T.map_profit_and_loss(doc, ACCOUNTS)
    assert p.operating_expenses == D("97.83") and p.net_profit == D("902.17")
    fx = [ln for ln in p.lines if ln["account_id"] == "FXGROUPID"]
    assert fx and fx[0]["section"] == "operating_expenses" and fx[0]["amount"] == D("-3.17")


def test_empty_report_and_empty_sections():
    p = T.map_profit_and_loss(pnl([section("Income", []), section("Less Operating Expenses", [])], net="0.00"))
    assert p.income == p.net_profit == D("0.00") and p.lines == []


def test_mismatch_with_xero_net_is_reported_not_hidden():
    doc = pnl([section("Income", [row("Sales", "10.00", "a-sales")], "Total Income", "10.00")], net="11.00")
    p = T.map_profit_and_loss(doc, ACCOUNTS)
    assert p.net_profit == D("11.00") and any("Net Profit" in w for w in p.warnings)


def test_bank_summary_spec_example():
    doc = json.loads((SAMPLES / "accounting_report_banksummary.spec-example.json").read_text())
    rows = T.map_bank_summary(doc)
    assert rows == [{"bank_account_id": "03f9cf1e-2deb-4bf1-b0a8-b57f08672eb8", "bank_account_name": "Big City Bank",
                     "opening": D("0.00"), "received": D("110.00"), "spent": D("100.00"), "closing": D("10.00")}]
    f = T.bank_frame("t1", [(date(2019, 4, 27), rows)])
    assert f["closing"].dtype == T.MONEY and f["closing"][0] == D("10.00")


def test_dates_are_utc_calendar_days():
    assert T.parse_xero_date("/Date(1563753600000+0000)/") == date(2019, 7, 22)
    # 23:30 UTC stays that day whatever the offset suffix says
    assert T.parse_xero_date("/Date(1563838200000+1000)/") == date(2019, 7, 22)
    assert T.parse_xero_datetime("/Date(1588633397422)/") == datetime(2020, 5, 4, 23, 3, 17, 422000, tzinfo=timezone.utc)
    assert T.parse_xero_datetime("2019-12-07T18:46:19.5165400").tzinfo is not None
    assert T.parse_xero_date(None) is None and T.parse_xero_date("garbage") is None


def invoice(iid, total, lines, status="AUTHORISED", typ="ACCREC", date_ms=1563753600000, tax="10.00", sub=None):
    sub = sub if sub is not None else str(D(total) - D(tax))
    return {
        "Type": typ, "InvoiceID": iid, "InvoiceNumber": f"INV-{iid}", "Status": status,
        "Contact": {"ContactID": "c1", "Name": "Ridgeway", "Addresses": [], "Phones": []},
        "Date": f"/Date({date_ms}+0000)/", "DueDate": f"/Date({date_ms + 86400000 * 14}+0000)/",
        "LineAmountTypes": "Exclusive", "LineItems": lines, "SubTotal": float(sub), "TotalTax": float(tax),
        "Total": float(total), "AmountDue": float(total), "AmountPaid": 0.0, "AmountCredited": 0.0,
        "CurrencyCode": "AUD", "CurrencyRate": 1.0, "UpdatedDateUTC": "/Date(1563800000000+0000)/",
        "Payments": [], "CreditNotes": [], "Prepayments": [], "Overpayments": [], "SomethingNew": {"x": 1},
    }


def li(lid, amount, region=None, jobtype=None, tax="0.00"):
    tracking = []
    if region:
        tracking.append({"TrackingCategoryID": "tc1", "TrackingOptionID": "o1", "Name": "Region", "Option": region})
    if jobtype:
        tracking.append({"TrackingCategoryID": "tc2", "TrackingOptionID": "o2", "Name": "Job Type", "Option": jobtype})
    return {"LineItemID": lid, "Description": "work", "Quantity": 1.0, "UnitAmount": float(amount),
            "AccountCode": "200", "TaxType": "OUTPUT", "TaxAmount": float(tax), "LineAmount": float(amount),
            "Tracking": tracking}


def test_invoice_frames_keep_raw_and_unknown_enums():
    inv, lines = T.invoice_frames([
        invoice("i1", "110.00", [li("l1", "100.00", "North", "Residential")]),
        invoice("i2", "55.00", [li("l2", "50.00")], status="SOMETHING_NEW_2027", tax="5.00"),
    ])
    assert inv["total"].to_list() == [D("110.00"), D("55.00")]
    assert inv["date"][0] == date(2019, 7, 22) and inv["status"][1] == "SOMETHING_NEW_2027"
    assert json.loads(inv["raw"][0])["SomethingNew"] == {"x": 1}
    assert lines["region"].to_list() == ["North", "Unassigned"]
    assert lines["revenue_type"].to_list() == ["Residential", "Unassigned"]


def test_allocation_adds_up_exactly():
    assert T.allocate(1000, [1, 1, 1]) == [334, 333, 333]
    assert sum(T.allocate(-1001, [3, 7])) == -1001
    assert T.allocate(500, [0, 0]) == [250, 250]
    assert sum(T.allocate(12345, [100, -20, 7])) == 12345


def test_revenue_weekly_splits_tax_in_proportion_and_parts_add_up():
    invs = [
        invoice("i1", "133.33", [li("a", "60.61", "North", "Residential"), li("b", "60.60", "South", "Commercial")],
                tax="12.12"),
        invoice("i2", "110.00", [li("c", "100.00", "North", "Residential")]),
        invoice("i3", "999.00", [li("d", "999.00", "North", "Residential")], status="VOIDED", tax="0.00"),
        invoice("i4", "50.00", [li("e", "50.00", "North", "Residential")], typ="ACCPAY", tax="0.00"),
        invoice("i5", "22.00", [li("f", "20.00", "North", "Residential")], status="PAID", tax="2.00"),
    ]
    inv, lines = T.invoice_frames(invs)
    rw = T.revenue_weekly_frame("t1", inv, lines, "saturday")
    assert rw["week_ending"].unique().to_list() == [date(2019, 7, 27)]
    assert sum(rw["total"].to_list()) == D("133.33") + D("110.00") + D("22.00")
    assert sum(rw["total_tax"].to_list()) == D("12.12") + D("10.00") + D("2.00")
    north = rw.filter((pl.col("region") == "North") & (pl.col("revenue_type") == "Residential")).row(0, named=True)
    assert north["invoice_count"] == 3
    for r in rw.iter_rows(named=True):
        assert r["subtotal"] + r["total_tax"] == r["total"]


def test_contacts_spec_example():
    doc = json.loads((SAMPLES / "accounting_contacts_response.spec-example.json").read_text())
    f = T.contacts_frame(doc["Contacts"])
    assert f.height == len(doc["Contacts"]) and f["email"][0] == "kat.warren@clampett.com"
    assert f["updated_at"][0].year == 2017


def test_journal_lines_frame():
    j = [{"JournalID": "j1", "JournalDate": "/Date(1563753600000+0000)/", "JournalNumber": 7,
          "CreatedDateUTC": "/Date(1563800000000+0000)/", "SourceType": "ACCREC", "SourceID": "i1",
          "JournalLines": [
              {"JournalLineID": "jl1", "AccountID": "a-sales", "AccountCode": "200", "AccountType": "REVENUE",
               "AccountName": "Sales", "NetAmount": -100.0, "GrossAmount": -110.0, "TaxAmount": -10.0,
               "TrackingCategories": []},
              {"JournalLineID": "jl2", "AccountID": "a-ar", "AccountCode": "610", "AccountType": "CURRENT",
               "AccountName": "AR", "NetAmount": 110.0, "GrossAmount": 110.0, "TaxAmount": 0.0,
               "TrackingCategories": []}]}]
    f = T.journal_lines_frame(j)
    assert f["net_amount"].to_list() == [D("-100.00"), D("110.00")] and f["journal_number"][0] == 7


def test_weeks():
    assert week_ending_for(date(2026, 11, 26)) == date(2026, 11, 28)  # Thursday -> Saturday
    assert week_ending_for(date(2026, 11, 28)) == date(2026, 11, 28)
    assert week_ending_for(date(2026, 11, 26), "sunday") == date(2026, 11, 29)
    assert week_start(date(2026, 11, 28)) == date(2026, 11, 22)
    assert recent_weeks(date(2026, 11, 26), 2) == [date(2026, 11, 21), date(2026, 11, 28)]


def test_revenue_weekly_uses_line_tax_when_it_adds_up():
    # 33.33 + 66.67 net, GST per line 3.33 + 6.67 = 10.00: each group keeps its own lines' tax.
    inv, lines = T.invoice_frames([invoice("i1", "110.00", [li("a", "33.33", "North", "Residential", tax="3.33"),
                                                             li("b", "66.67", "South", "Commercial", tax="6.67")])])
    rw = T.revenue_weekly_frame("t1", inv, lines)
    got = {r["region"]: (r["subtotal"], r["total_tax"], r["total"]) for r in rw.iter_rows(named=True)}
    assert got == {"North": (D("33.33"), D("3.33"), D("36.66")), "South": (D("66.67"), D("6.67"), D("73.34"))}


def test_revenue_weekly_inclusive_lines():
    rec = invoice("i1", "110.00", [li("a", "55.00", "North", tax="5.00"), li("b", "55.00", "South", tax="5.00")],
                  sub="100.00")
    rec["LineAmountTypes"] = "Inclusive"
    inv, lines = T.invoice_frames([rec])
    rw = T.revenue_weekly_frame("t1", inv, lines)
    assert sorted((r["subtotal"], r["total_tax"]) for r in rw.iter_rows(named=True)) == [(D("50.00"), D("5.00"))] * 2
    assert sum(rw["total"].to_list()) == D("110.00")


# -- credit notes (issue 13 §2) ----------------------------------------------------------------
def credit_note(cid, total, lines, *, status="AUTHORISED", typ="ACCRECCREDIT", date_ms=1563926400000, tax="0.00",
                sub=None, **extra):
    """Shaped like the spec's GET /CreditNotes example: no LineItemID, Payments (cash refunds),
    Allocations (to invoices), CurrencyRate 6 dp, RemainingCredit."""
    sub = sub if sub is not None else str(D(total) - D(tax))
    rec = {
        "CreditNoteID": cid, "CreditNoteNumber": f"CN-{cid}", "ID": cid, "Type": typ, "Reference": "US Tour",
        "Payments": [], "CurrencyRate": 1.0, "RemainingCredit": float(total), "Allocations": [],
        "HasAttachments": False, "Contact": {"ContactID": "c1", "Name": "Liam Gallagher", "Addresses": [],
                                             "Phones": [], "ContactGroups": [], "ContactPersons": []},
        "DateString": "2019-07-24T00:00:00", "Date": f"/Date({date_ms}+0000)/", "Status": status,
        "LineAmountTypes": "Exclusive", "LineItems": lines, "SubTotal": float(sub), "TotalTax": float(tax),
        "Total": float(total), "UpdatedDateUTC": "/Date(1563990000000+0000)/", "UpdatedDateUTCString": "2019-07-24T17:40:00Z",
        "CurrencyCode": "AUD", "Unknown2027": [1],
    }
    rec.update(extra)
    return rec


def cn_line(amount, region=None, jobtype=None, tax="0.00", with_tracking=True):
    ln = li(None, amount, region, jobtype, tax)
    del ln["LineItemID"]
    if not with_tracking:
        del ln["Tracking"]
    return ln


def test_credit_note_frames_read_what_xero_sends():
    recs = [
        credit_note("cn1", "34.50", [cn_line("30.00", tax="4.50", with_tracking=False)], tax="4.50",
                    CurrencyCode="NZD", CurrencyRate=1.082900, RemainingCredit=22.50,
                    Payments=[{"PaymentID": "p1", "Date": "/Date(1564012800000+0000)/", "Amount": 2.00,
                               "Reference": "Too much", "CurrencyRate": 1.0, "HasAccount": False}],
                    Allocations=[{"AllocationID": "a1", "Amount": 10.00, "Date": "/Date(1564012800000+0000)/",
                                  "Invoice": {"InvoiceID": "i1", "InvoiceNumber": "INV-1"}},
                                 {"AllocationID": "a2", "Amount": 5.00, "Date": "/Date(1564012800000+0000)/",
                                  "Invoice": {"InvoiceID": "i2"}, "IsDeleted": True}]),
        credit_note("cn2", "46.00", [cn_line("40.00", "North", "Residential", tax="6.00")], tax="6.00",
                    typ="ACCPAYCREDIT", status="DRAFT"),
    ]
    cn, lines = T.credit_note_frames(recs)
    r = cn.row(0, named=True)
    assert (r["credit_note_number"], r["type"], r["status"], r["contact_id"]) == ("CN-cn1", "ACCRECCREDIT", "AUTHORISED", "c1")
    assert r["date"] == date(2019, 7, 24) and r["updated_at"] == datetime(2019, 7, 24, 17, 40, tzinfo=timezone.utc)
    assert (r["subtotal"], r["total_tax"], r["total"], r["remaining_credit"]) == (D("30.00"), D("4.50"), D("34.50"), D("22.50"))
    assert (r["amount_allocated"], r["amount_refunded"]) == (D("10.00"), D("2.00"))   # a deleted allocation does not count
    assert r["currency_code"] == "NZD" and r["currency_rate"] == D("1.082900")
    assert json.loads(r["raw"])["Unknown2027"] == [1]
    assert cn.schema["total"] == T.MONEY and cn.schema["remaining_credit"] == T.MONEY
    assert lines["line_item_id"].to_list() == ["cn1:0", "cn2:0"]         # no LineItemID in the payload
    assert lines["credit_note_id"].to_list() == ["cn1", "cn2"]
    assert lines["region"].to_list() == ["Unassigned", "North"]          # no Tracking at all: Unassigned
    assert lines["line_amount"].to_list() == [D("30.00"), D("40.00")] and lines.schema["tax_amount"] == T.MONEY


def test_revenue_weekly_is_net_of_sales_credit_notes_in_their_own_week():
    inv, lines = T.invoice_frames([
        invoice("i1", "220.00", [li("a", "100.00", "North", "Residential", tax="10.00"),
                                 li("b", "100.00", "South", "Commercial", tax="10.00")], tax="20.00"),
    ])
    cns, cn_lines = T.credit_note_frames([
        # same week as the invoice, split over two regions, tax set on the document: shared in proportion
        credit_note("c1", "33.33", [cn_line("20.20", "North", "Residential"), cn_line("10.10", "South", "Commercial")],
                    tax="3.03", date_ms=1563753600000),
        # the next week, tax-inclusive, paid (refunded): counts
        credit_note("c2", "11.00", [cn_line("11.00", "North", "Residential", tax="1.00")], tax="1.00", sub="10.00",
                    status="PAID", LineAmountTypes="Inclusive", date_ms=1564358400000),
        # never counted: voided, draft, deleted, a supplier credit
        credit_note("c3", "500.00", [cn_line("500.00", "North", "Residential")], status="VOIDED"),
        credit_note("c4", "500.00", [cn_line("500.00", "North", "Residential")], status="DRAFT"),
        credit_note("c5", "500.00", [cn_line("500.00", "North", "Residential")], status="DELETED"),
        credit_note("c6", "500.00", [cn_line("500.00", "North", "Residential")], typ="ACCPAYCREDIT"),
    ])
    rw = T.revenue_weekly_frame("t1", inv, lines, "saturday", cns, cn_lines)
    got = {(r["week_ending"], r["region"]): (r["invoice_count"], r["credit_note_count"], r["subtotal"],
                                             r["total_tax"], r["total"]) for r in rw.iter_rows(named=True)}
    assert got == {
        (date(2019, 7, 27), "North"): (1, 1, D("79.80"), D("7.98"), D("87.78")),
        (date(2019, 7, 27), "South"): (1, 1, D("89.90"), D("8.99"), D("98.89")),
        (date(2019, 8, 3), "North"): (0, 1, D("-10.00"), D("-1.00"), D("-11.00")),
    }
    assert sum(rw["total"].to_list()) == D("220.00") - D("33.33") - D("11.00")
    # the credit notes alone (an organisation with no invoice in those weeks)
    empty_inv, empty_lines = T.invoice_frames([])
    alone = T.revenue_weekly_frame("t1", empty_inv, empty_lines, "saturday", cns, cn_lines)
    assert sum(alone["total"].to_list()) == D("-44.33") and alone["invoice_count"].sum() == 0


# -- issue 23 §1: base currency ----------------------------------------------------------------
def test_foreign_documents_convert_to_base_line_by_line():
    """Base amount = document amount / CurrencyRate, each line rounded to the cent (half away from
    zero), the document's base figures the sum of its lines'; the document's own currency, rate and
    amounts stay as sent. A base-currency document may come without a CurrencyRate at all."""
    usd = invoice("u1", "200.02", [li("l1", "100.01", "North", "Residential"), li("l2", "100.01", "South", "Commercial")],
                  tax="0.00")
    usd.update(CurrencyCode="USD", CurrencyRate=0.6543)
    aud = invoice("a1", "110.00", [li("l3", "100.00", "North", "Residential", tax="10.00")])
    del aud["CurrencyRate"]                       # Xero leaves it out for some base-currency documents
    inv, lines = T.invoice_frames([usd, aud], base_currency="AUD")
    u = inv.row(0, named=True)
    assert (u["currency_code"], u["currency_rate"], u["subtotal"], u["total"]) == ("USD", D("0.654300"), D("200.02"), D("200.02"))
    per_line = (D("100.01") / D("0.6543")).quantize(D("0.01"))   # 152.85: 152.849... rounds up
    assert u["base_subtotal"] == 2 * per_line == D("305.70")       # not 200.02 / 0.6543 = 305.70 by luck: see below
    assert lines["base_line_amount"].to_list()[:2] == [per_line, per_line]
    a = inv.row(1, named=True)
    assert (a["base_subtotal"], a["base_total_tax"], a["base_total"]) == (D("100.00"), D("10.00"), D("110.00"))
    # Per line, not per document: 3 x 0.01 at 0.3 is 3 x 0.03, where the document's 0.03 / 0.3 is 0.10.
    odd = invoice("o1", "0.03", [li(f"o{k}", "0.01") for k in range(3)], tax="0.00")
    odd.update(CurrencyCode="GBP", CurrencyRate=0.3)
    inv, _ = T.invoice_frames([odd], base_currency="AUD")
    assert inv["base_subtotal"].to_list() == [D("0.09")]
    # revenue_weekly adds base amounts: the USD invoice counts 305.70, split by its lines' regions
    inv, lines = T.invoice_frames([usd, aud], base_currency="AUD")
    rw = T.revenue_weekly_frame("t", inv, lines)
    assert sum(rw["subtotal"].to_list(), D(0)) == D("405.70")
    assert dict(zip(rw["region"].to_list(), rw["subtotal"].to_list())) == {"North": D("252.85"), "South": D("152.85")}


def test_a_foreign_document_without_a_rate_is_an_error_naming_it():
    from xero_core.errors import MissingCurrencyRate

    bad = invoice("x1", "50.00", [li("l1", "50.00")], tax="0.00")
    bad.update(CurrencyCode="NZD")
    del bad["CurrencyRate"]
    with pytest.raises(MissingCurrencyRate) as err:
        T.invoice_frames([bad], base_currency="AUD")
    assert "INV-x1" in str(err.value) and "NZD" in str(err.value) and "AUD" in str(err.value)
    cn = credit_note("c9", "20.00", [cn_line("20.00")], CurrencyCode="EUR", CurrencyRate=0)
    with pytest.raises(MissingCurrencyRate, match="CN-c9"):
        T.credit_note_frames([cn], base_currency="AUD")
    # in the base currency, no rate is needed; a foreign credit note with one converts
    ok = credit_note("c8", "20.00", [cn_line("20.00")], CurrencyCode="EUR", CurrencyRate=0.5)
    docs, lines = T.credit_note_frames([ok], base_currency="AUD")
    assert docs["base_total"].to_list() == [D("40.00")] and lines["base_line_amount"].to_list() == [D("40.00")]


# -- issue 23 §2: the organisation --------------------------------------------------------------
def test_organisation_row_maps_xero_timezones_to_iana():
    import re
    from zoneinfo import ZoneInfo

    from xero_core.timezones import iana_timezone
    from xero_reference import OPENAPI as SPECS

    rec = {"OrganisationID": "o1", "Name": "Kauri Coast", "LegalName": "Kauri Coast Ltd", "BaseCurrency": "NZD",
           "CountryCode": "NZ", "Timezone": "NEWZEALANDSTANDARDTIME", "FinancialYearEndDay": 31,
           "FinancialYearEndMonth": 3, "ShortCode": "!mBdtL", "OrganisationType": "COMPANY",
           "SalesTaxBasis": "PAYMENTS", "Version": "NZ", "Addresses": []}
    row = T.organisation_row(rec)
    assert (row["base_currency"], row["timezone"], row["xero_timezone"]) == ("NZD", "Pacific/Auckland", "NEWZEALANDSTANDARDTIME")
    assert (row["financial_year_end_month"], row["financial_year_end_day"]) == (3, 31)
    assert row["digest"] == T.organisation_row(dict(reversed(list(rec.items()))))["digest"]   # order-blind
    assert row["digest"] != T.organisation_row({**rec, "Name": "Kauri Coast 2"})["digest"]
    assert iana_timezone("AUSEASTERNSTANDARDTIME") == "Australia/Sydney"
    assert iana_timezone("GMTSTANDARDTIME") == "Europe/London"
    assert iana_timezone("AUS Eastern Standard Time") == "Australia/Sydney"     # as Windows spells it
    assert iana_timezone("CENTRALSTANDARDTIME(MEXICO)") == "America/Mexico_City"
    assert iana_timezone("UTC02") == "Etc/GMT+2" and iana_timezone("UTC+12") == "Etc/GMT-12"
    assert iana_timezone("Europe/Paris") == "Europe/Paris" and iana_timezone("NOTAZONE") is None
    # every value of Xero's TimeZone enum maps to a zone this machine knows
    spec = (SPECS / "xero_accounting.yaml").read_text()
    block = spec[spec.index("    TimeZone:"):spec.index("    PaymentTerm:")]
    values = re.findall(r"^\s+- (\S+)$", block, re.M)
    assert len(values) > 130
    for v in values:
        assert ZoneInfo(iana_timezone(v)), v


# -- issue 23 §4: the tie-out's causes ---------------------------------------------------------
def test_tieout_causes_are_found_account_by_account():
    at = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)
    accounts = {"sales": {"code": "200", "name": "Sales", "type": "REVENUE", "system": None},
                "fx": {"code": "498", "name": "Unrealised Currency Gains", "type": "OVERHEADS",
                       "system": "UNREALISEDCURRENCYGAIN"},
                "rent": {"code": "469", "name": "Rent", "type": "OVERHEADS", "system": None},
                "loan": {"code": "900", "name": "Loan", "type": "TERMLIAB", "system": None}}

    def rep(aid, section, amount):
        a = accounts.get(aid, {})
        return {"account_id": aid, "section": section, "account_code": a.get("code"), "account_name": a.get("name"),
                "amount": D(amount)}

    def jl(aid, net, created=at):
        a = accounts[aid]
        return {"account_id": aid, "account_code": a["code"], "account_type": a["type"], "account_name": a["name"],
                "net_amount": D(net), "created_at": created}

    # unrealised gains: on the report (a 12.34 loss shown positive in expenses), in no journal
    found = T.tieout_causes(D("-12.34"), [rep("sales", "income", "100.00"), rep("fx", "operating_expenses", "12.34")],
                            [jl("sales", "-100.00")], accounts)
    assert found.explained and found.accounts[0]["cause"] == "unrealised_fx"
    assert found.sentence.startswith("unrealised currency gains") and "-12.34" in found.sentence
    # a journal created after the report was fetched: the journals hold 50.00 of sales the report lacks
    later = at.replace(hour=5)
    found = T.tieout_causes(D("-50.00"), [rep("sales", "income", "100.00")],
                            [jl("sales", "-100.00"), jl("sales", "-50.00", later)], accounts, report_synced_at=at.replace(hour=4))
    assert found.explained and [a["cause"] for a in found.accounts] == ["journal_after_report"]
    # the report is newer than the last journal sync: a journal in the week may not be synced yet
    found = T.tieout_causes(D("30.00"), [rep("sales", "income", "130.00")], [jl("sales", "-100.00")], accounts,
                            report_synced_at=at, journals_synced_at=at.replace(hour=1))
    assert found.explained and found.accounts[0]["cause"] == "journal_not_synced"
    # the layout: a report row with no account, and a journal account the report leaves out
    found = T.tieout_causes(D("5.00"), [rep("sales", "income", "100.00"), rep("name:Adjustment", "income", "5.00")],
                            [jl("sales", "-100.00")], accounts)
    assert found.explained and found.accounts[0]["cause"] == "layout"
    found = T.tieout_causes(D("40.00"), [rep("sales", "income", "100.00")],
                            [jl("sales", "-100.00"), jl("rent", "40.00")], accounts)
    assert found.explained and found.accounts[0]["cause"] == "layout"
    # no cause: the report and the journals disagree on the same account, both current
    found = T.tieout_causes(D("7.00"), [rep("sales", "income", "107.00")], [jl("sales", "-100.00")], accounts,
                            report_synced_at=at, journals_synced_at=at.replace(hour=6))
    assert not found.explained and found.accounts[0]["cause"] is None and "no cause found" in found.sentence
