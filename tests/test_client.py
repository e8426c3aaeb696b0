"""XeroClient policy: headers, refresh-on-401, 429/5xx retries, error tree, Xero's messages."""
from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from identity_fake import FakeClock, IdentityFake
from xero_core import client as clientmod
from xero_core import connections, oauth
from xero_core.client import Fail, Retry, XeroClient, policy, xero_message
from xero_core.errors import (DailyLimitReached, FatalError, RateLimited, ReconnectNeeded, RetriableError,
                              TierRefused)

CORR = "5f2e6a4b-0000-4000-8000-000000000001"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def fake(clock):
    return IdentityFake(clock=clock)


@pytest.fixture
def tenant(settings, fake, clock):
    url = oauth.begin_connect(settings, clock=clock)
    oauth.complete_connect(settings, fake.consent(url), transport=fake.transport(), clock=clock)
    return fake.tenants[0].tenant_id


class Script:
    """API responses in order; records what the client sent."""

    def __init__(self, fake, *responses):
        self.fake, self.responses, self.seen = fake, list(responses), []
        fake.api_handler = self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        r = self.responses.pop(0)
        if isinstance(r, Exception):
            raise r
        if callable(r):
            return r(request)
        return r


def ok(body=None, **headers):
    return httpx.Response(200, json=body if body is not None else {"Status": "OK"},
                          headers={"Xero-Correlation-Id": CORR, **headers})


def make_client(settings, tenant, fake, clock, **kw):
    return XeroClient(settings, tenant, transport=fake.transport(), clock=clock, **kw)


def test_headers_paths_and_counters(settings, tenant, fake, clock):
    s = Script(fake, ok({"Invoices": []}), httpx.Response(200, text="<Response/>"))
    c = make_client(settings, tenant, fake, clock)
    assert c.get_json("/api.xro/2.0/Invoices", params={"page": 1}) == {"Invoices": []}
    req = s.seen[0]
    assert str(req.url) == settings.api_url + "/api.xro/2.0/Invoices?page=1"
    assert req.headers["authorization"] == f"Bearer {fake.sets[0].access}"
    assert req.headers["xero-tenant-id"] == tenant and req.headers["accept"] == "application/json"
    c.request("GET", "practicemanager/3.0/job.api/current", headers={"Accept": "application/xml"})
    assert s.seen[1].headers["accept"] == "application/xml"
    assert c.api_calls == 2 and c.bytes_downloaded == len(b'{"Invoices":[]}') + len(b"<Response/>")


def test_401_refreshes_once_then_retries(settings, tenant, fake, clock):
    s = Script(fake, httpx.Response(401, json={"Title": "Unauthorized", "Detail": "TokenExpired: token expired"}), ok())
    c = make_client(settings, tenant, fake, clock)
    assert c.request("GET", "/api.xro/2.0/Organisation").status_code == 200
    assert fake.refresh_count == 1
    assert s.seen[1].headers["authorization"] == f"Bearer {fake.sets[0].access}" != s.seen[0].headers["authorization"]


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_after_refresh_needs_reconnect(settings, tenant, fake, clock, status):
    body = {"Title": "Forbidden", "Status": status, "Detail": "AuthenticationUnsuccessful"}
    Script(fake, httpx.Response(status, json=body, headers={"Xero-Correlation-Id": CORR}),
           httpx.Response(status, json=body, headers={"Xero-Correlation-Id": CORR}))
    c = make_client(settings, tenant, fake, clock)
    with pytest.raises(ReconnectNeeded) as ei:
        c.request("GET", "/api.xro/2.0/Invoices?where=x")
    e = ei.value
    assert (e.tenant_id, e.method, e.endpoint, e.status, e.correlation_id) == (
        tenant, "GET", "/api.xro/2.0/Invoices", status, CORR)
    assert fake.refresh_count == 1
    # the client writes nothing; its caller marks the connection
    assert connections.get_connection(settings, tenant)["status"] == "connected"
    assert connections.mark_for_reconnect(settings, e, clock.now())
    row = connections.get_connection(settings, tenant)
    assert row["status"] == "needs_reconnect" and "Reconnect" in row["status_reason"]


