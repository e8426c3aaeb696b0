"""Chasing that chases: each open campaign's reminders, planned by its cadence and sent by email.

The life of a campaign (docs/internals.md, "Chase campaigns"): the xpm step opens it when a job
enters a mapped "needs documents" state and completes it when the job leaves. Between the two this
module, run by the `chase` step of each Practice Manager sync (the daily cycle), by the scheduler's
sending-hours tick and by `python -m xero_core xpm chase`:

1. stops campaigns whose client's documents arrived (a document recorded for the client after the
   campaign opened, or was last resumed): status `stopped`, the reason kept;
2. skips the unsent reminders of campaigns that are no longer open (completed, paused, stopped);
3. plans: for each open campaign, the latest cadence slot that has come (missed slots are not sent
   one after another) becomes an outbox row, rendered from the practice's templates — or a
   `skipped` row saying why (no email address, no Ledgerlink client);
4. sends each due row with the exactly-once protocol below.

Cadence: days after the campaign opened ("0, 3, 7, 14, then every 7": at once, 3, 7 and 14 days,
then weekly), counted in calendar days in the practice's time zone at the opening's time of day;
a reminder that would fall on a Saturday or Sunday, or in quiet hours (outside the practice's
sending hours, 09:00-17:00 by default), moves to the start of the next sending window.

Exactly once: a reminder is a row, rendered and given its Message-ID, before any attempt. Sending
claims it (`sending`, committed), records `handed_at` just before the message's final "." goes to
the server (committed), and records `sent` after the server's 250. A process that dies leaves its
claims in `sending`; the next run (`reconcile`) puts one without `handed_at` back to `due` (the
server cannot have accepted it) and marks one with `handed_at` `unconfirmed` (it was most likely
delivered: never resent automatically; "Send again" resends it, with the same Message-ID so the
receiving side can tell). So no reminder is ever sent twice by a restart, and none is silently
lost: the only one a crash can leave undecided is shown as such.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time as _time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
import email.policy
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import psutil
from duckdb import DuckDBPyConnection

from .. import db, redaction
from ..clock import SYSTEM_CLOCK, Clock
from ..db import connect, transaction
from ..errors import LedgerlinkError
from ..settings import Settings
from ..vault import Vault
from . import campaigns as CMP
from . import mailer
from .sql import Row, rows, value

log = logging.getLogger(__name__)
UTC = timezone.utc

DEFAULT_CADENCE = "0, 3, 7, 14, then every 7"
DEFAULT_SEND_FROM, DEFAULT_SEND_UNTIL = "09:00", "17:00"
DEFAULT_NEEDED = "the documents we asked for"
DEFAULT_SUBJECT = "{practice_name}: documents needed for {job_name}"
DEFAULT_BODY = """Dear {client_name},

To finish {job_name} ({job_id}) we still need {needed}.

Please reply to this email ({reply_to}) with them, or send them the way you usually do.
If you have already sent them, thank you, and please ignore this reminder.

