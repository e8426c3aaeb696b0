"""One ledger, every view of it: the fake's reports agree with its documents and its journals,
a week is the sum of its days, money is exact, and the same seed serves the same bytes."""
from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from fake_schema import parse, template_for, validate_accounting
from xero_core.fake.accounting import handle_accounting
from xero_core.fake.ledger import generate_org

TODAY = date(2026, 11, 26)
NOW = datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc)
JSON = {"accept": "application/json"}
INCOME_SIDE = {"ACCREC": 1, "RECEIVE": 1, "ACCPAYCREDIT": 1, "ACCPAY": -1, "SPEND": -1, "ACCRECCREDIT": -1}
SECTION = {"REVENUE": "Income", "SALES": "Income", "DIRECTCOSTS": "Less Cost of Sales",
           "OTHERINCOME": "Plus Other Income", "EXPENSE": "Less Operating Expenses",
           "OVERHEADS": "Less Operating Expenses", "DEPRECIATN": "Less Operating Expenses"}


@pytest.fixture(scope="module")
def org():
    return generate_org(11, TODAY, years=1.0, invoices=2500)


def ok(org, sub, params=None, headers=None):
    status, _, body = handle_accounting(org, "GET", sub, params or {}, {**JSON, **(headers or {})}, b"", NOW)
    assert status == 200, body[:300]
    return validate_accounting(template_for(sub), body)     # every served body meets Xero's schema


def all_pages(org, sub, plural, where):
    out = []
    for page in range(1, 1000):
        got = ok(org, sub, {"where": where, "page": str(page), "pageSize": "1000"})[plural]
        out += got
        if len(got) < 1000:
            return out
    raise AssertionError("paging did not stop")


def dt(d: date) -> str:
    return f"DateTime({d.year},{d.month:02d},{d.day:02d})"


