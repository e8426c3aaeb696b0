"""The one place settings are read.

Every Xero URL the product uses derives from here. Mock mode changes URLs and credentials only:
business code never asks whether it is talking to the fake.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

# The fake Xero's demo app, mock mode's default credentials. The fake owns them (it imports nothing
# of the product); its demo_app module loads nothing else of the fake.
from .fake.demo_app import DEMO_CLIENT_ID as DEMO_CLIENT_ID, DEMO_CLIENT_SECRET as DEMO_CLIENT_SECRET  # re-exported

log = logging.getLogger(__name__)

REAL_AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
REAL_TOKEN_URL = "https://identity.xero.com/connect/token"
REAL_REVOKE_URL = "https://identity.xero.com/connect/revocation"
REAL_API_URL = "https://api.xero.com"

DEFAULT_FAKE_PORT = 8765
DEFAULT_MAIL_PORT = 8025  # mock mode: the demo's loopback SMTP server that catches chase reminders
SECURITY_CHOICES = ("starttls", "tls", "none")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
DEFAULT_APP_PORT = 8501

# Apps created on/after 2 March 2026 get granular scopes only (xero-notes §1).
GRANULAR_SCOPES = (
    "offline_access",
    "accounting.settings.read",
    "accounting.contacts.read",
    "accounting.invoices.read",
    "accounting.payments.read",
    "accounting.banktransactions.read",
    "accounting.reports.profitandloss.read",
    "accounting.reports.banksummary.read",
    "accounting.reports.balancesheet.read",
    "accounting.reports.trialbalance.read",
    "accounting.journals.read",
    "files",
    "practicemanager.read",
)
# Apps created before 2 March 2026 may keep the broad scopes until Sept 2027.
BROAD_SCOPES = (
    "offline_access",
    "accounting.settings.read",
    "accounting.contacts.read",
    "accounting.transactions.read",
    "accounting.reports.read",
    "accounting.journals.read",
    "files",
    "practicemanager.read",
)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class SettingsError(ValueError):
    """A missing or malformed setting. The message names the variable and how to fix it."""


def is_loopback(host: str | None) -> bool:
    import ipaddress

    h = (host or "").strip().lower()
    if h in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(h.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class SmtpSettings:
    """How chase reminders leave (SMTP_* and CHASE_FROM). Read with every setting, checked only when
    chasing sends: `problem` is the one sentence to show while any value is missing or wrong.
    SMTP_PASSWORD may instead live in the vault (practice.chase.set_smtp_password), which wins."""

    host: str | None = None
    port: int | None = None
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(repr=False, default=None)
    sender: str | None = None  # CHASE_FROM, e.g. "Harbour & Co <office@harbour.example>"
    problem: str | None = "SMTP_HOST is not set."


def read_smtp(get: Callable[[str], str | None], mock: bool, mail_port: str | None = None) -> SmtpSettings:
    """SMTP_HOST, SMTP_PORT, SMTP_SECURITY, SMTP_USERNAME, SMTP_PASSWORD, CHASE_FROM. Mock mode's
    defaults point at the demo's loopback mail catcher (nothing leaves the machine); the
    environment and .env still win."""
    host = get("SMTP_HOST") or ("127.0.0.1" if mock else None)
    security = (get("SMTP_SECURITY") or ("none" if mock and not get("SMTP_HOST") else "starttls")).lower()
    sender = get("CHASE_FROM") or ("Ledgerlink demo practice <practice@demo.invalid>" if mock else None)
    username, password = get("SMTP_USERNAME"), get("SMTP_PASSWORD")
    port_raw = get("SMTP_PORT") or (mail_port or str(DEFAULT_MAIL_PORT) if mock and not get("SMTP_HOST") else None)
    port, problem = None, None
    if security not in SECURITY_CHOICES:
        problem = f"SMTP_SECURITY={security!r} must be starttls (the default), tls, or none (loopback only)."
        security = "starttls"
    if port_raw:
        try:
            port = int(port_raw)
            assert 0 < port < 65536
        except (ValueError, AssertionError):
            problem = problem or f"SMTP_PORT={port_raw!r} must be a port number, e.g. 587 for starttls or 465 for tls."
            port = None
    else:
        port = {"starttls": 587, "tls": 465, "none": 25}[security]
    if problem is None:
        from email.utils import parseaddr

        if not host:
            problem = ("Chasing sends email but SMTP_HOST is not set: set SMTP_HOST (and SMTP_PORT, SMTP_USERNAME, "
                       "SMTP_PASSWORD, CHASE_FROM) to your mail provider's SMTP server.")
        elif security == "none" and not is_loopback(host):
            problem = (f"SMTP_SECURITY=none sends passwords and reminders in clear text, so it is refused for "
                       f"SMTP_HOST={host!r}: use starttls or tls, or a loopback host (127.0.0.1).")
        elif not sender or "@" not in parseaddr(sender)[1]:
            problem = (f"CHASE_FROM={sender!r} is not an email address: set it to the address reminders come from, "
                       "e.g. CHASE_FROM=\"Harbour & Co <office@harbour.example>\"." if sender else
                       "CHASE_FROM is not set: set it to the address reminders come from, e.g. "
                       "CHASE_FROM=\"Harbour & Co <office@harbour.example>\".")
        elif password and not username:
            problem = "SMTP_PASSWORD is set without SMTP_USERNAME: set both, or neither for a server without sign-in."
    return SmtpSettings(host=host, port=port, security=security, username=username, password=password,
                        sender=sender, problem=problem)


def _truthy(name: str, raw: str | None, default: bool) -> bool:
    if raw is None or raw.strip() == "":
        return default
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean: use true or false.")


def parse_key(name: str, raw: str) -> bytes:
    """A 32-byte AES key given as 64 hex characters or as base64 (44 characters)."""
    raw = raw.strip()
    key: bytes | None = None
    if len(raw) == 64:
        try:
            key = bytes.fromhex(raw)
        except ValueError:
            key = None
    if key is None:
        try:
            key = base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_" if ("-" in raw or "_" in raw) else None, validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != 32:
        raise SettingsError(
            f"{name} must be 32 random bytes written as 64 hex characters or base64. "
            'Generate one with: python -c "import secrets; print(secrets.token_hex(32))"'
        )
    return key


MIN_KEY_BYTE_VALUES = 16  # 32 random bytes hold about 30 different values; fewer than 16 is not random
MIN_ADMIN_PASSWORD = 12


def check_key_random(name: str, key: bytes) -> bytes:
    """Refuse a key that is plainly not random (all zeros, one byte repeated, a short pattern): it
    parses, and would encrypt every token with a key anyone can guess."""
    if len(set(key)) < MIN_KEY_BYTE_VALUES:
        raise SettingsError(
            f"{name} is not random (it repeats a few byte values, e.g. all zeros), so anyone could guess it. "
            'Generate one with: python -c "import secrets; print(secrets.token_hex(32))"; tokens stored with the old '
            "one are kept: set it as XERO_ENCRYPTION_KEY_PREVIOUS and run `python -m xero_core rotate-key`."
        )
    return key


def port_number(name: str, raw: str, example: int) -> int:
    """A TCP port from 1 to 65535, or a sentence saying so."""
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise SettingsError(f"{name}={raw!r} must be a port number from 1 to 65535, e.g. {example}.")
    return port


def _url_port_ok(name: str, url: str) -> None:
    from urllib.parse import urlsplit

    try:
        port = urlsplit(url).port
    except ValueError:  # urlsplit's "Port out of range 0-65535" or "Port could not be cast to integer"
        port = 0
    if port is not None and not 1 <= port <= 65535:
        raise SettingsError(f"{name}={url!r} has a port outside 1 to 65535: give a port number from 1 to 65535.")


def key_id(key: bytes) -> str:
    """A short, non-secret fingerprint of a key, recorded in each vault file."""
    return hashlib.sha256(b"ledgerlink-key-id:" + key).hexdigest()[:16]


@dataclass(frozen=True)
class Settings:
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    scopes: tuple[str, ...]
    encryption_key: bytes = field(repr=False)
    encryption_key_previous: bytes | None = field(repr=False, default=None)
    mock_mode: bool = False
    data_dir: Path = Path("data")
    authorize_url: str = REAL_AUTHORIZE_URL
    token_url: str = REAL_TOKEN_URL
    revoke_url: str = REAL_REVOKE_URL
    api_url: str = REAL_API_URL
    webhook_key: str | None = field(repr=False, default=None)
    # reporting conventions
    week_ends_on: str = "saturday"
    region_category: str = "Region"
    revenue_type_category: str = "Job Type"
    # scheduler
    sync_time: str = "06:00"
    timezone: str = "Australia/Sydney"
    sync_extra: str = ""  # e.g. "invoices=60m,contacts=30m"
    daily_budget: int = 4900  # stop short of Xero's 5,000/day
    sync_workers: int = 8  # threads per worker pool claiming sync jobs
    backfill_workers: int = 500  # backfills a pool runs at once, a thread each (pipeline/worker.py)
    # admin app
    admin_password: str | None = field(repr=False, default=None)
    app_url: str = f"http://localhost:{DEFAULT_APP_PORT}"
    fake_port: int = DEFAULT_FAKE_PORT
    # What to add when Xero does not answer at all (mock mode: how to start the fake); "" for none.
    unreachable_hint: str = ""
    # chase reminders by email (practice/chase.py); checked only when chasing sends
    smtp: SmtpSettings = field(default_factory=SmtpSettings, repr=False)

    @property
    def db_path(self) -> Path:
        """The working database: Ledgerlink's own processes only (xero_core/snapshot.py)."""
        from .snapshot import working_path

        return working_path(self.data_dir)

    @property
    def snapshot_path(self) -> Path:
        """The readers' copy, published after each sync: notebooks, analysis, your own tools."""
        from .snapshot import snapshot_path

        return snapshot_path(self.data_dir)

    @property
    def vault_dir(self) -> Path:
        return self.data_dir / "vault"

    @property
    def accounting_url(self) -> str:
        return self.api_url.rstrip("/") + "/api.xro/2.0"

    @property
    def files_url(self) -> str:
        return self.api_url.rstrip("/") + "/files.xro/1.0"

    @property
    def practicemanager_url(self) -> str:
        return self.api_url.rstrip("/") + "/practicemanager/3.0"

    @property
    def connections_url(self) -> str:
        return self.api_url.rstrip("/") + "/connections"

    @property
    def key_id(self) -> str:
        return key_id(self.encryption_key)


