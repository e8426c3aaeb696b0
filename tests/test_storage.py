"""Issue 14: storage faults (a file where the data dir should be, no write permission, a full disk,
a damaged database) are one sentence naming the file or XERO_DATA_DIR and the fix, in the CLI, the
webhook receiver and the app; the data dir is private (0700, files 0600).

Disk faults are simulated without root tricks that root ignores: a file in the way, a process
running as `nobody` (when the suite runs as root; chmod otherwise), RLIMIT_FSIZE (a write past the
limit fails with EFBIG, as a full disk fails with ENOSPC), and garbage bytes in the database.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import resource
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from xero_core import db, storage
from xero_core.errors import LedgerlinkError, StorageError
from xero_core.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def cli_env(data_dir: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XERO_")}
    env.update(XERO_MOCK_MODE="true", XERO_DATA_DIR=str(data_dir), XERO_ENV_FILE=os.devnull,
               XERO_ENCRYPTION_KEY=secrets.token_hex(32), XERO_FAKE_PORT="9",  # nothing listens on 9
               **extra)
    return env


def run_cli(env: dict, *argv: str, preexec_fn=None, user=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xero_core", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, preexec_fn=preexec_fn, user=user)


def assert_one_sentence(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    # WARNING log lines and the mock-mode "note: the fake Xero is not running" hint are not the error
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith(("WARNING ", "note: "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# --------------------------------------------------------------------------- the CLI


def test_a_file_where_the_data_dir_should_be(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    env = cli_env(blocker)
    for argv in (["status"], ["sync", "--all"], ["clients", "list"]):
        line = assert_one_sentence(run_cli(env, *argv), "XERO_DATA_DIR", str(blocker), "is a file, not a folder")
        assert "set XERO_DATA_DIR" in line
    # mock mode without a key creates one in the data dir: the same sentence, from load_settings
    env.pop("XERO_ENCRYPTION_KEY")
    assert_one_sentence(run_cli(env, "status"), str(blocker), "is a file, not a folder")


def test_a_data_dir_the_disk_refuses_for_another_reason_raises_that_error(tmp_path):
    # An errno storage.describe does not classify (a name too long) was raised as `raise None`:
    # a TypeError naming no folder. The OSError itself says what is wrong.
    too_long = tmp_path / ("x" * 300)
    with pytest.raises(OSError) as caught:
        storage.secure_dir(too_long)
    assert caught.value.errno == errno.ENAMETOOLONG


def test_garbage_bytes_in_the_database(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "ledger-work.duckdb").write_bytes(os.urandom(64 * 1024))
    env = cli_env(data)
    for argv in (["status"], ["sync", "--all"]):
        line = assert_one_sentence(run_cli(env, *argv), str(data / "ledger-work.duckdb"), "damaged")
        assert "Move it aside" in line and "readers' copy" in line


def test_damaged_sqlite_store_says_what_deleting_it_costs(settings):
    from xero_core.practice.spool import Spool, spool_path
    from xero_core.ratelimit import SharedRateLimiter, db_path

    settings.data_dir.mkdir(parents=True)
    db_path(settings).write_bytes(b"garbage " * 2000)
    spool_path(settings).write_bytes(b"garbage " * 2000)
    with pytest.raises(StorageError) as e:
        SharedRateLimiter(settings)
    assert str(db_path(settings)) in str(e.value) and "delete it" in str(e.value)
    with pytest.raises(StorageError) as e:
        Spool(spool_path(settings))
    assert str(spool_path(settings)) in str(e.value) and "webhook deliveries" in str(e.value)


NOBODY = 65534


def _python_for_nobody(env: dict) -> list[str] | None:
    """An interpreter `nobody` can run with this environment's packages: ours, or (when ours lives
    under root's private home) the system's same-version Python with our site-packages on the path."""
    import site
    import sysconfig

    def runs(argv: list[str]) -> bool:
        try:
            return subprocess.run([*argv, "-c", "import duckdb, xero_core"], env=env, cwd=ROOT, user=NOBODY,
                                  capture_output=True, timeout=60).returncode == 0
        except PermissionError:  # the interpreter itself is out of nobody's reach
            return False

    if runs([sys.executable]):
        return [sys.executable]
    ver = sysconfig.get_python_version()
    system = Path(f"/usr/bin/python{ver}")
    if not system.exists():
        return None
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *site.getsitepackages()])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return [str(system)] if runs([str(system)]) else None


def test_a_data_dir_without_write_permission():
    top = Path(tempfile.mkdtemp(prefix="ledgerlink-ro-"))  # outside pytest's 0700 tmp: nobody must get in
    data = top / "data"
    try:
        os.chmod(top, 0o755)
        data.mkdir()
        env = cli_env(data)
        env["HOME"] = str(top)
        if os.geteuid() == 0:
            # Root ignores modes: run the CLI as nobody in root's 0755 folder (readable, not writable).
            os.chmod(data, 0o755)
            python = _python_for_nobody(env)
            if python is None:
                pytest.skip("no Python interpreter that user nobody may run")
            user = NOBODY
        else:
            os.chmod(data, 0o555)
            python, user = [sys.executable], None
        proc = subprocess.run([*python, "-m", "xero_core", "status"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120, user=user)
        line = assert_one_sentence(proc, str(data / "ledger-work.duckdb"), "XERO_DATA_DIR", "ermission denied")
        assert "writable" in line
    finally:
        if data.exists():
            os.chmod(data, 0o755)
        shutil.rmtree(top, ignore_errors=True)


def _limit_file_size(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return apply


def test_a_full_disk_during_a_write_keeps_nothing_half_done(tmp_path):
    data = tmp_path / "data"
    env = cli_env(data)
    assert run_cli(env, "clients", "list").returncode == 0  # database created and migrated
    # No file this process writes may grow past 256 bytes (Python ignores SIGXFSZ: the write that would
    # fails with EFBIG, as on a full disk it fails with ENOSPC). DuckDB's commit appends to its WAL.
    proc = run_cli(env, "clients", "add", "Ann Example", "--email", "ann@example.com",
                   preexec_fn=_limit_file_size(256))
    line = assert_one_sentence(proc, "disk holding", str(data / "ledger-work.duckdb"), "is full", "Free some space")
    assert "was not kept" in line
    proc = run_cli(env, "clients", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []  # nothing half-saved; the file still opens


def test_full_disk_on_the_webhook_spool_answers_503_with_one_log_line(tmp_path):
    data = tmp_path / "data"
    script = textwrap.dedent("""
        import logging, resource, sys
        from xero_core.settings import load_settings
        from xero_core.practice import webhooks as W
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
        s = load_settings()
        W.Spool.for_settings(s)  # opened before the disk fills
        body = b'{"events": [{"tenantId": "t", "eventCategory": "INVOICE", "eventType": "UPDATE", "resourceId": "r", "eventDateUtc": "2026-01-01T00:00:00"}], "firstEventSequence": 1, "lastEventSequence": 1}' + b" " * 20000
        sig = W.sign("k" * 32, body)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.RLIM_INFINITY))
        print([W.handle_webhook(s, body, sig) for _ in range(3)])
    """)
    env = cli_env(data, XERO_WEBHOOK_KEY="k" * 32)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "[503, 503, 503]", proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "webhook_spool.sqlite" in errors[0]


# --------------------------------------------------------------------------- the receiver


def test_receiver_refuses_to_start_when_its_spool_cannot_be_written(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("x")
    proc = run_cli(cli_env(blocker, XERO_WEBHOOK_KEY="k" * 32), "webhooks", "--port", "0")
    assert_one_sentence(proc, str(blocker), "is a file, not a folder")


def test_receiver_worker_logs_a_storage_problem_once_not_a_traceback_per_pass(make_settings, caplog):
    from xero_core.practice import webhooks as W

    s = make_settings()
    body = (b'{"events": [{"tenantId": "t", "eventCategory": "INVOICE", "eventType": "UPDATE", "resourceId": "r", '
            b'"eventDateUtc": "2026-01-01T00:00:00"}], "firstEventSequence": 1, "lastEventSequence": 1}')
    W.Spool.for_settings(s).put(body, 1)  # a delivery waiting to be moved into DuckDB
    s.db_path.write_bytes(os.urandom(32 * 1024))  # damaged database; the spool still works
    worker = W.Worker(s, interval=60, move_gap=0.01).start()
    try:
        with caplog.at_level(logging.DEBUG, logger="xero_core.practice.webhooks"):
            for n in range(1, 5):  # a pass per delivery the receiver would announce
                worker.wake()
                assert worker.wait_moves(n, timeout=30)
            assert "damaged" in worker.last_move_error
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1 and errors[0].exc_info is None, [r.getMessage() for r in errors]
            assert str(s.db_path) in errors[0].getMessage() and "move it aside" in errors[0].getMessage()
            s.db_path.unlink()  # the operator moves it aside: the next pass works and says so once
            moves = worker.moves
            worker.wake()
            assert worker.wait_moves(moves, timeout=30)
            assert worker.last_move_error is None
            assert sum("works again" in r.getMessage() for r in caplog.records) == 1
    finally:
        worker.stop()


# --------------------------------------------------------------------------- modes


PROBE = textwrap.dedent("""
    import json, os, stat, sys
    from pathlib import Path
    os.umask(0o022)  # the usual default: without our own care, files would be 0644 in a 0755 dir
    from xero_core.settings import load_settings
    from xero_core import db, sqlite_wal
    from xero_core.ratelimit import SharedRateLimiter
    from xero_core.practice.spool import Spool
    from xero_core.sync.locks import tenant_lock
    from xero_core.vault import Vault
    from xero_core.tokens import grant_lock
    from xero_core import scheduling
    s = load_settings()
    seen = {}
    def modes():
        for p in [s.data_dir, *s.data_dir.rglob("*")]:
            try:  # SQLite removes a -wal when its last connection closes (a collected limiter's)
                seen[str(p.relative_to(s.data_dir))] = oct(stat.S_IMODE(p.lstat().st_mode))
            except FileNotFoundError:
                pass
    with db.connect(s.db_path) as con:
        con.execute("CREATE TABLE probe AS SELECT range AS i FROM range(1000)")
        con.execute("INSERT INTO probe VALUES (1)")
        modes()  # the DuckDB .wal exists now
    with SharedRateLimiter(s).acquire("t1"):
        pass
    Spool.for_settings(s).put(b"{}", 1)
    sqlite_wal.open_wal(s.data_dir / "jobs.sqlite", timeout=5).execute("CREATE TABLE IF NOT EXISTS j (x)")
    with tenant_lock(s, "t1"):
        modes()
    Vault(s).write("probe", {"x": 1})
    with grant_lock(s, "g1"):
        pass
    scheduling.update_state(s, heartbeat="now")
    modes()
    print(json.dumps(seen))
