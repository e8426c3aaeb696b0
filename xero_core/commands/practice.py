"""`webhooks`, `role`, `clients`, `documents`, `xpm`: the practice workflows from the command line.

Thin: parse, call xero_core.practice, print. `--json` prints one JSON document on stdout.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from .. import timefmt
from ..errors import LedgerlinkError
from ..settings import Settings, load_settings

if TYPE_CHECKING:
    from ..pipeline.result import SyncResult

DEFAULT_WEBHOOK_PORT = 8766


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("webhooks", help="serve POST /webhooks/xero (verify, spool, process Xero's webhook events)")
    p.add_argument("--port", type=int, default=DEFAULT_WEBHOOK_PORT, help=f"port (default {DEFAULT_WEBHOOK_PORT}; 0 = any)")
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1; put HTTPS in front for Xero)")
    p.add_argument("--set-key", action="store_true", help="read the webhook key from stdin into the vault, then exit")
    p.add_argument("--status", action="store_true", help="print the receiver's status (never the key) and exit")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    p.set_defaults(handler=cmd_webhooks)

    p = sub.add_parser("role", help="which organisation is the practice ledger and which are client organisations "
                                    "(no arguments: show them)")
    p.add_argument("tenant", nargs="?", metavar="TENANT_ID", help="a connected organisation (see `status`)")
    p.add_argument("role", nargs="?", metavar="ROLE", help="practice-ledger or client-organisation")
    p.add_argument("--client", metavar="ID", help="with client-organisation: the practice client it belongs to "
                                                  "(see `clients list`); `--client none` unlinks it")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    p.set_defaults(handler=cmd_role)

    p = sub.add_parser("clients", help="the practice's clients: list, add, import a CSV, resolve ambiguous matches")
    cs = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = cs.add_parser("list", help="list clients and their Xero / XPM links")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    a.set_defaults(handler=cmd_clients_list)
    a = cs.add_parser("add", help="add a client by hand")
    a.add_argument("name", help="the client's name, e.g. \"Acme Pty Ltd\"")
    a.add_argument("--email", help="the client's email address (used to match the Xero contact)")
    a.add_argument("--phone", help="the client's phone number")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    a.set_defaults(handler=cmd_clients_add)
    a = cs.add_parser("import", help="import clients from a CSV with a header row: name,email,phone")
    a.add_argument("csv", metavar="CSV", help="a CSV file with a header row name,email,phone")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    a.set_defaults(handler=cmd_clients_import)
    a = cs.add_parser("candidates", help="ambiguous matches waiting for an admin")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    a.set_defaults(handler=cmd_clients_candidates)
    a = cs.add_parser("resolve", help="link a client to a Xero contact (or XPM client) by hand")
    a.add_argument("--client", required=True, metavar="ID", help="the client id (see `clients list`)")
    a.add_argument("--tenant", required=True, metavar="ID", help="the tenant id (see `python -m xero_core status`)")
    a.add_argument("--contact", required=True, metavar="ID", help="the Xero ContactID (or XPM client ID)")
    a.add_argument("--json", action="store_true", help="print the client as JSON")
    a.set_defaults(handler=cmd_clients_resolve)
    a = cs.add_parser("sync", help="sync contacts and Practice Manager jobs for every connected tenant now, then "
                                   "report the reconciliation (imported, matched, ambiguous, skipped and why)")
    a.add_argument("--json", action="store_true", help="print one JSON document (the sync's steps and each report)")
    a.set_defaults(handler=cmd_practice_sync)
    a = cs.add_parser("match", help="match the contacts already synced to clients now (no call to Xero) and report")
    a.add_argument("--tenant", metavar="ID", help="only this connected tenant (default: every one)")
    a.add_argument("--json", action="store_true", help="print one JSON document: a report per tenant")
    a.set_defaults(handler=cmd_clients_match)
    a = cs.add_parser("skipped", help="Xero contacts that are not clients, and why (suppliers, government ...)")
    a.add_argument("--tenant", metavar="ID", help="only this tenant's contacts")
    a.add_argument("--json", action="store_true", help="print one JSON document")
    a.set_defaults(handler=cmd_clients_skipped)
    a = cs.add_parser("link-contact", help="make a Xero contact a client by hand (a supplier, a government body ...)")
    a.add_argument("contact", metavar="CONTACT_ID", help="the Xero ContactID (see `clients skipped`)")
    a.add_argument("--tenant", required=True, metavar="ID", help="the organisation the contact belongs to")
    a.add_argument("--client", metavar="ID", help="link it to this existing client instead of adding a new one")
    a.add_argument("--json", action="store_true", help="print the client as JSON")
    a.set_defaults(handler=cmd_clients_link_contact)

    p = sub.add_parser("documents", help="client documents pushed to Xero Files")
    ds = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = ds.add_parser("add", help="add a file for a client")
    a.add_argument("--client", required=True, metavar="ID", help="the client id (see `clients list`)")
    a.add_argument("file", metavar="FILE", help="the document to keep and push (a type Xero Files accepts, up to 10 MB)")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    a.set_defaults(handler=cmd_documents_add)
    a = ds.add_parser("push", help="push pending documents to Xero Files")
    g = a.add_mutually_exclusive_group()
    g.add_argument("--retry-failed", action="store_true", help="also retry every failed push")
    g.add_argument("--document", metavar="ID", help="push (or retry) this one document")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    a.set_defaults(handler=cmd_documents_push)
    a = ds.add_parser("queue", help="documents not in Xero yet: why each waits and when the next attempt is")
    a.add_argument("--json", action="store_true", help="print one JSON document")
    a.set_defaults(handler=cmd_documents_queue)
    a = ds.add_parser("list", help="documents and their push status")
    a.add_argument("--client", metavar="ID", help="only this client id (see `clients list`)")
    a.add_argument("--status", choices=("pending", "pushed", "failed", "skipped", "gave_up"), help="only this status")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    a.set_defaults(handler=cmd_documents_list)

    p = sub.add_parser("xpm", help="Xero Practice Manager: sync jobs, map job states to document chasing")
    xs = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = xs.add_parser("sync", help="sync Practice Manager jobs (all PRACTICEMANAGER tenants, or --tenant)")
    a.add_argument("--tenant", metavar="ID", help="only this tenant id (default: every Practice Manager tenant; see `status`)")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    a.set_defaults(handler=cmd_xpm_sync)
    a = xs.add_parser("map", help="mark a job state as 'needs documents' (or --off to unmark); no --state: show")
    a.add_argument("--tenant", required=True, metavar="ID", help="the tenant id (see `python -m xero_core status`)")
    a.add_argument("--state", action="append", default=[], metavar="NAME", help="a state's display name (repeatable)")
    a.add_argument("--off", action="store_true", help="remove these states from the mapping")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    a.set_defaults(handler=cmd_xpm_map)
    a = xs.add_parser("enable", help="turn document chasing on (or --off) for a Practice Manager connection")
    a.add_argument("--tenant", required=True, metavar="ID", help="the tenant id (see `python -m xero_core status`)")
    a.add_argument("--off", action="store_true", help="turn document chasing off instead of on")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    a.set_defaults(handler=cmd_xpm_enable)
    a = xs.add_parser("campaigns", help="chase campaigns")
    a.add_argument("--tenant", metavar="ID", help="only this tenant id (default: every Practice Manager tenant; see `status`)")
    a.add_argument("--status", choices=("open", "paused", "stopped", "completed"), help="only campaigns in this state")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    a.set_defaults(handler=cmd_xpm_campaigns)
    a = xs.add_parser("chase", help="send every chase reminder due now (the daily cycle runs the same)",
                      description="Plan and send every chase reminder due now: campaigns whose documents arrived "
                      "stop, the cadence's due reminders are recorded in the outbox and sent by email (SMTP_* and "
                      "CHASE_FROM settings), exactly once. Exit 1 when sending is stopped by settings or the server, "
                      "or a reminder failed.")
    a.add_argument("--tenant", metavar="ID", help="only this Practice Manager tenant's campaigns")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    a.set_defaults(handler=cmd_xpm_chase)
    a = xs.add_parser("outbox", help="the chase reminders and their state (due, sent, failed, bounced, skipped, ...)")
    a.add_argument("--tenant", metavar="ID", help="only this Practice Manager tenant's reminders")
    a.add_argument("--campaign", metavar="ID", help="only this campaign's reminders (see `xpm campaigns`)")
    a.add_argument("--state", choices=("due", "sending", "sent", "failed", "bounced", "skipped", "unconfirmed"),
                   help="only reminders in this state")
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    a.set_defaults(handler=cmd_xpm_outbox)
    a = xs.add_parser("cadence", help="show or set a mapped state's chase cadence and what is needed")
    a.add_argument("--tenant", required=True, metavar="ID", help="the Practice Manager tenant id")
    a.add_argument("--state", metavar="NAME", help="the mapped state (no --state: show every mapped state)")
    a.add_argument("--cadence", metavar="DAYS", help='e.g. "0, 3, 7, 14, then every 7" ("" resets to the default)')
    a.add_argument("--needed", metavar="TEXT", help='what the client is asked for, e.g. "your bank statements"')
    a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
    a.set_defaults(handler=cmd_xpm_cadence)
    for name, what in (("pause", "pause a campaign (no reminder until resumed)"),
                       ("resume", "resume a paused or stopped campaign"),
                       ("send-now", "send one reminder of this campaign now, whatever the cadence and quiet hours")):
        a = xs.add_parser(name, help=what)
        a.add_argument("campaign", metavar="CAMPAIGN_ID", help="see `xpm campaigns`")
        a.add_argument("--json", action="store_true", help="print one JSON document on stdout instead of lines")
        a.set_defaults(handler=cmd_xpm_campaign_action, action_name=name)


def _out(args: argparse.Namespace, doc: Any, lines: Iterable[str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(doc, default=str, indent=2))
    else:
        for line in lines:
            print(line)


def _client_row(settings: Settings, client_id: str) -> dict[str, Any]:
    """The client just written, read back for printing (gone only if another process removed it since)."""
    from ..practice import clients as C

    row = C.get_client(settings, client_id)
    if row is None:
        raise LedgerlinkError(f"Client {client_id} was removed while this command ran; see `clients list`.")
    return row


# -- webhooks ------------------------------------------------------------------------------------
def webhook_status_lines(st: Mapping[str, Any], tz: str | None = None) -> list[str]:
    """`webhooks --status` for people (--json prints the dict itself). Never the key. One clause per
    fact, no parenthesis inside another (the key's mask reads '…k3Xq (vault)'). Times in `tz`
    (XERO_TIMEZONE), as the app shows them."""

    def _when(v: Any) -> str:
        return timefmt.stamp(v, tz) or "never"

    if st.get("key_configured"):
        mask = str(st.get("key_mask") or "")
        hint, _, source = mask.partition(" (")
        source = source.rstrip(")")
        key = "set" + (f", ending {hint.lstrip('…')}" if hint.startswith("…") else "") + (f", from {source}" if source else "")
    else:
        key = "not set: every delivery gets 401"
    intent = (f"passed, last {_when(st.get('intent_to_receive_at'))}" if st.get("intent_to_receive_passed")
              else "not yet")
    lines = [
        f"Webhook key: {key}",
        f"Intent to Receive: {intent}",
        f"Last event received: {_when(st.get('last_event_received_at'))}; {st.get('deliveries_verified', 0)} deliveries verified",
    ]
    if st.get("intent_probes_refused"):
        lines.append(f"  {st['intent_probes_refused']} wrongly signed Intent to Receive probe(s) refused, as Xero "
                     "expects: it sends one good and several deliberately bad signatures. Not failures.")
    failure = st.get("last_verification_failure")
    lines.append(f"Last refused delivery: {_when(st.get('last_verification_failure_at'))}"
                 + (f"; why: {failure}; {st.get('deliveries_rejected', 0)} refused in all" if failure else ""))
    if st.get("deliveries_malformed"):
        lines.append(f"Signed but malformed deliveries: {st['deliveries_malformed']}")
    events = st.get("events")
    lines.append("Events in the database: " + (", ".join(f"{n} {k}" for k, n in sorted(events.items())) or "none")
                 if events is not None else "Events in the database: not readable now, a sync holds it")
    lines.append(f"Waiting in the spool: {st.get('spool_backlog', 0)}")
    return lines


def cmd_webhooks(args: argparse.Namespace) -> int:
    from ..practice import webhooks as W

    settings = load_settings()
    if args.set_key:
        key = sys.stdin.readline().strip()
        W.set_webhook_key(settings, key)
        print(f"webhook key stored in the vault ({W.webhook_key_mask(settings)})", file=sys.stderr)
        return 0
    if args.status:
        st = W.webhook_status(settings)
        _out(args, st, webhook_status_lines(st, settings.timezone))
        return 0
    from ..practice.spool import Spool
    from ..practice.webhook_server import serve

    # A receiver that cannot write its spool would answer every delivery 503: refuse to start,
    # with the StorageError's sentence (cli.py prints it).
    Spool.for_settings(settings)
    if not W.get_webhook_key(settings):
        print("warning: no webhook key yet: every delivery will get 401. Set XERO_WEBHOOK_KEY or run "
              "`python -m xero_core webhooks --set-key` (key on stdin).", file=sys.stderr)
    # The handler goes in before the announcement, so a supervisor's SIGTERM always stops cleanly.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    srv = serve(settings, args.host, args.port)
    print(f"listening on {srv.url} (Xero needs HTTPS: put a TLS proxy or tunnel in front). Ctrl-C stops.",
          file=sys.stderr)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.close()
    return 0


# -- roles ---------------------------------------------------------------------------------------
def _roles_lines(doc: Mapping[str, Any]) -> list[str]:
    from ..practice.roles import ROLE_LABELS

    lines = []
    for o in doc["organisations"]:
        if o["role"]:
            what = ROLE_LABELS[o["role"]]
        elif o["effective"] or o.get("suggested"):
            role = o["effective"] or "practice-ledger"  # several organisations: only a suggestion, not used
            what = f"{ROLE_LABELS[role]} (suggested: confirm with `role {o['tenant_id']} {role}`)"
        else:
            what = "no role yet"
        line = f"{o['tenant_name']} ({o['tenant_id']}): {what}"
        if o.get("client_name"):
            line += f"; belongs to client {o['client_name']} ({o['practice_client_id']})"
        elif o.get("suggested_clients"):
            line += "; belongs to client? " + ", ".join(
                f"{c['name']} ({c['client_id']}, same {c['method'].replace('_', ' ')})" for c in o["suggested_clients"])
        lines.append(line)
    if doc.get("problem"):
        lines.append(doc["problem"])
    return lines or ["no organisation is connected"]


def cmd_role(args: argparse.Namespace) -> int:
    from ..errors import LedgerlinkError
    from ..practice import client_orgs as O
    from ..practice import roles as R

    settings = load_settings()
    if args.tenant and not args.role:
        raise LedgerlinkError("Say which role: python -m xero_core role TENANT_ID practice-ledger|client-organisation")
    if not args.tenant:
        if args.client:
            raise LedgerlinkError("--client needs the organisation: python -m xero_core role TENANT_ID "
                                  "client-organisation --client CLIENT_ID")
        doc = O.organisations(settings)
        _out(args, doc, _roles_lines(doc))
        return 0
    role = R.parse_role(args.role)
    if args.client and role != R.CLIENT_ORGANISATION:
        raise LedgerlinkError("--client links a client organisation to its practice client; the practice ledger "
                              "belongs to no client.")
    change = R.set_role(settings, args.tenant, role)
    doc, lines = change.as_dict(), change.lines()
    if args.client:
        link = O.link_organisation(settings, args.tenant, None if args.client.lower() == "none" else args.client)
        doc["link"] = link
        lines.append(f"{change.tenant_name} belongs to client {link['client_name']}" if link.get("client_id")
                     else f"{change.tenant_name} is linked to no client")
    _out(args, doc, lines)
    return 0


# -- clients -------------------------------------------------------------------------------------
def cmd_clients_list(args: argparse.Namespace) -> int:
    from ..practice import clients as C

    rows = C.list_clients(load_settings())
    _out(args, rows, [f"{r['client_id']}  {r['name']!s:40.40}  {r['email'] or '-':35.35}  "
                      f"{r['match_status'] or '-':9} {r['xero_contact_id'] or '-'}"
                      + ("  (archived)" if r["archived"] else "") for r in rows] or ["no clients yet"])
    return 0


def cmd_clients_add(args: argparse.Namespace) -> int:
    from ..practice import clients as C

    settings = load_settings()
    cid = C.add_client(settings, args.name, args.email, args.phone)
    row = _client_row(settings, cid)
    _out(args, row, [f"added {cid}: {row['name']} ({row['match_status']}"
                     + (f", matched by {row['match_method']} to contact {row['xero_contact_id']}" if row["xero_contact_id"] else "")
                     + ")"])
    return 0


def cmd_clients_import(args: argparse.Namespace) -> int:
    from ..practice import clients as C

    res = C.import_csv(load_settings(), args.csv)
    _out(args, res.as_dict(), [f"imported {len(res.created)} client(s); {res.linked} matched to Xero contacts, "
                               f"{res.ambiguous} ambiguous (see `clients candidates`)"] + [f"  skipped {s}" for s in res.skipped])
    return 0


def cmd_clients_candidates(args: argparse.Namespace) -> int:
    from ..practice import clients as C

    rows = C.list_candidates(load_settings())
    _out(args, rows, [f"{r['client_id']} {r['client_name']!r}  <->  {r['contact_id']} {r['contact_name']!r} "
                      f"(tenant {r['tenant_id']}): {r['reason']}" for r in rows] or ["no ambiguous matches"])
    return 0


def cmd_clients_resolve(args: argparse.Namespace) -> int:
    from ..practice import clients as C

    settings = load_settings()
    C.resolve_match(settings, args.client, args.tenant, args.contact)
    _out(args, C.get_client(settings, args.client) if args.json else None,
         [f"client {args.client} linked to {args.contact}"])
    return 0


def _report_lines(tenant_name: str, report: Mapping[str, Any] | None, when: str | None = None) -> list[str]:
    from ..practice.matching import SKIP_REASONS

    if not report:
        return [f"{tenant_name}: no reconciliation yet"]
    if report.get("note") and not (report.get("imported") or report.get("matched") or report.get("already_linked")):
        return [f"{tenant_name}: {report['note']}"]
    lines = [f"{tenant_name}: imported {report.get('imported', 0)}, matched {report.get('matched', 0)}, "
             f"{report.get('already_linked', 0)} already linked, {report.get('ambiguous', 0)} ambiguous"
             + (f" ({report['waiting']} client(s) waiting: `clients candidates`)" if report.get("waiting") else "")
             + f", skipped {report.get('skipped', 0)}" + (f" ({when})" if when else "")]
    if report.get("removed"):
        lines.append(f"  removed {report['removed']} client(s) an earlier version imported from non-customers")
    examples = report.get("skipped_examples") or {}
    for reason, n in sorted((report.get("skipped_by_reason") or {}).items(), key=lambda kv: -kv[1]):
        ex = examples.get(reason) or []
        lines.append(f"  skipped {n} {SKIP_REASONS.get(reason, reason)}" + (f": {', '.join(ex)}" + (", ..." if n > len(ex) else "") if ex else ""))
    return lines


def _practice_docs(results: Iterable[SyncResult]) -> list[dict[str, Any]]:
    """SyncResults of the practice steps as the commands print them (and their --json)."""
    out = []
    for result in results:
        d = result.to_dict()
        doc = {"tenant_id": result.tenant_id, "tenant_name": result.tenant_name,
               "tenant_type": (result.tenant_type or "").upper(),
               **{k: d[k] for k in ("status", "steps", "busy", "run_id")}}
        clients = next((s for s in result.steps if s.step == "clients"), None)
        if clients is not None:
            doc["clients"] = clients.detail
        out.append(doc)
    return out


def cmd_practice_sync(args: argparse.Namespace) -> int:
    from ..engine import Engine
    from ..practice import clients as C
    from ..practice.roles import require_practice_ledger

    settings = load_settings()
    require_practice_ledger(settings)  # several organisations and none is the ledger: say so, guess nothing
    res = _practice_docs(Engine(settings).sync_practices(trigger="cli"))
    reports = {r["tenant_id"]: r for r in C.last_reconciliations(settings)}
    for r in res:
        last = reports.get(r["tenant_id"])
        if r.get("clients") is None and last is not None:
            r["clients"] = last.get("report")
    lines = []
    for r in res:
        lines.append(f"{r['tenant_name']} ({r['tenant_type']}): {r['status']}"
                     + "".join(f"\n  {s['step']}: {s['status']}" + (f" ({s['error']})" if s.get("error") else "")
                               for s in r.get("steps") or []))
        if r.get("clients"):
            lines += ["  " + x for x in _report_lines("clients", r["clients"])]
    _out(args, res, lines or ["no connected tenants"])
    return 0 if all(r["status"] in ("success", "skipped") for r in res) else 1


def cmd_clients_match(args: argparse.Namespace) -> int:
    from ..practice import clients as C

    res = C.match_clients_now(load_settings(), tenant_id=args.tenant, trigger="cli")
    lines = []
    for r in res:
        if r["error"]:
            lines.append(f"{r['tenant_name']}: failed: {r['error']}")
        elif r["status"] == "skipped":
            lines.append(f"{r['tenant_name']}: {r['summary']}")
        else:
            lines += _report_lines(r["tenant_name"], r["report"])
    _out(args, res, lines or ["no connected tenant" + (f" {args.tenant}" if args.tenant else "")])
    return 0 if res and all(r["status"] in ("success", "skipped") for r in res) else 1


def cmd_clients_skipped(args: argparse.Namespace) -> int:
    from ..practice import clients as C

    from ..practice.roles import roles

    settings = load_settings()
    rows = C.skipped_contacts(settings, args.tenant)
    r = roles(settings)
    if not rows and r.orgs and (r.ledger is None or (args.tenant and args.tenant != r.ledger)):
        # Only the practice ledger's contacts can be clients: say so rather than "every contact is a client".
        empty = [r.problem or f"{r.name_of(args.tenant) or args.tenant} is not the practice ledger: its contacts "
                 f"are never clients (the practice ledger is {r.name_of(r.ledger)})"]
    else:
        empty = ["every active contact is a client"]
    _out(args, rows, [f"{x['contact_id']}  {x['name'] or '-'!s:40.40}  {x['why']}" for x in rows]
         + ([f"add one by hand: python -m xero_core clients link-contact CONTACT_ID --tenant {rows[0]['tenant_id']}"]
            if rows else empty))
    return 0


def cmd_clients_link_contact(args: argparse.Namespace) -> int:
    from ..practice import clients as C

    settings = load_settings()
    cid = C.add_client_from_contact(settings, args.tenant, args.contact, client_id=args.client)
    row = _client_row(settings, cid)
    _out(args, row, [f"client {cid} ({row['name']}) is linked to Xero contact {args.contact}"])
    return 0


# -- documents -----------------------------------------------------------------------------------
def cmd_documents_add(args: argparse.Namespace) -> int:
    from ..practice import documents as D

    row = D.add_document(load_settings(), args.client, args.file)
    _out(args, row, [f"{row['document_id']}: {row['file_name']} ({row['size_bytes']} bytes) {row['status']}"
                     + (f": {row['error']}" if row["error"] else "")])
    return 1 if row["status"] == "skipped" else 0


def cmd_documents_push(args: argparse.Namespace) -> int:
    from ..practice import documents as D

    s = D.push_documents(load_settings(), document_id=args.document, retry_failed=args.retry_failed)
    _out(args, s.as_dict(), s.messages + [f"pushed {s.pushed}, failed {s.failed} (gave up {s.gave_up}), "
                                          f"waiting {s.skipped}"])
    return 1 if s.failed else 0


def cmd_documents_queue(args: argparse.Namespace) -> int:
    from ..clock import SYSTEM_CLOCK
    from ..practice import documents as D

    rows = D.push_queue(load_settings(), now=SYSTEM_CLOCK.now())
    _out(args, rows, [f"{r['document_id']}  {r['client_name'] or r['client_id']!s:28.28}  {r['file_name']!s:30.30}  "
                      f"{r['status']:8} {r['why']}" + (f"  next attempt {r['next_attempt_at']:%Y-%m-%d %H:%M %Z}"
                                                    if r["next_attempt_at"] else "") for r in rows]
         or ["nothing waiting: every document is in Xero"])
    return 0


def cmd_documents_list(args: argparse.Namespace) -> int:
    from ..practice import documents as D

    rows = D.list_documents(load_settings(), args.client, args.status)
    _out(args, rows, [f"{r['document_id']}  {r['client_name']!s:30.30}  {r['file_name']!s:30.30}  {r['status']:8} "
                      f"attempts {r['attempts']}" + (f"  {r['error']}" if r["error"] else "") for r in rows]
         or ["no documents"])
    return 0


# -- xpm -----------------------------------------------------------------------------------------
def cmd_xpm_sync(args: argparse.Namespace) -> int:
    from ..connections import list_connections
    from ..engine import Engine

    settings = load_settings()
    pms = [c["tenant_id"] for c in list_connections(settings) if (c.get("tenant_type") or "").upper() == "PRACTICEMANAGER"
           and (not args.tenant or c["tenant_id"] == args.tenant)]
    if not pms:
        raise LedgerlinkError("no connected Practice Manager tenant" + (f" {args.tenant}" if args.tenant else ""))
    res = []
    for tid in pms:
        res += _practice_docs(Engine(settings).sync_practices(trigger="cli", tenant_id=tid))
    _out(args, res, [f"{r['tenant_name']}: " + ", ".join(f"{s['step']} {s['status']}" + (f" ({s['error']})" if s.get("error") else "")
                                                        for s in r["steps"]) for r in res])
    return 0 if all(r["status"] in ("success", "skipped") for r in res) else 1


def cmd_xpm_map(args: argparse.Namespace) -> int:
    from ..practice import xpm as X

    settings = load_settings()
    current = X.get_mapping(settings, args.tenant)
    if args.state:
        wanted = (current - set(args.state)) if args.off else (current | set(args.state))
        known = {s.casefold() for s in X.known_states(settings, args.tenant)}
        unknown = [s for s in args.state if s.casefold() not in known]
        current = X.set_mapping(settings, args.tenant, wanted)
        if unknown and not args.off:
            print(f"note: no synced job is in {', '.join(unknown)} yet (states are matched by display name)",
                  file=sys.stderr)
    doc = {"tenant_id": args.tenant, "needs_documents": sorted(current), "known_states": X.known_states(settings, args.tenant),
           "xpm_enabled": X.is_enabled(settings, args.tenant)}
    _out(args, doc, [f"needs documents: {', '.join(sorted(current)) or '(none)'}",
                     f"known states: {', '.join(doc['known_states']) or '(sync first)'}",
                     f"chasing: {'on' if doc['xpm_enabled'] else 'off (python -m xero_core xpm enable --tenant ID)'}"])
    return 0


def cmd_xpm_enable(args: argparse.Namespace) -> int:
    from ..practice import xpm as X

    settings = load_settings()
    X.set_xpm_enabled(settings, args.tenant, not args.off)
    _out(args, {"ok": True, "tenant_id": args.tenant, "xpm_enabled": X.is_enabled(settings, args.tenant)},
         [f"document chasing {'off' if args.off else 'on'} for {args.tenant}"])
    return 0


def cmd_xpm_campaigns(args: argparse.Namespace) -> int:
    from ..practice import xpm as X

    rows = X.campaigns(load_settings(), args.tenant, args.status)
    _out(args, rows, [f"{r['campaign_id']}  {r['status']:9} {r['job_id']}  {r['client_name'] or r['xpm_client_id']!s:30.30} "
                      f"{r['job_state'] or ''}" + (f"  ({r['completion_reason']})" if r["completion_reason"] else "")
                      for r in rows] or ["no campaigns"])
    return 0


def _chase_lines(r: Mapping[str, Any]) -> list[str]:
    lines = [f"{r['sent']} sent, {r['failed']} failed, {r['bounced']} bounced, {r['skipped']} skipped, "
             f"{r['unconfirmed']} unconfirmed, {r['waiting']} waiting (quiet hours or a later retry)"
             + (f", {r['stopped']} campaign(s) stopped: documents arrived" if r["stopped"] else "")]
    lines += [f"  {m}" for m in r["messages"]]
    if r.get("error"):
        lines.append(f"error: {r['error']}")
    return lines


def cmd_xpm_chase(args: argparse.Namespace) -> int:
    from ..engine import Engine

    r = Engine(load_settings()).chase(tenant_id=args.tenant).as_dict()
    _out(args, r, _chase_lines(r))
    return 1 if r["error"] or r["failed"] else 0


def cmd_xpm_outbox(args: argparse.Namespace) -> int:
    from ..practice import chase

    settings = load_settings()
    rows = chase.outbox(settings, tenant_id=args.tenant, campaign_id=args.campaign, state=args.state)
    for r in rows:
        r.pop("body", None) if not args.json else None

    def when(r: Mapping[str, Any]) -> str:
        return timefmt.stamp(r["sent_at"] or r["next_try_at"] or r["due_at"], settings.timezone) or "-"

    _out(args, rows, [f"{r['reminder_id']}  {r['state']:11} {when(r)}  "
                      f"{r['job_id'] or ''}  {r['client_name'] or ''!s:28.28}  {r['address'] or '-'}"
                      + (f"  ({r['why']})" if r["why"] else "") for r in rows] or ["no reminders"])
    return 0


def cmd_xpm_cadence(args: argparse.Namespace) -> int:
    from ..practice import chase

    settings = load_settings()
    if args.state and (args.cadence is not None or args.needed is not None):
        chase.set_cadence(settings, args.tenant, args.state, args.cadence, args.needed)
    rows = chase.mapping_rows(settings, args.tenant)
    if args.state:
        rows = [r for r in rows if r["state"].casefold() == " ".join(args.state.split()).casefold()]
    _out(args, rows, [f"{r['state']}: {r['cadence_words']} ({r['cadence']}); asks for {r['needed']}" for r in rows]
         or ["no mapped state (python -m xero_core xpm map --tenant ID --state NAME)"])
    return 0


def cmd_xpm_campaign_action(args: argparse.Namespace) -> int:
    from ..practice import chase

    settings = load_settings()
    if args.action_name == "send-now":
        r = chase.send_now(settings, args.campaign).as_dict()
        _out(args, r, _chase_lines(r))
        return 1 if r["error"] or r["failed"] or r["bounced"] else 0
    c = (chase.pause if args.action_name == "pause" else chase.resume)(settings, args.campaign)
    c.pop("history", None)
    _out(args, c, [f"campaign {c['campaign_id']} is {c['status']}"])
    return 0
