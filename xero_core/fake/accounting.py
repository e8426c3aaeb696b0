"""`/api.xro/2.0` for the fake: list[Any] and single GETs over the ledger model, in Xero's wire format.

`handle_accounting(org, method, subpath, params, headers, body, now)` is called by the platform
(fake/app.py) after it has checked the token, tenant, limits and scopes (`required_scopes`).
It never looks at auth; it answers exactly what Xero's accounting API would for that request.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Mapping, Protocol, overload

from xero_core.fake import chart, query, reports, wire
from xero_core.fake.ledger import (Account, Allocation, BankTransaction, Contact, CreditNote, Invoice, Journal, Line, Org,
                                   Payment, TrackingCategory, cents_to_decimal, derived_id)
from xero_core.fake.query import Field, QueryError

UTC = timezone.utc
NOT_FOUND_TEXT = "The resource you're looking for cannot be found"
JSON_CT = "application/json; charset=utf-8"
XML_CT = "text/xml; charset=utf-8"
TEXT_CT = "text/plain; charset=utf-8"
DEFAULT_PROVIDER = "Ledgerlink"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
JOURNALS_PER_CALL = 100
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")

Result = tuple[int, dict[str, str], bytes]


# --------------------------------------------------------------------------------------------
# Scopes
# --------------------------------------------------------------------------------------------

_SCOPE_FAMILY = {
    "organisation": ("accounting.settings",), "accounts": ("accounting.settings",),
    "trackingcategories": ("accounting.settings",), "contacts": ("accounting.contacts",),
    "invoices": ("accounting.invoices", "accounting.transactions"),
    "creditnotes": ("accounting.invoices", "accounting.transactions"),
    "payments": ("accounting.payments", "accounting.transactions"),
    "banktransactions": ("accounting.banktransactions", "accounting.transactions"),
}
_REPORT_SCOPE = {"profitandloss": "profitandloss", "banksummary": "banksummary",
                 "balancesheet": "balancesheet", "trialbalance": "trialbalance"}


def required_scopes(method: str, subpath: str) -> list[frozenset[str]]:
    """Scope sets that each grant the call (any one suffices). Granular scopes first, then the
    broad ones Xero still honours for older apps. Reads accept `.read` or the write scope.
    Paths the fake does not serve return `[frozenset()]` so the 404 is what the caller sees."""
    parts = [p for p in subpath.split("?")[0].strip("/").lower().split("/") if p]
    if not parts:
        return [frozenset()]
    read = method.upper() in ("GET", "HEAD")
    head = parts[0]
    if head == "journals":
        return [frozenset({"accounting.journals.read"})]
    if head == "reports":
        if len(parts) < 2 or parts[1] not in _REPORT_SCOPE:
            return [frozenset({"accounting.reports.read"})]
        return [frozenset({f"accounting.reports.{_REPORT_SCOPE[parts[1]]}.read"}),
                frozenset({"accounting.reports.read"})]
    fams = _SCOPE_FAMILY.get(head)
    if fams is None:
        return [frozenset()]
    out = []
    for fam in fams:
        out.append(frozenset({fam}))
        if read:
            out.append(frozenset({fam + ".read"}))
    return out


# --------------------------------------------------------------------------------------------
# Serialisers (model -> wire dicts; money and dates as wire markers)
# --------------------------------------------------------------------------------------------

def contact_ref(c: Contact) -> dict[str, Any]:
    return {"ContactID": c.id, "Name": c.name, "Addresses": [], "Phones": [], "ContactGroups": [],
            "ContactPersons": [], "HasValidationErrors": False}


def contact_json(org: Org, c: Contact, summary: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"ContactID": c.id}
    if c.merged_to:
        out["MergedToContactID"] = c.merged_to
    if c.number:
        out["ContactNumber"] = c.number
    if c.account_number:
        out["AccountNumber"] = c.account_number
    out["ContactStatus"] = c.status
    out["Name"] = c.name
    if c.first_name:
        out["FirstName"] = c.first_name
    if c.last_name:
        out["LastName"] = c.last_name
    out["EmailAddress"] = c.email
    if not summary:
        out["BankAccountDetails"] = ""
        out["Addresses"] = [
            {"AddressType": "STREET", "City": "", "Region": "", "PostalCode": "", "Country": ""},
            {"AddressType": "POBOX", "AddressLine1": c.street, "City": c.city, "Region": "NSW" if c.city else "",
             "PostalCode": c.postcode, "Country": "Australia" if c.city else ""},
        ]
        out["Phones"] = [
            {"PhoneType": "DDI", "PhoneNumber": "", "PhoneAreaCode": "", "PhoneCountryCode": ""},
            {"PhoneType": "DEFAULT", "PhoneNumber": c.phone, "PhoneAreaCode": "02" if c.phone else "",
             "PhoneCountryCode": ""},
            {"PhoneType": "FAX", "PhoneNumber": "", "PhoneAreaCode": "", "PhoneCountryCode": ""},
            {"PhoneType": "MOBILE", "PhoneNumber": "", "PhoneAreaCode": "", "PhoneCountryCode": ""},
        ]
    out["UpdatedDateUTC"] = wire.msdate(c.updated)
    if not summary:
        out["ContactGroups"] = []
    out["IsSupplier"] = c.is_supplier
    out["IsCustomer"] = c.is_customer
    out["DefaultCurrency"] = c.currency
    if not summary:
        out["ContactPersons"] = []
        out["HasAttachments"] = False
        out["HasValidationErrors"] = False
    return out


def _tracking(line: Line) -> list[Any]:
    out: list[Any] = []
    for opt in (line.region, line.job):
        if opt is not None:
            out.append({"Name": opt.category.name, "Option": opt.name,
                        "TrackingCategoryID": opt.category.id, "TrackingOptionID": opt.id})
    return out


def line_json(org: Org, line: Line, unitdp: int = 2) -> dict[str, Any]:
    unit = wire.money(line.unit) if unitdp == 2 else wire.number(cents_to_decimal(line.unit), 4)
    return {"LineItemID": org.line_item_id(line), "Description": line.description, "Quantity": wire.number(line.qty, 4),
            "UnitAmount": unit, "TaxType": line.tax_type, "TaxAmount": wire.money(line.tax),
            "LineAmount": wire.money(line.amount), "AccountCode": line.account.code,
            "AccountID": line.account.id, "Tracking": _tracking(line)}


def _payment_ref(p: Payment) -> dict[str, Any]:
    return {"PaymentID": p.id, "Date": wire.msdate(p.date), "Amount": wire.money(p.amount),
            "Reference": p.reference, "CurrencyRate": wire.number(p.rate or 1, 6), "HasAccount": False,
            "HasValidationErrors": False}


def invoice_json(org: Org, inv: Invoice, *, lines: bool = True, summary: bool = False, unitdp: int = 2) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": inv.type, "InvoiceID": inv.id, "InvoiceNumber": inv.number,
                           "Reference": inv.reference}
    if not summary:
        out["Payments"] = [_payment_ref(p) for p in inv.payments if p.status == "AUTHORISED"]
        out["CreditNotes"] = [_applied_credit_json(a) for a in inv.credit_allocations]
        out["Prepayments"] = []
        out["Overpayments"] = []
    out["AmountDue"] = wire.money(inv.amount_due)
    out["AmountPaid"] = wire.money(inv.amount_paid)
    out["AmountCredited"] = wire.money(inv.credited)
    out["CurrencyRate"] = wire.number(inv.rate or 1, 6)
    if not summary:
        out["IsDiscounted"] = False
        out["HasAttachments"] = False
        out["HasErrors"] = False
    out["Contact"] = contact_ref(inv.contact) if not summary else {"ContactID": inv.contact.id,
                                                                   "Name": inv.contact.name}
    out["DateString"] = wire.date_string(inv.date)
    out["Date"] = wire.msdate(inv.date)
    out["DueDateString"] = wire.date_string(inv.due_date)
    out["DueDate"] = wire.msdate(inv.due_date)
    out["Status"] = inv.status
    out["LineAmountTypes"] = "Exclusive"
    if lines and not summary:
        out["LineItems"] = [line_json(org, l, unitdp) for l in inv.lines]
    out["SubTotal"] = wire.money(inv.subtotal)
    out["TotalTax"] = wire.money(inv.total_tax)
    out["Total"] = wire.money(inv.total)
    out["UpdatedDateUTC"] = wire.msdate(inv.updated)
    out["CurrencyCode"] = inv.currency
    paid_on = inv.fully_paid_on
    if paid_on:
        out["FullyPaidOnDate"] = wire.msdate(paid_on)
    if inv.type == "ACCREC":
        out["SentToContact"] = inv.sent
    return out


def _bank_ref(a: Account) -> dict[str, Any]:
    return {"AccountID": a.id, "Code": a.code, "Name": a.name}


def bank_transaction_json(org: Org, bt: BankTransaction, unitdp: int = 2, lines: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"BankTransactionID": bt.id, "Type": bt.type}
    if bt.contact is not None:
        out["Contact"] = contact_ref(bt.contact)
    out["BankAccount"] = _bank_ref(bt.bank)
    out["IsReconciled"] = bt.reconciled
    out["DateString"] = wire.date_string(bt.date)
    out["Date"] = wire.msdate(bt.date)
    out["Reference"] = bt.reference
    out["CurrencyCode"] = org.base_currency
    out["CurrencyRate"] = wire.number(1, 6)
    out["Status"] = bt.status
    out["LineAmountTypes"] = "Exclusive"
    out["LineItems"] = [line_json(org, l, unitdp) for l in bt.lines] if lines else []
    out["SubTotal"] = wire.money(bt.subtotal)
    out["TotalTax"] = wire.money(bt.total_tax)
    out["Total"] = wire.money(bt.total)
    out["UpdatedDateUTC"] = wire.msdate(bt.updated)
    out["HasAttachments"] = False
    return out


def payment_json(org: Org, p: Payment) -> dict[str, Any]:
    inv = p.invoice
    # Amount is in the invoice's currency, BankAmount in the bank account's (the base currency here).
    return {"PaymentID": p.id, "Date": wire.msdate(p.date), "BankAmount": wire.money(p.base),
            "Amount": wire.money(p.amount), "Reference": p.reference, "CurrencyRate": wire.number(p.rate or 1, 6),
            "PaymentType": p.payment_type, "Status": p.status, "UpdatedDateUTC": wire.msdate(p.updated),
            "HasAccount": True, "IsReconciled": True,
            "Account": {"AccountID": p.bank.id, "Code": p.bank.code},
            "Invoice": {"Type": inv.type, "InvoiceID": inv.id, "InvoiceNumber": inv.number,
                        "Contact": {"ContactID": inv.contact.id, "Name": inv.contact.name},
                        "IsDiscounted": False, "HasErrors": False, "CurrencyCode": inv.currency,
                        "Payments": [], "CreditNotes": [], "Prepayments": [], "Overpayments": [],
                        "LineItems": []},
            "HasValidationErrors": False}


def _allocation_json(a: Allocation) -> dict[str, Any]:
    inv = a.invoice
    return {"AllocationID": a.id, "Amount": wire.money(a.amount), "Date": wire.msdate(a.date),
            "Invoice": {"InvoiceID": inv.id, "InvoiceNumber": inv.number, "Payments": [], "CreditNotes": [],
                        "Prepayments": [], "Overpayments": [], "HasErrors": False, "IsDiscounted": False,
                        "LineItems": []}}


def _applied_credit_json(a: Allocation) -> dict[str, Any]:
    """A credit note as it appears in an invoice's CreditNotes array: what was applied, when."""
    cn = a.credit_note
    return {"CreditNoteID": cn.id, "CreditNoteNumber": cn.number, "AppliedAmount": wire.money(a.amount),
            "DateString": wire.date_string(a.date), "Date": wire.msdate(a.date), "LineItems": [],
            "Total": wire.money(cn.total)}


