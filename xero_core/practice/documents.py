"""Client documents pushed to the practice ledger's Xero Files and attached to the client's contact there.

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
import unicodedata
import uuid
from dataclasses import dataclass, field
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from duckdb import DuckDBPyConnection

from .. import storage
from ..client import XeroClient, limited_client
from ..clock import SYSTEM_CLOCK, Clock
from ..connections import mark_for_reconnect
from ..db import connect, transaction
from ..errors import FatalError, LedgerlinkError, XeroError
from ..settings import Settings
from .roles import Roles, read_roles
from .sql import Row, rows

ClientFactory = Callable[[str], XeroClient]  # tenant id -> the client to push with (tests, a sync's own client)

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


MAX_NAME = 200  # characters kept of a file name (the extension always survives)
# Characters that are not text: controls (Cc), format characters (Cf: the bidi overrides U+202A-202E and
# isolates U+2066-2069 that make "invoice\u202efdp.exe" read as "invoiceexe.pdf", zero-width joiners,
# BOMs, soft hyphens), surrogates, private use, unassigned, and line/paragraph separators.
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def clean_name(name: str) -> str:
    """A file name Xero accepts and a person reads as it is: no path; no \\ / : * ? " < > |; no control,
    bidi or other invisible format characters; odd spaces made plain; at most MAX_NAME characters,
    cut from the stem so the extension survives."""
    text = unicodedata.normalize("NFC", str(name))
    text = "".join(" " if unicodedata.category(ch) == "Zs" else ch for ch in text
                   if unicodedata.category(ch) not in _DROP_CATEGORIES)
    base = Path(text.replace("\\", "/")).name.strip()
    base = _BAD_NAME.sub("_", base)
    base = " ".join(base.split()).rstrip(" .")  # Windows drops trailing dots and spaces anyway
    if not base:
        return "document"
    stem, dot, ext = base.rpartition(".")
    if dot and not stem.strip(" ."):
        stem = "document"  # ".pdf" -> "document.pdf"
    if not dot or len(ext) > 16 or " " in ext:
        return base[:MAX_NAME].rstrip(" .") or "document"
    ext = ext[:16]
    stem = stem[:MAX_NAME - len(ext) - 1].rstrip(" .") or "document"
    return f"{stem}.{ext}"


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
        # a full disk, a file where documents/ should be: one sentence naming it (issue 21 §4)
        with storage.translated(dest, data_dir=settings.data_dir):
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


def _read_stored(settings: Settings, path: Path) -> bytes:
    with storage.translated(path, data_dir=settings.data_dir):
        return path.read_bytes()


def add_document(settings: Settings, client_id: str, source: Path | str | bytes, *, file_name: str | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> Row:
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
        same = rows(con, "SELECT * FROM client_documents WHERE client_id = ? AND sha256 = ? AND file_name = ?",
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
        return rows(con, "SELECT * FROM client_documents WHERE document_id = ?", [doc_id])[0]


def list_documents(settings: Settings, client_id: str | None = None, status: str | None = None) -> list[Row]:
    where: list[str] = []
    params: list[str] = []
    for col, val in (("d.client_id", client_id), ("d.status", status)):
        if val:
            where.append(f"{col} = ?")
            params.append(val)
    with connect(settings.db_path, read_only=True) as con:
        return rows(con, "SELECT d.*, c.name AS client_name FROM client_documents d LEFT JOIN clients c USING (client_id)"
                    + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY d.created_at, d.document_id", params)


# --------------------------------------------------------------------------- push


# Retries: after the n-th failed attempt the next waits RETRY_BASE * 2^(n-1), at most RETRY_CAP; after
# MAX_ATTEMPTS failures (about three days of trying) the document is given up with a sentence, and only a
# person's retry (the Retry button, `documents push --document ID`) tries again.
RETRY_BASE = timedelta(minutes=5)
RETRY_CAP = timedelta(hours=24)
MAX_ATTEMPTS = 12
GAVE_UP = "gave_up"
WAITING = ("pending", "skipped", "failed", GAVE_UP)  # not pushed yet


def retry_delay(attempts: int) -> timedelta | None:
    """How long after the `attempts`-th failure the next try waits; None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    factor: int = 2 ** max(0, attempts - 1)
    return min(RETRY_BASE * factor, RETRY_CAP)


