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
        assert ready.wait(20)
        yield release
    finally:
        release.set()
        p.join(10)


def test_open_waits_for_another_process_then_succeeds(tmp_path):
    with _held_by_another_process(tmp_path / "x.duckdb") as release:
        threading.Timer(0.3, release.set).start()
        with db.connect(tmp_path / "x.duckdb", read_only=True, timeout=15) as con:
            assert con.execute("SELECT count(*) FROM connections").fetchone() == (0,)


def test_busy_database_gives_a_sentence(tmp_path):
    with _held_by_another_process(tmp_path / "x.duckdb"):
        with pytest.raises(db.DatabaseBusy, match="stayed locked by another Ledgerlink process"):
            with db.connect(tmp_path / "x.duckdb", timeout=0.3):
                pass