def credit_note_json(org: Org, cn: CreditNote, unitdp: int = 2) -> dict[str, Any]:
    out = {"CreditNoteID": cn.id, "CreditNoteNumber": cn.number, "Type": cn.type, "Reference": cn.reference,
           "RemainingCredit": wire.money(cn.remaining), "Allocations": [_allocation_json(a) for a in cn.allocations],
           "Payments": [], "HasAttachments": False, "HasErrors": False, "Contact": contact_ref(cn.contact),
           "DateString": wire.date_string(cn.date), "Date": wire.msdate(cn.date), "Status": cn.status,
           "LineAmountTypes": "Exclusive", "LineItems": [line_json(org, l, unitdp) for l in cn.lines],
           "SubTotal": wire.money(cn.subtotal), "TotalTax": wire.money(cn.total_tax),
           "Total": wire.money(cn.total), "UpdatedDateUTC": wire.msdate(cn.updated), "CurrencyCode": cn.currency,
           "CurrencyRate": wire.number(cn.rate or 1, 6), "SentToContact": False}
    if cn.status == "PAID" and cn.allocations:
        out["FullyPaidOnDate"] = wire.msdate(max(a.date for a in cn.allocations))
    return out


def account_json(org: Org, a: Account) -> dict[str, Any]:
    out = {"AccountID": a.id, "Code": a.code, "Name": a.name, "Status": a.status, "Type": a.type,
           "TaxType": a.tax_type, "Class": a.cls, "EnablePaymentsToAccount": False,
           "ShowInExpenseClaims": a.type in ("OVERHEADS", "EXPENSE"), "CurrencyCode": org.base_currency,
           "ReportingCode": _reporting_code(a), "HasAttachments": False,
           "UpdatedDateUTC": wire.msdate(a.updated), "AddToWatchlist": False}
    if a.type == "BANK":
        out["BankAccountNumber"] = a.bank_number
        out["BankAccountType"] = a.bank_type
    if a.system:
        out["SystemAccount"] = a.system
    return out


