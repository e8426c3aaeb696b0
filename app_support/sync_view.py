"""Live progress and results of "Sync now", drawn from sync_all's progress events and result."""
from __future__ import annotations

from typing import Any

import streamlit as st

from .widgets import as_dict

STEP_COLUMNS = ("organisation", "step", "status", "rows", "api_calls", "bytes_downloaded", "error")


def _step_name(ev: dict[str, Any]) -> str:
    return str(ev.get("step") or ev.get("sync_type") or ev.get("name") or "sync")


class LiveProgress:
    """A progress callback for sync_all: one line per step in an st.status, plus a progress bar."""

    def __init__(self, status_box: Any, names: dict[str, str]):
        self.box = status_box
        self.names = names
        self.bar = status_box.progress(0.0, text="Starting…")
        self.lines: dict[tuple[str, str], Any] = {}
        self.seen = 0

    def __call__(self, event: Any) -> None:
        ev = as_dict(event) if not isinstance(event, dict) else event
        step = _step_name(ev)
        tenant = str(ev.get("tenant_id") or "")
        org = self.names.get(tenant, tenant)
        key = (tenant, step)
        if key not in self.lines:
            self.lines[key] = self.box.empty()
        state = str(ev.get("status") or ev.get("event") or "running")
        detail = []
        for label, k in (("rows", "rows"), ("API calls", "api_calls"), ("bytes", "bytes_downloaded")):
            if ev.get(k) not in (None, ""):
                detail.append(f"{ev[k]:,} {label}" if isinstance(ev[k], int) else f"{ev[k]} {label}")
        if ev.get("error"):
            detail.append(f"error: {ev['error']}")
        icon = {"success": "✅", "failed": "❌", "partial": "⚠️", "skipped": "⏭️"}.get(state, "⏳")
        prefix = f"{org} · " if org else ""
        self.lines[key].markdown(f"{icon} {prefix}**{step}** — {state}" + (f" ({', '.join(detail)})" if detail else ""))
        total = ev.get("total") or ev.get("steps_total")
        index = ev.get("index") or ev.get("step_index")
        if state in ("success", "failed", "partial", "skipped"):
            self.seen += 1
        if total:
            done = index if index is not None else self.seen
            frac = min(1.0, max(0.0, float(done) / float(total)))
            self.bar.progress(frac, text=f"{prefix}{step}: {state}")
        else:
            self.bar.progress(min(0.95, self.seen / (self.seen + 3)), text=f"{prefix}{step}: {state}")


def result_rows(results: list[Any], names: dict[str, str]) -> list[dict[str, Any]]:
    """One row per step of each SyncResult."""
    rows = []
    for res in results:
        r = as_dict(res) if not isinstance(res, dict) else res
        tenant = r.get("tenant_id") or ""
        for step in r.get("steps") or []:
            sd = as_dict(step) if not isinstance(step, dict) else step
            rows.append({
                "organisation": names.get(sd.get("tenant_id") or tenant, tenant),
                "step": _step_name(sd),
                "status": sd.get("status"),
                "rows": sd.get("rows"),
                "api_calls": sd.get("api_calls"),
                "bytes_downloaded": sd.get("bytes_downloaded"),
                "error": sd.get("error"),
            })
    return rows


def overall_status(results: list[Any]) -> str:
    statuses = set()
    for res in results:
        r = as_dict(res) if not isinstance(res, dict) else res
        statuses.add(r.get("status") or ("failed" if r.get("error") else "success"))
    if statuses <= {"success", "skipped"}:
        return "complete"
    if "success" in statuses or "partial" in statuses:
        return "error" if statuses == {"failed"} else "partial"
    return "error"
