"""Client documents pushed to Xero Files and attached to the client's Xero contact.

A document is stored content-addressed under data_dir/documents (so the same bytes are kept once)
and pushed into a "Ledgerlink Uploads" folder (found again by name, created only if missing), then
associated with the contact (ObjectGroup Contact). Status: pending -> pushed | failed | skipped.
Each upload carries an Idempotency-Key derived from the document id and its SHA-256, so a retried
push never makes a second file in Xero; a file already uploaded is only (re)associated on retry.
"""
from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..clock import SYSTEM_CLOCK, Clock
from ..db import connect, transaction
from ..errors import LedgerlinkError, XeroError
from ..settings import Settings
from .matching import _rows

FILES = "/files.xro/1.0"  # relative to settings.api_url (settings.files_url is the same place)
FOLDER_NAME = "Ledgerlink Uploads"
MAX_BYTES = 10 * 1024 * 1024  # Xero Files' upload limit (10 MB)
# Xero Files' accepted extensions (developer.xero.com, Files API "file types").
ALLOWED_EXTENSIONS = frozenset("""
7z bmp csv doc docm docx dot dotx eml gif heic htm html jpeg jpg key keynote msg numbers odf ods odt ots ott
pages pdf png ppt pptx rar rtf tif tiff txt xls xlsm xlsx xml zip
""".split())
_BAD_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]')


class DocumentError(LedgerlinkError):
    pass


def docs_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "documents"


def clean_name(name: str) -> str:
    """A file name Xero accepts: no path, no \\ / : * ? " < > | or control characters."""
    base = Path(str(name).replace("\\", "/")).name.strip()
    base = _BAD_NAME.sub("_", base)
    return base[:200] or "document"


def check_uploadable(file_name: str, size: int) -> str | None:
    """None when Xero Files will take it, else the reason in words (and what to do)."""
    ext = file_name.rsplit(".", 1)[1].lower() if "." in file_name else ""
    if ext not in ALLOWED_EXTENSIONS:
        return (f"Xero Files does not accept .{ext or '(no extension)'} files. Convert it to PDF (or another "
                f"accepted type: {', '.join(sorted(ALLOWED_EXTENSIONS))}) and add it again.")
    if size > MAX_BYTES:
        return (f"{file_name} is {size / 1024 / 1024:.1f} MB; Xero Files takes at most "
                f"{MAX_BYTES // (1024 * 1024)} MB per file. Compress or split it and add it again.")
    if size == 0:
        return f"{file_name} is empty (0 bytes); add the real file."
    return None


def idempotency_key(document_id: str, sha256: str, step: str = "upload") -> str:
    """Stable for a document and its bytes: a retry is the same request to Xero."""
    return f"ledgerlink-{step}-" + hashlib.sha256(f"{document_id}:{sha256}".encode()).hexdigest()[:48]


def _store_bytes(settings: Settings, data: bytes) -> tuple[str, Path]:
    digest = hashlib.sha256(data).hexdigest()
    dest = docs_dir(settings) / digest[:2] / digest
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".in-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return digest, dest


