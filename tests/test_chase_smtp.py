"""Chase reminders through a real SMTP server on loopback (aiosmtpd, started here): exactly the expected
messages, the campaign's cadence, its stops (documents, pause, the job moving on), bounces and
retries, settings as one sentence, and kill -9 during sending (no reminder twice, none lost)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from xero_core import clock as xclock
from xero_core.db import connect
from xero_core.fake import FakeClock
from xero_core.fake.mail import MailCatcher, free_port
from xero_core.practice import campaigns as CMP
from xero_core.practice import chase
from xero_core.practice import xpm as X

PM = "pm-tenant-chase"
UTC = timezone.utc
OPENED = datetime(2026, 12, 8, 23, 0, tzinfo=UTC)  # Wednesday 9 Dec 2026, 10:00 in Sydney
ROOT = Path(__file__).resolve().parents[1]
CLIENTS = [("cl_a", "Acme Plumbing Pty Ltd", "accounts@acme.example", "J000001", "Annual Accounts 2026"),
           ("cl_b", "Birch & Sons", "office@birch.example", "J000002", "BAS Q2"),
           ("cl_c", "Cedar Cafe", None, "J000003", "Tax Return 2026")]


@pytest.fixture
def mail():
    with MailCatcher() as m:
        yield m


def smtp_env(port: int) -> dict:
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_SECURITY": "none",
            "CHASE_FROM": "Harbour & Co <office@harbour.example>", "XERO_TIMEZONE": "Australia/Sydney"}


def seed(settings, clients=CLIENTS, opened=OPENED, state="Waiting on Client"):
    with connect(settings.db_path) as con:
        con.execute("INSERT INTO connections (tenant_id, tenant_name, tenant_type, status) "
                    "VALUES (?, 'Harbour & Co', 'PRACTICEMANAGER', 'connected')", [PM])
        for cid, name, email, job, jname in clients:
            con.execute("INSERT INTO clients (client_id, name, email, xpm_client_id, match_status, source) "
                        "VALUES (?, ?, ?, ?, 'unmatched', 'xpm')", [cid, name, email, "x" + cid])
            con.execute("INSERT INTO xpm_jobs (tenant_id, job_id, name, client_id, client_name, state, ledgerlink_client_id, "
                        "is_current) VALUES (?, ?, ?, ?, ?, ?, ?, TRUE)", [PM, job, jname, "x" + cid, name, state, cid])
    X.set_xpm_enabled(settings, PM, True)
    X.set_mapping(settings, PM, {state})
    jobs = {job: CMP.JobView(job, state, "x" + cid, cid) for cid, _n, _e, job, _j in clients}
    with connect(settings.db_path) as con:
        CMP.apply_plan(con, PM, CMP.plan_campaigns(jobs, [], {state}), opened)


def outbox_states(settings) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in chase.outbox(settings):
        out.setdefault(r["client_name"], []).append(r["state"])
    return out


@pytest.mark.slow
def test_reminders_reach_a_real_smtp_server_exactly(make_settings, mail):
    settings = make_settings(**smtp_env(mail.port))
    seed(settings)
    clock = FakeClock(OPENED + timedelta(minutes=5))
    r = chase.run_chase(settings, clock=clock)
    assert (r.sent, r.skipped, r.error) == (2, 1, None)
    assert mail.wait_for(2)
    got = sorted(mail.caught, key=lambda c: c.rcpt_tos)
    assert [c.rcpt_tos for c in got] == [["accounts@acme.example"], ["office@birch.example"]]
    m = got[0].message
    assert m["From"] == "Harbour & Co <office@harbour.example>" and m["Reply-To"] == "office@harbour.example"
    assert m["Subject"] == "Harbour & Co: documents needed for Annual Accounts 2026"
    assert "Dear Acme Plumbing Pty Ltd," in m.get_content() and "(J000001)" in m.get_content()
    rows = {r["client_name"]: r for r in chase.outbox(settings)}
    assert {c.message_id for c in got} == {rows["Acme Plumbing Pty Ltd"]["message_id"], rows["Birch & Sons"]["message_id"]}
    assert rows["Cedar Cafe"]["state"] == "skipped" and rows["Cedar Cafe"]["why"] == "the client has no email address"
    assert rows["Acme Plumbing Pty Ltd"]["attempts"] == 1 and rows["Acme Plumbing Pty Ltd"]["smtp_reply"].startswith("250")

    # Again at once: nothing new. Saturday 12 Dec (day 3) is a weekend: the reminder waits for Monday 09:00.
    assert chase.run_chase(settings, clock=clock).sent == 0
    clock.advance(timedelta(days=3))
    assert chase.run_chase(settings, clock=clock).sent == 0
    camp = [c for c in X.campaigns(settings, PM) if c["job_id"] == "J000001"][0]
    assert camp["next_reminder_at"] == datetime(2026, 12, 13, 22, 0, tzinfo=UTC)  # Mon 14 Dec 09:00 AEDT
    assert camp["cadence"] == "0, 3, 7, 14, then every 7"
    clock.advance(timedelta(days=2))  # Monday 14 Dec, 10:05 in Sydney
    assert chase.run_chase(settings, clock=clock).sent == 2
    assert len(mail.caught) == 4
    assert outbox_states(settings) == {"Acme Plumbing Pty Ltd": ["sent", "sent"], "Birch & Sons": ["sent", "sent"],
                                       "Cedar Cafe": ["skipped", "skipped"]}


@pytest.mark.slow
def test_campaigns_stop_by_themselves(make_settings, mail):
    settings = make_settings(**smtp_env(mail.port))
    seed(settings)
    clock = FakeClock(OPENED + timedelta(minutes=5))
    assert chase.run_chase(settings, clock=clock).sent == 2
    camps = {c["job_id"]: c["campaign_id"] for c in X.campaigns(settings, PM)}
    # Acme's documents arrive (recorded after the campaign opened); Birch's campaign is paused.
    with connect(settings.db_path) as con:
        con.execute("INSERT INTO client_documents (document_id, client_id, file_name, status, created_at) "
                    "VALUES ('doc1', 'cl_a', 'bank-statements.pdf', 'pending', ?)", [clock.now() + timedelta(hours=1)])
    chase.pause(settings, camps["J000002"], clock=clock)
    clock.advance(timedelta(days=6))  # Tuesday 15 Dec: day 7's reminders came
    r = chase.run_chase(settings, clock=clock)
    assert (r.sent, r.stopped) == (0, 1)
    by_job = {c["job_id"]: c for c in X.campaigns(settings, PM)}
    assert by_job["J000001"]["status"] == "stopped" and "bank-statements.pdf" in by_job["J000001"]["stop_reason"]
    assert by_job["J000002"]["status"] == "paused"
    # The xpm step does not reopen them while their jobs stay in the state; the job moving on completes them.
    jobs = {j: CMP.JobView(j, "Waiting on Client", "x" + c, c) for c, _n, _e, j, _jn in CLIENTS}
    jobs["J000003"] = CMP.JobView("J000003", "In Progress", "xcl_c", "cl_c")
    with connect(settings.db_path) as con:
        p = CMP.plan_campaigns(jobs, CMP.load_open(con, PM), {"Waiting on Client"})
        assert not p.open and [c for c, _ in p.complete] == [camps["J000003"]]
        CMP.apply_plan(con, PM, p, clock.now())
    # Resumed: Birch is chased again, from the newest slot that came.
    chase.resume(settings, camps["J000002"], clock=clock)
    assert chase.run_chase(settings, clock=clock).sent == 1
    assert len(mail.caught) == 3 and mail.caught[-1].rcpt_tos == ["office@birch.example"]
    # Send now: one more at once, whatever the cadence; the quiet hours do not hold it.
    clock.advance(timedelta(hours=10))  # 21:05 in Sydney: quiet
    assert chase.run_chase(settings, clock=clock).sent == 0
    assert chase.send_now(settings, camps["J000002"], clock=clock).sent == 1
    assert len(mail.caught) == 4


@pytest.mark.slow
def test_bounces_retries_and_a_server_that_is_down(make_settings, mail):
    settings = make_settings(**smtp_env(mail.port))
    seed(settings)
    mail.hook = lambda stage, env, extra: ("550 5.1.1 no such mailbox" if stage == "rcpt" and extra.startswith("accounts@")
                                           else "451 4.3.0 try later" if stage == "rcpt" else None)
    clock = FakeClock(OPENED + timedelta(minutes=5))
    r = chase.run_chase(settings, clock=clock)
    assert (r.sent, r.bounced, r.failed) == (0, 1, 1)
    rows = {r["client_name"]: r for r in chase.outbox(settings)}
    assert rows["Acme Plumbing Pty Ltd"]["state"] == "bounced" and "550 5.1.1" in rows["Acme Plumbing Pty Ltd"]["why"]
    birch = rows["Birch & Sons"]
    assert birch["state"] == "failed" and birch["next_try_at"] == clock.now() + timedelta(minutes=15)
    mail.hook = None
    clock.advance(timedelta(minutes=16))
    assert chase.run_chase(settings, clock=clock).sent == 1
    assert [c.rcpt_tos for c in mail.caught] == [["office@birch.example"]]
    assert chase.outbox(settings, state="sent")[0]["attempts"] == 2

    # The server gone: one sentence, and the reminders wait (nothing lost).
    down = make_settings(**smtp_env(free_port()))
    clock.advance(timedelta(days=5))  # Monday 14 Dec, 10:21 in Sydney: day 3's reminders
    r = chase.run_chase(down, clock=clock)
    assert r.sent == 0 and r.error.startswith("Could not reach the SMTP server 127.0.0.1:")
    slot1 = {x["client_name"]: x for x in chase.outbox(down) if x["seq"] == 1}
    assert slot1["Birch & Sons"]["state"] == "failed" and slot1["Birch & Sons"]["next_try_at"] is not None
    assert slot1["Acme Plumbing Pty Ltd"]["state"] == "skipped" and "bounced on 2026-12-08" in slot1["Acme Plumbing Pty Ltd"]["why"]


def test_settings_problems_are_one_sentence(make_settings, mail):
    settings = make_settings(SMTP_HOST="smtp.example.com", SMTP_SECURITY="none", CHASE_FROM="office@harbour.example")
    assert settings.smtp.problem.startswith("SMTP_SECURITY=none sends passwords")
    seed(settings)
    r = chase.run_chase(settings, clock=FakeClock(OPENED + timedelta(minutes=5)))
    assert r.sent == 0 and ". " not in r.error and "SMTP_SECURITY=none" in r.error
    assert [x["state"] for x in chase.outbox(settings)].count("due") == 2  # kept for when it is fixed
    assert "SMTP_PORT='x'" in make_settings(SMTP_HOST="127.0.0.1", SMTP_PORT="x").smtp.problem
    assert "SMTP_SECURITY='ssl'" in make_settings(SMTP_SECURITY="ssl").smtp.problem
    real = make_settings(XERO_MOCK_MODE="false", XERO_CLIENT_ID="id", XERO_CLIENT_SECRET="s")
    assert real.smtp.problem.startswith("Chasing sends email but SMTP_HOST is not set")
    ok = make_settings(XERO_MOCK_MODE="false", XERO_CLIENT_ID="id", XERO_CLIENT_SECRET="s", SMTP_HOST="smtp.example.com",
                       CHASE_FROM="a@b.example", SMTP_USERNAME="u", SMTP_PASSWORD="pw-secret-123")
    assert (ok.smtp.problem, ok.smtp.security, ok.smtp.port) == (None, "starttls", 587)
    assert "pw-secret-123" not in repr(ok) and chase.smtp_status(ok)["password"] == "set (SMTP_PASSWORD)"


# --------------------------------------------------------------------------- kill -9 during sending

N = 5


class _LockThen:
    """A lock that runs `then()` once, right after its first release: another sender's claim landing
    between the two moments a sender holds chase's in-flight lock."""

    def __init__(self, then) -> None:
        self.lock, self.then, self.fired = threading.Lock(), then, False

    def __enter__(self) -> None:
        self.lock.acquire()

    def __exit__(self, *exc) -> None:
        self.lock.release()
        if not self.fired:
            self.fired = True
            self.then()