def _read_env(env: Mapping[str, str] | None, env_file: Path | None) -> dict[str, str]:
    if env is not None:
        return dict(env)
    values: dict[str, str] = {}
    explicit = env_file is not None or bool((os.environ.get("XERO_ENV_FILE") or "").strip())
    path = Path(env_file) if env_file is not None else Path((os.environ.get("XERO_ENV_FILE") or "").strip() or ".env")
    if explicit and not path.exists():
        # The default .env may be absent; a file someone named must exist, or its settings would be
        # silently missing (XERO_ENV_FILE=/dev/null reads none).
        raise SettingsError(
            f"XERO_ENV_FILE={str(path)!r}: there is no such file. Fix the path, create the file, or unset "
            "XERO_ENV_FILE to read .env from the working directory (XERO_ENV_FILE=/dev/null reads no file)."
        )
    if explicit and path.is_dir():
        raise SettingsError(f"XERO_ENV_FILE={str(path)!r} is a folder, not a settings file: name the file itself.")
    if path.is_file() or (explicit and path.exists()):
        from dotenv import dotenv_values

        try:
            values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(
                f"The settings file {path} cannot be read ({getattr(exc, 'strerror', None) or exc}). "
                "Make it readable by this user, or point XERO_ENV_FILE at another file."
            ) from None
    values.update(os.environ)  # the real environment wins over .env
    return values