""")


def test_data_dir_is_0700_and_every_file_0600_under_a_0022_umask(tmp_path):
    env = cli_env(tmp_path / "data")
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    data = tmp_path / "data"
    for must in ("ledger-work.duckdb", "ledger-work.duckdb.wal", "ratelimit.sqlite", "webhook_spool.sqlite", "jobs.sqlite",
                 "jobs.sqlite-wal", "scheduler_state.json", "vault", "locks"):
        assert must in seen, (must, sorted(seen))
    loose = {}
    for rel, mode in seen.items():
        p = data / rel if rel != "." else data
        want = "0o700" if p.is_dir() or rel in (".", "vault", "locks", "vault/locks") else "0o600"
        if mode != want:
            loose[rel] = mode
    assert loose == {}, loose


def test_existing_loose_files_are_repaired_on_open(make_settings, caplog):
    s = make_settings()
    data = s.data_dir
    data.mkdir(parents=True)
    with db.connect(s.db_path) as con:
        con.execute("SELECT 1")
    (data / "ratelimit.sqlite").write_bytes(b"")
    (data / "vault").mkdir()
    (data / "vault" / "grant-x.vault").write_text("{}")
    (data / "notes.txt").write_text("mine")  # not Ledgerlink's: left alone
    for p, m in ((data, 0o755), (s.db_path, 0o644), (data / "ratelimit.sqlite", 0o644), (data / "vault", 0o755),
                 (data / "vault" / "grant-x.vault", 0o644), (data / "notes.txt", 0o644)):
        os.chmod(p, m)
    storage._secured.clear()  # a new process
    with caplog.at_level(logging.WARNING):
        with db.connect(s.db_path) as con:
            con.execute("SELECT 1")
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(data) == 0o700 and mode(data / "vault") == 0o700
    assert mode(s.db_path) == mode(data / "ratelimit.sqlite") == mode(data / "vault" / "grant-x.vault") == 0o600
    assert mode(data / "notes.txt") == 0o644
    assert "readable by other users" in caplog.text and str(data) in caplog.text


# --------------------------------------------------------------------------- settings and client


def test_an_explicit_env_file_that_does_not_exist_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith("XERO_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("XERO_MOCK_MODE", "true")
    monkeypatch.setenv("XERO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XERO_ENCRYPTION_KEY", bytes(range(32)).hex())
    load_settings()  # no XERO_ENV_FILE and no ./.env: fine
    monkeypatch.setenv("XERO_ENV_FILE", "/nonexistent")
    with pytest.raises(SettingsError) as e:
        load_settings()
    assert "XERO_ENV_FILE='/nonexistent'" in str(e.value) and "no such file" in str(e.value)
    monkeypatch.setenv("XERO_ENV_FILE", str(tmp_path))
    with pytest.raises(SettingsError, match="is a folder"):
        load_settings()
    env_file = tmp_path / "ledgerlink.env"
    env_file.write_text("XERO_WEEK_ENDS_ON=friday\n")
    monkeypatch.setenv("XERO_ENV_FILE", str(env_file))
    assert load_settings().week_ends_on == "friday"
    monkeypatch.setenv("XERO_ENV_FILE", os.devnull)  # the way to say "no file"
    assert load_settings().week_ends_on == "saturday"


def test_unreachable_api_names_the_url(make_settings):
    import socket

    from xero_core.client import XeroClient
    from xero_core.errors import RetriableError
    from xero_core.fake.clock import FakeClock

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s = make_settings(XERO_API_URL=f"http://127.0.0.1:{port}")

    class Tokens:
        def access_token(self, tenant_id):
            return "token"

    client = XeroClient(s, "t1", clock=FakeClock(), token_manager=Tokens())
    with pytest.raises(RetriableError) as e:
        client.get_json("/api.xro/2.0/Organisation")
    assert f"http://127.0.0.1:{port}" in str(e.value) and "XERO_API_URL" in str(e.value)
    assert "could not be reached" in str(e.value)


def test_storage_error_is_a_ledgerlink_error_every_entry_point_prints():
    assert issubclass(StorageError, LedgerlinkError)
    e = storage.describe(OSError(28, "No space left on device"), "/d/xero.duckdb")
    assert e.problem == "full" and "/d/xero.duckdb" in str(e) and "XERO_DATA_DIR (/d)" in str(e)
    assert storage.describe(ValueError("nope"), "/d/x") is None


def test_a_store_failing_with_a_disk_error_is_not_called_a_file_in_the_way(tmp_path):
    """The store's own file exists and is a file: that is normal, only a parent can be in the way."""
    f = tmp_path / "jobs.sqlite"
    f.write_bytes(b"")
    import sqlite3

    e = storage.describe(sqlite3.OperationalError("disk I/O error"), f)
    assert e.problem == "io" and "is a file, not a folder" not in str(e) and str(f) in str(e)
    blocker = tmp_path / "data"
    blocker.write_text("x")
    e = storage.describe(sqlite3.OperationalError("unable to open database file"), blocker / "jobs.sqlite")
    assert e.problem == "not_a_directory" and f"{blocker} is a file, not a folder" in str(e)


