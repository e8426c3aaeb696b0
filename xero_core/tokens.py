"""Token sets in the vault, and the access tokens handed to the HTTP client.

One token set ("grant") per consent: the tokens plus the tenant ids it serves (a Xero token is
the user's, so one consent usually serves several organisations and a Practice Manager tenant).
Lookups are by tenant.

Xero rotates the refresh token on every refresh and keeps the old one valid for only a short
grace period, so two refreshes racing each other can leave the loser with a dead token. Every
refresh (and every other read-modify-write of a grant) therefore runs under a per-grant thread
lock *and* a file lock shared by all processes, re-reads the vault after locking, and reuses a
refresh another process already did. The new set is saved before the token is handed out: a
crash after Xero rotated but before saving would lose the only refresh token.
"""
from __future__ import annotations

import contextlib
import logging
import os
import ssl
import threading
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator, Mapping, NoReturn, NotRequired, TypedDict

import httpx
from filelock import FileLock, Timeout

from .clock import SYSTEM_CLOCK, Clock
from .errors import FatalError, OAuthError, ReconnectNeeded, RetriableError, VaultError, XeroUnreachable
from .settings import Settings
from .vault import RotateResult, Vault

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import OAuth2Client

log = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS = 300          # refresh when the access token expires within 5 minutes
REFRESH_TOKEN_LIFETIME_DAYS = 60      # Xero drops a refresh token unused for 60 days
REFRESH_WARN_AFTER_DAYS = 45          # warn from day 45: two weeks to act
LOCK_TIMEOUT_SECONDS = 60.0
GRANT_PREFIX = "grant-"

# A token set as the vault holds it: grant_id, tenant_ids, created_at, dead (the reason Xero refused
# it, else None), access_token, refresh_token, token_type, scope, expires_at, refresh_issued_at.
Grant = dict[str, Any]


class TokenSummary(TypedDict):
    """What status and the app may show about a tenant's tokens (`token_summary`). Never a token."""
    has_tokens: bool
    grant_id: NotRequired[str | None]
    access_expires_at: datetime | None
    refresh_expires_at: datetime | None
    refresh_warning: str | None
    dead: str | None


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


# -- locking ---------------------------------------------------------------------------------
@contextlib.contextmanager
def grant_lock(settings: Settings, grant_id: str) -> Iterator[None]:
    """Exclusive access to one grant across threads and processes."""
    vault = Vault(settings)
    vault.ensure_dir()
    lock_dir = vault.dir / "locks"
    lock_dir.mkdir(mode=0o700, exist_ok=True)
    path = lock_dir / f"{grant_id}.lock"
    with _thread_locks_guard:
        tlock = _thread_locks.setdefault(str(path), threading.Lock())
    if not tlock.acquire(timeout=LOCK_TIMEOUT_SECONDS):
        raise RetriableError(f"Timed out waiting for another thread's token refresh (grant {grant_id}).")
    try:
        try:
            with FileLock(str(path), timeout=LOCK_TIMEOUT_SECONDS, mode=0o600):
                yield
        except Timeout:
            raise RetriableError(
                f"Timed out after {LOCK_TIMEOUT_SECONDS:.0f} s waiting for another process's token refresh "
                f"(lock {path}). If no Ledgerlink process is running, delete that lock file."
            ) from None
    finally:
        tlock.release()


def _vault_lock(settings: Settings) -> Callable[[str], ContextManager[None]]:
    """A lock factory for Vault.rotate: grants take their grant lock, other items none."""
    def lock(name: str) -> ContextManager[None]:
        if name.startswith(GRANT_PREFIX):
            return grant_lock(settings, name[len(GRANT_PREFIX):])
        return contextlib.nullcontext()
    return lock


# -- the store -------------------------------------------------------------------------------
def _grant_name(grant_id: str) -> str:
    return GRANT_PREFIX + grant_id


def _token_fields(token: Mapping[str, Any], now: float) -> dict[str, Any]:
    expires_in = token.get("expires_in")
    try:
        expires_at = now + float(expires_in) if expires_in is not None else float(token.get("expires_at") or now + 1800)
    except (TypeError, ValueError):
        expires_at = now + 1800
    scope = token.get("scope")
    if isinstance(scope, (list, tuple)):
        scope = " ".join(scope)
    return {
        "access_token": token["access_token"],
        "refresh_token": token.get("refresh_token"),
        "token_type": token.get("token_type") or "Bearer",
        "scope": scope,
        "expires_at": expires_at,
        "refresh_issued_at": now,
    }


