"""XeroClient: every call to a Xero API goes through here, in layers (as httpx's `send` ->
`_send_handling_auth` -> `_send_single_request`), each small enough to read and test alone:

- `XeroClient.request`: the URL (paths are relative to `settings.api_url`; the token never leaves
  that host), the headers (`Accept: application/json` unless the caller asks for XML, e.g. Practice
  Manager), and the retry loop: send, ask `policy` what came back means, sleep through the clock.
- `XeroAuth` (an `httpx.Auth` flow, the shape of authlib's `OAuth2Auth`): the bearer token and
  `xero-tenant-id` on each request; on 401/403 one refresh and the request again (a second refresh
  only when Xero calls the fresh token expired: clock skew, a race).
- `LimitedTransport` (wraps the transport): the rate limiter's lease around each HTTP attempt, held
  until its body is read, and the count of calls.
- `policy(response, ...)` / `transport_policy(exc, ...)`: pure functions, status (or transport
  failure) to outcome:
  - 401 `insufficient_scope` -> FatalError (reconnect with the scope); 401 `AuthorizationUnsuccessful`
    (token fine, endpoint refused) -> TierRefused; 401/403 still after the refresh -> ReconnectNeeded
    (401 TokenExpired after two refreshes -> RetriableError: the grant is alive, a person would change
    nothing).
  - 429: wait Retry-After (else exponential backoff with jitter, capped at 60 s), at most 3 retries,
    then RateLimited. `X-Rate-Limit-Problem: day` -> DailyLimitReached at once.
  - A refused connection or a host name that does not resolve: XeroUnreachable at once, no retry
    (it would only be refused again; the sync stops for this host with one sentence).
  - 5xx, timeouts, transport errors: retry with backoff (3 retries), then RetriableError. Writes
    (POST/PUT/PATCH) are repeated only with an Idempotency-Key header, or when the connection was
    never made; otherwise the first failure is raised as RetriableError for the caller to decide.
  - Other 4xx: FatalError with Xero's own message, whatever the body's shape.
Every error carries tenant, method, endpoint (path only: no query), status, Xero-Correlation-Id
and Retry-After. Sleeps go through the clock, so tests never wait. The client writes nothing to
DuckDB: a ReconnectNeeded carries when its call was sent, and the caller marks the connection
(`connections.mark_for_reconnect`).
"""
from __future__ import annotations

import contextlib
import email.utils
import json as jsonlib
import random
import re
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, ContextManager, Generator, Iterator, Mapping, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from .clock import SYSTEM_CLOCK, Clock
from .errors import (DailyLimitReached, FatalError, RateLimited, ReconnectNeeded, RetriableError, TierRefused,
                     TokensUnreadable, VaultError, XeroError, XeroUnreachable)
from .settings import REAL_API_URL, Settings
from .tokens import TokenManager, ssl_context

MAX_RETRIES = 3
# A token Xero calls expired right after a refresh is refreshed once more (clock skew, a race), no more.
MAX_REFRESHES = 2
# Retried after a timeout or 5xx; POST/PUT/PATCH only with an Idempotency-Key (Xero honours it),
# since a write that timed out may have happened.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
# A body that is not JSON is asked for again this many times (a proxy's page, a body garbled on the way).
NOT_JSON_RETRIES = 2
BACKOFF_CAP_SECONDS = 60.0
USER_AGENT = "Ledgerlink/0.1"
# Query parameters as callers pass them (httpx's QueryParamTypes, narrowed to what Ledgerlink sends).
Params = Mapping[str, str | int | float | bool | None]


class Limiter(Protocol):
    """What XeroClient asks of a limiter (ratelimit.SharedRateLimiter): a lease to hold around each
    HTTP attempt, and every response's headers."""

    def acquire(self, tenant_id: str) -> ContextManager[object]: ...

    def observe(self, tenant_id: str, response: httpx.Response) -> None: ...