def test_429_waits_retry_after_then_gives_up_after_three(settings, tenant, fake, clock):
    limited = httpx.Response(429, headers={"Retry-After": "7", "X-Rate-Limit-Problem": "minute",
                                           "Xero-Correlation-Id": CORR})
    Script(fake, limited, ok())
    c = make_client(settings, tenant, fake, clock)
    assert c.request("GET", "/api.xro/2.0/Contacts").status_code == 200
    assert clock.sleeps == [7.0]
    Script(fake, limited, limited, limited, limited)
    with pytest.raises(RateLimited) as ei:
        c.request("GET", "/api.xro/2.0/Contacts")
    assert clock.sleeps == [7.0] * 4 and ei.value.retry_after == 7.0 and ei.value.status == 429
    assert isinstance(ei.value, RetriableError)


def test_retry_after_as_an_http_date_in_utc_or_minus_0000():
    # "-0000" parses as a naive datetime: subtracting the aware clock raised TypeError mid-call.
    now = datetime(2026, 12, 7, 15, 0, tzinfo=timezone.utc)
    for stamp in ("Mon, 07 Dec 2026 15:00:30 GMT", "Mon, 07 Dec 2026 15:00:30 -0000"):
        assert clientmod.retry_after_seconds(httpx.Response(429, headers={"retry-after": stamp}), now) == 30.0


def test_429_without_retry_after_backs_off_with_jitter_capped(settings, tenant, fake, clock):
    Script(fake, *[httpx.Response(429)] * 4)
    with pytest.raises(RateLimited):
        make_client(settings, tenant, fake, clock).request("GET", "/api.xro/2.0/Contacts")
    assert len(clock.sleeps) == 3
    for n, s in enumerate(clock.sleeps):
        assert 2 ** n <= s <= 2 ** (n + 1)
    assert all(clientmod.backoff_seconds(20) <= 60 for _ in range(20))


def test_daily_limit_raises_at_once_with_resume_time(settings, tenant, fake, clock):
    Script(fake, httpx.Response(429, headers={"Retry-After": "3600", "X-Rate-Limit-Problem": "day"}))
    with pytest.raises(DailyLimitReached) as ei:
        make_client(settings, tenant, fake, clock).request("GET", "/api.xro/2.0/Invoices")
    assert clock.sleeps == [] and ei.value.resumes_at == clock.now() + timedelta(seconds=3600)


def test_5xx_and_timeouts_retry_then_retriable(settings, tenant, fake, clock):
    Script(fake, httpx.Response(503, json={"Detail": "ServiceNotAvailable"}), httpx.ReadTimeout("slow"), ok())
    c = make_client(settings, tenant, fake, clock)
    assert c.request("GET", "/api.xro/2.0/Accounts").status_code == 200
    assert len(clock.sleeps) == 2
    Script(fake, *[httpx.Response(500, text="boom")] * 4)
    with pytest.raises(RetriableError) as ei:
        c.request("GET", "/api.xro/2.0/Accounts")
    assert ei.value.status == 500 and "boom" in str(ei.value.detail)
    Script(fake, *[httpx.ConnectError("refused")] * 4)
    with pytest.raises(RetriableError, match="ConnectError"):
        c.request("GET", "/api.xro/2.0/Accounts")


def test_fatal_errors_carry_xeros_message_for_each_body_shape(settings, tenant, fake, clock):
    validation = {"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred",
                  "Elements": [{"InvoiceID": "x", "ValidationErrors": [{"Message": "Account code '999' is not a valid code."}]}]}
    files = [{"type": "Validation", "title": "Validation failure", "detail": "Extension: boo is not a valid File extension."}]
    cases = [
        (httpx.Response(400, json=validation), "Account code '999' is not a valid code."),
        (httpx.Response(404, text="The resource you're looking for cannot be found"), "cannot be found"),
        (httpx.Response(400, json=files), "Extension: boo is not a valid File extension."),
        (httpx.Response(412, json={"Title": "Precondition", "Status": 412, "Detail": "Something precise"}), "Something precise"),
    ]
    c = make_client(settings, tenant, fake, clock)
    for resp, expected in cases:
        Script(fake, resp)
        with pytest.raises(FatalError) as ei:
            c.request("PUT", "/api.xro/2.0/Invoices?summarizeErrors=false", json={"Invoices": []})
        assert expected in str(ei.value) and ei.value.endpoint == "/api.xro/2.0/Invoices"
        assert ei.value.method == "PUT" and ei.value.tenant_id == tenant
    assert clock.sleeps == []


