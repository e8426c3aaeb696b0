"""Side by side: Ledgerlink's sync and Singer's `tap-xero` (PyPI, unmodified) doing the same work
(accounts, contacts, invoices, journals) against the same fake Xero served on loopback.

tap-xero hard-codes Xero's hosts; a small launcher rewrites the request URLs in `requests` to reach
the fake, and scales `time.sleep` by the same factor as the fake's clock (so a 60 s Retry-After costs
60/speed real seconds for both). tap-xero runs in its own virtualenv (it pins old libraries and needs
the undeclared `six`); one is made with `uv` in the temp dir unless --tap-python is given.

    .venv/bin/python bench/tap_xero_compare.py [--invoices 20000] [--speed 60] [--tap-python PATH]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import date, datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from xero_core.commands.sync import connect_via_consent_form  # noqa: E402
from xero_core.fake.app import FakeXero  # noqa: E402
from xero_core.fake.server import serve  # noqa: E402
from xero_core.settings import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, load_settings  # noqa: E402
from xero_core.engine import Engine  # noqa: E402

STREAMS = ("accounts", "contacts", "invoices", "journals")
TODAY = date(2026, 11, 26)

LAUNCHER = textwrap.dedent('''
    """Runs tap-xero unmodified, with requests' URLs pointed at the fake and sleeps scaled."""
    import json, os, sys, time
    import requests

    FAKE, SPEED = os.environ["FAKE_URL"], float(os.environ["CLOCK_SPEED"])
    _send = requests.Session.send

    def send(self, request, **kw):
        for real in ("https://api.xero.com", "https://identity.xero.com"):
            if request.url.startswith(real):
                request.url = FAKE + request.url[len(real):]
        return _send(self, request, **kw)

    requests.Session.send = send
    _sleep = time.sleep
    time.sleep = lambda s: _sleep(max(0.0, s) / SPEED)

    if sys.argv[1] == "--make-catalog":
        from singer.catalog import Catalog, CatalogEntry, Schema
        from singer import metadata
        import tap_xero
        from tap_xero import streams
        cat = Catalog([])
        for st in streams.all_streams:
            if st.tap_stream_id not in sys.argv[2].split(","):
                continue
            schema = tap_xero.load_schema(st.tap_stream_id)
            md = metadata.to_map(tap_xero.load_metadata(st, schema))
            md = metadata.write(md, (), "selected", True)
            cat.streams.append(CatalogEntry(stream=st.tap_stream_id, tap_stream_id=st.tap_stream_id,
                                            key_properties=st.pk_fields, schema=Schema.from_dict(schema),
                                            metadata=metadata.to_list(md)))
        json.dump(cat.to_dict(), sys.stdout)
    else:
        import tap_xero
        sys.argv = ["tap-xero"] + sys.argv[1:]
        tap_xero.main()