@dataclass
class PushSummary:
    pushed: int = 0
    failed: int = 0  # failed this time (retried later, or given up)
    skipped: int = 0  # cannot go yet: client not matched, or a file Xero refuses
    deferred: int = 0  # failed before, next attempt not due yet
    gave_up: int = 0  # failed MAX_ATTEMPTS times (or refused for good) this time
    messages: list[str] = field(default_factory=list)
    api_calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _xero_text(exc: Exception) -> str:
    if isinstance(exc, XeroError):
        detail = exc.detail if exc.detail and exc.detail not in exc.message else None
        return str(exc) + (f": {detail}" if detail else "")
    return str(exc) or type(exc).__name__


def find_or_create_folder(client: XeroClient) -> str:
    """The "Ledgerlink Uploads" folder's id: found by name, created only when missing."""
    def find() -> str | None:
        folders: Any = client.request_json("GET", f"{FILES}/Folders")[0]
        if isinstance(folders, dict):  # tolerate an envelope, though Xero sends a bare array
            folders = folders.get("Folders") or folders.get("Items") or []
        for f in folders or []:
            if str(f.get("Name", "")).strip().casefold() == FOLDER_NAME.casefold() and not f.get("IsInbox"):
                return str(f["Id"])
        return None

    found = find()
    if found:
        return found
    try:
        return str(client.request_json("POST", f"{FILES}/Folders", json={"Name": FOLDER_NAME})[0]["Id"])
    except XeroError:
        # Another process may have created it a moment ago ("already exists"): use that one.
        found = find()
        if found:
            return found
        raise


_SELECT = ("SELECT d.*, c.tenant_id AS c_tenant, c.xero_contact_id AS c_contact, c.name AS c_name, "
           "c.match_status AS c_match FROM client_documents d LEFT JOIN clients c USING (client_id) ")


def _select(con: DuckDBPyConnection, document_id: str | None, retry_failed: bool) -> list[Row]:
    if document_id:
        return rows(con, _SELECT + "WHERE d.document_id = ?", [document_id])
    statuses = ["pending", "skipped"] + (["failed"] if retry_failed else [])
    return rows(con, _SELECT + f"WHERE d.status IN ({', '.join('?' * len(statuses))}) ORDER BY d.created_at, d.document_id",
                statuses)


def _update(settings: Settings, document_id: str, now: datetime, **cols: object) -> None:
    sets = ", ".join(f"{k} = ?" for k in cols)  # names from this module only
    with connect(settings.db_path) as con:
        con.execute(f"UPDATE client_documents SET {sets}, updated_at = ? WHERE document_id = ?", [*cols.values(), now, document_id])


def _roles(settings: Settings) -> Roles:
    with connect(settings.db_path, read_only=True) as con:
        return read_roles(con)


def not_ready(d: Row, roles: Roles | None = None) -> str | None:
    """Why this document cannot go to Xero yet (a sentence saying what to do), or None. Documents go
    to the practice ledger (practice.roles), attached to the client's contact there."""
    problem = check_uploadable(d["file_name"], int(d["size_bytes"] or 0))
    if problem:
        return problem
    if roles is not None and roles.ledger is None and roles.problem:
        return "documents go to the practice ledger's Xero Files, and none is chosen yet: " + roles.problem
    if roles is not None and roles.ledger and d.get("c_tenant") and d.get("c_contact") and d["c_tenant"] != roles.ledger:
        who = d.get("c_name") or d["client_id"]
        return (f"client {who} is linked to a contact of {roles.name_of(d['c_tenant']) or d['c_tenant']}, not of the "
                f"practice ledger {roles.name_of(roles.ledger)}: link it to its contact there on the Clients page "
                "(or `clients link-contact`)")
    if not (d.get("c_tenant") and d.get("c_contact")):
        who = d.get("c_name") or d["client_id"]
        if d.get("c_match") == "ambiguous":
            return (f"client {who} has an ambiguous Xero match: choose its contact under 'Ambiguous matches' on the "
                    "Clients page (or `clients resolve`); it goes with the next sync after that")
        return (f"client {who} is not matched to a Xero contact yet: link it on the Clients page (or `clients "
                "link-contact`); it goes with the next sync after that")
    return None


