"""`connect`, `status`, `disconnect`, `rotate-key`: the connection's life from the command line.

Nothing here prints a token: status shows expiry dates and warnings only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from typing import Any, Mapping

from .. import connections, oauth, timefmt, tokens
from ..errors import LedgerlinkError, VaultError
from ..settings import Settings, load_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "connect", help="connect Xero organisations (OAuth consent in a browser)",
        description="Connect Xero organisations (and a Practice Manager account) to Ledgerlink. Prints the "
                    "address of Xero's consent page and opens it in a browser when there is one. Sign in, tick "
                    "the organisations and Allow: Xero redirects to the admin app (XERO_REDIRECT_URI), which "
                    "finishes the connection. Without the app, copy the address the browser lands on and run "
                    "`connect --callback '<that address>'`. The link is valid for 10 minutes. In mock mode the "
                    "consent page is the fake Xero's (`demo` does all of this without a browser).")
    p.add_argument("--url", action="store_true",
                   help="only print the consent URL (as the last line on stdout); open no browser")
    p.add_argument("--callback", metavar="URL",
                   help="finish a consent: the full address Xero redirected the browser to")
    p.add_argument("--no-browser", action="store_true", help="print the URL but do not open a browser")
    p.add_argument("--json", action="store_true",
                   help="one JSON document on stdout: the consent URL, or the tenants connected by --callback")
    p.set_defaults(handler=cmd_connect)

    p = sub.add_parser("status", help="connections, token expiry, last sync, mock mode (never a token)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("disconnect", help="disconnect a tenant: revoke, delete the connection, forget its tokens")
    p.add_argument("--tenant", metavar="ID", help="the tenant id (see `status`); needed when several are connected")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout (needs --yes off a terminal)")
    p.set_defaults(handler=cmd_disconnect)

    p = sub.add_parser(
        "rotate-key", help="re-encrypt the vault under XERO_ENCRYPTION_KEY "
                           "(old files read with XERO_ENCRYPTION_KEY_PREVIOUS)",
        description="Re-encrypt every vault file (tokens, the webhook key) under the current "
                    "XERO_ENCRYPTION_KEY. To change the key: set the new key as XERO_ENCRYPTION_KEY and the old "
                    "one as XERO_ENCRYPTION_KEY_PREVIOUS, run this once, then remove XERO_ENCRYPTION_KEY_PREVIOUS. "
                    "Files already under the current key are left as they are; nothing is printed but counts.")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout: files re-encrypted, already current")
    p.set_defaults(handler=cmd_rotate_key)


def _err(*args: object) -> None:
    print(*args, file=sys.stderr)


def _can_open_browser() -> bool:
    if os.environ.get("CI"):
        return False
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    return True


def cmd_connect(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.callback:
        recorded = oauth.complete_connect(settings, args.callback)
        if args.json:
            print(json.dumps({"ok": True, "connected": [{k: r.get(k) for k in ("tenant_id", "tenant_name", "tenant_type")}
                                                        for r in recorded]}, indent=2, default=str))
            return 0
        for r in recorded:
            print(f"connected: {r['tenant_name']} [{r['tenant_type']}], tenant {r['tenant_id']}")
        return 0
    url = oauth.begin_connect(settings)
    if args.json:
        print(json.dumps({"ok": True, "consent_url": url, "redirect_uri": settings.redirect_uri,
                          "valid_minutes": 10}, indent=2))
        return 0
    _err(f"Open this address, sign in to Xero and allow access. Xero then redirects to {settings.redirect_uri}; "
         "the admin app finishes the connection there. Without the app, copy the address the browser lands on "
         "and run: python -m xero_core connect --callback '<that address>'. The link is valid for 10 minutes.")
    if not args.url and not args.no_browser and _can_open_browser():
        import webbrowser

        try:
            if webbrowser.open(url):
                _err("(opened in your browser)")
        except Exception:
            pass
    print(url)
    return 0


def _iso(v: Any) -> Any:
    """A datetime as ISO text for JSON; anything else as it is."""
    return v.isoformat() if isinstance(v, datetime) else v


def _organisations(settings: Settings) -> dict[str, dict[str, Any]]:
    """tenant_id -> base_currency, timezone, financial_year_end ("30 Jun") from `organisations`."""
    import calendar

    from .. import db

    try:
        with db.connect(settings.db_path, read_only=True) as con:
            rows = con.execute("SELECT tenant_id, base_currency, timezone, financial_year_end_month, "
                               "financial_year_end_day FROM organisations").fetchall()
    except Exception:  # no database yet, or one from before the table
        return {}
    return {t: {"base_currency": cur, "timezone": tz,
                "financial_year_end": f"{d} {calendar.month_abbr[m]}" if m and d else None}
            for t, cur, tz, m, d in rows}


def status_document(settings: Settings) -> dict[str, Any]:
    """What `status --json` prints (and what the app may show). Never a token."""
    from ..practice.roles import roles as read_roles

    rows = []
    warnings = []
    role_view = read_roles(settings)
    orgs = _organisations(settings)
    for c in connections.list_connections(settings, include_disconnected=True):
        entry: dict[str, Any] = {k: _iso(c[k]) for k in ("tenant_id", "tenant_name", "tenant_type", "status", "status_reason",
                                         "connection_id", "connected_at", "last_sync_at")}
        entry["xpm_enabled"] = bool(c["xpm_enabled"])
        # The role a person set (None until then); what an unset one is taken as, while it is only suggested.
        entry["role"] = c["role"]
        entry["suggested_role"] = role_view.suggested_role(c["tenant_id"])
        entry["practice_client_id"] = c["practice_client_id"]
        # The organisation as Xero describes it (None until it was first read): what its figures are in.
        entry["organisation"] = orgs.get(c["tenant_id"])
        problem = None
        try:
            t = tokens.token_summary(settings, c["tenant_id"])
        except VaultError as exc:
            problem = str(exc)
            t = {"has_tokens": False, "access_expires_at": None, "refresh_expires_at": None,
                 "refresh_warning": problem, "dead": None}
        entry["has_tokens"] = t["has_tokens"]
        entry["access_token_expires_at"] = _iso(t["access_expires_at"])
        entry["refresh_token_expires_at"] = _iso(t["refresh_expires_at"])
        entry["refresh_warning"] = t["refresh_warning"]
        if c["status"] == "connected" and not t["has_tokens"] and not t["refresh_warning"]:
            entry["refresh_warning"] = problem = "No tokens are stored for this tenant: reconnect it."
        if c["status"] == "connected" and t.get("dead"):
            problem = problem or entry["refresh_warning"] or "Xero refused its refresh token: reconnect it."
        if c["status"] == "needs_reconnect":
            problem = problem or f"It needs reconnecting: {c['status_reason'] or 'see the app'}"
        # Usable = a sync could run now. A connection row alone says nothing if no token can be read.
        entry["usable"] = c["status"] == "disconnected" or problem is None
        entry["problem"] = None if c["status"] == "disconnected" else problem
        if c["status"] != "disconnected" and entry["refresh_warning"]:
            warnings.append(f"{c['tenant_name']}: {entry['refresh_warning']}")
        if c["status"] == "needs_reconnect":
            warnings.append(f"{c['tenant_name']} needs reconnecting: {c['status_reason'] or 'see the app'}")
        rows.append(entry)
    if role_view.problem:
        warnings.append(role_view.problem)
    scheduler = scheduler_summary(settings)
    warnings += scheduler.pop("_warnings")
    stores = _store_problems(settings)
    warnings += stores
    return {
        "mock_mode": settings.mock_mode,
        "api_url": settings.api_url,
        "redirect_uri": settings.redirect_uri,
        "data_dir": str(settings.data_dir),
        "database": str(settings.db_path),
        "snapshot": str(settings.snapshot_path),  # the readers' copy (notebooks, your own tools)
        "store_problems": stores,
        "vault_key_id": settings.key_id,
        "scopes": list(settings.scopes),
        "connections": rows,
        "scheduler": scheduler,
        "warnings": list(dict.fromkeys(warnings)),
        "ok": all(r["usable"] for r in rows) and not stores,
    }


def _store_problems(settings: Settings) -> list[str]:
    """Sentences for damaged side stores a sync would stop on (jobs.sqlite: a damaged page is only
    met when read, so it is checked whole)."""
    from ..pipeline.stores import jobs_problem

    se = jobs_problem(settings)
    return [str(se)] if se is not None else []


SCHEDULER_KEYS = ("status", "running", "paused", "paused_at", "paused_by", "heartbeat", "heartbeat_age_seconds",
                  "next_run", "next_daily_run", "last_run", "last_daily_run", "last_result", "current")


def scheduler_summary(settings: Settings) -> dict[str, Any]:
    """The scheduler's state for `status` (scheduling.read_state, the same as the app's Sync page):
    status "never started" | "stopped" | "not responding" | "running" | "paused", its times as ISO
    strings, the last cycle's result, and the daily time it syncs at."""
    from .. import scheduling

    state = scheduling.read_state(settings)
    out = {k: state.get(k) for k in SCHEDULER_KEYS}
    out["running"], out["paused"] = bool(out["running"]), bool(out["paused"])
    if out["heartbeat_age_seconds"] is not None:
        out["heartbeat_age_seconds"] = round(out["heartbeat_age_seconds"], 1)
    out["sync_time"] = state.get("sync_time") or settings.sync_time
    out["timezone"] = state.get("timezone") or settings.timezone
    warnings = []
    if out["status"] == "not responding":
        warnings.append(f"The scheduler (pid {state.get('pid')}) has not written a heartbeat for "
                        f"{_age(out['heartbeat_age_seconds'])}: restart it with `python scheduler.py`.")
    last = out["last_result"] if isinstance(out["last_result"], dict) else None
    if last and not last.get("ok") and not last.get("skipped_reason"):
        warnings.append(f"The scheduler's last run ({last.get('kind')}, {out['last_run']}) had "
                        f"{last.get('failed', 0)} failed step(s): see the Sync page's history.")
    out["_warnings"] = warnings
    return out


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:.0f} seconds"


