"""XPM: safe XML, jobs and clients into the database, campaigns opened and completed by job states,
business errors and hostile XML as failed steps that write nothing, tier refusal as a skip."""
from __future__ import annotations

import httpx
import pytest

from xero_core.db import connect
from xero_core.errors import TierRefused
from xero_core.practice import clients as C
from xero_core.practice import xpm as X
from xero_core.practice.campaigns import JobView, OpenCampaign, plan_campaigns
from xero_core.practice.xmlsafe import UnsafeXml, parse_xml
from xero_core.practice.xpm_xml import XpmError, parse_clients, parse_jobs

PM = "pm-tenant-0001"


def job_xml(jid, state, client_id, client_name, name="Annual Accounts 2026"):
    return (f"<Job><ID>{jid}</ID><Name>{name}</Name><Description /><Client><ID>{client_id}</ID>"
            f"<Name>{client_name}</Name></Client><ClientOrderNumber /><State>{state}</State><Type>Annual Accounts</Type>"
            "<StartDate>2026-11-01T00:00:00</StartDate><DueDate>2026-12-13T00:00:00</DueDate>"
            "<Contact><Name>Jo</Name></Contact><Manager><ID>101</ID><Name>Priya Raman</Name></Manager><Partner />"
            "<Assigned><Staff><ID>102</ID><Name>Tom</Name></Staff></Assigned></Job>")


def jobs_doc(*jobs, method="Current"):
    return (f'<Response api-method="{method}"><Status>OK</Status><Jobs>{"".join(jobs)}</Jobs></Response>').encode()


def clients_doc(*clients):
    body = "".join(f"<Client><ID>{i}</ID><Name>{n}</Name><Email>{e or ''}</Email><Phone>02 9999 0000</Phone>"
                   f"<IsProspect>No</IsProspect><IsArchived>{'Yes' if a else 'No'}</IsArchived><IsDeleted>No</IsDeleted></Client>"
                   for i, n, e, a in clients)
    return f'<Response api-method="List"><Status>OK</Status><Clients>{body}</Clients></Response>'.encode()


def error_doc(msg):
    return f'<Response api-method="Get"><Status>ERROR</Status><ErrorDescription>{msg}</ErrorDescription></Response>'.encode()


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode()
                             for i in range(1, 10))
                  + b']><Response><Status>OK</Status><Jobs><Job><ID>&lol9;</ID></Job></Jobs></Response>')
XXE = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       b'<Response><Status>OK</Status><Jobs><Job><ID>&xxe;</ID></Job></Jobs></Response>')


class StubPM:
    """Answers XPM paths from a dict (path -> bytes | Exception); counts calls like XeroClient."""

    def __init__(self, routes):
        self.routes, self.api_calls, self.bytes_downloaded, self.paths = routes, 0, 0, []

    def request(self, method, path, **kw):
        self.paths.append(path)
        self.api_calls += 1
        for prefix, answer in self.routes.items():
            if path.endswith(prefix):
                if isinstance(answer, Exception):
                    raise answer
                return httpx.Response(200, content=answer, headers={"Content-Type": "text/xml; charset=utf-8"})
        return httpx.Response(200, content=error_doc("Invalid job identifier"))


@pytest.fixture
def pm(settings):
    with connect(settings.db_path) as con:
        con.execute("INSERT INTO connections (tenant_id, tenant_name, tenant_type, status) "
                    "VALUES (?, 'Harbour & Co', 'PRACTICEMANAGER', 'connected')", [PM])
    X.set_xpm_enabled(settings, PM, True)
    X.set_mapping(settings, PM, {"Awaiting Client Info", "Waiting on Client"})
    return settings


def table(settings, sql, *params):
    with connect(settings.db_path, read_only=True) as con:
        return con.execute(sql, list(params)).fetchall()


# -- XML -------------------------------------------------------------------------------------


def test_parses_jobs_and_clients_as_xpm_sends_them():
    jobs = parse_jobs(jobs_doc(job_xml("J000014", "Planned", 2606034, "A C Smith Limited")))
    j = jobs[0]
    assert (j.job_id, j.state, j.client_id, j.client_name, str(j.start_date), str(j.due_date)) == (
        "J000014", "Planned", "2606034", "A C Smith Limited", "2026-11-01", "2026-12-13")
    cl = parse_clients(clients_doc(("2606034", "A C Smith Limited", "ac@smith.example", False)))
    assert (cl[0].xpm_client_id, cl[0].email, cl[0].archived) == ("2606034", "ac@smith.example", False)
    with pytest.raises(XpmError, match="Invalid state code"):
        parse_jobs(error_doc("Invalid state code"))


