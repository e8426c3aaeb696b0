"""Clients <-> Xero contacts: id, email, name; ambiguity listed; edits kept; archived and merged."""
from __future__ import annotations

import json

import pytest

from xero_core.db import connect, transaction
from xero_core.practice import clients as C
from xero_core.practice.matching import norm_email, norm_name, reconcile_contacts

T = "tenant-org-1"


def contact(cid, name, email=None, status="ACTIVE", merged=None, phone=None, customer=True, supplier=False):
    """A Xero contact as the API sends it; a customer unless told (customer=None leaves the flags out)."""
    c = {"ContactID": cid, "Name": name, "EmailAddress": email or "", "ContactStatus": status,
         "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": phone or "", "PhoneAreaCode": "", "PhoneCountryCode": ""}],
         "UpdatedDateUTC": "/Date(1700000000000+0000)/"}
    if merged:
        c["MergedToContactID"] = merged
    if customer is not None:
        c["IsCustomer"], c["IsSupplier"] = customer, supplier
    return c


def store(con, contacts, tenant=T):
    # the organisation is connected (the only one: the practice ledger, as suggested)
    con.execute("INSERT OR IGNORE INTO connections (tenant_id, tenant_name, tenant_type, status) "
                "VALUES (?, ?, 'ORGANISATION', 'connected')", [tenant, tenant])
    for c in contacts:
        con.execute(
            "INSERT OR REPLACE INTO contacts (tenant_id, contact_id, name, email, status, merged_to_contact_id, raw) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [tenant, c["ContactID"], c["Name"], c["EmailAddress"] or None, c["ContactStatus"],
             c.get("MergedToContactID"), json.dumps(c)],
            )


def sync(settings, contacts, tenant=T):
    """What the contact sync does: store the contacts, then reconcile them into clients."""
    with connect(settings.db_path) as con, transaction(con):
        store(con, contacts, tenant)
        return reconcile_contacts(con, tenant, contacts)


def by_name(settings):
    return {r["name"]: r for r in C.list_clients(settings)}


def test_normalisation():
    assert norm_email("  Jo.Smith@Example.COM ") == "jo.smith@example.com"
    assert norm_email("jo smith@example.com") == "josmith@example.com"
    assert norm_name("ACME  Pty. Ltd.") == norm_name("acme") == norm_name("Acme Limited") == "acme"
    assert norm_name("Smith & Co") == norm_name("smith and co")
    assert norm_name("Limited") == "limited"
    assert norm_name("Café Nero Pty Ltd") == "cafe nero"


@pytest.mark.slow
def test_match_by_email_then_name_and_create_the_rest(settings):
    a = C.add_client(settings, "Alpha Accounting", email="ALPHA@example.com ")
    b = C.add_client(settings, "Bravo Pty Ltd")
    res = sync(settings, [
        contact("c-a", "Alpha Holdings", email="alpha@EXAMPLE.com"),
        contact("c-b", "BRAVO LIMITED"),
        contact("c-x", "Xray Traders", email="x@example.com"),
    ])
    assert (res.linked, res.created, res.ambiguous) == (2, 1, 0)
    rows = {r["client_id"]: r for r in C.list_clients(settings)}
    assert (rows[a]["xero_contact_id"], rows[a]["match_method"]) == ("c-a", "email")
    assert (rows[b]["xero_contact_id"], rows[b]["match_method"]) == ("c-b", "name")
    assert by_name(settings)["Xray Traders"]["source"] == "xero"
    # a re-sync links by id, creating nothing
    res = sync(settings, [contact("c-a", "Alpha Holdings", email="alpha@example.com"), contact("c-x", "Xray Traders")])
    assert (res.linked, res.created) == (0, 0)
    assert len(C.list_clients(settings)) == 3


@pytest.mark.slow
def test_ambiguous_matches_are_listed_not_guessed(settings):
    s1 = C.add_client(settings, "Smith & Co")
    s2 = C.add_client(settings, "Smith and Co.")
    res = sync(settings, [contact("c-s", "SMITH & CO PTY LTD")])
    assert res.ambiguous == 1 and res.linked == 0 and res.created == 0
    cands = C.list_candidates(settings)
    assert {(c["client_id"], c["contact_id"]) for c in cands} == {(s1, "c-s"), (s2, "c-s")}
    assert {r["match_status"] for r in C.list_clients(settings)} == {"ambiguous"}
    # a re-sync neither guesses nor creates a client for the contact
    sync(settings, [contact("c-s", "SMITH & CO PTY LTD")])
    assert len(C.list_clients(settings)) == 2
    C.resolve_match(settings, s2, T, "c-s")
    rows = {r["client_id"]: r for r in C.list_clients(settings)}
    assert rows[s2]["xero_contact_id"] == "c-s" and rows[s2]["match_method"] == "manual"
    assert rows[s1]["match_status"] == "unmatched" and rows[s1]["xero_contact_id"] is None
    assert C.list_candidates(settings) == []