def _local(iso: Any, tz: str) -> str:
    """An instant as the app shows it, in `tz`: '6 Dec 2026 06:00 AEDT' ('-' for none)."""
    return timefmt.stamp(iso, tz) or "-"


def scheduler_line(sch: Mapping[str, Any]) -> str:
    """One line for the human `status`: what the scheduler does, when it runs next, how it last went."""
    tz = sch["timezone"]
    daily = f"daily at {sch['sync_time']} {tz}"
    if sch["status"] == "never started":
        return f"Scheduler: never started ({daily} once running): start it with `python scheduler.py`."
    if sch["status"] in ("stopped", "not responding"):
        head = f"Scheduler: {sch['status']} (last heartbeat {_local(sch['heartbeat'], tz)}): start it with " \
               "`python scheduler.py`."
    elif sch["paused"]:
        by = f" by {sch['paused_by']}" if sch.get("paused_by") else ""
        head = f"Scheduler: paused since {_local(sch['paused_at'], tz)}{by} ({daily}; resume in the app's Sync page)."
    else:
        head = f"Scheduler: running, {daily}; next run {_local(sch['next_run'], tz)}."
    last = sch["last_result"] if isinstance(sch["last_result"], dict) else None
    if last:
        outcome = ("all steps ok" if last.get("ok") else f"{last.get('failed', 0)} step(s) failed")
        if last.get("skipped_reason"):
            outcome = f"skipped: {last['skipped_reason']}"
        head += f" Last run ({last.get('kind')}) {_local(sch['last_run'], tz)}: {outcome}."
    return head