def _reporting_code(a: Account) -> str:
    return {"ASSET": "ASS", "LIABILITY": "LIA", "EQUITY": "EQU", "REVENUE": "REV", "EXPENSE": "EXP"}[a.cls]


def tracking_json(org: Org, cat: TrackingCategory) -> dict[str, Any]:
    return {"Name": cat.name, "Status": cat.status, "TrackingCategoryID": cat.id,
            "Options": [{"TrackingOptionID": o.id, "Name": o.name, "Status": "ACTIVE"} for o in cat.options]}


def journal_json(org: Org, j: Journal) -> dict[str, Any]:
    src = j.source
    ref = getattr(src, "reference", "") or getattr(src, "narration", "") or ""
    lines: list[dict[str, Any]] = []
    for k, l in enumerate(org.journal_lines(j)):
        row: dict[str, Any] = {"JournalLineID": derived_id(j.id, str(k)), "AccountID": l.account.id, "AccountCode": l.account.code,
               "AccountType": l.account.type, "AccountName": l.account.name, "Description": l.description,
               "NetAmount": wire.money(l.net), "GrossAmount": wire.money(l.gross), "TaxAmount": wire.money(l.tax)}
        if l.tax or l.tax_type != "BASEXCLUDED":
            row["TaxType"] = l.tax_type
            row["TaxName"] = _tax_name(l.tax_type)
        row["TrackingCategories"] = [
            {"Name": o.category.name, "Option": o.name, "TrackingCategoryID": o.category.id,
             "TrackingOptionID": o.id} for o in (l.region, l.job) if o is not None]
        lines.append(row)
    return {"JournalID": j.id, "JournalDate": wire.msdate(j.date), "JournalNumber": j.number,
            "CreatedDateUTC": wire.msdate(j.created), "Reference": ref, "SourceID": src.id,
            "SourceType": j.source_type, "JournalLines": lines}