def test_a_failed_migration_commit_is_reported_not_hidden_by_its_rollback():
    import duckdb

    class Con:
        def execute(self, sql, *a):
            if sql == "COMMIT":
                raise duckdb.TransactionException('Failed to commit: Could not write file "/d/xero.duckdb.wal": '
                                                  "No space left on device")
            if sql == "ROLLBACK":
                raise duckdb.TransactionException("cannot rollback - no transaction is active")
            return self

        def fetchall(self):
            return []

    with pytest.raises(duckdb.TransactionException, match="No space left") as e:
        db.migrate(Con())
    assert storage.as_storage_error(e.value).problem == "full"


def test_an_unreadable_webhook_key_is_logged_once_not_per_delivery(make_settings, caplog):
    from xero_core.practice import webhooks as W

    s = make_settings()
    W.set_webhook_key(s, "k" * 32)
    path = W._vault(s).path(W.VAULT_NAME)
    path.write_bytes(path.read_bytes()[:50])  # tampered
    with caplog.at_level(logging.INFO, logger="xero_core.practice.webhooks"):
        assert [W.handle_webhook(s, b'{"events": []}', "sig") for _ in range(5)] == [401] * 5
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(path) in errors[0], errors


# --------------------------------------------------------------------------- issue 21 §4

def _connected(data: Path) -> dict:
    """A data dir with one connected tenant whose token set lives in the vault (as `connect` leaves it)."""
    env = cli_env(data)
    s = load_settings(env)
    with db.connect(s.db_path) as con:
        con.execute("INSERT INTO connections (tenant_id, tenant_name, tenant_type, status) "
                    "VALUES ('t-1', 'Acme Pty', 'ORGANISATION', 'connected')")
    from xero_core.vault import Vault

    Vault(s).write("grant-g1", {"tenants": ["t-1"], "access_token": "a", "refresh_token": "r", "expires_at": 0})
    return env