Kind regards,
{practice_name}
"""
FIELDS = ("client_name", "job_name", "job_id", "needed", "reply_to", "practice_name")
RETRY_AFTER = (timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4), timedelta(hours=12))
MAX_ATTEMPTS = len(RETRY_AFTER) + 1
ACTIVE = ("open", "paused", "stopped")  # campaigns that still cover their job (xpm does not reopen them)
STATES = ("due", "sending", "sent", "failed", "bounced", "skipped", "unconfirmed")
VAULT_NAME = "smtp"
_EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")


class ChaseError(LedgerlinkError):
    """Bad input or settings for chasing: one sentence for the admin."""


# --------------------------------------------------------------------------- cadence (pure)


@dataclass(frozen=True)
class Cadence:
    offsets: tuple[int, ...]
    every: int | None  # then every N days; None: stop after the last offset

    def days(self, k: int) -> int | None:
        """Days after opening of slot k (0-based); None when the cadence has no slot k."""
        if k < len(self.offsets):
            return self.offsets[k]
        if self.every is None:
            return None
        return self.offsets[-1] + self.every * (k - len(self.offsets) + 1)

    def text(self) -> str:
        return ", ".join(str(d) for d in self.offsets) + (f", then every {self.every}" if self.every else "")

    def words(self) -> str:
        parts = ["at once" if d == 0 else f"{d}" for d in self.offsets]
        head = parts[0] + ((", then " + ", ".join(parts[1:]) + " days") if len(parts) > 1 else "")
        tail = {None: "", 7: ", then weekly"}.get(self.every, f", then every {self.every} days")
        return head + tail


def parse_cadence(text: str | None) -> Cadence:
    """"0, 3, 7, 14, then every 7" (also "at once", "weekly", "+7"). ChaseError says what is wrong."""
    raw = (text or "").strip() or DEFAULT_CADENCE
    offsets: list[int] = []
    every: int | None = None
    tokens = [t.strip().lower() for t in re.split(r"[,;]| and ", raw) if t.strip()]
    for tok in tokens:
        tok = re.sub(r"^then\s+", "", tok)
        tok = re.sub(r"\s*days?$", "", tok)
        m = re.fullmatch(r"(?:every\s+|\+\s*)(\d+)", tok)
        if tok == "weekly":
            every = 7
        elif m:
            every = int(m.group(1))
        elif tok in ("at once", "now", "immediately"):
            offsets.append(0)
        elif tok.isdigit():
            if every is not None:
                raise ChaseError(f"Cadence {raw!r}: the repeat ('then every N') comes last.")
            offsets.append(int(tok))
        else:
            raise ChaseError(f"Cadence {raw!r}: {tok!r} is not a number of days; write e.g. "
                             f"{DEFAULT_CADENCE!r} (days after the campaign opens, then a repeat).")
    if not offsets:
        raise ChaseError(f"Cadence {raw!r} has no reminder: start with 0 (at once) or a number of days.")
    if any(b <= a for a, b in zip(offsets, offsets[1:])) or offsets[-1] > 365:
        raise ChaseError(f"Cadence {raw!r}: the days must go up, each from 0 to 365.")
    if every is not None and not 1 <= every <= 90:
        raise ChaseError(f"Cadence {raw!r}: the repeat must be every 1 to 90 days.")
    return Cadence(tuple(offsets), every)


# --------------------------------------------------------------------------- sending hours (pure)


def _hhmm(name: str, raw: str | None, default: str) -> time | None:
    """HH:MM -> time; "24:00" -> None (the end of the day)."""
    v = (raw or default).strip()
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", v)
    if not m or not (0 <= int(m.group(1)) <= 24 and 0 <= int(m.group(2)) < 60) or (int(m.group(1)) == 24 and m.group(2) != "00"):
        raise ChaseError(f"{name} {v!r} must be a time as HH:MM, e.g. {default}.")
    return None if int(m.group(1)) == 24 else time(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True)
class Window:
    """Sending hours on business days (Monday to Friday) in `tz`; outside them is quiet."""

    start: time = time(9, 0)
    end: time | None = time(17, 0)  # None: midnight at the day's end
    tz: str = "Australia/Sydney"

    @classmethod
    def of(cls, send_from: str | None, send_until: str | None, tz: str) -> "Window":
        start = _hhmm("Sending from", send_from, DEFAULT_SEND_FROM) or time(0, 0)
        end = _hhmm("Sending until", send_until, DEFAULT_SEND_UNTIL)
        if end is not None and end <= start:
            raise ChaseError(f"Sending hours {start:%H:%M}-{end:%H:%M}: the end must come after the start "
                             "(quiet hours are the rest of the day).")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # unknown, malformed, or a folder ("Australia")
            raise ChaseError(f"Time zone {tz!r} is not an IANA time zone, e.g. Australia/Sydney.") from None
        return cls(start, end, tz)

    def label(self) -> str:
        end = "24:00" if self.end is None else f"{self.end:%H:%M}"
        return f"{self.start:%H:%M}-{end} Monday to Friday ({self.tz})"

    def _bounds(self, d: date) -> tuple[datetime, datetime]:
        lo = datetime.combine(d, self.start)
        hi = datetime.combine(d + timedelta(days=1), time(0)) if self.end is None else datetime.combine(d, self.end)
        return lo, hi

    def first_moment(self, local: datetime) -> datetime:
        """The first naive local moment at or after `local` inside the sending hours."""
        cur = local
        for _ in range(10):
            if cur.weekday() < 5:
                lo, hi = self._bounds(cur.date())
                if cur < lo:
                    return lo
                if cur < hi:
                    return cur
            cur = datetime.combine(cur.date() + timedelta(days=1), time(0))
        raise AssertionError("a week always has a business day")  # pragma: no cover

    def to_utc(self, naive_local: datetime) -> datetime:
        return naive_local.replace(tzinfo=ZoneInfo(self.tz)).astimezone(UTC)

    def next_open(self, at: datetime) -> datetime:
        """`at` (aware) if it is inside the sending hours, else when they next open (aware UTC)."""
        local = at.astimezone(ZoneInfo(self.tz)).replace(tzinfo=None)
        first = self.first_moment(local)
        return at.astimezone(UTC) if first == local else self.to_utc(first)

    def is_open(self, at: datetime) -> bool:
        return self.next_open(at) == at.astimezone(UTC)


def slot_time(opened_at: datetime, days: int, window: Window) -> datetime:
    """When the reminder `days` after `opened_at` goes: the same local time of day, `days` calendar
    days later in the practice's time zone (so a DST change keeps it at 10:00, not 09:00 or 11:00),
    moved to the next sending window when it falls on a weekend or in quiet hours."""
    local = opened_at.astimezone(ZoneInfo(window.tz)).replace(tzinfo=None) + timedelta(days=days)
    # A wall time that does not exist (the hour a DST start skips) is read with the offset before the
    # change and so lands an hour later: still the first moment at or after it that exists.
    return window.next_open(window.to_utc(local))


def schedule(opened_at: datetime, cadence: Cadence, window: Window, count: int) -> list[datetime]:
    out: list[datetime] = []
    for k in range(count):
        d = cadence.days(k)
        if d is None:
            break
        out.append(slot_time(opened_at, d, window))
    return out


def latest_slot(opened_at: datetime, cadence: Cadence, window: Window, after: int, now: datetime) -> int | None:
    """The highest slot index > `after` whose time has come (<= now), or None."""
    found, k = None, after + 1
    while True:
        d = cadence.days(k)
        if d is None or slot_time(opened_at, d, window) > now:
            return found
        found, k = k, k + 1


# --------------------------------------------------------------------------- templates (pure)


_FIELD = re.compile(r"\{([^{}]*)\}")


def check_template(text: str, what: str) -> str:
    for name in _FIELD.findall(text or ""):
        if name not in FIELDS:
            raise ChaseError(f"The {what} uses {{{name}}}, which is not a field: use "
                             + ", ".join("{" + f + "}" for f in FIELDS) + ".")
    return text


def render(text: str, values: dict[str, object]) -> str:
    """`{field}` -> its value (only the known fields; nothing else of Python's format language)."""
    return _FIELD.sub(lambda m: str(values.get(m.group(1), m.group(0)) or ""), text or "")


def addresses(raw: str | None) -> tuple[list[str], str | None]:
    """A client's email field -> (addresses, why not) ("a@x.example; b@y.example" is two)."""
    parts = [p.strip() for p in re.split(r"[;,]", raw or "") if p.strip()]
    if not parts:
        return [], "the client has no email address"
    out: list[str] = []
    for p in parts:
        addr = parseaddr(p)[1] or p
        if not _EMAIL.match(addr) or not addr.isascii():
            return [], f"the client's email address {p!r} is not one Ledgerlink can send to"
        out.append(addr)
    return out, None


# SMTP line ends; headers folded only past SMTP's own limit, so a subject reads back as written.
_POLICY = email.policy.SMTP.clone(max_line_length=998)


def build_message(sender: str, to: list[str], reply_to: str | None, subject: str, body: str, message_id: str,
                  when: datetime) -> bytes:
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = " ".join(subject.split())  # a name with a line break cannot add a header
    msg["Date"] = formatdate(when.timestamp(), usegmt=True)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body)
    return msg.as_bytes()


