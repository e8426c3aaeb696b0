"""`python -m xero_core sync`, `jobs` and `demo` (thin: parse, call xero_core.pipeline, print).

sync: one tenant (`--tenant`), or every connected tenant (`--all`): a job per tenant, queued and
run in this process (or joined and followed when the tenant already has one); progress lines on
stderr; `--json` prints one document with a summary per step. Exit code 0 only when every job
ended `done` (a step the Xero plan refuses is not a failure).
jobs: the queued and running jobs of every process; `jobs cancel ID`, `jobs show ID`.

demo (mock mode): start the fake Xero if needed, connect its organisation and practice through its
consent form over HTTP (all tenants ticked, Allow; no browser), then run a first sync.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, Iterable, Mapping
from urllib.parse import urlencode, urljoin

from .. import timefmt
from ..errors import LedgerlinkError, UsageError
from ..pipeline.progress import ProgressEvent
from ..pipeline.request import DEMO_WEEKS
from ..settings import Settings, load_settings
from .live import SAID_ABOVE, LiveProgress, duration

if TYPE_CHECKING:  # types only: `--help` and `status` import no DuckDB or polars
    import httpx

    from ..clock import Clock
    from ..pipeline import jobs as J
    from ..pipeline.request import SyncRequest

DEMO_SEED = 42
# The demo organisation's first sync costs ~17 calls (accounts, contacts, 14,000 invoices) plus 2 per
# report week; at Xero's 60 calls a minute two years of weeks (~225 calls) take about 4 minutes, so the
# latest weeks come first and the rest follows as a history backfill (pipeline.plan.split_history).
# Its full journal history is ~300 more calls (~5 minutes): left to `--with-journals`, or to the
# history backfill the next Sync now queues.


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "sync", help="sync Xero data into DuckDB: queue a job per tenant and run it here, showing progress",
        description="Queue one sync job per tenant and run it in this process with live progress. If the tenant "
                    "already has a queued or running job (the scheduler, the app, another terminal), this joins "
                    "it and follows it instead of starting a second sync. Ctrl-C stops after the current step; "
                    "the next sync resumes from where it got to.")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--tenant", metavar="ID", help="the tenant to sync (see `status`)")
    who.add_argument("--all", action="store_true", help="every connected tenant, concurrently")
    p.add_argument("--only", metavar="STEPS",
                   help="comma list of steps: accounts,contacts,invoices,credit_notes,pnl,bank,journals (financial), clients, "
                        "documents, webhooks, xpm (practice); default: the tenant's whole plan")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--weeks", type=int, metavar="N",
                      help="report weeks to (re)fetch, ending with the current week (default 2; e.g. 104 for two "
                           "years: the latest weeks first, the older ones as a history backfill job that steps "
                           "aside for other syncs of the organisation)")
    when.add_argument("--week-ending", metavar="YYYY-MM-DD",
                      help="re-sync one past week's reports (accounts, P&L, bank; any day of the week will do)")
    p.add_argument("--json", action="store_true", help="print one JSON document (summary per tenant and step) on stdout")
    p.set_defaults(handler=run_sync)

    j = sub.add_parser("jobs", help="list sync jobs (queued, running, recent) or cancel one",
                       description="Sync jobs of every process (scheduler, app, CLI) from <XERO_DATA_DIR>/jobs.sqlite. "
                                   "Without a subcommand: the queued and running jobs (all recent ones with --all).")
    j.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    j.add_argument("--all", action="store_true", help="also the finished jobs (newest first)")
    j.add_argument("--tenant", metavar="ID", help="only this tenant's jobs")
    j.add_argument("--limit", type=int, default=30, metavar="N", help="at most N jobs (default %(default)s)")
    jsub = j.add_subparsers(dest="jobs_command", metavar="SUBCOMMAND")
    c = jsub.add_parser("cancel", help="cancel a job: a queued one at once, a running one at its next page or step")
    c.add_argument("job_id", metavar="ID", help="the job id, or enough of its start to be unique (as `jobs` prints it)")
    c.add_argument("--json", action="store_true", help="print the job as JSON on stdout")
    sh = jsub.add_parser("show", help="one job in full: request, owner, progress, every step")
    sh.add_argument("job_id", metavar="ID", help="the job id, or enough of its start to be unique")
    sh.add_argument("--json", action="store_true", help="print the job as JSON on stdout")
    j.set_defaults(handler=run_jobs)

    d = sub.add_parser("demo", help="mock mode: start the fake Xero, connect its tenants (no browser), first sync")
    d.add_argument("--weeks", type=int, default=DEMO_WEEKS, metavar="N",
                   help="weeks of reports to sync (default %(default)s, two years; the latest come first, the older "
                        "ones follow as a history backfill)")
    d.add_argument("--seed", type=int, default=DEMO_SEED, help="the fake's seed (default %(default)s)")
    d.add_argument("--with-journals", action="store_true",
                   help="also fetch the full journal history and the P&L tie-out (about 5 minutes more)")
    d.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    d.set_defaults(handler=run_demo)


def _print_summary(docs: list[dict[str, Any]], said: set[str] | frozenset[str] = frozenset()) -> None:
    """Per tenant and step. A sentence said already (Xero unreachable) is said once, first."""
    said = set(said)
    for r in docs:
        if r.get("unreachable") and r["unreachable"] not in said:
            said.add(r["unreachable"])
            print(r["unreachable"], file=sys.stderr)

    def once(text: str) -> str:
        return SAID_ABOVE if text in said else text

    for r in docs:
        print(f"{r.get('tenant_name') or r['tenant_id']} ({r.get('tenant_type') or '?'}): {r.get('status')}"
              + (f"  [job {r['job_id'][:8]} {r['job_state']}]" if r.get("job_id") else ""), file=sys.stderr)
        if r.get("job_error"):
            print(f"  {once(r['job_error'])}", file=sys.stderr)
        for s in r.get("steps") or []:
            extra = f"  {once(s['error'])}" if s.get("error") else ""
            print(f"  {s['step']:<12} {s['status']:<8} rows={s.get('rows', 0):<7} calls={s.get('api_calls', 0):<5} "
                  f"bytes={s.get('bytes_downloaded', 0)}{extra}", file=sys.stderr)


def _job_doc(job: J.Job) -> dict[str, Any]:
    """A finished job as the `sync --json` summary of its tenant."""
    d = (job.result.to_dict() if job.result else
         {"tenant_id": job.tenant_id, "tenant_name": job.tenant_name, "tenant_type": None, "status": job.state,
          "ok": False, "steps": []})
    d.update(job_id=job.job_id, job_state=job.state, job_error=job.error, joined=job.joined,
             ok=job.state == "done" and bool(d.get("ok", True)))
    if job.state != "done" and d.get("status") == "success":
        d["status"] = job.state
    return d


def _emit_docs(docs: list[dict[str, Any]], as_json: bool, said: set[str] | frozenset[str] = frozenset()) -> int:
    ok = bool(docs) and all(d.get("ok") for d in docs)
    if as_json:
        print(json.dumps({"ok": ok, "tenants": docs}, indent=2, default=str))
    else:
        _print_summary(docs, said)
    return 0 if ok else 1


def run_requests(settings: Settings, requests: list[SyncRequest], *, names: dict[str, str], progress: LiveProgress,
                 transport: httpx.BaseTransport | None = None, clock: Clock | None = None) -> list[J.Job]:
    """Queue the requests (or join the tenants' jobs), run the new ones here, follow the others;
    returns the finished jobs in the order asked. Ctrl-C: stop after the current step.

    A request that joined a job doing less than it asks (e.g. `--weeks 8` joining the scheduler's
    2-week run) is not reported done by that job: it runs as its own job right after (the jobs file
    queues it when the joined job ends), and that job is the one reported."""
    try:
        out, stopped = _run_round(settings, requests, names=names, progress=progress, transport=transport, clock=clock)
        again = [i for i, (r, j) in enumerate(zip(requests, out)) if j.joined and not j.request.covers(r)]
        if again and not stopped:
            more, _ = _run_round(settings, [requests[i] for i in again], names=names, progress=progress,
                                 transport=transport, clock=clock, second=True)
            for i, job in zip(again, more):
                out[i] = job
        return out
    finally:
        progress.close()


def _run_round(settings: Settings, requests: list[SyncRequest], *, names: dict[str, str], progress: LiveProgress,
               transport: httpx.BaseTransport | None = None, clock: Clock | None = None,
               second: bool = False) -> tuple[list[J.Job], bool]:
    from ..engine import Engine  # here, not at the top: `--help` and `status` need no DuckDB or polars
    from ..pipeline.worker import workers_setting

    eng = Engine(settings, transport=transport, clock=clock)
    submitted = eng.submit_all(requests, names=names)
    for job, req in zip(submitted, requests):
        if job.joined and not second:
            who = (f"{job.owner_label or 'a'} process {job.owner_pid} on {job.owner_host}" if job.owner_pid
                   else "the queue")
            then = ("" if job.request.covers(req) else
                    f"; it does not cover what was asked ({req.describe()}): that runs as its own job right after")
            progress.say(f"[{progress.label(job.tenant_id)}] joined {job.state} job {job.job_id[:8]} "
                         f"({job.trigger}, {job.request.describe()}) run by {who}; following it{then}")
        elif second:
            progress.say(f"[{progress.label(job.tenant_id)}] now {req.describe()} as its own job {job.job_id[:8]}")
    ids = [j.job_id for j in submitted]
    pool = eng.pool(workers=min(workers_setting(settings), len(ids)), label="cli", job_ids=ids, echo=progress)
    mine: set[str] = set()
    last_msg: dict[str, str] = {}

    def follow(job: J.Job) -> None:
        """Progress of jobs another process runs (ours print through `echo`)."""
        if job.owner_id == pool.owner.id:
            mine.add(job.job_id)
            return
        if not job.active:
            if last_msg.get(job.job_id) != job.state:
                last_msg[job.job_id] = job.state
                progress(ProgressEvent(job.state, job.tenant_id, message=job.error, job_ended=True))
            return
        p = job.progress
        msg = p.message
        if msg and last_msg.get(job.job_id) != msg:
            last_msg[job.job_id] = msg
            progress(ProgressEvent("joined", job.tenant_id, p.step, msg, count=p.count, total=p.total,
                                   eta_seconds=p.eta_seconds, estimated=p.estimated))

    problem = None
    stopped = False
    done: list[J.Job | None]
    try:
        # Figures first: the older weeks and the journal history are each tenant's own backfill job,
        # queued by its sync; run_until_done carries them through too.
        done = list(pool.run_until_done(ids, on_change=follow))
        done += [eng.job(h) for h in map(pool.history_of, ids) if h]
    except KeyboardInterrupt:
        progress.say("stopping after the current step (Ctrl-C again to force)...")
        pool.stop("the sync was stopped from the terminal (Ctrl-C)")
        done = [eng.job(i) for i in ids + [h for h in map(pool.history_of, ids) if h]]
        stopped = True
    except Exception as exc:
        # The jobs file itself failed (a full disk): no thread tracebacks, and the summary still
        # prints, each unfinished tenant with the sentence.
        from ..storage import as_storage_error

        se = as_storage_error(exc)
        if se is None:
            raise
        problem = str(se)
        pool.stop("the jobs file could not be written", timeout=30)
        done = []
        stopped = True
    else:
        pool.stop()
    by_id = {j.job_id: j for j in done if j is not None}
    out = []
    for j in submitted:
        job = by_id.get(j.job_id) or j
        if problem and (job.active or job.job_id not in by_id):
            job.state, job.error = "failed", pool.unrecorded.get(job.job_id) or problem
        job.joined = j.joined
        out.append(job)
        hist = by_id.get(pool.history_of(j.job_id) or "")
        if hist is not None:
            out.append(hist)
    return out, stopped


def run_sync(args: argparse.Namespace) -> int:
    from datetime import date

    from ..connections import list_connections
    from ..pipeline.plan import parse_only
    from ..pipeline.request import SyncRequest

    settings = load_settings()
    try:
        only = parse_only(args.only)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.weeks is not None and args.weeks < 1:
        raise UsageError("--weeks must be 1 or more")
    week_ending = None
    if args.week_ending:
        try:
            week_ending = date.fromisoformat(args.week_ending)
        except ValueError:
            raise UsageError(f"--week-ending {args.week_ending!r} is not a date: write it as YYYY-MM-DD, "
                             "e.g. 2026-11-28") from None
    conns = list_connections(settings)
    names = {c["tenant_id"]: c.get("tenant_name") or c["tenant_id"] for c in conns}
    connected = [c for c in conns if c.get("status") == "connected"]
    if args.all:
        tenants = [c["tenant_id"] for c in connected]
        if not tenants:
            raise LedgerlinkError("no connected tenants: run `python -m xero_core connect` first")
    elif args.tenant:
        if args.tenant not in names:
            raise LedgerlinkError(f"tenant {args.tenant} is not connected: run `python -m xero_core connect` first "
                                  "(`python -m xero_core status` lists connected tenants)")
        tenants = [args.tenant]
    else:
        if len(connected) != 1:
            listed = "; ".join(f"{c['tenant_name']}, {c['tenant_id']}" for c in connected) or "none"
            raise UsageError(f"say which tenant: --tenant ID or --all. Connected: {listed}")
        tenants = [connected[0]["tenant_id"]]
    # `--all` syncs the connected tenants; one that is not (e.g. needs reconnecting) is not synced, and a
    # script must hear it: it is named in the summary and the exit code is 1.
    left_out = [_not_synced_doc(c) for c in conns if args.all and c.get("status") != "connected"]
    who = os.environ.get("USER") or os.environ.get("USERNAME")
    requests = [SyncRequest(t, only=only, weeks=args.weeks, week_ending=week_ending, trigger="cli",
                            requested_by=f"cli:{who}" if who else "cli") for t in tenants]
    progress = LiveProgress(names)
    jobs = run_requests(settings, requests, names=names, progress=progress)
    docs = [_job_doc(j) for j in jobs] + left_out
    # Said already (mock mode's "start the fake"): cli.main need not probe and say it again.
    args.said_unreachable = any(d.get("unreachable") for d in docs)
    return _emit_docs(docs, args.json, progress.said)


def _not_synced_doc(conn: Mapping[str, Any]) -> dict[str, Any]:
    """A tenant `--all` did not sync, as its summary entry."""
    status = conn.get("status") or "unknown"
    why = f" ({conn['status_reason']})" if conn.get("status_reason") else ""
    fix = ("reconnect it: `python -m xero_core connect` (or Connect on the app's Connection page)"
           if status == "needs_reconnect" else "see `python -m xero_core status`")
    return {"tenant_id": conn["tenant_id"], "tenant_name": conn.get("tenant_name"), "tenant_type": conn.get("tenant_type"),
            "status": "not synced", "ok": False, "steps": [],
            "job_error": f"not synced: it is {status.replace('_', ' ')}{why}; {fix}."}


# -- jobs ------------------------------------------------------------------------------------
def _job_where(j: J.Job) -> str:
    """'journals 2,300 / ~27,700, about 4 min left': the step under way, how far, how long."""
    p = j.progress
    where = p.step or ""
    if p.count is not None:
        where += f" {int(p.count):,}" + (f" / {'~' if p.estimated else ''}{int(p.total):,}" if p.total else "")
    if j.state == "running" and p.eta_seconds:
        where += f", about {duration(p.eta_seconds)} left"
    return where.strip()


def _job_line(j: J.Job, tz: str | None = None) -> str:
    """Two lines per job: id, state, when queued, organisation and what it syncs; then where it is."""
    name = j.tenant_name or j.tenant_id
    msg = j.error if j.state in ("failed", "interrupted", "cancelled") else j.progress.message or ""
    where = _job_where(j)
    detail = "; ".join(x for x in (where, msg if msg not in (where,) else "") if x)
    return (f"{j.job_id[:8]}  {j.state:<11} {timefmt.stamp(j.created_at, tz):<22} {name} · {j.request.describe()}"
            + (f"\n          {detail[:160]}" if detail else ""))


def job_text(j: J.Job, tz: str | None = None) -> list[str]:
    """`jobs show ID` for people: the request, who runs it, its progress and every step."""
    r = j.request
    lines = [f"Job {j.job_id}", f"  organisation  {j.tenant_name or j.tenant_id} (tenant {j.tenant_id})",
             f"  asked         {r.describe()}; {j.trigger}" + (f", by {j.requested_by}" if j.requested_by else "")
             + (", at a lower priority" if j.priority else ""),
             f"  state         {j.state}"]
    for label, t in (("queued", j.created_at), ("started", j.started_at), ("finished", j.finished_at)):
        if t:
            lines.append(f"  {label:<13} {timefmt.stamp(t, tz)}")
    if j.state == "running" and j.owner_pid:
        lines.append(f"  run by        the {j.owner_label or 'worker'} process {j.owner_pid} on {j.owner_host}; "
                     f"last heard {timefmt.stamp(j.heartbeat_at, tz)}")
    if j.active and _job_where(j):
        lines.append(f"  now           {_job_where(j)}")
    if j.cancel_requested and j.active:
        lines.append(f"  cancelling    {j.cancel_requested}")
    if j.error:
        lines.append(f"  error         {j.error}")
    steps = j.result.steps if j.result else []
    if steps:
        lines.append("  steps")
        for st in steps:
            said = st.error or f"{st.rows:,} rows"
            lines.append(f"    {st.step:<13} {st.status:<8} {said}; {st.api_calls:,} calls")
    else:
        for line in j.progress.steps:
            lines.append(f"    {line.step}: {line.message or line.status}")
    hist = j.result.history_job if j.result else None
    if hist:
        lines.append(f"  history       queued as job {hist[:8]} (`python -m xero_core jobs show {hist[:8]}`)")
    return lines


def run_jobs(args: argparse.Namespace) -> int:
    from ..pipeline import jobs as J

    settings = load_settings()
    tz = settings.timezone
    try:
        if args.jobs_command == "cancel":
            job = J.request_cancel(settings, args.job_id, by=f"cli:{os.environ.get('USER') or 'unknown'}")
            if args.json:
                print(json.dumps(job.to_dict(), indent=2, default=str))
            else:
                print(f"job {job.job_id[:8]} ({job.tenant_name or job.tenant_id}): "
                      + ("cancelled" if job.state == "cancelled" else
                         "cancel requested: it stops at its next page or step, keeping what it saved"))
            return 0
        if args.jobs_command == "show":
            job = J.find(settings, args.job_id)
            if args.json:
                print(json.dumps(job.to_dict(), indent=2, default=str))
            else:
                print("\n".join(job_text(job, tz)))
            return 0
    except J.JobError as exc:
        raise LedgerlinkError(str(exc)) from None
    J.check(settings)  # a damaged jobs file is said, never listed as "no jobs" (issue 21 §4)
    found = J.list_jobs(settings, active_only=not args.all, tenant_id=args.tenant, limit=args.limit)
    if args.json:
        print(json.dumps({"jobs": [j.to_dict() for j in found]}, indent=2, default=str))
        return 0
    if not found:
        print("no sync jobs queued or running" + ("" if args.all else " (--all shows finished ones)"), file=sys.stderr)
        return 0
    print(f"{'JOB':<8}  {'STATE':<11} {'QUEUED':<22} ORGANISATION · WHAT")
    for j in found:
        print(_job_line(j, tz))
    return 0


# -- demo ------------------------------------------------------------------------------------
class _ConsentForm(HTMLParser):
    """The fake's consent page is a plain form: hidden fields, a checkbox per tenant, Allow/Deny."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: list[tuple[str, str]] = []
        self.boxes: list[tuple[str, str]] = []
        self.buttons: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
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


class DemoConsentRefused(LedgerlinkError):
    """The fake Xero's consent page would not let the demo connect."""


def _consent_refused(settings: Settings, status: int, body: str) -> DemoConsentRefused:
    """One sentence for a consent page that did not offer the Allow form (never a raw HTML page)."""
    import html
    import re

    said = html.unescape(re.sub(r"<[^>]+>", " ", body))
    said = " ".join(said.split())
    if "redirect_uri" in said:
        return DemoConsentRefused(
            f"The fake Xero at {settings.api_url} does not accept this app's redirect URI {settings.redirect_uri} "
            "(it follows XERO_APP_URL, or XERO_REDIRECT_URI): that fake was started for another one. Stop it and "
            "run demo again (it starts a fake that accepts it), or unset XERO_APP_URL / XERO_REDIRECT_URI.")
    return DemoConsentRefused(f"The fake Xero's consent page at {settings.authorize_url} answered HTTP {status}"
                              + (f" ({said[:200]})" if said else "") + "; nothing was connected.")


def connect_via_consent_form(settings: Settings, *, transport: httpx.BaseTransport | None = None) -> list[dict[str, Any]]:
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
                raise _consent_refused(settings, page.status_code, page.text)
            allow = next(((n, v) for n, v in form.buttons if v.lower() == "allow"), None)
            if allow is None:
                raise DemoConsentRefused(f"The consent page at {settings.authorize_url} has no Allow button; "
                                         "nothing was connected.")
            fields = form.hidden + form.boxes + [allow]
            resp = http.post(urljoin(url, form.action), content=urlencode(fields).encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
            if not resp.is_redirect:
                raise _consent_refused(settings, resp.status_code, resp.text)
            redirect = resp.headers["location"]
    return oauth.complete_connect(settings, redirect, transport=transport)


def run_demo(args: argparse.Namespace) -> int:
    os.environ["XERO_MOCK_MODE"] = "true"
    settings = load_settings()
    from ..connections import list_connections
    from ..fake.server import ensure_running

    try:
        # A fake started here accepts this app's redirect URI (XERO_APP_URL may name any port).
        url = ensure_running(settings.fake_port, settings.data_dir / "fake-xero", args.seed,
                             extra_args=["--redirect-uri", settings.redirect_uri])
    except RuntimeError as exc:  # the port is taken by another service, or the fake did not start
        print(f"error: {exc}", file=sys.stderr)
        args.said_unreachable = True
        return 1
    print(f"Fake Xero: {url}", file=sys.stderr)
    if not [c for c in list_connections(settings) if c.get("status") == "connected"]:
        tenants = connect_via_consent_form(settings)
        for t in tenants:
            print(f"connected {t.get('tenant_name')} ({t.get('tenant_type')})", file=sys.stderr)
        _confirm_proposed_ledger(settings)
    from ..pipeline.plan import step_names
    from ..pipeline.request import SyncRequest

    from ..pipeline.plan import FIGURES_WEEKS

    only = None if args.with_journals else frozenset(n for n in step_names() if n != "journals")
    if args.weeks < 1:
        raise UsageError("--weeks must be 1 or more")
    older = max(args.weeks - FIGURES_WEEKS, 0)
    minutes = (2 * older + (300 if args.with_journals else 0)) / 60
    later = " and ".join(x for x in (f"{older} older weeks" if older else "",
                                    "the journal history" if args.with_journals else "") if x)
    print(f"first sync: every invoice, credit note and contact, clients matched, and the latest "
          f"{min(args.weeks, FIGURES_WEEKS)} weeks' reports in under a minute"
          + (f"; then {later} as a history backfill, about {max(round(minutes), 1)} min at Xero's 60 calls a minute"
             if later else ""), file=sys.stderr)
    conns = [c for c in list_connections(settings) if c.get("status") == "connected"]
    names = {c["tenant_id"]: c.get("tenant_name") or c["tenant_id"] for c in conns}
    requests = [SyncRequest(t, only=only, weeks=args.weeks, trigger="cli", requested_by="demo") for t in names]
    progress = LiveProgress(names)
    jobs = run_requests(settings, requests, names=names, progress=progress)
    docs = [_job_doc(j) for j in jobs]
    # Said already (mock mode's "start the fake"): cli.main need not probe and say it again.
    args.said_unreachable = any(d.get("unreachable") for d in docs)
    return _emit_docs(docs, args.json, progress.said)


def _confirm_proposed_ledger(settings: Settings) -> None:
    """`demo` stands in for the admin who would click through the Connection page: with several
    organisations and the one named like Practice Manager proposed as the practice ledger, it
    confirms that proposal and says so (a workshop's notebooks then open on the practice's books).
    Nothing is chosen when there is no proposal."""
    from ..practice import roles as R

    view = R.roles(settings)
    if view.proposal and not view.confirmed:
        R.set_role(settings, view.proposal, R.PRACTICE_LEDGER)
        print(f"practice ledger: {view.name_of(view.proposal)} (the organisation named like Practice Manager; "
              "change it on the Connection page or with `python -m xero_core role`)", file=sys.stderr)


def print_jobs(jobs: Iterable[J.Job]) -> None:
    """Finished jobs as `sync` prints them on stderr: each tenant, then each of its steps
    (`scheduler.py --once` too)."""
    _print_summary([_job_doc(j) for j in jobs])
