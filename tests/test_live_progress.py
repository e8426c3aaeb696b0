"""`sync` and `demo` show one ordered, live progress display (issue 12 §4): every step's start and
end in the order they happened, each tenant's in its own plan order, count / total and the time left
where known, a line per job's end, and the summary only after all of it."""
from __future__ import annotations

import pytest
import io
import os
import re
import secrets
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

from test_cli_demo import _free_port

from xero_core.commands.live import LiveProgress, duration, running_text
from xero_core.pipeline.progress import ProgressEvent, Tracker

ROOT = Path(__file__).resolve().parent.parent
CSI = re.compile(r"\x1b\[(\d+)F\x1b\[J")


def E(d: dict) -> ProgressEvent:
    """An event written as the dict it used to be."""
    names = {"estimated_total": "estimated", "reason": "waiting_for"}
    return ProgressEvent(**{names.get(k, k): v for k, v in d.items()})


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def screen(raw: str) -> list[str]:
    """What a terminal shows after `raw`: the display only ever moves up N lines and clears below."""
    lines: list[str] = []
    pos = 0
    for m in CSI.finditer(raw):
        lines += raw[pos:m.start()].splitlines()
        del lines[len(lines) - int(m.group(1)):]
        pos = m.end()
    return lines + raw[pos:].splitlines()


def steps(tenant: str, names: list[str]) -> list[ProgressEvent]:
    out = []
    for i, n in enumerate(names, 1):
        out.append(E({"tenant_id": tenant, "step": n, "status": "running", "message": f"{n}: starting",
                    "index": i, "steps": len(names)}))
        out.append(E({"tenant_id": tenant, "step": n, "status": "running", "message": f"{n} page 1", "count": 10}))
        out.append(E({"tenant_id": tenant, "step": n, "status": "success", "message": f"{n}: success, 10 rows",
                    "rows": 10, "index": i, "steps": len(names)}))
    out.append(E({"tenant_id": tenant, "status": "done", "job_ended": True}))
    return out


def test_off_a_terminal_lines_come_in_order_with_the_steps_place_and_the_job_end():
    clock = Clock()
    out = io.StringIO()
    p = LiveProgress({"a": "Alpha Pty", "b": "Beta Ltd"}, stream=out, tty=False, now=clock)
    a, b = steps("a", ["accounts", "contacts"]), steps("b", ["xpm", "clients"])
    for ev_a, ev_b in zip(a, b):  # interleaved, as two workers run them
        p(ev_a)
        clock.t += 1
        p(ev_b)
    p.close()
    lines = out.getvalue().splitlines()
    assert "\x1b" not in out.getvalue()  # no cursor tricks in a pipe or a log file
    alpha = [x for x in lines if x.startswith("[Alpha Pty]")]
    assert alpha == ["[Alpha Pty] 1/2 accounts: starting", "[Alpha Pty] 1/2 accounts: success, 10 rows",
                     "[Alpha Pty] 2/2 contacts: starting", "[Alpha Pty] 2/2 contacts: success, 10 rows",
                     "[Alpha Pty] done in 6 s"]
    assert lines.index("[Alpha Pty] 1/2 accounts: starting") < lines.index("[Beta Ltd] 1/2 xpm: starting") \
        < lines.index("[Alpha Pty] 1/2 accounts: success, 10 rows")
    assert len(lines) == 10


def test_off_a_terminal_a_long_step_says_it_is_moving_every_few_seconds_not_every_page():
    clock = Clock()
    out = io.StringIO()
    p = LiveProgress({"a": "Alpha"}, stream=out, tty=False, now=clock, every=5)
    p(E({"tenant_id": "a", "step": "journals", "status": "running", "message": "journals: starting",
       "index": 8, "steps": 9}))
    for n in range(1, 31):  # a page a second
        clock.t += 1
        p(E({"tenant_id": "a", "step": "journals", "status": "running", "message": f"journals up to #{n * 100}",
           "count": n * 100, "total": 9000, "estimated_total": True, "eta_seconds": 90 - n}))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 + 6
    assert lines[1] == "[Alpha] 8/9 journals: 500 / ~9,000, about 1 min 25 s left"


def test_on_a_terminal_the_block_is_redrawn_below_the_finished_steps():
    clock = Clock()
    out = io.StringIO()
    p = LiveProgress({"a": "Alpha", "b": "Beta"}, stream=out, tty=True, now=clock, width=200)
    p(E({"tenant_id": "a", "step": "pnl", "status": "running", "message": "pnl: starting", "index": 6, "steps": 9}))
    p(E({"tenant_id": "b", "step": "xpm", "status": "running", "message": "xpm: starting", "index": 1, "steps": 2}))
    p(E({"tenant_id": "a", "step": "pnl", "status": "running", "message": "pnl week ending 2026-11-28",
       "count": 3, "total": 4, "eta_seconds": 1}))
    assert screen(out.getvalue()) == ["[Alpha] 6/9 [############....] pnl: 3 / 4, about 1 s left",
                                      "[Beta] 1/2 xpm: starting"]
    p(E({"tenant_id": "b", "step": "xpm", "status": "success", "message": "xpm: success, 29 rows",
       "index": 1, "steps": 2}))
    assert screen(out.getvalue()) == ["[Beta] 1/2 xpm: success, 29 rows",  # permanent, above the block
                                      "[Alpha] 6/9 [############....] pnl: 3 / 4, about 1 s left",
                                      "[Beta] 1/2 xpm: success, 29 rows"]
    p(E({"tenant_id": "b", "status": "failed", "message": "a step failed: see the steps", "job_ended": True}))
    p.say("stopping after the current step (Ctrl-C again to force)...")
    p.close()
    assert screen(out.getvalue()) == ["[Beta] 1/2 xpm: success, 29 rows",
                                      "[Beta] failed in 0 s: a step failed: see the steps",
                                      "stopping after the current step (Ctrl-C again to force)..."]