def save_new_grant(settings: Settings, token: Mapping[str, Any], clock: Clock = SYSTEM_CLOCK) -> str:
    """Store a fresh token set (from a code exchange). Tenants are assigned afterwards."""
    grant_id = uuid.uuid4().hex
    now = clock.time()
    data = {"grant_id": grant_id, "tenant_ids": [], "created_at": now, "dead": None, **_token_fields(token, now)}
    Vault(settings).write(_grant_name(grant_id), data)
    return grant_id


def read_grant(settings: Settings, grant_id: str) -> Grant | None:
    return Vault(settings).read(_grant_name(grant_id))


def write_grant(settings: Settings, data: Grant) -> None:
    Vault(settings).write(_grant_name(data["grant_id"]), data)


def grant_ids(settings: Settings) -> list[str]:
    return [n[len(GRANT_PREFIX):] for n in Vault(settings).names(GRANT_PREFIX)]


def find_grant(settings: Settings, tenant_id: str) -> tuple[str | None, Grant | None]:
    """The newest token set serving `tenant_id`, or (None, None).

    A vault file that cannot be opened (tampered, wrong key) is raised as its VaultError only when
    no readable set serves the tenant: a reconnect writes a new set, and an old broken file left
    beside it must not keep the freshly reconnected organisation unusable.
    """
    best: tuple[str | None, Grant | None] = (None, None)
    unreadable: VaultError | None = None
    for gid in grant_ids(settings):
        try:
            data = read_grant(settings, gid)
        except VaultError as exc:
            unreadable = unreadable or exc
            continue
        if data and tenant_id in data.get("tenant_ids", []):
            if best[1] is None or data.get("created_at", 0) > best[1].get("created_at", 0):
                best = (gid, data)
    if best[1] is None and unreadable is not None:
        raise unreadable
    return best


def assign_tenants(settings: Settings, grant_id: str, tenant_ids: list[str]) -> None:
    """Make `grant_id` the token set for these tenants, taking them off any older set."""
    wanted = set(tenant_ids)
    for gid in grant_ids(settings):
        if gid == grant_id:
            continue
        with grant_lock(settings, gid):
            data = read_grant(settings, gid)
            if not data or not wanted & set(data.get("tenant_ids", [])):
                continue
            data["tenant_ids"] = [t for t in data["tenant_ids"] if t not in wanted]
            if data["tenant_ids"]:
                write_grant(settings, data)
            else:
                # Nothing left uses it. Not revoked: revoking would kill the connections the
                # new consent just made for the same user.
                Vault(settings).delete(_grant_name(gid))
    with grant_lock(settings, grant_id):
        data = read_grant(settings, grant_id)
        if data is None:
            raise OAuthError(f"The token set {grant_id} vanished from the vault while connecting.", code="server_error")
        data["tenant_ids"] = sorted(set(data.get("tenant_ids", [])) | wanted)
        write_grant(settings, data)


def remove_tenant(settings: Settings, tenant_id: str) -> None:
    """Forget `tenant_id`'s tokens; a set still serving other tenants is kept for them."""
    for gid in grant_ids(settings):
        with grant_lock(settings, gid):
            data = read_grant(settings, gid)
            if not data or tenant_id not in data.get("tenant_ids", []):
                continue
            data["tenant_ids"] = [t for t in data["tenant_ids"] if t != tenant_id]
            if data["tenant_ids"]:
                write_grant(settings, data)
            else:
                Vault(settings).delete(_grant_name(gid))


def rotate_vault_key(settings: Settings) -> RotateResult:
    """Re-encrypt every vault file under the current key (grants under their refresh lock)."""
    return Vault(settings).rotate(lock=_vault_lock(settings))


def _utc(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=timezone.utc) if ts else None


def token_summary(settings: Settings, tenant_id: str, clock: Clock = SYSTEM_CLOCK) -> TokenSummary:
    """What status/the app may show about a tenant's tokens. Never a token."""
    gid, data = find_grant(settings, tenant_id)
    if data is None:
        return {"has_tokens": False, "access_expires_at": None, "refresh_expires_at": None,
                "refresh_warning": None, "dead": None}
    refresh_expires = _utc(data.get("refresh_issued_at", 0) + REFRESH_TOKEN_LIFETIME_DAYS * 86400)
    age_days = (clock.time() - data.get("refresh_issued_at", 0)) / 86400
    warning = None
    if data.get("dead"):
        warning = data["dead"]
    elif age_days >= REFRESH_TOKEN_LIFETIME_DAYS:
        warning = "The refresh token is over 60 days unused: Xero has dropped it. Reconnect."
    elif age_days >= REFRESH_WARN_AFTER_DAYS:
        warning = (f"The refresh token expires on {refresh_expires:%Y-%m-%d} unless it is used: run a sync "
                   "(any API call refreshes it) or reconnect.")
    return {
        "has_tokens": True,
        "grant_id": gid,
        "access_expires_at": _utc(data.get("expires_at")),
        "refresh_expires_at": refresh_expires,
        "refresh_warning": warning,
        "dead": data.get("dead"),
    }


