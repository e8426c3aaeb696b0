"""Xero webhooks: verify, spool, then move into DuckDB and process.

`handle_webhook(settings, raw_body, signature) -> status` is all an HTTP server needs to call:
it verifies `x-xero-signature` (base64 HMAC-SHA256 of the raw bytes, constant-time compare) before
looking at the body, writes verified deliveries to the spool (never DuckDB, so a locked database or
a busy Xero cannot delay the answer), and returns 200/401 for an empty-bodied response.
`move_spool` (the `Worker`'s mover thread, within a moment of each delivery) moves spooled
deliveries into `webhook_events`; `process_events` (its processor thread; `drain` = both) processes them: CONTACT -> that contact re-fetched and upserted into contacts
and clients; INVOICE -> that invoice re-fetched into invoices; CREDITNOTE -> that credit note re-fetched
into credit_notes (revenue_weekly follows both). Fetch URLs are built from
settings.api_url and a validated resource id, never from the event's resourceUrl.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple, TypedDict

import httpx
from duckdb import DuckDBPyConnection

from .. import redaction, snapshot
from ..client import XeroClient, limited_client
from ..clock import SYSTEM_CLOCK, Clock
from ..connections import mark_for_reconnect
from ..db import DatabaseBusy, connect, transaction
from ..errors import LedgerlinkError
from ..settings import Settings
from ..storage import as_storage_error
from ..vault import Vault
from .matching import reconcile_contacts
from .roles import ledger_of
from .spool import Spool
from .sql import Row, rows, value

Record = dict[str, Any]  # a Xero resource as the API sends it (JSON)
ClientFactory = Callable[[str], XeroClient]  # tenant id -> the client to fetch with (tests, a sync's own client)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 30
VAULT_NAME = "webhook-key"
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class WebhookError(LedgerlinkError):
    pass


# --------------------------------------------------------------------------- the key


_key_cache: dict[str, tuple[int, str | None]] = {}


def _vault(settings: Settings) -> Vault:
    return Vault(settings)


def get_webhook_key(settings: Settings) -> str | None:
    """The key entered in the app (vault) wins over XERO_WEBHOOK_KEY. Cached on the file's mtime."""
    v = _vault(settings)
    path = v.path(VAULT_NAME)
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        stamp = -1
    cache_key = str(path)
    hit = _key_cache.get(cache_key)
    if hit is not None and hit[0] == stamp and stamp != -1:
        return hit[1]
    key: str | None = None
    if stamp != -1:
        data = v.read(VAULT_NAME) or {}
        key = data.get("key") or None
        redaction.register(key)
        _key_cache[cache_key] = (stamp, key)
    return key or settings.webhook_key


def set_webhook_key(settings: Settings, key: str | None) -> None:
    """Store (or with None/"" remove) the webhook signing key in the vault. Never in DuckDB."""
    v = _vault(settings)
    _key_cache.pop(str(v.path(VAULT_NAME)), None)
    if not key or not key.strip():
        v.delete(VAULT_NAME)
        return
    key = key.strip()
    if len(key) < 16 or any(ch.isspace() for ch in key):
        raise WebhookError(
            "That does not look like a Xero webhook key (copy the 'Webhooks key' from your app's "
            "Webhooks page at developer.xero.com: one long string, no spaces)."
        )
    redaction.register(key)
    v.write(VAULT_NAME, {"key": key})


def webhook_key_mask(settings: Settings) -> str:
    """'' when no key is set, else a hint like '…k3Xq (vault)' that gives nothing away."""
    v = _vault(settings)
    source = "vault" if v.exists(VAULT_NAME) else "XERO_WEBHOOK_KEY"
    key = get_webhook_key(settings)
    if not key:
        return ""
    return f"…{key[-4:]} ({source})" if len(key) >= 24 else f"set ({source})"


# --------------------------------------------------------------------------- verify + receive


def sign(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def verify(key: str | None, body: bytes, signature: str | None) -> bool:
    if not key or not signature:
        return False
    expected = sign(key, body).encode("ascii")
    try:
        given = signature.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected, given)