def test_many_workers_at_once_never_garble_a_line_or_reorder_a_tenants_steps():
    out = io.StringIO()
    names = {f"t{i}": f"Org {i}" for i in range(8)}
    p = LiveProgress(names, stream=out, tty=True, width=200)
    plan = ["accounts", "contacts", "invoices", "clients", "pnl", "bank"]
    gate = threading.Barrier(8)

    def work(t):
        gate.wait()
        for ev in steps(t, plan):
            p(ev)

    threads = [threading.Thread(target=work, args=(t,)) for t in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p.close()
    shown = screen(out.getvalue())
    for t, name in names.items():
        mine = [x for x in shown if x.startswith(f"[{name}]")]
        assert mine == [f"[{name}] {i}/6 {n}: success, 10 rows" for i, n in enumerate(plan, 1)] + \
            [mine[-1]] and re.fullmatch(rf"\[{name}\] done in \d+ s", mine[-1])
    assert len(shown) == 8 * 7


def test_the_tracker_hands_the_display_its_count_total_and_eta():
    seen: list[ProgressEvent] = []
    clock = [50.0]
    t = Tracker(lambda _p: None, echo=seen.append, now=lambda: clock[0])
    t(E({"tenant_id": "a", "step": "journals", "status": "running", "message": "journals: starting"}))
    t(E({"tenant_id": "a", "step": "journals", "status": "running", "message": "journals up to #300", "count": 300,
       "total": 2000, "estimated_total": True, "per_call": 100}))
    assert (seen[-1].count, seen[-1].total, seen[-1].estimated) == (300, 2000, True)
    assert running_text(seen[-1]).startswith("journals: 300 / ~2,000")
    assert seen[-1].eta_seconds == 17  # 17 calls of 100 left, at Xero's one a second
    clock[0] += 10  # 5 calls in 10 s: the pace measured is the slower
    t(E({"tenant_id": "a", "step": "journals", "status": "running", "message": "journals up to #800", "count": 800,
       "total": 2000, "estimated_total": True, "per_call": 100}))
    assert seen[-1].eta_seconds == 24
    t(E({"tenant_id": "a", "step": "journals", "status": "waiting", "reason": "rate_limit",
       "message": "waiting for Xero's minute limit, resumes in 38 s"}))
    assert t.state.status == "waiting" and t.state.message.endswith("resumes in 38 s")
    assert t.state.count == 800  # where it stood


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (0, 45, 60, 95, 299, 600, 3725)] == \
        ["0 s", "45 s", "1 min", "1 min 35 s", "4 min 59 s", "10 min", "1 h 02 min"]


@pytest.mark.slow
def test_the_demo_command_prints_one_ordered_progress_display_then_the_summary(tmp_path):
    from xero_core.fake import FakeXero, serve

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XERO_")}
    env.update(XERO_MOCK_MODE="true", XERO_DATA_DIR=str(tmp_path / "data"), XERO_ENV_FILE="/dev/null",
               XERO_ENCRYPTION_KEY=secrets.token_hex(32), XERO_FAKE_PORT=str(port), XERO_TODAY="2026-12-05")
    fake = FakeXero(seed=42, today=date(2026, 12, 5), invoices=300, tenants=1, practices=1)
    with serve(fake, port=port):
        proc = subprocess.run([sys.executable, "-m", "xero_core", "demo", "--weeks", "3"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "\x1b" not in proc.stderr
    summary = next(i for i, x in enumerate(lines) if re.match(r"\S.*\((ORGANISATION|PRACTICEMANAGER)\): ", x))
    progress = [x for x in lines[:summary] if x.startswith("[")]
    assert not [x for x in lines[summary:] if x.startswith("[")]  # nothing after the summary starts
    tenants = {re.match(r"\[([^\]]+)\]", x).group(1) for x in progress}
    assert len(tenants) == 2
    for t in tenants:
        mine = [x[len(t) + 3:] for x in progress if x.startswith(f"[{t}]")]
        placed = [re.match(r"(\d+)/(\d+) (\w+): (\w+)", x) for x in mine]
        placed = [(int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)) for m in placed if m]
        n = placed[0][1]
        # every step of the plan starts, then ends, in plan order, before the next one starts
        assert [(i, s) for i, _, _, s in placed if s in ("starting", "success")] == \
            [(i, s) for i in range(1, n + 1) for s in ("starting", "success")], mine
        assert re.fullmatch(r"done in (\d+ min )?\d+ s|done in \d+ min", mine[-1]), mine
    org = next(t for t in tenants if t.startswith("Coastal"))
    assert any(re.search(r"clients: success, [\d,]+ rows \(imported \d+, matched \d+", x) for x in progress)
    assert any(x.startswith(f"[{org}] 4/10 invoices: success, ") for x in progress)
