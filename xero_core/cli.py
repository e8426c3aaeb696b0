"""`python -m xero_core`: thin argument parsing over xero_core.

Commands live in small modules that each expose `register(subparsers)`; a command's handler
returns the exit code. Output rules: `--json` prints exactly one JSON document on stdout, and an
error as one too (`{"ok": false, "error": "<sentence>"}`, non-zero exit); progress and logs go to
stderr; times for people are xero_core.timefmt's ('7 Dec 2026 20:42 AEDT'), ISO only under --json;
a reader that closes the pipe early (`| head`) ends the command quietly; no command ever prints a token.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from typing import NoReturn

from .errors import LedgerlinkError
from .settings import SettingsError

BROKEN_PIPE = 141  # what a shell reports for a command ended by SIGPIPE (128 + 13)


class _ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage error is raised (main prints it, as JSON under --json)."""

    def error(self, message: str) -> NoReturn:
        raise _ArgumentError(f"{self.prog}: {message}")

COMMAND_MODULES = (
    "xero_core.commands.core",      # connect, status, disconnect, rotate-key
    "xero_core.commands.fake",      # fake-xero
    "xero_core.commands.sync",      # sync, demo
    "xero_core.commands.practice",  # webhooks, clients, documents, xpm
    "xero_core.commands.demo_app",  # run-demo (what the README's demo command runs)
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m xero_core", description="Ledgerlink: Xero to DuckDB.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        mod.register(sub)
    return parser


def explain_unreachable() -> None:
    """After a failure: when nothing listens at Xero's API URL, say so and how to fix it
    (settings.unreachable_hint; mock mode: how to start the fake Xero). Silent otherwise."""
    import socket
    from urllib.parse import urlsplit

    try:
        from .settings import load_settings

        settings = load_settings()
        if not settings.unreachable_hint:
            return
        url = urlsplit(settings.api_url)
        port = url.port or (443 if url.scheme == "https" else 80)
    except Exception:
        return
    try:
        socket.create_connection((url.hostname, port), timeout=2).close()
    except OSError:
        print(f"note: nothing answers at {settings.api_url}. {settings.unreachable_hint}", file=sys.stderr)


def json_error(message: str) -> None:
    """An error under --json: one JSON document on stdout (the sentence is on stderr too for people)."""
    print(json.dumps({"ok": False, "error": message}, indent=2))


def _quiet_broken_pipe() -> int:
    """The reader went away (`... | head`): nothing more to say, and no traceback at exit either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # here, not at exit, where a closed pipe is a traceback-like warning
    except BrokenPipeError:
        return _quiet_broken_pipe()


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
    except _ArgumentError as exc:
        parser_usage = str(exc)
        print(f"error: {parser_usage} (see --help)", file=sys.stderr)
        if "--json" in argv:
            json_error(f"{parser_usage} (see --help)")
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # One line per HTTP request drowns the progress a person is reading; -v brings it back.
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    rc = _run(args)
    if args.command not in _NO_PUBLISH and not getattr(args, "failed_with_error", False):
        _publish()
    if rc not in (0, 130) and args.command not in ("fake-xero", "run-demo") and not getattr(args, "said_unreachable", False):
        explain_unreachable()
    return rc


# Long-running servers publish on their own; `status` only reads.
_NO_PUBLISH = ("fake-xero", "run-demo", "status")


def _publish() -> None:
    """A command that changed the working database leaves the readers' copy up to date
    (xero_core/snapshot.py); nothing is copied when nothing changed."""
    from . import snapshot
    from .settings import load_settings

    try:
        settings = load_settings()
    except Exception:  # the command already said what is wrong with the settings
        return
    snapshot.publish_if_changed(settings)


def _fail(args: argparse.Namespace, message: str, code: int = 1) -> int:
    print(f"error: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        json_error(message)
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:
        raise
    except (SettingsError, LedgerlinkError) as exc:
        args.failed_with_error = True  # said once: no publish to say it again
        logging.getLogger(__name__).debug("command failed", exc_info=True)  # -v: the traceback too
        return _fail(args, str(exc), getattr(exc, "exit_code", 1))
    except Exception as exc:
        # A disk problem met outside the stores' own translation (a folder in the way, a full disk,
        # a damaged file) is still one sentence naming the file and the fix; anything else is a bug
        # and keeps its traceback.
        from .storage import as_storage_error

        se = as_storage_error(exc)
        if se is None:
            raise
        args.failed_with_error = True
        logging.getLogger(__name__).debug("command failed", exc_info=True)
        return _fail(args, str(se))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
