import contextlib
import multiprocessing as mp
import threading

import duckdb
import pytest

from xero_core import db
from xero_core.schema import MIGRATIONS, TABLES


def test_migrations_create_every_contract_table_once(tmp_path):
    path = tmp_path / "x.duckdb"
    with db.connect(path) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert set(TABLES) <= tables
        assert db.migrate(con) == []  # already applied
        names = [r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()]
    assert names == sorted(n for n, _ in MIGRATIONS)


def test_money_columns_are_decimal(tmp_path):
    with db.connect(tmp_path / "x.duckdb") as con:
        t = dict(con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name='financial_weekly'"
        ).fetchall())
    assert t["net_profit"] == "DECIMAL(18,2)"


def _hold(path, ready, release):
    con = duckdb.connect(str(path))
    ready.set()
    release.wait(20)
    con.close()


@contextlib.contextmanager
def _held_by_another_process(path):
    """Yields once another process holds `path` read-write; the yielded event lets it go."""
    with db.connect(path):
        pass
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(path, ready, release))
    p.start()
    try:
        # a bound, not a pause: a spawned interpreter importing duckdb takes seconds on a busy machine
        assert ready.wait(120), "the holding process never opened the database"
        yield release
    finally:
        release.set()
        p.join(10)


@pytest.mark.slow
def test_open_waits_for_another_process_then_succeeds(tmp_path):
    with _held_by_another_process(tmp_path / "x.duckdb") as release:
        threading.Timer(0.3, release.set).start()
        with db.connect(tmp_path / "x.duckdb", read_only=True, timeout=15) as con:
            assert con.execute("SELECT count(*) FROM connections").fetchone() == (0,)


@pytest.mark.slow
def test_busy_database_gives_a_sentence(tmp_path):
    with _held_by_another_process(tmp_path / "x.duckdb"):
        # the sentence names the process holding the file (its pid, from DuckDB's lock error) and how to let go
        with pytest.raises(db.DatabaseBusy, match=r"stayed locked by python[\d.]* -c \(pid \d+\) .*con\.close\(\)"):
            with db.connect(tmp_path / "x.duckdb", timeout=0.3):
                pass


# -- db.shared: one open instance for a pool of workers ---------------------------------------

def _write_once(path, done):
    with db.connect(path, timeout=20) as con:
        con.execute("INSERT INTO sync_cursors VALUES ('other', 'process', 'x', now())")
    done.set()


@pytest.mark.slow
def test_shared_block_opens_the_file_once_for_many_threads(tmp_path, monkeypatch):
    path = tmp_path / "x.duckdb"
    with db.connect(path):
        pass  # migrated
    opens = []
    real_open = db._open
    monkeypatch.setattr(db, "_open", lambda *a, **k: opens.append(a) or real_open(*a, **k))

    def work(i):
        for j in range(20):
            with db.connect(path) as con, db.transaction(con):
                con.execute("INSERT INTO sync_cursors VALUES (?, ?, 'v', now())", [f"t{i}", f"r{j}"])
            with db.connect(path, read_only=True) as con:
                assert con.execute("SELECT count(*) FROM sync_cursors WHERE tenant_id = ?", [f"t{i}"]).fetchone()[0] == j + 1

    with db.shared(path, max_hold=60):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert len(opens) == 1, "160 units of work in a shared block must share one open"
    # Closed when the block ends: another process opens it at once, without waiting.
    ctx = mp.get_context("spawn")
    done = ctx.Event()
    p = ctx.Process(target=_write_once, args=(path, done))
    p.start()
    p.join(30)
    assert done.is_set()
    with db.connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM sync_cursors").fetchone()[0] == 161


@pytest.mark.slow
def test_shared_block_lets_another_process_in_while_it_keeps_working(tmp_path):
    """A worker pool busy for longer than max_hold still gives a notebook or the CLI its turn."""
    path = tmp_path / "x.duckdb"
    with db.connect(path):
        pass
    ctx = mp.get_context("spawn")
    done = ctx.Event()
    writes = 0
    with db.shared(path, max_hold=0.2, pause=0.6):
        with db.connect(path) as con:  # held before the other process starts
            con.execute("SELECT 1")
            p = ctx.Process(target=_write_once, args=(path, done))
            p.start()
        while p.is_alive() and writes < 100_000:  # bounded: the other process must get in
            with db.connect(path) as con:
                con.execute("INSERT INTO sync_cursors VALUES ('pool', ?, 'v', now())", [str(writes)])
            writes += 1
        p.join(30)
    assert done.is_set(), "the other process never got the database while the pool held it"
    assert writes < 100_000


@pytest.mark.slow
def test_shared_block_closes_the_file_while_its_workers_wait_on_xero(tmp_path):
    """A pool whose workers sit in Xero's rate limit (no database use) must not keep others out."""
    path = tmp_path / "x.duckdb"
    ctx = mp.get_context("spawn")
    done = ctx.Event()
    with db.shared(path, idle=0.2, max_hold=600):
        with db.connect(path) as con:
            con.execute("SELECT 1")
        p = ctx.Process(target=_write_once, args=(path, done))
        p.start()
        p.join(30)  # the block is still active, idle
        assert done.is_set(), "an idle shared block kept the database from another process"
        with db.connect(path) as con:  # and the pool can use it again afterwards
            assert con.execute("SELECT count(*) FROM sync_cursors").fetchone()[0] == 1
