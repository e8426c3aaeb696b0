"""The encrypted vault: round trip, file modes, atomic writes, clear errors, key rotation."""
from __future__ import annotations

import base64
import json
import multiprocessing
import os
import secrets
import signal
import stat

import pytest

from xero_core.errors import VaultError
from xero_core.vault import Vault

SECRET = {"access_token": "at-" + "x" * 40, "refresh_token": "rt-" + "y" * 40, "tenant_ids": ["t1"]}


def test_round_trip_modes_and_no_plaintext(settings):
    v = Vault(settings)
    v.write("grant-abc", SECRET)
    assert v.read("grant-abc") == SECRET
    assert v.read("grant-missing") is None
    path = v.path("grant-abc")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(v.dir.stat().st_mode) == 0o700
    raw = path.read_bytes()
    for needle in (b"at-xxxx", b"rt-yyyy", base64.b64encode(SECRET["access_token"].encode())[:20]):
        assert needle not in raw
    env = json.loads(raw)
    assert env["key_id"] == settings.key_id and env["version"] == 1 and env["name"] == "grant-abc"
    assert v.names("grant-") == ["grant-abc"]
    assert v.delete("grant-abc") and not v.delete("grant-abc")


def test_tampered_file_names_file_and_says_reconnect(settings):
    v = Vault(settings)
    v.write("grant-t", SECRET)
    path = v.path("grant-t")
    env = json.loads(path.read_bytes())
    ct = bytearray(base64.b64decode(env["ciphertext"]))
    ct[5] ^= 0x01
    env["ciphertext"] = base64.b64encode(bytes(ct)).decode()
    path.write_text(json.dumps(env))
    with pytest.raises(VaultError) as ei:
        v.read("grant-t")
    msg = str(ei.value)
    assert str(path) in msg and "integrity" in msg and "reconnect" in msg
    assert "InvalidTag" not in msg and ei.value.__cause__ is None


def test_wrong_key_names_file_and_previous_key_setting(settings, make_settings):
    Vault(settings).write("grant-w", SECRET)
    other = make_settings(XERO_ENCRYPTION_KEY=secrets.token_hex(32))
    with pytest.raises(VaultError) as ei:
        Vault(other).read("grant-w")
    msg = str(ei.value)
    assert "grant-w.vault" in msg and "XERO_ENCRYPTION_KEY_PREVIOUS" in msg and "different key" in msg


@pytest.mark.parametrize("cut", [0, 10, 60, -30])
def test_truncated_file_gives_clear_error(settings, cut):
    v = Vault(settings)
    v.write("grant-cut", SECRET)
    path = v.path("grant-cut")
    raw = path.read_bytes()
    path.write_bytes(raw[:cut] if cut >= 0 else raw[:cut] + b'"}')
    with pytest.raises(VaultError) as ei:
        v.read("grant-cut")
    assert "grant-cut.vault" in str(ei.value) and "reconnect" in str(ei.value).lower()


def test_file_copied_over_another_is_refused(settings):
    v = Vault(settings)
    v.write("grant-a", {"who": "a"})
    v.write("grant-b", {"who": "b"})
    v.path("grant-b").write_bytes(v.path("grant-a").read_bytes())
    with pytest.raises(VaultError, match="renamed or copied"):
        v.read("grant-b")


def test_an_item_that_decrypts_to_json_other_than_an_object_is_unreadable(settings):
    # Every caller reads an item as an object (grant.get(...)): a list was handed back and failed
    # later, far from the file. It is the vault's sentence naming the file.
    v = Vault(settings)
    v.ensure_dir()
    v.path("grant-list").write_bytes(v._encrypt("grant-list", ["not", "an", "object"]))
    with pytest.raises(VaultError, match="grant-list.*decrypted to unreadable content"):
        v.read("grant-list")


def test_previous_key_reads_and_rotate_reencrypts(settings, make_settings, tmp_path):
    old_hex = settings.encryption_key.hex()
    Vault(settings).write("grant-r", SECRET)
    Vault(settings).write("pending-s", {"code_verifier": "v" * 50})
    new_hex = secrets.token_hex(32)
    rotated = make_settings(XERO_ENCRYPTION_KEY=new_hex, XERO_ENCRYPTION_KEY_PREVIOUS=old_hex)
    v = Vault(rotated)
    assert v.read("grant-r") == SECRET  # still readable during the change-over
    result = v.rotate()
    assert sorted(result["rotated"]) == ["grant-r", "pending-s"] and not result["failed"]
    assert v.file_key_id("grant-r") == rotated.key_id
    assert v.rotate()["current"] == ["grant-r", "pending-s"]
    only_new = make_settings(XERO_ENCRYPTION_KEY=new_hex)
    assert Vault(only_new).read("grant-r") == SECRET


def _child_write_then_block(settings, started, never):
    import xero_core.vault as vault_mod

    def stuck_fsync(fd):
        started.set()
        never.wait()  # parks here until SIGKILL: temp file written, rename not yet done

    vault_mod.os.fsync = stuck_fsync
    Vault(settings).write("grant-k", {"access_token": "new-" + "n" * 40})


def test_sigkill_during_write_leaves_old_file_intact(settings):
    v = Vault(settings)
    v.write("grant-k", SECRET)
    ctx = multiprocessing.get_context("fork")
    started, never = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_child_write_then_block, args=(settings, started, never))
    proc.start()
    try:
        assert started.wait(10), "child never reached the write"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    assert v.read("grant-k") == SECRET
    leftovers = list(v.dir.glob(".*.tmp"))
    assert leftovers, "the killed writer's temp file should be the only trace"
    assert v.names() == ["grant-k"]
    assert v.sweep_temp_files(older_than=0) == len(leftovers)
    assert not list(v.dir.glob(".*.tmp"))


def test_bad_item_name_rejected(settings):
    with pytest.raises(ValueError):
        Vault(settings).path("../etc/passwd")
