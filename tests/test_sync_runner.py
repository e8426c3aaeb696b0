"""The executor's orchestration and DuckDB writes, on the production path (the pipeline's plan and
executor, as `Engine.sync` runs it) with a stub client serving hand-made Xero payloads in place of
the HTTP one: sync_log rows, step isolation, tier skips, daily budget stop, tenant lock, cursors,
voids leaving revenue_weekly, repeatability.

These tests are about the layer below `Engine` on purpose: they call `pipeline.run.run_sync` (what
`Engine.sync` calls) with `client=`, a stub returning hand-made payloads (a 403 tier refusal, a daily
limit, a credit note voided in the cursor's own second) in place of the HTTP client. `Engine` takes an
HTTP transport, not a client: through it each payload would also need a connection's stored tokens
and a fake server shaped to say it. The same path over HTTP is test_sync_e2e's, through `Engine`."""
from __future__ import annotations

import json
import threading
from datetime import date, datetime, timezone
from decimal import Decimal

import httpx
import pytest

from xero_core import db
from xero_core.connections import upsert_tenants
from xero_core.errors import DailyLimitReached, FatalError, TierRefused
from xero_core.sync.locks import SyncBusy, tenant_lock
from xero_core.engine import Engine
from xero_core.pipeline.run import run_sync

from test_sync_transforms import ACCOUNTS, cn_line, credit_note, invoice, li, pnl, row, section

TENANT = "11111111-2222-3333-4444-555555555555"
TODAY = date(2026, 11, 26)  # Thursday: weeks end Sat 21 Nov and Sat 28 Nov
MS = lambda d: int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp() * 1000)  # noqa: E731


def sync_all(settings, tenant, *, client, today=TODAY, progress=None, **fields):
    """`Engine.sync`'s path (plan, executor) with `client` in place of the HTTP client."""
    return run_sync(settings, Engine.request(tenant, **fields), client=client, today=today, progress=progress)


def xero_accounts():
    return [{"AccountID": k, "Code": v["Code"], "Name": v["Name"], "Type": v["Type"], "Status": "ACTIVE",
             "Class": "REVENUE" if v["Type"] in ("REVENUE", "OTHERINCOME") else "EXPENSE",
             "UpdatedDateUTC": "/Date(1563800000000+0000)/"} for k, v in ACCOUNTS.items()]


class StubClient:
    """The XeroClient surface the steps use: request(), api_calls, bytes_downloaded."""

    def __init__(self, data):
        self.data = data
        self.api_calls = 0
        self.bytes_downloaded = 0
        self.seen: list[tuple[str, dict, dict]] = []

    def request(self, method, path, params=None, headers=None, **kw):
        self.api_calls += 1
        params, headers = dict(params or {}), dict(headers or {})
        self.seen.append((path, params, headers))
        name = path.rsplit("/", 1)[-1]
        handler = self.data.get(name)
        if isinstance(handler, Exception):
            raise handler
        body = handler(params, headers) if callable(handler) else handler
        content = json.dumps({"Id": "x", "Status": "OK", **body}).encode()
        self.bytes_downloaded += len(content)
        return httpx.Response(200, content=content, headers={"Content-Type": "application/json"})


def paged(key, records):
    def serve(params, headers):
        page, size = int(params.get("page", 1)), int(params.get("pageSize", 100))
        return {key: records[(page - 1) * size: page * size]}  # no pagination object, like older Xero
    return serve


