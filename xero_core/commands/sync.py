"""`python -m xero_core sync` and `python -m xero_core demo` (thin: parse, call xero_core.sync, print).

sync: one tenant (`--tenant`), or every connected tenant (`--all`); a progress bar on a terminal
(stderr); `--json` prints one document with a summary per step. Exit code 0 only when every step
succeeded (a step the Xero plan refuses is not a failure).

demo (mock mode): start the fake Xero if needed, connect its organisation and practice through its
consent form over HTTP (all tenants ticked, Allow; no browser), then run a first sync.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin

from ..settings import load_settings

DEMO_SEED = 42
# Measured against the fake at Xero's 60 calls/minute: the demo organisation's first sync costs
# ~17 calls (accounts, contacts, 14,000 invoices) plus 2 per report week, so two years of weekly
# P&L, revenue and cash for the notebooks (104 weeks, ~225 calls) take about 4 minutes. Its full
# journal history is ~300 more calls (~5 minutes), so the demo leaves journals to `--with-journals`
# or a later `sync --only journals`.
DEMO_WEEKS = 104


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sync", help="sync Xero data into DuckDB (weekly P&L, invoices, revenue, cash, contacts, journals)")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--tenant", metavar="ID", help="the tenant to sync (see `status`)")
    who.add_argument("--all", action="store_true", help="every connected tenant, concurrently")
    p.add_argument("--only", metavar="STEPS", help="comma list of: pnl,invoices,credit_notes,bank,contacts,journals,xpm,accounts")
    p.add_argument("--weeks", type=int, metavar="N",
                   help="report weeks to (re)fetch, ending with the current week (default 2; e.g. 104 backfills two years)")
    p.add_argument("--json", action="store_true", help="print one JSON document (summary per step) on stdout")
    p.set_defaults(handler=run_sync)

    d = sub.add_parser("demo", help="mock mode: start the fake Xero, connect its tenants (no browser), first sync")
    d.add_argument("--weeks", type=int, default=DEMO_WEEKS, metavar="N",
                   help="report weeks for the first sync (default %(default)s)")
    d.add_argument("--seed", type=int, default=DEMO_SEED, help="the fake's seed (default %(default)s)")
    d.add_argument("--with-journals", action="store_true",
                   help="also fetch the full journal history and the P&L tie-out (about 5 minutes more)")
    d.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    d.set_defaults(handler=run_demo)


# -- progress --------------------------------------------------------------------------------
class Progress:
    """One status line per tenant on a terminal (stderr); plain lines when stderr is not a TTY."""

    def __init__(self, quiet: bool = False):
        self.tty = sys.stderr.isatty()
        self.quiet = quiet
        self.lock = threading.Lock()
        self.last_plain = 0.0

    def __call__(self, ev: dict) -> None:
        if self.quiet:
            return
        tenant = (ev.get("tenant_id") or "")[:8]
        frac = ev.get("fraction")
        msg = f"[{tenant}] {ev.get('message') or ev.get('step')}"
        with self.lock:
            if self.tty:
                bar = ""
                if frac is not None:
                    n = int(max(0.0, min(1.0, frac)) * 20)
                    bar = "[" + "#" * n + "." * (20 - n) + "] "
                sys.stderr.write("\r\033[K" + bar + msg[:100])
                if ev.get("status") not in ("running",):
                    sys.stderr.write("\n")
                sys.stderr.flush()
            elif ev.get("status") != "running" or time.monotonic() - self.last_plain > 5:
                self.last_plain = time.monotonic()
                print(msg, file=sys.stderr, flush=True)


def _print_summary(results) -> None:
    for r in results:
        print(f"{r.tenant_name or r.tenant_id} ({r.tenant_type}): {r.status}", file=sys.stderr)
        if r.busy:
            print(f"  {r.busy}", file=sys.stderr)
        for s in r.steps:
            extra = f"  {s.error}" if s.error else ""
            print(f"  {s.step:<9} {s.status:<8} rows={s.rows:<7} calls={s.api_calls:<5} bytes={s.bytes_downloaded}{extra}",
                  file=sys.stderr)


def _emit(results, as_json: bool) -> int:
    ok = bool(results) and all(r.ok for r in results)
    if as_json:
        print(json.dumps({"ok": ok, "tenants": [r.to_dict() for r in results]}, indent=2, default=str))
    else:
        _print_summary(results)
    return 0 if ok else 1


def run_sync(args: argparse.Namespace) -> int:
    from ..connections import list_connections
    from ..sync.runner import parse_only, sync_all, sync_all_tenants

    settings = load_settings()
    try:
        parse_only(args.only)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.weeks is not None and args.weeks < 1:
        print("error: --weeks must be 1 or more", file=sys.stderr)
        return 2
    progress = Progress(quiet=False)
    if args.all:
        results = sync_all_tenants(settings, trigger="cli", only=args.only, weeks=args.weeks, progress=progress)
        if not results:
            print("error: no connected tenants: run `python -m xero_core connect` first", file=sys.stderr)
            return 1
    else:
        tenant = args.tenant
        if not tenant:
            conns = [c for c in list_connections(settings) if c.get("status") == "connected"]
            if len(conns) != 1:
                names = ", ".join(f"{c['tenant_name']} ({c['tenant_id']})" for c in conns) or "none"
                print(f"error: say which tenant: --tenant ID or --all (connected: {names})", file=sys.stderr)
                return 2
            tenant = conns[0]["tenant_id"]
        try:
            results = [sync_all(settings, tenant, weeks=args.weeks, only=args.only, trigger="cli", progress=progress)]
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return _emit(results, args.json)


# -- demo ------------------------------------------------------------------------------------
class _ConsentForm(HTMLParser):
    """The fake's consent page is a plain form: hidden fields, a checkbox per tenant, Allow/Deny."""

    def __init__(self):
        super().__init__()
        self.action: str | None = None
        self.hidden: list[tuple[str, str]] = []
        self.boxes: list[tuple[str, str]] = []
        self.buttons: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action") or ""
        elif tag in ("input", "button"):
            kind = (a.get("type") or ("submit" if tag == "button" else "text")).lower()
            name, value = a.get("name"), a.get("value") or ""
            if not name:
                return
            if kind == "hidden":
                self.hidden.append((name, value))
            elif kind == "checkbox":
                self.boxes.append((name, value))
            elif kind == "submit":
                self.buttons.append((name, value))


