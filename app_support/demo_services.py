"""What the admin app sets up around itself when its server starts (app.py's lifespan).

- The OAuth redirect follows the app's real port: with XERO_APP_URL unset (environment and .env),
  `streamlit run app.py --server.port 8600` serves at http://localhost:8600, so that is the app
  URL and XERO_REDIRECT_URI's default (`<app url>/callback`) for every page run.
- Mock mode only (the demo and workshops):
  * when no fake Xero answers on XERO_FAKE_PORT, the app starts one (state in
    `<XERO_DATA_DIR>/fake-xero/`) and stops it when the app stops; one already running is left alone;
  * the fake is told this app's redirect URI (as you would register it in Xero's developer portal);
  * the app leaves its URLs in `<XERO_DATA_DIR>/demo-urls.json`, so the CLI and the scheduler in
    mock mode reach this demo without retyping ports (settings.load_settings reads it; the
    environment wins), and removes the file when it stops;
  * when nothing answers on the SMTP port mock mode sends chase reminders to (SMTP_PORT, default
    8025 on 127.0.0.1), the app starts a real SMTP server there that catches every message in
    `<XERO_DATA_DIR>/demo-mail/` (the Practice Manager page's Outbox lists them) and stops it with
    the app: nothing leaves the machine.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
from typing import Iterator

import httpx

from xero_core.settings import configured, demo_mail_dir, demo_urls_path, load_settings
from xero_core.tokens import ssl_context

log = logging.getLogger("ledgerlink.app.demo")
DEFAULT_SEED = 42
# What this server process is doing about the fake (the Connection page words its notice from it).
FAKE: dict[str, bool | str | None] = {"starting": False, "error": None}


def _app_port() -> int | None:
    try:
        from streamlit import config

        return int(config.get_option("server.port"))
    except Exception:  # not under a Streamlit server (tests importing app.py)
        return None


def follow_app_port(port: int | None) -> None:
    """XERO_APP_URL = http://localhost:<the port the server listens on>, unless configured."""
    if port and not configured("XERO_APP_URL"):
        os.environ["XERO_APP_URL"] = f"http://localhost:{port}"


def _say(message: str) -> None:
    # The terminal that started the app is where a workshop host looks.
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def demo_services() -> Iterator[None]:
    follow_app_port(_app_port())
    try:
        settings = load_settings()
    except Exception as exc:  # the pages show the settings error; the server must still start
        log.error("settings: %s", exc)
        yield
        return
    if not settings.mock_mode:
        yield
        return
    urls = demo_urls_path(settings.data_dir)
    _write_urls(urls, settings)
    mail = _start_mail(settings)
    started: dict = {}
    # Generating the fake's two years of data takes ~15 s: the app serves meanwhile (the Connection
    # page says the fake is starting) rather than refusing connections.
    starter = threading.Thread(target=_start_fake, args=(settings, started), name="start-fake-xero", daemon=True)
    starter.start()
    try:
        yield
    finally:
        try:
            if json.loads(urls.read_text(encoding="utf-8")).get("pid") == os.getpid():
                urls.unlink()
        except (OSError, ValueError):
            pass
        if mail is not None:
            mail.stop()
            _say(f"Demo mail catcher on 127.0.0.1:{mail.port} stopped.")
        starter.join(5)  # a fake still starting exits by itself once this process is gone (--exit-with)
        fake = started.get("fake")
        if fake is not None and fake.started:
            fake.stop()
            _say(f"Fake Xero on {fake.url} stopped.")


def _start_mail(settings):
    """The demo's SMTP server on loopback, unless one answers already (another demo's) or mock mode
    was pointed at another SMTP server: then nothing is started."""
    from xero_core.fake.mail import MailCatcher, port_answers
    from xero_core.settings import is_loopback

    smtp = settings.smtp
    if not smtp.host or not is_loopback(smtp.host) or not smtp.port or port_answers(smtp.port):
        return None
    try:
        mail = MailCatcher(smtp.port, maildir=demo_mail_dir(settings.data_dir)).start()
    except Exception as exc:  # the port taken meanwhile: reminders then fail with the server's sentence
        _say(f"Mock mode: the demo's mail catcher could not start on 127.0.0.1:{smtp.port}: {exc}")
        return None
    _say(f"Demo mail catcher: 127.0.0.1:{mail.port} (chase reminders are caught here; nothing leaves the machine)")
    return mail


