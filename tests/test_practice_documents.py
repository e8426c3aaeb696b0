"""Document checks before any upload: type, size, names, content-addressed storage, stable keys."""
from __future__ import annotations

from pathlib import Path

import pytest

from xero_core.practice import clients as C
from xero_core.practice import documents as D


def test_type_and_size_checked_with_clear_messages(settings):
    assert D.check_uploadable("Return.PDF", 1000) is None
    assert "does not accept .exe" in D.check_uploadable("setup.exe", 10)
    assert "no extension" in D.check_uploadable("README", 10)
    big = D.check_uploadable("scan.pdf", D.MAX_BYTES + 1)
    assert "10.0 MB" in big and "at most 10 MB" in big
    assert "empty" in D.check_uploadable("a.pdf", 0)
    cid = C.add_client(settings, "Acme")
    row = D.add_document(settings, cid, b"x" * (D.MAX_BYTES + 1), file_name="scan.pdf")
    assert row["status"] == "skipped" and "at most 10 MB" in row["error"]


def test_names_storage_and_idempotency_keys(settings):
    cid = C.add_client(settings, "Acme")
    a = D.add_document(settings, cid, b"%PDF-1.4 one", file_name='..\\..\\etc/"bad:name?.pdf')
    assert a["file_name"] == "_bad_name_.pdf" and a["status"] == "pending" and a["mime_type"] == "application/pdf"
    stored = Path(settings.data_dir) / a["storage_path"]
    assert stored.read_bytes() == b"%PDF-1.4 one" and stored.name == a["sha256"]
    b = D.add_document(settings, cid, b"%PDF-1.4 one", file_name="copy.pdf")  # same bytes, kept once on disk
    assert b["storage_path"] == a["storage_path"] and b["document_id"] != a["document_id"]
    assert a["idempotency_key"] == D.idempotency_key(a["document_id"], a["sha256"]) != b["idempotency_key"]
    assert len(a["idempotency_key"]) <= 128  # Xero's limit
    with pytest.raises(D.DocumentError, match="No client"):
        D.add_document(settings, "cl_missing", b"x", file_name="a.pdf")
    with pytest.raises(D.DocumentError, match="No document"):
        D.push_documents(settings, document_id="doc_missing")


def test_names_lose_bidi_and_invisible_characters_and_keep_their_extension(settings):
    # U+202E would show "invoice\u202efdp.exe" as "invoiceexe.pdf"
    assert D.clean_name("invoice\u202efdp.exe") == "invoicefdp.exe"
    assert D.clean_name("a\u2066b\u2069c\u200b\u200e\ufeff\u00ad.pdf") == "abc.pdf"
    assert D.clean_name("two\u00a0words\u2028.pdf") == "two words.pdf"
    long = D.clean_name("x" * 300 + ".pdf")
    assert len(long) == D.MAX_NAME and long.endswith(".pdf")
    assert D.clean_name(".pdf") == "document.pdf" and D.clean_name("\u202e") == "document"
    assert D.clean_name("report.pdf. . ") == "report.pdf"
    cid = C.add_client(settings, "Acme")
    row = D.add_document(settings, cid, b"%PDF-1.4 long", file_name="y" * 300 + ".pdf")
    assert row["status"] == "pending" and row["file_name"].endswith(".pdf") and len(row["file_name"]) == 200
    row = D.add_document(settings, cid, b"%PDF-1.4 rlo", file_name="scan\u202efdp.exe")
    assert row["file_name"] == "scanfdp.exe" and "does not accept .exe" in row["error"]


def test_backoff_schedule():
    from datetime import timedelta

    mins = [D.retry_delay(n) / timedelta(minutes=1) for n in range(1, 10)]
    assert mins == [5, 10, 20, 40, 80, 160, 320, 640, 1280]
    assert D.retry_delay(10) == D.retry_delay(11) == timedelta(hours=24)  # capped at a day
    assert D.retry_delay(D.MAX_ATTEMPTS) is None  # then give up
    total = sum((D.retry_delay(n) for n in range(1, D.MAX_ATTEMPTS)), timedelta())
    assert timedelta(days=2) < total < timedelta(days=5)
