"""Security defences not proven elsewhere (SECURITY.md lists every defence and its test).

All in-process against the fake Xero on one FakeClock: no network, no waiting.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import socket
import stat
import urllib.parse

import httpx
import pytest

from xero_core import db, oauth
from xero_core.errors import OAuthError
from xero_core.fake import FakeClock, FakeXero
from xero_core.practice import clients as C
from xero_core.practice import documents as D
from xero_core.engine import Engine
from xero_core.practice import webhooks as W
from xero_core.engine import Engine

CLIENT_ID = "SECURITYTESTCLIENT00000000000000"
REDIRECT = "http://localhost:8501/callback"


class Captured:
    """The fake behind a transport that remembers every token the identity service hands out."""

    def __init__(self, fake: FakeXero):
        self.fake = fake
        self.tokens: set[str] = set()

    def handle(self, request: httpx.Request) -> httpx.Response:
        resp = self.fake.handle(request)
        if request.url.path.endswith("/connect/token") and resp.status_code == 200:
            body = json.loads(resp.content)
            self.tokens |= {body[k] for k in ("access_token", "refresh_token", "id_token") if body.get(k)}
        return resp

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def variants(secret: str | bytes) -> set[bytes]:
    """The forms a secret leaks in: raw, URL-encoded, base64 (standard and URL-safe, padded or not)."""
    raw = secret if isinstance(secret, bytes) else secret.encode()
    out = {raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw),
           base64.b64encode(raw).rstrip(b"="), base64.urlsafe_b64encode(raw).rstrip(b"=")}
    if not isinstance(secret, bytes):
        out |= {urllib.parse.quote(secret, safe="").encode(), urllib.parse.quote_plus(secret).encode()}
    return {v for v in out if len(v) >= 12}


def setup(make_settings, **fake_kw):
    clock = FakeClock()
    secret = "client-secret-" + secrets.token_urlsafe(24)
    webhook_key = "webhook-key-" + secrets.token_urlsafe(24)
    fake = FakeXero(clock=clock, invoices=20, apps=[{"client_id": CLIENT_ID, "client_secret": secret,
                                                     "redirect_uris": [REDIRECT]}], **fake_kw)
    cap = Captured(fake)
    s = make_settings(**fake.settings_env("http://fake.test", client_id=CLIENT_ID), XERO_WEBHOOK_KEY=webhook_key,
                      XERO_ADMIN_PASSWORD="admin-password-" + secrets.token_urlsafe(12))
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)),
                                     transport=cap.transport(), clock=clock)
    org = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")
    return s, clock, fake, cap, org


def tables(s) -> dict[str, int]:
    with db.connect(s.db_path, read_only=True) as con:
        names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = 'main' ORDER BY 1").fetchall()]
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in names}


@pytest.mark.slow
def test_full_run_leaves_no_secret_in_logs_files_or_duckdb(make_settings, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "authlib", "xero_core", "ledgerlink"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    s, clock, fake, cap, org = setup(make_settings)
    t = cap.transport()

    # sync everything, then again after the access token aged out and after Xero expired it early
    assert Engine(s, transport=t, clock=clock).sync(org).ok
    clock.advance(1700)
    Engine(s, transport=t, clock=clock).sync(org, only="contacts,invoices")
    fake.expire_tokens()
    res = Engine(s, transport=t, clock=clock).sync_practices()
    assert all(r.status in ("success", "partial", "skipped") for r in res), res

    # webhooks: a good batch (processed: re-fetches the contact and invoice) and a forged one
    contact = fake.org(org).contacts[0]
    invoice = fake.org(org).invoices[0]
    body = json.dumps({"events": [fake.webhooks.event(org, "CONTACT", "UPDATE", contact.id),
                                  fake.webhooks.event(org, "INVOICE", "UPDATE", invoice.id)],
                       "firstEventSequence": 1, "lastEventSequence": 2, "entropy": "ABCDEFGHIJKLMNOPQRST"}).encode()
    assert W.handle_webhook(s, body, W.sign(s.webhook_key, body)) == 200
    assert W.handle_webhook(s, body, W.sign("not-the-key-" + "x" * 20, body)) == 401
    drained = W.drain(s, transport=t, clock=clock)
    assert drained.processed == 2, drained.as_dict()

    # a document pushed to Xero Files for a client matched to a contact
    cid = next(c["client_id"] for c in C.list_clients(s) if c.get("xero_contact_id"))
    D.add_document(s, cid, b"%PDF-1.4 statement", file_name="statement.pdf", clock=clock)
    assert D.push_documents(s, transport=t, clock=clock).pushed == 1

    # and a disconnect, which revokes the refresh token (a token in a POST body)
    oauth.disconnect(s, org, transport=t, clock=clock)

    assert len(cap.tokens) >= 4  # first exchange + at least two refreshes: several token sets to look for
    secrets_to_find = {f"token {i}": tok for i, tok in enumerate(sorted(cap.tokens))}
    secrets_to_find.update({
        "client secret": s.client_secret,
        "encryption key (hex)": s.encryption_key.hex(),
        "encryption key (bytes)": s.encryption_key,
        "webhook key": s.webhook_key,
        "admin password": s.admin_password,
    })
    log_text = (caplog.text + "\n".join(r.getMessage() for r in caplog.records)).encode()
    assert b"HTTP Request" in log_text  # httpx's DEBUG/INFO lines were captured at all
    files = [p for p in s.data_dir.rglob("*") if p.is_file() and s.vault_dir not in p.parents]
    assert any(p == s.db_path for p in files) and len(files) >= 3
    blobs = {str(p): p.read_bytes() for p in files}
    leaks = []
    for what, secret in secrets_to_find.items():
        for v in variants(secret):
            if v in log_text:
                leaks.append(f"{what} in the log")
            leaks += [f"{what} in {p}" for p, blob in blobs.items() if v in blob]
    # DuckDB compresses strings on disk: ask it too, column by column
    with db.connect(s.db_path, read_only=True) as con:
        cols = con.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main' "
                           "AND (data_type = 'VARCHAR' OR data_type = 'JSON')").fetchall()
        for what, secret in secrets_to_find.items():
            needle = secret.hex() if isinstance(secret, bytes) else secret
            for table, col in cols:
                n = con.execute(f'SELECT count(*) FROM "{table}" WHERE contains(CAST("{col}" AS VARCHAR), ?)',
                                [needle]).fetchone()[0]
                if n:
                    leaks.append(f"{what} in DuckDB {table}.{col}")
    assert leaks == []

    # the vault: every file 0600, every directory 0700
    for p in [s.vault_dir, *s.vault_dir.rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), f"{p} is {oct(mode)}"


HOSTILE = [
    "'; DROP TABLE contacts; --",
    "Robert'); DROP TABLE clients; --",
    'O\'Brien "The Plumber" & Sons; DELETE FROM invoices WHERE 1=1; --',
    "Zoë Ñandú & Søn 株式会社 🚀",
    "back\\slash %_ wildcard ' OR '1'='1",
]


@pytest.mark.slow
def test_hostile_names_from_xero_are_just_data(make_settings):
    s, clock, fake, cap, org = setup(make_settings)
    o = fake.org(org)
    for i, name in enumerate(HOSTILE):
        o.add_contact(name, clock.now(), email=f"evil{i}@example.com")
    before = tables(s)
    res = Engine(s, transport=cap.transport(), clock=clock).sync_practices()
    assert {r.tenant_type: r.status for r in res}["ORGANISATION"] == "success", res
    after = tables(s)
    assert set(after) == set(before)  # no table dropped or added
    with db.connect(s.db_path, read_only=True) as con:
        contact_names = {r[0] for r in con.execute("SELECT name FROM contacts WHERE tenant_id = ?", [org]).fetchall()}
    assert set(HOSTILE) <= contact_names
    assert after["contacts"] == len(o.contacts)  # archived ones too (includeArchived)
    client_names = {c["name"]: c for c in C.list_clients(s)}
    for name in HOSTILE:  # each became a client of its own, linked to its contact
        assert client_names[name]["xero_contact_id"] is not None, name
    # and a search/edit with the same text is still just a value
    cid = client_names[HOSTILE[0]]["client_id"]
    C.edit_client(s, cid, name=HOSTILE[1] + " (edited)")
    assert C.get_client(s, cid)["name"] == HOSTILE[1] + " (edited)"
    assert set(tables(s)) == set(before)


def test_forged_state_is_refused_and_does_not_spend_the_real_one(make_settings):
    clock = FakeClock()
    fake = FakeXero(clock=clock, invoices=20)
    s = make_settings(**fake.settings_env("http://fake.test"))
    real_url = oauth.begin_connect(s, clock=clock)
    redirect = fake.consent(real_url)
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(redirect).query)["code"][0]
    for forged in (f"{REDIRECT}?code={code}&state=attacker-chosen-state",
                   f"{REDIRECT}?code={code}",
                   f"{REDIRECT}?code={code}&state="):
        with pytest.raises(OAuthError) as err:
            oauth.complete_connect(s, forged, transport=fake.transport(), clock=clock)
        assert err.value.code == "state_mismatch"
        assert "does not belong to a consent this Ledgerlink started" in str(err.value)
    assert tables(s)["connections"] == 0
    assert not [r for r in fake.requests if r.path.endswith("/connect/token")]  # no code was exchanged
    # the genuine callback still completes, once
    assert oauth.complete_connect(s, redirect, transport=fake.transport(), clock=clock)
    with pytest.raises(OAuthError):
        oauth.complete_connect(s, redirect, transport=fake.transport(), clock=clock)


@pytest.mark.filterwarnings("ignore")  # starlette.testclient nags about httpx2 (not to be installed)
def test_oversized_webhook_bodies_are_refused_on_both_receivers(make_settings, tmp_path, monkeypatch):
    key = "webhook-key-" + "k" * 30
    s = make_settings(XERO_WEBHOOK_KEY=key)
    big = b'{"events":[' + b" " * W.MAX_BODY_BYTES + b"]}"

    # the standalone receiver refuses on Content-Length, before reading the body
    from xero_core.practice.webhook_server import serve

    with serve(s, worker=False) as srv, httpx.Client(timeout=10) as http:
        # only the headers: the answer comes before a byte of the body is read
        with socket.create_connection((srv.host, srv.port), timeout=10) as sock:
            sock.sendall(f"POST /webhooks/xero HTTP/1.1\r\nHost: x\r\nContent-Length: {len(big)}\r\n"
                         f"x-xero-signature: {W.sign(key, big)}\r\n\r\n".encode())
            answer = sock.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 413") and "Content-Length: 0" in answer and "Set-Cookie" not in answer
        ok = b'{"events":[]}'
        assert http.post(srv.url, content=ok, headers={"x-xero-signature": W.sign(key, ok)}).status_code == 200

    # the admin app's own route (st.App routes): same answer, and the app says why
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from app_support.webhook_route import routes

    monkeypatch.setenv("XERO_ENV_FILE", os.devnull)
    for k, v in {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(s.data_dir),
                 "XERO_ENCRYPTION_KEY": s.encryption_key.hex(), "XERO_WEBHOOK_KEY": key}.items():
        monkeypatch.setenv(k, v)
    with TestClient(Starlette(routes=routes())) as client:
        r = client.post("/webhooks/xero", content=big, headers={"x-xero-signature": W.sign(key, big)})
        assert (r.status_code, r.content, r.headers.get("set-cookie")) == (413, b"", None)
    assert W.webhook_status(s)["last_verification_failure"] == "body too large"


def test_oversized_uploads_are_refused_with_a_clear_message(make_settings, tmp_path):
    s = make_settings()
    cid = C.add_client(s, "Big Files Pty Ltd")
    doc = D.add_document(s, cid, b"x" * (D.MAX_BYTES + 1), file_name="scan.pdf")
    assert doc["status"] == "skipped"
    assert "10 MB" in doc["error"] and "Compress or split it" in doc["error"]
    huge = tmp_path / "huge.pdf"
    with open(huge, "wb") as f:  # sparse: no real disk used
        f.truncate(4 * D.MAX_BYTES + 1)
    with pytest.raises(D.DocumentError, match="far over Xero Files' 10 MB limit"):
        D.add_document(s, cid, huge)
    big_csv = tmp_path / "clients.csv"
    with open(big_csv, "wb") as f:
        f.write(b"name,email\n")
        f.truncate(C.MAX_CSV_BYTES + 1)
    with pytest.raises(C.ClientError, match="split it into smaller files"):
        C.import_csv(s, big_csv)
    assert [c["name"] for c in C.list_clients(s)] == ["Big Files Pty Ltd"]


def test_oversized_csv_bytes_are_refused(make_settings):
    s = make_settings()
    data = b"name,email\n" + b"Client,c@example.com\n" * (C.MAX_CSV_BYTES // 20 + 1)
    with pytest.raises(C.ClientError, match="split it into smaller files"):
        C.import_csv(s, data)


def test_lock_file_pins_every_dependency_with_hashes():
    """requirements.lock (SECURITY.md, Dependencies) must cover pyproject.toml: a dependency added without
    re-running `uv pip compile pyproject.toml --extra test --generate-hashes -o requirements.lock` fails here."""
    import re
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = list(project["dependencies"]) + list(extras["test"])
    for extra in re.findall(r"^ledgerlink\[([a-z0-9_,-]+)\]$", "\n".join(extras["test"]), re.M):
        wanted += [d for name in extra.split(",") for d in extras[name]]  # extras the test extra takes in
    wanted = [d for d in wanted if not d.startswith("ledgerlink[")]
    lock = (root / "requirements.lock").read_text()
    pinned = {re.sub(r"[-_.]+", "-", m.group(1)).lower(): m.group(2)
              for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, re.M)}
    missing = [d for d in wanted if re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", d).group(0)).lower()
               not in pinned]
    assert missing == [], f"not in requirements.lock: {missing}; re-run the compile command in SECURITY.md"
    assert lock.count("--hash=sha256:") >= len(pinned)  # every pin carries its hashes


@pytest.mark.slow
def test_every_page_is_refused_without_sign_in_when_a_password_is_set(tmp_path, monkeypatch):
    """Each page under pages/, opened directly, shows only the sign-in form while XERO_ADMIN_PASSWORD is set."""
    import sys
    from pathlib import Path

    from app_testing import new_app

    root = Path(__file__).resolve().parent.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    for var in ("XERO_WEBHOOK_KEY", "XERO_SCOPES", "XERO_SCOPE_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    for k, v in {"XERO_ENV_FILE": os.devnull, "XERO_MOCK_MODE": "true",
                 "XERO_DATA_DIR": str(tmp_path / "data"), "XERO_ENCRYPTION_KEY": secrets.token_hex(32),
                 "XERO_FAKE_PORT": "9", "XERO_ADMIN_PASSWORD": "correct horse battery staple"}.items():
        monkeypatch.setenv(k, v)
    pages = sorted(p.stem for p in (root / "pages").glob("*.py"))
    assert {"connection", "sync", "data", "clients", "webhooks"} <= set(pages)
    for page in pages:
        at = new_app()  # a new session per page (the app's scripts, the component scan: once per process)
        at.run()
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.message for e in at.exception])
        assert [t.value for t in at.title] == ["Ledgerlink admin"], page
        assert [t.label for t in at.text_input] == ["Admin password"], page
        assert not at.dataframe and not at.metric, f"{page} rendered data before sign-in"