def add_document(settings: Settings, client_id: str, source: Path | str | bytes, *, file_name: str | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> dict:
    """Keep a file for a client. Returns the document row; a type or size Xero refuses is recorded as
    `skipped` with the reason. The same bytes added twice for one client return the first document."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DocumentError(f"{path} is not a file.")
        size = path.stat().st_size
        if size > 4 * MAX_BYTES:
            raise DocumentError(f"{path.name} is {size / 1024 / 1024:.0f} MB: far over Xero Files' 10 MB limit.")
        data = path.read_bytes()
        file_name = file_name or path.name
    else:
        data = bytes(source)
        if not file_name:
            raise DocumentError("A document needs a file name.")
    name = clean_name(file_name)
    now = clock.now()
    with connect(settings.db_path) as con:
        if con.execute("SELECT 1 FROM clients WHERE client_id = ?", [client_id]).fetchone() is None:
            raise DocumentError(f"No client {client_id!r}. List clients with: python -m xero_core clients list")
    digest, dest = _store_bytes(settings, data)
    problem = check_uploadable(name, len(data))
    doc_id = "doc_" + uuid.uuid4().hex[:16]
    mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
    with connect(settings.db_path) as con, transaction(con):
        same = _rows(con, "SELECT * FROM client_documents WHERE client_id = ? AND sha256 = ? AND file_name = ?",
                     [client_id, digest, name])
        if same:
            return same[0]
        con.execute(
            "INSERT INTO client_documents (document_id, client_id, file_name, mime_type, size_bytes, sha256, storage_path, "
            "status, error, attempts, idempotency_key, associated, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, FALSE, ?, ?)",
            [doc_id, client_id, name, mime, len(data), digest, str(dest.relative_to(settings.data_dir)),
             "skipped" if problem else "pending", problem, idempotency_key(doc_id, digest), now, now],
        )
        return _rows(con, "SELECT * FROM client_documents WHERE document_id = ?", [doc_id])[0]


def list_documents(settings: Settings, client_id: str | None = None, status: str | None = None) -> list[dict]:
    where, params = [], []
    if client_id:
        where.append("d.client_id = ?"), params.append(client_id)
    if status:
        where.append("d.status = ?"), params.append(status)
    with connect(settings.db_path, read_only=True) as con:
        return _rows(con, "SELECT d.*, c.name AS client_name FROM client_documents d LEFT JOIN clients c USING (client_id)"
                     + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY d.created_at, d.document_id", params)


# --------------------------------------------------------------------------- push


@dataclass
class PushSummary:
    pushed: int = 0
    failed: int = 0
    skipped: int = 0
    messages: list[str] = field(default_factory=list)
    api_calls: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _xero_text(exc: Exception) -> str:
    if isinstance(exc, XeroError):
        detail = exc.detail if exc.detail and exc.detail not in exc.message else None
        return str(exc) + (f": {detail}" if detail else "")
    return str(exc) or type(exc).__name__


def find_or_create_folder(client) -> str:
    """The "Ledgerlink Uploads" folder's id: found by name, created only when missing."""
    def find() -> str | None:
        folders = client.request("GET", f"{FILES}/Folders").json()
        if isinstance(folders, dict):  # tolerate an envelope, though Xero sends a bare array
            folders = folders.get("Folders") or folders.get("Items") or []
        for f in folders or []:
            if str(f.get("Name", "")).strip().casefold() == FOLDER_NAME.casefold() and not f.get("IsInbox"):
                return f["Id"]
        return None

    found = find()
    if found:
        return found
    try:
        return client.request("POST", f"{FILES}/Folders", json={"Name": FOLDER_NAME}).json()["Id"]
    except XeroError:
        # Another process may have created it a moment ago ("already exists"): use that one.
        found = find()
        if found:
            return found
        raise


def _select(con, document_id: str | None, retry_failed: bool) -> list[dict]:
    sql = ("SELECT d.*, c.tenant_id AS c_tenant, c.xero_contact_id AS c_contact, c.name AS c_name "
           "FROM client_documents d LEFT JOIN clients c USING (client_id) ")
    if document_id:
        return _rows(con, sql + "WHERE d.document_id = ?", [document_id])
    statuses = ["pending", "skipped"] + (["failed"] if retry_failed else [])
    return _rows(con, sql + f"WHERE d.status IN ({', '.join('?' * len(statuses))}) ORDER BY d.created_at, d.document_id",
                 statuses)


def _update(settings: Settings, document_id: str, now, **cols) -> None:
    sets = ", ".join(f"{k} = ?" for k in cols)  # names from this module only
    with connect(settings.db_path) as con:
        con.execute(f"UPDATE client_documents SET {sets}, updated_at = ? WHERE document_id = ?", [*cols.values(), now, document_id])


def push_documents(settings: Settings, *, document_id: str | None = None, retry_failed: bool = False,
                   transport=None, clock: Clock = SYSTEM_CLOCK, client_factory=None) -> PushSummary:
    """Push pending documents (plus failed ones with retry_failed, or exactly one with document_id)."""
    summary = PushSummary()
    with connect(settings.db_path, read_only=True) as con:
        docs = _select(con, document_id, retry_failed)
    if document_id and not docs:
        raise DocumentError(f"No document {document_id!r}. List them with: python -m xero_core documents list")
    clients: dict[str, object] = {}
    folders: dict[str, str] = {}

    def client_for(tenant_id: str):
        if tenant_id not in clients:
            if client_factory is not None:
                clients[tenant_id] = client_factory(tenant_id)
            else:
                from ..client import limited_client

                clients[tenant_id] = limited_client(settings, tenant_id, transport=transport, clock=clock)
        return clients[tenant_id]

    for d in docs:
        now = clock.now()
        label = f"{d['file_name']} ({d['document_id']})"
        if d["status"] == "pushed":
            summary.messages.append(f"{label}: already pushed")
            continue
        problem = check_uploadable(d["file_name"], int(d["size_bytes"] or 0))
        if not problem and not (d["c_tenant"] and d["c_contact"]):
            problem = (f"client {d['c_name'] or d['client_id']} is not matched to a Xero contact: match it on the "
                       "Clients page (or resolve its ambiguous match), then push again")
        if problem:
            if d["status"] != "skipped" or d["error"] != problem:
                _update(settings, d["document_id"], now, status="skipped", error=problem)
            summary.skipped += 1
            summary.messages.append(f"{label}: skipped: {problem}")
            continue
        path = Path(settings.data_dir) / d["storage_path"]
        attempts = int(d["attempts"] or 0) + 1
        tenant = d["c_tenant"]
        try:
            if not path.is_file():
                raise DocumentError(f"the stored copy {path} is missing; add the file again")
            client = client_for(tenant)
            file_id = d["xero_file_id"] if d["tenant_id"] == tenant else None
            folder_id = d["xero_folder_id"]
            if not file_id:
                if tenant not in folders:
                    folders[tenant] = find_or_create_folder(client)
                folder_id = folders[tenant]
                key = d["idempotency_key"] or idempotency_key(d["document_id"], d["sha256"])
                resp = client.request(
                    "POST", f"{FILES}/Files/{folder_id}",
                    files={"body": (d["file_name"], path.read_bytes(), d["mime_type"] or "application/octet-stream")},
                    data={"name": d["file_name"], "filename": d["file_name"], "mimeType": d["mime_type"] or ""},
                    headers={"Idempotency-Key": key},
                )
                file_id = resp.json()["Id"]
                # Recorded at once: if associating fails, a retry only associates.
                _update(settings, d["document_id"], now, tenant_id=tenant, xero_folder_id=folder_id, xero_file_id=file_id)
            client.request(
                "POST", f"{FILES}/Files/{file_id}/Associations",
                json={"ObjectId": d["c_contact"], "ObjectGroup": "Contact", "ObjectType": "Business"},
                headers={"Idempotency-Key": idempotency_key(d["document_id"], d["c_contact"], "associate")},
            )
        except Exception as exc:  # recorded on the document; the next one still goes
            msg = _xero_text(exc)
            _update(settings, d["document_id"], now, status="failed", error=msg[:1000], attempts=attempts)
            summary.failed += 1
            summary.messages.append(f"{label}: failed: {msg}")
            continue
        _update(settings, d["document_id"], now, status="pushed", error=None, attempts=attempts, associated=True,
                pushed_at=now, tenant_id=tenant)
        summary.pushed += 1
        summary.messages.append(f"{label}: pushed to {FOLDER_NAME} and attached to the contact")
    summary.api_calls = sum(getattr(c, "api_calls", 0) for c in clients.values())
    return summary