def base_data(invoices, credit_notes=()):
    def pl_report(params, headers):
        return pnl([section("Income", [row("Sales", "100.00", "a-sales")], "Total Income", "100.00"),
                    section("Less Operating Expenses", [row("Rent", "40.00", "a-rent")], "Total", "40.00")],
                   gross="100.00", net="60.00")

    bank = {"Reports": [{"ReportType": "BankSummary", "Rows": [
        {"RowType": "Header", "Cells": [{"Value": "Bank Accounts"}, {"Value": "Opening Balance"}, {"Value": "Cash Received"},
                                         {"Value": "Cash Spent"}, {"Value": "Closing Balance"}]},
        {"RowType": "Section", "Title": "", "Rows": [
            {"RowType": "Row", "Cells": [{"Value": "Cheque", "Attributes": [{"Value": "bank-1", "Id": "accountID"}]},
                                         {"Value": "10.00"}, {"Value": "5.00"}, {"Value": "2.00"}, {"Value": "13.00"}]}]}]}]}
    return {
        "Organisation": {"Organisations": [{
            "OrganisationID": "o1", "Name": "Ridgeway Trades", "LegalName": "Ridgeway Trades Pty Ltd", "PaysTax": True,
            "Version": "AU", "OrganisationType": "COMPANY", "BaseCurrency": "AUD", "CountryCode": "AU",
            "FinancialYearEndDay": 30, "FinancialYearEndMonth": 6, "SalesTaxBasis": "ACCRUALS",
            "Timezone": "AUSEASTERNSTANDARDTIME", "ShortCode": "!rTg5x", "Addresses": [], "Phones": []}]},
        "Accounts": {"Accounts": xero_accounts()},
        "Contacts": paged("Contacts", [{"ContactID": "c1", "Name": "Ridgeway", "ContactStatus": "ACTIVE",
                                        "UpdatedDateUTC": "/Date(1563800000000+0000)/"}]),
        "Invoices": paged("Invoices", invoices),
        "CreditNotes": paged("CreditNotes", list(credit_notes)),
        "ProfitAndLoss": pl_report,
        "BankSummary": bank,
        "Journals": TierRefused("Journals need the Advanced tier", status=401),
    }


@pytest.fixture
def tenant_settings(settings):
    upsert_tenants(settings, [{"tenantId": TENANT, "tenantName": "Demo Org", "tenantType": "ORGANISATION"}],
                   datetime(2026, 11, 1, tzinfo=timezone.utc))
    return settings


def q(settings, sql, *args):
    with db.connect(settings.db_path, read_only=True) as con:
        return con.execute(sql, list(args)).fetchall()


def snapshot(settings):
    tables = ("financial_weekly", "pnl_lines", "revenue_weekly", "cash_position_weekly", "invoices",
              "invoice_lines", "contacts", "accounts", "sync_cursors")
    out = {}
    with db.connect(settings.db_path, read_only=True) as con:
        for t in tables:
            cols = [c[0] for c in con.execute(f"DESCRIBE {t}").fetchall() if c[0] not in ("synced_at", "updated_at")
                    or t != "sync_cursors" and c[0] == "updated_at"]
            out[t] = sorted(map(repr, con.execute(f"SELECT {', '.join(cols)} FROM {t}").fetchall()))
    return out


def invoices_fixture():
    d = MS(date(2026, 11, 24))
    return [
        invoice("i1", "110.00", [li("l1", "100.00", "North", "Residential", tax="10.00")], date_ms=d),
        invoice("i2", "220.00", [li("l2", "100.00", "North", "Residential", tax="10.00"),
                                 li("l3", "100.00", "South", "Commercial", tax="10.00")], date_ms=d, tax="20.00"),
    ]


@pytest.mark.slow
def test_full_run_writes_every_table_and_sync_log(tenant_settings):
    s = tenant_settings
    client = StubClient(base_data(invoices_fixture()))
    events = []
    res = sync_all(s, TENANT, client=client, today=TODAY, trigger="cli", progress=events.append)
    statuses = {st.step: st.status for st in res.steps}
    assert statuses == {"organisation": "success", "accounts": "success", "contacts": "success", "invoices": "success",
                        "clients": "success", "credit_notes": "success", "pnl": "success", "bank": "success",
                        "journals": "skipped", "documents": "success", "webhooks": "success"}
    assert res.ok, "a tier skip is not a failure"
    assert "tier" in [st for st in res.steps if st.step == "journals"][0].error
    fw = q(s, "SELECT week_ending, income, operating_expenses, gross_profit, net_profit FROM financial_weekly ORDER BY 1")
    assert fw == [(date(2026, 11, 21), Decimal("100.00"), Decimal("40.00"), Decimal("100.00"), Decimal("60.00")),
                  (date(2026, 11, 28), Decimal("100.00"), Decimal("40.00"), Decimal("100.00"), Decimal("60.00"))]
    pnl_params = [p for path, p, _ in client.seen if path.endswith("ProfitAndLoss")]
    # standardLayout=true (issue 23 §5): Xero's standard sections whatever layout the organisation customised
    assert pnl_params == [{"standardLayout": "true", "fromDate": "2026-11-15", "toDate": "2026-11-21"},
                          {"standardLayout": "true", "fromDate": "2026-11-22", "toDate": "2026-11-28"}]
    rw = q(s, "SELECT region, revenue_type, invoice_count, subtotal, total_tax, total FROM revenue_weekly ORDER BY 1, 2")
    assert rw == [("North", "Residential", 2, Decimal("200.00"), Decimal("20.00"), Decimal("220.00")),
                  ("South", "Commercial", 1, Decimal("100.00"), Decimal("10.00"), Decimal("110.00"))]
    assert q(s, "SELECT closing FROM cash_position_weekly") == [(Decimal("13.00"),)] * 2
    log = q(s, "SELECT sync_type, status, rows, api_calls, bytes_downloaded > 0, trigger FROM sync_log ORDER BY started_at, sync_type")
    assert {r[0]: r[1] for r in log} == statuses
    assert all(r[5] == "cli" for r in log)
    assert dict((r[0], r[3]) for r in log)["pnl"] == 2
    assert q(s, "SELECT last_sync_at IS NOT NULL FROM connections") == [(True,)]
    assert {e.step for e in events} >= {"accounts", "pnl", "journals"}
    d = res.to_dict()
    assert d["ok"] and d["steps"][0]["step"] == "organisation" and json.dumps(d)
    assert q(s, "SELECT base_currency, timezone FROM organisations") == [("AUD", "Australia/Sydney")]