@pytest.mark.slow
def test_a_truncated_working_database_is_one_sentence(tmp_path):
    env = _connected(tmp_path / "data")
    work = tmp_path / "data" / "ledger-work.duckdb"
    with open(work, "ab") as f:
        f.write(b"\0" * 300_000)  # big enough that truncating it cuts into what the header points to
    db._migrated.clear()
    with duckdb_filled(work):
        pass
    os.truncate(work, 100_000)
    for argv in (["status"], ["clients", "list"], ["sync", "--all"]):
        assert_one_sentence(run_cli(env, *argv), str(work), "damaged", "Move it aside", "readers' copy")


def duckdb_filled(path: Path):
    """Rows enough that the file's blocks reach past 100 KB."""
    import contextlib

    @contextlib.contextmanager
    def cm():
        with db.connect(path) as con:
            con.execute("CREATE TABLE IF NOT EXISTS filler AS SELECT range AS i, repeat('x', 200) AS pad FROM range(20000)")
            con.execute("CHECKPOINT")
        yield
    return cm()


@pytest.mark.slow
def test_a_damaged_jobs_file_is_reported_by_status_and_jobs_and_stops_sync_with_a_sentence(tmp_path):
    import sqlite3

    from xero_core.engine import Engine
    from xero_core.pipeline import jobs as J
    from xero_core.pipeline.request import SyncRequest
    from xero_core.pipeline.result import SyncResult

    env = _connected(tmp_path / "data")
    s = load_settings(env)
    engine = Engine(s)
    for i in range(200):  # a jobs file of several pages
        j = engine.enqueue(SyncRequest(f"tenant-{i:04d}-" + "x" * 60, trigger="cli"))
        J.finish(s, j.job_id, "done", result=SyncResult(tenant_id="y" * 300))
    con = sqlite3.connect(J.path(s))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    with open(J.path(s), "r+b") as f:  # random bytes at 8 KB
        f.seek(8192)
        f.write(os.urandom(4096))
    want = (str(J.path(s)), "damaged", "move it aside", "queued jobs are lost")
    assert_one_sentence(run_cli(env, "jobs", "--all"), *want)
    proc = run_cli(env, "status")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert all(w in proc.stdout for w in want), proc.stdout
    doc = json.loads(run_cli(env, "status", "--json").stdout)
    assert not doc["ok"] and str(J.path(s)) in doc["store_problems"][0]