# --------------------------------------------------------------------------- configuration (DB)


@dataclass
class Config:
    tenant_id: str
    subject: str = DEFAULT_SUBJECT
    body: str = DEFAULT_BODY
    reply_to: str | None = None
    send_from: str = DEFAULT_SEND_FROM
    send_until: str = DEFAULT_SEND_UNTIL
    timezone: str = "Australia/Sydney"
    practice_name: str = ""

    @property
    def window(self) -> Window:
        return Window.of(self.send_from, self.send_until, self.timezone)


def _config(con: DuckDBPyConnection, settings: Settings, tenant_id: str) -> Config:
    row = con.execute("SELECT subject_template, body_template, reply_to, send_from, send_until, timezone "
                      "FROM chase_settings WHERE tenant_id = ?", [tenant_id]).fetchone()
    name = con.execute("SELECT tenant_name FROM connections WHERE tenant_id = ?", [tenant_id]).fetchone()
    c = Config(tenant_id, timezone=settings.timezone, practice_name=(name[0] if name and name[0] else "Your accountant"))
    if row:
        c.subject = row[0] or c.subject
        c.body = row[1] or c.body
        c.reply_to = row[2] or None
        c.send_from = row[3] or c.send_from
        c.send_until = row[4] or c.send_until
        c.timezone = row[5] or c.timezone
    return c


def get_config(settings: Settings, tenant_id: str) -> dict[str, Any]:
    with connect(settings.db_path, read_only=True) as con:
        c = _config(con, settings, tenant_id)
    d = c.__dict__.copy()
    d["reply_to_effective"] = c.reply_to or parseaddr(settings.smtp.sender or "")[1] or None
    d["window"] = c.window.label()
    return d


def set_config(settings: Settings, tenant_id: str, *, subject: str | None = None, body: str | None = None,
               reply_to: str | None = None, send_from: str | None = None, send_until: str | None = None,
               timezone_name: str | None = None, clock: Clock = SYSTEM_CLOCK) -> dict[str, Any]:
    """Save the practice's templates, reply-to and sending hours (None keeps a value; "" resets it)."""
    with connect(settings.db_path) as con, transaction(con):
        cur = _config(con, settings, tenant_id)
        new = Config(tenant_id,
                     subject=check_template(subject, "subject") if subject else (DEFAULT_SUBJECT if subject == "" else cur.subject),
                     body=check_template(body, "message") if body else (DEFAULT_BODY if body == "" else cur.body),
                     reply_to=(reply_to.strip() or None) if reply_to is not None else cur.reply_to,
                     send_from=send_from or cur.send_from, send_until=send_until or cur.send_until,
                     timezone=timezone_name or cur.timezone)
        if new.reply_to and addresses(new.reply_to)[1]:
            raise ChaseError(f"Reply-to {new.reply_to!r} is not an email address.")
        new.window  # noqa: B018 (checks the hours and the zone)
        con.execute("INSERT OR REPLACE INTO chase_settings (tenant_id, subject_template, body_template, reply_to, "
                    "send_from, send_until, timezone, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [tenant_id, new.subject, new.body, new.reply_to, new.send_from, new.send_until,
                     None if new.timezone == settings.timezone else new.timezone, clock.now()])
    return get_config(settings, tenant_id)


def mapping_rows(settings: Settings, tenant_id: str) -> list[dict[str, str]]:
    """Each "needs documents" state with its cadence (text and words) and what is needed."""
    with connect(settings.db_path, read_only=True) as con:
        found = con.execute("SELECT state, cadence, needed FROM xpm_status_mappings WHERE tenant_id = ? AND needs_documents "
                            "ORDER BY lower(state)", [tenant_id]).fetchall()
    out: list[dict[str, str]] = []
    for state, cadence, needed in found:
        c = parse_cadence(cadence)
        out.append({"state": state, "cadence": c.text(), "cadence_words": c.words(), "needed": needed or DEFAULT_NEEDED})
    return out


def set_cadence(settings: Settings, tenant_id: str, state: str, cadence: str | None = None,
                needed: str | None = None) -> dict[str, str]:
    """A mapped state's cadence and "what is needed" (None keeps; "" resets to the default)."""
    c = parse_cadence(cadence) if cadence else None
    with connect(settings.db_path) as con, transaction(con):
        row = con.execute("SELECT state, cadence, needed FROM xpm_status_mappings WHERE tenant_id = ? "
                          "AND lower(state) = lower(?) AND needs_documents", [tenant_id, " ".join(state.split())]).fetchone()
        if row is None:
            raise ChaseError(f"{state!r} is not a mapped 'needs documents' state of this practice: map it first.")
        new_c = (c.text() if c else None) if cadence is not None else row[1]
        new_n = ((needed or "").strip() or None) if needed is not None else row[2]
        con.execute("UPDATE xpm_status_mappings SET cadence = ?, needed = ? WHERE tenant_id = ? AND state = ?",
                    [new_c, new_n, tenant_id, row[0]])
    return next(r for r in mapping_rows(settings, tenant_id) if r["state"] == row[0])


# --------------------------------------------------------------------------- SMTP password (vault)


def _vault(settings: Settings) -> Vault:
    return Vault(settings)


def set_smtp_password(settings: Settings, password: str | None) -> None:
    """Keep SMTP_PASSWORD in the encrypted vault (it wins over the environment); None/"" removes it."""
    v = _vault(settings)
    if not password:
        v.delete(VAULT_NAME)
        return
    redaction.register(password)
    v.write(VAULT_NAME, {"password": password})


