"""Neither the working database nor the readers' snapshot is damaged, and no committed row is lost,
whatever runs at the same time as a publish or an adoption: another process of ours writing, a
thread of the same process writing inside `db.shared`, two processes starting at once, a kill -9
at any point of a publish or an adoption (xero_core/snapshot.py).

The damage one soak run reported ("ledger-work.duckdb ... damaged (checksum mismatch)") came from
publish reading the working file in its own process: closing that descriptor dropped DuckDB's
POSIX lock on it, so a second process opened the working file for writing while the first still
had it open. Subprocesses and real signals here; every wait is on a line a child prints."""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import duckdb
import pytest

from xero_core import db, snapshot
from xero_core.settings import Settings, load_settings

ROW = "CREATE TABLE IF NOT EXISTS probe_rows (tag VARCHAR, i INTEGER, pad VARCHAR)"
PAD = 4000  # bytes a row: a few hundred rows fill blocks, so checkpoints move data around

# One script for every child process; argv[1] says which part it plays.
CHILD = textwrap.dedent(r"""
    import os, sys, threading
    from pathlib import Path
    from xero_core import db, snapshot
    from xero_core.settings import load_settings

    s = load_settings(dict(os.environ))
    role, args = sys.argv[1], sys.argv[2:]
    PAD = "x" * int(os.environ["PROBE_PAD"])

    def insert(tag, i):
        with db.connect(s.db_path, timeout=300) as con:
            con.execute("INSERT INTO probe_rows VALUES (?, ?, ?)", [tag, i, PAD])
        print(f"committed {tag} {i}", flush=True)  # only once the commit returned

    def pause_at(point):
        print(f"at {point}", flush=True)
        sys.stdin.readline()  # the test kills us here

    if role == "writer":  # another Ledgerlink process writing (a CLI sync) until told to stop
        stop, i = Path(args[0]), 0
        while i == 0 or not stop.exists():  # at least one commit, however long the pool holds the file
            i += 1
            insert("cli", i)
    elif role == "pool":  # a pool: a job thread writes inside db.shared while this thread publishes
        rounds, done = int(args[0]), threading.Event()
        def job():
            i = 0
            while not done.is_set():
                i += 1
                insert("pool", i)
        with db.shared(s.db_path):
            t = threading.Thread(target=job)
            t.start()
            for _ in range(rounds):
                snapshot.publish(s)
            done.set()
            t.join()
    elif role == "publish":  # commits, then a publish killed at `point`
        n, point = int(args[0]), args[1]
        for i in range(1, n + 1):
            insert("kept", i)
        real_copy, real_sync = snapshot._copy, snapshot._fsync_dir
        def copy(src, dst):
            if Path(src) == Path(s.db_path):
                if point == "copy":  # checkpointed, nothing copied yet
                    pause_at(point)
                same = real_copy(src, dst)
                if point == "copied":  # the temporary copy complete, not in place yet
                    pause_at(point)
                return same
            return real_copy(src, dst)
        def fsync_dir(d):
            if point == "replaced":  # the new snapshot in place, its record not written
                pause_at(point)
            real_sync(d)
        snapshot._copy, snapshot._fsync_dir = copy, fsync_dir
        snapshot.publish(s)
        print("published", flush=True)
    elif role == "adopt":  # the first open of a missing working file, killed before the n-th rename
        n, seen, real_replace = int(args[0]), [], os.replace
        def replace(a, b):
            if Path(b).name.startswith("ledger-work.duckdb"):
                seen.append(b)
            if len(seen) == n and Path(b).name.startswith("ledger-work.duckdb"):
                pause_at(f"replace {Path(b).name}")
            real_replace(a, b)
        os.replace = replace
        with db.connect(s.db_path) as con:
            print("rows", con.execute("SELECT count(*) FROM probe_rows").fetchone()[0], flush=True)
    elif role == "start":  # a process starting at the same moment as others (released by the test)
        print("ready", flush=True)
        sys.stdin.readline()
        insert(f"start-{os.getpid()}", 1)
""")