class _NoLimiter:
    """The limiter protocol's no-op."""

    def acquire(self, tenant_id: str) -> ContextManager[object]:
        return contextlib.nullcontext()

    def observe(self, tenant_id: str, response: httpx.Response) -> None:
        return None


# -- pure helpers (tested on recorded bodies) --------------------------------------------------
def retry_after_seconds(response: httpx.Response, now: datetime | None = None) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None or raw.strip() == "":
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when is None or now is None:
        return None
    if when.tzinfo is None:  # "-0000" parses naive (RFC 2822: UTC, source unknown)
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def xero_message(response: httpx.Response, limit: int = 500) -> str | None:
    """Xero's explanation from any of its error body shapes, or None."""
    text = response.text.strip() if response.content else ""
    if not text:
        return None
    try:
        body = jsonlib.loads(text)
    except ValueError:
        body = None
    msgs: list[str] = []
    if isinstance(body, dict):
        for el in body.get("Elements") or []:  # ValidationException
            for ve in (el.get("ValidationErrors") or []) if isinstance(el, dict) else []:
                if isinstance(ve, dict) and ve.get("Message"):
                    msgs.append(str(ve["Message"]))
        if not msgs:
            for key in ("Detail", "detail", "Message", "message", "error_description", "Title", "title", "error"):
                if body.get(key):
                    msgs.append(str(body[key]))
                    break
    elif isinstance(body, list):  # Files API: [{"type","title","detail"}]
        for item in body:
            if isinstance(item, dict):
                m = item.get("detail") or item.get("Detail") or item.get("title") or item.get("Message")
                if m:
                    msgs.append(str(m))
    elif body is None:
        m = re.search(r"<(?:Message|ErrorDescription)>(.*?)</(?:Message|ErrorDescription)>", text, re.S)
        msgs.append(m.group(1).strip() if m else re.sub(r"\s+", " ", text))
    if not msgs:
        return None
    out = "; ".join(dict.fromkeys(msgs))  # de-duplicated, in order
    return out if len(out) <= limit else out[: limit - 1] + "…"


def backoff_seconds(attempt: int, rng: random.Random | None = None) -> float:
    """Attempt 0, 1, 2 -> about 1, 2, 4 s (+ up to 100% jitter), never over 60 s."""
    r = rng.random() if rng is not None else random.random()
    return min(BACKOFF_CAP_SECONDS, (2.0 ** attempt) * (1 + r))


# -- the policy: what a response or a transport failure means (pure) ---------------------------
@dataclass(frozen=True)
class Retry:
    """Send again after `after` seconds (None: the caller's backoff for this attempt)."""
    after: float | None = None


@dataclass(frozen=True)
class Fail:
    """Raise `error(message, ...)`; `extra` adds to the error's fields (e.g. resumes_at)."""
    error: type[XeroError]
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


def _lower(response: httpx.Response, header: str) -> str:
    return (response.headers.get(header) or "").lower()