@pytest.mark.parametrize("doc, words", [
    (BILLION_LAUGHS, "DTD or entities"),
    (XXE, "DTD or entities"),
    ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
     .encode("utf-16"), "DTD or entities"),
    (b"<Response><Status>OK</Status><Jobs><Job>", "malformed"),
    (b"<Response>&undefined;</Response>", "malformed"),
    (b"", "empty"),
])
def test_hostile_and_malformed_xml_refused(doc, words):
    with pytest.raises(UnsafeXml, match=words):
        parse_xml(doc)


def test_oversized_xml_refused_before_parsing():
    with pytest.raises(UnsafeXml, match="limit"):
        parse_xml(b"<r>" + b"x" * 2000 + b"</r>", max_bytes=1000)


# -- campaigns (pure) ------------------------------------------------------------------------


def test_campaign_plan_opens_once_and_completes_with_reasons():
    mapped = {"waiting on client"}
    j = {"J1": JobView("J1", "Waiting on Client", "7", "cl_1"), "J2": JobView("J2", "Planned", "8", None)}
    plan = plan_campaigns(j, [], mapped)
    assert [v.job_id for v in plan.open] == ["J1"] and not plan.complete
    opened = [OpenCampaign("c1", "J1", "7", "cl_1", "Waiting on Client")]
    assert plan_campaigns(j, opened, mapped).empty  # never duplicated
    moved = {"J1": JobView("J1", "Review", "7", "cl_1")}
    assert plan_campaigns(moved, opened, mapped).complete == [("c1", "job moved to Review")]
    assert plan_campaigns({}, opened, mapped, {"J1": "Completed"}).complete == [("c1", "job moved to Completed")]
    unmapped = plan_campaigns(j, opened, set())
    assert unmapped.complete == [("c1", "state 'Waiting on Client' no longer means 'needs documents'")]
    assert "turned off" in plan_campaigns(j, opened, mapped, enabled=False).complete[0][1]


# -- the step against recorded-shape XML -----------------------------------------------------


@pytest.mark.slow
def test_jobs_enter_and_leave_mapped_states(pm):
    s = pm
    existing = C.add_client(s, "A C Smith Ltd", email="ac@smith.example")
    routes = {
        "job.api/current": jobs_doc(job_xml("J000014", "Awaiting Client Info", 2606034, "A C Smith Limited"),
                                    job_xml("J000015", "Planned", 2606035, "Blue Gum Landscaping Pty Ltd")),
        "client.api/list": clients_doc(("2606034", "A C Smith Limited", "AC@smith.example ", False),
                                       ("2606035", "Blue Gum Landscaping Pty Ltd", None, False),
                                       ("2606036", "Old Client", None, True)),
    }
    stub = StubPM(routes)
    r = X.sync_practice(s, PM, stub)
    assert r.status == "success" and r.rows == 2
    assert r.detail["clients_linked"] == 1 and r.detail["clients_created"] == 1 and r.detail["campaigns_opened"] == 1
    assert C.get_client(s, existing)["xpm_client_id"] == "2606034"
    camp = X.campaigns(s, PM, "open")
    assert [(c["job_id"], c["client_id"], c["job_state"]) for c in camp] == [("J000014", existing, "Awaiting Client Info")]
    # a re-sync opens nothing new
    assert X.sync_practice(s, PM, StubPM(routes)).detail["campaigns_opened"] == 0
    # J000015 enters a mapped state; J000014 is completed and leaves the current list
    routes["job.api/current"] = jobs_doc(job_xml("J000015", "Waiting on Client", 2606035, "Blue Gum Landscaping Pty Ltd"))
    routes["job.api/get/J000014"] = jobs_doc(job_xml("J000014", "Completed", 2606034, "A C Smith Limited"), method="Get")
    r = X.sync_practice(s, PM, StubPM(routes))
    assert (r.detail["campaigns_opened"], r.detail["campaigns_completed"]) == (1, 1)
    done = X.campaigns(s, PM, "completed")
    assert [(c["job_id"], c["completion_reason"]) for c in done] == [("J000014", "job moved to Completed")]
    assert [c["job_id"] for c in X.campaigns(s, PM, "open")] == ["J000015"]
    jobs = {j["job_id"]: j for j in X.list_jobs(s, PM)}
    assert (jobs["J000014"]["state"], jobs["J000014"]["is_current"]) == ("Completed", False)
    assert X.known_states(s, PM) == ["Awaiting Client Info", "Completed", "Waiting on Client"]
    assert [p["job_id"] for p in X.preview_mapping(s, PM, {"waiting on client"})] == ["J000015"]


