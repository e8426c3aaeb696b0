"""`python -m xero_core fake-xero`: the offline fake Xero on a loopback port.

On start it prints, one per line, `NAME=value` for the XERO_* settings that point the product at
it (stdout, flushed), then logs every request it serves on stderr.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the fake is imported when it is asked for, not with the CLI
    from ..fake import FakeXero
    from ..fake.app import ServedRequest


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("fake-xero", help="run the offline fake Xero (identity, Accounting, Files, XPM, webhooks)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: XERO_FAKE_PORT or 8765; 0 = any free port)")
    p.add_argument("--seed", type=int, default=42, help="data seed: same seed, same data (default 42)")
    p.add_argument("--today", type=_day, default=None, help="YYYY-MM-DD the data ends on (default: today)")
    p.add_argument("--invoices", type=int, default=None, help="scale: number of sales invoices per organisation")
    p.add_argument("--tenants", type=int, default=1, help="organisations (default 1)")
    p.add_argument("--practices", type=int, default=1, help="Practice Manager tenants (default 1)")
    p.add_argument("--story", action="store_true",
                   help="the demo's practice: the firm's own ledger (its customers are its clients), two of its "
                        "clients' organisations and its Practice Manager (replaces --tenants)")
    p.add_argument("--tier", default="advanced", choices=("starter", "core", "plus", "advanced", "enterprise"),
                   help="the app's Xero pricing tier (below advanced: Journals and XPM answer 401)")
    p.add_argument("--legacy-scopes", action="store_true", help="let the app use broad scopes (apps made before March 2026)")
    p.add_argument("--client-id", help="register this app (default: the demo app mock mode uses)")
    p.add_argument("--client-secret", help="the registered app's secret (omit for a PKCE-only app)")
    p.add_argument("--redirect-uri", action="append", default=[],
                   help="the app's redirect URI (repeatable; without --client-id: added to the demo app's)")
    p.add_argument("--webhook-url", help="where /_fake/webhooks/deliver sends events")
    p.add_argument("--webhook-key", help="the webhook signing key")
    p.add_argument("--state-dir", help="keep grants, tokens, connections, uploads and job states here across restarts")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC",
                   help="inject a fault, e.g. 503:path=Invoices,count=2 or 429:count=10,seconds=30 (repeatable)")
    p.add_argument("--exit-with", type=int, metavar="PID",
                   help="stop when process PID ends (how the demo and the admin app tie a fake they started to themselves)")
    p.set_defaults(handler=run)


def _day(s: str) -> date:
    try:
        return date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a date: use YYYY-MM-DD, e.g. 2026-11-26") from None


def _exit_with(pid: int, stop: threading.Event) -> None:
    """Stop the fake once process `pid` is gone (checked every second)."""
    import os

    while not stop.wait(1.0):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print(f"process {pid} ended: stopping the fake Xero", file=sys.stderr, flush=True)
            stop.set()
        except PermissionError:
            pass  # alive, owned by someone else


def build(args: argparse.Namespace) -> FakeXero:
    from ..fake import FakeXero
    from ..fake.clock import OffsetClock
    from ..fake.faults import parse_spec

    if args.client_id and not args.redirect_uri:
        raise ValueError("--client-id needs at least one --redirect-uri (the app's callback URL)")
    apps = None
    if args.client_id:
        apps = [{"client_id": args.client_id, "client_secret": args.client_secret,
                 "redirect_uris": args.redirect_uri, "legacy_scopes": args.legacy_scopes}]
    faults = [parse_spec(s) for s in args.fault]
    fake = FakeXero(seed=args.seed, today=args.today, clock=OffsetClock(args.today), tier=args.tier,
                    legacy_scopes=args.legacy_scopes, invoices=args.invoices, tenants=args.tenants,
                    practices=args.practices, apps=apps, state_dir=args.state_dir,
                    webhook_url=args.webhook_url, webhook_key=args.webhook_key, story=args.story)
    for spec in faults:
        fake.faults.add(**spec)
    if not args.client_id and args.redirect_uri:
        # The demo app's callback lives elsewhere (XERO_APP_URL): register it there too.
        demo = fake.primary_app
        fake.register_app(demo.client_id, demo.client_secret,
                          demo.redirect_uris + [u for u in args.redirect_uri if u not in demo.redirect_uris],
                          demo.legacy_scopes, demo.name)
    return fake


def run(args: argparse.Namespace) -> int:
    from ..fake.server import serve

    port, where = args.port, "--port"
    if port is None:
        from ..settings import DEFAULT_FAKE_PORT
        import os

        where = "XERO_FAKE_PORT"
        raw = os.environ.get("XERO_FAKE_PORT") or str(DEFAULT_FAKE_PORT)
        port = int(raw) if raw.strip().isdigit() else -1
    if not 0 <= port <= 65535:  # socket.bind would raise OverflowError (a traceback) past 65535
        print(f"error: {where} must be a port number from 1 to 65535 (or 0 for any free port).", file=sys.stderr)
        return 2
    try:
        fake = build(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def log_request(rec: ServedRequest) -> None:
        tenant = f" tenant={rec.tenant_id}" if rec.tenant_id else ""
        fault = f" fault={rec.fault}" if rec.fault else ""
        print(f"{rec.at:%Y-%m-%dT%H:%M:%SZ} {rec.method} {rec.path}{tenant} -> {rec.status or 'no answer'} "
              f"{rec.bytes}B{fault}", file=sys.stderr, flush=True)

    fake.on_request.append(log_request)
    try:
        server = serve(fake, args.host, port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{port} ({exc.strerror}). Is a fake already running? "
              f"Pick another --port.", file=sys.stderr)
        return 1
    pidfile = None
    if args.state_dir:
        from pathlib import Path
        import os

        pidfile = Path(args.state_dir) / "fake-xero.pid"
        pidfile.write_text(f"{os.getpid()}\n")
    for k, v in fake.settings_env(server.url).items():
        print(f"{k}={v}")
    sys.stdout.flush()
    print(f"fake Xero listening on {server.url} (seed {args.seed}, tier {fake.tier}, "
          f"{len(fake.orgs)} organisation(s), {len(fake.practices)} practice(s)); Ctrl-C to stop", file=sys.stderr,
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.exit_with:
        threading.Thread(target=_exit_with, args=(args.exit_with, stop), daemon=True, name="exit-with").start()
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        fake._save()
        if pidfile is not None:
            pidfile.unlink(missing_ok=True)
    return 0