def _subprocess_env(settings_env: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XERO_", "SMTP_", "CHASE_"))}
    env.update(settings_env)
    return env


@pytest.mark.parametrize("hold_at", ["rcpt", "data"])
@pytest.mark.slow
def test_kill_9_during_sending_sends_none_twice_and_loses_none(tmp_path, make_settings, hold_at):
    """A sender killed while the server holds its 3rd message (before the message is handed over, or
    after the server has it), then run again: every reminder reached the server exactly once."""
    clients = [(f"cl_{i}", f"Client {i}", f"c{i}@example.com", f"J{i:06d}", f"Job {i}") for i in range(N)]
    held, release = threading.Event(), threading.Event()
    seen: list[str] = []

    def hook(stage, env, extra):
        if stage == hold_at:
            seen.append(stage)
            if len(seen) == 3:
                held.set()
                release.wait(30)
        return None

    with MailCatcher(hook=hook) as mail:
        # The sender runs on a pinned Wednesday (XERO_TODAY: real time moved onto that date), sending
        # hours all day: the test does not depend on the day or hour it runs.
        env = {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"), "XERO_ENCRYPTION_KEY": bytes(range(32)).hex(),
               "XERO_ENV_FILE": os.devnull, "XERO_TODAY": "2026-12-09", **smtp_env(mail.port)}
        settings = make_settings(**env)
        now = datetime.fromtimestamp(time.time() + xclock.pin_shift(date(2026, 12, 9), time.time(), "Australia/Sydney"), UTC)
        seed(settings, clients, opened=now - timedelta(hours=1))
        with connect(settings.db_path) as con:
            con.execute("INSERT INTO chase_settings (tenant_id, send_from, send_until) VALUES (?, '00:00', '24:00')", [PM])
        cmd = [sys.executable, "-m", "xero_core", "xpm", "chase", "--json"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_subprocess_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert held.wait(60), proc.communicate(timeout=5)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
        states = sorted(r["state"] for r in chase.outbox(settings))
        assert states == ["due"] * 2 + ["sending"] + ["sent"] * 2
        # Run again (a restart): the killed process's claim is reconciled, the rest sent.
        again = subprocess.run(cmd, cwd=ROOT, env=_subprocess_env(env), capture_output=True, text=True, timeout=60)
        doc = json.loads(again.stdout)
        rows = chase.outbox(settings)
        ids = [c.message_id for c in mail.caught]
        assert sorted(ids) == sorted(r["message_id"] for r in rows)  # every reminder reached the server once
        assert len(set(ids)) == len(ids) == N
        if hold_at == "rcpt":  # never handed over: safely sent again
            assert doc["requeued"] == 1 and sorted(r["state"] for r in rows) == ["sent"] * N
            assert again.returncode == 0
        else:  # the server had it: marked unconfirmed, not sent again
            assert doc["unconfirmed"] == 1 and sorted(r["state"] for r in rows) == ["sent"] * (N - 1) + ["unconfirmed"]
            assert "most likely delivered" in next(r["why"] for r in rows if r["state"] == "unconfirmed")


@pytest.mark.slow
def test_the_scheduler_sends_reminders_that_waited_for_sending_hours(make_settings, mail):
    """The daily cycle at 06:00 is in quiet hours: the scheduler's tick sends the reminder once they open."""
    from xero_core.engine import Engine
    from xero_core.scheduling import CHASE_TICK_MINUTES, Scheduler

    settings = make_settings(**smtp_env(mail.port))
    clock = FakeClock(datetime(2026, 12, 8, 19, 0, tzinfo=UTC))  # Wednesday 06:00 in Sydney
    seed(settings, opened=clock.now())
    sched = Scheduler(Engine(settings, clock=clock))
    sched.build()
    assert sched._chase_job is not None and sched._chase_job.interval == CHASE_TICK_MINUTES
    nxt, daily = sched.next_runs()
    assert nxt == daily  # the tick is not "the next run" the app shows
    sched._chase_tick()
    assert mail.caught == [] and chase.outbox(settings) == []
    assert {c["next_reminder_at"] for c in X.campaigns(settings, PM)} == {datetime(2026, 12, 8, 22, 0, tzinfo=UTC)}
    clock.advance(timedelta(hours=3))  # 09:00: sending hours
    sched._chase_tick()
    assert mail.wait_for(2) and len(mail.caught) == 2


@pytest.mark.slow
def test_templates_preview_and_what_they_refuse(make_settings, mail):
    settings = make_settings(**smtp_env(mail.port))
    seed(settings)
    with pytest.raises(chase.ChaseError, match=r"\{client_name\.__class__\}, which is not a field"):
        chase.set_config(settings, PM, subject="Hi {client_name.__class__}")
    with pytest.raises(chase.ChaseError, match="not an email address"):
        chase.set_config(settings, PM, reply_to="office at harbour")
    with pytest.raises(chase.ChaseError, match="end must come after"):
        chase.set_config(settings, PM, send_from="18:00", send_until="08:00")
    chase.set_config(settings, PM, subject="{job_id} for {client_name}\r\nBcc: x@evil.example",
                     body="Hello {client_name}, we need {needed}. Reply to {reply_to}.", reply_to="docs@harbour.example")
    chase.set_cadence(settings, PM, "waiting on client", "at once, 2, then every 5", "your bank statements")
    pv = chase.preview(settings, PM)
    assert pv["body"].startswith("Hello ") and pv["body"].endswith(", we need your bank statements. Reply to "
                                                                   "docs@harbour.example.")
    assert pv["body"][len("Hello "):-len(", we need your bank statements. Reply to docs@harbour.example.")] in \
        {n for _c, n, _e, _j, _jn in CLIENTS}  # the newest open campaign's client
    assert chase.mapping_rows(settings, PM)[0]["cadence_words"] == "at once, then 2 days, then every 5 days"
    r = chase.run_chase(settings, clock=FakeClock(OPENED + timedelta(minutes=5)))
    assert r.sent == 2 and mail.wait_for(2)
    m = mail.caught[0].message
    # A line break in a subject cannot add a header: the subject is one line, no Bcc was added.
    assert m["Bcc"] is None and "\n" not in m["Subject"] and m["Reply-To"] == "docs@harbour.example"
    assert "we need your bank statements" in m.get_content()


@pytest.mark.slow
def test_two_senders_at_once_send_each_reminder_once(make_settings, mail):
    clients = [(f"cl_{i}", f"Client {i}", f"c{i}@example.com", f"J{i:06d}", f"Job {i}") for i in range(6)]
    settings = make_settings(**smtp_env(mail.port))
    seed(settings, clients)
    clock = FakeClock(OPENED + timedelta(minutes=5))
    results, errors = [], []

    def sender():
        try:
            results.append(chase.run_chase(settings, clock=clock))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            import traceback

            errors.append("".join(traceback.format_exception(exc)))

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 2
    assert sum(r.sent for r in results) == 6 and mail.wait_for(6)
    ids = [c.message_id for c in mail.caught]
    assert len(ids) == len(set(ids)) == 6


@pytest.mark.slow
def test_starttls_or_tls_against_a_server_without_them_is_one_sentence(make_settings, mail):
    """The real server here speaks plain SMTP on loopback: asking for STARTTLS or TLS fails with a
    sentence saying what to change, and the reminders wait."""
    for security, words in (("starttls", "does not offer STARTTLS: set SMTP_SECURITY=tls"),
                            ("tls", "could not reach the SMTP server")):
        settings = make_settings(**{**smtp_env(mail.port), "SMTP_SECURITY": security},
                                 XERO_DATA_DIR=str(Path(make_settings().data_dir).parent / security))
        assert settings.smtp.problem is None
        seed(settings)
        r = chase.run_chase(settings, clock=FakeClock(OPENED + timedelta(minutes=5)))
        assert r.sent == 0 and words.lower() in r.error.lower(), r.error
        assert mail.caught == []
        assert {x["state"] for x in chase.outbox(settings) if x["address"]} <= {"due", "failed"}


@pytest.mark.slow
def test_a_claim_made_by_another_thread_while_a_run_starts_is_not_taken_for_abandoned(make_settings, mail, monkeypatch):
    """Two senders in one process (the app server's pool running a sync's chase step while a page's
    Send now runs): a thread marks a reminder in flight, then claims it. A run reconciling at that
    moment read the in-flight set before its query's snapshot, saw the fresh claim as abandoned, put it
    back to `due` and sent it too: the client got the reminder twice."""
    settings = make_settings(**smtp_env(mail.port))
    seed(settings, CLIENTS[:1])
    clock = FakeClock(OPENED + timedelta(minutes=5))
    with connect(settings.db_path) as con:
        chase.plan(con, settings, clock.now())
    (rid,) = [r["reminder_id"] for r in chase.outbox(settings) if r["state"] == "due"]
    other: dict = {}

    def other_claims() -> None:
        chase._inflight.add(rid)  # what run_chase does before claiming
        other["row"] = chase._claim(settings, rid, clock.now(), chase._me())

    # the module's lock, with the other thread's claim landing right after its first use
    monkeypatch.setattr(chase, "_inflight_lock", _LockThen(other_claims))
    first = chase.run_chase(settings, clock=clock)
    assert other["row"] is not None and (first.sent, first.requeued) == (0, 0)
    with connect(settings.db_path, read_only=True) as con:
        window = chase._config(con, settings, PM).window
    try:
        assert chase.send_one(settings, other["row"], None, chase._me(), clock, window).state == "sent"
    finally:
        chase._inflight.discard(rid)
    assert mail.wait_for(1) and [r["state"] for r in chase.outbox(settings)] == ["sent"]
    assert chase.run_chase(settings, clock=clock).sent == 0
    assert [c.message_id for c in mail.caught] == [chase.outbox(settings)[0]["message_id"]]


@pytest.mark.slow
def test_send_now_says_so_when_another_sender_took_its_reminder(make_settings, mail, monkeypatch):
    """Send now's reminder claimed by another sender between Send now's commit and its own claim
    goes once, by that sender; Send now says so instead of a bare "0 sent" inviting a second press."""
    settings = make_settings(**smtp_env(mail.port))
    seed(settings, CLIENTS[:1])
    clock = FakeClock(OPENED + timedelta(minutes=5))
    (camp,) = X.campaigns(settings, PM)
    taken: dict = {}

    def other_claims() -> None:
        (row,) = [r for r in chase.outbox(settings) if r["forced"]]
        taken["row"] = chase._claim(settings, row["reminder_id"], clock.now(), "4242:1.000")

    monkeypatch.setattr(chase, "_inflight_lock", _LockThen(other_claims))
    res = chase.send_now(settings, camp["campaign_id"], clock=clock)
    assert taken["row"] is not None and res.sent == 0
    assert res.messages == ["another sender (the scheduler or a sync's chase step) took this reminder at the same "
                            "moment and is sending it"]
    assert [r["state"] for r in chase.outbox(settings) if r["forced"]] == ["sending"]