@pytest.mark.slow
def test_a_folder_where_jobs_sqlite_or_a_vault_item_should_be_and_a_file_where_the_vault_should_be(tmp_path):
    env = _connected(tmp_path / "data")
    data = tmp_path / "data"
    (data / "jobs.sqlite").mkdir()
    for argv in (["sync", "--all"], ["jobs"]):
        assert_one_sentence(run_cli(env, *argv), str(data / "jobs.sqlite"), "is a folder", "Move that folder away")
    (data / "jobs.sqlite").rmdir()

    item = next((data / "vault").glob("grant-g1*"))
    item.unlink()
    item.mkdir()
    assert_one_sentence(run_cli(env, "status"), str(item), "is a folder", "reconnect")
    proc = run_cli(env, "sync", "--all")  # each step says it; the summary names it; no traceback
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and f"{item} is a folder" in proc.stderr

    item.rmdir()
    shutil.rmtree(data / "vault")
    (data / "vault").write_text("not a folder")
    line = assert_one_sentence(run_cli(env, "status"), f"XERO_DATA_DIR ({data})", f"{data / 'vault'} is a file, not a folder")
    assert "No tokens are stored" not in line
    proc = run_cli(env, "sync", "--all")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "No tokens are stored" not in proc.stderr
    assert f"{data / 'vault'} is a file, not a folder" in proc.stderr