DEMO_URLS_FILE = "demo-urls.json"


def demo_urls_path(data_dir: Path) -> Path:
    """Where a running demo (the admin app in mock mode) leaves its URLs for the CLI and scheduler:
    {"XERO_APP_URL": ..., "XERO_FAKE_PORT": ..., "pid": ...}. Mock mode only; the environment wins."""
    return Path(data_dir) / DEMO_URLS_FILE


DEMO_MAIL_DIR = "demo-mail"


def demo_mail_dir(data_dir: Path) -> Path:
    """The Maildir where the demo's loopback SMTP server keeps what it caught (mock mode's Outbox)."""
    return Path(data_dir) / DEMO_MAIL_DIR


def _demo_urls(data_dir: Path) -> dict[str, str]:
    import json

    try:
        data = json.loads(demo_urls_path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: str(data[k]) for k in ("XERO_APP_URL", "XERO_FAKE_PORT") if data.get(k)}


def configured(name: str) -> str | None:
    """The value of setting `name` from the environment or the .env file, None when not set."""
    return (_read_env(None, None).get(name) or "").strip() or None


def _mock_key(data_dir: Path) -> bytes:
    """Mock mode only: a local key file so the demo runs with one command."""
    path = data_dir / "mock-encryption.key"
    if path.exists():
        return parse_key(f"key file {path}", path.read_text())
    from . import storage

    storage.secure_dir(data_dir)
    hexkey = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(hexkey + "\n")
    log.warning(
        "XERO_ENCRYPTION_KEY is not set: mock mode created a local key file at %s (mode 0600). "
        "Never do this with real Xero: set XERO_ENCRYPTION_KEY instead.", path
    )
    return bytes.fromhex(hexkey)


