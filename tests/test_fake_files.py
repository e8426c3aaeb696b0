"""Files API (xero-notes §5): shapes validated against xero_files.yaml (QUIRKS.md tolerated)."""
from __future__ import annotations

import pytest

from fake_support import api, connect, make_fake, validate_response
from xero_core.fake.files import parse_multipart

F = "/files.xro/1.0"
SPEC = "xero_files.yaml"


@pytest.fixture
def fake():
    return make_fake()


@pytest.fixture
def call(fake):
    tok = connect(fake)["access_token"]
    org = fake.orgs[0].tenant_id

    def _call(path, method="GET", **kw):
        return api(fake, tok, F + path, org, method, **kw)

    return _call


def _upload(call, folder_id, name="invoice-scan.pdf", data=b"%PDF-1.4 fake", key=None, mime="application/pdf"):
    headers = {"Idempotency-Key": key} if key else {}
    return call(f"/Files/{folder_id}", "POST", headers=headers,
                files={"body": (name, data, mime)}, data={"name": name, "filename": name, "mimeType": mime})


def test_folders_list_create_get(call):
    r = call("/Folders")
    assert r.status_code == 200 and isinstance(r.json(), list)  # a bare array, not an envelope
    validate_response(SPEC, "/Folders", "get", r)
    inbox = r.json()[0]
    assert inbox["IsInbox"] is True and inbox["Email"].endswith("@xerofiles.com")
    made = call("/Folders", "POST", json={"Name": "My Docs"})
    assert made.status_code == 200
    validate_response(SPEC, "/Folders", "post", made)
    assert made.json()["FileCount"] == 0 and made.json()["IsInbox"] is False
    got = call(f"/Folders/{made.json()['Id']}")
    validate_response(SPEC, "/Folders/{FolderId}", "get", got)
    assert got.json()["Name"] == "My Docs"
    dup = call("/Folders", "POST", json={"Name": "my docs"})
    bad = call("/Folders", "POST", json={"Name": "a/b"})
    for r in (dup, bad):
        assert r.status_code == 400 and r.json()[0]["type"] == "Validation" and r.json()[0]["detail"]
    assert bad.json() == [{"type": "Validation", "title": "Validation failure",
                           "detail": "Name contains one or more bad characters"}]
    assert call("/Folders/00000000-0000-0000-0000-000000000000").status_code == 404
    renamed = call(f"/Folders/{made.json()['Id']}", "PUT", json={"Name": "Your Docs"})
    validate_response(SPEC, "/Folders/{FolderId}", "put", renamed)
    validate_response(SPEC, "/Inbox", "get", call("/Inbox"))


def test_upload_list_get_content(call):
    folder = call("/Folders", "POST", json={"Name": "Client Uploads"}).json()
    r = _upload(call, folder["Id"])
    assert r.status_code == 201
    validate_response(SPEC, "/Files/{FolderId}", "post", r)
    f = r.json()
    assert (f["Name"], f["MimeType"], f["Size"], f["FolderId"]) == ("invoice-scan.pdf", "application/pdf", 13, folder["Id"])
    listing = call("/Files", params={"pagesize": 10, "page": 1})
    validate_response(SPEC, "/Files", "get", listing)
    body = listing.json()
    assert (body["TotalCount"], body["Page"], body["PerPage"]) == (1, 1, 10) and body["Items"][0]["Id"] == f["Id"]
    one = call(f"/Files/{f['Id']}")
    validate_response(SPEC, "/Files/{FileId}", "get", one)
    moved = call(f"/Files/{f['Id']}", "PUT", json={"Name": "renamed.pdf"})
    validate_response(SPEC, "/Files/{FileId}", "put", moved)
    assert moved.json()["Name"] == "renamed.pdf"
    f = moved.json()
    assert call(f"/Files/{f['Id']}/Content").content == b"%PDF-1.4 fake"
    assert listing.json()["Items"][0]["Name"] == "invoice-scan.pdf"
    assert call(f"/Folders/{folder['Id']}").json()["FileCount"] == 1
    inbox = call("/Files", "POST", files={"body": ("note.txt", b"hi", "text/plain")}, data={"name": "note.txt",
                                                                                          "filename": "note.txt"})
    assert inbox.status_code == 201 and inbox.json()["FolderId"] == call("/Inbox").json()["Id"]