def report_accounts(doc) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(AccountID -> first-column value, computed row label -> value) from a served report."""
    accounts, computed = {}, {}
    for sec in doc["Reports"][0]["Rows"]:
        for row in sec.get("Rows", []):
            cells = row["Cells"]
            if row["RowType"] == "Row" and cells[0].get("Attributes"):
                accounts[cells[0]["Attributes"][0]["Value"]] = Decimal(cells[1]["Value"])
            else:
                computed[cells[0]["Value"]] = Decimal(cells[1]["Value"])
    return accounts, computed


def served_pnl(org, d_from, d_to) -> tuple[dict, dict]:
    return report_accounts(ok(org, "/Reports/ProfitAndLoss", {"fromDate": str(d_from), "toDate": str(d_to)}))


def random_ranges(seed: int, n: int, first: date, last: date):
    rng = random.Random(seed)
    for _ in range(n):
        start = first + timedelta(days=rng.randrange((last - first).days))
        end = min(last, start + timedelta(days=rng.choice((0, 3, 6, 13, 30))))
        yield start, end


@pytest.mark.slow
def test_journals_balance_and_lines_add_up(org):
    for j in org.journals:
        lines = org.journal_lines(j)
        assert sum(l.net for l in lines) == 0, j.number
        for l in lines:
            assert l.gross == l.net + l.tax
    for doc in (*org.invoices, *org.bank_transactions, *org.credit_notes):
        assert doc.total == doc.subtotal + doc.total_tax
        for line in doc.lines:
            assert line.amount == line.qty * line.unit
            if line.tax_type in ("OUTPUT", "INPUT"):
                assert abs(line.tax * 10 - line.amount) <= 5        # GST 10%, rounded to the cent
    posted = defaultdict(int)       # postings less reversals, per document
    for j in org.journals:
        posted[id(j.source)] += -1 if j.reversal else 1
    for doc in (*org.invoices, *org.bank_transactions, *org.credit_notes):
        if getattr(doc, "transfer", None) is not None:
            continue        # transfers post once, through their Transfer
        assert posted[id(doc)] == (doc.status in ("AUTHORISED", "PAID")), (type(doc).__name__, doc.status)
    assert {"DELETED", "AUTHORISED"} <= {b.status for b in org.bank_transactions}
    assert {"VOIDED", "DRAFT", "PAID"} <= {i.status for i in org.invoices if i.type == "ACCPAY"}
    # sales credit notes of every kind: open, fully applied to an invoice, voided after posting, split
    # over two regions, draft; and a supplier credit
    sales_cn = [c for c in org.credit_notes if c.type == "ACCRECCREDIT"]
    assert {"DRAFT", "AUTHORISED", "PAID", "VOIDED"} <= {c.status for c in sales_cn}
    assert any(len({l.region for l in c.lines}) > 1 for c in sales_cn)
    assert any(j.reversal and j.source.status == "VOIDED" for j in org.journals if j.source_type == "ACCRECCREDIT")
    for c in sales_cn:
        assert (c.status == "PAID") == (c.remaining == 0 and c.status not in ("VOIDED", "DELETED"))
        for a in c.allocations:
            assert a.invoice.contact is c.contact and a in a.invoice.credit_allocations
    assert any(c.type == "ACCPAYCREDIT" for c in org.credit_notes)


@pytest.mark.slow
def test_pnl_equals_served_documents_and_journals(org):
    accounts = {a["Code"]: a for a in ok(org, "/Accounts")["Accounts"]}
    fx_id = next(a["AccountID"] for a in accounts.values() if a.get("SystemAccount") == "UNREALISEDCURRENCYGAIN")
    realised_id = next(a["AccountID"] for a in accounts.values() if a.get("SystemAccount") == "REALISEDCURRENCYGAIN")
    for d_from, d_to in random_ranges(5, 3, org.start, TODAY - timedelta(days=1)):
        where = f"Date>={dt(d_from)} AND Date<={dt(d_to)}"
        from_docs: dict[str, Decimal] = defaultdict(Decimal)     # AccountID -> report-signed value
        docs = [("Invoices", d) for d in all_pages(org, "/Invoices", "Invoices", where)]
        docs += [("CreditNotes", d) for d in all_pages(org, "/CreditNotes", "CreditNotes", where)]
        docs += [("BankTransactions", d) for d in all_pages(org, "/BankTransactions", "BankTransactions", where)]
        for _, doc in docs:
            if doc["Status"] not in ("AUTHORISED", "PAID") or doc["Type"] not in INCOME_SIDE:
                continue
            for line in doc["LineItems"]:
                acct = accounts[line["AccountCode"]]
                if acct["Type"] not in SECTION:
                    continue
                # base currency: each line / the document's CurrencyRate, rounded to the cent
                base = (line["LineAmount"] / (doc.get("CurrencyRate") or 1)).quantize(Decimal("0.01"), "ROUND_HALF_UP")
                net = -INCOME_SIDE[doc["Type"]] * base       # debit-positive
                from_docs[acct["AccountID"]] += -net if acct["Class"] == "REVENUE" else net
        # Realised currency gains: what a foreign invoice's payment banked against its value at the
        # invoice's own rate (a loss, as an expense-side account shows it, is positive).
        invoices = {i["InvoiceID"]: i for i in all_pages(org, "/Invoices", "Invoices", 'CurrencyCode!="AUD"')}
        for p in all_pages(org, "/Payments", "Payments", where):
            inv = invoices.get(p["Invoice"]["InvoiceID"])
            if inv is None:
                continue
            at_invoice_rate = (p["Amount"] / inv["CurrencyRate"]).quantize(Decimal("0.01"), "ROUND_HALF_UP")
            gain = p["BankAmount"] - at_invoice_rate
            from_docs[realised_id] += -gain if p["PaymentType"] == "ACCRECPAYMENT" else gain
        served, computed = served_pnl(org, d_from, d_to)
        fx = served.pop(fx_id, Decimal(0))
        assert {k: v for k, v in from_docs.items() if v} == served, (d_from, d_to)
        # journals (model view) give the same numbers, without the report-only revaluation
        truth = org.profit_and_loss(d_from, d_to, include_report_only=False)
        j_net = defaultdict(int)
        for j in org.journals:
            if d_from <= j.date <= d_to:
                for l in org.journal_lines(j):
                    j_net[l.account.type] += l.net
        income = -(j_net["REVENUE"] + j_net["SALES"])
        assert Decimal(income) / 100 == truth["income"] == computed.get("Total Income", 0)
        assert Decimal(j_net["DIRECTCOSTS"]) / 100 == truth["cost_of_sales"]
        # The P&L differs from the journals by exactly the unrealised FX line.
        assert computed["Net Profit"] == truth["net_profit"] - fx
        assert org.profit_and_loss(d_from, d_to)["net_profit"] == computed["Net Profit"]


def test_fx_revaluation_is_in_reports_but_not_journals(org):
    """Open foreign documents (sales invoices and credit notes in USD, NZD, GBP, EUR, and a USD bill)
    are revalued at each month-end: the P&L shows the change in their base value, the journals never
    do, and the amount follows from the served documents and the month-end rate."""
    fx = org.unrealised_fx_account
    year = (org.start, TODAY - timedelta(days=1))
    assert org.account_net(fx, *year) != 0
    assert org.account_net(fx, *year, include_report_only=False) == 0
    assert all(l.account is not fx for j in org.journals for l in org.journal_lines(j))
    served, _ = served_pnl(org, *year)
    assert served[fx.id] == Decimal(org.account_net(fx, *year)) / 100
    cent = Decimal("0.01")
    invoices = ok(org, "/Invoices", {"where": 'CurrencyCode!="AUD"', "page": "1"})["Invoices"]
    credits = ok(org, "/CreditNotes", {"where": 'CurrencyCode!="AUD"'})["CreditNotes"]
    assert {i["CurrencyCode"] for i in invoices} == {"USD", "NZD", "GBP", "EUR"} and credits
    assert {"PAID", "AUTHORISED"} <= {i["Status"] for i in invoices if i["Type"] == "ACCREC"}
    last = max(org.fx_rates)      # the last month-end: the history's gains are its open balances' revaluation
    gain = Decimal(0)
    for doc in invoices + credits:
        rate = doc["CurrencyRate"]
        assert rate != 1
        booked = sum(((ln["LineAmount"] + ln["TaxAmount"]) / rate).quantize(cent, "ROUND_HALF_UP")
                     for ln in doc["LineItems"])
        paid = [p for p in doc.get("Payments", []) if ms_day(p["Date"]) <= last]
        if ms_day(doc["Date"]) > last or sum(p["Amount"] for p in paid) == doc["Total"]:
            continue
        due = doc["Total"] - sum(p["Amount"] for p in paid)
        carried = booked - sum((p["Amount"] / rate).quantize(cent, "ROUND_HALF_UP") for p in paid)
        value = (due / org.rate(doc["CurrencyCode"], last)).quantize(cent, "ROUND_HALF_UP")
        change = value - carried        # more base value: a gain on a receivable, a loss on a payable
        gain += change if doc["Type"] == "ACCREC" else -change
    assert served[fx.id] == -gain       # a gain shows negative on an expense-side account


def ms_day(value: str) -> date:
    return datetime.fromtimestamp(int(value[6:].split("+")[0].split(")")[0]) / 1000, timezone.utc).date()


def test_bank_summary_equals_served_payments_and_bank_transactions(org):
    banks = {a["AccountID"]: a for a in ok(org, "/Accounts", {"where": 'Type=="BANK"'})["Accounts"]}
    assert len(banks) >= 2
    for d_from, d_to in random_ranges(9, 4, org.start, TODAY - timedelta(days=1)):
        where = f"Date>={dt(d_from)} AND Date<={dt(d_to)}"
        received, spent = defaultdict(Decimal), defaultdict(Decimal)
        for p in all_pages(org, "/Payments", "Payments", where):
            side = received if p["PaymentType"] == "ACCRECPAYMENT" else spent
            side[p["Account"]["AccountID"]] += p["BankAmount"]      # in the bank account's currency
        for b in all_pages(org, "/BankTransactions", "BankTransactions", where):
            if b["Status"] != "AUTHORISED":
                continue
            side = received if b["Type"].startswith("RECEIVE") else spent
            side[b["BankAccount"]["AccountID"]] += b["Total"]
        doc = ok(org, "/Reports/BankSummary", {"fromDate": str(d_from), "toDate": str(d_to)})
        rows = [r for s in doc["Reports"][0]["Rows"] for r in s.get("Rows", []) if r["RowType"] == "Row"]
        assert len(rows) == len(banks)
        for r in rows:
            aid = r["Cells"][0]["Attributes"][0]["Value"]
            opening, rec, spe, closing = (Decimal(c["Value"]) for c in r["Cells"][1:])
            assert (rec, spe) == (received[aid], spent[aid]), (d_from, d_to, banks[aid]["Name"])
            assert closing == opening + rec - spe
            truth = org.bank_summary(d_from, d_to)[banks[aid]["Name"]]
            assert (opening, closing) == (truth["opening"], truth["closing"])


def test_a_week_is_the_sum_of_its_days(org):
    monday = date(2026, 10, 5)
    week, week_computed = served_pnl(org, monday, monday + timedelta(days=6))
    days = defaultdict(Decimal)
    net = Decimal(0)
    for k in range(7):
        d = monday + timedelta(days=k)
        accts, computed = served_pnl(org, d, d)
        for aid, v in accts.items():
            days[aid] += v
        net += computed["Net Profit"]
    assert {k: v for k, v in days.items() if v} == week
    assert net == week_computed["Net Profit"]
    assert week_computed["Total Income"] > 0


def test_balance_sheet_and_trial_balance_balance(org):
    doc = ok(org, "/Reports/BalanceSheet", {"date": "2026-10-31", "periods": "2"})
    rows = {r["Cells"][0]["Value"]: [Decimal(c["Value"]) for c in r["Cells"][1:]]
            for s in doc["Reports"][0]["Rows"] for r in s.get("Rows", [])}
    assert rows["Net Assets"] == rows["Total Equity"]
    assert len(rows["Net Assets"]) == 3
    tb = ok(org, "/Reports/TrialBalance", {"date": "2026-10-31"})
    total = tb["Reports"][0]["Rows"][-1]["Rows"][0]["Cells"]
    assert total[0]["Value"] == "Total" and total[3]["Value"] == total[4]["Value"]


def test_multi_period_columns_are_the_same_report_shifted(org):
    doc = ok(org, "/Reports/ProfitAndLoss",
             {"fromDate": "2026-10-01", "toDate": "2026-10-31", "periods": "2", "timeframe": "MONTH"})
    header = doc["Reports"][0]["Rows"][0]["Cells"]
    assert [c["Value"] for c in header] == ["", "31 Oct 26", "30 Sep 26", "31 Aug 26"]
    net = next(r for s in doc["Reports"][0]["Rows"] for r in s.get("Rows", []) if r["Cells"][0]["Value"] == "Net Profit")
    _, sep = served_pnl(org, date(2026, 9, 1), date(2026, 9, 30))
    assert Decimal(net["Cells"][2]["Value"]) == sep["Net Profit"]


def test_tracking_columns_add_up_to_total(org):
    region = org.tracking[0]
    doc = ok(org, "/Reports/ProfitAndLoss", {"fromDate": "2026-10-01", "toDate": "2026-10-31",
                                             "trackingCategoryID": region.id})
    header = [c["Value"] for c in doc["Reports"][0]["Rows"][0]["Cells"]]
    assert header[1:] == [o.name for o in region.options] + ["Unassigned", "Total"]
    for s in doc["Reports"][0]["Rows"][1:]:
        for r in s["Rows"]:
            vals = [Decimal(c["Value"]) for c in r["Cells"][1:]]
            assert sum(vals[:-1]) == vals[-1], r["Cells"][0]["Value"]
    opt = region.options[1]
    one = ok(org, "/Reports/ProfitAndLoss", {"fromDate": "2026-10-01", "toDate": "2026-10-31",
                                             "trackingCategoryID": region.id, "trackingOptionID": opt.id})
    _, computed = report_accounts(one)
    col = header.index(opt.name)
    income_row = next(r for s in doc["Reports"][0]["Rows"] for r in s.get("Rows", [])
                      if r["Cells"][0]["Value"] == "Total Income")
    assert computed["Total Income"] == Decimal(income_row["Cells"][col]["Value"])


def test_same_seed_same_bytes_different_seed_different_data():
    a = generate_org(21, TODAY, years=0.5, invoices=400)
    b = generate_org(21, TODAY, years=0.5, invoices=400)
    c = generate_org(22, TODAY, years=0.5, invoices=400)
    fixed = {"xero-correlation-id": "00000000-0000-4000-8000-000000000000"}
    requests = [("/Invoices", {"page": "1"}), ("/Contacts", {"includeArchived": "true"}),
                ("/BankTransactions", {"page": "2"}), ("/Journals", {"offset": "100"}), ("/Accounts", {}),
                ("/Reports/ProfitAndLoss", {"fromDate": "2026-09-01", "toDate": "2026-09-30"}),
                ("/Reports/BankSummary", {"fromDate": "2026-09-01", "toDate": "2026-09-30"})]
    for sub, params in requests:
        ra = handle_accounting(a, "GET", sub, params, {**JSON, **fixed}, b"", NOW)
        rb = handle_accounting(b, "GET", sub, params, {**JSON, **fixed}, b"", NOW)
        rc = handle_accounting(c, "GET", sub, params, {**JSON, **fixed}, b"", NOW)
        assert ra == rb, sub
        assert ra[2] != rc[2], sub
        # without a fixed correlation id, only Id (and DateTimeUTC, with another clock) differ
        free = handle_accounting(a, "GET", sub, params, JSON, b"", NOW)[2]
        strip = lambda body: {k: v for k, v in parse(body).items() if k not in ("Id", "DateTimeUTC")}  # noqa: E731
        assert strip(free) == strip(ra[2])


@pytest.mark.slow
def test_default_org_is_a_believable_trades_business():
    org = generate_org(42, TODAY)
    sales = [i for i in org.invoices if i.type == "ACCREC"]
    assert 9000 <= len(sales) <= 11500
    year = org.profit_and_loss(TODAY - timedelta(days=364), TODAY - timedelta(days=1))
    weekly = year["income"] / 52
    assert Decimal(200_000) <= weekly <= Decimal(300_000), weekly
    assert Decimal("0.25") <= year["cost_of_sales"] / year["income"] <= Decimal("0.36")
    statuses = {i.status for i in sales}
    assert {"DRAFT", "SUBMITTED", "VOIDED", "DELETED", "AUTHORISED", "PAID"} <= statuses
    split = [i for i in sales if len({l.region for l in i.lines}) > 1]
    assert len(split) > 100
    jobs = {l.job.name for i in sales for l in i.lines}
    assert jobs == {"Residential", "Commercial", "Retrospective"}
    assert {bt.bank.code for bt in org.bank_transactions} >= {"090", "091", "092"}
    # growth: the same ten months a year later bring in more
    grew = org.profit_and_loss(date(2026, 1, 1), date(2026, 10, 31))["income"] / \
        org.profit_and_loss(date(2025, 1, 1), date(2025, 10, 31))["income"]
    assert Decimal("1.03") < grew < Decimal("1.25"), grew
    # regions differ in seasonality: their share of income moves between months
    region = org.tracking[0]
    jan = {o.name: org.profit_and_loss(date(2026, 1, 1), date(2026, 1, 31), region=o)["income"] for o in region.options}
    oct_ = {o.name: org.profit_and_loss(date(2026, 10, 1), date(2026, 10, 31), region=o)["income"] for o in region.options}
    share = lambda m, k: m[k] / sum(m.values())  # noqa: E731
    assert abs(share(jan, "Central Coast") - share(oct_, "Central Coast")) > Decimal("0.02")


def test_mutations_post_and_notify():
    org = generate_org(5, TODAY, years=0.3, invoices=300)
    events = []
    org.listeners.append(lambda *e: events.append(e))
    at = datetime(2026, 11, 26, 1, 0, tzinfo=timezone.utc)
    inv = next(i for i in org.invoices if i.type == "ACCREC" and i.status == "AUTHORISED" and not i.payments
               and i.rate is None)
    before = org.profit_and_loss(inv.date, inv.date)["income"]
    n_journals = len(org.journals)
    org.void_invoice(inv.id, at)
    assert inv.status == "VOIDED" and len(org.journals) == n_journals + 1 and org.journals[-1].reversal
    assert org.profit_and_loss(inv.date, inv.date)["income"] == before - Decimal(inv.subtotal) / 100
    assert events[-1] == ("INVOICE", "UPDATE", inv.id, at)
    doc = ok(org, "/Invoices", {"page": "1"}, {"if-modified-since": "2026-11-26T00:30:00"})
    assert [i["InvoiceID"] for i in doc["Invoices"]] == [inv.id]

    cust = org.contacts[0]
    new = org.add_invoice(cust.id, date(2026, 11, 25), [
        {"description": "Call-out", "quantity": 2, "unit_amount": "150.00", "account_code": "205",
         "region": "Hunter", "job_type": "Commercial"}], at)
    assert events[-1] == ("INVOICE", "CREATE", new.id, at)
    assert new.total == 33000 and org.get(type(new), new.id) is new
    got = ok(org, f"/Invoices/{new.id}")["Invoices"][0]
    assert got["Total"] == Decimal("330.00") and got["LineItems"][0]["Tracking"][0]["Option"] == "Hunter"
    org.pay_invoice(new.id, date(2026, 11, 25), at)
    assert new.status == "PAID" and new.amount_due == 0
    with pytest.raises(ValueError, match="payments"):
        org.void_invoice(new.id, at)

    org.update_contact(cust.id, at, EmailAddress="new@example.com.au")
    assert events[-1] == ("CONTACT", "UPDATE", cust.id, at)
    keep, dup = org.contacts[1], org.contacts[2]
    org.merge_contact(dup.id, keep.id, at)
    served = {c["ContactID"]: c for c in ok(org, "/Contacts", {"includeArchived": "true"})["Contacts"]}
    assert served[dup.id]["MergedToContactID"] == keep.id and served[dup.id]["ContactStatus"] == "ARCHIVED"
    assert dup.id not in {c["ContactID"] for c in ok(org, "/Contacts")["Contacts"]}
    assert not [i for i in org.invoices if i.contact is dup]
    assert (dup.ContactID, dup.ContactStatus, dup.MergedToContactID) == (dup.id, "ARCHIVED", keep.id)
    assert cust.EmailAddress == "new@example.com.au" and new.InvoiceID == new.id and new.Status == "PAID"
    n_invoices = len(org.invoices)
    with pytest.raises(ValueError, match="outside the fake ledger"):
        org.add_invoice(cust.id, date(1999, 1, 1), [{"quantity": 1, "unit_amount": "1", "account_code": "200"}], at)
    assert len(org.invoices) == n_invoices
    with pytest.raises(KeyError):
        org.update_contact("00000000-0000-0000-0000-000000000000", at, Name="x")
    with pytest.raises(ValueError, match="unknown contact field"):
        org.update_contact(cust.id, at, Colour="red")


@pytest.mark.slow
def test_same_bytes_across_processes():
    """Nothing depends on hash randomisation or the machine: two interpreters, two hash seeds."""
    import hashlib
    import os
    import subprocess
    import sys

    script = (
        "import hashlib, sys\n"
        "from datetime import date, datetime, timezone\n"
        "from xero_core.fake.ledger import generate_org\n"
        "from xero_core.fake.accounting import handle_accounting\n"
        "org = generate_org(42, date(2026, 11, 26), years=0.3, invoices=300)\n"
        "now = datetime(2026, 11, 26, 3, tzinfo=timezone.utc)\n"
        "h = {'accept': 'application/json', 'xero-correlation-id': '00000000-0000-4000-8000-000000000000'}\n"
        "out = hashlib.sha256()\n"
        "for sub, p in [('/Invoices', {'page': '2'}), ('/Contacts', {'includeArchived': 'true'}),\n"
        "               ('/Journals', {'offset': '50'}), ('/Reports/ProfitAndLoss', {'fromDate': '2026-10-01'})]:\n"
        "    out.update(handle_accounting(org, 'GET', sub, p, h, b'', now)[2])\n"
        "print(out.hexdigest())\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": root}
        res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                             cwd=root)
        assert res.returncode == 0, res.stderr
        digests.add(res.stdout.strip())
    assert len(digests) == 1 and len(hashlib.sha256().hexdigest()) == len(digests.pop())


def test_credit_notes_post_allocate_and_void_like_xero():
    org = generate_org(6, TODAY, years=0.3, invoices=300)
    events = []
    org.listeners.append(lambda *e: events.append(e))
    at = datetime(2026, 11, 26, 1, 0, tzinfo=timezone.utc)
    inv = next(i for i in reversed(org.invoices) if i.type == "ACCREC" and i.status == "AUTHORISED" and not i.payments
               and not i.credited)
    d = inv.date + timedelta(days=2)
    before = org.profit_and_loss(d, d)
    n_journals = len(org.journals)
    cn = org.add_credit_note(inv.contact.id, d, [
        {"description": "Refund call-out", "quantity": 1, "unit_amount": "60.00", "account_code": "205",
         "region": "Hunter", "job_type": "Commercial"},
        {"description": "Refund parts", "quantity": 2, "unit_amount": "20.00", "account_code": "210",
         "region": "Illawarra", "job_type": "Commercial"}], at)
    assert events[-1] == ("CREDITNOTE", "CREATE", cn.id, at) and cn.number.startswith("CN-")
    assert (cn.subtotal, cn.total_tax, cn.total) == (10000, 1000, 11000) and len(org.journals) == n_journals + 1
    assert org.profit_and_loss(d, d)["income"] == before["income"] - Decimal("100.00")
    jl = {l.account.code: l.net for l in org.journal_lines(org.journals[-1])}
    assert jl == {"205": 6000, "210": 4000, "820": 1000, "610": -11000}
    got = ok(org, f"/CreditNotes/{cn.id}")["CreditNotes"][0]
    assert (got["Status"], got["RemainingCredit"], got["Allocations"]) == ("AUTHORISED", Decimal("110.00"), [])
    # applied to the invoice: no journal, the invoice's AmountDue and the credit's RemainingCredit fall
    org.allocate_credit_note(cn.id, inv.id, d, at)
    assert len(org.journals) == n_journals + 1 and cn.status == "PAID"
    got = ok(org, f"/CreditNotes/{cn.id}")["CreditNotes"][0]
    assert got["RemainingCredit"] == 0 and got["Allocations"][0]["Amount"] == Decimal("110.00")
    assert got["Allocations"][0]["Invoice"]["InvoiceID"] == inv.id and "FullyPaidOnDate" in got
    served_inv = ok(org, f"/Invoices/{inv.id}")["Invoices"][0]
    assert served_inv["AmountCredited"] == Decimal("110.00")
    assert served_inv["AmountDue"] == Decimal(inv.total - 11000) / 100
    assert served_inv["CreditNotes"][0]["CreditNoteID"] == cn.id
    with pytest.raises(ValueError, match="allocat"):
        org.void_credit_note(cn.id, at)
    with pytest.raises(ValueError, match="credit notes applied"):
        org.void_invoice(inv.id, at)
    # a second one, voided later: a reversing journal on its own date, the P&L as before
    cn2 = org.add_credit_note(inv.contact.id, d, [{"description": "Goodwill", "quantity": 1, "unit_amount": "50.00",
                                                   "account_code": "205"}], at)
    org.void_credit_note(cn2.id, at + timedelta(hours=1))
    assert cn2.status == "VOIDED" and org.journals[-1].reversal and org.journals[-1].date == d
    assert events[-1] == ("CREDITNOTE", "UPDATE", cn2.id, at + timedelta(hours=1))
    assert org.profit_and_loss(d, d)["income"] == before["income"] - Decimal("100.00")
    changed = ok(org, "/CreditNotes", {"page": "1"}, {"if-modified-since": "2026-11-26T01:30:00"})["CreditNotes"]
    assert [(c["CreditNoteID"], c["Status"], c["RemainingCredit"]) for c in changed] == [(cn2.id, "VOIDED", 0)]
    draft = org.add_credit_note(inv.contact.id, d, [{"quantity": 1, "unit_amount": "5", "account_code": "205"}], at,
                                status="DRAFT")
    assert org.void_credit_note(draft.id, at).status == "DELETED" and not org.journals[-1].source is draft
    with pytest.raises(KeyError):
        org.void_credit_note("00000000-0000-0000-0000-000000000000", at)


@pytest.mark.slow
def test_sales_revenue_is_invoices_less_credit_notes_and_ties_to_the_pnl(org):
    """The fake's revenue truth (what revenue_weekly should hold) from its served documents, and the
    tie-out with its P&L: Income = sales invoices - sales credit notes + cash sales, ex GST."""
    d_from, d_to = org.start, TODAY - timedelta(days=1)      # the whole year
    where = f"Date>={dt(d_from)} AND Date<={dt(d_to)}"
    want: dict[tuple, list] = defaultdict(lambda: [0, 0, Decimal(0), Decimal(0)])
    for plural, sign in (("Invoices", 1), ("CreditNotes", -1)):
        for doc in all_pages(org, f"/{plural}", plural, where):
            if doc["Type"] not in ("ACCREC", "ACCRECCREDIT") or doc["Status"] not in ("AUTHORISED", "PAID"):
                continue
            keys = set()
            for line in doc["LineItems"]:
                opt = {t["Name"]: t["Option"] for t in line["Tracking"]}
                key = (opt.get("Region", "Unassigned"), opt.get("Job Type", "Unassigned"))
                keys.add(key)
                rate = doc.get("CurrencyRate") or 1     # base currency: each line / the rate, to the cent
                want[key][2] += sign * (line["LineAmount"] / rate).quantize(Decimal("0.01"), "ROUND_HALF_UP")
                want[key][3] += sign * (line["TaxAmount"] / rate).quantize(Decimal("0.01"), "ROUND_HALF_UP")
            for key in keys:
                want[key][0 if sign > 0 else 1] += 1
    got = org.sales_revenue(d_from, d_to)
    assert {k: (v["invoices"], v["credit_notes"], v["subtotal"], v["total_tax"]) for k, v in got.items()} == \
        {k: tuple(v) for k, v in want.items()}
    assert sum(v["credit_notes"] for v in got.values()) >= 5
    for region in org.tracking[0].options:
        income = org.profit_and_loss(d_from, d_to, region=region)["income"]
        sales = sum(v["subtotal"] for (r, _), v in got.items() if r == region.name)
        cash = sum(v for (r, _), v in org.cash_sales(d_from, d_to).items() if r == region.name)
        assert income == sales + cash, region.name