def refuse_oversized(settings: Settings) -> int:
    """Record and answer a delivery over MAX_BODY_BYTES (receivers call this before reading it all)."""
    Spool.for_settings(settings).note("rejected", "last_verification_failure_at",
                                      {"last_verification_failure": "body too large"})
    return 413


def handle_webhook(settings: Settings, raw_body: bytes, signature: str | None, *,
                   on_spooled: Callable[[], None] | None = None) -> int:
    """The whole receiver: returns the status to send with an EMPTY body (and no cookies).

    Only what Xero's answer depends on happens here: the size, the signature (constant time, before
    the body is looked at), the spool append (fsync'd, shared with concurrent deliveries: a group
    commit). 200 once the delivery is durable; 401 when the signature does not verify; 413 for an
    oversized body; 503 if the spool cannot be written (Xero then retries the delivery). Everything
    that can wait (parsing, Intent to Receive, malformed batches) is the worker's, in `move_spool`.
    """
    if len(raw_body) > MAX_BODY_BYTES:
        return refuse_oversized(settings)
    try:
        spool = Spool.for_settings(settings)
    except LedgerlinkError as exc:  # e.g. StorageError: the data dir cannot be written
        _problems.report("spool", str(exc))
        return 503  # Xero retries a 5xx; nothing verified is lost
    try:
        key = get_webhook_key(settings)
        _problems.clear("key")
    except Exception as exc:  # a vault we cannot open must not crash the server
        _problems.report("key", f"webhook key unavailable: {exc}")
        key = None
    if not verify(key, raw_body, signature):
        reason = "no webhook key configured" if not key else ("no signature" if not signature else "bad signature")
        if reason == "bad signature" and _empty_batch(raw_body):
            # Intent to Receive: Xero sends one correctly signed empty batch and several wrongly
            # signed ones, and passes the URL only if those are refused. Correct, not a failure.
            spool.note("probe_refused", "last_probe_refused_at")
            log.info("webhook: 401, an Intent to Receive probe with a wrong signature (refusing it is correct)")
            return 401
        spool.note("rejected", "last_verification_failure_at", {"last_verification_failure": reason})
        log.info("webhook: 401, %s (%d bytes)", reason, len(raw_body))
        return 401
    try:
        spool.put(raw_body)
    except Exception as exc:  # whatever stops the durable write: 503, and Xero delivers it again
        _problems.report("spool", f"webhook spool write failed: {exc}")
        return 503
    _problems.clear("spool")
    log.info("webhook: 200, signed delivery queued (%d bytes)", len(raw_body))
    if on_spooled is not None:
        on_spooled()
    return 200


