"""One short declarative definition per Xero resource we sync (singer-sdk style): where it lives,
its key, its cursor and how it pages. Generic code reads these; no resource is special-cased."""
from __future__ import annotations

from dataclasses import dataclass, field

from .paging import OffsetPager, PagePager, SinglePage

ACCOUNTING = "/api.xro/2.0"


@dataclass(frozen=True)
class Resource:
    name: str            # sync_log type and sync_cursors resource
    path: str            # relative to settings.api_url
    collection: str      # the envelope key holding the records
    key: str             # the record's id field
    cursor_field: str | None  # UpdatedDateUTC (If-Modified-Since) or JournalNumber (offset)
    pager: object
    params: dict = field(default_factory=dict)


ACCOUNTS = Resource("accounts", f"{ACCOUNTING}/Accounts", "Accounts", "AccountID", None, SinglePage())
CONTACTS = Resource("contacts", f"{ACCOUNTING}/Contacts", "Contacts", "ContactID", "UpdatedDateUTC",
                    PagePager(page_size=1000), {"includeArchived": "true"})
INVOICES = Resource("invoices", f"{ACCOUNTING}/Invoices", "Invoices", "InvoiceID", "UpdatedDateUTC",
                    PagePager(page_size=1000))
CREDIT_NOTES = Resource("credit_notes", f"{ACCOUNTING}/CreditNotes", "CreditNotes", "CreditNoteID", "UpdatedDateUTC",
                        PagePager(page_size=1000))
JOURNALS = Resource("journals", f"{ACCOUNTING}/Journals", "Journals", "JournalID", "JournalNumber",
                    OffsetPager(field="JournalNumber", page_size=100))
PROFIT_AND_LOSS = f"{ACCOUNTING}/Reports/ProfitAndLoss"
BANK_SUMMARY = f"{ACCOUNTING}/Reports/BankSummary"
