"""Issue 21 §4 in the admin app: each storage fault is the one sentence naming the file and what to
do, on the Connection and Sync pages (never "Something unexpected went wrong", never a traceback).
The CLI's side of the same faults is tests/test_storage.py."""
from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

from xero_core import db

from app_testing import app_settings, connect, errors, fake_xero, new_app, texts  # noqa: F401 - fixtures


def truncate_working_db(s):
    """`truncate -s 100000` on a working database whose blocks reach well past 100 KB."""
    with db.connect(s.db_path) as con:
        con.execute("CREATE TABLE filler AS SELECT range AS i, repeat('x', 200) AS pad FROM range(20000)")
        con.execute("CHECKPOINT")
    assert s.db_path.stat().st_size > 200_000
    db._migrated.clear()
    os.truncate(s.db_path, 100_000)
    return s.db_path, ("damaged", "Move it aside")


def damage_jobs(s):
    from xero_core.engine import Engine
    from xero_core.pipeline import jobs as J
    from xero_core.pipeline.request import SyncRequest
    from xero_core.pipeline.result import SyncResult

    engine = Engine(s)
    for i in range(40):  # a jobs file of several pages
        j = engine.enqueue(SyncRequest(f"tenant-{i:04d}-" + "x" * 60, trigger="cli"))
        J.finish(s, j.job_id, "done", result=SyncResult(tenant_id="y" * 1000))
    con = sqlite3.connect(J.path(s))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    assert J.path(s).stat().st_size > 16384
    with open(J.path(s), "r+b") as f:  # random bytes at 8 KB
        f.seek(8192)
        f.write(os.urandom(4096))
    return J.path(s), ("damaged", "move it aside")


def jobs_is_a_folder(s):
    from xero_core.pipeline import jobs as J

    p = J.path(s)
    for extra in ("", "-wal", "-shm"):
        q = p.with_name(p.name + extra)
        if q.exists():
            q.unlink()
    p.mkdir()
    return p, ("is a folder", "Move that folder away")


def vault_is_a_file(s):
    vault = s.data_dir / "vault"
    shutil.rmtree(vault)
    vault.write_text("not a folder")
    return vault, ("is a file, not a folder",)


FAULTS = {"truncated working database": truncate_working_db, "damaged jobs.sqlite": damage_jobs,
          "jobs.sqlite is a folder": jobs_is_a_folder, "vault is a file": vault_is_a_file}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.slow
def test_each_storage_fault_is_the_sentence_naming_the_file_on_connection_and_sync(app_settings, fake_xero, fault):
    fake, _ = fake_xero
    connect(app_settings, fake)  # a connected tenant: its tokens are in the vault, its row in DuckDB
    path, words = FAULTS[fault](app_settings)
    at = new_app().run()
    seen = {}
    for page in ("connection", "sync"):
        if page != "connection":
            at.switch_page(f"pages/{page}.py").run()
        seen[page] = (errors(at), texts(at))
    for page, (shown, everything) in seen.items():
        naming = [e for e in shown if str(path) in e]
        assert len(naming) == 1 and all(w in naming[0] for w in words), (page, shown, seen)
        assert "unexpected" not in everything and "Traceback" not in everything, (page, everything)
        assert "No tokens are stored" not in everything, (page, everything)