def _tax_name(tax_type: str) -> str:
    return chart.TAX_RATES.get(tax_type, (tax_type, 0))[0]


def organisation_json(org: Org) -> dict[str, Any]:
    return {"OrganisationID": org.organisation_id, "APIKey": "", "Name": org.name, "LegalName": org.legal_name,
            "PaysTax": True, "Version": org.version, "OrganisationType": org.organisation_type,
            "BaseCurrency": org.base_currency,
            "CountryCode": org.country_code, "IsDemoCompany": False, "OrganisationStatus": "ACTIVE",
            "RegistrationNumber": "", "TaxNumber": "51824753556", "FinancialYearEndDay": org.financial_year_end[1],
            "FinancialYearEndMonth": org.financial_year_end[0], "SalesTaxBasis": org.sales_tax_basis,
            "SalesTaxPeriod": "QUARTERLY1",
            "DefaultSalesTax": "Tax Exclusive", "DefaultPurchasesTax": "Tax Exclusive",
            "CreatedDateUTC": wire.msdate(org.created), "OrganisationEntityType": "COMPANY",
            "Timezone": org.timezone, "ShortCode": org.short_code, "Class": "PREMIUM",
            "Edition": "BUSINESS", "LineOfBusiness": "Electrical, plumbing and air-conditioning services",
            "Addresses": [{"AddressType": "STREET", "AddressLine1": "14 Harbour St", "City": "Sydney",
                           "Region": "NSW", "PostalCode": "2000", "Country": "Australia"}],
            "Phones": [{"PhoneType": "OFFICE", "PhoneNumber": "9555 0100", "PhoneAreaCode": "02"}],
            "ExternalLinks": [], "PaymentTerms": {"Bills": {"Day": 30, "Type": "DAYSAFTERBILLDATE"},
                                                  "Sales": {"Day": 14, "Type": "DAYSAFTERBILLDATE"}}}


# --------------------------------------------------------------------------------------------
# Resources: what each list endpoint filters, orders and pages on
# --------------------------------------------------------------------------------------------

