"""`clients match|skipped|link-contact` and `documents queue`: what a reconciliation did, in words and
in --json, from the contacts already stored (no call to Xero)."""
from __future__ import annotations

import json
import secrets

import pytest

from xero_core.snapshot import working_path
from xero_core.cli import main
from xero_core.db import connect

ORG = "org-cli-1"


@pytest.fixture
def env(tmp_path, monkeypatch):
    values = {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
              "XERO_ENCRYPTION_KEY": secrets.token_hex(32), "XERO_ENV_FILE": "/dev/null"}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    contacts = [("c-1", "Acme Plumbing", "a@acme.example", True, False),
                ("c-2", "Telstra", "bills@telstra.example", False, True),
                ("c-3", "Australian Taxation Office", None, False, True),
                ("c-4", "Cash Sales", None, True, False),
                ("c-5", "Bright Dental", "hello@bright.example", True, False)]
    with connect(working_path(values["XERO_DATA_DIR"])) as con:
        con.execute("INSERT INTO connections (tenant_id, tenant_name, tenant_type, status) "
                    "VALUES (?, 'Demo Trades', 'ORGANISATION', 'connected')", [ORG])
        for cid, name, email, cust, supp in contacts:
            raw = {"ContactID": cid, "Name": name, "EmailAddress": email or "", "ContactStatus": "ACTIVE",
                   "IsCustomer": cust, "IsSupplier": supp}
            con.execute("INSERT INTO contacts (tenant_id, contact_id, name, email, status, is_customer, is_supplier, raw, "
                        "synced_at) VALUES (?, ?, ?, ?, 'ACTIVE', ?, ?, ?, now())",
                        [ORG, cid, name, email, cust, supp, json.dumps(raw)])
    return values


def run_json(capsys, *argv):
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_match_reports_imported_matched_and_skipped_with_reasons(env, capsys, tmp_path):
    code, client = run_json(capsys, "clients", "add", "Bright Dental Pty Ltd")
    assert code == 0 and client["match_status"] == "matched"  # matched at once to the stored contact
    code, out = run_json(capsys, "clients", "match")
    assert code == 0 and len(out) == 1
    rep = out[0]["report"]
    assert (rep["imported"], rep["already_linked"], rep["ambiguous"], rep["skipped"]) == (1, 1, 0, 3)
    assert rep["skipped_by_reason"] == {"supplier_only": 1, "government": 1, "placeholder": 1}
    assert rep["skipped_examples"]["government"] == ["Australian Taxation Office"]

    assert main(["clients", "match"]) == 0
    text = capsys.readouterr().out
    assert "Demo Trades: imported 0, matched 0, 2 already linked, 0 ambiguous, skipped 3" in text
    assert "skipped 1 government bodies" in text and "Australian Taxation Office" in text

    code, skipped = run_json(capsys, "clients", "skipped")
    assert {r["name"]: r["reason"] for r in skipped} == {
        "Telstra": "supplier_only", "Australian Taxation Office": "government", "Cash Sales": "placeholder"}
    # a person makes the supplier a client by hand; it stays one
    code, row = run_json(capsys, "clients", "link-contact", "c-2", "--tenant", ORG)
    assert code == 0 and row["name"] == "Telstra" and row["xero_contact_id"] == "c-2" and row["match_method"] == "manual"
    code, out = run_json(capsys, "clients", "match")
    assert out[0]["report"]["already_linked"] == 3
    assert main(["clients", "link-contact", "c-2", "--tenant", ORG]) == 1
    assert "already client 'Telstra'" in capsys.readouterr().err
    assert main(["clients", "link-contact", "c-404", "--tenant", ORG]) == 1
    assert "sync contacts first" in capsys.readouterr().err

    # documents wait with the reason and the next attempt
    code, loose = run_json(capsys, "clients", "add", "Nobody In Xero")
    f = tmp_path / "letter.pdf"
    f.write_bytes(b"%PDF-1.4 letter")
    run_json(capsys, "documents", "add", "--client", loose["client_id"], str(f))
    code, queue = run_json(capsys, "documents", "queue")
    assert code == 0 and [q["file_name"] for q in queue] == ["letter.pdf"]
    assert queue[0]["status"] == "pending" and "not matched to a Xero contact yet" in queue[0]["why"]
    run_json(capsys, "documents", "push")
    code, queue = run_json(capsys, "documents", "queue")
    assert queue[0]["status"] == "skipped" and "not matched to a Xero contact yet" in queue[0]["why"]
    assert queue[0]["next_attempt_at"] is None
    assert main(["documents", "queue"]) == 0
    assert "letter.pdf" in capsys.readouterr().out
