"""The fake's /api.xro/2.0: every endpoint against Xero's response schemas, and the query rules
(paging, where, order, If-Modified-Since, summaryOnly, id lists, errors). Called directly through
handle_accounting so it does not depend on the platform; one smoke test goes through FakeXero."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from fake_schema import parse, template_for, validate_accounting
from xero_core.fake.accounting import handle_accounting, required_scopes
from xero_core.fake.ledger import generate_org

TODAY = date(2026, 11, 26)
NOW = datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc)
JSON = {"accept": "application/json"}


@pytest.fixture(scope="module")
def org():
    return generate_org(7, TODAY, years=1.0, invoices=2500)


def get(org, sub, params=None, headers=None):
    return handle_accounting(org, "GET", sub, params or {}, {**JSON, **(headers or {})}, b"", NOW)


def ok(org, sub, params=None, headers=None):
    status, h, body = get(org, sub, params, headers)
    assert status == 200, body[:300]
    assert h["Content-Type"].startswith("application/json")
    return validate_accounting(template_for(sub), body)     # every served body meets Xero's schema


def endpoint_cases(org):
    inv = org.invoices[10]
    bt = org.bank_transactions[3]
    return [
        ("/Organisation", "/Organisation", {}),
        ("/Accounts", "/Accounts", {}),
        (f"/Accounts/{org.accounts[0].id}", "/Accounts/{AccountID}", {}),
        ("/TrackingCategories", "/TrackingCategories", {}),
        (f"/TrackingCategories/{org.tracking[0].id}", "/TrackingCategories/{TrackingCategoryID}", {}),
        ("/Contacts", "/Contacts", {"page": "1", "includeArchived": "true"}),
        ("/Contacts", "/Contacts", {"summaryOnly": "true"}),
        (f"/Contacts/{org.contacts[0].id}", "/Contacts/{ContactID}", {}),
        ("/Invoices", "/Invoices", {"page": "1", "pageSize": "200"}),
        ("/Invoices", "/Invoices", {"summaryOnly": "true", "page": "2"}),
        ("/Invoices", "/Invoices", {"where": 'Status=="VOIDED"'}),
        (f"/Invoices/{inv.id}", "/Invoices/{InvoiceID}", {"unitdp": "4"}),
        ("/BankTransactions", "/BankTransactions", {"page": "1", "pageSize": "500"}),
        (f"/BankTransactions/{bt.id}", "/BankTransactions/{BankTransactionID}", {}),
        ("/Payments", "/Payments", {"page": "1"}),
        (f"/Payments/{org.payments[0].id}", "/Payments/{PaymentID}", {}),
        ("/CreditNotes", "/CreditNotes", {"page": "1"}),
        (f"/CreditNotes/{org.credit_notes[0].id}", "/CreditNotes/{CreditNoteID}", {}),
        ("/Journals", "/Journals", {"offset": "0"}),
        ("/Journals", "/Journals", {"offset": str(len(org.journals) - 150)}),
        (f"/Journals/{org.journals[5].id}", "/Journals/{JournalID}", {}),
        ("/Journals/7", "/Journals/{JournalNumber}", {}),
        ("/Reports/ProfitAndLoss", "/Reports/ProfitAndLoss", {"fromDate": "2026-10-01", "toDate": "2026-10-31"}),
        ("/Reports/ProfitAndLoss", "/Reports/ProfitAndLoss",
         {"fromDate": "2026-10-01", "toDate": "2026-10-31", "periods": "3", "timeframe": "MONTH"}),
        ("/Reports/ProfitAndLoss", "/Reports/ProfitAndLoss",
         {"fromDate": "2026-10-01", "toDate": "2026-10-31", "trackingCategoryID": org.tracking[0].id}),
        ("/Reports/BankSummary", "/Reports/BankSummary", {"fromDate": "2026-11-01", "toDate": "2026-11-25"}),
        ("/Reports/BalanceSheet", "/Reports/BalanceSheet", {"date": "2026-10-31", "periods": "2"}),
        ("/Reports/TrialBalance", "/Reports/TrialBalance", {"date": "2026-10-31"}),
    ]


@pytest.mark.slow
def test_every_endpoint_validates_against_xero_schema(org):
    for sub, template, params in endpoint_cases(org):
        status, headers, body = get(org, sub, params)
        assert status == 200, (sub, body[:200])
        doc = validate_accounting(template, body)
        assert doc["Status"] == "OK" and doc["Id"] == headers["Xero-Correlation-Id"]
        assert b"\\/Date(" in body and b'"/Date(' not in body, sub     # slash escaped on the wire


@pytest.mark.slow
def test_schema_helper_catches_bad_payloads():
    good = (b'{"Id":"x","Status":"OK","ProviderName":"p","DateTimeUTC":"\\/Date(1)\\/",'
            b'"Invoices":[{"InvoiceID":"5ec0fcc1-43c7-4923-a2f2-3492e3fe86ff","Status":"PAID","Total":1.00}]}')
    validate_accounting("/Invoices", good)
    for bad in (good.replace(b"PAID", b"SETTLED"), good.replace(b"1.00", b"1.0"),
                good.replace(b"5ec0fcc1", b"nothex!!"), good.replace(b'"Total":1.00', b'"Date":"2020-01-01"')):
        with pytest.raises(AssertionError):
            validate_accounting("/Invoices", bad)


def test_wire_format_of_an_invoice(org):
    inv = next(i for i in org.invoices if i.status == "PAID" and i.type == "ACCREC")
    status, _, body = get(org, f"/Invoices/{inv.id}")
    text = body.decode()
    assert f'"Date":"\\/Date({int(datetime(inv.date.year, inv.date.month, inv.date.day, tzinfo=timezone.utc).timestamp()) * 1000}+0000)\\/"' in text
    assert f'"DateString":"{inv.date:%Y-%m-%d}T00:00:00"' in text
    assert f'"Total":{inv.total // 100}.{inv.total % 100:02d},' in text
    assert '"Quantity":' in text and '"CurrencyRate":1.000000' in text
    doc = parse(body)
    (one,) = doc["Invoices"]
    assert one["InvoiceID"] == inv.id and one["FullyPaidOnDate"].startswith("/Date(")
    assert sum(l["LineAmount"] for l in one["LineItems"]) == one["SubTotal"]
    assert one["SubTotal"] + one["TotalTax"] == one["Total"]


@pytest.mark.slow
def test_paging_and_page_size_cap(org):
    doc = ok(org, "/Invoices", {"page": "2", "pageSize": "50"})
    assert len(doc["Invoices"]) == 50 and "LineItems" in doc["Invoices"][0]
    line_ids = [l["LineItemID"] for i in doc["Invoices"] for l in i["LineItems"]]
    assert len(line_ids) == len(set(line_ids)) > 50
    again = ok(org, "/Invoices", {"page": "2", "pageSize": "50"})
    assert [l["LineItemID"] for i in again["Invoices"] for l in i["LineItems"]] == line_ids
    n = len(org.invoices)
    assert doc["pagination"] == {"page": 2, "pageSize": 50, "pageCount": -(-n // 50), "itemCount": n}
    status, _, body = get(org, "/Invoices", {"page": "1", "pageSize": "5000"})
    capped = parse(body)        # (1000 invoices: validated elsewhere, page by page)
    assert capped["pagination"]["pageSize"] == 1000 and len(capped["Invoices"]) == 1000
    past = ok(org, "/Invoices", {"page": "999"})
    assert past["Invoices"] == [] and past["pagination"]["page"] == 999
    default = ok(org, "/Contacts", {"page": "1"})
    assert len(default["Contacts"]) == 100
    unpaged = ok(org, "/Invoices", {"where": 'Type=="ACCREC" AND Date>=DateTime(2026,11,01)'})
    assert "pagination" not in unpaged and "LineItems" not in unpaged["Invoices"][0]
    # paging walks every (filtered) record once, stopping at the short page
    where = "Date>=DateTime(2026,09,01)"
    seen = []
    for page in range(1, 100):
        d = ok(org, "/Payments", {"page": str(page), "pageSize": "150", "where": where})
        seen += [p["PaymentID"] for p in d["Payments"]]
        if len(d["Payments"]) < 150:
            break
    expect = [p.id for p in org.payments if p.date >= date(2026, 9, 1)]
    assert page > 2 and seen == expect


def test_where_filters(org):
    cust = next(i.contact for i in org.invoices if i.type == "ACCREC")
    where = (f'Type=="ACCREC" AND Status=="PAID" AND Date>=DateTime(2026,01,01) AND Date<=DateTime(2026,03,31)'
             f' AND Contact.ContactID==Guid("{cust.id}")')
    doc = ok(org, "/Invoices", {"where": where, "page": "1"})
    expect = [i.id for i in org.invoices if i.type == "ACCREC" and i.status == "PAID" and i.contact is cust
              and date(2026, 1, 1) <= i.date <= date(2026, 3, 31)]
    assert [i["InvoiceID"] for i in doc["Invoices"]] == expect
    contacts = ok(org, "/Contacts", {"where": 'Name.Contains("Harbour Strata")'})
    assert len(contacts["Contacts"]) == 2
    either = ok(org, "/Invoices", {"where": 'Status=="DRAFT" OR Status=="SUBMITTED"'})
    assert {i["Status"] for i in either["Invoices"]} <= {"DRAFT", "SUBMITTED"} and either["Invoices"]
    big = ok(org, "/BankTransactions", {"where": 'Type=="SPEND" AND Total>=5000'})
    assert big["BankTransactions"] and all(b["Total"] >= 5000 for b in big["BankTransactions"])


@pytest.mark.parametrize("where,message", [
    ('Colour=="RED"', "No property or field 'Colour' exists in type 'Invoice'"),
    ('Type=="ACCREC" AND', "Expression expected"),
    ('Status!="DELETED" AND ()', "Expression expected"),
    ('Date>=DateTime(2026,13,01)', None), ('Date=="yesterday"', "Operator '==' incompatible with operand types"),
    ('SentToContact=="true"', "Operator '==' incompatible with operand types 'Boolean' and 'String'"),
    ('Type LIKE "A%"', None), ('Total.Contains("1")', None)])
def test_unsupported_where_is_a_400_as_xero_gives(org, where, message):
    status, h, body = get(org, "/Invoices", {"where": where})
    assert status == 400 and h["Content-Type"].startswith("application/json")
    err = parse(body)
    assert set(err) == {"ErrorNumber", "Type", "Message"}
    assert err["ErrorNumber"] == 16 and err["Type"] == "QueryParseException" and err["Message"]
    if message:
        assert err["Message"].startswith(message)


@pytest.mark.slow
def test_where_accepts_datetime_parse(org):
    a = ok(org, "/Invoices", {"where": 'Date>=DateTime.Parse("2026-10-01T00:00:00") AND Type=="ACCREC"'})
    b = ok(org, "/Invoices", {"where": 'Date>=DateTime(2026,10,01) AND Type=="ACCREC"'})
    assert a["Invoices"] == b["Invoices"] and a["Invoices"]


def test_order(org):
    doc = ok(org, "/Invoices", {"order": "UpdatedDateUTC DESC", "page": "1"})
    stamps = [int(i["UpdatedDateUTC"][6:-7]) for i in doc["Invoices"]]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[0] == max(int(i.updated.timestamp() * 1000) for i in org.invoices)
    doc = ok(org, "/Contacts", {"order": "Name", "page": "1"})
    names = [c["Name"].lower() for c in doc["Contacts"]]
    assert names == sorted(names)
    status, _, _ = get(org, "/Invoices", {"order": "Nonsense DESC"})
    assert status == 400


@pytest.mark.slow
def test_if_modified_since(org):
    cutoff = datetime(2026, 11, 10, tzinfo=timezone.utc)
    expect = {i.id for i in org.invoices if i.updated >= cutoff}
    for header in ("2026-11-10T00:00:00", "2026-11-10T11:00:00+11:00", "Tue, 10 Nov 2026 00:00:00 GMT"):
        doc = ok(org, "/Invoices", {"page": "1", "pageSize": "1000"}, {"if-modified-since": header})
        assert {i["InvoiceID"] for i in doc["Invoices"]} == expect, header
    assert 0 < len(expect) < len(org.invoices)
    status, _, body = get(org, "/Invoices", {}, {"if-modified-since": "last tuesday"})
    assert status == 400 and b"If-Modified-Since" in body
    jdoc = ok(org, "/Journals", {}, {"if-modified-since": "2026-11-20T00:00:00"})
    assert all(int(j["CreatedDateUTC"][6:-7]) >= 1795132800000 for j in jdoc["Journals"])


def test_summary_only_and_id_lists(org):
    doc = ok(org, "/Invoices", {"summaryOnly": "true", "page": "1"})
    assert "LineItems" not in doc["Invoices"][0] and "Payments" not in doc["Invoices"][0]
    c = ok(org, "/Contacts", {"summaryOnly": "true", "page": "1"})["Contacts"][0]
    assert "Addresses" not in c and c["Name"]
    picks = [org.invoices[3], org.invoices[40]]
    ids = ",".join(i.id for i in picks)
    doc = ok(org, "/Invoices", {"IDs": ids})
    assert {i["InvoiceID"] for i in doc["Invoices"]} == {i.id for i in picks}
    doc = ok(org, "/Invoices", {"Statuses": "DRAFT,VOIDED"})
    assert {i["Status"] for i in doc["Invoices"]} == {"DRAFT", "VOIDED"}
    cid = picks[0].contact.id
    doc = ok(org, "/Invoices", {"ContactIDs": cid})
    assert doc["Invoices"] and all(i["Contact"]["ContactID"] == cid for i in doc["Invoices"])


def test_archived_and_merged_contacts(org):
    active = ok(org, "/Contacts")["Contacts"]
    everyone = ok(org, "/Contacts", {"includeArchived": "true"})["Contacts"]
    archived = [c for c in everyone if c["ContactStatus"] == "ARCHIVED"]
    assert len(everyone) == len(active) + len(archived) and len(archived) >= 2
    merged = [c for c in archived if "MergedToContactID" in c]
    assert merged and merged[0]["MergedToContactID"] in {c["ContactID"] for c in active}
    emails = [c["EmailAddress"] for c in everyone if c["EmailAddress"]]
    assert len(emails) > len(set(emails))        # some contacts share an email


def test_journals_offset_paging(org):
    doc = ok(org, "/Journals", {"offset": "250"})
    nums = [j["JournalNumber"] for j in doc["Journals"]]
    assert nums == list(range(251, 351))
    for j in doc["Journals"]:
        assert sum(l["NetAmount"] for l in j["JournalLines"]) == 0
    tail = ok(org, "/Journals", {"offset": str(len(org.journals) - 5)})["Journals"]
    assert len(tail) == 5
    assert ok(org, "/Journals", {"offset": str(len(org.journals))})["Journals"] == []


def test_not_found_and_removed_endpoints(org):
    for sub in ("/Invoices/00000000-0000-0000-0000-000000000000", "/Contacts/nope", "/Employees",
                "/ExpenseClaims", "/Receipts", "/Reports/NoSuchReport", "/Journals/999999999"):
        status, h, body = get(org, sub)
        assert status == 404, sub
        assert body == b"The resource you're looking for cannot be found"
        assert h["Content-Type"].startswith("text/plain")
    inv = org.invoices[0]
    assert ok(org, f"/Invoices/{inv.number}")["Invoices"][0]["InvoiceID"] == inv.id


def test_bad_report_parameters_are_400(org):
    status, _, body = get(org, "/Reports/ProfitAndLoss", {"fromDate": "2026-31-01"})
    assert status == 400 and parse(body)["Type"] == "ValidationException"
    status, _, _ = get(org, "/Reports/ProfitAndLoss", {"fromDate": "2026-10-01", "toDate": "2026-09-01"})
    assert status == 400


def test_xml_unless_json_is_asked_for(org):
    status, h, body = handle_accounting(org, "GET", "/Organisation", {}, {"accept": "*/*"}, b"", NOW)
    assert status == 200 and h["Content-Type"].startswith("text/xml")
    assert body.startswith(b"<Response") and b"<Organisations><Organisation>" in body
    assert b"<Name>" + org.name.replace("&", "&amp;").encode() + b"</Name>" in body
    from lxml import etree

    for sub, _, params in endpoint_cases(org):
        status, h, body = handle_accounting(org, "GET", sub, params, {}, b"", NOW)
        assert status == 200 and h["Content-Type"].startswith("text/xml"), sub
        root = etree.fromstring(body)          # well-formed, one <Response> root
        assert root.tag == "Response" and root.findtext("Status") == "OK", sub
    status, _, body = handle_accounting(org, "GET", "/Invoices", {"where": "Nope==1"}, {}, b"", NOW)
    err = etree.fromstring(body)
    assert status == 400 and err.tag == "ApiException" and err.findtext("ErrorNumber") == "16"
    inv = etree.fromstring(get(org, f"/Invoices/{org.invoices[0].id}", headers={"accept": "text/xml"})[2])
    assert inv.findtext("Invoices/Invoice/Date") == f"{org.invoices[0].date:%Y-%m-%d}T00:00:00"
    assert inv.find("Invoices/Invoice/LineItems/LineItem/Tracking/TrackingCategory") is not None


def test_required_scopes():
    def grants(method, path, granted):
        return any(s <= set(granted) for s in required_scopes(method, path))

    assert grants("GET", "/Invoices", {"accounting.invoices.read"})
    assert grants("GET", "/Invoices/abc", {"accounting.transactions"})
    assert not grants("GET", "/Invoices", {"accounting.payments.read", "accounting.contacts.read"})
    assert not grants("PUT", "/Invoices", {"accounting.invoices.read"})
    assert grants("GET", "/Payments", {"accounting.payments.read"})
    assert grants("GET", "/BankTransactions", {"accounting.banktransactions.read"})
    assert not grants("GET", "/BankTransactions", {"accounting.invoices.read"})
    assert grants("GET", "/Reports/ProfitAndLoss", {"accounting.reports.profitandloss.read"})
    assert not grants("GET", "/Reports/ProfitAndLoss", {"accounting.reports.banksummary.read"})
    assert grants("GET", "/Reports/BankSummary", {"accounting.reports.read"})
    assert grants("GET", "/Journals", {"accounting.journals.read"})
    assert not grants("GET", "/Journals", {"accounting.transactions.read"})
    assert grants("GET", "/Contacts", {"accounting.contacts.read"})
    assert grants("GET", "/Organisation", {"accounting.settings.read"})
    assert grants("GET", "/TrackingCategories", {"accounting.settings"})
    assert not grants("GET", "/Accounts", {"accounting.contacts.read"})


def test_smoke_through_fake_xero_handle():
    httpx = pytest.importorskip("httpx")
    app = pytest.importorskip("xero_core.fake.app")
    fake = app.FakeXero(seed=3, today=TODAY, invoices=300)
    tid = next(iter(fake.orgs)) if isinstance(fake.orgs, dict) else fake.orgs[0].tenant_id
    org = fake.org(tid) if callable(getattr(fake, "org", None)) else fake.orgs[tid]
    # Bypass OAuth with the platform's own helper when it has one; otherwise walk consent.
    token = _token(fake, httpx)
    req = httpx.Request("GET", "https://api.xero.com/api.xro/2.0/Invoices?page=1",
                        headers={"Authorization": f"Bearer {token}", "xero-tenant-id": tid,
                                 "Accept": "application/json"})
    resp = fake.handle(req)
    assert resp.status_code == 200, resp.text[:300]
    doc = validate_accounting("/Invoices", resp.content)
    assert doc["Id"] == resp.headers.get("Xero-Correlation-Id")
    assert len(doc["Invoices"]) == min(100, len(org.invoices))


def _token(fake, httpx):
    import base64
    import hashlib
    import secrets
    from urllib.parse import parse_qs, urlencode, urlparse

    from xero_core.settings import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = "http://localhost:8501/callback"
    scope = ("openid offline_access accounting.invoices.read accounting.contacts.read "
             "accounting.settings.read")
    url = "https://login.xero.com/identity/connect/authorize?" + urlencode({
        "response_type": "code", "client_id": DEMO_CLIENT_ID, "redirect_uri": redirect, "scope": scope,
        "state": "s1", "code_challenge": challenge, "code_challenge_method": "S256"})
    back = fake.consent(url, allow=True)
    code = parse_qs(urlparse(back).query)["code"][0]
    resp = fake.handle(httpx.Request("POST", "https://identity.xero.com/connect/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect, "code_verifier": verifier,
        "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET}))
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def test_if_modified_since_on_settings_and_unmodelled_options(org):
    assert ok(org, "/TrackingCategories", {}, {"if-modified-since": "2000-01-01T00:00:00"})["TrackingCategories"]
    assert ok(org, "/Accounts", {}, {"if-modified-since": "2099-01-01T00:00:00"})["Accounts"] == []
    status, _, body = get(org, "/Reports/ProfitAndLoss", {"paymentsOnly": "true"})
    assert status == 400 and b"paymentsOnly" in body


@pytest.mark.slow
def test_garbage_parameters_get_a_clear_400_never_a_crash():
    import random

    tiny = generate_org(3, TODAY, years=0.2, invoices=120)
    rng = random.Random(1)
    subs = ["/Invoices", "/Contacts", "/Payments", "/BankTransactions", "/CreditNotes", "/Accounts", "/Journals",
            "/Reports/ProfitAndLoss", "/Reports/BankSummary", "/Reports/BalanceSheet", "/Reports/TrialBalance"]
    vals = ["", "0", "-1", "abc", "1", "99999", "true", "2026-02-30", '"', 'Guid("x")', "Type==", "()",
            "((Type==\"ACCREC\")", "Date>DateTime(2026,1,1,25,0,0)", "x" * 300]
    keys = ["page", "pageSize", "where", "order", "offset", "fromDate", "toDate", "date", "periods", "timeframe",
            "trackingCategoryID", "trackingOptionID", "unitdp", "IDs", "Statuses", "summaryOnly", "includeArchived"]
    seen = set()
    for _ in range(400):
        params = {k: rng.choice(vals) for k in rng.sample(keys, rng.randrange(1, 4))}
        headers = {"if-modified-since": rng.choice(vals)} if rng.random() < 0.2 else {}
        status, _, body = get(tiny, rng.choice(subs), params, headers)
        assert status in (200, 400), (params, body[:200])
        seen.add(status)
        if status == 400:
            assert parse(body)["Message"]
    assert seen == {200, 400}