def _empty_batch(raw_body: bytes) -> bool:
    """Whether an (unverified) body is an empty event batch, the shape of an Intent to Receive probe.
    Only used to word a refusal: nothing in it is trusted."""
    try:
        doc = json.loads(raw_body)
    except (ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and doc.get("events") == []


# --------------------------------------------------------------------------- events


def parse_event_date(value: str | None) -> datetime | None:
    """`2024-06-21T01:15:39.902`, `…Z`, up to 7 fractional digits: all UTC."""
    if not value or not isinstance(value, str):
        return None
    v = value.strip().rstrip("Zz")
    if "+" in v[10:]:
        v = v[: 10] + v[10:].split("+")[0]
    main, _, frac = v.partition(".")
    try:
        dt = datetime.fromisoformat(main)
    except ValueError:
        return None
    digits = re.match(r"\d*", frac)  # always matches (perhaps nothing)
    if digits and digits.group(0):
        dt = dt.replace(microsecond=int(digits.group(0)[:6].ljust(6, "0")))
    return dt.replace(tzinfo=timezone.utc)


def event_key(ev: Record) -> str:
    """A replay of a delivery is a duplicate; two events on one resource at different times are not."""
    when = parse_event_date(ev.get("eventDateUtc"))
    stamp = when.isoformat() if when else str(ev.get("eventDateUtc"))
    parts = [str(ev.get(k) or "") for k in ("tenantId", "eventCategory", "eventType", "resourceId")] + [stamp]
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()


def event_rows(body: bytes, received_at: float) -> list[Row]:
    return _rows_of(json.loads(body).get("events") or [], received_at)


def _batch_events(body: bytes) -> list[Any] | None:
    """The `events` list of a delivery, or None when it is not a Xero event batch."""
    try:
        doc = json.loads(body)
        events = doc["events"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    return events if isinstance(events, list) else None


def _rows_of(events: list[Any], received_at: float) -> list[Row]:
    out: list[Row] = []
    received = datetime.fromtimestamp(received_at, timezone.utc)
    for ev in events:
        if not isinstance(ev, dict):
            continue
        def text(k: str, ev: Record = ev) -> str | None:  # fields as Xero spells them
            return None if ev.get(k) in (None, "") else str(ev.get(k))

        out.append(
            {
                "event_key": event_key(ev),
                "tenant_id": text("tenantId"),
                "tenant_type": text("tenantType"),
                "event_category": (text("eventCategory") or "").upper() or None,
                "event_type": (text("eventType") or "").upper() or None,
                "resource_id": text("resourceId"),
                "event_date_utc": parse_event_date(ev.get("eventDateUtc")),
                "received_at": received,
                "payload": json.dumps(ev),
            }
        )
    return out


# --------------------------------------------------------------------------- fetchers (adapters)


# The imports from sync/ below stay in the functions: sync/ is practice/'s peer layer (neither imports
# the other at module level; docs/internals.md), and only an event of that kind needs its resource.


def _fetch_contact(client: XeroClient, contact_id: str) -> list[Record]:
    """One contact through the sync helper's fetcher; the path is ours, the id validated."""
    from ..sync.contacts import fetch_contact

    return fetch_contact(client, contact_id)


def _save_contacts(con: DuckDBPyConnection, tenant_id: str, records: list[Record]) -> None:
    from ..sync.contacts import save_contacts

    save_contacts(con, tenant_id, records)


def _fetch_invoice(client: XeroClient, invoice_id: str) -> list[Record]:
    from ..sync.invoices import fetch_invoice

    found = fetch_invoice(client, invoice_id)
    return [found] if found else []


def _save_invoices(con: DuckDBPyConnection, tenant_id: str, records: list[Record], settings: Settings) -> None:
    from ..sync.invoices import save_invoices

    save_invoices(con, tenant_id, records, settings)


def _fetch_credit_note(client: XeroClient, credit_note_id: str) -> list[Record]:
    from ..sync.credit_notes import fetch_credit_note

    found = fetch_credit_note(client, credit_note_id)
    return [found] if found else []


def _save_credit_notes(con: DuckDBPyConnection, tenant_id: str, records: list[Record], settings: Settings) -> None:
    from ..sync.credit_notes import save_credit_notes

    save_credit_notes(con, tenant_id, records, settings)


_FETCH: dict[str, Callable[[XeroClient, str], list[Record]]] = {"CONTACT": _fetch_contact, "INVOICE": _fetch_invoice, "CREDITNOTE": _fetch_credit_note}
# The event categories processed above, as Xero's developer portal names them (its Webhooks page has a
# box to tick for each); the admin app's Webhooks page and the README say to tick exactly these.
PORTAL_CATEGORIES = {"CONTACT": "Contacts", "INVOICE": "Invoices", "CREDITNOTE": "Credit Notes"}


def categories_to_tick() -> str:
    """'Contacts, Invoices and Credit Notes'."""
    names = [PORTAL_CATEGORIES[c] for c in _FETCH]
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


# --------------------------------------------------------------------------- worker


@dataclass
class DrainResult:
    moved_deliveries: int = 0
    new_events: int = 0
    duplicates: int = 0
    processed: int = 0
    failed: int = 0
    ignored: int = 0
    busy: bool = False
    api_calls: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_EVENT_COLS = ("event_key", "tenant_id", "tenant_type", "event_category", "event_type", "resource_id",
               "event_date_utc", "received_at", "payload")


def _insert_events(con: DuckDBPyConnection, events: list[Row]) -> None:
    """One set-wise insert (DuckDB's row-by-row inserts manage ~1,500 rows/s); replays are absorbed."""
    import pyarrow as pa  # here: a second to import, and the receiver's request path never needs it

    ts = pa.timestamp("us", tz="UTC")
    table = pa.table({c: pa.array([r[c] for r in events], type=ts if c in ("event_date_utc", "received_at") else pa.string())
                      for c in _EVENT_COLS})
    name = f"_events_{uuid.uuid4().hex[:8]}"
    con.register(name, table)
    try:
        cols = ", ".join(_EVENT_COLS)
        con.execute(f"INSERT INTO webhook_events ({cols}, status, attempts) SELECT {cols}, 'pending', 0 FROM {name} "
                    "ON CONFLICT (event_key) DO NOTHING")
    finally:
        con.unregister(name)


def move_spool(settings: Settings, *, db_timeout: float = 30.0, batch: int = 500,
               db_lock: threading.Lock | None = None) -> tuple[int, int, int]:
    """Spool -> webhook_events (idempotent by event_key). Returns (deliveries, new, duplicates).

    Deliveries are classified here, not on the request path: an empty batch is Xero's Intent to
    Receive, a body that is not an event batch is counted as malformed and dropped."""
    spool = Spool.for_settings(settings)
    moved = new = dup = 0
    while True:
        items = spool.unmoved(batch)
        if not items:
            return moved, new, dup
        found: list[Row] = []
        ids: list[int] = []
        for did, received_at, body in items:
            ids.append(did)
            events = _batch_events(bytes(body))
            if events is None:
                log.warning("spooled webhook delivery %s is not a Xero event batch; dropped", did)
                spool.note("malformed", "last_malformed_at", now=received_at)
            elif not events:
                spool.note("intent", "intent_to_receive_at", now=received_at)
            else:
                found.extend(_rows_of(events, received_at))
        unique = list({r["event_key"]: r for r in reversed(found)}.values())[::-1]  # first occurrence wins
        added = 0
        if unique:
            with _held(db_lock), connect(settings.db_path, timeout=db_timeout) as con, transaction(con):
                before: int = value(con, "SELECT count(*) FROM webhook_events")
                _insert_events(con, unique)
                added = value(con, "SELECT count(*) FROM webhook_events") - before
        # Only after DuckDB committed: a crash in between re-inserts, which ON CONFLICT absorbs.
        spool.mark_moved(ids)
        moved += len(ids)
        new += added
        dup += len(found) - added


def _held(lock: threading.Lock | None) -> AbstractContextManager[object]:
    return lock if lock is not None else contextlib.nullcontext()


class Group(TypedDict):
    """The due events that name one resource of one tenant: fetched once, marked together."""

    tenant_id: str | None
    category: str | None
    resource_id: str | None
    keys: list[str]  # webhook_events.event_key
    attempts: int
    conn: tuple[str, str] | None  # the tenant's connection (status, TENANT_TYPE); None: no such connection


class Outcome(NamedTuple):
    """What fetching a group came to: its status and error, whether it counts as an attempt, and
    what to save ((category, tenant_id, records); None: nothing)."""

    status: str  # processed | ignored | failed
    error: str | None
    bump: bool
    payload: tuple[str, str, list[Record]] | None


def _due_groups(settings: Settings, now: datetime, db_timeout: float, tenant_id: str | None = None,
                db_lock: threading.Lock | None = None) -> list[Group]:
    with _held(db_lock), connect(settings.db_path, timeout=db_timeout) as con:
        due = rows(
            con,
            "SELECT event_key, tenant_id, event_category, resource_id, status, attempts, processed_at "
            "FROM webhook_events WHERE (status = 'pending' OR (status = 'failed' AND attempts < ?)) "
            + ("AND tenant_id = ? " if tenant_id else "") + "ORDER BY received_at, event_key",
            [MAX_ATTEMPTS, tenant_id] if tenant_id else [MAX_ATTEMPTS],
        )
        conns = {r[0]: (r[1], (r[2] or "").upper()) for r in con.execute(
            "SELECT tenant_id, status, tenant_type FROM connections").fetchall()}
    groups: dict[tuple[str | None, str | None, str | None], Group] = {}
    for r in due:
        if r["status"] == "failed" and r["processed_at"] is not None:
            wait = RETRY_BASE_SECONDS * (2 ** max(0, r["attempts"] - 1))
            last = r["processed_at"]
            if (now - last).total_seconds() < wait:
                continue
        k = (r["tenant_id"], r["event_category"], r["resource_id"])
        g = groups.setdefault(k, Group(tenant_id=k[0], category=k[1], resource_id=k[2], keys=[], attempts=0,
                                       conn=conns.get(k[0]) if k[0] is not None else None))
        g["keys"].append(r["event_key"])
        g["attempts"] = max(g["attempts"], r["attempts"] or 0)
    return list(groups.values())


def _mark(con: DuckDBPyConnection, keys: list[str], status: str, error: str | None, now: datetime, bump: bool) -> None:
    con.execute(
        "UPDATE webhook_events SET status = ?, error = ?, processed_at = ?, attempts = attempts + ? "
        "WHERE event_key IN (SELECT unnest(?::VARCHAR[]))",
        [status, error, now, 1 if bump else 0, list(keys)],
    )


APPLY_CHUNK = 100


def _outcome(g: Group, client_for: ClientFactory,
             refused: Callable[[Exception], None] | None = None) -> tuple[Group, Outcome]:
    """Fetch what one event group needs (network only): (status, error, bump, payload). `refused(exc)`
    sees each error (the caller marks a connection Xero refuses for reconnection)."""
    tenant_id, cat, rid, conn = g["tenant_id"], g["category"], g["resource_id"], g["conn"]
    if conn is None or tenant_id is None:
        return g, Outcome("ignored", "unknown tenant: no connection for this tenantId", False, None)
    if cat is None or cat not in _FETCH:
        return g, Outcome("ignored", f"{cat} events are not used by Ledgerlink", False, None)
    if not rid or not GUID_RE.match(str(rid)):
        return g, Outcome("ignored", "resourceId is not a Xero id; nothing fetched", False, None)
    if conn[0] != "connected":
        return g, Outcome("failed", f"the connection is {conn[0]}: reconnect it, then the event is retried", True, None)
    try:
        client = client_for(tenant_id)
        records = _FETCH[cat](client, rid)
    except Exception as exc:  # recorded on the event, retried later
        if refused is not None:
            refused(exc)
        return g, Outcome("failed", (str(exc) or type(exc).__name__)[:1000], True, None)
    if not records:
        return g, Outcome("failed", f"Xero returned no {cat.lower()} {rid}", True, None)
    return g, Outcome("processed", None, True, (cat, tenant_id, records))


def _apply(con: DuckDBPyConnection, outcomes: list[tuple[Group, Outcome]], now: datetime, clock: Clock,
           settings: Settings) -> None:
    """Write a chunk's records (one save per tenant and kind) and mark its events, set-wise."""
    ledger = None
    batches: dict[tuple[str, str], list[Record]] = {}
    for _, (_, _, _, payload) in outcomes:
        if payload is not None:
            batches.setdefault((payload[0], payload[1]), []).extend(payload[2])
    for (cat, tenant_id), records in batches.items():
        if cat == "CONTACT":
            _save_contacts(con, tenant_id, records)
            ledger = ledger or ledger_of(con)
            if tenant_id == ledger:  # a client organisation's contacts are never the practice's clients
                reconcile_contacts(con, tenant_id, records, clock=clock)
        elif cat == "CREDITNOTE":
            _save_credit_notes(con, tenant_id, records, settings)
        else:
            _save_invoices(con, tenant_id, records, settings)
    marks: dict[tuple[str, str | None, bool], list[str]] = {}
    for g, (status, error, bump, _) in outcomes:
        marks.setdefault((status, error, bump), []).extend(g["keys"])
    for (status, error, bump), keys in marks.items():
        _mark(con, keys, status, error, now, bump)


def _apply_alone(settings: Settings, db_timeout: float, now: datetime, clock: Clock, g: Group, o: Outcome,
                 db_lock: threading.Lock | None = None) -> tuple[Group, Outcome]:
    """A chunk failed to write: apply its groups one by one so one bad record fails alone."""
    try:
        with _held(db_lock), connect(settings.db_path, timeout=db_timeout) as con, transaction(con):
            _apply(con, [(g, o)], now, clock, settings)
        return g, o
    except DatabaseBusy:
        raise
    except Exception as exc:  # this record's own failure (bad data, a constraint): it fails alone, recorded
        failed = Outcome("failed", f"could not save: {exc}"[:1000], True, None)
        with _held(db_lock), connect(settings.db_path, timeout=db_timeout) as con, transaction(con):
            _apply(con, [(g, failed)], now, clock, settings)
        return g, failed


def _chunks(groups: list[Group], client_for: ClientFactory,
            refused: Callable[[Exception], None] | None = None) -> Iterator[list[tuple[Group, Outcome]]]:
    """Outcomes in chunks of APPLY_CHUNK groups that asked Xero: events settled without a fetch
    (ignored) ride along, so a burst of them costs one DuckDB transaction, not one per hundred."""
    chunk: list[tuple[Group, Outcome]] = []
    asked = 0
    for g in groups:
        o = _outcome(g, client_for, refused)
        chunk.append(o)
        asked += 1 if o[1].bump else 0  # bump: an attempt (a fetch, or a connection to reconnect)
        if asked >= APPLY_CHUNK or len(chunk) >= 20 * APPLY_CHUNK:
            yield chunk
            chunk, asked = [], 0
    if chunk:
        yield chunk


def process_events(settings: Settings, *, transport: httpx.BaseTransport | None = None, clock: Clock = SYSTEM_CLOCK,
                   db_timeout: float = 30.0, result: DrainResult | None = None,
                   client_factory: ClientFactory | None = None, tenant_id: str | None = None,
                   db_lock: threading.Lock | None = None) -> DrainResult:
    """Process pending (and due failed) events (of one tenant with `tenant_id`: the pipeline's
    webhooks step); each resource fetched once however many events name it.

    No DuckDB connection is open while Xero is asked (that may wait minutes for the rate limit):
    `db_lock`, shared with the worker's mover, is held only around the short transactions."""
    res = result or DrainResult()
    now = clock.now()
    clients: dict[str, XeroClient] = {}

    def client_for(tenant_id: str) -> XeroClient:
        if tenant_id not in clients:
            if client_factory is not None:
                clients[tenant_id] = client_factory(tenant_id)
            else:
                clients[tenant_id] = limited_client(settings, tenant_id, transport=transport, clock=clock)
        return clients[tenant_id]

    def refused(exc: Exception) -> None:  # the client only says so; the caller marks the connection
        mark_for_reconnect(settings, exc, clock.now())

    groups = _due_groups(settings, now, db_timeout, tenant_id, db_lock)
    for outcomes in _chunks(groups, client_for, refused):
        # Network done for this chunk; now one short transaction writes all of it.
        try:
            with _held(db_lock), connect(settings.db_path, timeout=db_timeout) as con, transaction(con):
                _apply(con, outcomes, now, clock, settings)
        except DatabaseBusy:
            raise
        except Exception:  # one bad record must not fail its chunk: _apply_alone finds and records it
            log.exception("webhook chunk failed to save; saving its events one by one")
            outcomes = [_apply_alone(settings, db_timeout, now, clock, g, o, db_lock) for g, o in outcomes]
        for g, (status, error, _, _) in outcomes:
            if status == "processed":
                res.processed += len(g["keys"])
            elif status == "ignored":
                res.ignored += len(g["keys"])
            else:
                res.failed += len(g["keys"])
                res.errors.append(f"{g['category']} {g['resource_id']}: {error}")
    res.api_calls += sum(getattr(c, "api_calls", 0) for c in clients.values())
    return res


def drain(settings: Settings, *, transport: httpx.BaseTransport | None = None, clock: Clock = SYSTEM_CLOCK,
          db_timeout: float = 30.0, client_factory: ClientFactory | None = None) -> DrainResult:
    """Move the spool into DuckDB, then process. A busy database is not an error: try again later."""
    res = DrainResult()
    try:
        res.moved_deliveries, res.new_events, res.duplicates = move_spool(settings, db_timeout=db_timeout)
        process_events(settings, transport=transport, clock=clock, db_timeout=db_timeout, result=res,
                       client_factory=client_factory)
    except DatabaseBusy:
        res.busy = True
    return res


def retry_failed(settings: Settings) -> int:
    """Give failed events a fresh set of attempts (the app's 'retry' button)."""
    with connect(settings.db_path) as con, transaction(con):
        n = value(con, "SELECT count(*) FROM webhook_events WHERE status = 'failed'")
        con.execute("UPDATE webhook_events SET attempts = 0, processed_at = NULL WHERE status = 'failed'")
    return int(n)


class _Problems:
    """Log each distinct problem once (one sentence, no traceback), and once when it clears.

    A receiver that cannot write its data dir meets the same error on every pass and every
    delivery; repeating it (with a traceback) each time buries everything else in the log.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[str, str] = {}

    def report(self, where: str, sentence: str, exc: BaseException | None = None) -> None:
        with self._lock:
            new = sentence not in self._current.values()  # the mover and the processor meet the same fault
            self._current[where] = sentence
        if not new:
            log.debug("webhook %s: still failing: %s", where, sentence)
        elif exc is not None and not isinstance(exc, LedgerlinkError):
            log.error("webhook %s failed: %s", where, sentence, exc_info=exc)  # a bug: its traceback, once
        else:
            log.error("webhook %s: %s (logged once, until it changes or clears)", where, sentence)

    def clear(self, where: str) -> None:
        with self._lock:
            was = self._current.pop(where, None)
        if was is not None:
            log.warning("webhook %s works again (after: %s)", where, was)


_problems = _Problems()


def _sentence(exc: BaseException) -> str:
    return str(as_storage_error(exc) or exc) or type(exc).__name__


class Worker:
    """The receiver process's background work, in two threads.

    The mover puts spooled deliveries into DuckDB `webhook_events` within a moment of their arrival
    (woken by each delivery, at most every `move_gap` seconds under a burst), whatever the processor
    is doing. The processor re-fetches what the events name from Xero, which can take minutes under
    Xero's rate limit; it is woken when the mover brings new events, and every `interval` seconds
    for retries. The two take turns on DuckDB (`db_lock`, around short transactions only).
    """

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None,
                 clock: Clock = SYSTEM_CLOCK, interval: float = 5.0, db_timeout: float = 2.0, move_gap: float = 1.0,
                 client_factory: ClientFactory | None = None) -> None:
        self.settings, self.transport, self.clock = settings, transport, clock
        self.interval, self.db_timeout, self.move_gap = interval, db_timeout, move_gap
        self.client_factory = client_factory
        self._wake = threading.Event()       # the processor
        self._move_wake = threading.Event()  # the mover
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._db_lock = threading.Lock()
        self.passes = 0
        self.moves = 0
        self.moved_deliveries = 0
        self.last: DrainResult | None = None
        self.last_move_error: str | None = None
        self._move_errors: list[str] = []
        self._thread = threading.Thread(target=self._run, name="webhook-worker", daemon=True)
        self._mover = threading.Thread(target=self._move_loop, name="webhook-mover", daemon=True)

    def start(self) -> "Worker":
        self._move_wake.set()  # anything spooled or pending before a restart
        self._wake.set()
        self._mover.start()
        self._thread.start()
        return self

    def wake(self) -> None:
        """A delivery was spooled (the receivers call this): move it now; the mover wakes the processor."""
        self._move_wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._move_wake.set()
        self._thread.join(timeout)
        self._mover.join(timeout)

    def _move_loop(self) -> None:
        spool: Spool | None = None
        while not self._stop.is_set():
            self._move_wake.wait(self.interval)
            self._move_wake.clear()
            if self._stop.is_set():
                break
            busy, moved = False, (0, 0, 0)
            error: str | None = None
            try:
                spool = spool or Spool.for_settings(self.settings)
                moved = move_spool(self.settings, db_timeout=self.db_timeout, db_lock=self._db_lock)
                spool.flush_notes()
                if moved[0]:
                    spool.checkpoint()  # off the request path: the receivers' commits stay short
                _problems.clear("mover")
            except DatabaseBusy:
                busy = True  # another process holds DuckDB: the spool keeps everything; try again later
            except Exception as exc:  # the loop must survive anything; one log line per distinct problem
                error = _sentence(exc)
                _problems.report("mover", error, exc)
            if moved[1]:
                self._wake.set()  # new events: process them
            with self._idle:
                self.moves += 1
                self.moved_deliveries += moved[0]
                self.last_move_error = error
                if error and error not in self._move_errors:
                    self._move_errors.append(error)
                self._idle.notify_all()
            # Under a burst, gather deliveries for a moment instead of moving one at a time; after a
            # busy database (its open already waited db_timeout), leave it alone for a second.
            self._stop.wait(min(self.interval, 1.0) if busy else self.move_gap)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            r = DrainResult()
            try:
                process_events(self.settings, transport=self.transport, clock=self.clock, db_timeout=self.db_timeout,
                               result=r, client_factory=self.client_factory, db_lock=self._db_lock)
                _problems.clear("worker")
                # Webhook updates reach the readers' copy at most a minute later (xero_core/snapshot.py).
                snapshot.publish_if_changed(self.settings, min_interval=snapshot.PUBLISH_EVERY)
            except DatabaseBusy:
                r.busy = True
            except Exception as exc:  # the loop must survive anything; one log line per distinct problem
                sentence = _sentence(exc)
                _problems.report("worker", sentence, exc)
                r.errors.append(sentence)
            with self._idle:
                r.errors.extend(self._move_errors)
                self._move_errors = []
                self.last = r
                self.passes += 1
                self._idle.notify_all()

    def wait_pass(self, after: int, timeout: float) -> bool:
        """Block until more than `after` processing passes have finished (tests and the CLI use this)."""
        with self._idle:
            return self._idle.wait_for(lambda: self.passes > after, timeout)

    def wait_moves(self, after: int, timeout: float) -> bool:
        """Block until more than `after` mover rounds have finished."""
        with self._idle:
            return self._idle.wait_for(lambda: self.moves > after, timeout)

    def wait_moved(self, deliveries: int, timeout: float) -> bool:
        """Block until the mover has moved at least `deliveries` deliveries in all."""
        with self._idle:
            return self._idle.wait_for(lambda: self.moved_deliveries >= deliveries, timeout)


# --------------------------------------------------------------------------- for the app


def webhook_status(settings: Settings) -> dict[str, Any]:
    spool = Spool.for_settings(settings)
    meta = spool.meta()

    def stamp(k: str) -> datetime | None:
        v = meta.get(k)
        return datetime.fromtimestamp(float(v), timezone.utc) if v else None

    out: dict[str, Any] = {
        "key_configured": bool(get_webhook_key(settings)),
        "key_mask": webhook_key_mask(settings),
        "last_event_received_at": stamp("last_event_received_at"),
        "last_verification_failure_at": stamp("last_verification_failure_at"),
        "last_verification_failure": meta.get("last_verification_failure"),
        "intent_to_receive_passed": meta.get("intent_to_receive_at") is not None,
        "intent_to_receive_at": stamp("intent_to_receive_at"),
        "deliveries_verified": int(meta.get("count_verified", 0)),
        "deliveries_rejected": int(meta.get("count_rejected", 0)),
        # Wrongly signed Intent to Receive probes, refused as Xero expects (not failures).
        "intent_probes_refused": int(meta.get("count_probe_refused", 0)),
        "last_intent_probe_refused_at": stamp("last_probe_refused_at"),
        "deliveries_malformed": int(meta.get("count_malformed", 0)),
        "spool_backlog": spool.backlog(),
        "events": None,
    }
    try:
        with connect(settings.db_path, read_only=True, timeout=2.0) as con:
            out["events"] = dict(con.execute("SELECT status, count(*) FROM webhook_events GROUP BY status").fetchall())
    except DatabaseBusy:
        pass  # the app shows the spool counters; event counts come back when the sync finishes
    return out


def recent_events(settings: Settings, limit: int = 50) -> list[Row]:
    with connect(settings.db_path, read_only=True) as con:
        return rows(
            con,
            "SELECT event_key, tenant_id, event_category, event_type, resource_id, event_date_utc, received_at, "
            "status, attempts, error, processed_at FROM webhook_events ORDER BY received_at DESC, event_key LIMIT ?",
            [int(limit)],
        )