def test_idempotency_key_returns_the_first_result(call):
    inbox = call("/Inbox").json()["Id"]
    a = _upload(call, inbox, key="doc-123")
    b = _upload(call, inbox, key="doc-123", data=b"different bytes")
    assert a.status_code == b.status_code == 201 and a.json() == b.json()
    assert call("/Files").json()["TotalCount"] == 1
    c = _upload(call, inbox, key="doc-124")
    assert c.json()["Id"] != a.json()["Id"] and call("/Files").json()["TotalCount"] == 2


def test_refused_extension_and_size(call):
    inbox = call("/Inbox").json()["Id"]
    exe = _upload(call, inbox, name="setup.exe", mime="application/octet-stream")
    assert exe.status_code == 400
    assert exe.json() == [{"type": "Validation", "title": "Validation failure",
                           "detail": "Extension: exe is not a valid File extension."}]
    big = _upload(call, inbox, data=b"x" * (10 * 1024 * 1024 + 1))
    assert big.status_code == 413 and "10 MB" in big.json()[0]["detail"]
    assert call("/Files").json()["TotalCount"] == 0  # nothing half-stored
    not_multipart = call(f"/Files/{inbox}", "POST", json={"name": "x.pdf"})
    assert not_multipart.status_code == 400 and "multipart" in not_multipart.json()[0]["detail"]


def test_associations(call, fake):
    inbox = call("/Inbox").json()["Id"]
    f = _upload(call, inbox).json()
    contact = fake.orgs[0].contacts[0].id
    r = call(f"/Files/{f['Id']}/Associations", "POST",
             json={"ObjectId": contact, "ObjectGroup": "Contact", "ObjectType": "Business"})
    assert r.status_code == 201
    validate_response(SPEC, "/Files/{FileId}/Associations", "post", r)
    listed = call(f"/Files/{f['Id']}/Associations")
    validate_response(SPEC, "/Files/{FileId}/Associations", "get", listed)
    by_object = call(f"/Associations/{contact}")
    validate_response(SPEC, "/Associations/{ObjectId}", "get", by_object)
    assert by_object.json()[0]["Name"] == "invoice-scan.pdf" and by_object.json()[0]["FileId"] == f["Id"]
    assert call("/Associations/Count", params={"ObjectIds": contact}).json() == {contact: 1}
    bad = call(f"/Files/{f['Id']}/Associations", "POST", json={"ObjectId": contact, "ObjectGroup": "Spaceship"})
    assert bad.status_code == 400 and isinstance(bad.json(), list)
    assert call(f"/Files/{f['Id']}/Associations/{contact}", "DELETE").status_code == 204
    assert call(f"/Associations/{contact}").json() == []


def test_paging_and_sorting(call):
    inbox = call("/Inbox").json()["Id"]
    for n in ("c.pdf", "a.pdf", "b.pdf"):
        _upload(call, inbox, name=n)
    page = call("/Files", params={"pagesize": 2, "page": 2, "sort": "Name", "direction": "ASC"}).json()
    assert page["TotalCount"] == 3 and [i["Name"] for i in page["Items"]] == ["c.pdf"]
    assert call("/Files", params={"pagesize": 101}).status_code == 400


def test_read_only_scope_cannot_write(fake):
    tok = connect(fake, scope="offline_access files.read")["access_token"]
    org = fake.orgs[0].tenant_id
    assert api(fake, tok, F + "/Folders", org).status_code == 200
    r = api(fake, tok, F + "/Folders", org, "POST", json={"Name": "x"})
    assert r.status_code == 401 and "insufficient_scope" in r.headers["www-authenticate"]


def test_multipart_parser_keeps_binary_bytes():
    data = bytes(range(256)) * 3 + b"\r\n--not-the-boundary\r\n"
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"body\"; filename=\"b.bin\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--XyZ\r\n"
            b"Content-Disposition: form-data; name=\"name\"\r\n\r\nb.bin\r\n--XyZ--\r\n")
    parts = parse_multipart('multipart/form-data; boundary="XyZ"', body)
    assert parts["body"][0] == data and parts["body"][1] == "b.bin" and parts["name"][0] == b"b.bin"


def test_every_served_files_json_was_checked_against_the_spec(fake, call):
    """make_fake validates each Files/identity JSON response on the way out; make sure it did."""
    inbox = call("/Inbox").json()["Id"]
    f = _upload(call, inbox).json()
    call("/Files")
    call(f"/Files/{f['Id']}")
    call("/Folders")
    call("/Associations/Count", params={"ObjectIds": f["Id"]})
    checked = set(fake.validated)
    assert {("GET", "/Inbox"), ("POST", "/Files/{FolderId}"), ("GET", "/Files"), ("GET", "/Files/{FileId}"),
            ("GET", "/Folders")} <= checked
