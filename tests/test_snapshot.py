"""Issue 21 §2: a reader never stops a writer. Notebooks read the snapshot the sync publishes
(`data/xero.duckdb`); Ledgerlink writes its working database (`data/work/ledger.duckdb`)."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from xero_core import db, snapshot
from xero_core.engine import Engine
from xero_core.scheduling import Scheduler

from test_sync_e2e import connect as connect_fake, small_org

REPO = Path(__file__).resolve().parents[1]

NOTEBOOK = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)   # a finance lead's notebook, left open all day
    q = "SELECT count(*) FROM contacts WHERE name = 'Opened While Held Pty'"
    print(con.execute(q).fetchone()[0], flush=True)
    sys.stdin.readline()
    print(con.execute(q).fetchone()[0], flush=True)
""")


def _count_in_another_process(path: Path) -> int:
    out = subprocess.run([sys.executable, "-c", "import sys, duckdb; print(duckdb.connect(sys.argv[1], read_only=True)"
                          ".execute(\"SELECT count(*) FROM contacts WHERE name = 'Opened While Held Pty'\").fetchone()[0])",
                          str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


@pytest.mark.slow
def test_a_notebook_holding_the_snapshot_does_not_stop_the_scheduled_run(tmp_path):
    s, clock, fake, org = connect_fake(tmp_path, invoices=30, org_factory=small_org)
    assert snapshot.publish(s) is not None  # as yesterday's run left it
    assert s.snapshot_path.exists() and s.snapshot_path != s.db_path

    notebook = subprocess.Popen([sys.executable, "-c", NOTEBOOK, str(s.snapshot_path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert notebook.stdout.readline().strip() == "0", notebook.stderr.read()  # holding it open now
        fake.org(org).add_contact("Opened While Held Pty", at=clock.now(), email="held@example.com")
        day = clock.now().date()

        sch = Scheduler(Engine(s, transport=fake.transport(), clock=clock), workers=2)
        assert sch.run_once() == 0, [st.__dict__ for st in sch.cycles[-1].steps]
        assert clock.now().date() == day
        with db.connect(s.db_path, read_only=True) as con:  # landed the same day, in the working database
            assert con.execute("SELECT count(*) FROM contacts WHERE name = 'Opened While Held Pty'").fetchone() == (1,)
            assert con.execute("SELECT count(*) FROM sync_log WHERE trigger = 'scheduler' AND status = 'failed'"
                               ).fetchone() == (0,)
        # ... and published: the next connection a notebook opens sees it
        assert _count_in_another_process(s.snapshot_path) == 1
        notebook.stdin.write("\n")
        notebook.stdin.flush()
        assert notebook.stdout.readline().strip() == "0"  # the held connection keeps its old snapshot, unharmed
        assert notebook.wait(30) == 0
    finally:
        notebook.kill()
    assert stat.S_IMODE(s.snapshot_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(s.db_path.parent.stat().st_mode) == 0o700
    assert not list(s.data_dir.glob(".xero.duckdb.*")), "no temporary copies left behind"


@pytest.mark.slow
def test_an_existing_database_becomes_the_working_one_with_nothing_lost(tmp_path, make_settings):
    """An installation from before the snapshot: data/xero.duckdb (with commits still in its WAL,
    as a crashed process leaves them) is held open by a notebook when the new version first runs."""
    old = tmp_path / "before"
    old.mkdir()
    con = duckdb.connect(str(old / "xero.duckdb"))
    db.migrate(con)
    con.execute("INSERT INTO connections (tenant_id, tenant_name, status) VALUES ('t-1', 'Checkpointed Ltd', 'connected')")
    con.execute("CHECKPOINT")
    con.execute("INSERT INTO connections (tenant_id, tenant_name, status) VALUES ('t-2', 'Only In The WAL Ltd', 'connected')")
    s = make_settings()
    s.data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("xero.duckdb", "xero.duckdb.wal"):  # copied while open: exactly what a kill -9 leaves
        shutil.copyfile(old / name, s.data_dir / name)
    con.close()

    holder = subprocess.Popen([sys.executable, "-c", "import sys, duckdb; c = duckdb.connect(sys.argv[1], read_only=True);"
                               " print(c.execute('SELECT count(*) FROM connections').fetchone()[0], flush=True);"
                               " sys.stdin.readline()", str(s.snapshot_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "2", holder.stderr.read()
        from xero_core.connections import list_connections, set_status

        assert sorted(c["tenant_name"] for c in list_connections(s)) == ["Checkpointed Ltd", "Only In The WAL Ltd"]
        set_status(s, "t-1", "needs_reconnect", "test")  # a write, while the old file is held
        assert snapshot.publish_if_changed(s) is not None
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(30)
    assert not Path(str(s.snapshot_path) + ".wal").exists(), "the old WAL must not be replayed onto a snapshot"
    with duckdb.connect(str(s.snapshot_path), read_only=True) as c:
        assert c.execute("SELECT tenant_id, status FROM connections ORDER BY 1").fetchall() == [
            ("t-1", "needs_reconnect"), ("t-2", "connected")]


@pytest.mark.slow
def test_a_pool_of_many_jobs_publishes_once_not_once_a_job(make_settings, monkeypatch):
    s = make_settings()
    with db.connect(s.db_path) as con:
        con.execute("INSERT INTO sync_cursors VALUES ('t', 'r', 'x', now())")
    calls = []
    real = snapshot.publish
    monkeypatch.setattr(snapshot, "publish", lambda settings, **kw: calls.append(1) or real(settings, **kw))
    pub = snapshot.Debounced(s, every=60)
    assert pub.tick(busy=0) is not None and len(calls) == 1  # no snapshot yet: the first one
    with db.shared(s.db_path):  # as a pool's jobs share one open database
        for i in range(200):  # two hundred jobs end while others still run
            with db.connect(s.db_path) as con:
                con.execute("UPDATE sync_cursors SET cursor_value = ?", [str(i)])
            pub.job_ended()
            pub.tick(busy=5)
    assert len(calls) == 1, "within a minute of the last publish, running jobs publish nothing"
    pub.tick(busy=0)  # the batch ended
    assert len(calls) == 2
    pub.tick(busy=0)
    assert len(calls) == 2, "nothing changed since: nothing copied"
    with duckdb.connect(str(s.snapshot_path), read_only=True) as c:
        assert c.execute("SELECT cursor_value FROM sync_cursors").fetchone() == ("199",)


def test_a_damaged_working_file_moved_aside_starts_again_from_the_snapshot(make_settings):
    s = make_settings()
    with db.connect(s.db_path) as con:
        con.execute("INSERT INTO connections (tenant_id, tenant_name, status) VALUES ('t-1', 'Kept Ltd', 'connected')")
    snapshot.publish(s)
    os.replace(s.db_path, str(s.db_path) + ".broken")
    db._migrated.clear()
    from xero_core.connections import list_connections

    assert [c["tenant_name"] for c in list_connections(s)] == ["Kept Ltd"]


class _OpenWriter:
    """A sync's write transaction, held open in another thread (as a pool's job holds one) until
    `finish()`; `error` is whatever its INSERT or COMMIT raised."""

    def __init__(self, s, value: str):
        import threading

        self.s, self.value, self.error = s, value, None
        self.began, self.go = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.began.wait(30), "the writer never began"

    def _run(self):
        try:
            with db.connect(self.s.db_path) as con, db.transaction(con):
                con.execute("UPDATE sync_cursors SET cursor_value = ?", [self.value])
                self.began.set()
                assert self.go.wait(30), "the test never let the writer finish"
        except BaseException as exc:  # reported to the test
            self.error = exc
            self.began.set()

    def finish(self):
        self.go.set()
        self.thread.join(30)
        assert not self.thread.is_alive() and self.error is None, self.error


def test_a_publish_meeting_a_write_transaction_waits_quietly_for_the_next_idle_moment(make_settings, caplog):
    """The heartbeat's publish during a sync logged 'Cannot CHECKPOINT: there are other write
    transactions active' as a failure: it waits now, says nothing, and never fails the writer."""
    import logging

    s = make_settings()
    with db.connect(s.db_path) as con:
        con.execute("INSERT INTO sync_cursors VALUES ('t', 'r', 'x', now())")
    pub = snapshot.Debounced(s, every=60)
    with db.shared(s.db_path):  # as a pool's jobs share one open database
        assert pub.tick(busy=0) is not None  # the first snapshot
        with db.connect(s.db_path) as con:  # a job's commit, not yet published
            con.execute("UPDATE sync_cursors SET cursor_value = 'committed'")
        writer = _OpenWriter(s, "written during a publish")
        with caplog.at_level(logging.INFO, logger="xero_core.snapshot"):
            pub.job_ended()
            assert pub.tick(busy=0) is None  # a job ended, another is writing: not now
            assert pub.tick(busy=1) is None
        assert not [r for r in caplog.records if r.levelno >= logging.INFO], caplog.text
        writer.finish()
        assert pub.tick(busy=0) is not None, "the next idle moment publishes"
    with duckdb.connect(str(s.snapshot_path), read_only=True) as c:
        assert c.execute("SELECT cursor_value FROM sync_cursors").fetchone() == ("written during a publish",)


def test_a_publish_held_off_for_long_is_one_warning(make_settings, caplog, monkeypatch):
    """Syncs that never leave an idle moment must not hide that readers' copy stays old: one warning
    once unpublished changes waited UNPUBLISHED_WARNING_AFTER, not one per heartbeat."""
    import logging

    s = make_settings()
    with db.connect(s.db_path) as con:
        con.execute("INSERT INTO sync_cursors VALUES ('t', 'r', 'x', now())")
    monkeypatch.setattr(snapshot, "UNPUBLISHED_WARNING_AFTER", 0.0)
    with db.shared(s.db_path):
        assert snapshot.publish_if_changed(s) is not None
        with db.connect(s.db_path) as con:
            con.execute("UPDATE sync_cursors SET cursor_value = 'committed'")
        writer = _OpenWriter(s, "y")
        with caplog.at_level(logging.WARNING, logger="xero_core.snapshot"):
            for _ in range(3):
                assert snapshot.publish_if_changed(s) is None
        writer.finish()
        warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warned) == 1 and "not been updated" in warned[0] and "CHECKPOINT" not in warned[0], warned
        assert snapshot.publish_if_changed(s) is not None
