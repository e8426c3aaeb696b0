"""Xero Practice Manager XML -> rows (pure; no I/O).

XPM 3.0 answers `text/xml` shaped `<Response api-method="Current"><Status>OK</Status><Jobs>…`.
Business errors arrive as HTTP 200 with `<Status>ERROR</Status><ErrorDescription>…` (xero-notes §7),
so every response is checked for its Status before anything is read from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

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


def parse_date(value: str | None) -> date | None:
    """XPM dates are `2019-11-01T00:00:00` (practice-local, no zone) or `yyyyMMdd`."""
    if not value:
        return None
    v = value.strip()
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


def parse_job(job: etree._Element) -> XpmJob:
    job_id = text(job, "ID")
    if not job_id:
        raise XpmError("Practice Manager sent a job without an <ID>; nothing was saved.")
    client = job.find("Client")
    return XpmJob(
        job_id=job_id,
        name=text(job, "Name"),
        description=text(job, "Description"),
        client_id=_id(client),
        client_name=text(client, "Name"),
        state=text(job, "State"),
        job_type=text(job, "Type"),
        start_date=parse_date(text(job, "StartDate")),
        due_date=parse_date(text(job, "DueDate")),
        completed_date=parse_date(text(job, "CompletedDate")),
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