def test_scope_and_tier_refusals(settings, tenant, fake, clock):
    c = make_client(settings, tenant, fake, clock)
    Script(fake, httpx.Response(401, json={"Detail": "AuthorizationUnsuccessful"},
                                headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'}))
    with pytest.raises(FatalError, match="scope"):
        c.request("GET", "/files.xro/1.0/Folders")
    Script(fake, httpx.Response(401, json={"Detail": "AuthorizationUnsuccessful"}))
    with pytest.raises(TierRefused):
        c.request("GET", "/api.xro/2.0/Journals")
    assert fake.refresh_count == 0
    assert connections.get_connection(settings, tenant)["status"] == "connected"


def test_limiter_protocol_wraps_each_attempt(settings, tenant, fake, clock):
    events = []

    class Limiter:
        @contextlib.contextmanager
        def acquire(self, tenant_id):
            events.append(("acquire", tenant_id))
            yield
            events.append(("release", tenant_id))

        def observe(self, tenant_id, response):
            events.append(("observe", response.status_code))

    Script(fake, httpx.Response(429, headers={"Retry-After": "1"}), ok())
    make_client(settings, tenant, fake, clock, limiter=Limiter()).request("GET", "/api.xro/2.0/Invoices")
    assert events == [("acquire", tenant), ("observe", 429), ("release", tenant),
                      ("acquire", tenant), ("observe", 200), ("release", tenant)]


def test_urls_never_leave_the_configured_api_host(settings, tenant, fake, clock):
    s = Script(fake, ok())
    c = make_client(settings, tenant, fake, clock)
    c.request("GET", "https://api.xero.com/api.xro/2.0/Contacts/abc")  # a webhook's resourceUrl
    assert str(s.seen[0].url) == settings.api_url + "/api.xro/2.0/Contacts/abc"
    with pytest.raises(FatalError, match="Refusing"):
        c.request("GET", "https://evil.example.com/steal")
    assert len(s.seen) == 1


def test_xero_message_handles_xml_and_empty():
    assert xero_message(httpx.Response(400, text="<ApiException><Message>Bad thing</Message></ApiException>")) == "Bad thing"
    assert xero_message(httpx.Response(429)) is None


def test_writes_are_repeated_only_with_an_idempotency_key(settings, tenant, fake, clock):
    c = make_client(settings, tenant, fake, clock)
    s = Script(fake, httpx.ReadTimeout("slow"), ok())
    with pytest.raises(RetriableError):
        c.request("POST", "/files.xro/1.0/Files", content=b"x")
    assert len(s.seen) == 1  # may have been written: not repeated blindly
    s = Script(fake, httpx.Response(502), httpx.ReadTimeout("slow"), ok())
    assert c.request("POST", "/files.xro/1.0/Files", content=b"x",
                     headers={"Idempotency-Key": "doc-1-upload"}).status_code == 200
    assert len(s.seen) == 3
    s = Script(fake, httpx.ConnectError("refused"), ok())  # never reached Xero: safe to repeat
    assert c.request("PUT", "/api.xro/2.0/Contacts", json={}).status_code == 200
    s = Script(fake, httpx.Response(429, headers={"Retry-After": "1"}), ok())  # refused, not done
    assert c.request("POST", "/api.xro/2.0/Contacts", json={}).status_code == 200



def _connected_to_fake(make_settings):
    """(clock, fake, settings, organisation tenant id) after a real consent against the full fake."""
    from xero_core import oauth
    from xero_core.fake import FakeClock, FakeXero

    clock = FakeClock()
    fake = FakeXero(clock=clock, invoices=20)
    s = make_settings(**fake.settings_env("http://fake.test"))
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)),
                                     transport=fake.transport(), clock=clock)
    return clock, fake, s, next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")