def smtp_password(settings: Settings) -> tuple[str | None, str]:
    """(password, where it came from: 'vault' | 'SMTP_PASSWORD' | '')."""
    v = _vault(settings)
    if v.exists(VAULT_NAME):
        pw: str | None = (v.read(VAULT_NAME) or {}).get("password")
        if pw:
            redaction.register(pw)
            return pw, "vault"
    return settings.smtp.password, ("SMTP_PASSWORD" if settings.smtp.password else "")


def smtp_status(settings: Settings) -> dict[str, Any]:
    """What the page shows about sending (never the password)."""
    s = settings.smtp
    pw, source = smtp_password(settings)
    return {"host": s.host, "port": s.port, "security": s.security, "username": s.username, "sender": s.sender,
            "password": f"set ({source})" if pw else "not set", "problem": s.problem}


# --------------------------------------------------------------------------- planning (DB)


def _stop_where_documents_arrived(con: DuckDBPyConnection, now: datetime, tenant_id: str | None) -> int:
    found = con.execute(
        "SELECT c.campaign_id, d.file_name, d.created_at FROM chase_campaigns c "
        "JOIN client_documents d ON d.client_id = c.client_id "
        "AND d.created_at > coalesce(c.resumed_at, c.opened_at) "
        "WHERE c.status = 'open' AND (? IS NULL OR c.tenant_id = ?) "
        "QUALIFY row_number() OVER (PARTITION BY c.campaign_id ORDER BY d.created_at, d.document_id) = 1",
        [tenant_id, tenant_id]).fetchall()
    for cid, fname, at in found:
        con.execute("UPDATE chase_campaigns SET status = 'stopped', stopped_at = ?, stop_reason = ?, next_reminder_at = NULL "
                    "WHERE campaign_id = ? AND status = 'open'",
                    [now, f"documents arrived: {fname} recorded {at.astimezone(UTC):%Y-%m-%d %H:%M} UTC", cid])
    return len(found)


def _skip_inactive(con: DuckDBPyConnection, now: datetime, tenant_id: str | None) -> int:
    found = con.execute(
        "SELECT o.reminder_id, c.status, coalesce(c.completion_reason, c.stop_reason) FROM chase_outbox o "
        "JOIN chase_campaigns c USING (campaign_id) WHERE o.state IN ('due', 'failed') AND o.next_try_at IS NOT NULL "
        "AND c.status <> 'open' AND (? IS NULL OR o.tenant_id = ?)", [tenant_id, tenant_id]).fetchall()
    for rid, status, reason in found:
        why = {"paused": "the campaign was paused", "stopped": f"the campaign stopped: {reason}"}.get(
            status, f"the campaign ended: {reason}")
        con.execute("UPDATE chase_outbox SET state = 'skipped', why = ?, next_try_at = NULL, updated_at = ? "
                    "WHERE reminder_id = ?", [why, now, rid])
    return len(found)


def _mapping(con: DuckDBPyConnection, tenant_id: str) -> dict[str, tuple[Cadence, str]]:
    out: dict[str, tuple[Cadence, str]] = {}
    for state, cadence, needed in con.execute(
            "SELECT state, cadence, needed FROM xpm_status_mappings WHERE tenant_id = ? AND needs_documents",
            [tenant_id]).fetchall():
        try:
            c = parse_cadence(cadence)
        except ChaseError:
            c = parse_cadence(None)
        out[CMP.norm_state(state)] = (c, needed or DEFAULT_NEEDED)
    return out


def _campaign_view(con: DuckDBPyConnection, campaign_id: str) -> Row | None:
    found = rows(con,
                 "SELECT c.*, coalesce(k.name, j.client_name) AS client_name, k.email AS client_email, "
                 "j.name AS job_name FROM chase_campaigns c LEFT JOIN clients k ON k.client_id = c.client_id "
                 "LEFT JOIN xpm_jobs j ON j.tenant_id = c.tenant_id AND j.job_id = c.job_id WHERE c.campaign_id = ?",
                 [campaign_id])
    return found[0] if found else None


def _new_row(con: DuckDBPyConnection, settings: Settings, cfg: Config, camp: Row, needed: str, seq: int, due_at: datetime,
             now: datetime, *, forced: bool = False) -> str:
    rid = "rem_" + uuid.uuid4().hex[:20]
    domain = (parseaddr(settings.smtp.sender or "")[1].rpartition("@")[2] or "ledgerlink.invalid").lower()
    sender_addr = parseaddr(settings.smtp.sender or "")[1] or None
    reply_to = cfg.reply_to or sender_addr
    values: dict[str, object] = {
        "client_name": camp.get("client_name") or "", "job_name": camp.get("job_name") or camp["job_id"],
        "job_id": camp["job_id"], "needed": needed, "reply_to": reply_to or "", "practice_name": cfg.practice_name}
    to, why = addresses(camp.get("client_email"))
    if camp.get("client_id") is None:
        to, why = [], "the Practice Manager client is not linked to a Ledgerlink client"
    elif to and not forced:
        bounced = value(con, "SELECT max(updated_at) FROM chase_outbox WHERE campaign_id = ? AND state = 'bounced' "
                             "AND address = ?", [camp["campaign_id"], ", ".join(to)])
        if bounced is not None:
            to, why = [], (f"{', '.join(to)} bounced on {bounced.astimezone(UTC):%Y-%m-%d}: correct the client's email "
                           "address (Clients page), or use Send now to try it again")
    state = "due" if not why else "skipped"
    con.execute(
        "INSERT INTO chase_outbox (reminder_id, campaign_id, tenant_id, client_id, seq, address, subject, body, reply_to, "
        "message_id, state, why, attempts, due_at, next_try_at, forced, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)",
        [rid, camp["campaign_id"], camp["tenant_id"], camp.get("client_id"), seq, ", ".join(to) or camp.get("client_email"),
         render(cfg.subject, values), render(cfg.body, values), reply_to, f"<{rid}.chase@{domain}>", state, why,
         due_at, due_at if state == "due" else None, forced, now, now])
    return rid


