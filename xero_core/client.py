"""XeroClient: every call to a Xero API goes through here (policy over a swappable transport).

Policy, in one place:
- Bearer token from TokenManager, `xero-tenant-id`, `Accept: application/json` (callers may ask
  for XML, e.g. Practice Manager). Paths are relative to `settings.api_url`.
- 401: refresh once and retry; still 401 (or 403 after a refresh) -> ReconnectNeeded, and the
  connection is marked needs_reconnect. 401 `insufficient_scope` -> FatalError (reconnect with the
  scope). 401 `AuthorizationUnsuccessful` (token fine, endpoint refused) -> TierRefused.
- 429: wait Retry-After (else exponential backoff with jitter, capped at 60 s), at most 3 retries,
  then RateLimited. `X-Rate-Limit-Problem: day` -> DailyLimitReached at once.
- A refused connection or a host name that does not resolve: XeroUnreachable at once, no retry
  (it would only be refused again; the sync stops for this host with one sentence).
- 5xx, timeouts, transport errors: retry with backoff (3 retries), then RetriableError. Writes
  (POST/PUT/PATCH) are repeated only with an Idempotency-Key header, or when the connection was
  never made; otherwise the first failure is raised as RetriableError for the caller to decide.
- Other 4xx: FatalError with Xero's own message, whatever the body's shape.
Every error carries tenant, method, endpoint (path only: no query), status, Xero-Correlation-Id
and Retry-After. Sleeps go through the clock, so tests never wait.
"""
from __future__ import annotations

import contextlib
import email.utils
import json as jsonlib
import logging
import random
import re
import socket
import threading
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from . import connections
from .clock import SYSTEM_CLOCK, Clock
from .errors import (DailyLimitReached, FatalError, RateLimited, ReconnectNeeded, RetriableError, TierRefused,
                     TokensUnreadable, VaultError, XeroError, XeroUnreachable)
from .settings import REAL_API_URL, Settings
from .tokens import TokenManager

log = logging.getLogger(__name__)

MAX_RETRIES = 3
# A token Xero calls expired right after a refresh is refreshed once more (clock skew, a race), no more.
MAX_REFRESHES = 2
# Retried after a timeout or 5xx; POST/PUT/PATCH only with an Idempotency-Key (Xero honours it),
# since a write that timed out may have happened.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
BACKOFF_CAP_SECONDS = 60.0
USER_AGENT = "Ledgerlink/0.1"


class _NoLimiter:
    """The limiter protocol's no-op: acquire(tenant) -> context manager; observe(tenant, response)."""

    def acquire(self, tenant_id: str):
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
    r = (rng or random).random()
    return min(BACKOFF_CAP_SECONDS, (2 ** attempt) * (1 + r))


# -- the client --------------------------------------------------------------------------------
def _timeout(seconds: float) -> httpx.Timeout:
    return httpx.Timeout(seconds, connect=min(10.0, seconds))


_ssl = None
_ssl_lock = threading.Lock()


def _ssl_context():
    """One CA bundle load per process (~25 ms each), shared by every tenant's client."""
    global _ssl
    with _ssl_lock:
        if _ssl is None:
            _ssl = httpx.create_ssl_context()
        return _ssl