def cmd_status(args: argparse.Namespace) -> int:
    settings = load_settings()
    doc = status_document(settings)
    # Non-zero when any tenant that should sync cannot (unreadable tokens, none stored, needs
    # reconnecting), so a cron check or a script notices; --json says which in "usable"/"problem".
    code = 0 if doc["ok"] else 1
    if args.json:
        print(json.dumps(doc, indent=2))
        return code
    mode = "MOCK MODE (offline fake Xero)" if doc["mock_mode"] else "live Xero"
    print(f"Ledgerlink: {mode} at {doc['api_url']}; data in {doc['data_dir']}; vault key id {doc['vault_key_id']}")
    if not doc["connections"]:
        print("No tenants connected. Run: python -m xero_core connect")
    shown = set()
    for c in doc["connections"]:
        state = c["status"] if c["usable"] else f"{c['status']}, UNUSABLE"
        role = c["role"] or (f"{c['suggested_role']}, suggested" if c["suggested_role"] else None)
        print(f"- {c['tenant_name']} [{c['tenant_type']}{', ' + role if role else ''}] {state}  tenant {c['tenant_id']}")
        if not c["usable"]:
            print(f"    cannot sync: {c['problem']}")
            shown.add(c["problem"])
        org = c.get("organisation")
        if org:
            print(f"    base currency {org['base_currency'] or '-'}, time zone {org['timezone'] or '-'}, financial year "
                  f"ends {org['financial_year_end'] or '-'}")
        if c["status"] != "disconnected":
            tz = settings.timezone
            print(f"    access token expires {_local(c['access_token_expires_at'], tz)}; refresh token lapses "
                  f"{_local(c['refresh_token_expires_at'], tz)} if unused; last sync "
                  f"{timefmt.stamp(c['last_sync_at'], tz) or 'never'}")
    print(scheduler_line(doc["scheduler"]))
    for w in doc["warnings"]:
        if not any(w.endswith(p) for p in shown):
            print(f"WARNING: {w}")
    return code


