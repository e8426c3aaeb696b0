"""One tree of exceptions for everything that talks to Xero.

    LedgerlinkError
    ├── SettingsError            (xero_core.settings)
    ├── VaultError               a token file cannot be read: names the file and the fix
    ├── StorageError             the data dir or a database file cannot be used (missing, not a
    │                            folder, no permission, read-only, full, damaged): names it and the fix
    ├── OAuthError               the consent flow failed (state, code exchange, callback error)
    ├── DataError                a record Xero sent cannot be used as it stands: names the record
    │   └── MissingCurrencyRate  a document in a foreign currency without a CurrencyRate
    └── XeroError                a call to Xero failed; carries tenant, method, endpoint, status,
        │                        correlation id and Retry-After
        ├── RetriableError       5xx, timeouts, transport errors: try again later
        │   ├── RateLimited      429 for the minute/concurrency: wait Retry-After
        │   └── XeroUnreachable  connection refused or the host name does not resolve: the run stops
        ├── DailyLimitReached    429 with X-Rate-Limit-Problem: day, or our own daily budget spent
        ├── ReconnectNeeded      invalid_grant / revoked / refresh expired: a person must reconnect
        │   └── TokensUnreadable also a VaultError: the tenant's token file cannot be opened
        ├── TierRefused          the app's Xero plan does not include this endpoint (Journals, XPM)
        └── FatalError           other 4xx: fail this step with Xero's message
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any


class LedgerlinkError(Exception):
    """Base of every error Ledgerlink raises on purpose. str() is a sentence for a person."""


class UsageError(LedgerlinkError):
    """A command asked for something that cannot be done as given (exit code 2); str() says what to give."""

    exit_code = 2


class VaultError(LedgerlinkError):
    pass


class DataError(LedgerlinkError):
    """A record from Xero that cannot be used as it stands. str() names the record and what is wrong."""


class MissingCurrencyRate(DataError):
    """A document in a currency other than the organisation's base currency arrived without a
    CurrencyRate: its base-currency amounts cannot be known, and a silent rate of 1 would be wrong."""


class StorageError(LedgerlinkError):
    """A file or folder under XERO_DATA_DIR cannot be used. Built by `xero_core.storage.describe`.

    `path` is the file or folder; `problem` is one of not_a_directory, is_a_directory, permission, read_only, full,
    corrupt, io; `reason` is what the operating system or database said, shortened.
    """

    def __init__(self, message: str, *, path: Path | str | None = None, problem: str = "io", reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.problem = problem
        self.reason = reason


class OAuthError(LedgerlinkError):
    """`code` is the OAuth error code (access_denied, invalid_scope, state_mismatch, ...)."""

    def __init__(self, message: str, code: str = "oauth_error"):
        super().__init__(message)
        self.code = code


class XeroError(LedgerlinkError):
    def __init__(
        self,
        message: str,
        *,
        tenant_id: str | None = None,
        method: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
        correlation_id: str | None = None,
        retry_after: float | None = None,
        detail: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.tenant_id = tenant_id
        self.method = method
        self.endpoint = endpoint
        self.status = status
        self.correlation_id = correlation_id
        self.retry_after = retry_after
        self.detail = detail

    def __str__(self) -> str:
        where = " ".join(x for x in (self.method, self.endpoint) if x)
        bits = [self.message]
        ctx = []
        if where:
            ctx.append(where)
        if self.status is not None:
            ctx.append(f"HTTP {self.status}")
        if self.tenant_id:
            ctx.append(f"tenant {self.tenant_id}")
        if self.correlation_id:
            ctx.append(f"Xero-Correlation-Id {self.correlation_id}")
        if ctx:
            bits.append("(" + ", ".join(ctx) + ")")
        return " ".join(bits)


class RetriableError(XeroError):
    pass


class RateLimited(RetriableError):
    pass


class XeroUnreachable(RetriableError):
    """Nothing listens at Xero's address (connection refused) or its name does not resolve.

    Not retried: a refusal comes back in milliseconds, so retrying only repeats it; the run stops
    for this host and its other steps are not tried. The message is the one sentence a person
    needs (mock mode: how to start the fake), the same for every tenant and step, so it is said
    once and has no per-call context appended."""

    def __str__(self) -> str:
        return self.message


class DailyLimitReached(XeroError):
    def __init__(self, message: str, *, resumes_at: datetime | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.resumes_at = resumes_at


class ReconnectNeeded(XeroError):
    """`sent_at`: when the refused call was sent. The caller marks the connection (connections.
    mark_for_reconnect), unless it was reconnected after that: the refusal was about the old grant."""

    def __init__(self, message: str, *, sent_at: datetime | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.sent_at = sent_at


class TokensUnreadable(VaultError, ReconnectNeeded):
    """No token can be read for the tenant (vault file tampered with, or encrypted under another key).

    A ReconnectNeeded for the sync (the remaining steps are skipped with this sentence) that does
    not mark the connection needs_reconnect: the vault's sentence says the fix (the previous key,
    or delete the file and reconnect)."""


class TierRefused(XeroError):
    pass


class FatalError(XeroError):
    pass