def _money(get: Callable[[Any], int]) -> Field:
    return Field(lambda r: cents_to_decimal(get(r)), "money")


def _contact_id(r: Any) -> str | None:
    return r.contact.id if r.contact is not None else None


INVOICE_FIELDS = {
    "Type": Field(lambda r: r.type, "str"), "Status": Field(lambda r: r.status, "str"),
    "Date": Field(lambda r: r.date, "date"), "DueDate": Field(lambda r: r.due_date, "date"),
    "InvoiceID": Field(lambda r: r.id, "guid"), "InvoiceNumber": Field(lambda r: r.number, "str"),
    "Reference": Field(lambda r: r.reference, "str"), "Contact.ContactID": Field(_contact_id, "guid"),
    "Contact.Name": Field(lambda r: r.contact.name, "str"),
    "UpdatedDateUTC": Field(lambda r: r.updated, "datetime"),
    "Total": _money(lambda r: r.total), "SubTotal": _money(lambda r: r.subtotal),
    "TotalTax": _money(lambda r: r.total_tax), "AmountDue": _money(lambda r: r.amount_due),
    "AmountPaid": _money(lambda r: r.amount_paid), "FullyPaidOnDate": Field(lambda r: r.fully_paid_on, "date"),
    "CurrencyCode": Field(lambda r: r.currency, "str"), "SentToContact": Field(lambda r: r.sent, "bool"),
}
CONTACT_FIELDS = {
    "ContactID": Field(lambda r: r.id, "guid"), "Name": Field(lambda r: r.name, "str"),
    "FirstName": Field(lambda r: r.first_name, "str"), "LastName": Field(lambda r: r.last_name, "str"),
    "EmailAddress": Field(lambda r: r.email, "str"), "ContactStatus": Field(lambda r: r.status, "str"),
    "ContactNumber": Field(lambda r: r.number, "str"), "AccountNumber": Field(lambda r: r.account_number, "str"),
    "IsCustomer": Field(lambda r: r.is_customer, "bool"), "IsSupplier": Field(lambda r: r.is_supplier, "bool"),
    "UpdatedDateUTC": Field(lambda r: r.updated, "datetime"),
    "MergedToContactID": Field(lambda r: r.merged_to, "guid"),
}
BANK_FIELDS = {
    "BankTransactionID": Field(lambda r: r.id, "guid"), "Type": Field(lambda r: r.type, "str"),
    "Status": Field(lambda r: r.status, "str"), "Date": Field(lambda r: r.date, "date"),
    "Reference": Field(lambda r: r.reference, "str"), "Contact.ContactID": Field(_contact_id, "guid"),
    "Contact.Name": Field(lambda r: r.contact.name if r.contact else None, "str"),
    "BankAccount.AccountID": Field(lambda r: r.bank.id, "guid"),
    "BankAccount.Code": Field(lambda r: r.bank.code, "str"),
    "Total": _money(lambda r: r.total), "SubTotal": _money(lambda r: r.subtotal),
    "IsReconciled": Field(lambda r: r.reconciled, "bool"),
    "UpdatedDateUTC": Field(lambda r: r.updated, "datetime"),
}
PAYMENT_FIELDS = {
    "PaymentID": Field(lambda r: r.id, "guid"), "Date": Field(lambda r: r.date, "date"),
    "Amount": _money(lambda r: r.amount), "Status": Field(lambda r: r.status, "str"),
    "PaymentType": Field(lambda r: r.payment_type, "str"), "Reference": Field(lambda r: r.reference, "str"),
    "Invoice.InvoiceID": Field(lambda r: r.invoice.id, "guid"),
    "Invoice.Type": Field(lambda r: r.invoice.type, "str"),
    "Invoice.Contact.ContactID": Field(lambda r: r.invoice.contact.id, "guid"),
    "Account.AccountID": Field(lambda r: r.bank.id, "guid"), "Account.Code": Field(lambda r: r.bank.code, "str"),
    "IsReconciled": Field(lambda r: True, "bool"), "UpdatedDateUTC": Field(lambda r: r.updated, "datetime"),
}
CREDIT_FIELDS = {
    "CreditNoteID": Field(lambda r: r.id, "guid"), "CreditNoteNumber": Field(lambda r: r.number, "str"),
    "Type": Field(lambda r: r.type, "str"), "Status": Field(lambda r: r.status, "str"),
    "Date": Field(lambda r: r.date, "date"), "Reference": Field(lambda r: r.reference, "str"),
    "Contact.ContactID": Field(_contact_id, "guid"), "Contact.Name": Field(lambda r: r.contact.name, "str"),
    "Total": _money(lambda r: r.total), "UpdatedDateUTC": Field(lambda r: r.updated, "datetime"),
    "CurrencyCode": Field(lambda r: r.currency, "str"),
}
ACCOUNT_FIELDS = {
    "AccountID": Field(lambda r: r.id, "guid"), "Code": Field(lambda r: r.code, "str"),
    "Name": Field(lambda r: r.name, "str"), "Type": Field(lambda r: r.type, "str"),
    "Class": Field(lambda r: r.cls, "str"), "Status": Field(lambda r: r.status, "str"),
    "TaxType": Field(lambda r: r.tax_type, "str"), "SystemAccount": Field(lambda r: r.system or None, "str"),
    "BankAccountType": Field(lambda r: r.bank_type, "str"),
    "UpdatedDateUTC": Field(lambda r: r.updated, "datetime"),
}
TRACKING_FIELDS = {
    "TrackingCategoryID": Field(lambda r: r.id, "guid"), "Name": Field(lambda r: r.name, "str"),
    "Status": Field(lambda r: r.status, "str"),
}


