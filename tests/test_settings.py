import base64
import os
import stat

import pytest

from xero_core.settings import (
    BROAD_SCOPES,
    GRANULAR_SCOPES,
    REAL_API_URL,
    SettingsError,
    load_settings,
)

KEY = bytes(range(1, 33)).hex()  # a fixed key that is not degenerate (settings refuse repeats)


def real_env(**kw):
    env = {"XERO_CLIENT_ID": "cid", "XERO_CLIENT_SECRET": "sec", "XERO_ENCRYPTION_KEY": KEY}
    env.update(kw)
    return env


def test_real_defaults_are_xero_urls_and_granular_scopes():
    s = load_settings(real_env())
    assert s.api_url == REAL_API_URL and not s.mock_mode
    assert s.authorize_url == "https://login.xero.com/identity/connect/authorize"
    assert s.scopes == GRANULAR_SCOPES and "offline_access" in s.scopes
    assert "accounting.transactions.read" not in s.scopes


def test_broad_profile_for_older_apps():
    assert load_settings(real_env(XERO_SCOPE_PROFILE="broad")).scopes == BROAD_SCOPES


@pytest.mark.parametrize(
    "missing,needle",
    [("XERO_CLIENT_ID", "XERO_CLIENT_ID"), ("XERO_CLIENT_SECRET", "XERO_CLIENT_SECRET"), ("XERO_ENCRYPTION_KEY", "secrets.token_hex")],
)
def test_missing_setting_names_variable_and_fix(missing, needle):
    env = real_env()
    del env[missing]
    with pytest.raises(SettingsError, match=needle):
        load_settings(env)


def test_malformed_key_is_explained():
    with pytest.raises(SettingsError, match="XERO_ENCRYPTION_KEY must be 32 random bytes"):
        load_settings(real_env(XERO_ENCRYPTION_KEY="tooshort"))


def test_key_accepts_base64():
    raw = bytes(range(32))
    s = load_settings(real_env(XERO_ENCRYPTION_KEY=base64.b64encode(raw).decode()))
    assert s.encryption_key == raw


def test_mock_mode_changes_only_urls_and_credentials(tmp_path):
    s = load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path)})
    r = load_settings(real_env(XERO_DATA_DIR=str(tmp_path)))
    assert s.api_url.startswith("http://127.0.0.1:")
    assert s.scopes == r.scopes and s.week_ends_on == r.week_ends_on
    keyfile = tmp_path / "mock-encryption.key"
    assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600
    # the same key is reused on the next start
    assert load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path)}).encryption_key == s.encryption_key


def test_secrets_not_in_repr():
    s = load_settings(real_env())
    assert "sec" not in repr(s).replace("secret", "") and KEY not in repr(s)


def test_http_redirect_only_for_localhost():
    with pytest.raises(SettingsError, match="https"):
        load_settings(real_env(XERO_REDIRECT_URI="http://example.com/cb"))


def test_configuration_secrets_never_reach_a_log_line(caplog):
    import logging

    secret = "client-secret-" + "q" * 30
    s = load_settings(real_env(XERO_CLIENT_SECRET=secret, XERO_WEBHOOK_KEY="whk-" + "w" * 40,
                               XERO_ADMIN_PASSWORD="correct horse battery staple"))
    log = logging.getLogger("ledgerlink.test")
    with caplog.at_level(logging.INFO):
        log.info("secret %s key %s b64 %s hook %s pw %s", secret, KEY, base64.b64encode(s.encryption_key).decode(),
                 s.webhook_key, s.admin_password)
    text = caplog.text
    for leaked in (secret, KEY, base64.b64encode(s.encryption_key).decode(), s.webhook_key, s.admin_password):
        assert leaked not in text
    assert "[redacted]" in text


# -- issue 21 item 5: settings that cannot work are refused with a sentence ---------------------
@pytest.mark.parametrize("raw", ["99999", "0", "-1", "65536", "port"])
def test_fake_port_outside_1_to_65535_is_refused(raw):
    with pytest.raises(SettingsError, match=r"XERO_FAKE_PORT=.* must be a port number from 1 to 65535"):
        load_settings(real_env(XERO_MOCK_MODE="true", XERO_FAKE_PORT=raw))
    assert load_settings(real_env(XERO_MOCK_MODE="true", XERO_FAKE_PORT="65535")).fake_port == 65535


@pytest.mark.parametrize("var,url", [
    ("XERO_APP_URL", "http://localhost:99999"), ("XERO_APP_URL", "http://localhost:0"),
    ("XERO_API_URL", "http://127.0.0.1:70000"), ("XERO_REDIRECT_URI", "http://localhost:123456/callback"),
])
def test_urls_with_a_port_outside_1_to_65535_are_refused(var, url):
    with pytest.raises(SettingsError, match=f"{var}=.* port outside 1 to 65535"):
        load_settings(real_env(**{var: url}))


def test_a_short_admin_password_is_refused_saying_the_minimum():
    with pytest.raises(SettingsError, match="at least 12") as info:
        load_settings(real_env(XERO_ADMIN_PASSWORD="x"))
    assert "'x'" not in str(info.value)  # the password itself is never echoed
    with pytest.raises(SettingsError, match="11 character"):
        load_settings(real_env(XERO_ADMIN_PASSWORD="a" * 11))
    assert load_settings(real_env(XERO_ADMIN_PASSWORD="a" * 12)).admin_password == "a" * 12


@pytest.mark.parametrize("key", ["00" * 32, "ff" * 32, "ab" * 32, "0123456789abcdef" * 4, base64.b64encode(bytes(32)).decode()])
def test_a_degenerate_encryption_key_is_refused(key):
    with pytest.raises(SettingsError, match="XERO_ENCRYPTION_KEY is not random"):
        load_settings(real_env(XERO_ENCRYPTION_KEY=key))


def test_random_keys_pass_and_the_previous_key_may_be_the_old_bad_one():
    import secrets

    for _ in range(200):  # a random key never trips the check
        load_settings(real_env(XERO_ENCRYPTION_KEY=secrets.token_hex(32)))
    # rotating away from a degenerate key must stay possible: the previous key is not judged
    s = load_settings(real_env(XERO_ENCRYPTION_KEY=secrets.token_hex(32), XERO_ENCRYPTION_KEY_PREVIOUS="00" * 32))
    assert s.encryption_key_previous == bytes(32)