# -- HTTP: every client's TLS settings ------------------------------------------------------
_ssl: ssl.SSLContext | None = None
_ssl_lock = threading.Lock()


def ssl_context() -> ssl.SSLContext:
    """One CA bundle load per process, shared by every httpx client Ledgerlink opens (the API's,
    the token endpoint's, connect's): each load costs ~25-50 ms of CPU, and the admin app's
    Connection page opened two or three clients on every view."""
    global _ssl
    with _ssl_lock:
        if _ssl is None:
            _ssl = httpx.create_ssl_context()
        return _ssl


# -- refresh ---------------------------------------------------------------------------------
def oauth_client(settings: Settings, transport: httpx.BaseTransport | None = None, **kw: Any) -> OAuth2Client:
    """authlib's httpx client, authenticating to the token endpoint with HTTP Basic."""
    import warnings

    import authlib.deprecate  # noqa: F401  (its import adds an "always" filter; let it run first)

    with warnings.catch_warnings():
        # authlib nudges towards httpx2, which breaks httpx.MockTransport: stay on httpx.
        warnings.simplefilter("ignore", DeprecationWarning)
        from authlib.integrations.httpx_client import OAuth2Client

    kwargs: dict[str, Any] = dict(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        token_endpoint_auth_method="client_secret_basic",
        revocation_endpoint_auth_method="client_secret_basic",
        timeout=30.0,
        verify=ssl_context(),
        **kw,
    )
    if transport is not None:
        kwargs["transport"] = transport
    return OAuth2Client(**kwargs)


def authlib_error_code(exc: BaseException) -> str | None:
    code = getattr(exc, "error", None)
    return code if isinstance(code, str) else None