def cmd_disconnect(args: argparse.Namespace) -> int:
    settings = load_settings()
    active = connections.list_connections(settings)
    tenant_id = args.tenant
    if tenant_id is None:
        if len(active) != 1:
            listing = ", ".join(f"{c['tenant_name']}={c['tenant_id']}" for c in active) or "none connected"
            raise LedgerlinkError(f"Say which tenant to disconnect with --tenant ID ({listing}).")
        tenant_id = active[0]["tenant_id"]
    conn = connections.get_connection(settings, tenant_id)
    if conn is None:
        raise LedgerlinkError(f"No tenant {tenant_id} is recorded; see `python -m xero_core status`.")
    if not args.yes:
        if not sys.stdin.isatty():
            raise LedgerlinkError(f"Disconnecting {conn['tenant_name']} needs confirmation: add --yes.")
        answer = input(f"Disconnect {conn['tenant_name']} ({tenant_id}) from Xero? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            _err("Nothing disconnected.")
            return 1
    result = oauth.disconnect(settings, tenant_id)
    if args.json:
        print(json.dumps({"ok": True, "tenant_id": tenant_id, **result}, indent=2, default=str))
        return 0
    done = ["connection deleted in Xero" if result["connection_deleted"] else "connection already gone in Xero"]
    if result["revoked"]:
        done.append("token set revoked")
    print(f"disconnected: {result['tenant_name']}: {', '.join(done)}")
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    settings = load_settings()
    result = tokens.rotate_vault_key(settings)
    if result["failed"]:
        names = ", ".join(n for n, _ in result["failed"])
        first = result["failed"][0][1]
        raise LedgerlinkError(f"{len(result['failed'])} vault file(s) could not be re-encrypted ({names}): {first}")
    if args.json:
        print(json.dumps({"ok": True, "key_id": settings.key_id, "rotated": len(result["rotated"]),
                          "already_current": len(result["current"])}, indent=2))
        return 0
    print(f"re-encrypted {len(result['rotated'])} vault file(s) under key id {settings.key_id}; "
          f"{len(result['current'])} already current.")
    if settings.encryption_key_previous and result["rotated"]:
        _err("You can now remove XERO_ENCRYPTION_KEY_PREVIOUS.")
    return 0