def policy(response: httpx.Response, *, refreshes: int, retries: int, repeatable: bool,
           now: datetime | None = None) -> Retry | Fail | None:
    """None when `response` is the answer; else Retry or Fail. `refreshes`: token refreshes this
    call made already (XeroAuth); `retries`: attempts repeated already; `repeatable`: a repeat is
    harmless (an idempotent method or an Idempotency-Key)."""
    status = response.status_code
    if status < 400:
        return None
    detail = xero_message(response) or ""
    if status == 401 and "insufficient_scope" in _lower(response, "www-authenticate"):
        return Fail(FatalError, "The connection lacks the scope this call needs: reconnect to grant it "
                    "(and check XERO_SCOPES / XERO_SCOPE_PROFILE).")
    if status == 401 and "authorizationunsuccessful" in detail.lower():
        return Fail(TierRefused, "Xero refused this endpoint for the app although the token is valid: the app's "
                    "Xero plan may not include it (Journals and Practice Manager need the Advanced tier).")
    if status in (401, 403):
        if status == 401 and "tokenexpired" in detail.lower():
            # The token endpoint just accepted our refresh token, so the grant is alive: a person
            # reconnecting would change nothing. Fail this call, keep the connection.
            return Fail(RetriableError, "Xero reported a freshly refreshed token as expired "
                        f"({refreshes} refreshes in a row); the connection is fine, try again shortly (and "
                        "check this machine's clock).")
        why = ("Xero no longer accepts the token for this organisation" if status == 401 else
               "Xero says this organisation is not connected to the app any more")
        return Fail(ReconnectNeeded, f"{why} (HTTP {status}{': ' + detail if detail else ''}). Reconnect it.")
    if status == 429:
        wait = retry_after_seconds(response, now)
        problem = _lower(response, "x-rate-limit-problem")
        if problem == "day":
            resumes = (now or datetime.now()) + timedelta(seconds=wait if wait is not None else 86400)
            return Fail(DailyLimitReached, f"Xero's daily call limit for this organisation is spent; calls resume "
                        f"at {resumes:%Y-%m-%d %H:%M} UTC.", {"resumes_at": resumes})
        if retries < MAX_RETRIES:
            return Retry(min(BACKOFF_CAP_SECONDS, wait) if wait is not None else None)
        return Fail(RateLimited, f"Xero kept refusing calls for the {problem or 'minute'} limit; try again shortly.")
    if status >= 500:
        if retries < MAX_RETRIES and repeatable:
            wait = retry_after_seconds(response, now)
            return Retry(min(BACKOFF_CAP_SECONDS, wait) if wait is not None else None)
        return Fail(RetriableError, f"Xero failed with HTTP {status}{': ' + detail if detail else ''}; "
                    "try again later.")
    return Fail(FatalError, detail or f"Xero refused the request (HTTP {status}).")


def transport_policy(exc: Exception, *, retries: int, repeatable: bool) -> Retry | None:
    """Retry, or None to fail with the transport's sentence. Nothing at the address (refused, a name
    that does not resolve) is never retried; a request that may have reached Xero is repeated only
    when repeating is harmless."""
    if unreachable(exc):
        return None
    never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    return Retry() if retries < MAX_RETRIES and (never_sent or repeatable) else None


def should_refresh(response: httpx.Response, refreshes: int) -> bool:
    """A 401/403 the token may cure: not a missing scope or a plan's refusal (the token is fine);
    once, and a second time only when Xero calls the refreshed token expired."""
    if response.status_code not in (401, 403) or refreshes >= MAX_REFRESHES:
        return False
    detail = (xero_message(response) or "").lower()
    if response.status_code == 401 and ("insufficient_scope" in _lower(response, "www-authenticate")
                                        or "authorizationunsuccessful" in detail):
        return False
    return not refreshes or "tokenexpired" in detail


# -- the layers -----------------------------------------------------------------------------------
class XeroAuth(httpx.Auth):
    """The bearer token and `xero-tenant-id`, and the refresh a 401/403 may call for (authlib's
    `OAuth2Auth` shape). One per `XeroClient.request` call: `refreshes` counts across its retries."""

    requires_response_body = True  # Xero says in the body whether the token expired

    def __init__(self, tokens: TokenManager, tenant_id: str, method: str, endpoint: str) -> None:
        self.tokens, self.tenant_id = tokens, tenant_id
        self.method, self.endpoint = method, endpoint
        self.refreshes = 0

    def _vault(self, fn: Callable[..., str], *args: str) -> str:
        try:
            return fn(*args)
        except VaultError as exc:
            # The sync stops for this tenant with the vault's sentence (which says the fix).
            raise TokensUnreadable(str(exc), tenant_id=self.tenant_id, method=self.method,
                                   endpoint=self.endpoint) from None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        while True:
            token = self._vault(self.tokens.access_token, self.tenant_id)
            request.headers["Authorization"] = f"Bearer {token}"
            request.headers["xero-tenant-id"] = self.tenant_id
            response = yield request
            if not should_refresh(response, self.refreshes):
                return
            self.refreshes += 1
            self._vault(self.tokens.force_refresh, self.tenant_id, token)
            # The same request again as a request of its own (what was sent stays as it was sent).
            request = httpx.Request(request.method, request.url, headers=request.headers, stream=request.stream,
                                    extensions=request.extensions)


