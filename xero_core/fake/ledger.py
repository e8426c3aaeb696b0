"""The fake organisation: one ledger of journal lines, and the documents that post to it.

Everything the fake serves is a view of this model, so the views agree by construction:
invoices, bills, bank transactions, payments and credit notes each post a balanced journal; the
reports are sums over per-day aggregates of those journal lines. Money is held as integer cents
(exact; converted to Decimal or 2-dp text only at the edges). DRAFT, SUBMITTED, VOIDED and DELETED
documents never post; voiding a posted invoice appends a reversing journal, as Xero does.

`generate_org(seed, today)` is deterministic: the same seed and day give the same organisation,
field for field, so the same bytes are served.
"""
from __future__ import annotations

import hashlib
import math
import random
import uuid
from array import array
from bisect import bisect_left
from datetime import date, datetime, time, timedelta, timezone
from datetime import date as _Date  # for annotations in classes with a `date` attribute
from decimal import Decimal
from itertools import accumulate
from typing import Any, Callable, Iterable, TypeVar

from xero_core.fake import chart

UTC = timezone.utc
CENT = Decimal("0.01")

# Trading income the generator aims for (ex GST) per week, before seasonality and growth.
WEEKLY_INCOME_CENTS = 250_000_00
INVOICE_SHARE = 0.88          # the rest of trading income is cash sales (RECEIVE bank transactions)
DEFAULT_INVOICES_PER_WEEK = 100


def cents_to_decimal(c: int) -> Decimal:
    return (Decimal(c) / 100).quantize(CENT)


def gst(net_cents: int, rate_pct: int) -> int:
    """GST on a line, rounded half-up to the cent (Xero rounds per line)."""
    if not rate_pct:
        return 0
    q, r = divmod(abs(net_cents) * rate_pct, 100)
    v = q + (1 if r * 2 >= 100 else 0)
    return v if net_cents >= 0 else -v


def derived_id(*parts: str) -> str:
    """A stable version-4 UUID string from names (for ids computed on demand)."""
    return uuid4_from(int.from_bytes(hashlib.md5("/".join(parts).encode()).digest(), "big"))


