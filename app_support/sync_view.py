"""Live progress and results of "Sync now", drawn from sync_all's progress events and SyncResults."""
from __future__ import annotations

from typing import Any

STEP_COLUMNS = ("organisation", "step", "status", "rows", "api_calls", "bytes_downloaded", "error")
# Material icons, not emoji: Debian's chromium has no emoji font and draws those as empty boxes.
_ICONS = {"success": ":green[:material/check_circle:]", "failed": ":red[:material/cancel:]",
          "partial": ":orange[:material/warning:]", "skipped": ":gray[:material/skip_next:]",
          "running": ":blue[:material/hourglass_top:]"}


class LiveProgress:
    """sync_all's progress callback: one line per step inside an st.status, and a progress bar.

    Events are {"tenant_id", "step", "status", "message", "fraction"}; called in the script's
    thread (tenants are synced one after another on this page), so Streamlit calls are safe.
    """

    def __init__(self, status_box: Any, names: dict[str, str], tenants: list[str]):
        self.box = status_box
        self.names = names
        self.tenants = tenants
        self.bar = status_box.progress(0.0, text="Starting…")
        self.lines: dict[tuple[str, str], Any] = {}

    def __call__(self, ev: dict) -> None:
        tenant = str(ev.get("tenant_id") or "")
        step = str(ev.get("step") or "sync")
        status = str(ev.get("status") or "running")
        org = self.names.get(tenant, tenant)
        key = (tenant, step)
        if key not in self.lines:
            self.lines[key] = self.box.empty()
        message = ev.get("message") or f"{step}: {status}"
        self.lines[key].markdown(f"{_ICONS.get(status, _ICONS['running'])} **{org}** · {message}")
        frac = ev.get("fraction")
        if frac is not None:
            pos = self.tenants.index(tenant) if tenant in self.tenants else 0
            overall = (pos + float(frac)) / max(len(self.tenants), 1)
            self.bar.progress(min(1.0, max(0.0, overall)), text=f"{org}: {message}")


def result_rows(results: list[Any], names: dict[str, str]) -> list[dict[str, Any]]:
    """One row per step of each SyncResult: what it did."""
    rows = []
    for res in results:
        org = names.get(res.tenant_id, res.tenant_name or res.tenant_id)
        if res.busy:
            rows.append({"organisation": org, "step": "sync", "status": "skipped", "rows": 0, "api_calls": 0,
                         "bytes_downloaded": 0, "error": res.busy})
        for s in res.steps:
            rows.append({"organisation": org, "step": s.step, "status": s.status, "rows": s.rows,
                         "api_calls": s.api_calls, "bytes_downloaded": s.bytes_downloaded, "error": s.error})
    return rows


def all_ok(results: list[Any]) -> bool:
    return all(r.ok for r in results)