def test_two_contacts_claiming_one_client_are_ambiguous(settings):
    k = C.add_client(settings, "Delta", email="ops@delta.example")
    sync(settings, [contact("c-d1", "Delta North", email="ops@delta.example"),
                    contact("c-d2", "Delta South", email="OPS@delta.example")])
    assert {c["contact_id"] for c in C.list_candidates(settings)} == {"c-d1", "c-d2"}
    assert C.get_client(settings, k)["xero_contact_id"] is None


def test_manual_edits_survive_resync(settings):
    sync(settings, [contact("c-e", "Echo Ltd", email="old@echo.example", phone="111")])
    cid = by_name(settings)["Echo Ltd"]["client_id"]
    C.edit_client(settings, cid, email="accounts@echo.example")
    sync(settings, [contact("c-e", "Echo Group Ltd", email="new@echo.example", phone="222")])
    row = C.get_client(settings, cid)
    assert row["email"] == "accounts@echo.example"          # edited: kept
    assert (row["name"], row["phone"]) == ("Echo Group Ltd", "222")  # not edited, Xero-made: follows Xero
    assert "email" in json.loads(row["edited_fields"])


def test_sync_only_fills_empty_fields_of_practice_clients(settings):
    cid = C.add_client(settings, "Foxtrot", phone=None)
    sync(settings, [contact("c-f", "Foxtrot Pty Ltd", email="f@fox.example", phone="555")])
    row = C.get_client(settings, cid)
    assert (row["name"], row["email"], row["phone"]) == ("Foxtrot", "f@fox.example", "555")


def test_archived_and_merged_contacts_are_not_duplicated(settings):
    sync(settings, [contact("c-g", "Golf"), contact("c-h", "Hotel")])
    sync(settings, [contact("c-g", "Golf", status="ARCHIVED"),
                    contact("c-h", "Hotel", status="ARCHIVED", merged="c-h2"),
                    contact("c-h2", "Hotel Group")])
    rows = by_name(settings)
    assert rows["Golf"]["archived"] is True
    # the merged contact's client follows the survivor; no second client for it
    # (and, being a Xero-made client, takes the survivor's name)
    assert rows["Hotel Group"]["xero_contact_id"] == "c-h2"
    assert set(rows) == {"Golf", "Hotel Group"}
    # an archived contact with no client does not create one
    sync(settings, [contact("c-i", "India", status="ARCHIVED")])
    assert "India" not in by_name(settings)


def test_hostile_names_are_just_data(settings):
    evil = "Robert'); DROP TABLE clients; --"
    cid = C.add_client(settings, evil, email="bobby@tables.example")
    sync(settings, [contact("c-z", "'; DROP TABLE clients; --", email="x'); DELETE FROM clients; --@e.example")])
    names = {r["name"] for r in C.list_clients(settings)}
    assert evil in names and "'; DROP TABLE clients; --" in names
    C.edit_client(settings, cid, name="a\"b'c;--")
    assert C.get_client(settings, cid)["name"] == "a\"b'c;--"


def test_csv_import_reports_bad_lines_and_matches(settings, tmp_path):
    sync(settings, [contact("c-m", "Mike Pty Ltd")])
    with connect(settings.db_path) as con:  # synced earlier but not yet a client
        store(con, [contact("c-j", "Juliet Pty Ltd", email="j@juliet.example")])
    p = tmp_path / "clients.csv"
    p.write_bytes("\ufeffName,Email,Phone\nKilo,k@kilo.example,1\n,nobody@x.example,\nLima,not-an-email,\n"
                  "JULIET,,\nKilo,k@kilo.example,\nMIKE LIMITED,,\n".encode("utf-8"))
    res = C.import_csv(settings, p)
    assert len(res.created) == 2 and res.linked == 1
    assert by_name(settings)["JULIET"]["xero_contact_id"] == "c-j"
    assert [s.split(":")[0] for s in res.skipped] == ["line 3", "line 4", "line 6", "line 7"]
    with pytest.raises(C.ClientError, match="no 'name' column"):
        C.import_csv(settings, b"email\nx@y.z\n")
