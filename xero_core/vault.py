"""Encrypted files for everything secret: token sets and pending OAuth state.

One file per item under `settings.vault_dir` (mode 0700), each file 0600 and written atomically
(temp file in the same directory, fsync, rename), so a crash mid-write leaves the previous
version whole. Contents are AES-256-GCM; the envelope (JSON, no secrets) records the format
version, the item's name and the key id, and all three are bound into the AEAD associated data,
so a file renamed, copied over another or edited in any byte fails to open.

Reading never raises a bare `InvalidTag`: each failure is a `VaultError` that names the file and
says what to do (reconnect, or give the old key in XERO_ENCRYPTION_KEY_PREVIOUS).
"""
from __future__ import annotations

import base64
import errno
import contextlib
import binascii
import json
import logging
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, ContextManager, TypedDict

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import redaction
from .errors import VaultError
from .settings import Settings, key_id

log = logging.getLogger(__name__)

FORMAT = "ledgerlink-vault"
VERSION = 1
SUFFIX = ".vault"
NONCE_BYTES = 12
_TAG_BYTES = 16
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,120}$")
_STALE_TMP_SECONDS = 3600
# Values under these keys are secrets: registered with the log redactor whenever seen.
SECRET_FIELDS = ("access_token", "refresh_token", "id_token", "code_verifier")

RECONNECT_ADVICE = "Delete it and reconnect the organisation (python -m xero_core connect, or the app's Connections page)."


class _Envelope(TypedDict):
    """A vault file's header, checked, with its nonce and ciphertext decoded."""
    version: int
    key_id: str
    nonce: bytes
    ct: bytes


class RotateResult(TypedDict):
    """What `Vault.rotate` did: items re-encrypted, items already under the current key, and the
    (name, reason) of each that could not be opened (left as it was)."""
    rotated: list[str]
    current: list[str]
    failed: list[tuple[str, str]]


def _aad(name: str, kid: str, version: int) -> bytes:
    return f"{FORMAT}|v{version}|{name}|{kid}".encode()


def _register_secrets(data: Any) -> None:
    if isinstance(data, dict):
        redaction.register(*(data.get(k) for k in SECRET_FIELDS if isinstance(data.get(k), str)))