''')


class ScaledClock:
    def __init__(self, start: float, speed: float):
        self.start, self.real0, self.speed = start, time.time(), speed

    def time(self) -> float:
        return self.start + (time.time() - self.real0) * self.speed

    def sleep(self, s: float) -> None:
        if s > 0:
            time.sleep(s / self.speed)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), timezone.utc)


def tap_python(given: str | None) -> str:
    if given:
        return given
    venv = Path(tempfile.gettempdir()) / "ledgerlink-tap-xero-venv"
    py = venv / "bin" / "python"
    if not py.exists():
        uv = shutil.which("uv") or "uv"
        subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(venv)], check=True)
        subprocess.run([uv, "pip", "install", "--quiet", "--python", str(py), "tap-xero", "six"], check=True)
    return str(py)


def tap_refresh_token(fake, base: str, scopes: tuple[str, ...]) -> str:
    """tap-xero's own grant, as its users make one: consent, then the code exchange (Basic auth)."""
    redirect = "http://localhost:8501/callback"
    url = f"{base}/identity/connect/authorize?" + urlencode({
        "response_type": "code", "client_id": DEMO_CLIENT_ID, "redirect_uri": redirect,
        "scope": " ".join(scopes), "state": secrets.token_urlsafe(16)})
    back = fake.consent(url)
    code = parse_qs(urlsplit(back).query)["code"][0]
    basic = base64.b64encode(f"{DEMO_CLIENT_ID}:{DEMO_CLIENT_SECRET}".encode()).decode()
    r = httpx.post(f"{base}/connect/token", headers={"Authorization": f"Basic {basic}"},
                   data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect})
    r.raise_for_status()
    return r.json()["refresh_token"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--invoices", type=int, default=20_000)
    ap.add_argument("--speed", type=float, default=60.0, help="fake clock speed-up (1 = real time)")
    ap.add_argument("--tap-python", help="python of a virtualenv with tap-xero and six installed")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="ledgerlink-tapcmp-"))
    clock = ScaledClock(datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc).timestamp(), args.speed)
    fake = FakeXero(seed=42, today=TODAY, clock=clock, invoices=args.invoices, practices=0)
    org = fake.org()
    print(f"fake org: {len(org.invoices):,} invoices, {len(org.contacts):,} contacts, {len(org.journals):,} "
          f"journals; clock x{args.speed:g}", file=sys.stderr)
    py = tap_python(args.tap_python)
    out = {}
    with serve(fake) as server:
        env = {"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp / "data"), "XERO_ENCRYPTION_KEY": secrets.token_hex(32),
               **fake.settings_env(server.url)}
        s = load_settings(env)
        tenants = connect_via_consent_form(s)
        tenant = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")

        # Ledgerlink
        n0, v0, t0 = fake.api_calls(tenant), clock.time(), time.perf_counter()
        res = Engine(s, clock=clock).sync(tenant, only=",".join(STREAMS), trigger="cli")
        out["ledgerlink"] = {
            "ok": res.ok, "api_calls": fake.api_calls(tenant) - n0, "wall_s": round(time.perf_counter() - t0, 1),
            "virtual_min": round((clock.time() - v0) / 60, 1),
            "http_429": sum(1 for r in fake.requests if r.tenant_id == tenant and r.status == 429),
            "calls_by_step": {st.step: st.api_calls for st in res.steps},
            "records": {st.step: st.rows for st in res.steps},
        }

        # tap-xero
        launcher = tmp / "launch_tap_xero.py"
        launcher.write_text(LAUNCHER)
        tenv = {**os.environ, "FAKE_URL": server.url, "CLOCK_SPEED": str(args.speed)}
        catalog = subprocess.run([py, str(launcher), "--make-catalog", ",".join(STREAMS)], env=tenv,
                                 capture_output=True, text=True, check=True).stdout
        (tmp / "catalog.json").write_text(catalog)
        (tmp / "config.json").write_text(json.dumps({
            "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET, "tenant_id": tenant,
            "refresh_token": tap_refresh_token(fake, server.url, s.scopes), "start_date": "2000-01-01T00:00:00Z"}))
        c429 = sum(1 for r in fake.requests if r.tenant_id == tenant and r.status == 429)
        n0, v0, t0 = fake.api_calls(tenant), clock.time(), time.perf_counter()
        proc = subprocess.Popen([py, str(launcher), "--config", str(tmp / "config.json"), "--catalog",
                                 str(tmp / "catalog.json")], env=tenv, stdout=subprocess.PIPE,
                                stderr=open(tmp / "tap.log", "w"), text=True)
        records: dict[str, int] = {}
        assert proc.stdout is not None  # PIPE
        for line in proc.stdout:
            if line.startswith('{"type": "RECORD"') or '"type": "RECORD"' in line[:40]:
                stream = json.loads(line).get("stream")
                records[stream] = records.get(stream, 0) + 1
        proc.wait()
        out["tap-xero"] = {
            "ok": proc.returncode == 0, "api_calls": fake.api_calls(tenant) - n0,
            "wall_s": round(time.perf_counter() - t0, 1), "virtual_min": round((clock.time() - v0) / 60, 1),
            "http_429": sum(1 for r in fake.requests if r.tenant_id == tenant and r.status == 429) - c429,
            "records": records, "log": str(tmp / "tap.log"),
        }
    print(json.dumps(out, indent=2))
    ll, tx = out["ledgerlink"], out["tap-xero"]
    print(f"\n{'':<12}{'ok':>5}{'API calls':>11}{'429s':>6}{'wall s':>9}{'virtual min':>13}", file=sys.stderr)
    for name, r in (("ledgerlink", ll), ("tap-xero", tx)):
        print(f"{name:<12}{str(r['ok']):>5}{r['api_calls']:>11}{r['http_429']:>6}{r['wall_s']:>9}{r['virtual_min']:>13}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