def connect_via_consent_form(settings, *, transport=None) -> list[dict]:
    """Complete the OAuth consent over HTTP with every offered tenant ticked and Allow pressed."""
    import httpx

    from .. import oauth

    url = oauth.begin_connect(settings)
    with httpx.Client(transport=transport, follow_redirects=False, timeout=30) as http:
        page = http.get(url)
        if page.is_redirect:
            redirect = page.headers["location"]
        else:
            form = _ConsentForm()
            form.feed(page.text)
            if page.status_code != 200 or form.action is None:
                raise RuntimeError(f"the consent page answered HTTP {page.status_code}: {page.text[:200]}")
            allow = next(((n, v) for n, v in form.buttons if v.lower() == "allow"), None)
            if allow is None:
                raise RuntimeError("the consent page has no Allow button")
            fields = form.hidden + form.boxes + [allow]
            resp = http.post(urljoin(url, form.action), content=urlencode(fields).encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
            if not resp.is_redirect:
                raise RuntimeError(f"the consent form answered HTTP {resp.status_code}, not a redirect")
            redirect = resp.headers["location"]
    return oauth.complete_connect(settings, redirect, transport=transport)


def run_demo(args: argparse.Namespace) -> int:
    os.environ["XERO_MOCK_MODE"] = "true"
    settings = load_settings()
    from ..connections import list_connections
    from ..fake.server import ensure_running
    from ..sync.runner import sync_all_tenants

    url = ensure_running(settings.fake_port, settings.data_dir / "fake-xero", args.seed)
    print(f"Fake Xero: {url}", file=sys.stderr)
    if not [c for c in list_connections(settings) if c.get("status") == "connected"]:
        tenants = connect_via_consent_form(settings)
        for t in tenants:
            print(f"connected {t.get('tenant_name')} ({t.get('tenant_type')})", file=sys.stderr)
    only = None if args.with_journals else "accounts,contacts,invoices,credit_notes,pnl,bank,xpm"
    minutes = (20 + 2 * args.weeks + (300 if args.with_journals else 0)) / 57
    print(f"first sync: {args.weeks} weeks of reports, every invoice, credit note and contact"
          f"{', all journals' if args.with_journals else ''} - about {minutes:.0f} min at Xero's 60 calls a minute",
          file=sys.stderr)
    results = sync_all_tenants(settings, trigger="cli", weeks=args.weeks, only=only, progress=Progress())
    return _emit(results, args.json)