def _fatal(exc: Exception) -> bool:
    """A failure no retry will cure (Xero refused the request itself, or the stored copy is gone)."""
    return isinstance(exc, (FatalError, DocumentError))


class _Pusher:
    """Pushes documents one by one, one rate-limited client and one folder look-up per tenant."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None, clock: Clock,
                 client_factory: ClientFactory | None = None) -> None:
        self.settings, self.transport, self.clock, self.client_factory = settings, transport, clock, client_factory
        self.clients: dict[str, XeroClient] = {}
        self.folders: dict[str, str] = {}
        self.summary = PushSummary()
        self.roles = _roles(settings)

    def client_for(self, tenant_id: str) -> XeroClient:
        if tenant_id not in self.clients:
            if self.client_factory is not None:
                self.clients[tenant_id] = self.client_factory(tenant_id)
            else:
                self.clients[tenant_id] = limited_client(self.settings, tenant_id, transport=self.transport,
                                                         clock=self.clock)
        return self.clients[tenant_id]

    def push(self, d: Row) -> None:
        settings, summary = self.settings, self.summary
        now = self.clock.now()
        client_name = d.get("c_name") or d["client_id"]
        label = f"{d['file_name']} for {client_name}"
        if d["status"] == "pushed":
            summary.messages.append(f"{label}: already pushed")
            return
        problem = not_ready(d, self.roles)
        if problem:
            if d["status"] != "skipped" or d["error"] != problem:
                _update(settings, d["document_id"], now, status="skipped", error=problem, next_attempt_at=None)
            summary.skipped += 1
            summary.messages.append(f"{label}: waiting: {problem}")
            return
        path = Path(settings.data_dir) / d["storage_path"]
        attempts = int(d["attempts"] or 0) + 1
        tenant = d["c_tenant"]
        try:
            if not path.is_file():
                raise DocumentError(f"the stored copy {path} is missing; add the file again")
            client = self.client_for(tenant)
            file_id = d["xero_file_id"] if d["tenant_id"] == tenant else None
            folder_id = d["xero_folder_id"]
            if not file_id:
                if tenant not in self.folders:
                    self.folders[tenant] = find_or_create_folder(client)
                folder_id = self.folders[tenant]
                key = d["idempotency_key"] or idempotency_key(d["document_id"], d["sha256"])
                uploaded, _ = client.request_json(
                    "POST", f"{FILES}/Files/{folder_id}",
                    files={"body": (d["file_name"], _read_stored(settings, path), d["mime_type"] or "application/octet-stream")},
                    data={"name": d["file_name"], "filename": d["file_name"], "mimeType": d["mime_type"] or ""},
                    headers={"Idempotency-Key": key},
                )
                file_id = uploaded["Id"]
                # Recorded at once: if associating fails, a retry only associates.
                _update(settings, d["document_id"], now, tenant_id=tenant, xero_folder_id=folder_id, xero_file_id=file_id)
            client.request(
                "POST", f"{FILES}/Files/{file_id}/Associations",
                json={"ObjectId": d["c_contact"], "ObjectGroup": "Contact", "ObjectType": "Business"},
                headers={"Idempotency-Key": idempotency_key(d["document_id"], d["c_contact"], "associate")},
            )
        except Exception as exc:  # recorded on the document; the next one still goes
            mark_for_reconnect(settings, exc, self.clock.now())  # the client only says so
            msg = _xero_text(exc)
            delay = None if _fatal(exc) else retry_delay(attempts)
            summary.failed += 1
            if delay is None:
                why = "Xero refused it" if _fatal(exc) else f"{attempts} failed attempts"
                text = (f"Gave up after {attempts} attempt(s) ({why}): {msg}. Fix the cause, then retry it by hand "
                        "(Retry on the Clients page, or `documents push --document ID`).")
                _update(settings, d["document_id"], now, status=GAVE_UP, error=text[:1000], attempts=attempts,
                        last_attempt_at=now, next_attempt_at=None)
                summary.gave_up += 1
                summary.messages.append(f"{label}: gave up: {msg}")
            else:
                _update(settings, d["document_id"], now, status="failed", error=msg[:1000], attempts=attempts,
                        last_attempt_at=now, next_attempt_at=now + delay)
                summary.messages.append(f"{label}: failed (attempt {attempts}; next try in {_span(delay)}): {msg}")
            return
        _update(settings, d["document_id"], now, status="pushed", error=None, attempts=attempts, associated=True,
                pushed_at=now, tenant_id=tenant, last_attempt_at=now, next_attempt_at=None)
        summary.pushed += 1
        where = self.roles.name_of(tenant) or "Xero"
        summary.messages.append(f"{d['file_name']} pushed to {FOLDER_NAME} in {where}'s Xero Files and attached to "
                                f"{client_name}'s contact there")

    def done(self) -> PushSummary:
        self.summary.api_calls = sum(getattr(c, "api_calls", 0) for c in self.clients.values())
        return self.summary


def _span(delay: timedelta) -> str:
    minutes = int(delay.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def push_documents(settings: Settings, *, document_id: str | None = None, retry_failed: bool = False,
                   transport: httpx.BaseTransport | None = None, clock: Clock = SYSTEM_CLOCK,
                   client_factory: ClientFactory | None = None) -> PushSummary:
    """A person's push: pending documents (plus failed ones with retry_failed, or exactly one with
    document_id, whatever its state, given-up included). Failures are scheduled for retry as in
    push_due_documents."""
    with connect(settings.db_path, read_only=True) as con:
        docs = _select(con, document_id, retry_failed)
    if document_id and not docs:
        raise DocumentError(f"No document {document_id!r}. List them with: python -m xero_core documents list")
    pusher = _Pusher(settings, transport, clock, client_factory)
    for d in docs:
        pusher.push(d)
    return pusher.done()


def push_due_documents(settings: Settings, tenant_id: str, *, transport: httpx.BaseTransport | None = None,
                       clock: Clock | None = None, client_factory: ClientFactory | None = None) -> PushSummary:
    """Every sync's `documents` step: push this tenant's pending documents and the failed ones whose
    backoff has run out (`retry_delay`); failed ones not due yet are counted as `deferred`, given-up
    ones wait for a person. Documents of clients with no Xero contact yet (no tenant) are marked as
    waiting with the reason, so the push queue says why."""
    clock = clock or SYSTEM_CLOCK
    now = clock.now()
    with connect(settings.db_path, read_only=True) as con:
        docs = rows(con, _SELECT + "WHERE (c.tenant_id = ? OR c.tenant_id IS NULL OR c.xero_contact_id IS NULL) "
                    "AND d.status IN ('pending', 'skipped', 'failed') ORDER BY d.created_at, d.document_id", [tenant_id])
    pusher = _Pusher(settings, transport, clock, client_factory)
    for d in docs:
        due = d["next_attempt_at"]
        if d["status"] == "failed" and due is not None and _aware(due) > now:
            pusher.summary.deferred += 1
            continue
        if d["status"] == "skipped" and not_ready(d, pusher.roles) == d["error"]:
            pusher.summary.skipped += 1  # still waiting for the same reason: nothing to write
            continue
        pusher.push(d)
    return pusher.done()


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def push_queue(settings: Settings, *, now: datetime | None = None) -> list[Row]:
    """Documents not in Xero yet, with why they wait and when the next attempt is, for the app and CLI:
    {document_id, file_name, client_id, client_name, status, attempts, why, next_attempt_at, last_attempt_at}."""
    with connect(settings.db_path, read_only=True) as con:
        docs = rows(con, _SELECT + "WHERE d.status IN ('pending', 'skipped', 'failed', 'gave_up') "
                    "ORDER BY d.created_at, d.document_id")
        roles = read_roles(con)
    out: list[Row] = []
    for d in docs:
        problem = not_ready(d, roles)
        status = d["status"]
        if status == GAVE_UP:
            why, nxt = d["error"], None
        elif problem:
            why, nxt = problem, None
        elif status == "failed":
            why = f"attempt {d['attempts']} failed: {d['error']}"
            nxt = d["next_attempt_at"]
        else:
            why, nxt = "ready: goes with the next sync (or Push now)", None
        if nxt is not None and now is not None and _aware(nxt) <= now:
            why += " (retry due: goes with the next sync)"
        out.append({"document_id": d["document_id"], "file_name": d["file_name"], "client_id": d["client_id"],
                    "client_name": d["c_name"], "status": status, "attempts": int(d["attempts"] or 0), "why": why,
                    "next_attempt_at": nxt, "last_attempt_at": d.get("last_attempt_at")})
    return out
