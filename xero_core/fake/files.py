"""Xero Files API (`/files.xro/1.0`, xero-notes §5): folders, multipart uploads, associations.

Wire facts kept: GET /Folders is a bare array; POST /Folders answers 200; uploads answer 201;
GET /Files is the `TotalCount/Page/PerPage/Items` envelope (pagesize <= 100); timestamps carry 7
fractional digits and no zone; errors are a JSON *array* of {type,title,detail}. A repeated
Idempotency-Key returns the first answer and creates nothing new.
"""
from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from collections.abc import Mapping
from typing import Any

from .clock import Clock

from .identity import xero_timestamp
from .responses import Reply, json_reply, not_found

MAX_UPLOAD = 10 * 1024 * 1024  # UNCONFIRMED in Xero's docs; the product must handle the refusal anyway
ALLOWED_EXTENSIONS = frozenset("""
7z bmp csv doc docm docx dot dotx eml gif heic htm html jpeg jpg key keynote msg numbers odf ods odt ots ott
pages pdf png ppt pptx rar rtf tif tiff txt xls xlsm xlsx xml zip
""".split())
BAD_NAME_CHARS = re.compile(r'[\\/:*?"<>|]')
OBJECT_GROUPS = ("Account", "BankTransaction", "Contact", "CreditNote", "Invoice", "Item", "ManualJournal",
                 "Overpayment", "Payment", "Prepayment", "Quote", "Receipt")
FILES_USER = {"Name": "demo.user@ledgerlink.example", "FirstName": "Demo", "LastName": "User",
              "FullName": "Demo User", "Id": "8b1a2c5d-6e7f-4a0b-9c1d-2e3f4a5b6c7d"}
_NS = uuid.UUID("0c6c0b0e-8f8e-4b57-9d5e-6a0c1f6f2b33")


@dataclass
class Folder:
    id: str
    name: str
    is_inbox: bool = False
    email: str | None = None


@dataclass
class StoredFile:
    id: str
    name: str
    mime_type: str
    size: int
    folder_id: str
    created: float
    updated: float
    content_b64: str


@dataclass
class Association:
    file_id: str
    object_id: str
    object_group: str
    object_type: str
    created: float
    send_with_object: bool = False


def errors(status: int, detail: str, title: str = "Validation failure", type_: str = "Validation") -> Reply:
    return json_reply(status, [{"type": type_, "title": title, "detail": detail}])


class FilesStore:
    """One organisation's files."""

    def __init__(self, tenant_id: str, clock: Clock, seed: int = 0) -> None:
        self.tenant_id, self.clock = tenant_id, clock
        inbox_id = str(uuid.uuid5(_NS, f"{seed}:{tenant_id}:inbox"))
        slug = uuid.uuid5(_NS, f"{seed}:{tenant_id}:mail").hex[:16]
        self.folders: dict[str, Folder] = {
            inbox_id: Folder(inbox_id, "Inbox", True, f"xero.inbox.{slug[:4]}.{slug[4:]}@xerofiles.com"),
        }
        for name in ("Contracts", "Client Documents"):
            fid = str(uuid.uuid5(_NS, f"{seed}:{tenant_id}:{name}"))
            self.folders[fid] = Folder(fid, name)
        self.files: dict[str, StoredFile] = {}
        self.associations: list[Association] = []
        self.idempotent: dict[str, list[Any]] = {}  # key -> [status, headers, body(str)]

    @property
    def inbox(self) -> Folder:
        return next(f for f in self.folders.values() if f.is_inbox)

    # ---- wire shapes ------------------------------------------------------------------------------
    def folder_json(self, f: Folder) -> dict[str, Any]:
        out = {"Name": f.name, "FileCount": sum(1 for x in self.files.values() if x.folder_id == f.id)}
        if f.is_inbox:
            out["Email"] = f.email
        out.update({"IsInbox": f.is_inbox, "Id": f.id})
        return out

    @staticmethod
    def file_json(f: StoredFile) -> dict[str, Any]:
        return {"Name": f.name, "MimeType": f.mime_type, "Size": f.size, "CreatedDateUtc": xero_timestamp(f.created),
                "UpdatedDateUtc": xero_timestamp(f.updated), "User": dict(FILES_USER), "FolderId": f.folder_id,
                "Id": f.id}

    def association_json(self, a: Association, full: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"FileId": a.file_id, "ObjectId": a.object_id, "ObjectType": a.object_type, "ObjectGroup": a.object_group}
        if full:  # Name, Size, dates and SendWithObject only on /Associations/{ObjectId} (spec)
            f = self.files.get(a.file_id)
            out = {"SendWithObject": a.send_with_object, "Name": f.name if f else "", "Size": f.size if f else 0,
                   "CreatedDateUtc": xero_timestamp(f.created if f else a.created),
                   "AssociationDateUtc": xero_timestamp(a.created), **out}
        return out

    # ---- persistence --------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return {"folders": [asdict(f) for f in self.folders.values()], "files": [asdict(f) for f in self.files.values()],
                "associations": [asdict(a) for a in self.associations], "idempotent": self.idempotent}

    def load(self, data: dict[str, Any]) -> None:
        self.folders = {f["id"]: Folder(**f) for f in data.get("folders", [])} or self.folders
        self.files = {f["id"]: StoredFile(**f) for f in data.get("files", [])}
        self.associations = [Association(**a) for a in data.get("associations", [])]
        self.idempotent = dict(data.get("idempotent", {}))