class XeroClient:
    def __init__(self, settings: Settings, tenant_id: str, transport: httpx.BaseTransport | None = None,
                 clock: Clock = SYSTEM_CLOCK, limiter: Any = None, token_manager: TokenManager | None = None,
                 timeout: float = 30):
        self.settings = settings
        self.tenant_id = tenant_id
        self.clock = clock
        self.limiter = limiter or _NoLimiter()
        self.tokens = token_manager or TokenManager(settings, transport=transport, clock=clock)
        self._http = httpx.Client(timeout=_timeout(timeout), verify=_ssl_context(),
                                  **({"transport": transport} if transport is not None else {}))
        self._base = settings.api_url.rstrip("/")
        self._host = urlsplit(self._base).netloc
        self.api_calls = 0
        self.bytes_downloaded = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "XeroClient":
        return self

    def __exit__(self, *exc) -> None:
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
    def _err(self, cls, message: str, method: str, endpoint: str, response: httpx.Response | None = None,
             **extra) -> XeroError:
        kw: dict[str, Any] = dict(tenant_id=self.tenant_id, method=method, endpoint=endpoint)
        if response is not None:
            kw.update(status=response.status_code,
                      correlation_id=response.headers.get("xero-correlation-id"),
                      retry_after=retry_after_seconds(response, self.clock.now()),
                      detail=xero_message(response))
        kw.update(extra)
        return cls(message, **kw)

    def _needs_reconnect(self, reason: str, method: str, endpoint: str, response: httpx.Response,
                         sent_at: datetime) -> XeroError:
        try:
            # A reconnect that landed while this call was in flight wins over the call's stale refusal.
            connections.set_status(self.settings, self.tenant_id, "needs_reconnect", reason, at=self.clock.now(),
                                   unless_connected_after=sent_at)
        except Exception as exc:  # the error below still says so
            log.warning("Could not mark tenant %s as needs_reconnect: %s", self.tenant_id, exc)
        return self._err(ReconnectNeeded, reason, method, endpoint, response)

    # -- the call --------------------------------------------------------------------------
    def request(self, method: str, path_or_url: str, params=None, headers=None, json=None, content=None,
                files=None, data=None) -> httpx.Response:
        method = method.upper()
        url = self._url(path_or_url)
        endpoint = urlsplit(url).path
        refreshed = 0
        retries = 0
        sent_at = self.clock.now()
        repeatable = method in IDEMPOTENT_METHODS or any(k.lower() == "idempotency-key" for k in (headers or {}))
        while True:
            try:
                token = self.tokens.access_token(self.tenant_id)
            except VaultError as exc:
                # The sync stops for this tenant with the vault's sentence (which says the fix).
                raise TokensUnreadable(str(exc), tenant_id=self.tenant_id, method=method, endpoint=endpoint) from None
            hdrs = {"Accept": "application/json", "User-Agent": USER_AGENT}
            hdrs.update(headers or {})
            hdrs["Authorization"] = f"Bearer {token}"
            hdrs["xero-tenant-id"] = self.tenant_id
            try:
                with self.limiter.acquire(self.tenant_id):
                    self.api_calls += 1
                    resp = self._http.request(method, url, params=params, headers=hdrs, json=json,
                                              content=content, files=files, data=data)
                    self.bytes_downloaded += len(resp.content)
                    self.limiter.observe(self.tenant_id, resp)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if unreachable(exc):
                    raise XeroUnreachable(unreachable_sentence(self.settings, url, exc, "XERO_API_URL"),
                                          tenant_id=self.tenant_id, method=method, endpoint=endpoint) from None
                # A request that may have reached Xero is repeated only when repeating is harmless.
                never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
                if retries < MAX_RETRIES and (never_sent or repeatable):
                    self.clock.sleep(backoff_seconds(retries))
                    retries += 1
                    continue
                raise self._err(RetriableError, unreachable_message(url, exc, "XERO_API_URL", retries + 1),
                                method, endpoint) from None

            status = resp.status_code
            if status < 400:
                return resp
            problem = (resp.headers.get("x-rate-limit-problem") or "").lower()
            www = (resp.headers.get("www-authenticate") or "").lower()
            detail = xero_message(resp) or ""

            if status == 401 and "insufficient_scope" in www:
                raise self._err(FatalError, "The connection lacks the scope this call needs: reconnect to grant it "
                                "(and check XERO_SCOPES / XERO_SCOPE_PROFILE).", method, endpoint, resp)
            if status == 401 and "authorizationunsuccessful" in detail.lower():
                raise self._err(TierRefused, "Xero refused this endpoint for the app although the token is valid: "
                                "the app's Xero plan may not include it (Journals and Practice Manager need the "
                                "Advanced tier).", method, endpoint, resp)
            if status in (401, 403):
                if refreshed < MAX_REFRESHES and (not refreshed or "tokenexpired" in detail.lower()):
                    refreshed += 1
                    try:
                        self.tokens.force_refresh(self.tenant_id, token)
                    except VaultError as exc:
                        raise TokensUnreadable(str(exc), tenant_id=self.tenant_id, method=method,
                                               endpoint=endpoint) from None
                    continue
                if status == 401 and "tokenexpired" in detail.lower():
                    # The token endpoint just accepted our refresh token, so the grant is alive: a
                    # person reconnecting would change nothing. Fail this call, keep the connection.
                    raise self._err(RetriableError, "Xero reported a freshly refreshed token as expired "
                                    f"({refreshed} refreshes in a row); the connection is fine, try again "
                                    "shortly (and check this machine's clock).", method, endpoint, resp)
                why = ("Xero no longer accepts the token for this organisation" if status == 401 else
                       "Xero says this organisation is not connected to the app any more")
                raise self._needs_reconnect(f"{why} (HTTP {status}{': ' + detail if detail else ''}). Reconnect it.",
                                            method, endpoint, resp, sent_at)
            if status == 429:
                wait = retry_after_seconds(resp, self.clock.now())
                if problem == "day":
                    resumes = self.clock.now() + timedelta(seconds=wait if wait is not None else 86400)
                    raise self._err(DailyLimitReached, f"Xero's daily call limit for this organisation is spent; "
                                    f"calls resume at {resumes:%Y-%m-%d %H:%M} UTC.", method, endpoint, resp,
                                    resumes_at=resumes)
                if retries < MAX_RETRIES:
                    self.clock.sleep(min(BACKOFF_CAP_SECONDS, wait) if wait is not None else backoff_seconds(retries))
                    retries += 1
                    continue
                raise self._err(RateLimited, f"Xero kept refusing calls for the {problem or 'minute'} limit; "
                                "try again shortly.", method, endpoint, resp)
            if status >= 500:
                if retries < MAX_RETRIES and repeatable:
                    wait = retry_after_seconds(resp, self.clock.now())
                    self.clock.sleep(min(BACKOFF_CAP_SECONDS, wait) if wait is not None else backoff_seconds(retries))
                    retries += 1
                    continue
                raise self._err(RetriableError, f"Xero failed with HTTP {status}"
                                f"{': ' + detail if detail else ''}; try again later.", method, endpoint, resp)
            raise self._err(FatalError, detail or f"Xero refused the request (HTTP {status}).", method, endpoint, resp)

    def get_json(self, path: str, params=None, headers=None) -> Any:
        resp = self.request("GET", path, params=params, headers=headers)
        try:
            return resp.json()
        except ValueError:
            raise self._err(FatalError, "Xero's answer was not JSON (was Accept: application/json overridden?).",
                            "GET", urlsplit(self._url(path)).path, resp) from None


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


def _chain(exc: BaseException | None):
    for _ in range(8):
        if exc is None:
            return
        yield exc
        exc = exc.__cause__ or exc.__context__


def limited_client(settings: Settings, tenant_id: str, *, transport=None, clock=SYSTEM_CLOCK) -> XeroClient:
    """A client pacing itself with the limits every Ledgerlink process shares for this tenant."""
    from .ratelimit import SharedRateLimiter

    return XeroClient(settings, tenant_id, transport=transport, clock=clock, limiter=SharedRateLimiter(settings, clock))


def open_client(settings: Settings, tenant_id: str, **kw) -> XeroClient:
    """A client for a tenant, refusing early when the connection is known to be unusable."""
    conn = connections.get_connection(settings, tenant_id)
    if conn is not None and conn["status"] != "connected":
        reason = conn.get("status_reason") or ("disconnected" if conn["status"] == "disconnected" else "needs reconnect")
        raise ReconnectNeeded(f"{conn['tenant_name']} is {conn['status'].replace('_', ' ')}: {reason}",
                              tenant_id=tenant_id)
    return XeroClient(settings, tenant_id, **kw)