def plan(con: DuckDBPyConnection, settings: Settings, now: datetime, tenant_id: str | None = None) -> dict[str, int]:
    """Steps 1-3 of the module doc, in the caller's transaction. Counts of what changed."""
    out = {"stopped": _stop_where_documents_arrived(con, now, tenant_id), "skipped_inactive": 0, "planned": 0,
           "skipped_no_address": 0}
    out["skipped_inactive"] = _skip_inactive(con, now, tenant_id)
    camps = rows(con, "SELECT campaign_id FROM chase_campaigns WHERE status = 'open' AND (? IS NULL OR tenant_id = ?) "
                       "ORDER BY opened_at, campaign_id", [tenant_id, tenant_id])
    cfgs: dict[str, Config] = {}
    maps: dict[str, dict[str, tuple[Cadence, str]]] = {}
    for (cid,) in [(c["campaign_id"],) for c in camps]:
        camp = _campaign_or_fail(con, cid)  # open a moment ago, in this transaction
        t = camp["tenant_id"]
        if t not in cfgs:
            cfgs[t], maps[t] = _config(con, settings, t), _mapping(con, t)
        cfg, mapping = cfgs[t], maps[t]
        cadence, needed = mapping.get(CMP.norm_state(camp.get("job_state")), (parse_cadence(None), DEFAULT_NEEDED))
        window = cfg.window
        last_seq = value(con, "SELECT max(seq) FROM chase_outbox WHERE campaign_id = ? AND seq >= 0", [cid])
        last: int = -1 if last_seq is None else last_seq
        k = latest_slot(camp["opened_at"], cadence, window, last, now)
        days = cadence.days(k) if k is not None else None
        if k is not None and days is not None:  # latest_slot gives only slots the cadence has
            rid = _new_row(con, settings, cfg, camp, needed, k, slot_time(camp["opened_at"], days, window), now)
            state = value(con, "SELECT state FROM chase_outbox WHERE reminder_id = ?", [rid])
            out["planned" if state == "due" else "skipped_no_address"] += 1
            last = k
        nd = cadence.days(last + 1)
        nxt = slot_time(camp["opened_at"], nd, window) if nd is not None else None
        if (camp.get("cadence"), camp.get("next_reminder_at")) != (cadence.text(), nxt):  # a quiet tick writes nothing
            con.execute("UPDATE chase_campaigns SET cadence = ?, next_reminder_at = ? WHERE campaign_id = ?",
                        [cadence.text(), nxt, cid])
    return out


# --------------------------------------------------------------------------- sending (exactly once)


_inflight: set[str] = set()
_inflight_lock = threading.Lock()


def _me() -> str:
    try:
        started = psutil.Process().create_time()
    except (psutil.Error, OSError, NotImplementedError):  # an odd platform still gets a usable id
        started = 0.0
    return f"{os.getpid()}:{started:.3f}"


def _claimer_alive(claimed_by: str | None) -> bool:
    if not claimed_by:
        return False
    try:
        pid_s, started_s = claimed_by.split(":", 1)
        pid, started = int(pid_s), float(started_s)
    except ValueError:
        return False
    if pid == os.getpid():
        return claimed_by == _me()  # this process: in flight only if a thread here holds it (checked by caller)
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - started) < 0.01 and bool(p.status() != psutil.STATUS_ZOMBIE)
    except (psutil.Error, OSError, NotImplementedError):  # gone, not ours to see, or an odd platform
        return False


def reconcile(con: DuckDBPyConnection, now: datetime) -> dict[str, int]:
    """Claims left in `sending` by a process that is gone: back to `due` if the message never
    reached its final byte, `unconfirmed` if it did (see the module doc)."""
    out = {"requeued": 0, "unconfirmed": 0}
    claims = con.execute("SELECT reminder_id, claimed_by, handed_at FROM chase_outbox WHERE state = 'sending'").fetchall()
    # Which claims of this process are in flight, read after the query: DuckDB takes the snapshot at
    # the query, not at BEGIN, and a thread here marks a reminder in flight before claiming it. Read
    # before, a claim another thread here committed in between looked abandoned: it went back to
    # `due` while that thread sent it, and this run sent it a second time.
    with _inflight_lock:
        mine = set(_inflight)
    for rid, claimed_by, handed in claims:
        if rid in mine or (_claimer_alive(claimed_by) and not claimed_by == _me()):
            continue
        if handed is None:
            con.execute("UPDATE chase_outbox SET state = 'due', next_try_at = ?, why = ?, updated_at = ? "
                        "WHERE reminder_id = ? AND state = 'sending'",
                        [now, "the sending process stopped before the message was handed to the server: sending it again",
                         now, rid])
            out["requeued"] += 1
        else:
            con.execute("UPDATE chase_outbox SET state = 'unconfirmed', next_try_at = NULL, why = ?, updated_at = ? "
                        "WHERE reminder_id = ? AND state = 'sending'",
                        ["the sending process stopped after handing the message to the SMTP server and before its "
                         "answer was recorded: it was most likely delivered, so it is not sent again automatically "
                         "(Send again resends it with the same Message-ID)", now, rid])
            out["unconfirmed"] += 1
    return out


@dataclass
class ChaseResult:
    planned: int = 0
    sent: int = 0
    failed: int = 0
    bounced: int = 0
    skipped: int = 0
    unconfirmed: int = 0
    waiting: int = 0  # due but held by quiet hours or a later retry time
    stopped: int = 0  # campaigns stopped because documents arrived
    requeued: int = 0
    error: str | None = None  # why sending stopped (settings, server): one sentence
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def summary(self) -> str:
        parts = [f"{self.sent} sent"]
        for k in ("planned", "failed", "bounced", "skipped", "unconfirmed", "waiting", "stopped"):
            if getattr(self, k):
                parts.append(f"{getattr(self, k)} {k}")
        return ", ".join(parts) + (f"; {self.error}" if self.error else "")