@pytest.mark.slow
def test_rerun_is_identical_and_incremental(tenant_settings):
    s = tenant_settings
    data = base_data(invoices_fixture())
    sync_all(s, TENANT, client=StubClient(data), today=TODAY)
    first = snapshot(s)
    client = StubClient(data)
    sync_all(s, TENANT, client=client, today=TODAY)
    assert snapshot(s) == first
    inv_headers = [h for path, _, h in client.seen if path.endswith("Invoices")]
    assert inv_headers and inv_headers[0]["If-Modified-Since"] == "2019-07-22T12:53:19"


@pytest.mark.slow
def test_void_leaves_revenue_weekly(tenant_settings):
    s = tenant_settings
    invs = invoices_fixture()
    sync_all(s, TENANT, client=StubClient(base_data(invs)), today=TODAY, only="invoices")
    voided = dict(invs[1], Status="VOIDED", UpdatedDateUTC="/Date(1763800000000+0000)/")
    sync_all(s, TENANT, client=StubClient(base_data([voided])), today=TODAY, only="invoices")
    rw = q(s, "SELECT region, invoice_count, total FROM revenue_weekly ORDER BY 1")
    assert rw == [("North", 1, Decimal("110.00"))]
    # moving an invoice to another week moves its revenue
    moved = dict(invs[0], Date=f"/Date({MS(date(2026, 11, 10))}+0000)/", UpdatedDateUTC="/Date(1763900000000+0000)/")
    sync_all(s, TENANT, client=StubClient(base_data([moved])), today=TODAY, only="invoices")
    assert q(s, "SELECT week_ending, total FROM revenue_weekly") == [(date(2026, 11, 14), Decimal("110.00"))]


def credit_notes_fixture():
    return [credit_note("cn1", "33.00", [cn_line("30.00", "North", "Residential", tax="3.00")], tax="3.00",
                        date_ms=MS(date(2026, 11, 25))),
            credit_note("cn2", "11.00", [cn_line("10.00", "South", "Commercial", tax="1.00")], tax="1.00",
                        date_ms=MS(date(2026, 11, 18)), status="PAID")]