class Envelope(Protocol):
    """Wraps a response's items in Xero's envelope (Id, Status, ..., pagination when paged)."""

    def __call__(self, plural: str, items: list[Any], pag: dict[str, Any] | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Resource:
    plural: str
    type_name: str
    model: type
    items: Callable[[Org], list[Any]]
    serialize: Callable[..., dict[str, Any]]
    fields: dict[str, Field]
    paged: bool
    by_number: Callable[[Org, str], Any] | None = None


def _by_invoice_number(org: Org, key: str) -> Invoice | None:
    return next((i for i in org.invoices if i.number.lower() == key.lower()), None)


def _by_contact_number(org: Org, key: str) -> Contact | None:
    return next((c for c in org.contacts if c.number and c.number.lower() == key.lower()), None)


RESOURCES = {
    "invoices": Resource("Invoices", "Invoice", Invoice, lambda o: o.invoices, invoice_json, INVOICE_FIELDS,
                         True, _by_invoice_number),
    "contacts": Resource("Contacts", "Contact", Contact, lambda o: o.contacts, contact_json, CONTACT_FIELDS,
                         True, _by_contact_number),
    "banktransactions": Resource("BankTransactions", "BankTransaction", BankTransaction,
                                 lambda o: o.bank_transactions, bank_transaction_json, BANK_FIELDS, True),
    "payments": Resource("Payments", "Payment", Payment, lambda o: o.payments, payment_json, PAYMENT_FIELDS, True),
    "creditnotes": Resource("CreditNotes", "CreditNote", CreditNote, lambda o: o.credit_notes, credit_note_json,
                            CREDIT_FIELDS, True),
    "accounts": Resource("Accounts", "Account", Account, lambda o: o.accounts, account_json, ACCOUNT_FIELDS, False),
    "trackingcategories": Resource("TrackingCategories", "TrackingCategory", TrackingCategory,
                                   lambda o: o.tracking, tracking_json, TRACKING_FIELDS, False),
}


# --------------------------------------------------------------------------------------------
# Request handling
# --------------------------------------------------------------------------------------------

class _BadRequest(Exception):
    def __init__(self, message: str, *, number: int = 10, type_: str = "ValidationException"):
        super().__init__(message)
        self.number, self.type_ = number, type_


def _lower_params(params: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in params.items():
        out.setdefault(k.lower(), v)
    return out


def _wants_json(headers: Mapping[str, str]) -> bool:
    accept = (headers.get("accept") or headers.get("Accept") or "").lower()
    return "json" in accept


def parse_if_modified_since(value: str) -> datetime:
    """Xero accepts ISO-8601 (with or without offset; no offset = UTC) and RFC 1123 dates."""
    v = value.strip()
    try:
        if re.match(r"^\d{4}-\d{2}-\d{2}", v):
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        else:
            dt = parsedate_to_datetime(v)
    except (ValueError, TypeError):
        raise _BadRequest(f"If-Modified-Since '{value}' is not a date: send e.g. 2024-05-01T00:00:00 (UTC) "
                          "or an RFC 1123 date") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(microsecond=0)


@overload
def _int_param(p: dict[str, Any], name: str, default: int) -> int: ...
@overload
def _int_param(p: dict[str, Any], name: str, default: None) -> int | None: ...
def _int_param(p: dict[str, Any], name: str, default: int | None) -> int | None:
    v = p.get(name.lower())
    if v in (None, ""):
        return default
    try:
        return int(v)
    except ValueError:
        raise _BadRequest(f"The parameter '{name}' must be a whole number, got '{v}'") from None


def _bool_param(p: dict[str, Any], name: str) -> bool:
    return (p.get(name.lower()) or "").strip().lower() == "true"


def _csv(p: dict[str, Any], name: str) -> list[str] | None:
    v = p.get(name.lower())
    if not v:
        return None
    return [x.strip().strip('"').lower() for x in v.split(",") if x.strip()]


def handle_accounting(org: Org, method: str, subpath: str, params: Mapping[str, str], headers: Mapping[str, str],
                      body: bytes, now: datetime) -> Result:
    headers = {k.lower(): v for k, v in headers.items()}
    provider = headers.get("x-fake-provider-name") or DEFAULT_PROVIDER
    as_json = _wants_json(headers)
    # The platform passes its correlation id so the envelope Id equals the Xero-Correlation-Id header.
    corr = headers.get("xero-correlation-id") or headers.get("x-fake-correlation-id") or str(uuid.uuid4())
    path = subpath.split("?")[0].rstrip("/")
    parts = [x for x in path.split("/") if x]
    try:
        if method.upper() not in ("GET", "HEAD"):
            return _plain(405 if parts and _served(parts) else 404, corr,
                          "The fake serves read-only accounting endpoints" if parts and _served(parts) else None)
        payload = _dispatch(org, parts, _lower_params(params), headers, now, provider, corr)
    except _BadRequest as e:
        payload = wire.validation_error(str(e), error_number=e.number, type_=e.type_)
        return _out(400, payload, as_json, corr)
    except QueryError as e:
        # Xero's parse errors carry no Elements: {"ErrorNumber":16,"Type":"QueryParseException","Message":…}
        payload = {"ErrorNumber": 16, "Type": "QueryParseException", "Message": str(e)}
        return _out(400, payload, as_json, corr)
    if payload is None:
        return _plain(404, corr)
    return _out(200, payload, as_json, corr)


def _served(parts: list[str]) -> bool:
    return parts[0].lower() in RESOURCES or parts[0].lower() in ("organisation", "journals", "reports")


def _plain(status: int, corr: str, text: str | None = None) -> Result:
    return status, {"Content-Type": TEXT_CT, "Xero-Correlation-Id": corr}, (text or NOT_FOUND_TEXT).encode()


def _out(status: int, payload: dict[str, Any], as_json: bool, corr: str) -> Result:
    if as_json:
        return status, {"Content-Type": JSON_CT, "Xero-Correlation-Id": corr}, wire.encode(payload)
    # Xero's XML errors are <ApiException> documents (as SDK error logs show).
    root = "ApiException" if status == 400 else "Response"
    return status, {"Content-Type": XML_CT, "Xero-Correlation-Id": corr}, wire.encode_xml(payload, root)


def _dispatch(org: Org, parts: list[str], p: dict[str, Any], headers: dict[str, Any], now: datetime, provider: str,
              corr: str) -> dict[str, Any] | None:
    if not parts:
        return None
    head = parts[0].lower()
    def env(plural: str, items: list[Any], pag: dict[str, Any] | None = None) -> dict[str, Any]:
        return wire.envelope(plural, items, now, provider=provider, pagination=pag, correlation_id=corr)

    if head == "organisation" and len(parts) == 1:
        return env("Organisations", [organisation_json(org)])
    if _bool_param(p, "paymentsOnly"):
        # Cash-basis reports and journals are not modelled; refusing beats serving accrual figures.
        raise _BadRequest("paymentsOnly=true (cash basis) is not supported by the fake Xero; omit it")
    if head == "reports" and len(parts) == 2:
        try:
            report = reports.build(org, parts[1], p, now)
        except reports.ReportError as e:
            raise _BadRequest(str(e)) from None
        return None if report is None else env("Reports", [report])
    if head == "journals" and len(parts) <= 2:
        return _journals(org, parts, p, headers, env)
    res = RESOURCES.get(head)
    if res is None or len(parts) > 2:
        return None
    unitdp = 4 if _int_param(p, "unitdp", 2) == 4 else 2
    if len(parts) == 2:
        key = parts[1]
        obj = org.get(res.model, key.lower()) if _GUID.match(key) else (res.by_number(org, key) if res.by_number
                                                                       else None)
        if obj is None:
            return None
        return env(res.plural, [_serialize(org, res, obj, lines=True, summary=False, unitdp=unitdp)])
    return _list(org, res, p, headers, env, unitdp)


def _serialize(org: Org, res: Resource, obj: Any, *, lines: bool, summary: bool, unitdp: int) -> dict[str, Any]:
    if res.model is Invoice:
        return invoice_json(org, obj, lines=lines, summary=summary, unitdp=unitdp)
    if res.model is Contact:
        return contact_json(org, obj, summary=summary)
    if res.model in (BankTransaction, CreditNote):
        return res.serialize(org, obj, unitdp)
    return res.serialize(org, obj)


def _list(org: Org, res: Resource, p: dict[str, Any], headers: dict[str, Any], env: Envelope, unitdp: int) -> dict[str, Any]:
    items = res.items(org)
    if res.model is Invoice:
        ids, numbers = _csv(p, "IDs"), _csv(p, "InvoiceNumbers")
        contacts, statuses = _csv(p, "ContactIDs"), _csv(p, "Statuses")
        if ids:
            s = set(ids)
            items = [i for i in items if i.id in s]
        if numbers:
            s = set(numbers)
            items = [i for i in items if i.number.lower() in s]
        if contacts:
            s = set(contacts)
            items = [i for i in items if i.contact.id in s]
        if statuses:
            s = {x.upper() for x in statuses}
            items = [i for i in items if i.status in s]
        if _bool_param(p, "createdByMyApp"):
            items = []      # the fake's history was not created through the API
    elif res.model is Contact:
        ids = _csv(p, "IDs")
        if ids:
            s = set(ids)
            items = [c for c in items if c.id in s]
        elif not _bool_param(p, "includeArchived"):
            items = [c for c in items if c.status != "ARCHIVED"]
    elif res.model is TrackingCategory and not _bool_param(p, "includeArchived"):
        items = [t for t in items if t.status == "ACTIVE"]
    term = p.get("searchterm")
    if term and res.model in (Invoice, Contact):
        t = term.lower()
        if res.model is Invoice:
            items = [i for i in items if t in i.number.lower() or t in i.reference.lower()
                     or t in i.contact.name.lower()]
        else:
            items = [c for c in items if t in c.name.lower() or t in (c.email or "").lower()
                     or t in c.first_name.lower() or t in c.last_name.lower() or t in c.number.lower()]
    since = headers.get("if-modified-since")
    if since:
        cutoff = parse_if_modified_since(since)
        items = [x for x in items if x.updated is not None and x.updated >= cutoff]
    where = p.get("where")
    if where:
        pred = query.compile_where(where, res.fields, res.type_name)
        items = [x for x in items if pred(x)]
    order = p.get("order")
    if order:
        items = query.apply_order(items, query.order_key(order, res.fields, res.type_name))
    summary = _bool_param(p, "summaryOnly") and res.model in (Invoice, Contact)
    page = _int_param(p, "page", None) if res.paged else None
    pag = None
    if page is not None:
        size = _int_param(p, "pageSize", DEFAULT_PAGE_SIZE)
        size = min(max(size, 1), MAX_PAGE_SIZE)
        page = max(page, 1)
        pag = wire.pagination(page, size, len(items))
        items = items[(page - 1) * size: page * size]
    # Unpaged GET /Invoices omits line items (Xero: "page=1 - ... with line items shown").
    lines = page is not None or res.model is not Invoice
    return env(res.plural, [_serialize(org, res, x, lines=lines, summary=summary, unitdp=unitdp) for x in items], pag)


def _journals(org: Org, parts: list[str], p: dict[str, Any], headers: dict[str, Any], env: Envelope) -> dict[str, Any] | None:
    if len(parts) == 2:
        key = parts[1]
        if key.isdigit():
            n = int(key)
            j = org.journals[n - 1] if 1 <= n <= len(org.journals) else None
        else:
            j = org.journal_by_id(key)
        return None if j is None else env("Journals", [journal_json(org, j)])
    offset = _int_param(p, "offset", 0)
    since = headers.get("if-modified-since")
    cutoff = parse_if_modified_since(since) if since else None
    # Journals are numbered 1..n in creation order, so JournalNumber > offset is a slice.
    out = []
    for j in org.journals[max(offset, 0):]:
        if cutoff is not None and j.created < cutoff:
            continue
        out.append(j)
        if len(out) == JOURNALS_PER_CALL:
            break
    return env("Journals", [journal_json(org, j) for j in out])
