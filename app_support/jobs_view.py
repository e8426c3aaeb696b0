"""Sync jobs in the app: the running jobs in every page's sidebar, the Sync page's job cards, Cancel.

A job is a row in the jobs file (xero_core.pipeline.jobs), run by the scheduler or, when no
scheduler takes it, by this app's server (app_support.job_runner): never by a page's script run.
So these views only read the jobs file and redraw on a timer (st.fragment(run_every=…)); leaving
the page, closing the tab or opening a second browser changes nothing for the job.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from xero_core.pipeline.progress import StepLine

from . import engine, widgets
from .guard import say
from .text import md
from .text import rows as text_rows

REFRESH = "3s"  # how often the job views redraw while a job is active
STATE_ICONS = {
    "queued": ":material/schedule:", "running": ":material/progress_activity:", "done": ":material/check_circle:",
    "failed": ":material/error:", "interrupted": ":material/pause_circle:", "cancelled": ":material/cancel:",
}
STEP_ICONS = {
    "success": ":material/check:", "failed": ":material/close:", "partial": ":material/warning:",
    "skipped": ":material/redo:", "running": ":material/progress_activity:", "waiting": ":material/hourglass_top:",
}
STEP_COLUMNS = ("organisation", "step", "status", "rows", "api_calls", "error")


def eta_text(seconds: Any) -> str:
    if seconds in (None, ""):
        return ""
    s = max(0, int(float(seconds)))
    if s < 60:
        return "about a minute left" if s > 30 else "less than a minute left"
    m = round(s / 60)
    return f"about {m} min left" if m < 90 else f"about {m / 60:.1f} h left"


def progress_line(job: Any) -> str:
    """'journals · 2,300 / ~27,700 · about 7 min left' — the step, how far, how long."""
    p = job.progress
    parts = [str(p.step)] if p.step else []
    count, total = p.count, p.total
    if count is not None and total:
        approx = "~" if p.estimated else ""  # journals: Xero gives no total
        parts.append(f"{int(count):,} / {approx}{int(total):,}")
    elif count is not None:
        parts.append(f"{int(count):,}")
    if job.state == "running" and p.eta_seconds is not None:
        parts.append(eta_text(p.eta_seconds))
    if p.status == "waiting" and p.message:
        parts.append(str(p.message))
    elif not parts and p.message:
        parts.append(str(p.message))
    return " · ".join(x for x in parts if x)


def fraction(job: Any) -> float | None:
    """How far the current step is (count / total), when Xero lets us know or estimate a total."""
    count, total = job.progress.count, job.progress.total
    if job.state != "running" or count is None or not total:
        return None
    return max(0.0, min(1.0, float(count) / float(total)))


def last_sync_failure(jobs: list[Any]) -> tuple[Any, str] | None:
    """(job, reason) when the newest finished sync of a tenant failed (the job, or one of its
    steps); None when it succeeded or none has finished. `jobs` newest first, as list_jobs gives."""
    last = next((j for j in jobs if not j.active), None)
    if last is None or last.state == "cancelled":
        return None
    if last.state == "done" and (last.result is None or last.result.ok):
        return None
    failed = [st for st in (last.result.steps if last.result else []) if st.status == "failed"]
    reason = last.error or "; ".join(f"{st.step}: {st.error or 'failed'}" for st in failed[:3])
    return last, reason or last.state


def job_title(job: Any, names: dict[str, str]) -> str:
    org = names.get(job.tenant_id) or job.tenant_name or job.tenant_id
    what = job.request.describe() if hasattr(job.request, "describe") else ""
    return f"{org}" + (f" · {what}" if what else "")


def _names(s) -> dict[str, str]:
    return {c["tenant_id"]: c.get("tenant_name") or c["tenant_id"] for c in widgets.connections(s, True)}


def _active(s) -> list[Any]:
    try:
        return engine.active_jobs(s)
    except Exception:  # the views never break a page; the Sync page says what is wrong
        return []


_last_finish: dict[str, float] = {}


def _refresh_after_jobs(s) -> None:
    """A job that ended since this process last looked (it may have run in another process) makes
    the cached reads stale: drop them, so every page shows what the sync wrote."""
    try:
        ended = [j.finished_at for j in engine.list_jobs(s, limit=20) if j.finished_at]
    except Exception:
        return
    mark = max(ended, default=0.0)
    key = str(s.data_dir)
    if _last_finish.get(key, 0.0) != mark:
        st.cache_data.clear()
        _last_finish[key] = mark


def sidebar_jobs(s) -> None:
    """Every page: the jobs under way. While any is, the list redraws every few seconds (one read
    of the jobs file); when the last one ends the page reruns once, so its figures are fresh."""
    _refresh_after_jobs(s)
    active = _active(s)
    if not active:
        return

    @st.fragment(run_every=REFRESH)
    def _draw() -> None:
        jobs = _active(s)
        if not jobs:
            st.cache_data.clear()
            st.rerun()  # the whole page: it was drawn while the sync ran
        names = _names(s)
        st.caption(f"Syncs under way ({len(jobs)})")
        for job in jobs[:6]:
            line = progress_line(job) or ("waiting for a worker" if job.state == "queued" else job.state)
            st.markdown(f"{STATE_ICONS.get(job.state, '')} **{md(job_title(job, names))}**  \n{md(line)}")
        if len(jobs) > 6:
            st.caption(f"and {len(jobs) - 6} more: see the Sync page")

    with st.sidebar:
        _draw()


def job_card(s, job: Any, names: dict[str, str], *, key: str) -> None:
    """One job: state, step, count / total, ETA, each step so far, Cancel while it is active."""
    title = job_title(job, names)
    icon = STATE_ICONS.get(job.state, "")
    with st.container(border=True):
        c1, c2 = st.columns([5, 1])
        c1.markdown(f"{icon} **{md(title)}** — {md(job.state)}")
        who = job.owner_label or ("waiting for a worker" if job.state == "queued" else "")
        meta = [f"asked {widgets.when(job.created_at)} ({job.trigger}" + (f", {job.requested_by}" if job.requested_by else "") + ")"]
        if who and job.state == "running":
            meta.append(f"run by the {who} process")
        if job.finished_at:
            meta.append(f"ended {widgets.when(job.finished_at)}")
        c1.caption(md(" · ".join(meta), 1000))
        if job.active:
            if job.cancel_requested:
                c2.caption("Cancelling…")
            elif c2.button("Cancel", key=f"cancel-{key}-{job.job_id}", icon=":material/cancel:"):
                try:
                    engine.cancel_job(s, job.job_id, by="admin app")
                except Exception as exc:  # noqa: BLE001 - shown as a sentence
                    st.error(md(say(exc), 1000), icon=":material/error:")
                st.rerun(scope="fragment")
            frac = fraction(job)
            line = progress_line(job) or ("waiting for a worker" if job.state == "queued" else "starting")
            if frac is not None:
                st.progress(frac, text=md(line))
            else:
                st.caption(md(line))
        if job.error:
            (st.warning if job.state in ("cancelled", "interrupted") else st.error)(md(job.error, 1000), icon=":material/info:")
        steps = job.progress.steps
        if steps:
            st.markdown("  \n".join(
                f"{STEP_ICONS.get(str(x.status), ':material/radio_button_unchecked:')} "
                f"**{md(x.step)}**: {md(_after_step(x), 1000)}" for x in steps))


def _after_step(x: StepLine) -> str:
    """A step line's words after its name (the line reads `pnl: success, 12 rows`; the name is bold)."""
    msg = str(x.message or x.status or "")
    return msg.removeprefix(f"{x.step}: ")


def result_rows(jobs: list[Any], names: dict[str, str]) -> list[dict[str, Any]]:
    """One row per step of each finished job: what it did."""
    rows = []
    for job in jobs:
        org = names.get(job.tenant_id) or job.tenant_name or job.tenant_id
        for st_ in job.result.steps if job.result else []:
            rows.append({"organisation": org, "step": st_.step, "status": st_.status,
                         "rows": st_.rows, "api_calls": st_.api_calls, "error": st_.error or ""})
    return text_rows(rows)
