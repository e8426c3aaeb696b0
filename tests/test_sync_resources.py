"""Resources declared once (issue 22): the loop reads what a declaration says, nothing per resource."""
from __future__ import annotations

import httpx
import orjson

from xero_core import db
from xero_core.sync import resources as R
from xero_core.sync.paging import pages


class Stub:
    """A client answering from a function of (path, params), recording each call."""

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def request(self, method, path, params=None, headers=None):
        self.calls.append((path, dict(params or {}), dict(headers or {})))
        return httpx.Response(200, content=orjson.dumps(self.answer(path, params or {})))


def test_each_resource_pages_as_declared():
    full = Stub(lambda path, p: {"Invoices": [{"InvoiceID": str(i)} for i in range(R.INVOICES.page_size)]
                                 if p["page"] < 3 else [{"InvoiceID": "last"}]})
    assert [len(pg.records) for pg in pages(full, R.INVOICES, {"If-Modified-Since": "x"})] == [1000, 1000, 1]
    assert [c[1]["pageSize"] for c in full.calls] == [R.INVOICES.page_size] * 3
    assert all(c[2] == {"If-Modified-Since": "x"} for c in full.calls)

    journals = Stub(lambda path, p: {"Journals": [{"JournalNumber": p["offset"] + i + 1} for i in range(100)]
                                     if p["offset"] < 200 else []})
    assert len(list(pages(journals, R.JOURNALS, {}, 0))) == 3
    assert [c[1]["offset"] for c in journals.calls] == [0, 100, 200]  # from the cursor, by the declared field

    single = Stub(lambda path, p: {"Accounts": [{"AccountID": "a"}]})
    assert len(list(pages(single, R.ACCOUNTS, {}))) == 1 and single.calls[0][1] == {}


def test_declared_keys_and_cursors_are_what_the_tables_and_the_loop_read(make_settings):
    s = make_settings()
    with db.connect(s.db_path) as con:
        for res in (R.ACCOUNTS, R.CONTACTS, R.INVOICES, R.CREDIT_NOTES):
            columns = {c[0] for c in con.execute(f"DESCRIBE {res.name}").fetchall()}
            assert R.key_column(res.key) in columns, res.name
    assert R.key_column("CreditNoteID") == "credit_note_id" and R.key_column("AccountID") == "account_id"
    assert [r.cursor and r.cursor.field for r in (R.ACCOUNTS, R.CONTACTS, R.JOURNALS)] == \
        [None, "UpdatedDateUTC", "JournalNumber"]
    assert not R.UpdatedSince().per_chunk and R.Offset().per_chunk  # the cursor moves with the last / each chunk
