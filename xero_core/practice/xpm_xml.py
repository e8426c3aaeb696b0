"""Xero Practice Manager XML -> rows (pure; no I/O).

XPM 3.0 answers `text/xml` shaped `<Response api-method="Current"><Status>OK</Status><Jobs>…`.
Business errors arrive as HTTP 200 with `<Status>ERROR</Status><ErrorDescription>…` (xero-notes §7),
so every response is checked for its Status before anything is read from it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from lxml import etree

from ..errors import LedgerlinkError
from .xmlsafe import parse_xml, text


class XpmError(LedgerlinkError):
    """Practice Manager answered with <Status>ERROR</Status> or something we cannot read."""


@dataclass(frozen=True)
class XpmJob:
    job_id: str            # XPM's job number, e.g. J000014
    name: str | None
    description: str | None
    client_id: str | None  # XPM client ID (3.0 integer) or UUID (3.1)
    client_name: str | None
    state: str | None      # the state's display name, e.g. "Planned"
    job_type: str | None
    start_date: date | None
    due_date: date | None
    completed_date: date | None
    raw: str = field(repr=False, default="")


@dataclass(frozen=True)
class XpmClient:
    xpm_client_id: str
    name: str
    email: str | None
    phone: str | None
    archived: bool
    deleted: bool
    contact_emails: tuple[str, ...] = ()


_MIDNIGHT_DAY = re.compile(r"\d{4}-\d{2}-\d{2}(?:T00:00:00)?|\d{8}")


def parse_date(value: str | None) -> date | None:
    """XPM dates are `2019-11-01T00:00:00` (practice-local, no zone) or `yyyyMMdd`."""
    if not value:
        return None
    v = value.strip()
    if _MIDNIGHT_DAY.fullmatch(v):  # nearly every date XPM sends: no strptime (it dominated large job lists)
        try:
            return date.fromisoformat(v[:10]) if "-" in v else date(int(v[:4]), int(v[4:6]), int(v[6:8]))
        except ValueError:
            pass  # e.g. 2026-02-30: the general path below says so
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(v[:19] if "T" in v else v, fmt).date()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(v.replace("Z", "+00:00")).date()
    except ValueError:
        raise XpmError(f"Practice Manager sent a date we cannot read: {value!r}.") from None


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("yes", "true", "1")


def response_root(data: bytes, *, what: str) -> etree._Element:
    """Parse safely and check `<Status>`; raise XpmError with XPM's own description on ERROR."""
    root = parse_xml(data, what=what)
    if root.tag != "Response":
        raise XpmError(f"{what}: expected a <Response> document, got <{root.tag}>. Nothing was saved.")
    status = (text(root, "Status") or "").upper()
    if status != "OK":
        desc = text(root, "ErrorDescription") or "no description"
        raise XpmError(f"Practice Manager refused {what}: {desc} (Status {status or 'missing'}). Nothing was saved.")
    return root


def _id(el: etree._Element | None) -> str | None:
    return text(el, "ID") or text(el, "UUID")


def _children(el: etree._Element | None) -> dict[str, Any]:
    """{tag: child} of an element's children, the first of each tag (as `find` takes it), in one pass:
    a job's fields read this way cost one walk of its children instead of a search per field."""
    out: dict[str, Any] = {}
    if el is not None:
        for child in el:
            out.setdefault(child.tag, child)
    return out


def _text(children: dict[str, Any], tag: str) -> str | None:
    found = children.get(tag)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


def parse_job(job: etree._Element) -> XpmJob:
    f = _children(job)
    job_id = _text(f, "ID")
    if not job_id:
        raise XpmError("Practice Manager sent a job without an <ID>; nothing was saved.")
    client = _children(f.get("Client"))
    return XpmJob(
        job_id=job_id,
        name=_text(f, "Name"),
        description=_text(f, "Description"),
        client_id=_text(client, "ID") or _text(client, "UUID"),
        client_name=_text(client, "Name"),
        state=_text(f, "State"),
        job_type=_text(f, "Type"),
        start_date=parse_date(_text(f, "StartDate")),
        due_date=parse_date(_text(f, "DueDate")),
        completed_date=parse_date(_text(f, "CompletedDate")),
        raw=etree.tostring(job, encoding="unicode"),
    )


def parse_jobs(data: bytes, *, what: str = "the job list (job.api/current)") -> list[XpmJob]:
    root = response_root(data, what=what)
    jobs_el = root.find("Jobs")
    if jobs_el is None:
        # job.api/get answers with a single <Job> directly under <Response>
        single = root.find("Job")
        return [parse_job(single)] if single is not None else []
    return [parse_job(j) for j in jobs_el.findall("Job")]


def parse_clients(data: bytes, *, what: str = "the client list (client.api/list)") -> list[XpmClient]:
    root = response_root(data, what=what)
    clients_el = root.find("Clients")
    out: list[XpmClient] = []
    if clients_el is None:
        return out
    for c in clients_el.findall("Client"):
        cid = _id(c)
        name = text(c, "Name")
        if not cid or not name:
            raise XpmError("Practice Manager sent a client without an ID or Name; nothing was saved.")
        emails = tuple(
            e for e in (text(p, "Email") for p in c.findall("Contacts/Contact")) if e
        )
        out.append(
            XpmClient(
                xpm_client_id=cid,
                name=name,
                email=text(c, "Email"),
                phone=text(c, "Phone"),
                archived=_flag(text(c, "IsArchived")),
                deleted=_flag(text(c, "IsDeleted")),
                contact_emails=emails,
            )
        )
    return out