def _settings(tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    env = {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
           "XERO_ENCRYPTION_KEY": secrets.token_hex(32)}
    return load_settings(env), env


def _child(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    full = {**os.environ, **env, "PROBE_PAD": str(PAD), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD, *args], env=full, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _committed(lines: list[str]) -> set[tuple[str, int]]:
    return {(w[1], int(w[2])) for w in (ln.split() for ln in lines) if w and w[0] == "committed"}


def _read_until(proc: subprocess.Popen[str], prefix: str) -> list[str]:
    """The child's lines up to the first starting with `prefix` (which is last)."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"the child ended before '{prefix}' (exit {proc.wait()}): {proc.stderr.read()[-3000:]}")


def _whole(path: Path) -> set[tuple[str, int]]:
    """Every block of the file read (DuckDB verifies each block's checksum as it reads it) and the
    probe rows; raises on a damaged file."""
    with duckdb.connect(str(path), read_only=True) as con:
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            con.execute(f'SELECT * FROM "{table}"').fetchall()
        rows = con.execute("SELECT tag, i, length(pad) FROM probe_rows").fetchall()
    assert all(n == PAD for _, _, n in rows), "a row came back with other contents than it was written with"
    assert len(rows) == len({(t, i) for t, i, _ in rows}), "a row stored twice"
    return {(t, i) for t, i, _ in rows}


def _checkpoints_cleanly(path: Path) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CHECKPOINT")


def _start(s: Settings, rows: int = 0) -> None:
    with db.connect(s.db_path) as con:
        con.execute(ROW)
        for i in range(1, rows + 1):
            con.execute("INSERT INTO probe_rows VALUES ('before', ?, ?)", [i, "x" * PAD])


def _locked_for_others(path: Path) -> str:
    """What another process gets when it opens `path` to write, once, without waiting."""
    out = subprocess.run([sys.executable, "-c", "import sys, duckdb; duckdb.connect(sys.argv[1]); print('opened')",
                          str(path)], capture_output=True, text=True, timeout=120)
    return out.stdout.strip() or out.stderr.strip().splitlines()[-1]


# ------------------------------------------------------------------------------------ publishing


@pytest.mark.slow
def test_publish_keeps_the_working_file_locked_against_other_processes_throughout(tmp_path, monkeypatch):
    """Before the fix, the copy's descriptors released DuckDB's lock: at this point another process
    opened the working file for writing while this one still held it."""
    s, _ = _settings(tmp_path)
    _start(s, rows=50)
    seen: list[str] = []
    real = snapshot._fsync_dir
    monkeypatch.setattr(snapshot, "_fsync_dir", lambda d: (seen.append(_locked_for_others(s.db_path)), real(d)))
    assert snapshot.publish(s) is not None
    assert len(seen) == 1 and "lock" in seen[0].lower(), seen  # copied and replaced, the connection still held
    assert _locked_for_others(s.db_path) == "opened"  # ... and released once the publish ended
    assert _whole(s.snapshot_path) == {("before", i) for i in range(1, 51)}


@pytest.mark.slow
def test_publish_while_a_thread_of_the_same_process_writes_in_the_shared_instance(tmp_path):
    """The app's pool: a job thread commits on the shared instance while another thread publishes.
    Every row committed before a publish began is in that snapshot, and both files stay whole."""
    s, _ = _settings(tmp_path)
    _start(s)
    committed: list[int] = []
    done = threading.Event()
    errors: list[str] = []

    def job() -> None:
        try:
            i = 0
            while not done.is_set():
                i += 1
                with db.connect(s.db_path) as con:
                    con.execute("INSERT INTO probe_rows VALUES ('job', ?, ?)", [i, "x" * PAD])
                committed.append(i)
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(f"{type(exc).__name__}: {exc}")

    with db.shared(s.db_path):
        t = threading.Thread(target=job)
        t.start()
        try:
            for _ in range(8):
                before = len(committed)
                assert snapshot.publish(s) is not None
                assert {("job", i) for i in committed[:before]} <= _whole(s.snapshot_path)
        finally:
            done.set()
            t.join()
    assert errors == []
    assert len(committed) > 8, "the job thread really wrote while the publishes ran"
    _checkpoints_cleanly(s.db_path)
    assert _whole(s.db_path) == {("job", i) for i in committed}


@pytest.mark.slow
def test_a_pool_publishing_while_another_process_writes_damages_nothing(tmp_path):
    """The soak's failure, reduced: a pool (job thread in db.shared + publishes) and a CLI process
    writing the same working file. Before the fix this damaged the working file in 1 of 2 runs
    ("No more data remaining in MetadataReader", commits lost)."""
    s, env = _settings(tmp_path)
    _start(s)
    stop = tmp_path / "stop"
    cli = _child(env, "writer", str(stop))
    pool = _child(env, "pool", "12")
    try:
        pool_out, pool_err = pool.communicate(timeout=900)
        assert pool.returncode == 0, pool_err[-3000:]
        stop.touch()
        cli_out, cli_err = cli.communicate(timeout=900)
        assert cli.returncode == 0, cli_err[-3000:]
    finally:
        for p in (pool, cli):
            p.kill()
    committed = _committed(pool_out.splitlines()) | _committed(cli_out.splitlines())
    assert any(t == "cli" for t, _ in committed) and any(t == "pool" for t, _ in committed)
    assert _whole(s.db_path) == committed, "a committed row is missing (or a row appeared from nowhere)"
    _checkpoints_cleanly(s.db_path)
    assert _whole(s.snapshot_path) <= committed
    snapshot.publish(s)
    assert _whole(s.snapshot_path) == committed


@pytest.mark.slow
@pytest.mark.parametrize("point", ["copy", "copied", "replaced"])
def test_a_publish_killed_at_any_point_leaves_both_files_whole(tmp_path, point):
    s, env = _settings(tmp_path)
    _start(s, rows=20)
    snapshot.publish(s)  # yesterday's snapshot
    old = _whole(s.snapshot_path)
    proc = _child(env, "publish", "15", point)
    try:
        lines = _read_until(proc, f"at {point}")
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL
    finally:
        proc.kill()
    kept = old | _committed(lines)
    assert len(kept) == 35
    # the snapshot is the old one or the new one, never a mixture or a torn file
    assert _whole(s.snapshot_path) in (old, kept)
    assert _whole(s.db_path) == kept  # nothing committed is lost
    assert snapshot.publish(s) is not None  # the next publish works, and clears what the killed one left
    assert _whole(s.snapshot_path) == kept
    assert not list(s.data_dir.glob(".xero.duckdb.*")), "a temporary copy left behind"
    _checkpoints_cleanly(s.db_path)


# -------------------------------------------------------------------------------------- adopting


def _old_installation(s: Settings) -> set[tuple[str, int]]:
    """A pre-snapshot xero.duckdb whose last commits are only in its WAL (as a kill -9 leaves it)."""
    s.data_dir.mkdir(parents=True, exist_ok=True)
    side = s.data_dir.parent / "old"
    side.mkdir()
    with db.connect(side / "xero.duckdb") as con:
        con.execute(ROW)
        con.execute("INSERT INTO probe_rows SELECT 'old', range, ? FROM range(1, 41)", ["x" * PAD])
        con.execute("CHECKPOINT")
    con = duckdb.connect(str(side / "xero.duckdb"))
    con.execute("INSERT INTO probe_rows SELECT 'wal', range, ? FROM range(1, 11)", ["x" * PAD])
    for name in ("xero.duckdb", "xero.duckdb.wal"):
        Path(s.data_dir / name).write_bytes((side / name).read_bytes())
    con.close()
    return {("old", i) for i in range(1, 41)} | {("wal", i) for i in range(1, 11)}


@pytest.mark.parametrize("nth, target", [(1, "ledger-work.duckdb.wal"), (2, "ledger-work.duckdb")])
@pytest.mark.slow
def test_an_adoption_killed_before_either_rename_is_done_again_whole(tmp_path, nth, target):
    """1: both copies made, nothing renamed; 2: the WAL in place, the working file not yet."""
    s, env = _settings(tmp_path)
    rows = _old_installation(s)
    proc = _child(env, "adopt", str(nth))
    try:
        assert _read_until(proc, "at replace")[-1] == f"at replace {target}"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL
    finally:
        proc.kill()
    assert not s.db_path.exists()
    with db.connect(s.db_path) as con:  # the next process adopts again
        con.execute("INSERT INTO probe_rows VALUES ('new', 1, ?)", ["x" * PAD])
    _checkpoints_cleanly(s.db_path)
    assert _whole(s.db_path) == rows | {("new", 1)}


@pytest.mark.slow
def test_processes_starting_at_once_adopt_once_and_lose_no_row(tmp_path):
    """Three processes open the missing working file at the same moment: one copies the old
    database, the others wait for it; no one's row is overwritten by a second copy."""
    for attempt in range(2):
        s, env = _settings(tmp_path / str(attempt))
        rows = _old_installation(s)
        procs = [_child(env, "start") for _ in range(3)]
        try:
            for p in procs:
                assert _read_until(p, "ready")
            for p in procs:  # released together: each is blocked on its stdin
                p.stdin.write("\n")
                p.stdin.flush()
            outs = [p.communicate(timeout=300) for p in procs]
        finally:
            for p in procs:
                p.kill()
        assert [p.returncode for p in procs] == [0, 0, 0], [e[-2000:] for _, e in outs]
        mine = _committed([ln for o, _ in outs for ln in o.splitlines()])
        assert len(mine) == 3
        assert _whole(s.db_path) == rows | mine
        assert sum("is now" in e and "copied from" in e for _, e in outs) == 1, [e[-2000:] for _, e in outs]


@pytest.mark.slow
def test_a_stale_wal_of_a_working_file_moved_aside_is_not_replayed_onto_the_snapshot(tmp_path):
    """The damaged-file sentence says to move ledger-work.duckdb aside; its .wal stays. A WAL from a
    later checkpoint than the snapshot made the adopted working file refuse to open."""
    s, _ = _settings(tmp_path)
    _start(s, rows=20)
    snapshot.publish(s)
    code = textwrap.dedent("""
        import os, sys, duckdb
        con = duckdb.connect(sys.argv[1])
        con.execute("INSERT INTO probe_rows VALUES ('later', 1, 'x')")
        con.execute("CHECKPOINT")
        con.execute("INSERT INTO probe_rows VALUES ('later', 2, 'x')")  # only in the WAL
        os._exit(0)  # as a crash leaves it
    """)
    subprocess.run([sys.executable, "-c", code, str(s.db_path)], check=True, timeout=120)
    assert Path(str(s.db_path) + ".wal").exists()
    os.replace(s.db_path, str(s.db_path) + ".broken")  # what the damaged-file sentence says to do
    db._migrated.clear()
    with db.connect(s.db_path) as con:
        assert con.execute("SELECT count(*) FROM probe_rows").fetchone() == (20,)
    assert _whole(s.db_path) == {("before", i) for i in range(1, 21)}
    assert len(list(s.data_dir.glob("ledger-work.duckdb.wal.*.aside"))) == 1  # kept, not deleted


def test_the_copy_process_hands_back_the_disk_error_it_met(tmp_path):
    """The child's OSError comes back as one (errno, file name), so storage.translated turns it into
    the usual sentence; a good copy is byte for byte and reports its headers unchanged."""
    src = tmp_path / "a.bin"
    src.write_bytes(os.urandom(3 * snapshot.HEADER_BYTES + 123))
    assert snapshot._copy(src, tmp_path / "b.bin") is True
    assert (tmp_path / "b.bin").read_bytes() == src.read_bytes()
    with pytest.raises(FileNotFoundError) as err:
        snapshot._copy(tmp_path / "missing.duckdb", tmp_path / "c.bin")
    assert err.value.filename == str(tmp_path / "missing.duckdb")
    (tmp_path / "dir").mkdir()
    with pytest.raises(IsADirectoryError):
        snapshot._copy(src, tmp_path / "dir")