class TokenManager:
    """Access tokens per tenant, refreshed early and never twice for one expiry."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self.transport = transport
        self.clock = clock
        self.refreshes = 0  # refreshes this manager performed (tests, figures)
        self._grant_of: dict[str, str] = {}  # tenant -> grant id, so a call reads one file, not all
        self._read_cache: dict[str, tuple[tuple[int, int, int], Grant]] = {}  # grant id -> (file signature, its data)

    def _grant(self, tenant_id: str) -> tuple[str, Grant]:
        gid, data = None, None
        cached = self._grant_of.get(tenant_id)
        if cached:
            # A reconnect takes the tenant off its old set, so a set still listing it is current.
            data = self._read(cached)
            gid = cached if data and tenant_id in data.get("tenant_ids", []) else None
        if gid is None:
            gid, data = find_grant(self.settings, tenant_id)
            if gid:
                self._grant_of[tenant_id] = gid
        if gid is None or data is None:
            raise ReconnectNeeded(
                f"No tokens are stored for tenant {tenant_id}: connect it first "
                "(python -m xero_core connect, or the app's Connections page).",
                tenant_id=tenant_id,
            )
        if data.get("dead"):
            raise ReconnectNeeded(data["dead"], tenant_id=tenant_id)
        return gid, data

    def _read(self, gid: str) -> Grant | None:
        """The token set, decrypted again only when its file changed (a refresh here or in another
        process replaces the file: a new inode): a sync's every call used to decrypt it afresh."""
        path = Vault(self.settings).path(_grant_name(gid))
        try:
            st = os.stat(path)
            sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            sig = None
        hit = self._read_cache.get(gid)
        if sig is not None and hit is not None and hit[0] == sig:
            return hit[1]
        data = read_grant(self.settings, gid)
        if sig is not None and data is not None:
            self._read_cache[gid] = (sig, data)
        return data

    def _expiring(self, data: Grant) -> bool:
        return bool(data.get("expires_at", 0) - self.clock.time() <= REFRESH_MARGIN_SECONDS)

    def access_token(self, tenant_id: str) -> str:
        gid, data = self._grant(tenant_id)
        if not self._expiring(data):
            return str(data["access_token"])
        return self._refresh(gid, tenant_id, stale=None)

    def force_refresh(self, tenant_id: str, stale_access_token: str) -> str:
        """After a 401: refresh unless someone already replaced `stale_access_token`."""
        gid, _ = self._grant(tenant_id)
        return self._refresh(gid, tenant_id, stale=stale_access_token)

    def refresh_expiry(self, tenant_id: str) -> datetime | None:
        """When Xero will drop this tenant's refresh token if it stays unused."""
        return token_summary(self.settings, tenant_id, self.clock)["refresh_expires_at"]

    def _refresh(self, gid: str, tenant_id: str, stale: str | None) -> str:
        token = self._refresh_locked(gid, tenant_id, stale)
        if token is None:
            # The set was replaced (a reconnect) meanwhile: look the tenant up again, outside the lock.
            self._grant_of.pop(tenant_id, None)
            return self.access_token(tenant_id)
        return token

    def _refresh_locked(self, gid: str, tenant_id: str, stale: str | None) -> str | None:
        with grant_lock(self.settings, gid):
            data = read_grant(self.settings, gid)  # re-read: another process may have refreshed
            if data is None or tenant_id not in data.get("tenant_ids", []):
                return None
            if data.get("dead"):
                raise ReconnectNeeded(data["dead"], tenant_id=tenant_id)
            if stale is None and not self._expiring(data):
                return str(data["access_token"])
            if stale is not None and data["access_token"] != stale:
                return str(data["access_token"])
            if not data.get("refresh_token"):
                self._mark_dead(data, "Xero issued no refresh token (offline_access missing), so the "
                                      "connection lapsed after 30 minutes. Reconnect.", tenant_id)
            token = self._call_refresh(data, tenant_id)
            now = self.clock.time()
            fresh = _token_fields(token, now)
            if not fresh["refresh_token"]:
                fresh["refresh_token"] = data["refresh_token"]
                fresh["refresh_issued_at"] = data.get("refresh_issued_at", now)
            data.update(fresh)
            data["last_refreshed_at"] = now
            write_grant(self.settings, data)  # saved before anyone uses it
            self.refreshes += 1
            log.info("Refreshed the Xero token set for %d tenant(s).", len(data["tenant_ids"]))
            return str(data["access_token"])

    def _call_refresh(self, data: Grant, tenant_id: str) -> dict[str, Any]:
        client = oauth_client(self.settings, self.transport)
        try:
            token = dict(client.refresh_token(self.settings.token_url, refresh_token=data["refresh_token"]))
            if not token.get("access_token"):
                raise ValueError("no access_token in the token response")
            return token
        except httpx.HTTPStatusError as exc:  # authlib raises these for 5xx / non-JSON bodies
            status = exc.response.status_code
            raise RetriableError(
                "Xero's token endpoint failed; the refresh will be tried again.",
                tenant_id=tenant_id, method="POST", endpoint="/connect/token", status=status,
                correlation_id=exc.response.headers.get("xero-correlation-id"),
                retry_after=_retry_after(exc.response),
            ) from None
        except httpx.TransportError as exc:
            from .client import unreachable, unreachable_message, unreachable_sentence

            if unreachable(exc):
                raise XeroUnreachable(unreachable_sentence(self.settings, self.settings.token_url, exc,
                                                           "XERO_TOKEN_URL"),
                                      tenant_id=tenant_id, method="POST", endpoint="/connect/token") from None
            raise RetriableError(
                unreachable_message(self.settings.token_url, exc, "XERO_TOKEN_URL")
                + " The token refresh is tried again then.",
                tenant_id=tenant_id, method="POST", endpoint="/connect/token",
            ) from None
        except ValueError as exc:
            raise RetriableError(
                f"Xero's token endpoint ({self.settings.token_url}) gave an unreadable answer ({type(exc).__name__}); "
                "the refresh will be tried again.",
                tenant_id=tenant_id, method="POST", endpoint="/connect/token",
            ) from None
        except Exception as exc:
            code = authlib_error_code(exc)
            if code is None:
                raise
            if code in ("invalid_grant", "unauthorized_client"):
                self._mark_dead(
                    data,
                    f"Xero refused the refresh token ({code}): the connection was revoked in Xero, or the "
                    "token went unused for 60 days. Reconnect the organisation.",
                    tenant_id,
                )
            if code == "invalid_client":
                raise FatalError(
                    "Xero rejected the app's credentials (invalid_client): check XERO_CLIENT_ID and "
                    "XERO_CLIENT_SECRET against developer.xero.com.",
                    tenant_id=tenant_id, method="POST", endpoint="/connect/token", status=400,
                ) from None
            raise RetriableError(
                f"Xero's token endpoint answered {code}; the refresh will be tried again.",
                tenant_id=tenant_id, method="POST", endpoint="/connect/token",
            ) from None
        finally:
            client.close()

    def _mark_dead(self, data: Grant, reason: str, tenant_id: str) -> NoReturn:
        """Record that the set is dead, so no caller retries it (no loops), then raise."""
        from . import connections

        data["dead"] = reason
        write_grant(self.settings, data)
        for t in data.get("tenant_ids", []):
            try:
                connections.set_status(self.settings, t, "needs_reconnect", reason, at=self.clock.now())
            except Exception as exc:  # the vault already says so; the table catches up on next status
                log.warning("Could not mark tenant %s as needs_reconnect: %s", t, exc)
        raise ReconnectNeeded(reason, tenant_id=tenant_id, method="POST", endpoint="/connect/token")


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None
