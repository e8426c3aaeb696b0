"""Keep secrets out of log output, whoever logs them.

Every token the vault reads or writes is registered here. A log-record factory (installed once,
process-wide) replaces any registered secret, in raw, URL-encoded or base64 form, and any
`Bearer …` / `refresh_token=…` pattern, before a handler ever sees the record. A factory rather
than a logging.Filter because filters on a logger do not apply to records propagated from
child loggers (httpx, httpcore, authlib), and handlers added later (pytest's caplog, basicConfig)
would miss a handler-level filter.
"""
from __future__ import annotations

import base64
import logging
import re
import threading
import urllib.parse
from collections import OrderedDict
from typing import Any, Iterable

MASK = "[redacted]"
_MIN_LEN = 12  # shorter strings are not tokens and would mangle ordinary text

_lock = threading.Lock()
# Most recent first out: a long-running scheduler refreshes tokens all day, and every record is
# checked against every entry, so keep the newest few hundred (old tokens are dead anyway).
_MAX_VARIANTS = 700
_secrets: "OrderedDict[str, None]" = OrderedDict()
_pinned: set[str] = set()  # configuration secrets: never evicted
_installed = False

_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*"),
    re.compile(r"(?i)(\b(?:access_token|refresh_token|id_token|code_verifier|client_secret|token|code)=)[^\s&\"']+"),
    re.compile(r"(?i)(\"(?:access_token|refresh_token|id_token|code_verifier|client_secret)\"\s*:\s*\")[^\"]*"),
    re.compile(r"(?i)(\bbasic\s+)[A-Za-z0-9+/]{16,}=*"),
)


def _variants(secret: str) -> set[str]:
    raw = secret.encode()
    out = {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    return {v for v in out if len(v) >= _MIN_LEN}


def _all_variants(secrets: Iterable[str | None]) -> set[str]:
    new: set[str] = set()
    for s in secrets:
        if s and len(s) >= _MIN_LEN:
            new |= _variants(s)
    return new


def register(*secrets: str | None) -> None:
    """Remember secrets so that log output never carries them. Installs the factory on first use."""
    new = _all_variants(secrets)
    if new:
        with _lock:
            for v in new:
                _secrets[v] = None
                _secrets.move_to_end(v)
            while len(_secrets) > _MAX_VARIANTS:
                _secrets.popitem(last=False)
    install()


def pin(*secrets: str | None) -> None:
    """Like register(), for long-lived secrets (client secret, keys, passwords): never evicted."""
    new = _all_variants(secrets)
    if new:
        with _lock:
            _pinned.update(new)
    install()


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        known = sorted(_pinned.union(_secrets), key=len, reverse=True)
    for s in known:
        if s in text:
            text = text.replace(s, MASK)
    for pat in _PATTERNS:
        text = pat.sub(lambda m: m.group(1) + MASK, text)
    return text


def install() -> None:
    """Wrap the log-record factory once per process (idempotent)."""
    global _installed
    if _installed:
        return
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                message = record.getMessage()
            except Exception:  # a broken format string is the caller's bug; leave it alone
                return record
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                text = str(exc)
                if redact(text) != text:
                    # The traceback would print the secret: keep the type, drop the text.
                    record.exc_info = None
                    record.msg = f"{record.msg} [{type(exc).__name__}: details redacted]"
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