def _uuid(s: str) -> str | None:
    try:
        return str(uuid.UUID(s))
    except (ValueError, AttributeError):
        return None


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None, str | None]] | None:
    """name -> (bytes, filename, part content type). None when the body is not multipart."""
    m = re.search(r'boundary="?([^";]+)"?', content_type or "")
    if not content_type.lower().startswith("multipart/form-data") or not m:
        return None
    boundary = b"--" + m.group(1).encode()
    out = {}
    for chunk in body.split(boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        disp = headers.get("content-disposition", "")
        name = re.search(r'(?<![a-z*])name="([^"]*)"', disp)
        fname = re.search(r'filename="([^"]*)"', disp)
        if name:
            out[name.group(1)] = (data, fname.group(1) if fname else None, headers.get("content-type"))
    return out


def handle_files(store: FilesStore, method: str, subpath: str, params: Mapping[str, str], headers: Mapping[str, str],
                 body: bytes, now: datetime) -> Reply:
    key = headers.get("idempotency-key")
    if key and method in ("POST", "PUT"):
        if len(key) > 128:
            return errors(400, "Idempotency-Key must be 128 characters or fewer.")
        ikey = f"{method} {subpath} {key}"
        if ikey in store.idempotent:
            status, h, b = store.idempotent[ikey]
            return Reply(status, dict(h), b.encode())
        reply = _route(store, method, subpath, params, headers, body, now.timestamp())
        if reply.status < 500:
            store.idempotent[ikey] = [reply.status, reply.headers, reply.body.decode()]
        return reply
    return _route(store, method, subpath, params, headers, body, now.timestamp())


def _route(store: FilesStore, method: str, subpath: str, params: Mapping[str, str], headers: Mapping[str, str],
           body: bytes, now: float) -> Reply:
    parts = [p for p in subpath.split("/") if p]
    if not parts:
        return not_found()
    head = parts[0].lower()
    if head == "folders":
        return _folders(store, method, parts[1:], params, body)
    if head == "inbox" and method == "GET" and len(parts) == 1:
        return json_reply(200, store.folder_json(store.inbox))
    if head == "files":
        return _files(store, method, parts[1:], params, headers, body, now)
    if head == "associations" and method == "GET" and len(parts) == 2:
        if parts[1].lower() == "count":
            ids = [x for x in (params.get("ObjectIds") or params.get("objectIds") or "").split(",") if x]
            return json_reply(200, {i: sum(1 for a in store.associations if a.object_id == i) for i in ids})
        oid = _uuid(parts[1])
        rows = [store.association_json(a, True) for a in store.associations if a.object_id == oid]
        return json_reply(200, _page_slice(rows, params))
    return not_found()


def _page_slice(rows: list[Any], params: Mapping[str, str]) -> list[Any]:
    try:
        size = min(100, max(1, int(params.get("pagesize") or 100)))
        page = max(1, int(params.get("page") or 1))
    except ValueError:
        return rows
    return rows[(page - 1) * size: page * size]


def _json_body(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _folders(store: FilesStore, method: str, rest: list[str], params: Mapping[str, str], body: bytes) -> Reply:
    if not rest:
        if method == "GET":
            folders = list(store.folders.values())
            if (params.get("sort") or "").lower() == "name":
                folders.sort(key=lambda f: f.name.lower())
            else:
                folders.sort(key=lambda f: (not f.is_inbox, f.name.lower()))
            return json_reply(200, [store.folder_json(f) for f in folders])
        if method == "POST":
            data = _json_body(body)
            if data is None:
                return errors(400, "The request body must be a JSON object such as {\"Name\": \"My Docs\"}.")
            name = (data.get("Name") or "").strip()
            bad = _bad_folder_name(store, name)
            if bad:
                return bad
            fid = str(uuid.uuid4())
            store.folders[fid] = Folder(fid, name)
            return json_reply(200, store.folder_json(store.folders[fid]))
        return not_found()
    f = store.folders.get(_uuid(rest[0]) or "")
    if f is None or len(rest) > 1:
        return not_found()
    if method == "GET":
        return json_reply(200, store.folder_json(f))
    if method == "PUT":
        data = _json_body(body) or {}
        name = (data.get("Name") or "").strip()
        if f.is_inbox:
            return errors(400, "The Inbox cannot be renamed.")
        bad = _bad_folder_name(store, name, f.id)
        if bad:
            return bad
        f.name = name
        return json_reply(200, store.folder_json(f))
    if method == "DELETE":
        if f.is_inbox:
            return errors(400, "The Inbox cannot be deleted.")
        del store.folders[f.id]
        for fid in [x.id for x in store.files.values() if x.folder_id == f.id]:
            del store.files[fid]
        return Reply(204, {}, b"")
    return not_found()


def _bad_folder_name(store: FilesStore, name: str, own_id: str | None = None) -> Reply | None:
    if not name:
        return errors(400, "Name is required.")
    if BAD_NAME_CHARS.search(name):
        return errors(400, "Name contains one or more bad characters")
    if any(f.name.lower() == name.lower() and f.id != own_id for f in store.folders.values()):
        return errors(400, f"A folder named {name} already exists.")
    return None


def _files(store: FilesStore, method: str, rest: list[str], params: Mapping[str, str], headers: Mapping[str, str],
           body: bytes, now: float) -> Reply:
    if not rest:
        if method == "GET":
            return _list_files(store, params)
        if method == "POST":
            return _upload(store, store.inbox, headers, body, now)
        return not_found()
    target = _uuid(rest[0]) or ""
    if method == "POST" and len(rest) == 1:
        folder = store.folders.get(target)
        if folder is None:
            return errors(400, f"Folder {rest[0]} does not exist.")
        return _upload(store, folder, headers, body, now)
    f = store.files.get(target)
    if f is None:
        return not_found()
    if len(rest) == 1:
        if method == "GET":
            return json_reply(200, store.file_json(f))
        if method == "PUT":
            data = _json_body(body) or {}
            if "FolderId" in data:
                folder_id = _uuid(str(data["FolderId"]))
                if folder_id is None or folder_id not in store.folders:
                    return errors(400, f"Folder {data['FolderId']} does not exist.")
                f.folder_id = folder_id
            if data.get("Name"):
                f.name = str(data["Name"])
            f.updated = now
            return json_reply(200, store.file_json(f))
        if method == "DELETE":
            del store.files[f.id]
            store.associations = [a for a in store.associations if a.file_id != f.id]
            return Reply(204, {}, b"")
        return not_found()
    sub = rest[1].lower()
    if sub == "content" and method == "GET" and len(rest) == 2:
        return Reply(200, {"Content-Type": "application/octet-stream"}, base64.b64decode(f.content_b64))
    if sub == "associations":
        if len(rest) == 2 and method == "GET":
            return json_reply(200, [store.association_json(a, False) for a in store.associations if a.file_id == f.id])
        if len(rest) == 2 and method == "POST":
            return _associate(store, f, body, now)
        if len(rest) == 3 and method == "DELETE":
            oid = _uuid(rest[2])
            before = len(store.associations)
            store.associations = [a for a in store.associations if not (a.file_id == f.id and a.object_id == oid)]
            return Reply(204, {}, b"") if len(store.associations) < before else not_found()
    return not_found()


def _list_files(store: FilesStore, params: Mapping[str, str]) -> Reply:
    try:
        size = int(params.get("pagesize") or params.get("pageSize") or 100)
        page = int(params.get("page") or 1)
    except ValueError:
        return errors(400, "page and pagesize must be whole numbers.")
    if size < 1 or size > 100 or page < 1:
        return errors(400, "pagesize must be 1 to 100 and page 1 or more.")
    sort = (params.get("sort") or "CreatedDateUTC").lower()
    keyf = {"name": lambda f: f.name.lower(), "size": lambda f: f.size}.get(sort, lambda f: (f.created, f.id))
    rows = sorted(store.files.values(), key=keyf, reverse=(params.get("direction") or "ASC").upper() == "DESC")
    items = rows[(page - 1) * size: page * size]
    return json_reply(200, {"TotalCount": len(rows), "Page": page, "PerPage": size,
                            "Items": [store.file_json(f) for f in items]})


def _upload(store: FilesStore, folder: Folder, headers: Mapping[str, str], body: bytes, now: float) -> Reply:
    parts = parse_multipart(headers.get("content-type", ""), body)
    if parts is None:
        return errors(400, "Upload as multipart/form-data with the fields body, name and filename.")
    if "body" not in parts:
        return errors(400, "The multipart field 'body' (the file's bytes) is missing.")
    content, part_filename, part_type = parts["body"]
    def text(k: str) -> str:
        return parts[k][0].decode("utf-8", "replace").strip() if k in parts else ""

    name = text("name") or text("filename") or (part_filename or "")
    if not name:
        return errors(400, "The multipart field 'name' (the file's name) is missing.")
    if len(content) > MAX_UPLOAD:
        return errors(413, f"File size {len(content)} bytes exceeds the 10 MB limit.", title="File too large")
    ext = name.rsplit(".", 1)[1].lower() if "." in name else ""
    if ext not in ALLOWED_EXTENSIONS:
        return errors(400, f"Extension: {ext or '(none)'} is not a valid File extension.")
    mime = text("mimeType") or part_type or "application/octet-stream"
    fid = str(uuid.uuid4())
    f = StoredFile(fid, name, mime, len(content), folder.id, now, now, base64.b64encode(content).decode())
    store.files[fid] = f
    return json_reply(201, store.file_json(f))


def _associate(store: FilesStore, f: StoredFile, body: bytes, now: float) -> Reply:
    data = _json_body(body)
    if data is None:
        return errors(400, "The request body must be a JSON object with ObjectId, ObjectGroup and ObjectType.")
    oid = _uuid(str(data.get("ObjectId", "")))
    group = data.get("ObjectGroup")
    if oid is None:
        return errors(400, "ObjectId must be the Xero id (a GUID) of the object to attach the file to.")
    if group not in OBJECT_GROUPS:
        return errors(400, f"ObjectGroup {group!r} is not one of {', '.join(OBJECT_GROUPS)}.")
    otype = data.get("ObjectType") or {"Contact": "Business", "Invoice": "AccRec"}.get(group, "Unknown")
    existing = next((a for a in store.associations if a.file_id == f.id and a.object_id == oid), None)
    if existing is None:
        existing = Association(f.id, oid, group, otype, now, bool(data.get("SendWithObject", False)))
        store.associations.append(existing)
    return json_reply(201, store.association_json(existing, False))


__all__ = ["FilesStore", "handle_files", "parse_multipart", "MAX_UPLOAD"]
