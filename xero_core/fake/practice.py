"""Xero Practice Manager 3.0 (xero-notes §7): a practice whose clients overlap an organisation's
contacts, jobs moving through custom states, and the XML API over them.

Wire facts kept: `text/xml; charset=utf-8`; `<Response api-method="…"><Status>OK</Status>…`;
business errors are HTTP 200 with `<Status>ERROR</Status><ErrorDescription>…`; GET shows a state's
display name while `PUT job.api/state` takes its Interface Code; dates out as `2019-11-01T00:00:00`,
dates in as `yyyyMMdd`; client flags `Yes`/`No`, task flags `true`/`false`; 3.0 uses integer ids.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree as ET

from .responses import XML_CT, Reply, not_found

# (display name, interface code). The two "waiting" spellings are both common in practices'
# custom state lists; document-chasing must recognise either.
JOB_STATES = [
    ("Planned", "PLANNED"),
    ("In Progress", "INPROGRESS"),
    ("Awaiting Client Info", "AWAITINGINFO"),
    ("Waiting on Client", "WAITINGONCLIENT"),
    ("Review", "REVIEW"),
    ("Completed", "COMPLETED"),
]
JOB_TYPES = ["Annual Accounts", "BAS", "Income Tax Return", "Bookkeeping", "Payroll Review"]
STAFF = [(101, "Priya Raman", "priya@harbourpractice.example"), (102, "Tom Whitfield", "tom@harbourpractice.example"),
         (103, "Mei Chen", "mei@harbourpractice.example"), (104, "Liam O'Connor", "liam@harbourpractice.example")]
PRACTICE_NAMES = ["Harbour & Co Chartered Accountants", "Ridgeline Advisory Partners", "Southbank Practice Group"]
EXTRA_CLIENTS = [("Blue Gum Landscaping Pty Ltd", "accounts@bluegum.example"),
                 ("Kestrel Dental Group", "admin@kestreldental.example"),
                 ("Nguyen Family Trust", "tran.nguyen@mailbox.example")]
# The practice story (FakeXero(story=True), the demo): an accounting firm's own ledger whose customers
# are its clients, two of which have connected their own organisation, and Practice Manager jobs for them.
STORY_FIRM = "Harbour & Co Chartered Accountants"
STORY_CLIENTS = [
    ("Coastal Plumbing Pty Ltd", "accounts@coastalplumbing.example"),      # its own organisation too
    ("Kiwi Coast Imports Pty Ltd", "finance@kiwicoastimports.example"),    # its own organisation too (trades in NZD)
    ("Blackwood Bakery Pty Ltd", "hello@blackwoodbakery.example"),
    ("Sutherland Physiotherapy", "admin@sutherlandphysio.example"),
    ("Marlowe Architects", "studio@marlowearchitects.example"),
    ("Redgum Joinery Pty Ltd", "office@redgumjoinery.example"),
    ("Seabreeze Holiday Rentals", "stay@seabreezerentals.example"),
    ("Orchard Street Cafe", ""),                                            # no email: its reminders are skipped, with why
    ("Tallowwood Veterinary Clinic", "reception@tallowwoodvet.example"),
    ("Patel & Singh Pharmacy", "accounts@patelsingh.example"),
    ("Ironbark Fitness Studio", "team@ironbarkfitness.example"),
    ("Lighthouse Legal Pty Ltd", "practice@lighthouselegal.example"),
]
STORY_CLIENT_ORGS = STORY_CLIENTS[:2]
STORY_CHASED = "Coastal Plumbing Pty Ltd"  # the README's walk-through follows this client
STORY_CHASED_STATE = "Awaiting Client Info"
TASKS = ["Prepare workpapers", "Reconcile bank accounts", "Partner review", "Lodge with ATO"]


@dataclass
class Client:
    id: int
    name: str
    email: str
    phone: str
    address: str
    city: str
    postcode: str
    contact_name: str
    matched_contact_id: str | None = None  # the org contact it was derived from (ground truth for tests)
    match_kind: str = "none"  # exact | near | ambiguous (one mailbox, two contacts) | none


@dataclass
class Task:
    uuid: str
    name: str
    estimated: int
    actual: int
    completed: bool


@dataclass
class Job:
    id: str
    name: str
    description: str
    client_id: int
    state: str  # display name
    type: str
    start: date
    due: date
    manager: int
    partner: int
    assigned: list[int]
    completed: date | None = None
    tasks: list[Task] = field(default_factory=list)


def _get(obj: object, *names: str, default: Any = "") -> Any:
    """The first present field among names (dict keys or attributes): the ledger's records are
    attribute-style (`.id`, `.email`), Xero-shaped dicts use `ContactID`, `EmailAddress`."""
    for name in names:
        if isinstance(obj, dict):
            if name in obj:
                return obj[name]
        elif hasattr(obj, name):
            return getattr(obj, name)
    return default


def _shared_mailboxes(contacts: list[Any]) -> list[list[Any]]:
    """Groups of active, unmerged contacts with one email address (sorted by address)."""
    groups: dict[str, list[Any]] = {}
    for c in contacts:
        email = str(_get(c, "EmailAddress", "email") or "").strip().lower()
        active = str(_get(c, "ContactStatus", "status", default="ACTIVE") or "ACTIVE").upper() == "ACTIVE"
        if email and active and not _get(c, "MergedToContactID", "merged_to", default=None):
            groups.setdefault(email, []).append(c)
    return [groups[e] for e in sorted(groups) if len(groups[e]) > 1]


def near_miss(name: str, rng: random.Random) -> str:
    """A name a person would call the same business and a string compare would not."""
    for a, b in ((" Pty Ltd", " Pty. Ltd."), (" & ", " and "), (" and ", " & "), (" Pty. Ltd.", " Pty Ltd")):
        if a in name:
            return name.replace(a, b, 1)
    options = [name.upper(), name + " Pty Ltd", "The " + name, name.replace(" ", "  ", 1)]
    return rng.choice(options)


class Practice:
    def __init__(self, tenant_id: str, name: str, clients: list[Client], jobs: list[Job]):
        self.tenant_id, self.name = tenant_id, name
        self.tenant_type = "PRACTICEMANAGER"
        self.clients = {c.id: c for c in clients}
        self.jobs = {j.id: j for j in jobs}
        self.states = list(JOB_STATES)

    # ---- generation ------------------------------------------------------------------------------
    @classmethod
    def generate(cls, seed: int, today: date, tenant_id: str, org: object = None, index: int = 0) -> Practice:
        rng = random.Random(f"practice:{seed}")
        raw = _get(org, "contacts", default=[]) if org is not None else []
        contacts = list(raw.values() if isinstance(raw, dict) else raw)
        # Two live contacts sharing one mailbox (a firm and its "Pty Ltd" twin): the practice's client for
        # them is ambiguous on purpose, so the demo's queue has something to resolve. Kept out of the
        # random picks below so they are always there.
        twins = _shared_mailboxes(contacts)[:2]
        in_twins = {id(c) for group in twins for c in group}
        contacts = [c for c in contacts if id(c) not in in_twins]
        # Customers first: a practice's clients are businesses, not the trades firm's suppliers.
        contacts.sort(key=lambda c: str(_get(c, "Name", "name")))
        rng.shuffle(contacts)
        contacts.sort(key=lambda c: not _get(c, "is_customer", "IsCustomer", default=True))
        clients: list[Client] = []
        next_id = 50210
        for i, c in enumerate(contacts[:12]):
            cname = str(_get(c, "Name", "name")).strip()
            email = str(_get(c, "EmailAddress", "email") or "").strip()
            if not cname:
                continue
            kind = "exact" if i < 8 else "near"
            name = cname if kind == "exact" else near_miss(cname, rng)
            mail = email if kind == "exact" or i % 2 else ""
            clients.append(cls._client(next_id, name, mail, rng, str(_get(c, "ContactID", "id")), kind))
            next_id += rng.randint(1, 9)
        for name, mail in EXTRA_CLIENTS:
            clients.append(cls._client(next_id, name, mail, rng, None, "none"))
            next_id += rng.randint(1, 9)
        for group in twins:
            # "Harbour Strata Management" + "... Pty Ltd", one mailbox -> the practice knows "Harbour Strata
            # Group": the mailbox fits both contacts and the name neither.
            names = [str(_get(c, "Name", "name")).strip() for c in group]
            words = min(names, key=len).split()
            core = " ".join(words[:-1] if len(words) >= 3 else words)
            taken = {n.casefold() for n in names}
            short = next(f"{core} {tail}" for tail in ("Group", "Holdings", "Services", "Partners")
                         if f"{core} {tail}".casefold() not in taken)
            mail = str(_get(group[0], "EmailAddress", "email")).strip()
            clients.append(cls._client(next_id, short, mail, rng, None, "ambiguous"))
            next_id += rng.randint(1, 9)
        jobs: list[Job] = []
        n = 1
        weights = [3, 4, 2, 2, 2, 4]
        for j in range(max(18, len(clients) * 2)):
            client = clients[j % len(clients)]
            # Every state appears at least once, the rest follow a practice's usual spread.
            state = JOB_STATES[j][0] if j < len(JOB_STATES) else rng.choices([s for s, _ in JOB_STATES], weights)[0]
            jtype = rng.choice(JOB_TYPES)
            start = today - timedelta(days=rng.randint(0, 120))
            due = start + timedelta(days=rng.randint(14, 75))
            completed = min(today, due - timedelta(days=rng.randint(0, 10))) if state == "Completed" else None
            staff = rng.sample([s[0] for s in STAFF], 2)
            tasks = [Task(f"{seed:04d}{n:04d}-{k:04d}-4000-8000-{rng.getrandbits(48):012x}", t, rng.choice([60, 120, 240]),
                          rng.choice([0, 30, 90, 180]), state == "Completed" or k == 0 and state != "Planned")
                     for k, t in enumerate(rng.sample(TASKS, 3))]
            jobs.append(Job(f"J{n:06d}", f"{jtype} {start.year}", f"{jtype} for {client.name}", client.id, state, jtype,
                            start, due, staff[0], STAFF[0][0], [staff[1]], completed, tasks))
            n += 1
        name = PRACTICE_NAMES[index % len(PRACTICE_NAMES)] + (f" {index + 1}" if index >= len(PRACTICE_NAMES) else "")
        return cls(tenant_id, name, clients, jobs)

    @staticmethod
    def _client(cid: int, name: str, email: str, rng: random.Random, contact_id: str | None, kind: str) -> Client:
        first = rng.choice(["Alex", "Sam", "Jordan", "Casey", "Morgan", "Riley", "Jamie", "Taylor"])
        last = rng.choice(["Smith", "Brown", "Wilson", "Taylor", "Martin", "Lee", "Walker", "Hall"])
        return Client(cid, name, email, f"02 9{rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                      f"{rng.randint(1, 240)} {rng.choice(['George', 'Pitt', 'King', 'Ocean'])} Street",
                      rng.choice(["Sydney", "Parramatta", "Newcastle", "Wollongong"]), str(rng.randint(2000, 2999)),
                      f"{first} {last}", contact_id if contact_id not in ("", "None") else None, kind)

    def tell_story(self, org: object, today: date) -> None:
        """The walk-through's client: known to Practice Manager by the ledger's name and email (other
        clients keep their generated near-misses for the matching), with one job waiting on its
        documents and the others done."""
        contacts = list(_get(org, "contacts", default=[]))
        names = {str(_get(c, "ContactID", "id")): str(_get(c, "Name", "name")) for c in contacts}
        firm_clients = {n for n, _ in STORY_CLIENTS}
        for c in list(self.clients.values()):  # e.g. the ledger's "Cash Sales": a customer, never a client
            if c.matched_contact_id and names.get(c.matched_contact_id) not in firm_clients:
                del self.clients[c.id]
                for j in [j for j in self.jobs.values() if j.client_id == c.id]:
                    del self.jobs[j.id]
        contact = next(c for c in contacts if str(_get(c, "Name", "name")) == STORY_CHASED)
        cid = str(_get(contact, "ContactID", "id"))
        chased = next((c for c in self.clients.values() if c.matched_contact_id == cid), None)
        if chased is None:  # not among the generated picks: the practice knows it anyway
            chased = self._client(max(self.clients) + 7, STORY_CHASED, "", random.Random(cid), cid, "exact")
            self.clients[chased.id] = chased
        chased.name, chased.email, chased.match_kind = STORY_CHASED, dict(STORY_CLIENTS)[STORY_CHASED], "exact"
        mine = sorted((j for j in self.jobs.values() if j.client_id == chased.id), key=lambda j: j.id)
        if not mine:
            base = next(iter(self.jobs.values()))
            n = len(self.jobs) + 1
            mine = [Job(f"J{n:06d}", "", "", chased.id, "", "", base.start, base.due, base.manager, base.partner,
                        list(base.assigned))]
            self.jobs[mine[0].id] = mine[0]
        year = today.year if today.month > 6 else today.year - 1
        for i, j in enumerate(mine):
            j.state = STORY_CHASED_STATE if i == 0 else "Completed"
            j.completed = None if i == 0 else min(today, j.due)
        first = mine[0]
        first.name, first.type, first.description = (f"Annual Accounts {year}", "Annual Accounts",
                                                     f"Annual Accounts for {STORY_CHASED}")

    # ---- state changes -----------------------------------------------------------------------------
    def state_by_code(self, code: str) -> str | None:
        return next((name for name, c in self.states if c.lower() == code.strip().lower()), None)

    def set_state(self, job_id: str, state: str, today: date | None = None) -> Job:
        """Move a job (tests and workshops): `state` is an interface code or a display name."""
        job = self.jobs.get(job_id)
        if job is None:
            raise KeyError(f"no job {job_id!r} in practice {self.name!r}")
        name = self.state_by_code(state) or next((n for n, _ in self.states if n.lower() == state.lower()), None)
        if name is None:
            raise ValueError(f"unknown job state {state!r}: use one of {[c for _, c in self.states]}")
        job.state = name
        job.completed = (today or job.due) if name == "Completed" else None
        return job

    def dump(self) -> dict[str, Any]:
        return {"jobs": {j.id: {"state": j.state, "completed": j.completed.isoformat() if j.completed else None}
                         for j in self.jobs.values()}}

    def load(self, data: dict[str, Any]) -> None:
        for jid, s in data.get("jobs", {}).items():
            if jid in self.jobs:
                self.jobs[jid].state = s["state"]
                self.jobs[jid].completed = date.fromisoformat(s["completed"]) if s.get("completed") else None


# ---- XML ------------------------------------------------------------------------------------------
def _d(x: date | None) -> str:
    return f"{x.isoformat()}T00:00:00" if x else ""


def _sub(parent: ET.Element, tag: str, text: object = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def _staff(parent: ET.Element, tag: str, sid: int) -> None:
    s = next(x for x in STAFF if x[0] == sid)
    el = _sub(parent, tag)
    _sub(el, "ID", s[0])
    _sub(el, "Name", s[1])


def job_xml(p: Practice, j: Job, detailed: bool) -> ET.Element:
    el = ET.Element("Job")
    _sub(el, "ID", j.id)
    _sub(el, "Name", j.name)
    _sub(el, "Description", j.description)
    c = p.clients[j.client_id]
    ce = _sub(el, "Client")
    _sub(ce, "ID", c.id)
    _sub(ce, "Name", c.name)
    _sub(el, "ClientOrderNumber")
    _sub(el, "State", j.state)
    _sub(el, "Type", j.type)
    _sub(el, "StartDate", _d(j.start))
    _sub(el, "DueDate", _d(j.due))
    if j.completed:
        _sub(el, "CompletedDate", _d(j.completed))
    ct = _sub(el, "Contact")
    _sub(ct, "Name", c.contact_name)
    _staff(el, "Manager", j.manager)
    _staff(el, "Partner", j.partner)
    a = _sub(el, "Assigned")
    for sid in j.assigned:
        _staff(a, "Staff", sid)
    if detailed:
        ts = _sub(el, "Tasks")
        for t in j.tasks:
            te = _sub(ts, "Task")
            _sub(te, "UUID", t.uuid)
            _sub(te, "Name", t.name)
            _sub(te, "EstimatedMinutes", t.estimated)
            _sub(te, "ActualMinutes", t.actual)
            _sub(te, "Completed", "true" if t.completed else "false")
            _sub(te, "Billable", "true")
            _sub(te, "StartDate", _d(j.start))
            _sub(te, "DueDate", _d(j.due))
        _sub(el, "Milestones")
        _sub(el, "Notes")
    return el


def client_xml(c: Client, detailed: bool) -> ET.Element:
    el = ET.Element("Client")
    _sub(el, "ID", c.id)
    _sub(el, "Name", c.name)
    _sub(el, "Email", c.email)
    _sub(el, "Address", c.address)
    _sub(el, "City", c.city)
    _sub(el, "Region", "NSW")
    _sub(el, "PostCode", c.postcode)
    _sub(el, "Country", "Australia")
    _sub(el, "Phone", c.phone)
    _sub(el, "IsProspect", "No")
    _sub(el, "IsArchived", "No")
    _sub(el, "IsDeleted", "No")
    if detailed:
        cs = _sub(el, "Contacts")
        ce = _sub(cs, "Contact")
        _sub(ce, "ID", c.id * 10 + 1)
        _sub(ce, "IsPrimary", "Yes")
        _sub(ce, "Name", c.contact_name)
        _sub(ce, "Email", c.email)
        _sub(el, "Notes")
        _sub(el, "Groups")
    return el


def _response(method: str, *children: ET.Element, status: str = "OK", error: str | None = None) -> Reply:
    root = ET.Element("Response", {"api-method": method})
    _sub(root, "Status", status)
    if error:
        _sub(root, "ErrorDescription", error)
    for ch in children:
        root.append(ch)
    return Reply(200, {"Content-Type": XML_CT}, ET.tostring(root, encoding="utf-8", xml_declaration=False))


def _error(method: str, message: str) -> Reply:
    return _response(method, status="ERROR", error=message)


def _parse_day(raw: str | None) -> date | None:
    try:
        return datetime.strptime(raw or "", "%Y%m%d").date()
    except ValueError:
        return None


def handle_practice(p: Practice, method: str, subpath: str, params: Mapping[str, str], body: bytes,
                    now: datetime) -> Reply:
    parts = [x for x in subpath.split("/") if x]
    if len(parts) < 2:
        return not_found()
    api, action, rest = parts[0].lower(), parts[1].lower(), parts[2:]
    detailed = (params.get("detailed") or "").lower() == "true"
    if api == "job.api":
        if method == "GET" and action == "current" and not rest:
            jobs = [j for j in p.jobs.values() if j.state != "Completed"]
            return _jobs("Current", p, jobs, detailed)
        if method == "GET" and action == "list" and not rest:
            start, end = _parse_day(params.get("from")), _parse_day(params.get("to"))
            if start is None or end is None:
                return _error("List", "Invalid from or to date: use yyyyMMdd, e.g. from=20260101&to=20261231")
            if end < start or (end - start).days > 366:
                return _error("List", "The date range must run forwards and cover at most one year")
            jobs = [j for j in p.jobs.values() if start <= j.start <= end or start <= j.due <= end]
            return _jobs("List", p, jobs, detailed)
        if method == "GET" and action == "get" and len(rest) == 1:
            j = p.jobs.get(rest[0].upper())
            if j is None:
                return _error("Get", "Invalid job identifier")
            return _response("Get", job_xml(p, j, True))
        if method == "GET" and action == "client" and len(rest) == 1:
            cid = int(rest[0]) if rest[0].isdigit() else -1
            if cid not in p.clients:
                return _error("Client", "Invalid client identifier")
            return _jobs("Client", p, [j for j in p.jobs.values() if j.client_id == cid], detailed)
        if method == "PUT" and action == "state" and not rest:
            return _put_state(p, body, now)
    if api == "client.api":
        if method == "GET" and action == "list" and not rest:
            root = ET.Element("Clients")
            for c in sorted(p.clients.values(), key=lambda c: c.name.lower()):
                root.append(client_xml(c, detailed))
            return _response("List", root)
        if method == "GET" and action == "get" and len(rest) == 1:
            cid = int(rest[0]) if rest[0].isdigit() else -1
            if cid not in p.clients:
                return _error("Get", "Invalid client identifier")
            return _response("Get", client_xml(p.clients[cid], True))
    if api == "staff.api" and method == "GET" and action == "list" and not rest:
        root = ET.Element("StaffList")
        for sid, name, email in STAFF:
            s = _sub(root, "Staff")
            _sub(s, "ID", sid)
            _sub(s, "Name", name)
            _sub(s, "Email", email)
        return _response("List", root)
    return not_found()


def _jobs(method: str, p: Practice, jobs: list[Job], detailed: bool) -> Reply:
    root = ET.Element("Jobs")
    for j in sorted(jobs, key=lambda j: j.id):
        root.append(job_xml(p, j, detailed))
    return _response(method, root)


def _put_state(p: Practice, body: bytes, now: datetime) -> Reply:
    from defusedxml.ElementTree import fromstring  # a request body is untrusted input even in a fake

    try:
        el = fromstring(body)
    except Exception:
        return _error("State", "Invalid XML: send <Job><ID>J000001</ID><State>CODE</State></Job>")
    jid = (el.findtext("ID") or "").strip().upper()
    code = (el.findtext("State") or "").strip()
    job = p.jobs.get(jid)
    if job is None:
        return _error("State", "Invalid job identifier")
    if not code or p.state_by_code(code) is None:
        return _error("State", "Invalid state code")
    p.set_state(jid, code, now.date())
    return _response("State", job_xml(p, job, False))