def uuid4_from(n: int) -> str:
    """A version-4 UUID string from 128 random bits (str(uuid.UUID(..., version=4)) is 4x slower
    and the generator makes a quarter of a million of these per 100,000 invoices)."""
    n = (n & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# Model objects (slots: the 100,000-invoice benchmark keeps a million of them in memory)
# --------------------------------------------------------------------------------------------

_T = TypeVar("_T")
Region = tuple[str, float, int, float, float, tuple[float, float, float]]  # chart.REGIONS: name, weight, peak month, amplitude, growth, job mix


class Account:
    __slots__ = ("idx", "id", "code", "name", "type", "cls", "tax_type", "system", "bank_type",
                 "bank_number", "status", "updated")

    def __init__(self, idx: int, id: str, code: str, name: str, type: str, tax_type: str, system: str | None,
                 bank_type: str | None, bank_number: str | None, updated: datetime) -> None:
        self.idx, self.id, self.code, self.name, self.type = idx, id, code, name, type
        self.cls = chart.TYPE_CLASS[type]
        self.tax_type, self.system, self.bank_type, self.bank_number = tax_type, system, bank_type, bank_number
        self.status = "ACTIVE"
        self.updated = updated


class TrackingOption:
    __slots__ = ("id", "name", "category")

    def __init__(self, id: str, name: str, category: TrackingCategory) -> None:
        self.id, self.name, self.category = id, name, category


class TrackingCategory:
    __slots__ = ("id", "name", "options", "status", "updated")

    def __init__(self, id: str, name: str, updated: datetime | None = None) -> None:
        self.id, self.name, self.status, self.updated = id, name, "ACTIVE", updated
        self.options: list[TrackingOption] = []


class Contact:
    __slots__ = ("id", "name", "first_name", "last_name", "email", "status", "merged_to", "is_customer",
                 "is_supplier", "updated", "number", "region", "city", "postcode", "street", "phone",
                 "account_number", "kind", "currency")

    def __init__(self, id: str, name: str, email: str, updated: datetime, *, first_name: str = "", last_name: str = "",
                 kind: str = "customer", region: str = "", city: str = "", postcode: str = "", street: str = "",
                 phone: str = "", number: str = "") -> None:
        self.id, self.name, self.email, self.updated = id, name, email, updated
        self.first_name, self.last_name, self.kind = first_name, last_name, kind
        self.status = "ACTIVE"
        self.merged_to: str | None = None
        self.is_customer = kind == "customer"
        self.is_supplier = kind == "supplier"
        self.region, self.city, self.postcode, self.street, self.phone = region, city, postcode, street, phone
        self.number, self.account_number = number, ""
        self.currency = "AUD"

    # Xero's field names, read-only, for callers that think in wire terms (platform, practice).
    ContactID = property(lambda self: self.id)
    Name = property(lambda self: self.name)
    EmailAddress = property(lambda self: self.email)
    ContactStatus = property(lambda self: self.status)
    MergedToContactID = property(lambda self: self.merged_to)
    IsCustomer = property(lambda self: self.is_customer)
    IsSupplier = property(lambda self: self.is_supplier)


class Line:
    """A line item. `amount` is the ex-GST LineAmount in cents; `tax` its GST. `id` is the org's
    line number; the LineItemID is derived from it when served (`Org.line_item_id`)."""
    __slots__ = ("id", "description", "qty", "unit", "account", "tax_type", "amount", "tax", "region", "job")

    def __init__(self, id: int, description: str, qty: int, unit: int, account: Account, tax_type: str,
                 region: TrackingOption | None = None, job: TrackingOption | None = None) -> None:
        self.id, self.description, self.qty, self.unit = id, description, qty, unit
        self.account, self.tax_type = account, tax_type
        self.amount = qty * unit
        self.tax = gst(self.amount, chart.TAX_RATES[tax_type][1])
        self.region, self.job = region, job   # TrackingOption or None


class _Doc:
    """Shared by invoices, bills, credit notes and bank transactions. Lines never change after
    creation, so the totals are computed once."""
    __slots__ = ("id", "type", "contact", "date", "status", "lines", "updated", "reference", "subtotal",
                 "total_tax", "total")
    # What every kind of document sets in its __init__ (declared here for the type checker).
    id: str
    type: str
    contact: Contact | None
    date: _Date
    status: str
    lines: list[Line]
    updated: datetime
    reference: str
    subtotal: int
    total_tax: int
    total: int

    def _totals(self) -> None:
        self.subtotal = sum(l.amount for l in self.lines)
        self.total_tax = sum(l.tax for l in self.lines)
        self.total = self.subtotal + self.total_tax

    @property
    def posts(self) -> bool:
        return self.status in ("AUTHORISED", "PAID")


class Invoice(_Doc):
    """`currency`/`rate` follow Xero: amounts are in the invoice currency and CurrencyRate is units of
    that currency per 1 AUD; the journal carries the AUD value at that rate. `credit_allocations`
    are the credit notes applied to it (AmountCredited)."""
    __slots__ = ("number", "due_date", "payments", "sent", "credit_allocations", "currency", "rate")
    contact: Contact  # every invoice has one (only a transfer's bank transactions have none)

    def __init__(self, id: str, type: str, number: str, contact: Contact, d: _Date, due: _Date, status: str,
                 lines: list[Line], updated: datetime, reference: str = "", currency: str = "AUD",
                 rate: Decimal | None = None) -> None:
        self.id, self.type, self.number, self.contact = id, type, number, contact
        self.date, self.due_date, self.status, self.lines = d, due, status, lines
        self.updated, self.reference = updated, reference
        self._totals()
        self.payments: list[Payment] = []
        self.sent = type == "ACCREC" and status != "DRAFT"
        self.credit_allocations: list[Allocation] = []
        self.currency, self.rate = currency, rate

    @property
    def credited(self) -> int:
        return sum(a.amount for a in self.credit_allocations)

    InvoiceID = property(lambda self: self.id)
    InvoiceNumber = property(lambda self: self.number)
    Type = property(lambda self: self.type)
    Status = property(lambda self: self.status)

    @property
    def amount_paid(self) -> int:
        return sum(p.amount for p in self.payments if p.status == "AUTHORISED")

    @property
    def amount_due(self) -> int:
        if self.status in ("VOIDED", "DELETED"):
            return 0
        return self.total - self.amount_paid - self.credited

    @property
    def fully_paid_on(self) -> date | None:
        days = [p.date for p in self.payments if p.status == "AUTHORISED"] + [a.date for a in self.credit_allocations]
        return max(days) if self.status == "PAID" and days else None


class CreditNote(_Doc):
    """A credit note. Allocating it to an invoice of the same contact moves no money between
    accounts (both sit in Accounts Receivable or Payable), so it posts no journal: the invoice's
    AmountDue falls, the credit note's RemainingCredit falls, and a fully allocated credit note is
    PAID. Voiding a posted credit note appends a reversing journal dated on its own date."""
    __slots__ = ("number", "allocations", "currency", "rate")
    contact: Contact

    def __init__(self, id: str, type: str, number: str, contact: Contact, d: _Date, status: str, lines: list[Line],
                 updated: datetime, reference: str = "", currency: str = "AUD", rate: Decimal | None = None) -> None:
        self.id, self.type, self.number, self.contact = id, type, number, contact
        self.date, self.status, self.lines, self.updated, self.reference = d, status, lines, updated, reference
        self._totals()
        self.allocations: list[Allocation] = []
        self.currency, self.rate = currency, rate

    CreditNoteID = property(lambda self: self.id)
    CreditNoteNumber = property(lambda self: self.number)
    Type = property(lambda self: self.type)
    Status = property(lambda self: self.status)

    @property
    def allocated(self) -> int:
        return sum(a.amount for a in self.allocations)

    @property
    def remaining(self) -> int:
        """RemainingCredit: what is left to allocate (Xero's example shows a DRAFT's full total)."""
        return 0 if self.status in ("VOIDED", "DELETED") else self.total - self.allocated


class Allocation:
    """A credit note applied to an invoice (Xero's Allocation: Amount, Date, Invoice)."""
    __slots__ = ("id", "credit_note", "invoice", "amount", "date")

    def __init__(self, id: str, credit_note: CreditNote, invoice: Invoice, amount: int, d: _Date) -> None:
        self.id, self.credit_note, self.invoice, self.amount, self.date = id, credit_note, invoice, amount, d


class BankTransaction(_Doc):
    __slots__ = ("bank", "reconciled", "transfer")

    def __init__(self, id: str, type: str, contact: Contact | None, bank: Account, d: _Date, lines: list[Line],
                 updated: datetime, reference: str = "", status: str = "AUTHORISED") -> None:
        self.id, self.type, self.contact, self.bank = id, type, contact, bank
        self.date, self.lines, self.updated, self.reference, self.status = d, lines, updated, reference, status
        self._totals()
        self.reconciled = True
        self.transfer: Transfer | None = None


class Transfer:
    """A bank transfer: one TRANSFER journal, seen as a SPEND-TRANSFER and a RECEIVE-TRANSFER."""
    __slots__ = ("id", "date", "amount", "from_bank", "to_bank", "updated", "spend", "receive")
    spend: BankTransaction  # set by Org.transfer, with `receive`, right after the transfer is made
    receive: BankTransaction

    def __init__(self, id: str, d: _Date, amount: int, from_bank: Account, to_bank: Account, updated: datetime) -> None:
        self.id, self.date, self.amount = id, d, amount
        self.from_bank, self.to_bank, self.updated = from_bank, to_bank, updated


class Payment:
    """A payment of (part of) an invoice. `amount` is in the invoice's currency; `rate` is the
    payment's own CurrencyRate (None in the base currency). `base` is what the (base-currency) bank
    account moved and `cleared` the invoice's base value it settles, at the invoice's rate: the
    difference is a realised currency gain or loss. Both are fixed when the payment is made."""
    __slots__ = ("id", "invoice", "date", "amount", "bank", "updated", "status", "reference", "rate", "base",
                 "cleared")
    cleared: int  # set in __init__; declared for the earlier payments' sum there

    def __init__(self, id: str, invoice: Invoice, d: _Date, amount: int, bank: Account, updated: datetime,
                 reference: str = "", rate: Decimal | None = None) -> None:
        self.id, self.invoice, self.date, self.amount, self.bank = id, invoice, d, amount, bank
        self.updated, self.status, self.reference = updated, "AUTHORISED", reference
        self.rate = rate if invoice.rate is not None else None
        self.base = to_base(amount, self.rate)
        earlier = sum(p.cleared for p in invoice.payments if p.status == "AUTHORISED" and p is not self)
        if invoice.rate is None:
            self.cleared = amount
        elif amount >= invoice.total - sum(p.amount for p in invoice.payments if p is not self) - invoice.credited:
            self.cleared = doc_base_total(invoice) - earlier   # the last payment clears what is left, to the cent
        else:
            self.cleared = to_base(amount, invoice.rate)

    @property
    def payment_type(self) -> str:
        return "ACCRECPAYMENT" if self.invoice.type == "ACCREC" else "ACCPAYPAYMENT"


class ManualJournal:
    __slots__ = ("id", "date", "narration", "entries", "updated")

    def __init__(self, id: str, d: _Date, narration: str, entries: list[tuple[Account, int]], updated: datetime) -> None:
        self.id, self.date, self.narration, self.entries, self.updated = id, d, narration, entries, updated


class JLine:
    """A journal line, materialised on demand from the journal's source document."""
    __slots__ = ("account", "net", "tax", "tax_type", "description", "region", "job")

    def __init__(self, account: Account, net: int, tax: int = 0, tax_type: str = "BASEXCLUDED", description: str = "",
                 region: TrackingOption | None = None, job: TrackingOption | None = None) -> None:
        self.account, self.net, self.tax, self.tax_type = account, net, tax, tax_type
        self.description, self.region, self.job = description, region, job

    @property
    def gross(self) -> int:
        return self.net + self.tax


class Journal:
    """A posting. Its JournalID is derived from the tenant and number on demand: a 100,000-invoice
    org has over a quarter of a million journals, and most are never asked for by id."""
    __slots__ = ("number", "salt", "date", "created", "source_type", "source", "reversal")

    def __init__(self, number: int, salt: str, d: _Date, created: datetime, source_type: str, source: Any,
                 reversal: bool = False) -> None:  # source: the document posted, of the kind source_type names
        self.number, self.salt, self.date, self.created = number, salt, d, created
        self.source_type, self.source, self.reversal = source_type, source, reversal

    @property
    def id(self) -> str:
        return derived_id(self.salt, "journal", str(self.number))


SOURCE_TYPE = {"ACCREC": "ACCREC", "ACCPAY": "ACCPAY", "ACCRECCREDIT": "ACCRECCREDIT",
               "ACCPAYCREDIT": "ACCPAYCREDIT", "RECEIVE": "CASHREC", "SPEND": "CASHPAID"}
# +1: the document's lines are credits (income side); -1: debits (cost side).
# A journal line before it is materialised: (account, net, tax, tax type, description, region, job).
Posting = tuple[Account, int, int, str, str, "TrackingOption | None", "TrackingOption | None"]
DIRECTION = {"ACCREC": 1, "ACCPAYCREDIT": 1, "RECEIVE": 1, "ACCPAY": -1, "ACCRECCREDIT": -1, "SPEND": -1}


# --------------------------------------------------------------------------------------------
# The organisation
# --------------------------------------------------------------------------------------------

class Org:
    """One Xero organisation: reference data, documents, journals and per-day aggregates."""

    def __init__(self, *, tenant_id: str, name: str, short_code: str, today: date, start: date, seed: int):
        self.tenant_id = tenant_id
        self.organisation_id = tenant_id
        self.name = name
        self.legal_name = name
        self.short_code = short_code
        self.today = today
        self.start = start
        self.seed = seed
        self.created = midnight(start - timedelta(days=30)) + timedelta(hours=2, minutes=13, seconds=7)
        self.origin = start - timedelta(days=1)        # day index 0: opening balances
        self.horizon_days = (today - self.origin).days + 400
        self.accounts: list[Account] = []
        self.account_by_code: dict[str, Account] = {}
        self.account_by_id: dict[str, Account] = {}
        self.tracking: list[TrackingCategory] = []
        self.contacts: list[Contact] = []
        self.contact_by_id: dict[str, Contact] = {}
        self.invoices: list[Invoice] = []
        self.invoice_by_id: dict[str, Invoice] = {}
        self.credit_notes: list[CreditNote] = []
        self.bank_transactions: list[BankTransaction] = []
        self.payments: list[Payment] = []
        self.manual_journals: list[ManualJournal] = []
        self.journals: list[Journal] = []
        self.listeners: list[Callable[[str, str, str, datetime], None]] = []
        self._by_id: dict[str, object] = {}
        # (account idx, region option or None, job option or None) -> net cents per day
        self._daily: dict[tuple[Any, ...], array[int]] = {}
        # bank account idx -> (received per day, spent per day), both positive
        self._bank_flows: dict[int, tuple[array[int], array[int]]] = {}
        # Report-only amounts: unrealised FX revaluation, shown in reports but never journalled.
        self._report_only: dict[tuple[Any, ...], array[int]] = {}
        self._prefix_cache: dict[tuple[Any, ...], list[int]] = {}
        self._journal_index: dict[str, Journal] = {}
        self._lines = 0
        self._rng_ids = random.Random(seed ^ 0x5EED)
        # The organisation's settings, as GET /Organisation serves them (Xero's own values: the
        # Timezone is Xero's Windows-style name, the financial year ends on month/day).
        self.base_currency = "AUD"
        self.country_code = "AU"
        self.version = "AU"
        self.timezone = "AUSEASTERNSTANDARDTIME"
        self.financial_year_end = (6, 30)
        self.organisation_type = "COMPANY"
        self.sales_tax_basis = "ACCRUALS"
        self._rate_paths: dict[str, list[Decimal]] = {}
        self._reval_dirty = False

    # ---- currencies -----------------------------------------------------------------------

    def rate(self, currency: str | None, d: date) -> Decimal | None:
        """Xero's CurrencyRate for `currency` on day `d`: units of it per unit of the base currency
        (6 dp). None for the base currency itself (Xero's rate 1: nothing to convert)."""
        if not currency or currency == self.base_currency:
            return None
        per_aud = self._per_aud(currency, d)
        if self.base_currency != "AUD":
            per_aud = per_aud / self._per_aud(self.base_currency, d)
        return per_aud.quantize(Decimal("0.000001"))

    def _per_aud(self, currency: str, d: date) -> Decimal:
        if currency == "AUD":
            return Decimal(1)
        path = self._rate_paths.get(currency)
        if path is None:
            path = self._rate_paths[currency] = _rate_path(self.seed, currency, self.horizon_days)
        return path[min(max((d - self.origin).days, 0), self.horizon_days - 1)]

    @property
    def fx_rates(self) -> dict[date, Decimal | None]:
        """Month-end USD rates (units per base unit) used for revaluation, up to yesterday (None when
        the base currency is USD itself)."""
        out: dict[date, Decimal | None] = {}
        d = _month_end(self.start)
        while d < self.today:
            out[d] = self.rate("USD", d)
            d = _month_end(d + timedelta(days=1))
        return out

    # ---- ids and lookups ------------------------------------------------------------------

    def new_id(self) -> str:
        return uuid4_from(self._rng_ids.getrandbits(128))

    def next_line_no(self) -> int:
        self._lines += 1
        return self._lines

    def line_item_id(self, line: Line) -> str:
        return derived_id(self.tenant_id, "line", str(line.id))

    def get(self, kind: type[_T], id_: str) -> _T | None:
        obj = self._by_id.get(id_.lower()) if isinstance(id_, str) else None
        return obj if isinstance(obj, kind) else None

    def _register(self, obj: Any) -> None:  # any record with an id
        self._by_id[obj.id] = obj

    def account(self, code: str) -> Account:
        return self.account_by_code[code]

    @property
    def bank_accounts(self) -> list[Account]:
        return [a for a in self.accounts if a.type == "BANK"]

    @property
    def realised_fx_account(self) -> Account:
        return next(a for a in self.accounts if a.system == "REALISEDCURRENCYGAIN")

    @property
    def unrealised_fx_account(self) -> Account:
        return next(a for a in self.accounts if a.system == "UNREALISEDCURRENCYGAIN")

    @property
    def region_category(self) -> TrackingCategory:
        return self.tracking[0]

    @property
    def job_category(self) -> TrackingCategory:
        return self.tracking[1]

    # ---- posting --------------------------------------------------------------------------

    def day_index(self, d: date) -> int:
        i = (d - self.origin).days
        if not 0 <= i < self.horizon_days:
            raise ValueError(f"date {d} is outside the fake ledger's span {self.origin}..{self.origin + timedelta(self.horizon_days - 1)}")
        return i

    def journal_by_id(self, journal_id: str) -> Journal | None:
        if len(self._journal_index) != len(self.journals):
            self._journal_index = {j.id: j for j in self.journals}
        return self._journal_index.get(journal_id.lower())

    def journal_lines(self, j: Journal) -> list[JLine]:
        sign = -1 if j.reversal else 1
        return [JLine(a, sign * net, sign * tax, tt, desc, r, jb)
                for a, net, tax, tt, desc, r, jb in _postings(self, j.source_type, j.source)]

    def _post(self, source_type: str, source: Any, d: date, created: datetime, reversal: bool = False) -> Journal:
        j = Journal(len(self.journals) + 1, self.tenant_id, d, created, source_type, source, reversal)
        self._apply(j)
        self.journals.append(j)
        return j

    def _apply(self, j: Journal) -> None:
        i = self.day_index(j.date)
        n = self.horizon_days
        sign = -1 if j.reversal else 1
        for account, net, _, _, _, region, job in _postings(self, j.source_type, j.source):
            net *= sign
            key = (account.idx, region, job)
            arr = self._daily.get(key)
            if arr is None:
                arr = self._daily[key] = array("q", bytes(8 * n))
            arr[i] += net
            if account.type == "BANK":
                flows = self._bank_flows.get(account.idx)
                if flows is None:
                    flows = self._bank_flows[account.idx] = (array("q", bytes(8 * n)), array("q", bytes(8 * n)))
                if net >= 0:
                    flows[0][i] += net
                else:
                    flows[1][i] -= net
        self._prefix_cache.clear()
        self._reval_dirty = True

    def _revalue(self) -> None:
        """Unrealised currency gains, as Xero computes them when a report is run.

        At each month-end up to yesterday every open foreign document (what is still due on it, in its
        own currency) is valued at that day's rate (`rate(currency, day)`); the change in that value
        since it was booked at the document's own rate is an unrealised gain or loss against Accounts
        Receivable / Payable, posted to the UNREALISEDCURRENCYGAIN account as the change from the
        month-end before (a document paid since drops out: its gain became realised on payment).
        Xero writes no journal for this, so the P&L, BalanceSheet and TrialBalance carry it and the
        Journals endpoint never does: a journal tie-out differs from the P&L by exactly this line."""
        self._reval_dirty = False
        n = self.horizon_days
        self._report_only = {}
        every: tuple[Invoice | CreditNote, ...] = (*self.invoices, *self.credit_notes)
        docs = [x for x in every
                if getattr(x, "rate", None) is not None and x.status not in ("DRAFT", "SUBMITTED", "VOIDED", "DELETED")]
        self._prefix_cache.clear()
        if not docs:
            return
        fx, ar, ap = self.unrealised_fx_account, self.account_by_code["610"], self.account_by_code["800"]
        arr = {a: self._report_only.setdefault((a.idx, None, None), array("q", bytes(8 * n))) for a in (fx, ar, ap)}
        prev_ar = prev_ap = 0
        m = _month_end(min(x.date for x in docs))
        last = self.today - timedelta(days=1)
        while m <= last:
            u_ar = u_ap = 0
            for x in docs:
                if x.date > m:
                    continue
                if isinstance(x, Invoice):
                    paid = [p for p in x.payments if p.status == "AUTHORISED" and p.date <= m]
                    allocs = [a for a in x.credit_allocations if a.date <= m]
                    due = x.total - sum(p.amount for p in paid) - sum(a.amount for a in allocs)
                    carried = doc_base_total(x) - sum(p.cleared for p in paid) - sum(to_base(a.amount, x.rate) for a in allocs)
                else:
                    allocs = [a for a in x.allocations if a.date <= m]
                    due = x.total - sum(a.amount for a in allocs)
                    carried = doc_base_total(x) - sum(to_base(a.amount, x.rate) for a in allocs)
                if not due:
                    continue
                v = to_base(due, self.rate(x.currency, m)) - carried
                sign = -1 if x.type in ("ACCRECCREDIT", "ACCPAYCREDIT") else 1
                if x.type in ("ACCREC", "ACCRECCREDIT"):
                    u_ar += sign * v
                else:
                    u_ap += sign * v
            i = self.day_index(m)
            d_ar, d_ap = u_ar - prev_ar, u_ap - prev_ap
            arr[ar][i] += d_ar
            arr[ap][i] -= d_ap
            arr[fx][i] += d_ap - d_ar
            prev_ar, prev_ap = u_ar, u_ap
            m = _month_end(m + timedelta(days=1))

    # ---- truth helpers (sums over the ledger; reports are built from these) -----------------

    def _prefix(self, key: tuple[Any, ...]) -> list[int]:
        p = self._prefix_cache.get(key)
        if p is None:
            kind, acct_idx, region, job = key
            if kind == "bank_in":
                src = [self._bank_flows.get(acct_idx, (None, None))[0]]
            elif kind == "bank_out":
                src = [self._bank_flows.get(acct_idx, (None, None))[1]]
            else:
                if kind != "net" and self._reval_dirty:
                    self._revalue()
                table = self._daily if kind == "net" else self._report_only
                src = [arr for (a, r, jb), arr in table.items()
                       if a == acct_idx and (region is None or r is region) and (job is None or jb is job)]
            total = [0] * self.horizon_days
            for arr in src:
                if arr is None:
                    continue
                total = [x + y for x, y in zip(total, arr)]
            p = self._prefix_cache[key] = [0, *accumulate(total)]
        return p

    def _range(self, key: tuple[Any, ...], d_from: date | None, d_to: date) -> int:
        p = self._prefix(key)
        hi = min(max((d_to - self.origin).days + 1, 0), self.horizon_days)
        lo = 0 if d_from is None else min(max((d_from - self.origin).days, 0), self.horizon_days)
        return p[hi] - p[lo] if hi > lo else 0

    def account_net(self, account: Account, d_from: date | None, d_to: date, *, region: TrackingOption | None = None,
                    job: TrackingOption | None = None,
                    include_report_only: bool = True) -> int:
        """Sum of journal NetAmounts (debit +) on the account for the dates, inclusive.

        `d_from=None` means since the beginning (a balance). Report-only revaluations are included
        unless asked not to (the journals never carry them)."""
        v = self._range(("net", account.idx, region, job), d_from, d_to)
        if include_report_only:
            v += self._range(("fx", account.idx, region, job), d_from, d_to)
        return v

    def bank_flows(self, account: Account, d_from: date, d_to: date) -> tuple[int, int, int, int]:
        """(opening, received, spent, closing) in cents for a bank account."""
        opening = self.account_net(account, None, d_from - timedelta(days=1))
        received = self._range(("bank_in", account.idx, None, None), d_from, d_to)
        spent = self._range(("bank_out", account.idx, None, None), d_from, d_to)
        return opening, received, spent, opening + received - spent

    def profit_and_loss(self, d_from: date, d_to: date, *, region: TrackingOption | None = None,
                        job: TrackingOption | None = None,
                        include_report_only: bool = True) -> dict[str, Decimal]:
        """Totals per P&L line as Xero's report shows them (costs positive), as Decimals."""
        sums = {"income": 0, "cost_of_sales": 0, "other_income": 0, "operating_expenses": 0}
        keys = {"REVENUE": "income", "SALES": "income", "DIRECTCOSTS": "cost_of_sales",
                "OTHERINCOME": "other_income", "EXPENSE": "operating_expenses",
                "OVERHEADS": "operating_expenses", "DEPRECIATN": "operating_expenses"}
        for a in self.accounts:
            k = keys.get(a.type)
            if k:
                v = self.account_net(a, d_from, d_to, region=region, job=job,
                                     include_report_only=include_report_only)
                sums[k] += -v if a.cls == "REVENUE" else v
        gp = sums["income"] - sums["cost_of_sales"]
        net = gp + sums["other_income"] - sums["operating_expenses"]
        out = {k: cents_to_decimal(v) for k, v in sums.items()}
        out["gross_profit"] = cents_to_decimal(gp)
        out["net_profit"] = cents_to_decimal(net)
        return out

    def sales_revenue(self, d_from: date, d_to: date) -> dict[tuple[str, str], dict[str, Any]]:
        """Sales invoices (ACCREC) less sales credit notes (ACCRECCREDIT), AUTHORISED or PAID, each
        by its own date, per (region, job type) option name ("Unassigned" without tracking):
        {invoices, credit_notes, subtotal, total_tax, total} (money as Decimal). What revenue_weekly
        should hold. Cash sales (RECEIVE bank transactions) are not in it, though the P&L's Income
        section counts them: `cash_sales` gives those."""
        acc: dict[tuple[str, str], list[int]] = {}
        # In the base currency, each line converted on its own (as the journals carry it).
        docs: list[tuple[Invoice | CreditNote, int]] = [(i, 1) for i in self.invoices if i.type == "ACCREC"]
        docs += [(c, -1) for c in self.credit_notes if c.type == "ACCRECCREDIT"]
        for doc, sign in docs:
            if not (doc.posts and d_from <= doc.date <= d_to):
                continue
            seen = set()
            for ln in doc.lines:
                key = (ln.region.name if ln.region else "Unassigned", ln.job.name if ln.job else "Unassigned")
                a = acc.setdefault(key, [0, 0, 0, 0])
                if key not in seen:
                    a[0 if sign > 0 else 1] += 1
                    seen.add(key)
                rate = getattr(doc, "rate", None)
                a[2] += sign * to_base(ln.amount, rate)
                a[3] += sign * to_base(ln.tax, rate)
        return {k: {"invoices": v[0], "credit_notes": v[1], "subtotal": cents_to_decimal(v[2]),
                    "total_tax": cents_to_decimal(v[3]), "total": cents_to_decimal(v[2] + v[3])}
                for k, v in sorted(acc.items())}

    def cash_sales(self, d_from: date, d_to: date) -> dict[tuple[str, str], Decimal]:
        """Ex-GST income-section lines of RECEIVE bank transactions (cash sales), per (region, job)."""
        out: dict[tuple[str, str], int] = {}
        for bt in self.bank_transactions:
            if bt.type != "RECEIVE" or not bt.posts or not d_from <= bt.date <= d_to:
                continue
            for ln in bt.lines:
                if ln.account.type in ("REVENUE", "SALES"):
                    key = (ln.region.name if ln.region else "Unassigned", ln.job.name if ln.job else "Unassigned")
                    out[key] = out.get(key, 0) + ln.amount
        return {k: cents_to_decimal(v) for k, v in sorted(out.items())}

    def bank_summary(self, d_from: date, d_to: date) -> dict[str, dict[str, Decimal]]:
        """Per bank account name: opening, received, spent, closing (Decimals)."""
        out = {}
        for a in self.bank_accounts:
            o, r, s, c = self.bank_flows(a, d_from, d_to)
            out[a.name] = {"opening": cents_to_decimal(o), "received": cents_to_decimal(r),
                           "spent": cents_to_decimal(s), "closing": cents_to_decimal(c)}
        return out

    # ---- mutations (tests and webhooks) -----------------------------------------------------

    def _emit(self, category: str, event_type: str, resource_id: str, at: datetime) -> None:
        for cb in list(self.listeners):
            cb(category, event_type, resource_id, at)

    def add_contact(self, name: str, at: datetime, *, email: str = "", kind: str = "customer",
                    first_name: str = "", last_name: str = "") -> Contact:
        c = Contact(self.new_id(), name, email, at, first_name=first_name, last_name=last_name, kind=kind)
        self.contacts.append(c)
        self.contact_by_id[c.id] = c
        self._register(c)
        self._emit("CONTACT", "CREATE", c.id, at)
        return c

    _CONTACT_FIELDS = {"Name": "name", "EmailAddress": "email", "FirstName": "first_name",
                       "LastName": "last_name", "ContactStatus": "status", "AccountNumber": "account_number",
                       "ContactNumber": "number"}

    def update_contact(self, contact_id: str, at: datetime, **fields: Any) -> Contact:
        c = self._contact(contact_id)
        for k, v in fields.items():
            attr = self._CONTACT_FIELDS.get(k, k)
            if attr not in Contact.__slots__ or attr in ("id", "updated"):
                raise ValueError(f"update_contact: unknown contact field {k!r}")
            setattr(c, attr, v)
        c.updated = at
        self._emit("CONTACT", "UPDATE", c.id, at)
        return c

    def archive_contact(self, contact_id: str, at: datetime) -> Contact:
        return self.update_contact(contact_id, at, status="ARCHIVED")

    def merge_contact(self, from_id: str, into_id: str, at: datetime) -> Contact:
        """Xero's merge: the merged contact is archived and points at the kept one; its
        documents move to the kept contact (and so count as updated)."""
        src, dst = self._contact(from_id), self._contact(into_id)
        if src is dst:
            raise ValueError("merge_contact: a contact cannot be merged into itself")
        src.status, src.merged_to, src.updated = "ARCHIVED", dst.id, at
        for doc in (*self.invoices, *self.credit_notes, *self.bank_transactions):
            if doc.contact is src:
                doc.contact = dst
                doc.updated = at
        dst.is_customer = dst.is_customer or src.is_customer
        dst.is_supplier = dst.is_supplier or src.is_supplier
        dst.updated = at
        self._emit("CONTACT", "UPDATE", src.id, at)
        self._emit("CONTACT", "UPDATE", dst.id, at)
        return dst

    def add_invoice(self, contact_id: str, d: date, lines: Iterable[dict[str, Any]], at: datetime, *,
                    type: str = "ACCREC", status: str = "AUTHORISED", due_date: date | None = None,
                    reference: str = "", currency: str | None = None, rate: Decimal | str | None = None) -> Invoice:
        """lines: dicts with description, quantity (int), unit_amount (Decimal/str), account_code,
        optional tax_type, region (option name), job_type (option name). `currency` other than the
        base currency: amounts are in it, at `rate` (units per base unit; default the day's rate)."""
        if type not in ("ACCREC", "ACCPAY") or status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            raise ValueError(f"add_invoice: type {type!r}/status {status!r} not supported")
        c = self._contact(contact_id)
        self.day_index(d)      # refuse dates outside the ledger before changing anything
        built = [self._line(spec) for spec in lines]
        if not built:
            raise ValueError("add_invoice: an invoice needs at least one line")
        prefix = "INV" if type == "ACCREC" else "BILL"
        number = f"{prefix}-{sum(1 for i in self.invoices if i.type == type) + 1:06d}"
        currency, rate = self._currency(currency, rate, d)
        inv = Invoice(self.new_id(), type, number, c, d, due_date or d + timedelta(days=14), status, built, at,
                      reference, currency=currency, rate=rate)
        self.invoices.append(inv)
        self.invoice_by_id[inv.id] = inv
        self._register(inv)
        if inv.posts:
            self._post(type, inv, d, at)
        self._emit("INVOICE", "CREATE", inv.id, at)
        return inv

    def void_invoice(self, invoice_id: str, at: datetime) -> Invoice:
        inv = self._invoice(invoice_id)
        if inv.amount_paid or inv.credited:
            raise ValueError(f"invoice {inv.number} has payments or credit notes applied: remove them before voiding "
                             "(as Xero requires)")
        if inv.status in ("VOIDED", "DELETED"):
            raise ValueError(f"invoice {inv.number} is already {inv.status}")
        was_posted = inv.posts
        inv.status = "VOIDED" if was_posted else "DELETED"
        inv.updated = at
        if was_posted:
            # The reversal carries the invoice's date, so every report agrees it never happened.
            self._post(inv.type, inv, inv.date, at, reversal=True)
        self._emit("INVOICE", "UPDATE", inv.id, at)
        return inv

    def authorise_invoice(self, invoice_id: str, at: datetime) -> Invoice:
        inv = self._invoice(invoice_id)
        if inv.status not in ("DRAFT", "SUBMITTED"):
            raise ValueError(f"invoice {inv.number} is {inv.status}, not DRAFT/SUBMITTED")
        inv.status, inv.updated = "AUTHORISED", at
        self._post(inv.type, inv, inv.date, at)
        self._emit("INVOICE", "UPDATE", inv.id, at)
        return inv

    def pay_invoice(self, invoice_id: str, d: date, at: datetime, amount: Decimal | None = None,
                    bank_code: str = "090", rate: Decimal | str | None = None) -> Payment:
        """`amount` in the invoice's currency; a foreign invoice is paid at `rate` (default the
        day's rate) into the base-currency bank account, its realised gain in the payment's journal."""
        inv = self._invoice(invoice_id)
        if inv.status != "AUTHORISED":
            raise ValueError(f"invoice {inv.number} is {inv.status}: only AUTHORISED invoices take payments")
        cents = inv.amount_due if amount is None else int((Decimal(str(amount)) * 100).to_integral_value())
        self.day_index(d)
        if not 0 < cents <= inv.amount_due:
            raise ValueError(f"payment {cents / 100:.2f} must be between 0 and the amount due {inv.amount_due / 100:.2f}")
        pay_rate = None if inv.rate is None else (Decimal(str(rate)) if rate is not None else self.rate(inv.currency, d))
        p = Payment(self.new_id(), inv, d, cents, self.account(bank_code), at, rate=pay_rate)
        inv.payments.append(p)
        self.payments.append(p)
        self._register(p)
        if inv.amount_due == 0:
            inv.status = "PAID"
        inv.updated = at
        self._post(p.payment_type, p, d, at)
        self._emit("INVOICE", "UPDATE", inv.id, at)
        return p

    def add_credit_note(self, contact_id: str, d: date, lines: Iterable[dict[str, Any]], at: datetime, *,
                        type: str = "ACCRECCREDIT", status: str = "AUTHORISED", reference: str = "",
                        currency: str | None = None, rate: Decimal | str | None = None) -> CreditNote:
        """lines, currency and rate as for add_invoice. An AUTHORISED credit note posts at once (on its date)."""
        if type not in ("ACCRECCREDIT", "ACCPAYCREDIT") or status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            raise ValueError(f"add_credit_note: type {type!r}/status {status!r} not supported")
        c = self._contact(contact_id)
        self.day_index(d)
        built = [self._line(spec) for spec in lines]
        if not built:
            raise ValueError("add_credit_note: a credit note needs at least one line")
        prefix = "CN" if type == "ACCRECCREDIT" else "SCN"
        number = f"{prefix}-{sum(1 for x in self.credit_notes if x.type == type) + 1:05d}"
        currency, rate = self._currency(currency, rate, d)
        cn = CreditNote(self.new_id(), type, number, c, d, status, built, at, reference, currency=currency, rate=rate)
        self.credit_notes.append(cn)
        self._register(cn)
        if cn.posts:
            self._post(type, cn, d, at)
        self._emit("CREDITNOTE", "CREATE", cn.id, at)
        return cn

    def void_credit_note(self, credit_note_id: str, at: datetime) -> CreditNote:
        """Xero voids only an unallocated credit note; a posted one gets a reversing journal on its
        own date (so every report agrees it never happened), a draft is simply DELETED."""
        cn = self._credit_note(credit_note_id)
        if cn.allocations:
            raise ValueError(f"credit note {cn.number} is allocated to invoices: remove the allocations before voiding")
        if cn.status in ("VOIDED", "DELETED"):
            raise ValueError(f"credit note {cn.number} is already {cn.status}")
        was_posted = cn.posts
        cn.status = "VOIDED" if was_posted else "DELETED"
        cn.updated = at
        if was_posted:
            self._post(cn.type, cn, cn.date, at, reversal=True)
        self._emit("CREDITNOTE", "UPDATE", cn.id, at)
        return cn

    def allocate_credit_note(self, credit_note_id: str, invoice_id: str, d: date, at: datetime,
                             amount: Decimal | None = None) -> Allocation:
        """Apply a credit note to an invoice of the same contact and side (sales/purchases). No
        journal: both balances sit in the same control account."""
        cn, inv = self._credit_note(credit_note_id), self._invoice(invoice_id)
        if cn.status != "AUTHORISED" or inv.status != "AUTHORISED":
            raise ValueError(f"only an AUTHORISED credit note applies to an AUTHORISED invoice "
                             f"({cn.number} is {cn.status}, {inv.number} is {inv.status})")
        if (cn.type, inv.type) not in (("ACCRECCREDIT", "ACCREC"), ("ACCPAYCREDIT", "ACCPAY")) or cn.contact is not inv.contact:
            raise ValueError(f"credit note {cn.number} and invoice {inv.number} are not for the same contact and side")
        cents = min(cn.remaining, inv.amount_due) if amount is None else int((Decimal(str(amount)) * 100).to_integral_value())
        self.day_index(d)
        if not 0 < cents <= min(cn.remaining, inv.amount_due):
            raise ValueError(f"allocation {cents / 100:.2f} must be between 0 and both the remaining credit "
                             f"{cn.remaining / 100:.2f} and the amount due {inv.amount_due / 100:.2f}")
        if (cn.currency, cn.rate) != (inv.currency, inv.rate):
            raise ValueError(f"credit note {cn.number} ({cn.currency} at {cn.rate}) and invoice {inv.number} "
                             f"({inv.currency} at {inv.rate}) differ in currency or rate: not modelled")
        a = Allocation(self.new_id(), cn, inv, cents, d)
        self._reval_dirty = True
        self._prefix_cache.clear()
        cn.allocations.append(a)
        inv.credit_allocations.append(a)
        if cn.remaining == 0:
            cn.status = "PAID"
        if inv.amount_due == 0:
            inv.status = "PAID"
        cn.updated = inv.updated = at
        self._emit("CREDITNOTE", "UPDATE", cn.id, at)
        self._emit("INVOICE", "UPDATE", inv.id, at)
        return a

    def _currency(self, currency: str | None, rate: object, d: date) -> tuple[str, Decimal | None]:
        currency = (currency or self.base_currency).upper()
        if currency == self.base_currency:
            return currency, None
        value = Decimal(str(rate)) if rate is not None else self.rate(currency, d)
        if value is None or value <= 0:  # self.rate is None only for the base currency, handled above
            raise ValueError(f"a {currency} document needs a positive rate, got {value}")
        return currency, value

    def _line(self, spec: dict[str, Any]) -> Line:
        acct = self.account(spec["account_code"])
        unit = int((Decimal(str(spec["unit_amount"])) * 100).to_integral_value())
        return Line(self.next_line_no(), spec.get("description", ""), int(spec.get("quantity", 1)), unit,
                    acct, spec.get("tax_type", acct.tax_type),
                    self._option(self.region_category, spec.get("region")),
                    self._option(self.job_category, spec.get("job_type")))

    def _credit_note(self, credit_note_id: str) -> CreditNote:
        cn = self.get(CreditNote, credit_note_id)
        if cn is None:
            raise KeyError(f"no credit note {credit_note_id} in {self.name}")
        return cn

    def _contact(self, contact_id: str) -> Contact:
        c = self.get(Contact, contact_id)
        if c is None:
            raise KeyError(f"no contact {contact_id} in {self.name}")
        return c

    def _invoice(self, invoice_id: str) -> Invoice:
        inv = self.get(Invoice, invoice_id)
        if inv is None:
            raise KeyError(f"no invoice {invoice_id} in {self.name}")
        return inv

    def _option(self, cat: TrackingCategory, name: str | None) -> TrackingOption | None:
        if name is None:
            return None
        for o in cat.options:
            if o.name == name:
                return o
        raise ValueError(f"{cat.name} has no option {name!r}; options: {[o.name for o in cat.options]}")


def to_base(cents: int, rate: Decimal | None) -> int:
    """Document-currency cents -> base-currency cents at Xero's CurrencyRate (document currency per
    unit of base), rounded to the cent half away from zero. Journals convert each line this way."""
    if rate is None:
        return cents
    return int((Decimal(cents) / rate).quantize(Decimal(1), rounding="ROUND_HALF_UP"))


def doc_base_total(doc: _Doc) -> int:
    """The base value a document books to its control account: the sum of its lines' converted net
    and tax amounts (each rounded), which is what its journal carries."""
    rate = getattr(doc, "rate", None)
    if rate is None:
        return doc.total
    return sum(to_base(l.amount, rate) + to_base(l.tax, rate) for l in doc.lines)


# Starting rates (units per 1 AUD) near late-2026 levels, for the currencies the fake's overseas
# customers use; each walks a little every day (about 0.35% a day, drawn back toward its start).
FX_START = {"USD": Decimal("0.6550"), "NZD": Decimal("1.0950"), "GBP": Decimal("0.5150"),
            "EUR": Decimal("0.6050"), "FJD": Decimal("1.4750"), "SGD": Decimal("0.8720")}


def _rate_path(seed: int, currency: str, days: int) -> list[Decimal]:
    start = float(FX_START.get(currency, Decimal(1)))
    rng = random.Random(seed * 1_000_003 + int.from_bytes(currency.encode(), "big"))
    v, out = start, []
    for _ in range(days):
        v += rng.gauss(0, 0.0035 * start) + 0.02 * (start - v)
        out.append(Decimal(f"{v:.6f}"))
    return out


# A posting is a plain tuple (account, net, tax, tax_type, description, region, job): the ledger
# applies a million of them for a big org, and JLine objects are only built when journals are served.
_BX = "BASEXCLUDED"


def _doc_postings(org: Org, doc: _Doc, control: Account) -> list[Posting]:
    d = DIRECTION[doc.type]
    rate = getattr(doc, "rate", None)
    out: list[Posting] = []
    tax_total = total = 0
    for l in doc.lines:
        net, tax = (l.amount, l.tax) if rate is None else (to_base(l.amount, rate), to_base(l.tax, rate))
        out.append((l.account, -d * net, -d * tax, l.tax_type, l.description, l.region, l.job))
        tax_total += tax
        total += net + tax
    if tax_total:
        out.append((org.account_by_code["820"], -d * tax_total, 0, _BX, "", None, None))
    out.append((control, d * total, 0, _BX, "", None, None))
    return out


def _postings(org: Org, source_type: str, src: Any) -> list[Posting]:
    if source_type in ("ACCREC", "ACCRECCREDIT"):
        return _doc_postings(org, src, org.account_by_code["610"])
    if source_type in ("ACCPAY", "ACCPAYCREDIT"):
        return _doc_postings(org, src, org.account_by_code["800"])
    if source_type in ("CASHREC", "CASHPAID"):
        return _doc_postings(org, src, src.bank)
    if source_type in ("ACCRECPAYMENT", "ACCPAYPAYMENT"):
        # A foreign invoice paid at another rate: the bank moves `base`, the control account is
        # cleared at the invoice's rate, and the difference is a realised currency gain (Xero's
        # REALISEDCURRENCYGAIN account, in the payment's journal).
        d = 1 if source_type == "ACCRECPAYMENT" else -1
        control = org.account_by_code["610" if d == 1 else "800"]
        out: list[Posting] = [(src.bank, d * src.base, 0, _BX, "", None, None),
               (control, -d * src.cleared, 0, _BX, "", None, None)]
        if src.base != src.cleared:
            out.append((org.realised_fx_account, -d * (src.base - src.cleared), 0, _BX, "", None, None))
        return out
    if source_type == "TRANSFER":
        return [(src.to_bank, src.amount, 0, _BX, "", None, None),
                (src.from_bank, -src.amount, 0, _BX, "", None, None)]
    if source_type == "MANJOURNAL":
        return [(a, net, 0, _BX, src.narration, None, None) for a, net in src.entries]
    raise ValueError(f"unknown journal source type {source_type}")


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------

ORG_NAMES = ["Harbourside Trades", "Coastline Electrical & Plumbing", "Ironbark Building Services",
             "Southern Cross Maintenance", "Bluegum Trade Group", "Pacific Property Services"]
# Consecutive seeds (the platform's --tenants N) get distinct names for 60 tenants.
ORG_PREFIXES = ["", "North ", "South ", "West ", "East ", "Central ", "Metro ", "Coastal ", "Regional ", "United "]


def generate_org(seed: int, today: date, *, years: float = 2.0, invoices: int | None = None,
                 name: str | None = None, tenant_id: str | None = None,
                 customers: list[tuple[str, str]] | None = None) -> Org:
    """Build a deterministic Australian trades organisation with `years` of history ending
    yesterday (today is still in progress). `invoices` scales the number of sales invoices
    (default about 100 a week); trading income stays near $250K a week whatever the count.
    `customers` [(name, email)]: exactly these customers (an accounting firm's ledger, whose
    customers are its clients), without the random ones and the matching puzzles."""
    if isinstance(today, datetime):
        today = today.astimezone(UTC).date() if today.tzinfo else today.date()
    if invoices is not None and invoices < 1:
        raise ValueError(f"invoices must be at least 1, got {invoices}")
    gen = _Generator(seed, today, years, invoices, name, tenant_id)
    gen.customer_list = customers
    return gen.build()


class _Generator:
    def __init__(self, seed: int, today: date, years: float, invoices: int | None, name: str | None,
                 tenant_id: str | None) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.today = today
        self.last_day = today - timedelta(days=1)
        self.start = today - timedelta(days=max(28, int(round(years * 365))))
        self.days = [self.start + timedelta(days=i) for i in range((self.last_day - self.start).days + 1)]
        weeks = len(self.days) / 7
        self.n_invoices = invoices if invoices is not None else int(DEFAULT_INVOICES_PER_WEEK * weeks)
        self.n_invoices = max(self.n_invoices, 1)
        rng = self.rng
        tid = tenant_id or str(uuid.UUID(int=rng.getrandbits(128), version=4))
        prefix = ORG_PREFIXES[(seed // len(ORG_NAMES)) % len(ORG_PREFIXES)]
        org_name = name or f"{prefix}{ORG_NAMES[seed % len(ORG_NAMES)]} Pty Ltd"
        short = "!" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789") for _ in range(5))
        self.org = Org(tenant_id=tid, name=org_name, short_code=short, today=today, start=self.start, seed=seed)
        self.weekly_income = WEEKLY_INCOME_CENTS
        self.events: list[tuple[datetime, int, str, Any, date]] = []  # (created, seq, source_type, source, date)

    # -- helpers --

    def uid(self) -> str:
        return self.org.new_id()

    def line_no(self) -> int:
        return self.org.next_line_no()

    def stamp(self, d: date, lo_h: float = 0.0, hi_h: float = 8.0) -> datetime:
        """A creation time on day d during Australian business hours (UTC 00:00-08:00)."""
        ms = self.rng.randrange(int(lo_h * 3_600_000), int(hi_h * 3_600_000))
        return midnight(d) + timedelta(milliseconds=ms)

    def day_weight(self, d: date, region: Region) -> float:
        _, weight, peak, amp, growth, _ = region
        wd = d.weekday()
        w = (1.0, 1.05, 1.05, 1.0, 0.95, 0.22, 0.03)[wd]
        if (d.month == 12 and d.day >= 23) or (d.month == 1 and d.day <= 6):
            w *= 0.12    # Christmas shutdown
        season = 1 + amp * math.cos(2 * math.pi * ((d.month - 1 + d.day / 31) - (peak - 1)) / 12)
        t = (d - self.start).days / 365.0 - (len(self.days) / 365.0) / 2
        weighted: float = weight * w * season * (1 + growth) ** t
        return weighted

    def build(self) -> Org:
        self.chart()
        self.tracking()
        self.contacts()
        self.opening_balances()
        self.sales_invoices()
        self.cash_sales()
        self.cost_bills()
        self.overheads()
        self.wages_and_card()
        self.credit_notes()
        if self.customer_list is None:  # an accounting firm's ledger bills its clients at home
            self.foreign_sales()
        self.usd_bill()
        self.post_all()
        self.gst_payments()
        self.fx_revaluation()
        return self.org

    def chart(self) -> None:
        org = self.org
        for idx, (code, name, type_, tax, system, btype, bnum) in enumerate(chart.ACCOUNTS):
            a = Account(idx, self.uid(), code, name, type_, tax, system, btype, bnum,
                        org.created + timedelta(minutes=idx))
            org.accounts.append(a)
            org.account_by_code[code] = a
            org.account_by_id[a.id] = a
            org._register(a)

    def tracking(self) -> None:
        org = self.org
        for cat_name, names in (("Region", [r[0] for r in chart.REGIONS]), ("Job Type", chart.JOB_TYPES)):
            cat = TrackingCategory(self.uid(), cat_name, org.created + timedelta(hours=1))
            for n in names:
                cat.options.append(TrackingOption(self.uid(), n, cat))
            org.tracking.append(cat)
            org._register(cat)
        self.region_opt = {o.name: o for o in org.tracking[0].options}
        self.job_opt = {o.name: o for o in org.tracking[1].options}

    # -- contacts --

    customer_list: list[tuple[str, str]] | None = None

    def contacts(self) -> None:
        rng = self.rng
        n_customers = min(3000, max(80, self.n_invoices // 25))
        self.customers: dict[tuple[str, str], list[Contact]] = {}
        used: set[str] = set()
        given = self.customer_list
        if given is not None:
            n_customers = 0
            for i, (nm, mail) in enumerate(given):
                rname = self.pick_region()[0]
                city, pc = rng.choice(chart.CITIES[rname])
                c = Contact(self.uid(), nm, mail or "", self.stamp(self.start - timedelta(days=rng.randrange(1, 400))),
                            kind="customer", region=rname, city=city, postcode=pc,
                            street=f"{rng.randrange(1, 300)} {rng.choice(chart.STREETS)}",
                            phone=f"{rng.randrange(9000, 9999)} {rng.randrange(1000, 9999)}", number=f"C{i + 1:05d}")
                c.account_number = f"CUST{i + 1:05d}"
                self.add_contact(c)
                self.customers.setdefault((rname, "business"), []).append(c)
        for i in range(n_customers):
            region = self.pick_region()
            rname = region[0]
            city, pc = rng.choice(chart.CITIES[rname])
            if rng.random() < 0.55:
                kind = "person"
                fn, ln = rng.choice(chart.FIRST), rng.choice(chart.LAST)
                nm = f"{fn} {ln}"
                email_user = f"{fn}.{ln}".lower()
                domain = rng.choice(["gmail.com", "outlook.com", "bigpond.com", "icloud.com"])
            else:
                kind = "business"
                fn = ln = ""
                base = f"{rng.choice(chart.BIZ_WORDS)} {rng.choice(chart.BIZ_KINDS)}"
                suffix = rng.choice(chart.SUFFIXES)
                nm = f"{base} {suffix}".strip()
                email_user = rng.choice(["accounts", "admin", "ap", "office"])
                domain = base.lower().replace(" ", "").replace("&", "and") + ".example.com.au"
            while nm in used:   # Xero: names unique among active contacts
                nm = f"{nm} ({city})" if f"{nm} ({city})" not in used else f"{nm} {len(used)}"
            used.add(nm)
            created = self.stamp(self.start - timedelta(days=rng.randrange(1, 400)))
            c = Contact(self.uid(), nm, f"{email_user}@{domain}", created, first_name=fn, last_name=ln,
                        kind="customer", region=rname, city=city, postcode=pc,
                        street=f"{rng.randrange(1, 300)} {rng.choice(chart.STREETS)}",
                        phone=f"{rng.randrange(9000, 9999)} {rng.randrange(1000, 9999)}",
                        number=f"C{i + 1:05d}")
            c.account_number = f"CUST{i + 1:05d}"
            self.add_contact(c)
            self.customers.setdefault((rname, kind), []).append(c)
        self.suppliers: dict[str, list[Contact]] = {"cos": [], "overhead": []}
        self.supplier_account: dict[str, tuple[str, str]] = {}
        for j, (nm, kind, acct, tax, domain) in enumerate(chart.SUPPLIERS):
            created = self.stamp(self.start - timedelta(days=rng.randrange(30, 700)))
            c = Contact(self.uid(), nm, f"accounts@{domain}", created, kind="supplier",
                        number=f"S{j + 1:04d}", phone=f"1300 {rng.randrange(100, 999)} {rng.randrange(100, 999)}")
            self.add_contact(c)
            self.suppliers[kind].append(c)
            self.supplier_account[c.id] = (acct, tax)
        self.ato = Contact(self.uid(), "Australian Taxation Office", "", self.stamp(self.start - timedelta(days=60)),
                           kind="supplier")
        self.add_contact(self.ato)
        if given is None:
            self.ambiguity()

    def add_contact(self, c: Contact) -> None:
        self.org.contacts.append(c)
        self.org.contact_by_id[c.id] = c
        self.org._register(c)

    def ambiguity(self) -> None:
        """Contacts a practice's matching must handle: shared emails, near-identical names, an
        archived contact and a merged one."""
        rng = self.rng
        regions = [r[0] for r in chart.REGIONS]

        def biz(name: str, email: str, region: str) -> Contact:
            city, pc = rng.choice(chart.CITIES[region])
            c = Contact(self.uid(), name, email, self.stamp(self.start - timedelta(days=rng.randrange(10, 300))),
                        kind="customer", region=region, city=city, postcode=pc,
                        street=f"{rng.randrange(1, 300)} {rng.choice(chart.STREETS)}")
            self.add_contact(c)
            self.customers.setdefault((region, "business"), []).append(c)
            return c

        biz("Harbour Strata Management", "accounts@harbourstrata.example.com.au", regions[0])
        biz("Harbour Strata Management Pty Ltd", "accounts@harbourstrata.example.com.au", regions[0])
        biz("O'Brien Electrical Contracting", "obrien.elec@example.com.au", regions[1])
        biz("OBrien Electrical Contracting Pty Ltd", "admin@obrienelectrical.example.com.au", regions[1])
        biz("St George Medical Centre", "practice@stgeorgemed.example.com.au", regions[2])
        biz("Saint George Medical Centre", "practice@stgeorgemed.example.com.au", regions[2])
        old = biz("Kingfisher Cafe", "hello@kingfishercafe.example.com.au", regions[3])
        self.archive_later = old
        kept = biz("Banksia Childcare Centre Pty Ltd", "accounts@banksiacare.example.com.au", regions[4])
        dup = biz("Banksia Child Care Centre", "accounts@banksiacare.example.com.au", regions[4])
        self.merge_later = (dup, kept)

    def pick_region(self) -> Region:
        r = self.rng.random()
        acc = 0.0
        for region in chart.REGIONS:
            acc += region[1]
            if r < acc:
                return region
        return chart.REGIONS[-1]

    def pick_customer(self, region: str, kind: str) -> Contact:
        pool = self.customers.get((region, kind)) or self.customers.get((region, "business")) \
            or self.customers.get((region, "person")) or next(iter(self.customers.values()))
        # Skewed: a few regular customers get much of the work.
        return pool[int(len(pool) * self.rng.random() ** 2.2)]

    # -- opening balances --

    def opening_balances(self) -> None:
        org = self.org
        scale = self.weekly_income
        entries = [(org.account("090"), 2 * scale), (org.account("091"), 4 * scale),
                   (org.account("092"), -scale // 20), (org.account("720"), 3 * scale),
                   (org.account("710"), scale // 4)]
        entries.append((org.account("960"), -sum(e[1] for e in entries)))
        mj = ManualJournal(self.uid(), org.origin, "Opening balances", entries,
                           midnight(org.origin) + timedelta(hours=1))
        org.manual_journals.append(mj)
        org._register(mj)
        self.event(mj.updated, "MANJOURNAL", mj, org.origin)

    def event(self, created: datetime, source_type: str, source: Any, d: date) -> None:
        self.events.append((created, len(self.events), source_type, source, d))

    # -- sales invoices --

    def weighted_days(self) -> tuple[list[tuple[date, Region]], list[float]]:
        """Cumulative (day, region) weights for sampling when documents happen."""
        cells: list[tuple[date, Region]] = []
        cum: list[float] = []
        acc = 0.0
        for d in self.days:
            for region in chart.REGIONS:
                acc += self.day_weight(d, region)
                cells.append((d, region))
                cum.append(acc)
        return cells, cum

    def sample_cells(self, n: int) -> list[tuple[date, Region]]:
        cells, cum = self.cells
        total = cum[-1]
        rnd = self.rng.random
        picks = [cells[min(bisect_left(cum, rnd() * total), len(cells) - 1)] for _ in range(n)]
        picks.sort(key=lambda c: c[0])
        return picks

    def pick_job(self, region: Region) -> str:
        mix = region[5]
        r = self.rng.random()
        return "Residential" if r < mix[0] else ("Commercial" if r < mix[0] + mix[1] else "Retrospective")

    def sales_invoices(self) -> None:
        rng, org = self.rng, self.org
        self.cells = self.weighted_days()
        weeks = len(self.days) / 7
        mean_net = self.weekly_income * weeks * INVOICE_SHARE / self.n_invoices
        job_factor = {"Residential": 0.75, "Commercial": 1.9, "Retrospective": 0.55}
        job_norm = sum(job_factor[j] * s for j, s in zip(chart.JOB_TYPES, (0.55, 0.32, 0.13)))
        region_names = [r[0] for r in chart.REGIONS]
        last = self.last_day
        for n, (d, region) in enumerate(self.sample_cells(self.n_invoices), start=1):
            job = self.pick_job(region)
            kind = "person" if job == "Residential" and rng.random() < 0.8 else "business"
            contact = self.pick_customer(region[0], kind)
            target = mean_net * job_factor[job] / job_norm * rng.lognormvariate(-0.18, 0.6)
            lines = []
            split = rng.random() < 0.08     # a job that spans two regions
            other = rng.choice([r for r in region_names if r != region[0]]) if split else None
            mix = chart.SALES_MIX[job]
            for k, (acct, share) in enumerate(mix):
                if k and rng.random() < 0.35:
                    continue
                line_net = max(5000, int(target * share))
                qty = rng.choice((1, 1, 1, 2, 3, 4, 5, 8, 10))
                unit = max(100, line_net // qty)
                rname = other if (other is not None and k % 2 == 1) else region[0]
                lines.append(Line(self.line_no(), rng.choice(chart.LINE_TEXT[acct]), qty, unit, org.account(acct),
                                  "OUTPUT", self.region_opt[rname], self.job_opt[job]))
            if other is not None and len(lines) == 1:
                first = lines[0]
                half = max(1, first.qty // 2) if first.qty > 1 else 1
                lines.append(Line(self.line_no(), first.description, half, first.unit, first.account, "OUTPUT",
                                  self.region_opt[other], first.job))
            age = (last - d).days
            r = rng.random()
            if r < 0.012:
                status = "VOIDED"
            elif r < 0.017:
                status = "DELETED"
            elif age < 10 and r < 0.20:
                status = "DRAFT"
            elif age < 10 and r < 0.26:
                status = "SUBMITTED"
            else:
                status = "AUTHORISED"
            terms = 30 if kind == "business" else 14
            created = self.stamp(d)
            inv = Invoice(self.uid(), "ACCREC", f"INV-{n:06d}", contact, d, d + timedelta(days=terms), status,
                          lines, created, f"Job {rng.randrange(10000, 99999)}")
            self.register_invoice(inv)
            if status == "AUTHORISED":
                self.event(created, "ACCREC", inv, d)
                self.maybe_pay(inv, terms, bad_debt=0.03)
            elif status == "VOIDED":
                inv.updated = created + timedelta(days=rng.randrange(1, 5), seconds=rng.randrange(3600))
                if inv.updated.date() > last:
                    inv.updated = created + timedelta(minutes=30)

    def register_invoice(self, inv: Invoice) -> None:
        self.org.invoices.append(inv)
        self.org.invoice_by_id[inv.id] = inv
        self.org._register(inv)

    def maybe_pay(self, inv: Invoice, terms: int, bad_debt: float, bank_code: str = "090") -> None:
        rng = self.rng
        if rng.random() < bad_debt:
            return
        lag = max(0, int(rng.gauss(terms * 0.8, terms * 0.5)))
        pd = inv.date + timedelta(days=lag)
        if pd > self.last_day:
            return
        amount = inv.total
        if rng.random() < 0.04 and amount > 10000:
            amount = amount // 2    # part payment; the rest stays due
        created = self.stamp(pd)
        if created <= inv.updated:
            created = inv.updated + timedelta(minutes=5)
        p = Payment(self.uid(), inv, pd, amount, self.org.account(bank_code), created,
                    f"{'Direct credit' if inv.type == 'ACCREC' else 'EFT'} {inv.number}")
        inv.payments.append(p)
        self.org.payments.append(p)
        self.org._register(p)
        if amount == inv.total:
            inv.status = "PAID"
        inv.updated = created
        self.event(created, p.payment_type, p, pd)

    # -- cash sales (RECEIVE bank transactions coded to revenue) --

    def cash_sales(self) -> None:
        rng, org = self.rng, self.org
        weeks = len(self.days) / 7
        n = max(1, self.n_invoices // 6)
        mean = self.weekly_income * weeks * (1 - INVOICE_SHARE) / n
        walk_in = Contact(self.uid(), "Cash Sales", "", self.stamp(self.start - timedelta(days=90)), kind="customer")
        self.add_contact(walk_in)
        for d, region in self.sample_cells(n):
            job = self.pick_job(region)
            amt = max(2000, int(mean * rng.lognormvariate(-0.125, 0.5)))
            line = Line(self.line_no(), rng.choice(chart.LINE_TEXT["205"]), 1, amt, org.account("205"), "OUTPUT",
                        self.region_opt[region[0]], self.job_opt[job])
            bt = BankTransaction(self.uid(), "RECEIVE", walk_in, org.account("090"), d, [line], self.stamp(d),
                                 "EFTPOS settlement")
            if rng.random() < 0.012:
                bt.status = "DELETED"       # keyed twice and deleted: served, never posted
            self.add_bank(bt)

    def add_bank(self, bt: BankTransaction, post: bool = True) -> None:
        self.org.bank_transactions.append(bt)
        self.org._register(bt)
        if post and bt.posts:
            self.event(bt.updated, SOURCE_TYPE[bt.type], bt, bt.date)

    # -- bills: cost of sales --

    def cost_bills(self) -> None:
        rng, org = self.rng, self.org
        n = max(1, self.n_invoices // 3)
        # Cost of sales near 30% of the trading income actually invoiced and taken in cash.
        income = sum(i.subtotal for i in self.org.invoices if i.type == "ACCREC" and i.posts) + \
            sum(b.subtotal for b in self.org.bank_transactions if b.type == "RECEIVE")
        mean = income * 0.30 / n
        last = self.last_day
        for k, (d, region) in enumerate(self.sample_cells(n), start=1):
            supplier = rng.choice(self.suppliers["cos"])
            acct, tax = self.supplier_account[supplier.id]
            job = self.pick_job(region)
            net = max(1500, int(mean * rng.lognormvariate(-0.18, 0.6)))
            lines = [Line(self.line_no(), f"{org.account(acct).name} - {region[0]}", 1, net, org.account(acct), tax,
                          self.region_opt[region[0]], self.job_opt[job])]
            age = (last - d).days
            r = rng.random()
            status = "DRAFT" if age < 7 and r < 0.3 else ("VOIDED" if r > 0.992 else "AUTHORISED")
            created = self.stamp(d)
            bill = Invoice(self.uid(), "ACCPAY", f"BILL-{k:06d}", supplier, d, d + timedelta(days=30), status,
                           lines, created, f"{supplier.name.split()[0].upper()}-{rng.randrange(100000, 999999)}")
            bill.sent = False
            bill.number = f"{rng.randrange(10000, 99999)}-{k}"
            self.register_invoice(bill)
            if status == "AUTHORISED":
                self.event(created, "ACCPAY", bill, d)
                self.maybe_pay(bill, 30, bad_debt=0.0)

    # -- overheads: monthly bills --

    def overheads(self) -> None:
        rng, org = self.rng, self.org
        monthly = self.weekly_income * 52 / 12
        share = {"469": 0.030, "433": 0.008, "445": 0.006, "489": 0.004, "412": 0.006, "400": 0.012,
                 "461": 0.002, "485": 0.004}
        k = 0
        for supplier in self.suppliers["overhead"]:
            acct, tax = self.supplier_account[supplier.id]
            d = self.start.replace(day=1)
            while d <= self.last_day:
                bill_day = d + timedelta(days=rng.randrange(0, 5))
                if self.start <= bill_day <= self.last_day:
                    k += 1
                    net = int(monthly * share[acct] * rng.uniform(0.85, 1.15))
                    if acct == "469":
                        net = int(monthly * share[acct])       # rent is fixed
                    created = self.stamp(bill_day)
                    bill = Invoice(self.uid(), "ACCPAY", f"OH-{k:05d}", supplier, bill_day,
                                   bill_day + timedelta(days=14), "AUTHORISED",
                                   [Line(self.line_no(), f"{org.account(acct).name} {bill_day:%B %Y}", 1, net,
                                         org.account(acct), tax)],
                                   created, f"{bill_day:%b%y}".upper())
                    bill.sent = False
                    self.register_invoice(bill)
                    self.event(created, "ACCPAY", bill, bill_day)
                    self.maybe_pay(bill, 14, bad_debt=0.0)
                d = (d.replace(day=28) + timedelta(days=4)).replace(day=1)

    # -- wages, super, card spending, bank fees, interest, drawings, transfers --

    def wages_and_card(self) -> None:
        rng, org = self.rng, self.org
        cheque, savings, card = org.account("090"), org.account("091"), org.account("092")
        staff = Contact(self.uid(), "Payroll - Staff Wages", "", self.stamp(self.start - timedelta(days=100)),
                        kind="supplier")
        super_fund = Contact(self.uid(), "Australian Super", "employers@australiansuper.example.com.au",
                             self.stamp(self.start - timedelta(days=100)), kind="supplier")
        fuel = Contact(self.uid(), "Ampol Fuel", "", self.stamp(self.start - timedelta(days=100)), kind="supplier")
        bank = Contact(self.uid(), "Commonwealth Bank", "", self.stamp(self.start - timedelta(days=100)),
                       kind="supplier")
        owner = Contact(self.uid(), "Owner", "", self.stamp(self.start - timedelta(days=100)), kind="supplier")
        for c in (staff, super_fund, fuel, bank, owner):
            self.add_contact(c)
        weekly = self.weekly_income

        def spend(d: date, contact: Contact, bank_acct: Account, acct: str, net: int, desc: str,
                  region: TrackingOption | None = None, tax: str | None = None, kind: str = "SPEND") -> None:
            line = Line(self.line_no(), desc, 1, net, org.account(acct), tax or org.account(acct).tax_type, region)
            self.add_bank(BankTransaction(self.uid(), kind, contact, bank_acct, d, [line], self.stamp(d), desc))

        card_balance_month = 0
        # Card purchases thin out with the org's size knob (same spend, fewer, larger fills), so
        # hundreds of small benchmark tenants stay cheap to build.
        default_n = DEFAULT_INVOICES_PER_WEEK * len(self.days) / 7
        fuel_p = 0.35 * min(1.0, max(0.05, self.n_invoices / default_n))
        for d in self.days:
            if d.weekday() == 3:    # Thursday pay run
                amt = int(weekly * 0.28 * rng.uniform(0.95, 1.05))
                if (d.month == 12 and d.day >= 23) or (d.month == 1 and d.day <= 6):
                    amt = amt // 2
                spend(d, staff, cheque, "477", amt, f"Wages week ending {d:%d/%m/%Y}")
            if d.weekday() < 5:
                for region in chart.REGIONS:
                    if rng.random() < fuel_p:
                        amt = int(weekly * 0.025 / (5 * fuel_p * len(chart.REGIONS)) * rng.uniform(0.5, 1.5) * 1.1)
                        spend(d, fuel, card, "449", amt, "Fuel", self.region_opt[region[0]])
                        card_balance_month += amt + gst(amt, 10)
            if d.day == 28:
                spend(d, super_fund, cheque, "478", int(weekly * 52 / 12 * 0.027), f"Super guarantee {d:%B %Y}")
                spend(d, bank, cheque, "404", rng.randrange(3500, 6500), "Account keeping fees")
                spend(d, owner, cheque, "880", int(weekly * 52 / 12 * 0.08), "Owner drawings")
                line = Line(self.line_no(), "Interest", 1, int(weekly * 4 * 0.0035 * rng.uniform(0.9, 1.1)),
                            org.account("270"), "INPUTTAXED")
                self.add_bank(BankTransaction(self.uid(), "RECEIVE", bank, savings, d, [line], self.stamp(d),
                                              "Interest"))
            if d.day == 15 and card_balance_month:
                self.transfer(d, cheque, card, card_balance_month, "Credit card repayment")
                card_balance_month = 0
            if d.day == 5 and d.month in (1, 4, 7, 10):
                self.transfer(d, cheque, savings, int(weekly * 1.0), "Quarterly sweep to savings")

    def transfer(self, d: date, from_bank: Account, to_bank: Account, amount: int, ref: str) -> None:
        org = self.org
        created = self.stamp(d)
        t = Transfer(self.uid(), d, amount, from_bank, to_bank, created)
        contact = None
        t.spend = BankTransaction(self.uid(), "SPEND-TRANSFER", contact, from_bank, d,
                                  [Line(self.line_no(), ref, 1, amount, to_bank, "BASEXCLUDED")], created, ref)
        t.receive = BankTransaction(self.uid(), "RECEIVE-TRANSFER", contact, to_bank, d,
                                    [Line(self.line_no(), ref, 1, amount, from_bank, "BASEXCLUDED")], created, ref)
        for bt in (t.spend, t.receive):
            bt.transfer = t
            self.add_bank(bt, post=False)
        org._register(t)
        self.event(created, "TRANSFER", t, d)

    # -- credit notes --

    def credit_notes(self) -> None:
        rng, org = self.rng, self.org
        sales = [i for i in org.invoices if i.type == "ACCREC" and i.status in ("AUTHORISED", "PAID")]
        n = max(2, len(sales) // 200)
        picks = sorted(rng.sample(range(len(sales)), min(n, len(sales))))
        # A second stream for what was added later (split lines, allocations, voids), so the main
        # stream, and with it every other document, stays as it was.
        more = random.Random(self.seed * 7907 + 3)
        self.void_later: list[tuple[CreditNote, datetime]] = []
        for k, idx in enumerate(picks, start=1):
            inv = sales[idx]
            d = min(self.last_day, inv.date + timedelta(days=rng.randrange(3, 40)))
            src = inv.lines[0]
            amt = max(1000, src.amount // rng.choice((4, 5, 10)))
            lines = [Line(self.line_no(), f"Credit: {src.description}", 1, amt, src.account, "OUTPUT", src.region,
                          src.job)]
            other = next((l for l in inv.lines if l.region is not src.region), None)
            if other is not None:      # the job spanned two regions: credit part of each
                lines.append(Line(self.line_no(), f"Credit: {other.description}", 1, max(500, other.amount // 7),
                                  other.account, "OUTPUT", other.region, other.job))
            created = self.stamp(d)
            cn = CreditNote(self.uid(), "ACCRECCREDIT", f"CN-{k:05d}", inv.contact, d, "AUTHORISED", lines,
                            created, f"Credit for {inv.number}")
            org.credit_notes.append(cn)
            org._register(cn)
            self.event(created, "ACCRECCREDIT", cn, d)
            if inv.status == "AUTHORISED" and inv.amount_due > cn.total:
                org.allocate_credit_note(cn.id, inv.id, d, max(created, inv.updated) + timedelta(minutes=2))
            elif more.random() < 0.15:
                at = created + timedelta(days=more.randrange(1, 5), seconds=more.randrange(3600))
                if at.date() > self.last_day:
                    at = created + timedelta(minutes=30)
                self.void_later.append((cn, at))
        # A draft credit note that never posts, and a supplier credit.
        supplier = self.suppliers["cos"][0]
        acct, tax = self.supplier_account[supplier.id]
        d = self.last_day - timedelta(days=3)
        line = Line(self.line_no(), "Returned fittings", 1, 18500, org.account(acct), tax)
        created = self.stamp(d)
        cn = CreditNote(self.uid(), "ACCPAYCREDIT", "SCN-0001", supplier, d, "AUTHORISED", [line], created,
                        "RTN-2231")
        org.credit_notes.append(cn)
        org._register(cn)
        self.event(created, "ACCPAYCREDIT", cn, d)
        cust = org.invoices[0].contact
        line = Line(self.line_no(), "Goodwill credit", 1, 25000, org.account("205"), "OUTPUT")
        cn = CreditNote(self.uid(), "ACCRECCREDIT", f"CN-{len(picks) + 1:05d}", cust, d, "DRAFT", [line],
                        self.stamp(d), "Draft goodwill credit")
        org.credit_notes.append(cn)
        org._register(cn)

    # -- posting and after-posting documents --

    def post_all(self) -> None:
        org = self.org
        self.events.sort(key=lambda e: (e[0], e[1]))
        for created, _, st, src, d in self.events:
            org._post(st, src, d, created)
        self.events = []
        for cn, at in self.void_later:      # voided after posting: a reversing journal on its own date
            org.void_credit_note(cn.id, at)
        # Contacts' UpdatedDateUTC: ambiguity contacts archived/merged late in the history.
        at = midnight(self.last_day - timedelta(days=20)) + timedelta(hours=3, minutes=12)
        if self.customer_list is None:  # given customers: no matching puzzles
            c = self.archive_later
            c.status, c.updated = "ARCHIVED", at
            dup, kept = self.merge_later
            dup.status, dup.merged_to, dup.updated = "ARCHIVED", kept.id, at + timedelta(minutes=7)
            kept.updated = at + timedelta(minutes=7)
        org.invoices.sort(key=lambda i: (i.date, i.type, i.number))
        org.bank_transactions.sort(key=lambda b: (b.date, b.updated))
        recent = self.last_day - timedelta(days=5)
        for bt in org.bank_transactions:
            if bt.date > recent and bt.transfer is None and self.rng.random() < 0.7:
                bt.reconciled = False       # the last few days' bank lines are not reconciled yet
        org.payments.sort(key=lambda p: (p.date, p.updated))
        org.credit_notes.sort(key=lambda c: (c.date, c.number))

    def gst_payments(self) -> None:
        """Quarterly BAS: pay the GST owed at each quarter end 28 days later."""
        org = self.org
        gst_acct = org.account("820")
        cheque = org.account("090")
        q_end = _quarter_end_after(date(self.start.year, ((self.start.month - 1) // 3) * 3 + 1, 1) - timedelta(days=1))
        while q_end + timedelta(days=28) <= self.last_day:
            due = q_end + timedelta(days=28)
            # the balance owed at quarter end (earlier BAS payments already debited the account);
            # journals only: the month-end currency revaluation never touches GST, and asking for it
            # re-ran it over every foreign document once a quarter (most of a small fake's build)
            owed = -org.account_net(gst_acct, None, q_end, include_report_only=False)
            if owed > 0:
                line = Line(self.line_no(), f"BAS quarter ending {q_end:%d/%m/%Y}", 1, owed, gst_acct, "BASEXCLUDED")
                bt = BankTransaction(self.uid(), "SPEND", self.ato, cheque, due, [line], self.stamp(due),
                                     f"BAS {q_end:%b %Y}")
                org.bank_transactions.append(bt)
                org._register(bt)
                org._post("CASHPAID", bt, due, bt.updated)
            q_end = _quarter_end_after(q_end)
        org.bank_transactions.sort(key=lambda b: (b.date, b.updated))

    # Overseas customers: a resort group, a developer across the Tasman, a facilities firm in the UK
    # and a hotel chain in Europe, each invoiced in its own currency (GST-free exports).
    OVERSEAS = (("Pacific Rim Resorts Inc", "USD", "ap@pacificrimresorts.example.com"),
                ("Kauri Coast Developments Ltd", "NZD", "accounts@kauricoast.example.co.nz"),
                ("Thames Valley Facilities Ltd", "GBP", "payables@thamesvalleyfm.example.co.uk"),
                ("Alpenblick Hotels GmbH", "EUR", "buchhaltung@alpenblick.example.de"))

    def foreign_sales(self) -> None:
        """Sales invoices and credit notes in foreign currencies, at the day's rate: most are paid
        weeks later at that day's rate (a realised gain or loss in the payment's journal), the rest
        stay open and are revalued at each month-end (unrealised gains, in reports only). Drawn from
        a stream of their own, so every other document stays as it was."""
        org = self.org
        rng = random.Random(self.seed * 104_729 + 17)
        base = org.base_currency
        customers = []
        for k, (name, currency, email) in enumerate(self.OVERSEAS):
            if currency == base:
                continue
            c = Contact(self.uid(), name, email, self.stamp(self.start - timedelta(days=120 + 9 * k)), kind="customer",
                        number=f"X{k + 1:04d}")
            c.currency = currency
            c.account_number = f"EXP{k + 1:04d}"
            self.add_contact(c)
            customers.append(c)
        regions = [r[0] for r in chart.REGIONS]
        n = max(4, len(self.days) // 9)       # about one every nine days
        number = self.n_invoices
        self.foreign: list[Invoice] = []
        last = self.last_day
        for d in sorted(rng.choice(self.days) for _ in range(n)):
            c = rng.choice(customers)
            number += 1
            region, job = self.region_opt[rng.choice(regions)], self.job_opt["Commercial"]
            lines = []
            for acct in ("200", "210") if rng.random() < 0.4 else ("200",):
                unit = int(rng.lognormvariate(math.log(6_000_00), 0.7))
                lines.append(Line(self.line_no(), f"{rng.choice(chart.LINE_TEXT[acct])} (export)",
                                  rng.choice((1, 1, 2, 3)), max(500_00, unit), org.account(acct), "EXEMPTOUTPUT",
                                  region, job))
            created = self.stamp(d)
            inv = Invoice(self.uid(), "ACCREC", f"INV-{number:06d}", c, d, d + timedelta(days=30), "AUTHORISED",
                          lines, created, f"PO {rng.randrange(1000, 9999)}", currency=c.currency,
                          rate=org.rate(c.currency, d))
            self.register_invoice(inv)
            self.event(created, "ACCREC", inv, d)
            self.foreign.append(inv)
            if rng.random() < 0.8:
                pd = d + timedelta(days=rng.randrange(12, 60))
                if pd <= last:
                    at = max(self.stamp(pd), inv.updated + timedelta(minutes=5))
                    p = Payment(self.uid(), inv, pd, inv.total, org.account("090"), at,
                                f"TT {c.name.split()[0]} {inv.number}", rate=org.rate(c.currency, pd))
                    inv.payments.append(p)
                    org.payments.append(p)
                    org._register(p)
                    inv.status, inv.updated = "PAID", at
                    self.event(at, p.payment_type, p, pd)
        # Credit notes in the customer's currency, left open as credit on account.
        for k, inv in enumerate(rng.sample(self.foreign, min(len(self.foreign), max(2, len(self.foreign) // 12)))):
            d = min(last, inv.date + timedelta(days=rng.randrange(5, 30)))
            src = inv.lines[0]
            line = Line(self.line_no(), f"Credit: {src.description}", 1, max(100_00, src.amount // 8), src.account,
                        "EXEMPTOUTPUT", src.region, src.job)
            created = self.stamp(d)
            cn = CreditNote(self.uid(), "ACCRECCREDIT", f"CN-X{k + 1:04d}", inv.contact, d, "AUTHORISED", [line],
                            created, f"Credit for {inv.number}", currency=inv.currency,
                            rate=org.rate(inv.currency, d))
            org.credit_notes.append(cn)
            org._register(cn)
            self.event(created, "ACCRECCREDIT", cn, d)

    def usd_bill(self) -> None:
        """An imported test-and-tag rig billed in USD and still unpaid: an open foreign balance."""
        org = self.org
        supplier = Contact(self.uid(), "Fluke Pacific Inc", "ar@flukepacific.example.com",
                           self.stamp(self.start - timedelta(days=200)), kind="supplier", number="S-USD1")
        supplier.currency = "USD"
        self.add_contact(supplier)
        d = self.start + timedelta(days=min(10, len(self.days) - 1))
        rate = Decimal("0.652300")
        line = Line(self.line_no(), "Test and tag rig, calibration kit (imported)", 1, 2_600_000, org.account("710"),
                    "EXEMPTEXPENSES")
        created = self.stamp(d)
        bill = Invoice(self.uid(), "ACCPAY", "FPI-55120", supplier, d, d + timedelta(days=365), "AUTHORISED",
                       [line], created, "PO 7731", currency="USD", rate=rate)
        bill.sent = False
        self.register_invoice(bill)
        self.event(created, "ACCPAY", bill, d)
        self.usd = bill

    def fx_revaluation(self) -> None:
        """Unrealised currency gains: see `Org._revalue` (computed from the open foreign documents,
        again whenever a posting or an allocation changes them)."""
        self.org._reval_dirty = True


def _month_end(d: date) -> date:
    nxt = (d.replace(day=28) + timedelta(days=4)).replace(day=1)
    return nxt - timedelta(days=1)


def _quarter_end_after(d: date) -> date:
    m = d.month + 3
    y = d.year + (m - 1) // 12
    m = (m - 1) % 12 + 1
    return _month_end(date(y, m, 1))
