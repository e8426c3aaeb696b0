"""Practice Manager 3.0 XML (xero-notes §7) from the fake."""
from __future__ import annotations

import re

import pytest
from lxml import etree

from fake_support import api, connect, make_fake
from xero_core.fake.practice import JOB_STATES

PM = "/practicemanager/3.0"


@pytest.fixture
def fake():
    return make_fake()


@pytest.fixture
def call(fake):
    tok = connect(fake)["access_token"]
    practice = fake.practices[0].tenant_id

    def _call(path, method="GET", **kw):
        r = api(fake, tok, PM + path, practice, method, **kw)
        return r

    return _call


def xml(r):
    assert r.status_code == 200 and r.headers["content-type"] == "text/xml; charset=utf-8"
    return etree.fromstring(r.content)


def test_current_jobs_and_detailed_tasks(call, fake):
    root = xml(call("/job.api/current"))
    assert root.tag == "Response" and root.get("api-method") == "Current" and root.findtext("Status") == "OK"
    jobs = root.findall("Jobs/Job")
    assert jobs and all(re.fullmatch(r"J\d{6}", j.findtext("ID")) for j in jobs)
    assert "Completed" not in {j.findtext("State") for j in jobs}
    assert {"Waiting on Client", "Awaiting Client Info", "Planned", "In Progress", "Review"} <= {
        j.findtext("State") for j in jobs}
    j = jobs[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00", j.findtext("StartDate"))
    assert j.find("Client/ID").text.isdigit() and j.findtext("Client/Name")
    assert j.find("Tasks") is None
    detailed = xml(call("/job.api/current", params={"detailed": "true"}))
    task = detailed.find("Jobs/Job/Tasks/Task")
    assert task is not None and task.findtext("Completed") in ("true", "false")


def test_list_by_dates_and_get(call, fake):
    today = fake.clock.today()
    frm, to = (today.replace(day=1)).strftime("%Y%m%d"), today.strftime("%Y%m%d")
    listed = xml(call("/job.api/list", params={"from": frm, "to": to}))
    assert listed.get("api-method") == "List" and listed.findall("Jobs/Job")
    err = xml(call("/job.api/list", params={"from": "2026-01-01", "to": to}))
    assert err.findtext("Status") == "ERROR" and err.findtext("ErrorDescription")
    one = xml(call("/job.api/get/J000001"))
    assert one.get("api-method") == "Get" and one.findtext("Job/ID") == "J000001" and one.find("Job/Tasks") is not None
    missing = xml(call("/job.api/get/J999999"))
    assert missing.findtext("Status") == "ERROR" and missing.findtext("ErrorDescription") == "Invalid job identifier"


def test_put_state_by_interface_code_and_business_errors(call, fake):
    body = b"<Job><ID>J000001</ID><State>WAITINGONCLIENT</State></Job>"
    ok = xml(call("/job.api/state", "PUT", content=body, headers={"Content-Type": "application/xml"}))
    assert ok.findtext("Status") == "OK"
    assert xml(call("/job.api/get/J000001")).findtext("Job/State") == "Waiting on Client"
    bad_code = xml(call("/job.api/state", "PUT", content=b"<Job><ID>J000001</ID><State>NOPE</State></Job>"))
    assert (bad_code.findtext("Status"), bad_code.findtext("ErrorDescription")) == ("ERROR", "Invalid state code")
    bad_job = xml(call("/job.api/state", "PUT", content=b"<Job><ID>J424242</ID><State>COMPLETED</State></Job>"))
    assert bad_job.findtext("ErrorDescription") == "Invalid job identifier"
    # completing a job takes it off the current list
    xml(call("/job.api/state", "PUT", content=b"<Job><ID>J000001</ID><State>COMPLETED</State></Job>"))
    current = {j.findtext("ID") for j in xml(call("/job.api/current")).findall("Jobs/Job")}
    assert "J000001" not in current


def test_tests_can_move_a_job(fake, call):
    p = fake.practices[0]
    p.set_state("J000002", "Review")
    assert xml(call("/job.api/get/J000002")).findtext("Job/State") == "Review"
    with pytest.raises(ValueError, match="unknown job state"):
        p.set_state("J000002", "Lost")
    import httpx

    with httpx.Client(transport=fake.transport()) as c:
        r = c.post("http://f/_fake/practice/job-state", json={"job_id": "J000002", "state": "AWAITINGINFO"})
    assert r.json() == {"job_id": "J000002", "state": "Awaiting Client Info"}


def test_clients_match_some_contacts(call, fake):
    root = xml(call("/client.api/list"))
    clients = root.findall("Clients/Client")
    names = {c.findtext("Name") for c in clients}
    contacts = {c.name: c.email for c in fake.orgs[0].contacts}
    exact = [n for n in names if n in contacts]
    assert len(exact) >= 5
    p = fake.practices[0]
    near = [c for c in p.clients.values() if c.match_kind == "near"]
    assert near and all(c.name not in contacts for c in near)
    assert any(c.match_kind == "none" for c in p.clients.values())
    cid = clients[0].findtext("ID")
    one = xml(call(f"/client.api/get/{cid}"))
    assert one.findtext("Client/ID") == cid and one.findtext("Client/Contacts/Contact/IsPrimary") == "Yes"
    assert xml(call("/client.api/get/1")).findtext("ErrorDescription") == "Invalid client identifier"


def test_states_have_interface_codes():
    codes = [c for _, c in JOB_STATES]
    assert len(set(codes)) == len(codes) and all(re.fullmatch(r"[A-Z]+", c) for c in codes)


def test_scopes_and_tier(fake):
    practice = fake.practices[0].tenant_id
    ro = connect(fake, scope="offline_access practicemanager.read")["access_token"]
    assert api(fake, ro, PM + "/job.api/current", practice).status_code == 200
    r = api(fake, ro, PM + "/job.api/state", practice, "PUT", content=b"<Job><ID>J000001</ID><State>REVIEW</State></Job>")
    assert r.status_code == 401
    fake.set_tier("plus")
    assert api(fake, ro, PM + "/client.api/list", practice).status_code == 401


def test_job_states_survive_a_restart(tmp_path):
    a = make_fake(state_dir=tmp_path)
    a.practices[0].set_state("J000003", "COMPLETED")
    a._save()
    b = make_fake(state_dir=tmp_path)
    assert b.practices[0].jobs["J000003"].state == "Completed"