def _sendable(con: DuckDBPyConnection, now: datetime, tenant_id: str | None, only: list[str] | None,
              settings: Settings) -> tuple[list[Row], int]:
    due = rows(con,
                 "SELECT o.reminder_id, o.tenant_id, o.forced, o.next_try_at FROM chase_outbox o "
                 "JOIN chase_campaigns c USING (campaign_id) WHERE o.state IN ('due', 'failed') "
                 "AND o.next_try_at IS NOT NULL AND c.status = 'open' AND (? IS NULL OR o.tenant_id = ?) "
                 "ORDER BY o.next_try_at, o.reminder_id", [tenant_id, tenant_id])
    if only is not None:
        due = [r for r in due if r["reminder_id"] in only]
    out: list[Row] = []
    waiting = 0
    windows: dict[str, Window] = {}
    for r in due:
        t = r["tenant_id"]
        if t not in windows:
            windows[t] = _config(con, settings, t).window
        if r["next_try_at"] <= now and (r["forced"] or windows[t].is_open(now)):
            out.append(r)
        else:
            waiting += 1
    return out, waiting


def _claim(settings: Settings, rid: str, now: datetime, me: str) -> Row | None:
    try:
        return _claim_once(settings, rid, now, me)
    except duckdb.TransactionException as exc:
        if "conflict" in str(exc).lower():
            return None  # another sender claimed it at the same moment: it is theirs
        raise


def _claim_once(settings: Settings, rid: str, now: datetime, me: str) -> Row | None:
    with connect(settings.db_path) as con, transaction(con):
        got = con.execute(
            "UPDATE chase_outbox SET state = 'sending', attempts = attempts + 1, claimed_by = ?, claimed_at = ?, "
            "handed_at = NULL, updated_at = ? WHERE reminder_id = ? AND state IN ('due', 'failed') "
            "AND campaign_id IN (SELECT campaign_id FROM chase_campaigns WHERE status = 'open') RETURNING reminder_id",
            [me, now, now, rid]).fetchall()
        if not got:
            return None
        return rows(con, "SELECT * FROM chase_outbox WHERE reminder_id = ?", [rid])[0]


def _record(settings: Settings, rid: str, me: str, sets: dict[str, object]) -> None:
    cols = ", ".join(f"{k} = ?" for k in sets)
    with connect(settings.db_path) as con:
        con.execute(f"UPDATE chase_outbox SET {cols} WHERE reminder_id = ? AND claimed_by = ? AND state = 'sending'",
                    [*sets.values(), rid, me])


def _after_failure(row: Row, outcome: mailer.Outcome, now: datetime, window: Window) -> dict[str, object]:
    attempts = int(row["attempts"])
    if outcome.retry and attempts < MAX_ATTEMPTS:
        nxt = now + RETRY_AFTER[attempts - 1]
        nxt = nxt if row["forced"] else window.next_open(nxt)
        return {"state": "failed", "why": f"attempt {attempts} of {MAX_ATTEMPTS}: {outcome.why}", "next_try_at": nxt}
    why = outcome.why if not outcome.retry else f"gave up after {attempts} attempts: {outcome.why}"
    return {"state": "failed", "why": why, "next_try_at": None}


def send_one(settings: Settings, row: Row, password: str | None, me: str, clock: Clock,
             window: Window) -> mailer.Outcome:
    sender = settings.smtp.sender
    if not sender:  # read_smtp's `problem` says so, and run_chase stops on it before sending
        raise ChaseError(settings.smtp.problem or "CHASE_FROM is not set.")
    rid = row["reminder_id"]
    to = [a.strip() for a in (row["address"] or "").split(",") if a.strip()]
    message = build_message(sender, to, row["reply_to"], row["subject"] or "", row["body"] or "",
                            row["message_id"], clock.now())
    outcome = mailer.send(settings.smtp, password, parseaddr(sender)[1], to, message,
                          on_handed=lambda: _record(settings, rid, me, {"handed_at": clock.now()}))
    now = clock.now()
    sets: dict[str, object]
    if outcome.state == "sent":
        sets = {"state": "sent", "sent_at": now, "why": None, "next_try_at": None, "smtp_reply": outcome.reply}
    elif outcome.state in ("bounced", "unconfirmed"):
        sets = {"state": outcome.state, "why": outcome.why, "next_try_at": None, "smtp_reply": outcome.reply}
    else:
        sets = {**_after_failure(row, outcome, now, window), "smtp_reply": outcome.reply}
    sets["updated_at"] = now
    _record(settings, rid, me, sets)
    return outcome


def run_chase(settings: Settings, *, tenant_id: str | None = None, clock: Clock = SYSTEM_CLOCK,
              only: list[str] | None = None) -> ChaseResult:
    """Reconcile, plan and send every reminder due now (of one Practice Manager tenant, or all).
    `only`: just these reminder ids ("send now")."""
    # Three committed writes a reminder on one open database (db.shared: each still its own
    # transaction), not three opens of the file.
    with db.shared(settings.db_path):
        return _run_chase(settings, tenant_id, clock, only)