def caught_mail(settings) -> list[dict] | None:
    """What the demo's mail catcher kept, newest first (None when this installation has none)."""
    import email
    import email.policy
    import mailbox

    path = demo_mail_dir(settings.data_dir)
    if not path.is_dir():
        return None
    out = []
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in box.keys():
        try:
            with box.get_file(key) as f:
                raw = f.read()
            when = os.path.getmtime(path / ("new" if (path / "new" / key).exists() else "cur") / key)
        except (OSError, KeyError):
            continue
        m = email.message_from_bytes(raw, policy=email.policy.default)
        body = m.get_body(("plain",))
        out.append({"caught_at": when, "to": str(m.get("To") or ""), "subject": str(m.get("Subject") or ""),
                    "reply_to": str(m.get("Reply-To") or ""), "message_id": str(m.get("Message-ID") or ""),
                    "from": str(m.get("From") or ""), "body": body.get_content() if body is not None else ""})
    out.sort(key=lambda r: r["caught_at"], reverse=True)
    return out


def _write_urls(urls, settings) -> None:
    mine = {"XERO_APP_URL": settings.app_url, "XERO_FAKE_PORT": settings.fake_port, "pid": os.getpid()}
    if settings.smtp.port and settings.smtp.host and settings.smtp.security == "none":
        mine["SMTP_PORT"] = settings.smtp.port  # the CLI and scheduler in mock mode send to the same catcher
    try:
        urls.parent.mkdir(parents=True, exist_ok=True)
        tmp = urls.with_suffix(".tmp")
        tmp.write_text(json.dumps(mine, indent=1), encoding="utf-8")
        os.replace(tmp, urls)
    except OSError as exc:
        log.warning("could not write %s: %s", urls, exc)


def _start_fake(settings, started: dict) -> None:
    from xero_core.fake.server import start_fake

    FAKE.update(starting=True, error=None)
    try:
        fake = start_fake(settings.fake_port, settings.data_dir / "fake-xero", DEFAULT_SEED,
                          extra_args=["--redirect-uri", settings.redirect_uri, "--story"], owned=True)
    except RuntimeError as exc:
        FAKE.update(error=str(exc).splitlines()[0])
        _say(f"Mock mode: the fake Xero could not be started: {exc}")
        return
    finally:
        FAKE["starting"] = False
    started["fake"] = fake
    _register_redirect(fake.url, settings)
    how = "started by the admin app; it stops with the app" if fake.started else "found running; the app does not stop it"
    _say(f"Fake Xero: {fake.url} ({how}). Ledgerlink admin (mock mode): {settings.app_url}")


def fake_answers(settings) -> bool:
    """Whether the fake Xero answers its health check (mock mode's Connection page asks)."""
    try:
        # (verify: the process's one CA bundle load, not one per page view)
        return httpx.get(settings.api_url.rstrip("/") + "/_fake/health", timeout=1.0,
                         verify=ssl_context()).status_code == 200
    except httpx.HTTPError:
        return False


def _register_redirect(fake_url: str, settings) -> None:
    """A fake that was already running may not know this app's callback yet: register it."""
    try:
        r = httpx.post(fake_url + "/_fake/apps/redirect-uri", timeout=5,
                       json={"client_id": settings.client_id, "redirect_uri": settings.redirect_uri})
        if r.status_code >= 400:
            _say(f"Mock mode: the fake Xero refused the redirect URI {settings.redirect_uri}: {r.text[:200]}")
    except httpx.HTTPError as exc:
        log.warning("could not register the redirect URI with the fake: %s", exc)
