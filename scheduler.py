#!/usr/bin/env python
"""Ledgerlink scheduler: the daily Xero syncs as a separate process. See `python scheduler.py --help`.

Thin on purpose: the loop, state file, catch-up and pause flag live in xero_core/scheduling.py.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

DESCRIPTION = "Run Ledgerlink's scheduled Xero syncs (every connected organisation, then the practices)."

EPILOG = """\
what it runs
  Every day at XERO_SYNC_TIME (default 06:00) in XERO_TIMEZONE (default Australia/Sydney), one
  cycle: a sync job per connected tenant (organisations and Practice Manager), run concurrently by
  a pool of XERO_SYNC_WORKERS threads (default 8), each tenant within Xero's 60 calls a minute and
  all within the app-wide 10,000. A job is the tenant's whole pipeline: the financial steps, clients
  matched to contacts, Practice Manager jobs, pending document pushes, webhook events to catch up
  (trigger "scheduler" in sync_log). Daylight-saving changes are handled: the run stays at the
  configured local time. XERO_SYNC_EXTRA adds interval jobs syncing only some steps, e.g.
    XERO_SYNC_EXTRA="invoices=60m,contacts=2h"     (shortest interval 5m; "+" joins resources)
  While it runs, the scheduler's pool also runs the jobs the admin app or the CLI queue
  (`python -m xero_core jobs` lists them, with the process running each).

one sync per organisation
  A tenant has at most one queued or running job across every process: if the app's "Sync now",
  the CLI or another scheduler already has one, the cycle joins it (waits for it) instead of
  starting a second sync. A sync started outside the jobs (busy tenant lock) is recorded as busy.

state, pause and resume
  <XERO_DATA_DIR>/scheduler_state.json holds the pid, a heartbeat (every 30 s), the next run, the
  last run and its result, and the paused flag. The admin app's Sync page reads it and can pause
  or resume without a restart; so can --pause / --resume. While paused, due runs are skipped
  (the heartbeat goes on). Only one scheduler loop may run per data directory.

catch-up
  On start, if a scheduled daily run was missed while the scheduler was down, one catch-up
  cycle runs at once (one, however many days were missed). A very first start does not.

failures and signals
  A failing step or tenant is logged and written to sync_log; the others go on. SIGTERM or SIGINT
  (Ctrl-C): each running job finishes its current step, then stops (state "interrupted": the next
  run resumes from where it got to); the process exits 0.

exit codes
  0  stopped cleanly; with --once: no step failed (or paused, or interrupted by a signal)
  1  with --once: at least one step failed (details on stderr and in sync_log)
  2  bad settings or arguments, or another scheduler is already running

settings come from the environment and .env in the working directory (XERO_ENV_FILE to
point elsewhere); XERO_DATA_DIR is relative to the working directory.

examples
  python scheduler.py                    # run as a service (systemd unit in the README)
  python scheduler.py --once             # one cycle now (its state says running meanwhile), e.g. from cron:
  5 6 * * *  cd /opt/ledgerlink && .venv/bin/python scheduler.py --once >> data/scheduler.log 2>&1
  python scheduler.py --status           # JSON state: running, next run, last result
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scheduler.py", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run one full cycle now (a job per tenant, concurrently) and exit (for cron or a systemd timer); honours the paused flag")
    mode.add_argument("--status", action="store_true", help="print the scheduler's state as JSON and exit")
    mode.add_argument("--pause", action="store_true", help="pause scheduled syncs (a running scheduler obeys without a restart)")
    mode.add_argument("--resume", action="store_true", help="resume scheduled syncs")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr, including one line per HTTP request")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point: the settings from the environment, the engine on the network (mock mode: the
    fake Xero's loopback server), the loop."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # One INFO line per HTTP request drowns what the scheduler did; -v brings them back.
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    from xero_core.engine import Engine
    from xero_core.errors import LedgerlinkError
    from xero_core.scheduling import Scheduler, read_state, set_paused
    from xero_core.settings import SettingsError, load_settings

    try:
        settings = load_settings()
        if args.status:
            print(json.dumps(read_state(settings), indent=2, default=str))
            return 0
        if args.pause or args.resume:
            set_paused(settings, args.pause, by="scheduler.py")
            print("scheduled syncs paused" if args.pause else "scheduled syncs resumed", file=sys.stderr)
            return 0
        scheduler = Scheduler(Engine(settings))
        scheduler.install_signal_handlers()
        if not args.once:
            return scheduler.run_forever()
        code = scheduler.run_once()
        if scheduler.cycles and scheduler.cycles[-1].jobs:
            from xero_core.commands.sync import print_jobs

            print_jobs(scheduler.cycles[-1].jobs)  # each organisation's steps, as `sync` prints them
        return code
    except (SettingsError, LedgerlinkError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