def load_settings(env: Mapping[str, str] | None = None, env_file: Path | None = None) -> Settings:
    """Read every setting once. Raises SettingsError naming the variable and the fix."""
    from . import storage

    storage.private_umask()  # every file this process creates from here on is owner-only
    e = _read_env(env, env_file)

    def get(name: str) -> str | None:
        return (e.get(name) or "").strip() or None

    mock = _truthy("XERO_MOCK_MODE", get("XERO_MOCK_MODE"), False)
    data_dir = Path(get("XERO_DATA_DIR") or "data")

    demo = _demo_urls(data_dir) if mock else {}  # a running demo's ports, unless the environment says
    fake_port_raw = get("XERO_FAKE_PORT") or demo.get("XERO_FAKE_PORT") or str(DEFAULT_FAKE_PORT)
    fake_port = port_number("XERO_FAKE_PORT", fake_port_raw, DEFAULT_FAKE_PORT)
    fake_base = f"http://127.0.0.1:{fake_port}"

    app_url = (get("XERO_APP_URL") or demo.get("XERO_APP_URL") or f"http://localhost:{DEFAULT_APP_PORT}").rstrip("/")
    _url_port_ok("XERO_APP_URL", app_url)
    defaults = {
        "XERO_AUTHORIZE_URL": fake_base + "/identity/connect/authorize" if mock else REAL_AUTHORIZE_URL,
        "XERO_TOKEN_URL": fake_base + "/connect/token" if mock else REAL_TOKEN_URL,
        "XERO_REVOKE_URL": fake_base + "/connect/revocation" if mock else REAL_REVOKE_URL,
        "XERO_API_URL": fake_base if mock else REAL_API_URL,
        "XERO_CLIENT_ID": DEMO_CLIENT_ID if mock else None,
        "XERO_CLIENT_SECRET": DEMO_CLIENT_SECRET if mock else None,
        "XERO_REDIRECT_URI": app_url + "/callback",
    }

    def val(name: str) -> str | None:
        return get(name) or defaults.get(name)

    client_id = val("XERO_CLIENT_ID")
    if not client_id:
        raise SettingsError(
            "XERO_CLIENT_ID is not set. Create an app at developer.xero.com (My Apps > New app, "
            "Web app) and copy its Client id, or set XERO_MOCK_MODE=true to use the offline fake Xero."
        )
    client_secret = val("XERO_CLIENT_SECRET")
    if not client_secret:
        raise SettingsError(
            "XERO_CLIENT_SECRET is not set. Generate a secret for your app at developer.xero.com "
            "(My Apps > your app > Configuration > Generate a secret)."
        )

    urls: dict[str, str] = {}
    for url_var in ("XERO_AUTHORIZE_URL", "XERO_TOKEN_URL", "XERO_REVOKE_URL", "XERO_API_URL", "XERO_REDIRECT_URI"):
        u = val(url_var)
        if not u or not (u.startswith("https://") or u.startswith("http://")):
            raise SettingsError(f"{url_var}={u!r} must be an http(s) URL.")
        _url_port_ok(url_var, u)
        urls[url_var] = u
    redirect = urls["XERO_REDIRECT_URI"]
    if redirect.startswith("http://") and not any(h in redirect for h in ("://localhost", "://127.0.0.1", "://[::1]")):
        raise SettingsError(
            f"XERO_REDIRECT_URI={redirect!r}: Xero accepts http only for localhost. Use an https URL."
        )

    profile = (get("XERO_SCOPE_PROFILE") or "granular").lower()
    if profile not in ("granular", "broad"):
        raise SettingsError(
            f"XERO_SCOPE_PROFILE={profile!r} must be 'granular' (apps created on/after 2 March 2026) "
            "or 'broad' (older apps, until Xero's September 2027 deadline)."
        )
    scopes_raw = get("XERO_SCOPES")
    scopes = tuple(scopes_raw.replace(",", " ").split()) if scopes_raw else (
        GRANULAR_SCOPES if profile == "granular" else BROAD_SCOPES
    )
    if "offline_access" not in scopes:
        raise SettingsError(
            "XERO_SCOPES must include offline_access, or Xero issues no refresh token and every "
            "connection dies after 30 minutes."
        )

    key_raw = get("XERO_ENCRYPTION_KEY")
    if key_raw:
        key = check_key_random("XERO_ENCRYPTION_KEY", parse_key("XERO_ENCRYPTION_KEY", key_raw))
    elif mock:
        key = _mock_key(data_dir)
    else:
        raise SettingsError(
            "XERO_ENCRYPTION_KEY is not set. It encrypts the token vault. Generate one with: "
            'python -c "import secrets; print(secrets.token_hex(32))" and keep it out of the repository.'
        )
    prev_raw = get("XERO_ENCRYPTION_KEY_PREVIOUS")
    prev = parse_key("XERO_ENCRYPTION_KEY_PREVIOUS", prev_raw) if prev_raw else None

    week_ends_on = (get("XERO_WEEK_ENDS_ON") or "saturday").lower()
    if week_ends_on not in WEEKDAYS:
        raise SettingsError(f"XERO_WEEK_ENDS_ON={week_ends_on!r} must be a weekday name, e.g. saturday.")

    sync_time = get("XERO_SYNC_TIME") or "06:00"
    try:
        hh, mm = sync_time.split(":")
        assert 0 <= int(hh) < 24 and 0 <= int(mm) < 60 and len(mm) == 2
    except Exception:
        raise SettingsError(f"XERO_SYNC_TIME={sync_time!r} must be HH:MM in 24-hour time, e.g. 06:00.") from None
    tz = get("XERO_TIMEZONE") or "Australia/Sydney"
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(tz)
    except Exception:
        raise SettingsError(f"XERO_TIMEZONE={tz!r} is not an IANA time zone, e.g. Australia/Sydney.") from None

    def whole(name: str, default: int, low: int, high: int, what: str) -> int:
        raw = get(name) or str(default)
        try:
            n = int(raw)
            assert low <= n <= high
        except (ValueError, AssertionError):
            raise SettingsError(f"{name}={raw!r} must be a whole number of {what} from {low} to {high} "
                                f"(default {default}).") from None
        return n

    sync_workers = whole("XERO_SYNC_WORKERS", 8, 1, 64, "worker threads")
    backfill_workers = whole("XERO_BACKFILL_WORKERS", 500, 1, 1000, "backfills at once")
    budget_raw = get("XERO_DAILY_BUDGET") or "4900"
    try:
        budget = int(budget_raw)
        assert 1 <= budget <= 5000
    except Exception:
        raise SettingsError(f"XERO_DAILY_BUDGET={budget_raw!r} must be a whole number from 1 to 5000.") from None

    if env is None:  # XERO_TODAY acts through the process environment (clock.SYSTEM_CLOCK, clock.today)
        from . import clock

        try:
            pinned = clock.pinned_day()
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        if pinned and not mock:
            log.warning("XERO_TODAY=%s runs Ledgerlink's clock on that date; unset it to sync live Xero data "
                        "on the real date.", pinned.isoformat())

    admin_password = get("XERO_ADMIN_PASSWORD")
    if admin_password is not None and len(admin_password) < MIN_ADMIN_PASSWORD:
        # never echoed: only its length
        raise SettingsError(
            f"XERO_ADMIN_PASSWORD is {len(admin_password)} character(s): it must be at least {MIN_ADMIN_PASSWORD} "
            'long. Use a long random value, e.g. python -c "import secrets; print(secrets.token_urlsafe(18))"'
        )

    from . import redaction

    # Whatever logs what, these never reach a log line (keys in hex and base64, as given and raw).
    smtp = read_smtp(get, mock, demo.get("SMTP_PORT"))
    redaction.pin(client_secret, key_raw, prev_raw, key.hex(), base64.b64encode(key).decode(),
                  prev.hex() if prev else None, get("XERO_WEBHOOK_KEY"), get("XERO_ADMIN_PASSWORD"), smtp.password)
    return Settings(
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=redirect,
        scopes=scopes,
        encryption_key=key,
        encryption_key_previous=prev,
        mock_mode=mock,
        data_dir=data_dir,
        authorize_url=urls["XERO_AUTHORIZE_URL"],
        token_url=urls["XERO_TOKEN_URL"],
        revoke_url=urls["XERO_REVOKE_URL"],
        api_url=urls["XERO_API_URL"].rstrip("/"),
        webhook_key=get("XERO_WEBHOOK_KEY"),
        week_ends_on=week_ends_on,
        region_category=get("XERO_REGION_CATEGORY") or "Region",
        revenue_type_category=get("XERO_REVENUE_TYPE_CATEGORY") or "Job Type",
        sync_time=sync_time,
        timezone=tz,
        sync_extra=get("XERO_SYNC_EXTRA") or "",
        daily_budget=budget,
        sync_workers=sync_workers,
        backfill_workers=backfill_workers,
        admin_password=admin_password,
        app_url=app_url,
        fake_port=fake_port,
        unreachable_hint=(
            f"The fake Xero is not running on port {fake_port}. Start it with `bash scripts/demo` (the fake "
            f"and the admin app) or `.venv/bin/python -m xero_core fake-xero --port {fake_port} "
            f"--state-dir {data_dir / 'fake-xero'}`." if mock else ""),
        smtp=smtp,
    )