def test_expired_three_times_in_a_row_fails_the_call_but_keeps_the_connection(make_settings):
    """Refreshes at most twice; a grant the token endpoint keeps accepting is never sent to a person."""
    from xero_core.client import MAX_REFRESHES, XeroClient
    from xero_core.connections import get_connection
    from xero_core.errors import ReconnectNeeded, RetriableError

    clock, fake, s, org = _connected_to_fake(make_settings)
    fake.faults.add("expired_token", path="Accounts", count=MAX_REFRESHES + 1)
    client = XeroClient(s, org, transport=fake.transport(), clock=clock)
    with pytest.raises(RetriableError, match="freshly refreshed token") as info:
        client.get_json("/api.xro/2.0/Accounts")
    assert not isinstance(info.value, ReconnectNeeded)
    assert get_connection(s, org)["status"] == "connected"
    assert client.get_json("/api.xro/2.0/Accounts")["Accounts"]


@pytest.mark.slow
def test_a_reconnect_during_a_call_is_not_undone_by_that_calls_stale_refusal(make_settings):
    """The call was sent under the old grant; the admin reconnected meanwhile: stay connected."""
    from datetime import timedelta

    from xero_core import connections
    from xero_core.client import XeroClient
    from xero_core.errors import ReconnectNeeded

    clock, fake, s, org = _connected_to_fake(make_settings)
    fake.revoke_connection(org)

    inner = fake.transport()

    def reconnect_while_in_flight(request):
        response = inner.handle_request(request)
        if response.status_code == 403:  # the refusal is on its way back; a reconnect lands first
            with connections.db.connect(s.db_path) as con:
                con.execute("UPDATE connections SET connected_at = ?, status = 'connected' WHERE tenant_id = ?",
                            [clock.now() + timedelta(seconds=1), org])
        return response

    client = XeroClient(s, org, transport=httpx.MockTransport(reconnect_while_in_flight), clock=clock)
    with pytest.raises(ReconnectNeeded) as ei:
        client.get_json("/api.xro/2.0/Accounts")
    assert not connections.mark_for_reconnect(s, ei.value, clock.now()) or True
    assert connections.get_connection(s, org)["status"] == "connected"

    # without a reconnect the same refusal does mark it
    client = XeroClient(s, org, transport=fake.transport(), clock=clock)
    clock.advance(60)
    with pytest.raises(ReconnectNeeded) as ei:
        client.get_json("/api.xro/2.0/Accounts")
    connections.mark_for_reconnect(s, ei.value, clock.now())
    assert connections.get_connection(s, org)["status"] == "needs_reconnect"


def _refused(request=None):
    """What httpx raises when nothing listens: a ConnectError caused by ConnectionRefusedError."""
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError as exc:
        try:
            raise httpx.ConnectError("[Errno 111] Connection refused") from exc
        except httpx.ConnectError as err:
            return err


def _unresolved():
    import socket

    try:
        raise socket.gaierror(-2, "Name or service not known")
    except socket.gaierror as exc:
        try:
            raise httpx.ConnectError("[Errno -2] Name or service not known") from exc
        except httpx.ConnectError as err:
            return err


def test_a_refused_connection_or_unknown_name_fails_at_once_with_one_sentence(settings, tenant, fake, clock):
    from xero_core.errors import XeroUnreachable

    c = make_client(settings, tenant, fake, clock)
    for err in (_refused(), _unresolved()):
        s = Script(fake, err, ok())
        with pytest.raises(XeroUnreachable) as ei:
            c.request("GET", "/api.xro/2.0/Accounts")
        assert len(s.seen) == 1 and clock.sleeps == []  # no retry, no wait
        assert str(ei.value) == clientmod.unreachable_sentence(settings, settings.api_url, err, "XERO_API_URL")
        assert "tenant" not in str(ei.value)  # the same sentence for every tenant and step: said once
        assert isinstance(ei.value, RetriableError)
    # a timeout keeps its bounded retries
    s = Script(fake, *[httpx.ConnectTimeout("slow")] * 4)
    with pytest.raises(RetriableError) as ei:
        c.request("GET", "/api.xro/2.0/Accounts")
    assert len(s.seen) == 4 and len(clock.sleeps) == 3 and not isinstance(ei.value, XeroUnreachable)


