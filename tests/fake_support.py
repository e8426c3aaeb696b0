"""Helpers shared by the fake Xero's own tests (tests/test_fake_*.py)."""
from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
# Imported here, not when the first response is validated: building its URI grammar takes 3-4 s of
# CPU, which on a loaded machine ran past a loopback request's 10 s timeout inside the fake's
# server thread (test_fake_server's consent flow timed out at load 30).
import jsonschema

from xero_core.fake import FakeClock, FakeXero
from xero_core.settings import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

REDIRECT = "http://localhost:8501/callback"
SCOPES = ("openid profile email offline_access accounting.settings.read accounting.contacts.read "
          "accounting.invoices.read accounting.journals.read files practicemanager")


def make_fake(**kw) -> FakeXero:
    """A fake on a FakeClock with a small real ledger (about 250 invoices: builds in ~50 ms).

    Every Files and identity JSON response it serves (in-process or through the loopback server)
    is validated against Xero's spec on the way out; `fake.validated` lists (method, spec path)."""
    kw.setdefault("clock", FakeClock())
    kw.setdefault("invoices", 50)
    fake = FakeXero(**kw)
    served = fake.handle
    fake.validated = []

    def handle(request: httpx.Request) -> httpx.Response:
        response = served(request)
        checked = validate_served(request, response)
        if checked:
            fake.validated.append(checked)
        return response

    fake.handle = handle
    return fake


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(base="http://fake.test", scope=SCOPES, client_id=DEMO_CLIENT_ID, redirect_uri=REDIRECT,
                  state="st-123", challenge=None, **extra) -> str:
    q = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scope, "state": state}
    if challenge:
        q.update(code_challenge=challenge, code_challenge_method="S256")
    q.update(extra)
    return f"{base}/identity/connect/authorize?{urlencode(q)}"


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def connect(fake: FakeXero, scope: str = SCOPES, tenant_ids=None, client: httpx.Client | None = None,
            base: str = "http://fake.test") -> dict:
    """Consent (the real HTML form) + code exchange with PKCE, as the product does; returns the token set."""
    from xero_core.fake.consent import drive_consent

    verifier, challenge = pkce_pair()
    client = client or httpx.Client(transport=fake.transport())
    redirect = drive_consent(client, authorize_url(base, scope=scope, challenge=challenge), tenant_ids=tenant_ids)
    code = query_of(redirect)["code"]
    r = client.post(f"{base}/connect/token", data={"grant_type": "authorization_code", "code": code,
                                                  "redirect_uri": REDIRECT, "code_verifier": verifier},
                    auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET))
    assert r.status_code == 200, r.text
    return r.json()


def api(fake: FakeXero, token: str, path: str, tenant_id: str | None, method: str = "GET", **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **kw.pop("headers", {})}
    if tenant_id:
        headers["xero-tenant-id"] = tenant_id
    with httpx.Client(transport=fake.transport(), base_url="http://fake.test") as c:
        return c.request(method, path, headers=headers, **kw)


# ---- validating served JSON against Xero's own OpenAPI specs ------------------------------------
import copy
import functools
import json

from xero_reference import OPENAPI

SPEC_DIR = OPENAPI


@functools.lru_cache(maxsize=None)
def load_spec(name: str) -> dict:
    import yaml

    spec = yaml.safe_load((SPEC_DIR / name).read_text())
    schemas = spec.get("components", {}).get("schemas", {})
    # QUIRKS.md: template leftovers in `required` that no real payload satisfies.
    if name == "xero_files.yaml":
        schemas["Folder"].pop("required", None)
        schemas["FileObject"].pop("required", None)
    return spec


def response_schema(spec_name: str, path: str, method: str, status: int) -> dict:
    spec = load_spec(spec_name)
    resp = spec["paths"][path][method.lower()]["responses"][str(status)]
    schema = copy.deepcopy(resp["content"]["application/json"]["schema"])
    schema["components"] = spec["components"]
    return schema


@functools.lru_cache(maxsize=None)
def _validator(spec_name: str, path: str, method: str, status: int):
    schema = response_schema(spec_name, path, method, status)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker(formats=("uuid",)))


def validate_response(spec_name: str, path: str, method: str, response: httpx.Response) -> None:
    """Raise jsonschema.ValidationError if the served JSON breaks Xero's schema for that operation."""
    _validator(spec_name, path, method.lower(), response.status_code).validate(json.loads(response.content))


SPEC_PREFIXES = (("xero_files.yaml", "/files.xro/1.0"), ("xero-identity.yaml", ""))


@functools.lru_cache(maxsize=None)
def _routes(spec_name: str, prefix: str) -> list:
    import re

    out = []
    for p, ops in load_spec(spec_name)["paths"].items():
        pattern = "[^/]+".join(re.escape(part) for part in re.split(r"\{[^}]+\}", p))
        rx = re.compile("^" + re.escape(prefix) + pattern + "/?$", re.I)
        out.append(("{" in p, rx, p, ops))
    return sorted(out, key=lambda r: r[0])  # literal paths (/Associations/Count) before templates


def validate_served(request: httpx.Request, response: httpx.Response) -> tuple[str, str] | None:
    """Validate a served JSON response against the operation's schema, if the spec has one."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return None
    method = request.method.lower()
    for spec_name, prefix in SPEC_PREFIXES:
        for _, rx, p, ops in _routes(spec_name, prefix):
            if rx.match(request.url.path) and method in ops:
                content = ops[method].get("responses", {}).get(str(response.status_code), {}).get("content", {})
                if "schema" not in content.get("application/json", {}):
                    return None
                validate_response(spec_name, p, method, response)
                return (request.method, p)
    return None