def test_a_document_file_write_that_fails_is_one_sentence(settings):
    from xero_core.practice.clients import add_client
    from xero_core.practice.documents import add_document, docs_dir

    client = add_client(settings, "Ann Example")
    docs_dir(settings).parent.mkdir(parents=True, exist_ok=True)
    docs_dir(settings).write_text("a file where the documents folder should be")
    with pytest.raises(StorageError) as e:
        add_document(settings, client, b"%PDF-1.4 receipts", file_name="receipts.pdf")
    assert f"XERO_DATA_DIR ({settings.data_dir})" in str(e.value) and f"{docs_dir(settings)} is a file" in str(e.value)


def test_the_receiver_with_a_truncated_working_database_loses_nothing_and_logs_the_sentence(make_settings, caplog,
                                                                                              monkeypatch):
    """Issue 21 §4, the receiver: a signed delivery is answered from the spool (fsync'd before the answer,
    never DuckDB: so 200 is the truth, and Xero must not redeliver); the worker that moves it into DuckDB
    logs the damaged file's sentence once, no traceback, and keeps the delivery until the file is moved aside."""
    import base64
    import hashlib
    import hmac

    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    if str(ROOT) not in sys.path:  # app_support is the app's package, not an installed one
        sys.path.insert(0, str(ROOT))
    from app_support import webhook_route
    from xero_core.practice import webhooks as W
    from xero_core.practice.spool import Spool

    key = "k" * 40
    s = make_settings(XERO_WEBHOOK_KEY=key)
    with db.connect(s.db_path) as con:  # blocks reaching well past 100 KB, then `truncate -s 100000`
        con.execute("CREATE TABLE filler AS SELECT range AS i, repeat('x', 200) AS pad FROM range(20000)")
        con.execute("CHECKPOINT")
    db._migrated.clear()
    os.truncate(s.db_path, 100_000)

    body = (b'{"events": [{"tenantId": "t", "eventCategory": "INVOICE", "eventType": "UPDATE", "resourceId": "r", '
            b'"resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/r", "eventDateUtc": "2026-01-01T00:00:00"}], '
            b'"firstEventSequence": 1, "lastEventSequence": 1}')
    signature = base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()  # independent of W.sign
    worker = W.Worker(s, interval=60, move_gap=0.01)
    monkeypatch.setitem(webhook_route._worker, "settings", s)
    monkeypatch.setitem(webhook_route._worker, "worker", worker)
    worker.start()
    try:
        with caplog.at_level(logging.DEBUG):
            before = worker.moves
            with TestClient(Starlette(routes=webhook_route.routes())) as client:
                answer = client.post(webhook_route.PATH, content=body, headers={"x-xero-signature": signature})
            assert answer.status_code == 200 and answer.content == b""
            assert worker.wait_moves(before, timeout=30)  # the receiver woke it
            if worker.last_move_error is None:  # that pass began before the delivery was spooled: the next one
                assert worker.wait_moves(worker.moves, timeout=30)
            assert "damaged" in worker.last_move_error
            assert Spool.for_settings(s).backlog() == 1  # kept, not dropped
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1 and errors[0].exc_info is None, [r.getMessage() for r in errors]
            line = errors[0].getMessage()
            assert str(s.db_path) in line and "damaged" in line and "Move it aside" in line, line
            assert "Traceback" not in caplog.text
            os.replace(s.db_path, s.db_path.with_name("ledger-work.duckdb.broken"))  # what the sentence says to do
            db._migrated.clear()
            worker.wake()
            assert worker.wait_moved(1, timeout=30)
        assert Spool.for_settings(s).backlog() == 0
        with db.connect(s.db_path, read_only=True) as con:
            assert con.execute("SELECT count(*) FROM webhook_events WHERE resource_id = 'r'").fetchone()[0] == 1
    finally:
        worker.stop()