@pytest.mark.parametrize("bad, words", [
    (error_doc("Invalid state code"), "Invalid state code"),
    (b"<Response><Status>OK</Status><Jobs><Job><ID>J1</ID>", "malformed"),
    (BILLION_LAUGHS, "DTD or entities"),
    (XXE, "DTD or entities"),
])
@pytest.mark.slow
def test_business_errors_and_bad_xml_fail_the_step_and_write_nothing(pm, bad, words):
    s = pm
    good = {"job.api/current": jobs_doc(job_xml("J000001", "Waiting on Client", 1, "Alpha")),
            "client.api/list": clients_doc(("1", "Alpha", None, False))}
    X.sync_practice(s, PM, StubPM(good))
    before = (table(s, "SELECT * FROM xpm_jobs ORDER BY job_id"), table(s, "SELECT * FROM chase_campaigns"),
              table(s, "SELECT * FROM clients ORDER BY client_id"))
    r = X.sync_practice(s, PM, StubPM({**good, "client.api/list": bad}))
    assert r.status == "failed" and words in r.note
    after = (table(s, "SELECT * FROM xpm_jobs ORDER BY job_id"), table(s, "SELECT * FROM chase_campaigns"),
             table(s, "SELECT * FROM clients ORDER BY client_id"))
    assert after == before


def test_tier_refusal_is_a_skip_with_a_plain_note(pm):
    s = pm
    r = X.sync_practice(s, PM, StubPM({"job.api/current": TierRefused("Xero refused", status=401)}))
    assert r.status == "skipped" and "tier" in r.note and "Advanced" in r.note
    note = table(s, "SELECT tier_note FROM connections WHERE tenant_id = ?", PM)[0][0]
    assert "Advanced plan" in note


def test_mapping_functions_check_the_tenant(pm):
    with pytest.raises(X.XpmConfigError, match="No connection"):
        X.set_mapping(pm, "nope", {"Planned"})
    assert X.get_mapping(pm, PM) == {"Awaiting Client Info", "Waiting on Client"}
    X.set_mapping(pm, PM, ["  Waiting   on Client "])
    assert X.get_mapping(pm, PM) == {"Waiting on Client"}


@pytest.mark.slow
def test_ambiguous_xpm_client_is_listed_and_its_campaign_follows_the_resolution(pm):
    s = pm
    twins = [C.add_client(s, "Delta Pty Ltd"), C.add_client(s, "DELTA LIMITED")]
    routes = {"job.api/current": jobs_doc(job_xml("J000020", "Waiting on Client", 77, "Delta")),
              "client.api/list": clients_doc(("77", "Delta", None, False))}
    X.sync_practice(s, PM, StubPM(routes))
    cands = [c for c in C.list_candidates(s) if c["tenant_id"] == PM]
    assert {(c["client_id"], c["contact_id"]) for c in cands} == {(twins[0], "77"), (twins[1], "77")}
    assert {C.get_client(s, t)["match_status"] for t in twins} == {"unmatched"}  # Xero-contact status untouched
    (camp,) = X.campaigns(s, PM, "open")
    assert camp["client_id"] is None and camp["xpm_client_id"] == "77"
    C.resolve_match(s, twins[1], PM, "77")
    assert C.get_client(s, twins[1])["xpm_client_id"] == "77" and C.list_candidates(s) == []
    X.sync_practice(s, PM, StubPM(routes))
    (camp,) = X.campaigns(s, PM, "open")
    assert camp["client_id"] == twins[1]


# -- issue 21 item 5: a large job list parses in time linear in its size ------------------------
# The times are bench/xpm_parse.py's (not a timed test here); these pin what made it slow: a search
# per field, and strptime (three tries, two exceptions) for every date.
def _job_list(n: int) -> bytes:
    jobs = "".join(f"<Job><ID>J{i}</ID><Name> Job {i} </Name><Client><UUID>u{i}</UUID><Name>C{i}</Name></Client>"
                   f"<State>Planned</State><StartDate>2026-07-01T00:00:00</StartDate><DueDate>20261031</DueDate>"
                   f"<Name>second name, ignored</Name></Job>" for i in range(n))
    return f'<Response api-method="Current"><Status>OK</Status><Jobs>{jobs}</Jobs></Response>'.encode()


def test_large_job_lists_parse_without_strptime_and_read_each_field_as_before(monkeypatch):
    import datetime as dt

    from xero_core.practice import xpm_xml

    calls = []

    class Counting(dt.datetime):
        @classmethod
        def strptime(cls, *a):
            calls.append(a)
            return dt.datetime.strptime(*a)

    monkeypatch.setattr(xpm_xml, "datetime", Counting)
    jobs = parse_jobs(_job_list(2000))
    assert len(jobs) == 2000 and not calls, f"{len(calls)} strptime calls for 4,000 dates"
    j = jobs[7]
    assert (j.job_id, j.name, j.client_id, j.client_name, j.state) == ("J7", "Job 7", "u7", "C7", "Planned")
    assert (j.start_date, j.due_date) == (dt.date(2026, 7, 1), dt.date(2026, 10, 31))
    assert j.raw.startswith("<Job><ID>J7</ID>")
    # other shapes still take the general path, and a date that is no date is still refused
    assert xpm_xml.parse_date("2026-07-01T09:30:00") == dt.date(2026, 7, 1)
    with pytest.raises(XpmError, match="date we cannot read"):
        xpm_xml.parse_date("20261331")
