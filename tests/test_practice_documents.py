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