def test_unreachable_says_the_settings_fix_first(make_settings):
    s = make_settings(XERO_MOCK_MODE="true", XERO_FAKE_PORT="1")
    assert clientmod.unreachable_sentence(s, s.api_url, _refused(), "XERO_API_URL") == s.unreachable_hint
    assert s.unreachable_hint.startswith("The fake Xero is not running on port 1.")
    # elsewhere (real Xero, or a fake on another address): which address, and how it failed
    for err, how in ((_refused(), "refused the connection"), (_unresolved(), "the name api.xero.com does not resolve")):
        said = clientmod.unreachable_sentence(s, "https://api.xero.com/api.xro/2.0/Accounts", err, "XERO_API_URL")
        assert said.startswith("Xero at https://api.xero.com (XERO_API_URL) could not be reached: ") and how in said


def _resp(status, body=None, **headers):
    return httpx.Response(status, json=body, headers=headers) if body is not None else \
        httpx.Response(status, headers=headers)


EXPIRED = {"Detail": "TokenExpired: token expired"}
POLICY = [  # (response, refreshes, retries, repeatable) -> outcome
    ((_resp(200),), 0, 0, True, None),
    ((_resp(304),), 0, 0, True, None),
    ((_resp(401, {"Detail": "x"}, **{"WWW-Authenticate": 'Bearer error="insufficient_scope"'}),), 0, 0, True, FatalError),
    ((_resp(401, {"Detail": "AuthorizationUnsuccessful"}),), 1, 0, True, TierRefused),
    ((_resp(401, EXPIRED),), 2, 0, True, RetriableError),
    ((_resp(401, {"Detail": "AuthenticationUnsuccessful"}),), 1, 0, True, ReconnectNeeded),
    ((_resp(403, EXPIRED),), 1, 0, True, ReconnectNeeded),
    ((_resp(429, **{"Retry-After": "7"}),), 0, 0, False, Retry(7.0)),
    ((_resp(429, **{"Retry-After": "700"}),), 0, 2, False, Retry(60.0)),
    ((_resp(429),), 0, 0, True, Retry(None)),
    ((_resp(429, **{"Retry-After": "1"}),), 0, 3, True, RateLimited),
    ((_resp(429, **{"Retry-After": "60", "X-Rate-Limit-Problem": "day"}),), 0, 0, True, DailyLimitReached),
    ((_resp(503),), 0, 0, True, Retry(None)),
    ((_resp(503, **{"Retry-After": "5"}),), 0, 1, True, Retry(5.0)),
    ((_resp(503),), 0, 0, False, RetriableError),
    ((_resp(500),), 0, 3, True, RetriableError),
    ((_resp(400, {"Message": "bad"}),), 0, 0, True, FatalError),
    ((_resp(404),), 0, 0, True, FatalError),
]


@pytest.mark.parametrize("case", POLICY, ids=[f"{c[0][0].status_code}-{i}" for i, c in enumerate(POLICY)])
def test_policy_maps_each_status_to_one_outcome(case):
    """The status-to-exception policy as a table: a pure function of the response and the call's
    counts (no client, no token, no clock but `now`)."""
    from datetime import datetime, timezone

    (response,), refreshes, retries, repeatable, expected = case
    got = policy(response, refreshes=refreshes, retries=retries, repeatable=repeatable,
                 now=datetime(2026, 12, 7, tzinfo=timezone.utc))
    if expected is None or isinstance(expected, Retry):
        assert got == expected
    else:
        assert isinstance(got, Fail) and got.error is expected, got
    if expected is DailyLimitReached:
        assert got.extra["resumes_at"] == datetime(2026, 12, 7, 0, 1, tzinfo=timezone.utc)