def _run_chase(settings: Settings, tenant_id: str | None, clock: Clock, only: list[str] | None) -> ChaseResult:
    res = ChaseResult()
    now = clock.now()
    for attempt in range(8):
        try:
            with connect(settings.db_path) as con, transaction(con):
                rec = reconcile(con, now)
                p = plan(con, settings, now, tenant_id)
                todo, res.waiting = _sendable(con, now, tenant_id, only, settings)
                windows = {t: _config(con, settings, t).window for t in {r["tenant_id"] for r in todo}}
            break
        except (duckdb.TransactionException, duckdb.ConstraintException) as exc:
            # Another sender planned the same campaigns at the same moment (DuckDB's optimistic
            # concurrency, or the outbox's unique (campaign, slot)): its plan is committed, so
            # planning again finds it done.
            if isinstance(exc, duckdb.TransactionException) and "conflict" not in str(exc).lower() or attempt == 7:
                raise
            _time.sleep(0.05 * 2 ** attempt)  # the other sender's planning transaction is still open: let it end
    res.requeued, res.unconfirmed = rec["requeued"], rec["unconfirmed"]
    res.planned, res.stopped, res.skipped = p["planned"], p["stopped"], p["skipped_no_address"] + p["skipped_inactive"]
    if not todo:
        return res
    if settings.smtp.problem:
        res.error = f"Chasing is on but reminders cannot be sent: {settings.smtp.problem}"
        res.waiting += len(todo)
        return res
    password, _ = smtp_password(settings)
    if settings.smtp.username and not password:
        res.error = ("Chasing is on but reminders cannot be sent: SMTP_USERNAME is set without a password: set "
                     "SMTP_PASSWORD, or store it on the Practice Manager page.")
        res.waiting += len(todo)
        return res
    me = _me()
    for i, r in enumerate(todo):
        with _inflight_lock:
            _inflight.add(r["reminder_id"])
        try:
            row = _claim(settings, r["reminder_id"], clock.now(), me)
            if row is None:
                continue  # another process took it, or its campaign stopped meanwhile
            outcome = send_one(settings, row, password, me, clock, windows[r["tenant_id"]])
        finally:
            with _inflight_lock:
                _inflight.discard(r["reminder_id"])
        setattr(res, outcome.state, getattr(res, outcome.state) + 1)
        if outcome.why:
            res.messages.append(f"{row['address'] or row['reminder_id']}: {outcome.why}")
        if outcome.state == "failed" and outcome.server_problem:
            why = outcome.why or "the SMTP server failed"
            res.error = why[0].upper() + why[1:]
            res.waiting += len(todo) - i - 1
            break
    return res


# --------------------------------------------------------------------------- admin actions


def _campaign_or_fail(con: DuckDBPyConnection, campaign_id: str) -> Row:
    camp = _campaign_view(con, campaign_id)
    if camp is None:
        raise ChaseError(f"No campaign {campaign_id!r}: see `python -m xero_core xpm campaigns`.")
    return camp


def pause(settings: Settings, campaign_id: str, *, clock: Clock = SYSTEM_CLOCK) -> Row:
    now = clock.now()
    with connect(settings.db_path) as con, transaction(con):
        camp = _campaign_or_fail(con, campaign_id)
        if camp["status"] != "open":
            raise ChaseError(f"Campaign {campaign_id} is {camp['status']}, not open: there is nothing to pause.")
        con.execute("UPDATE chase_campaigns SET status = 'paused', paused_at = ?, next_reminder_at = NULL "
                    "WHERE campaign_id = ?", [now, campaign_id])
        _skip_inactive(con, now, camp["tenant_id"])
    return campaign(settings, campaign_id)


def resume(settings: Settings, campaign_id: str, *, clock: Clock = SYSTEM_CLOCK) -> Row:
    """A paused campaign, or one stopped because documents arrived, chases again (documents recorded
    before now no longer stop it)."""
    now = clock.now()
    with connect(settings.db_path) as con, transaction(con):
        camp = _campaign_or_fail(con, campaign_id)
        if camp["status"] not in ("paused", "stopped"):
            raise ChaseError(f"Campaign {campaign_id} is {camp['status']}: only a paused or stopped campaign resumes.")
        con.execute("UPDATE chase_campaigns SET status = 'open', resumed_at = ?, stopped_at = NULL, stop_reason = NULL "
                    "WHERE campaign_id = ?", [now, campaign_id])
        plan(con, settings, now, camp["tenant_id"])
    return campaign(settings, campaign_id)


def send_now(settings: Settings, campaign_id: str, *, clock: Clock = SYSTEM_CLOCK) -> ChaseResult:
    """One reminder for this campaign at once, whatever the cadence and the quiet hours; the cadence
    goes on from its next slot."""
    now = clock.now()
    with connect(settings.db_path) as con, transaction(con):
        camp = _campaign_or_fail(con, campaign_id)
        if camp["status"] != "open":
            raise ChaseError(f"Campaign {campaign_id} is {camp['status']}: resume it before sending a reminder.")
        cfg = _config(con, settings, camp["tenant_id"])
        cadence, needed = _mapping(con, camp["tenant_id"]).get(CMP.norm_state(camp.get("job_state")),
                                                              (parse_cadence(None), DEFAULT_NEEDED))
        low = value(con, "SELECT least(min(seq), 0) FROM chase_outbox WHERE campaign_id = ?", [campaign_id])
        rid = _new_row(con, settings, cfg, camp, needed, (low or 0) - 1, now, now, forced=True)
        # The slot that has come counts as sent by this one: the cadence goes on from the next.
        last = value(con, "SELECT max(seq) FROM chase_outbox WHERE campaign_id = ? AND seq >= 0", [campaign_id])
        k = latest_slot(camp["opened_at"], cadence, cfg.window, -1 if last is None else last, now)
        days = cadence.days(k) if k is not None else None
        if k is not None and days is not None:  # latest_slot gives only slots the cadence has
            con.execute("INSERT INTO chase_outbox (reminder_id, campaign_id, tenant_id, client_id, seq, message_id, state, "
                        "why, attempts, due_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'skipped', ?, 0, ?, ?, ?)",
                        ["rem_" + uuid.uuid4().hex[:20], campaign_id, camp["tenant_id"], camp.get("client_id"), k,
                         f"<slot{k}.{campaign_id}@ledgerlink.invalid>", "replaced by a reminder sent with Send now",
                         slot_time(camp["opened_at"], days, cfg.window), now, now])
    state = outbox(settings, reminder_id=rid)[0]
    if state["state"] == "skipped":
        return ChaseResult(skipped=1, messages=[state["why"]])
    res = run_chase(settings, tenant_id=camp["tenant_id"], clock=clock, only=[rid])
    if not any((res.sent, res.failed, res.bounced, res.unconfirmed, res.waiting, res.error)):
        # Another sender (the scheduler, a sync's chase step) claimed it between our commit and our
        # claim: it goes once, by them. Say so, or "0 sent" invites a second Send now.
        now_state = outbox(settings, reminder_id=rid)[0]["state"]
        if now_state in ("sending", "sent"):
            res.messages.append("another sender (the scheduler or a sync's chase step) took this reminder at "
                                f"the same moment and {'sent it' if now_state == 'sent' else 'is sending it'}")
    return res