@pytest.mark.slow
def test_credit_notes_make_revenue_net_and_a_later_void_leaves_it(tenant_settings):
    s = tenant_settings
    cns = credit_notes_fixture()
    res = sync_all(s, TENANT, client=StubClient(base_data(invoices_fixture(), cns)), today=TODAY,
                   only="invoices,credit_notes")
    assert [(x.step, x.status, x.rows) for x in res.steps] == [("invoices", "success", 2), ("credit_notes", "success", 2)]
    rw = lambda: q(s, "SELECT week_ending, region, invoice_count, credit_note_count, subtotal, total_tax, total "  # noqa: E731
                      "FROM revenue_weekly ORDER BY 1, 2")
    assert rw() == [
        (date(2026, 11, 21), "South", 0, 1, Decimal("-10.00"), Decimal("-1.00"), Decimal("-11.00")),   # its own week
        (date(2026, 11, 28), "North", 2, 1, Decimal("170.00"), Decimal("17.00"), Decimal("187.00")),
        (date(2026, 11, 28), "South", 1, 0, Decimal("100.00"), Decimal("10.00"), Decimal("110.00")),
    ]
    assert q(s, "SELECT credit_note_id, type, status, total, remaining_credit FROM credit_notes ORDER BY 1") == [
        ("cn1", "ACCRECCREDIT", "AUTHORISED", Decimal("33.00"), Decimal("33.00")),
        ("cn2", "ACCRECCREDIT", "PAID", Decimal("11.00"), Decimal("11.00"))]
    assert q(s, "SELECT count(*) FROM credit_note_lines") == [(2,)]
    # voided in Xero later: the next incremental run (If-Modified-Since from the cursor) takes it out
    client = StubClient(base_data([], [dict(cns[0], Status="VOIDED", UpdatedDateUTC="/Date(1764200000000+0000)/")]))
    res = sync_all(s, TENANT, client=client, today=TODAY, only="credit_notes")
    assert res.ok and [h.get("If-Modified-Since") for p, _, h in client.seen if p.endswith("CreditNotes")] == \
        ["2019-07-24T17:39:59"]  # the cursor less a second, as for invoices
    assert rw()[1] == (date(2026, 11, 28), "North", 2, 0, Decimal("200.00"), Decimal("20.00"), Decimal("220.00"))
    assert q(s, "SELECT status FROM credit_notes WHERE credit_note_id = 'cn1'") == [("VOIDED",)]
    # --only credit_notes is a known step name; a typo is refused with the list
    with pytest.raises(ValueError, match="credit_notes"):
        sync_all(s, TENANT, client=client, today=TODAY, only="credit_note")


def test_one_failing_step_does_not_stop_the_others(tenant_settings):
    s = tenant_settings
    data = base_data(invoices_fixture())
    data["Contacts"] = FatalError("A validation exception occurred", status=400)
    res = sync_all(s, TENANT, client=StubClient(data), today=TODAY)
    st = {x.step: x for x in res.steps}
    assert st["contacts"].status == "failed" and "validation" in st["contacts"].error
    assert st["invoices"].status == st["pnl"].status == st["bank"].status == "success"
    assert not res.ok and res.status == "partial"


def test_daily_limit_stops_cleanly_and_skips_the_rest(tenant_settings):
    s = tenant_settings
    data = base_data(invoices_fixture())
    calls = {"n": 0}

    def pl_then_day_limit(params, headers):
        calls["n"] += 1
        if calls["n"] == 2:
            raise DailyLimitReached("Xero's daily call limit is spent",
                                    resumes_at=datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc), status=429)
        return base_data([])["ProfitAndLoss"](params, headers)

    data["ProfitAndLoss"] = pl_then_day_limit
    res = sync_all(s, TENANT, client=StubClient(data), today=TODAY)
    st = {x.step: x for x in res.steps}
    assert st["pnl"].status == "partial" and st["pnl"].rows == 1
    assert st["pnl"].error == "daily budget reached, resumes at 2026-11-27 03:00 UTC"
    assert st["bank"].status == st["journals"].status == "skipped"
    assert st["bank"].error.startswith("daily budget reached")
    assert not res.ok
    assert q(s, "SELECT count(*) FROM financial_weekly") == [(1,)]  # the week fetched is kept


def test_busy_tenant_is_skipped_with_who_holds_it(tenant_settings):
    s = tenant_settings
    with tenant_lock(s, TENANT, trigger="scheduler"):
        res = sync_all(s, TENANT, client=StubClient(base_data([])), today=TODAY)
        with pytest.raises(SyncBusy) as ei:
            with tenant_lock(s, TENANT):
                pass
    assert "scheduler" in str(ei.value) and "another sync is running" in str(ei.value)
    assert res.busy and not res.steps and not res.ok
    assert q(s, "SELECT status, error LIKE 'another sync is running%' FROM sync_log") == [("skipped", True)]


def test_lock_is_exclusive_across_threads(tenant_settings):
    s = tenant_settings
    inside, release, errors = threading.Event(), threading.Event(), []

    def hold():
        with tenant_lock(s, TENANT):
            inside.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    assert inside.wait(10)
    try:
        with tenant_lock(s, TENANT):
            errors.append("got the lock twice")
    except SyncBusy:
        pass
    release.set()
    t.join()
    with tenant_lock(s, TENANT, wait=5):
        pass
    assert not errors


def test_unknown_step_name_is_refused(tenant_settings):
    with pytest.raises(ValueError, match="unknown sync step"):
        sync_all(tenant_settings, TENANT, client=StubClient({}), only="pnl,invoicez")
