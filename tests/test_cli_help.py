"""Every option of every command explains itself in --help (issue 12 §4)."""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from xero_core.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


def _walk(parser: argparse.ArgumentParser, path: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{path} {name}", "(the command itself)", helps.get(name)
                yield from _walk(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, "/".join(action.option_strings) or action.dest, action.help


def _scheduler_parser() -> argparse.ArgumentParser:
    spec = importlib.util.spec_from_file_location("scheduler_cli", ROOT / "scheduler.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_parser()


def test_every_cli_option_and_command_has_help():
    entries = list(_walk(build_parser(), "python -m xero_core")) + list(_walk(_scheduler_parser(), "scheduler.py"))
    assert len(entries) > 60  # the walk reached the sub-commands
    missing = [f"{cmd}: {opt}" for cmd, opt, text in entries if not (text or "").strip()]
    assert not missing, "options without help text:\n" + "\n".join(missing)
