"""Shared fixtures. Every test gets its own data dir under tmp_path; nothing touches ./data."""
from __future__ import annotations

import secrets

import pytest

from xero_core.settings import Settings, load_settings


@pytest.fixture
def make_settings(tmp_path):
    """make_settings(**env_overrides) -> Settings in mock mode, in a private data dir."""

    def _make(**overrides: str) -> Settings:
        env = {
            "XERO_MOCK_MODE": "true",
            "XERO_DATA_DIR": str(tmp_path / "data"),
            "XERO_ENCRYPTION_KEY": secrets.token_hex(32),
        }
        env.update({k: str(v) for k, v in overrides.items()})
        return load_settings(env)

    return _make


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()
