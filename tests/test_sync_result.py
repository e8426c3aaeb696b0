"""A job's result is a SyncResult read back from jobs.sqlite: to_dict and from_dict round-trip, and a
row an older release wrote (its JSON, without the keys added since) still reads.

What is tested is the jobs store's result column, so the jobs are made and finished with
`pipeline.jobs` directly, below the Engine (as tests/test_pipeline_jobs.py does)."""
from __future__ import annotations

import json
import secrets
import sqlite3
from datetime import date, datetime, timezone

from xero_core.pipeline import jobs as J
from xero_core.pipeline.request import SyncRequest
from xero_core.pipeline.result import StepResult, SyncResult
from xero_core.settings import load_settings


def _settings(tmp_path):
    return load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
                          "XERO_ENCRYPTION_KEY": secrets.token_hex(32)})


def test_a_sync_result_round_trips_through_its_dict_and_a_job():
    t0 = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
    r = SyncResult("t-1", tenant_name="Acme", tenant_type="ORGANISATION", run_id="run-1", trigger="scheduled",
                   steps=[StepResult("accounts", "success", rows=12, api_calls=1, bytes_downloaded=900,
                                     started_at=t0, finished_at=t0),
                          StepResult("pnl", "partial", rows=4, api_calls=5, error="stopped", read=4,
                                     period_start=date(2026, 1, 5), period_end=date(2026, 11, 22)),
                          StepResult("chase", "skipped", benign_skip=True, detail={"sent": 0, "note": "none due"})],
                   cancelled="cancelled by test", history_job="job-2")
    assert SyncResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert "history_job" not in SyncResult("t-1").to_dict(), "the stored format writes it only when set"


def test_a_job_row_written_by_an_older_release_reads_as_a_sync_result(tmp_path):
    s = _settings(tmp_path)
    job = J.enqueue(s, SyncRequest("t-1", trigger="cli"))
    old = {  # as the release before typed results stored it: no unreachable/cancelled, steps without read/detail
        "tenant_id": "t-1", "tenant_name": "Acme", "tenant_type": "ORGANISATION", "run_id": "run-1",
        "trigger": "cli", "status": "partial", "ok": False, "busy": None, "reconnect": None, "api_calls": 3,
        "bytes_downloaded": 100, "history_job": "job-2",
        "steps": [{"step": "accounts", "status": "success", "rows": 12, "api_calls": 1, "bytes_downloaded": 100,
                   "error": None, "started_at": "2026-11-26T09:00:00+00:00", "finished_at": None,
                   "period_start": None, "period_end": None},
                  {"step": "pnl", "status": "failed", "rows": 0, "api_calls": 2, "error": "Xero answered 500",
                   "started_at": None, "finished_at": None, "period_start": "2026-01-05",
                   "period_end": "2026-11-22"}]}
    con = sqlite3.connect(J.path(s))
    with con:
        con.execute("UPDATE jobs SET state = 'done', result = ? WHERE job_id = ?", [json.dumps(old), job.job_id])
    con.close()
    r = J.get(s, job.job_id).result
    assert isinstance(r, SyncResult)
    assert (r.tenant_id, r.run_id, r.history_job, r.status, r.ok, r.api_calls) == ("t-1", "run-1", "job-2",
                                                                                  "partial", False, 3)
    assert [(st.step, st.status, st.error) for st in r.steps] == [("accounts", "success", None),
                                                                 ("pnl", "failed", "Xero answered 500")]
    assert r.steps[0].started_at == datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
    assert r.steps[1].period_start == date(2026, 1, 5) and r.steps[1].read is None
    assert r.first_problem() == "pnl: Xero answered 500"
    again = r.to_dict()  # written back in the same format (plus the keys added since)
    assert {k: v for k, v in again.items() if k in old and k != "steps"} == {k: v for k, v in old.items()
                                                                             if k != "steps"}
    assert [{k: v for k, v in st.items() if k in o} for st, o in zip(again["steps"], old["steps"])] == old["steps"]


def test_finish_stores_the_result_and_jobs_json_prints_it_as_before(tmp_path):
    s = _settings(tmp_path)
    job = J.enqueue(s, SyncRequest("t-1", trigger="cli"))
    r = SyncResult("t-1", run_id="run-1", steps=[StepResult("accounts", "success", rows=3)])
    J.finish(s, job.job_id, "done", result=r)
    done = J.get(s, job.job_id)
    assert done.result == r
    assert done.to_dict()["result"] == r.to_dict()


def test_a_step_dict_has_every_field_and_shares_nothing_mutable_with_the_step():
    """to_dict is written by hand (dataclasses.asdict cost ~1 ms a step): it must still name every
    field, and a caller editing the dict's detail must not edit the step's."""
    from dataclasses import fields

    step = StepResult("clients", "success", detail={"linked": 2, "messages": ["a"], "by": {"x": 1}})
    d = step.to_dict()
    assert set(d) == {f.name for f in fields(StepResult)}
    d["detail"]["messages"].append("b")
    d["detail"]["by"]["x"] = 2
    d["detail"]["linked"] = 3
    assert step.detail == {"linked": 2, "messages": ["a"], "by": {"x": 1}}
