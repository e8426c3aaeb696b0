"""Widgets every page shares: settings, the mock banner, the tenant picker, reset demo."""
from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from xero_core import timefmt
from xero_core.clock import SYSTEM_CLOCK
from xero_core.settings import Settings, SettingsError, load_settings

from . import engine
from .guard import say, shown_errors
from .text import code, md, plain

TENANT_KEY = "tenant_id"
PICKER_KEY = "_tenant_picker"
STATUS_LABELS = {
    "connected": "Connected",
    "needs_reconnect": "Needs reconnect",
    "disconnected": "Disconnected",
}


def settings() -> Settings:
    """Settings for this run (cheap: read from the environment every rerun, so tests can vary them)."""
    try:
        return load_settings()
    except SettingsError as exc:
        st.error(md(say(exc), 1000), icon=":material/settings:")
        st.stop()
        raise  # unreachable: st.stop raises


def as_dict(row: Any) -> dict[str, Any]:
    if isinstance(row, dict):
        return row
    if dataclasses.is_dataclass(row) and not isinstance(row, type):  # an instance, not the class
        return dataclasses.asdict(row)
    if hasattr(row, "_asdict"):
        return row._asdict()
    return dict(vars(row))


def as_rows(data: Any) -> list[dict[str, Any]]:
    """Lists of dicts/dataclasses, polars frames and None all become a list of dicts."""
    if data is None:
        return []
    if hasattr(data, "to_dicts"):
        return data.to_dicts()
    return [as_dict(r) for r in data]


def _as_datetime(value: Any) -> datetime | None:
    """A timestamp from the database, a vault file or JSON as an aware datetime (naive = UTC)."""
    return timefmt.as_datetime(value)


def local_zone() -> ZoneInfo:
    """XERO_TIMEZONE (the schedule's zone): every time the app shows is in it."""
    try:
        return ZoneInfo(load_settings().timezone)
    except (SettingsError, ZoneInfoNotFoundError):
        return ZoneInfo("UTC")


def stamp(value: Any, zone: ZoneInfo | None = None) -> str:
    """The app's one format for a moment: '5 Dec 2026 19:04 AEDT', in XERO_TIMEZONE (xero_core.timefmt,
    which the CLI prints too). Blank for no value; text that is not a timestamp is shown as it is."""
    return timefmt.stamp(value, zone or local_zone())


def day(value: Any) -> str:
    """A date for people: '5 Dec 2026' (the same day-month-year order as `stamp`)."""
    return timefmt.day(value)


def when(value: Any) -> str:
    """A timestamp for people: '5 Dec 2026 19:04 AEDT (3 h ago)' in XERO_TIMEZONE; 'never' for none."""
    if value in (None, ""):
        return "never"
    dt = _as_datetime(value)
    if dt is None:
        return str(value)
    # the product's clock: under XERO_TODAY (a workshop's pinned day) the stamps were written by it
    delta = (SYSTEM_CLOCK.now() - dt).total_seconds()
    ago = _span(abs(delta))
    rel = f"{ago} ago" if delta >= 0 else f"in {ago}"
    return f"{stamp(dt)} ({rel})"


def local_times(rows: Any, columns: Iterable[str]) -> list[dict[str, Any]]:
    """Rows (dicts, dataclasses or a polars frame) with the named timestamp columns as `stamp` text,
    for tables; None becomes a blank."""
    zone = local_zone()
    out = as_rows(rows)
    cols = [c for c in columns]
    for r in out:
        for c in cols:
            if c in r:
                r[c] = stamp(r[c], zone)
    # Text columns show a blank, not "None", where a value is missing.
    texts = {k for r in out for k, v in r.items() if isinstance(v, str)}
    numbers = {k for r in out for k, v in r.items() if v is not None and not isinstance(v, str)}
    for r in out:
        for k in texts - numbers:
            if r.get(k) is None:
                r[k] = ""
    return out


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 90 * 60:
        return f"{int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


def mock_banner(s: Settings) -> None:
    if s.mock_mode:
        st.warning(
            "**Mock mode**: this app talks to the offline fake Xero at "
            f"{code(s.api_url)}, not to real Xero. Nothing here touches a real organisation.",
            icon=":material/science:",
        )


def connections(s: Settings, include_disconnected: bool = False) -> list[dict[str, Any]]:
    """The connections, read at most every few seconds (every page and the picker need them)."""
    return _connections(str(s.db_path), include_disconnected)


@st.cache_data(ttl=3, show_spinner=False)
def _connections(db_path: str, include_disconnected: bool) -> list[dict[str, Any]]:
    return as_rows(engine.list_connections(load_settings(), include_disconnected=include_disconnected))


