"""Keep the fake's mutable state in a JSON file, so a restarted fake process still knows the
app's grants, tokens and connections, the files uploaded and the jobs moved.

The generated ledger is not stored: the same seed and today rebuild the same bytes.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import FakeXero

log = logging.getLogger("xero_core.fake")

VERSION = 1


class StateStore:
    def __init__(self, state_dir: Path | str) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "fake-xero-state.json"

    def snapshot(self, fake: FakeXero) -> dict[str, Any]:
        return {
            "version": VERSION,
            "seed": fake.seed,
            "tier": fake.tier,
            "clock": fake.clock.time() if hasattr(fake.clock, "advance") else None,
            "identity": fake.identity.dump(),
            "limits": fake.limits.dump(),
            "files": {tid: self._files_without_content(store.dump()) for tid, store in fake.files.items()},
            "practices": {tid: p.dump() for tid, p in fake._practices.items()},
            "webhook_sequence": fake.webhooks.sequence,
        }

    def _files_without_content(self, dumped: dict[str, Any]) -> dict[str, Any]:
        """Uploaded bytes go to blobs/<file id> once; the JSON (rewritten on every change) stays small."""
        blobs = self.dir / "blobs"
        for f in dumped["files"]:
            path = blobs / f["id"]
            if not path.exists():
                blobs.mkdir(exist_ok=True)
                path.write_bytes(base64.b64decode(f["content_b64"]))
            f["content_b64"] = None
        return dumped

    def _with_content(self, dumped: dict[str, Any]) -> dict[str, Any]:
        kept = []
        for f in dumped.get("files", []):
            path = self.dir / "blobs" / f["id"]
            if f.get("content_b64") is None:
                if not path.exists():
                    log.warning("fake Xero state: the bytes of file %s (%s) are missing; dropping it", f["id"], f["name"])
                    continue
                f["content_b64"] = base64.b64encode(path.read_bytes()).decode()
            kept.append(f)
        return {**dumped, "files": kept}

    def save(self, fake: FakeXero) -> None:
        data = json.dumps(self.snapshot(fake), separators=(",", ":"))
        # Atomic: a crash mid-write must not lose every grant (the file holds fake tokens only).
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".fake-state-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(data)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def restore(self, fake: FakeXero) -> bool:
        if not self.path.exists():
            return False
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("fake Xero state %s is unreadable (%s): starting fresh", self.path, exc)
            return False
        if data.get("version") != VERSION or data.get("seed") != fake.seed:
            log.warning("fake Xero state %s belongs to another seed or version: starting fresh", self.path)
            return False
        fake.identity.load(data.get("identity", {}))
        fake.limits.load(data.get("limits", {}))
        for tid, d in data.get("files", {}).items():
            if tid in fake.files:
                fake.files[tid].load(self._with_content(d))
        for tid, d in data.get("practices", {}).items():
            if tid in fake._practices:
                fake._practices[tid].load(d)
        fake.webhooks.sequence = int(data.get("webhook_sequence", 0))
        if data.get("tier"):
            fake.set_tier(data["tier"])
        if data.get("clock") and hasattr(fake.clock, "advance") and data["clock"] > fake.clock.time():
            fake.clock.advance(data["clock"] - fake.clock.time())
        return True
