"""Every error on a page becomes a sentence with the next step, never a traceback.

Engine errors (LedgerlinkError, SettingsError) already read as a sentence for a person; we add
the next step where the type tells us one. Anything unexpected is logged server-side (with the
traceback, where an operator can read it) and shown as a short apology with what to do.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Iterator

import streamlit as st

from xero_core.errors import (
    DailyLimitReached,
    LedgerlinkError,
    OAuthError,
    RateLimited,
    ReconnectNeeded,
    RetriableError,
    StorageError,
    TierRefused,
    TokensUnreadable,
    VaultError,
)
from xero_core.settings import SettingsError

from .text import md

log = logging.getLogger("ledgerlink.app")

# The sentences already shown in this script run: a damaged database or an unwritable data dir
# fails every section of a page the same way, and one sentence says it (shell.main resets it).
_SHOWN: contextvars.ContextVar[set | None] = contextvars.ContextVar("ledgerlink_errors_shown", default=None)


def begin_run() -> contextvars.Token:
    return _SHOWN.set(set())


def end_run(token: contextvars.Token) -> None:
    _SHOWN.reset(token)


def next_step(exc: BaseException) -> str:
    """What a person should do about an engine error, in one sentence."""
    if isinstance(exc, SettingsError):
        return "Fix the setting in the environment or the .env file, then restart the app."
    if isinstance(exc, StorageError):
        return ""  # the sentence names the file or XERO_DATA_DIR and the fix already
    if isinstance(exc, TokensUnreadable):
        return ""  # the vault's sentence says which fix: the previous key, or delete and reconnect
    if isinstance(exc, ReconnectNeeded):
        return "Open the Connection page and reconnect this organisation."
    if isinstance(exc, TierRefused):
        return "Your Xero plan does not include this; the rest of Ledgerlink keeps working."
    if isinstance(exc, DailyLimitReached):
        return "Xero's daily API limit is spent for this organisation; the next sync resumes after it resets."
    if isinstance(exc, RateLimited):
        return "Xero asked us to slow down; try again in a minute."
    if isinstance(exc, RetriableError):
        return "Xero or the network had a temporary problem; try again in a few minutes."
    if isinstance(exc, OAuthError):
        return ""  # the page shows oauth_error_advice(code) instead
    if isinstance(exc, VaultError):
        return "Check XERO_ENCRYPTION_KEY (and XERO_ENCRYPTION_KEY_PREVIOUS after a key rotation)."
    if type(exc).__name__ == "DatabaseBusy":
        return "Another Ledgerlink process is busy with the database; try again in a minute."
    if type(exc).__name__ == "SyncBusy":
        return "A sync for this organisation is already running (perhaps the scheduler's); wait for it to finish."
    return ""


def say(exc: BaseException) -> str:
    """The sentence shown for an engine error (never a traceback, never a secret)."""
    text = str(exc).strip() or type(exc).__name__
    step = next_step(exc)
    return f"{text} {step}".strip()


def show(exc: BaseException) -> None:
    if not isinstance(exc, (LedgerlinkError, SettingsError)):
        # A disk problem that reached the page untranslated (a folder in the way, a full disk, a
        # damaged file) is still a sentence naming the file and the fix, not "something unexpected".
        from xero_core.storage import as_storage_error

        se = as_storage_error(exc)
        if se is not None:
            log.warning("storage problem on an admin page: %s", se)
            exc = se
    if isinstance(exc, (LedgerlinkError, SettingsError)):
        text = say(exc)
        shown = _SHOWN.get()
        if shown is not None and isinstance(exc, StorageError):
            if text in shown:
                return
            shown.add(text)
        st.error(md(text, 1000), icon=":material/error:")  # an error's sentence may quote Xero
    else:
        log.exception("unexpected error on an admin page")
        st.error(
            "Something unexpected went wrong on this page and nothing was changed by the failed step. "
            "Reload the page to try again; if it keeps happening, the app's log has the details.",
            icon=":material/error:",
        )


@contextlib.contextmanager
def shown_errors() -> Iterator[None]:
    """Wrap a page (or one action on it). st.stop/st.rerun are BaseExceptions and pass through."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the point is to catch everything on a page
        show(exc)


def on_script_error(exc: Exception) -> bool:
    """st.App's last resort for an error outside a page's wrapper: a sentence, never a traceback."""
    show(exc)
    return True  # suppress Streamlit's own exception display