class Vault:
    """The encrypted store. Cheap to construct; holds no open files."""

    def __init__(self, settings: Settings):
        self.dir = Path(settings.vault_dir)
        self._key = settings.encryption_key
        self.key_id = key_id(settings.encryption_key)
        self._previous = settings.encryption_key_previous
        self.previous_key_id = key_id(self._previous) if self._previous else None

    # -- paths ---------------------------------------------------------------------------
    def path(self, name: str) -> Path:
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid vault item name {name!r}")
        return self.dir / (name + SUFFIX)

    def ensure_dir(self) -> None:
        from . import storage

        storage.secure_dir(self.dir.parent)  # the data dir: 0700, and a StorageError sentence if unusable
        if not self.dir.exists():
            self.dir.mkdir(parents=True, mode=0o700, exist_ok=True)
        self._repair_dir()

    def _repair_dir(self) -> None:
        """Loosened permissions are repaired, with a warning (SECURITY.md: repair, not refuse)."""
        try:
            mode = stat.S_IMODE(self.dir.stat().st_mode)
        except FileNotFoundError:
            return
        if mode != 0o700:
            os.chmod(self.dir, 0o700)
            if mode & 0o077:
                log.warning("Vault folder %s was mode %s (others could list it): made it 0700 again. Check who "
                            "changed it.", self.dir, oct(mode))

    def _repair_file(self, path: Path, st: os.stat_result) -> None:
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            try:
                os.chmod(path, 0o600)
            except OSError as exc:
                log.warning("Vault file %s is mode %s (readable by other users) and could not be made 0600 (%s): "
                            "fix it by hand.", path, oct(mode), exc.strerror or exc)
                return
            log.warning("Vault file %s was mode %s (readable by other users): made it 0600 again. Its tokens are "
                        "encrypted; if others could also read XERO_ENCRYPTION_KEY, rotate the key and reconnect.",
                        path, oct(mode))

    def names(self, prefix: str = "") -> list[str]:
        if not self.dir.is_dir():
            if self.dir.exists() or self.dir.is_symlink():
                # a file where the vault folder should be: say so, never "no tokens are stored: reconnect"
                from . import storage

                error = storage.describe(OSError(errno.ENOTDIR, "Not a directory"), self.dir / "item",
                                         data_dir=self.dir.parent)
                raise error or NotADirectoryError(errno.ENOTDIR, f"{self.dir} is not a directory")
            return []
        out = []
        for p in self.dir.iterdir():
            if p.name.endswith(SUFFIX) and not p.name.startswith(".") and p.name.startswith(prefix):
                out.append(p.name[: -len(SUFFIX)])
        return sorted(out)

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    # -- crypto --------------------------------------------------------------------------
    def _encrypt(self, name: str, data: dict[str, Any]) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        plaintext = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        ct = AESGCM(self._key).encrypt(nonce, plaintext, _aad(name, self.key_id, VERSION))
        envelope = {
            "format": FORMAT,
            "version": VERSION,
            "name": name,
            "key_id": self.key_id,
            "nonce": base64.b64encode(nonce).decode(),
            "ciphertext": base64.b64encode(ct).decode(),
        }
        return (json.dumps(envelope, indent=1) + "\n").encode()

    def _envelope(self, name: str, path: Path, blob: bytes) -> _Envelope:
        def broken(why: str) -> VaultError:
            return VaultError(
                f"Vault file {path} is truncated or is not a Ledgerlink vault file ({why}). {RECONNECT_ADVICE}"
            )

        try:
            env = json.loads(blob.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise broken("its envelope is not complete JSON") from None
        if not isinstance(env, dict) or env.get("format") != FORMAT:
            raise broken("no Ledgerlink vault header")
        version = env.get("version")
        if not isinstance(version, int):
            raise broken("no format version")
        if version > VERSION:
            raise VaultError(
                f"Vault file {path} was written by a newer Ledgerlink (format {version}; this one reads "
                f"up to {VERSION}). Upgrade Ledgerlink, or delete the file and reconnect."
            )
        if env.get("name") != name:
            raise VaultError(
                f"Vault file {path} holds the item {env.get('name')!r}, not {name!r}: it was renamed or "
                f"copied over another file. {RECONNECT_ADVICE}"
            )
        try:
            nonce = base64.b64decode(env["nonce"], validate=True)
            ct = base64.b64decode(env["ciphertext"], validate=True)
        except (KeyError, TypeError, binascii.Error, ValueError):
            raise broken("nonce or ciphertext missing or damaged") from None
        if len(nonce) != NONCE_BYTES or len(ct) < _TAG_BYTES:
            raise broken("ciphertext too short")
        key_id = env.get("key_id")
        if not isinstance(key_id, str):
            raise broken("no key id")
        return {"version": version, "key_id": key_id, "nonce": nonce, "ct": ct}

    def _decrypt(self, name: str, path: Path, env: _Envelope) -> dict[str, Any]:
        kid = env["key_id"]
        if kid == self.key_id:
            key = self._key
        elif self._previous is not None and kid == self.previous_key_id:
            key = self._previous
        else:
            known = f"the current key ({self.key_id})"
            if self.previous_key_id:
                known += f" or XERO_ENCRYPTION_KEY_PREVIOUS ({self.previous_key_id})"
            raise VaultError(
                f"Vault file {path} was encrypted with a different key (key id {kid}), not {known}. "
                "If XERO_ENCRYPTION_KEY was changed, set XERO_ENCRYPTION_KEY_PREVIOUS to the old key and run "
                "`python -m xero_core rotate-key`; if the old key is lost, delete the file and reconnect."
            )
        try:
            plaintext = AESGCM(key).decrypt(env["nonce"], env["ct"], _aad(name, kid, env["version"]))
        except InvalidTag:
            raise VaultError(
                f"Vault file {path} failed its integrity check: it was altered or corrupted after it was "
                f"written (the key is right). {RECONNECT_ADVICE}"
            ) from None
        try:
            data = json.loads(plaintext)
        except ValueError:
            data = None
        if not isinstance(data, dict):  # every item is written from a dict (`write`)
            raise VaultError(f"Vault file {path} decrypted to unreadable content. {RECONNECT_ADVICE}")
        return data

    # -- public API ----------------------------------------------------------------------
    def read(self, name: str) -> dict[str, Any] | None:
        """The item, or None when there is no such file. Raises VaultError when it cannot be opened."""
        path = self.path(name)
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                blob = f.read()
        except FileNotFoundError:
            return None
        except PermissionError:
            raise VaultError(
                f"Vault file {path} cannot be read by this user. Run Ledgerlink as the user that owns "
                f"{self.dir} (files there are mode 0600)."
            ) from None
        except OSError as exc:  # e.g. a file where the data folder should be
            from . import storage

            raise storage.describe(exc, path) or exc from None
        self._repair_dir()
        self._repair_file(path, st)
        data = self._decrypt(name, path, self._envelope(name, path, blob))
        _register_secrets(data)
        return data

    def file_key_id(self, name: str) -> str:
        path = self.path(name)
        return self._envelope(name, path, path.read_bytes())["key_id"]

    def write(self, name: str, data: dict[str, Any]) -> None:
        """Replace the item atomically: readers see the old file or the new one, never a mix."""
        _register_secrets(data)
        path = self.path(name)
        blob = self._encrypt(name, data)
        self.ensure_dir()
        from . import storage

        with storage.translated(path):  # a full or read-only disk: one sentence naming the file
            self._write_file(name, path, blob)
        self._fsync_dir()

    def _write_file(self, name: str, path: Path, blob: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=self.dir)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def delete(self, name: str) -> bool:
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            return False
        self._fsync_dir()
        return True

    def _fsync_dir(self) -> None:
        try:
            dfd = os.open(self.dir, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)

    def sweep_temp_files(self, older_than: float = _STALE_TMP_SECONDS) -> int:
        """Remove temp files left by a writer that was killed mid-write (never a live one)."""
        if not self.dir.is_dir():
            return 0
        n = 0
        cutoff = time.time() - older_than
        for p in self.dir.glob(".*.tmp"):
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
                    n += 1
            except FileNotFoundError:
                pass
        return n

    def rotate(self, lock: Callable[[str], ContextManager[object]] | None = None) -> RotateResult:
        """Re-encrypt every item under the current key, reading old ones with the previous key.

        `lock(name)` (optional) is held around each read-modify-write, so a token refresh in
        another process cannot be overwritten by the old contents. Returns {"rotated": [...],
        "current": [...], "failed": [(name, reason), ...]}. A file that cannot be opened is left as
        it is and reported; nothing is lost.
        """
        result: RotateResult = {"rotated": [], "current": [], "failed": []}
        for name in self.names():
            with (lock(name) if lock else contextlib.nullcontext()):
                self._rotate_one(name, result)
        return result

    def _rotate_one(self, name: str, result: RotateResult) -> None:
        try:
            if self.file_key_id(name) == self.key_id:
                self.read(name)  # prove it opens; a tampered file is reported, not skipped
                result["current"].append(name)
                return
            data = self.read(name)
            if data is None:
                return
            self.write(name, data)
            result["rotated"].append(name)
        except FileNotFoundError:
            pass  # deleted meanwhile (e.g. a pending state used up)
        except VaultError as exc:
            result["failed"].append((name, str(exc)))