class _HeldStream(httpx.SyncByteStream):
    """A response body that gives the limiter's lease back when it is closed (read to the end)."""

    def __init__(self, stream: httpx.SyncByteStream, release: Callable[[], None]) -> None:
        self._stream, self._release = stream, release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        try:
            if hasattr(self._stream, "close"):
                self._stream.close()
        finally:
            self._release()


class LimitedTransport(httpx.BaseTransport):
    """Each HTTP attempt under a lease of the limiter (acquire blocks until Xero's limits allow it),
    held until the body is read; `observe` sees every response's headers. Counts the attempts."""

    def __init__(self, inner: httpx.BaseTransport, limiter: Limiter, tenant_id: str, usage: "Usage") -> None:
        self.inner, self.limiter, self.tenant_id, self.usage = inner, limiter, tenant_id, usage

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with contextlib.ExitStack() as lease:
            lease.enter_context(self.limiter.acquire(self.tenant_id))
            self.usage.calls += 1
            response = self.inner.handle_request(request)
            try:
                self.limiter.observe(self.tenant_id, response)
            except BaseException:
                response.close()
                raise
            # A body still to come (in memory already: the lease ends here). A sync client's
            # transports give sync streams.
            if not response.is_closed and isinstance(response.stream, httpx.SyncByteStream):
                response.stream = _HeldStream(response.stream, lease.pop_all().close)
        return response

    def close(self) -> None:
        self.inner.close()


@dataclass
class Usage:
    calls: int = 0
    bytes: int = 0


# -- the client --------------------------------------------------------------------------------
def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(10.0, seconds))