def tenant_label(c: dict[str, Any]) -> str:
    kind = c.get("tenant_type") or "?"
    name = c.get("tenant_name") or c.get("tenant_id")
    status = c.get("status") or "unknown"
    suffix = "" if status == "connected" else f" — {STATUS_LABELS.get(status, status)}"
    return f"{name} ({kind}){suffix}"


def tenant_picker(s: Settings) -> None:
    """The shared organisation choice, in the sidebar. Never silently the first of several."""
    with st.sidebar, shown_errors():
        conns = connections(s)
        if not conns:
            st.session_state.pop(TENANT_KEY, None)
            st.caption("No organisation connected yet.")
            return
        ids = [c["tenant_id"] for c in conns]
        labels = {c["tenant_id"]: tenant_label(c) for c in conns}
        # The widget's own state is the source of truth while it holds a valid choice; when it has
        # none (first run, a new tab, or Streamlit dropped it), seed it from the remembered choice,
        # or from the only organisation there is (a Practice Manager connection beside it is not a
        # second organisation: the pages about figures need the organisation). Never from the first
        # of several.
        if st.session_state.get(PICKER_KEY) not in ids:
            remembered = st.session_state.get(TENANT_KEY)
            orgs = [c["tenant_id"] for c in conns if c.get("tenant_type") != "PRACTICEMANAGER"]
            only = ids[0] if len(ids) == 1 else (orgs[0] if len(orgs) == 1 else None)
            st.session_state[PICKER_KEY] = remembered if remembered in ids else only
        chosen = st.selectbox(
            "Organisation",
            ids,
            format_func=lambda t: plain(labels.get(t, t)),  # options are text; controls made visible
            placeholder="Choose an organisation",
            key=PICKER_KEY,
        )
        if chosen is not None:
            st.session_state[TENANT_KEY] = chosen
        else:
            st.session_state.pop(TENANT_KEY, None)


def chosen_tenant() -> str | None:
    return st.session_state.get(TENANT_KEY)


def require_tenant(s: Settings, tenant_types: Iterable[str] | None = None) -> dict[str, Any]:
    """The organisation chosen in the sidebar, or a clear instruction and a stop."""
    tid = chosen_tenant()
    if not tid:
        if connections(s):
            st.info("Choose an organisation in the sidebar first.", icon=":material/arrow_back:")
        else:
            st.info("No organisation is connected yet: connect one on the Connection page.",
                    icon=":material/link_off:")
            st.page_link("pages/connection.py", label="Go to Connection", icon=":material/link:")
        st.stop()
    conn = next((c for c in connections(s) if c["tenant_id"] == tid), None)
    if conn is None:
        st.info("That organisation is no longer connected; choose another in the sidebar.")
        st.stop()
    if tenant_types is not None and conn.get("tenant_type") not in set(tenant_types):
        st.info(
            f"{md(conn.get('tenant_name'))} is a {md(conn.get('tenant_type'))} connection; this page needs "
            f"a {md(' or '.join(tenant_types))} connection. Choose one in the sidebar.",
        )
        st.stop()
    return conn


RESET_POPOVER_KEY = "_reset_demo_popover"


def _reset_now(s: Settings) -> None:
    """The button's callback: it runs before the page, the one moment the popover's open state may be
    set, so the popover closes when the reset is done (an error keeps it open, with the sentence)."""
    from .demo_reset import reset_demo

    try:
        reset_demo(s)
    except Exception as exc:  # noqa: BLE001 - shown in the popover as a sentence
        st.session_state["_reset_demo_error"] = say(exc)
        return
    st.cache_data.clear()
    for k in list(st.session_state.keys()):
        if not str(k).startswith("_ledgerlink_signed_in"):
            del st.session_state[k]
    st.session_state[RESET_POPOVER_KEY] = False
    st.session_state["_flash"] = "The demo is back to its starting state."


def reset_demo_control(s: Settings) -> None:
    if not s.mock_mode:
        return
    with st.sidebar:
        st.divider()
        with st.popover("Reset demo", icon=":material/restart_alt:", key=RESET_POPOVER_KEY, on_change="rerun"):
            st.write("Back to the workshop's starting state: a fresh fake organisation, no connection, "
                     "empty tables and an empty vault.")
            st.button("Reset everything", type="primary", key="_reset_demo", on_click=_reset_now, args=(s,))
            failed = st.session_state.pop("_reset_demo_error", None)
            if failed:
                st.error(md(failed), icon=":material/error:")


def flash() -> None:
    """A one-time message carried over a rerun (e.g. after Reset demo). The message is text, often
    with names in it: it is escaped here, so whoever sets `_flash` writes plain words."""
    msg = st.session_state.pop("_flash", None)
    if msg:
        st.success(md(msg, 1000), icon=":material/check_circle:")
    warn = st.session_state.pop("_flash_warning", None)  # an action that did not do what was asked, and why
    if warn:
        st.warning(md(warn, 1000), icon=":material/warning:")
