"""`python -m xero_core run-demo`: what `bash scripts/demo` runs.

Starts the fake Xero on settings.fake_port (unless one already answers there), then replaces
this process with `streamlit run app.py` on 127.0.0.1 in mock mode. Ctrl-C (or SIGTERM to this
pid) stops the app and the fake it started; a fake that was already running is left alone.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ..settings import DEFAULT_APP_PORT, load_settings

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
DEFAULT_SEED = 42


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run-demo", help="start the fake Xero and the admin app in mock mode (localhost only)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="the fake organisation's seed (default %(default)s)")
    p.add_argument("--port", type=int, default=None,
                   help="the admin app's port (default: from XERO_APP_URL, else 8501)")
    p.set_defaults(handler=run_demo)


def app_port(app_url: str) -> int:
    return urlsplit(app_url).port or DEFAULT_APP_PORT


def streamlit_argv(port: int) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address=127.0.0.1", f"--server.port={port}", "--server.headless=true",
        "--browser.gatherUsageStats=false",
    ]


def run_demo(args: argparse.Namespace) -> int:
    os.environ["XERO_MOCK_MODE"] = "true"
    if args.port is not None and not 1 <= args.port <= 65535:
        print(f"error: --port {args.port} is not a port number: use one from 1 to 65535, e.g. {DEFAULT_APP_PORT}.",
              file=sys.stderr)
        return 2
    if args.port and not os.environ.get("XERO_APP_URL"):
        # Keep the OAuth redirect (XERO_REDIRECT_URI defaults to <app url>/callback) on the chosen port.
        os.environ["XERO_APP_URL"] = f"http://localhost:{args.port}"
    settings = load_settings()
    port = args.port or app_port(settings.app_url)
    from ..fake.server import start_fake

    try:
        # A fake started here also accepts this app's redirect URI for the demo client (any port).
        # It is owned: in this process group (a terminal's Ctrl-C stops it with the app) and tied
        # to this pid with --exit-with; exec below keeps the pid, so it ends when the app ends.
        fake = start_fake(settings.fake_port, settings.data_dir / "fake-xero", args.seed,
                          extra_args=["--redirect-uri", settings.redirect_uri, "--story"], owned=True)
    except RuntimeError as exc:  # the port is taken by something else, or the fake did not start
        print(f"error: {exc}", file=sys.stderr)
        return 1
    how = "stops with the app (Ctrl-C stops both)" if fake.started else "already running: left running when the app stops"
    print(f"Fake Xero: {fake.url} ({how})", file=sys.stderr)
    print(f"Ledgerlink admin (mock mode): http://localhost:{port}", flush=True)
    os.chdir(ROOT)
    os.execv(sys.executable, streamlit_argv(port))
    return 0  # not reached