class XeroClient:
    def __init__(self, settings: Settings, tenant_id: str, transport: httpx.BaseTransport | None = None,
                 clock: Clock = SYSTEM_CLOCK, limiter: Limiter | None = None,
                 token_manager: TokenManager | None = None, timeout: float = 30) -> None:
        self.settings = settings
        self.tenant_id = tenant_id
        self.clock = clock
        self.limiter: Limiter = limiter or _NoLimiter()
        self.tokens = token_manager or TokenManager(settings, transport=transport, clock=clock)
        self.usage = Usage()
        self._http = httpx.Client(timeout=_timeout(timeout), verify=ssl_context(), transport=transport)
        # httpx picks a transport per URL (proxies from the environment are mounts of their own):
        # the limiter wraps whichever it picks.

        def limit(t: httpx.BaseTransport) -> httpx.BaseTransport:
            return LimitedTransport(t, self.limiter, tenant_id, self.usage)

        self._http._transport = limit(self._http._transport)
        self._http._mounts = {k: (t if t is None else limit(t)) for k, t in self._http._mounts.items()}
        self._base = settings.api_url.rstrip("/")
        self._host = urlsplit(self._base).netloc

    @property
    def api_calls(self) -> int:
        return self.usage.calls

    @property
    def bytes_downloaded(self) -> int:
        return self.usage.bytes

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "XeroClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- URL -------------------------------------------------------------------------------
    def _url(self, path_or_url: str) -> str:
        if "://" not in path_or_url:
            return self._base + "/" + path_or_url.lstrip("/")
        url = path_or_url
        # A resourceUrl from a webhook names real Xero; map it onto the configured API base.
        if url.startswith(REAL_API_URL + "/") and self._base != REAL_API_URL:
            url = self._base + url[len(REAL_API_URL):]
        if urlsplit(url).netloc != self._host:
            raise FatalError(f"Refusing to send the Xero token to {urlsplit(url).netloc}: only {self._host} is "
                             "configured (XERO_API_URL).", tenant_id=self.tenant_id, endpoint=urlsplit(url).path)
        return url

    # -- errors ----------------------------------------------------------------------------
    def _err(self, cls: type[XeroError], message: str, method: str, endpoint: str,
             response: httpx.Response | None = None, **extra: Any) -> XeroError:
        kw: dict[str, Any] = dict(tenant_id=self.tenant_id, method=method, endpoint=endpoint)
        if response is not None:
            kw.update(status=response.status_code,
                      correlation_id=response.headers.get("xero-correlation-id"),
                      retry_after=retry_after_seconds(response, self.clock.now()),
                      detail=xero_message(response))
        kw.update(extra)
        return cls(message, **kw)

    # -- the call --------------------------------------------------------------------------
    def request(self, method: str, path_or_url: str, params: Params | None = None,
                headers: Mapping[str, str] | None = None, json: Any = None, content: bytes | str | None = None,
                files: Any = None, data: Mapping[str, Any] | None = None) -> httpx.Response:
        method = method.upper()
        url = self._url(path_or_url)
        endpoint = urlsplit(url).path
        sent_at = self.clock.now()
        repeatable = method in IDEMPOTENT_METHODS or any(k.lower() == "idempotency-key" for k in (headers or {}))
        auth = XeroAuth(self.tokens, self.tenant_id, method, endpoint)
        hdrs = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        retries = 0
        while True:
            try:
                resp = self._http.request(method, url, params=params, headers=hdrs, json=json, content=content,
                                          files=files, data=data, auth=auth)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if unreachable(exc):
                    raise XeroUnreachable(unreachable_sentence(self.settings, url, exc, "XERO_API_URL"),
                                          tenant_id=self.tenant_id, method=method, endpoint=endpoint) from None
                if transport_policy(exc, retries=retries, repeatable=repeatable) is None:
                    raise self._err(RetriableError, unreachable_message(url, exc, "XERO_API_URL", retries + 1),
                                    method, endpoint) from None
                self.clock.sleep(backoff_seconds(retries))
                retries += 1
                continue
            for r in (*resp.history, resp):  # the refusals the auth flow answered with a refresh, too
                self.usage.bytes += len(r.content)
            verdict = policy(resp, refreshes=auth.refreshes, retries=retries, repeatable=repeatable,
                             now=self.clock.now())
            if verdict is None:
                return resp
            if isinstance(verdict, Retry):
                self.clock.sleep(verdict.after if verdict.after is not None else backoff_seconds(retries))
                retries += 1
                continue
            extra = {"sent_at": sent_at} if verdict.error is ReconnectNeeded else {}
            raise self._err(verdict.error, verdict.message, method, endpoint, resp, **verdict.extra, **extra)

    def request_json(self, method: str, path_or_url: str, params: Params | None = None,
                     headers: Mapping[str, str] | None = None, json: Any = None,
                     files: Any = None, data: Mapping[str, Any] | None = None) -> tuple[Any, int]:
        """`request` and its body read as JSON (`request_json` below): (document, bytes received)."""
        return request_json(self, method, path_or_url, params=params, headers=headers, json=json, files=files,
                            data=data)

    def get_json(self, path: str, params: Params | None = None, headers: Mapping[str, str] | None = None) -> Any:
        return self.request_json("GET", path, params=params, headers=headers)[0]


class Requester(Protocol):
    """What `request_json` needs of a client: XeroClient, or a test's stand-in."""

    def request(self, method: str, path_or_url: str, params: Params | None = None,
                headers: Mapping[str, str] | None = None, json: Any = None, content: bytes | str | None = None,
                files: Any = None, data: Mapping[str, Any] | None = None) -> httpx.Response: ...