def send_again(settings: Settings, reminder_id: str, *, clock: Clock = SYSTEM_CLOCK) -> ChaseResult:
    """Resend an unconfirmed, failed or bounced reminder now (same message, same Message-ID)."""
    now = clock.now()
    with connect(settings.db_path) as con, transaction(con):
        row = con.execute("SELECT state, tenant_id FROM chase_outbox WHERE reminder_id = ?", [reminder_id]).fetchone()
        if row is None:
            raise ChaseError(f"No reminder {reminder_id!r}: see `python -m xero_core xpm outbox`.")
        if row[0] not in ("unconfirmed", "failed", "bounced"):
            raise ChaseError(f"Reminder {reminder_id} is {row[0]}: only an unconfirmed, failed or bounced one is sent again.")
        con.execute("UPDATE chase_outbox SET state = 'due', forced = TRUE, next_try_at = ?, updated_at = ? "
                    "WHERE reminder_id = ?", [now, now, reminder_id])
    return run_chase(settings, tenant_id=row[1], clock=clock, only=[reminder_id])


# --------------------------------------------------------------------------- reading


def outbox(settings: Settings, *, tenant_id: str | None = None, campaign_id: str | None = None,
           state: str | None = None, reminder_id: str | None = None, limit: int = 500) -> list[Row]:
    where: list[str] = []
    params: list[object] = []
    for col, val in (("o.tenant_id", tenant_id), ("o.campaign_id", campaign_id), ("o.state", state),
                     ("o.reminder_id", reminder_id)):
        if val:
            where.append(f"{col} = ?")
            params.append(val)
    sql = ("SELECT o.reminder_id, o.campaign_id, o.tenant_id, o.client_id, k.name AS client_name, c.job_id, o.seq, "
           "o.address, o.subject, o.state, o.why, o.attempts, o.due_at, o.next_try_at, o.sent_at, o.message_id, "
           "o.smtp_reply, o.forced, o.created_at, o.body, o.reply_to FROM chase_outbox o "
           "LEFT JOIN chase_campaigns c USING (campaign_id) LEFT JOIN clients k ON k.client_id = o.client_id"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY coalesce(o.sent_at, o.next_try_at, o.due_at, o.created_at) DESC, o.created_at DESC LIMIT ?")
    with connect(settings.db_path, read_only=True) as con:
        return rows(con, sql, [*params, limit])


def campaign(settings: Settings, campaign_id: str) -> Row:
    with connect(settings.db_path, read_only=True) as con:
        camp = _campaign_or_fail(con, campaign_id)
    camp["history"] = outbox(settings, campaign_id=campaign_id)
    return camp


def preview(settings: Settings, tenant_id: str, subject: str | None = None, body: str | None = None,
            campaign_id: str | None = None) -> dict[str, Any]:
    """The reminder these templates make for a campaign of this practice (its newest open one, or a sample)."""
    with connect(settings.db_path, read_only=True) as con:
        cfg = _config(con, settings, tenant_id)
        row = con.execute("SELECT campaign_id FROM chase_campaigns WHERE tenant_id = ? AND (? IS NULL OR campaign_id = ?) "
                          "ORDER BY status = 'open' DESC, opened_at DESC LIMIT 1", [tenant_id, campaign_id, campaign_id]).fetchone()
        camp = _campaign_view(con, row[0]) if row else None
        needed = DEFAULT_NEEDED
        if camp:
            needed = _mapping(con, tenant_id).get(CMP.norm_state(camp.get("job_state")), (None, DEFAULT_NEEDED))[1]
    camp = camp or {"client_name": "Example Client Pty Ltd", "job_name": "Annual Accounts", "job_id": "J000001",
                    "client_email": "client@example.com"}
    reply_to = cfg.reply_to or parseaddr(settings.smtp.sender or "")[1]
    values: dict[str, object] = {
        "client_name": camp.get("client_name") or "", "job_name": camp.get("job_name") or camp.get("job_id"),
        "job_id": camp.get("job_id"), "needed": needed, "reply_to": reply_to, "practice_name": cfg.practice_name}
    subject = check_template(subject if subject is not None else cfg.subject, "subject")
    body = check_template(body if body is not None else cfg.body, "message")
    to, why = addresses(camp.get("client_email"))
    return {"from": settings.smtp.sender, "to": ", ".join(to) or None, "to_problem": why, "reply_to": reply_to,
            "subject": " ".join(render(subject, values).split()), "body": render(body, values)}


def due_count(con: DuckDBPyConnection, tenant_id: str) -> int:
    """For the sync's probe: this tenant's open campaigns, or when it has none its unsent reminders
    (0: the step has nothing to do)."""
    # Two plain statements: DuckDB plans the two as subqueries of one at nearly twice their cost.
    campaigns: int = value(con, "SELECT count(*) FROM chase_campaigns WHERE tenant_id = ? AND status = 'open'",
                           [tenant_id])
    if campaigns:
        return campaigns
    reminders: int = value(con, "SELECT count(*) FROM chase_outbox WHERE tenant_id = ? AND state IN "
                                "('due', 'failed', 'sending') AND next_try_at IS NOT NULL", [tenant_id])
    return reminders

