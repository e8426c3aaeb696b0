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

KEY = "ab" * 32


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