def request_json(client: Requester, method: str, path_or_url: str, params: Params | None = None,
                 headers: Mapping[str, str] | None = None, json: Any = None, files: Any = None,
                 data: Mapping[str, Any] | None = None) -> tuple[Any, int]:
    """`client.request` and its body read as JSON: (document, bytes received). The one place a Xero
    body is decoded, so every caller says the same sentence when it is not JSON (a proxy's or
    firewall's page, a body cut short on the way). A repeatable request (GET, or one with an
    Idempotency-Key) asks again NOT_JSON_RETRIES times first; a plain POST is not repeated, since
    Xero may have done it."""
    method = method.upper()
    repeatable = method in IDEMPOTENT_METHODS or any(k.lower() == "idempotency-key" for k in (headers or {}))
    attempts = NOT_JSON_RETRIES + 1 if repeatable else 1
    for attempt in range(1, attempts + 1):
        kw: dict[str, Any] = {"params": params, "headers": headers}
        if json is not None:
            kw["json"] = json
        if files is not None or data is not None:
            kw.update(files=files, data=data)
        resp = client.request(method, path_or_url, **kw)
        try:
            return orjson.loads(resp.content), len(resp.content or b"")
        except orjson.JSONDecodeError:
            if attempt < attempts:
                continue
            raise RetriableError(
                not_json_sentence(resp, attempts, repeatable), tenant_id=getattr(client, "tenant_id", None),
                method=method, endpoint=urlsplit(path_or_url).path, status=resp.status_code,
                correlation_id=resp.headers.get("xero-correlation-id")) from None
    raise AssertionError("unreachable")


def not_json_sentence(resp: httpx.Response, attempts: int, repeatable: bool) -> str:
    kind = resp.headers.get("content-type", "no content type").split(";")[0]
    times = f", {attempts} times in a row" if attempts > 1 else ""
    then = ("try again later; if it repeats, check XERO_API_URL and any proxy or firewall between here and Xero."
            if repeatable else "Xero may have done the request: check there before trying again.")
    return (f"Xero's answer was not JSON ({kind}, {len(resp.content or b'')} bytes{times}): something between here "
            f"and Xero may have answered in its place; {then}")


def unreachable_message(url: str, exc: BaseException, setting: str, attempts: int = 1) -> str:
    """A sentence saying which address did not answer, how, and which setting names it."""
    parts = urlsplit(url)
    where = f"{parts.scheme}://{parts.netloc}"
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        how = "could not be reached (nothing answered there)"
    elif isinstance(exc, httpx.TimeoutException):
        how = "did not answer in time"
    else:
        how = "dropped the connection"
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return (f"Xero at {where} ({setting}) {how}{tries} ({type(exc).__name__}). Check {setting} and the network, "
            "then try again later.")


def unreachable(exc: BaseException) -> bool:
    """A connection refused, or a host name that does not resolve: nothing there to retry against
    (a timeout, a reset or a TLS failure is not this: those keep their bounded retries)."""
    return any(isinstance(e, (ConnectionRefusedError, socket.gaierror)) for e in _chain(exc))


def unreachable_sentence(settings: Settings, url: str, exc: BaseException, setting: str) -> str:
    """The one sentence for an unreachable Xero: the settings' own fix when they have one (mock
    mode: how to start the fake Xero), else which address failed and how."""
    parts = urlsplit(url)
    if settings.unreachable_hint and parts.hostname in ("127.0.0.1", "localhost") and parts.port == settings.fake_port:
        return settings.unreachable_hint
    where = f"{parts.scheme}://{parts.netloc}"
    if any(isinstance(e, socket.gaierror) for e in _chain(exc)):
        how = f"the name {parts.hostname} does not resolve"
    else:
        how = "refused the connection (nothing listens there)"
    return f"Xero at {where} ({setting}) could not be reached: {how}. Check {setting} and the network, then sync again."


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    for _ in range(8):
        if exc is None:
            return
        yield exc
        exc = exc.__cause__ or exc.__context__


def limited_client(settings: Settings, tenant_id: str, *, transport: httpx.BaseTransport | None = None,
                   clock: Clock = SYSTEM_CLOCK) -> XeroClient:
    """A client pacing itself with the limits every Ledgerlink process shares for this tenant."""
    from .ratelimit import SharedRateLimiter

    return XeroClient(settings, tenant_id, transport=transport, clock=clock, limiter=SharedRateLimiter(settings, clock))
