"""Response shapes Xero uses outside the accounting envelope: problem JSON, plain 404, OAuth errors.

Every fake module answers with a `Reply` (status, headers, body bytes); `app.py` turns it into an
httpx.Response and adds the headers every Xero response carries.
"""
from __future__ import annotations

import json
from typing import Any, NamedTuple

NOT_FOUND_TEXT = "The resource you're looking for cannot be found"
JSON_CT = "application/json; charset=utf-8"
XML_CT = "text/xml; charset=utf-8"
HTML_CT = "text/html; charset=utf-8"
TEXT_CT = "text/plain; charset=utf-8"


class Reply(NamedTuple):
    status: int
    headers: dict[str, Any]
    body: bytes


def json_reply(status: int, payload: Any, headers: dict[str, Any] | None = None) -> Reply:
    h = {"Content-Type": JSON_CT}
    h.update(headers or {})
    return Reply(status, h, json.dumps(payload, separators=(",", ":")).encode())


def problem(status: int, detail: str, correlation_id: str, *, www_authenticate: str | None = None) -> Reply:
    """The gateway's 401/403/503 body (xero-notes §3): same shape for every API."""
    title = {401: "Unauthorized", 403: "Forbidden", 503: "Service Unavailable", 500: "Internal Server Error"}.get(status, "Error")
    body: dict[str, Any] = {"Type": None, "Title": title, "Status": status, "Detail": detail, "Instance": correlation_id, "Extensions": {}}
    headers = {"WWW-Authenticate": www_authenticate} if www_authenticate else None
    return json_reply(status, body, headers)


def not_found() -> Reply:
    return Reply(404, {"Content-Type": TEXT_CT}, NOT_FOUND_TEXT.encode())


def oauth_error(error: str, description: str | None = None, status: int = 400) -> Reply:
    body = {"error": error}
    if description:
        body["error_description"] = description
    return json_reply(status, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})


def html(status: int, text: str, headers: dict[str, Any] | None = None) -> Reply:
    h = {"Content-Type": HTML_CT}
    h.update(headers or {})
    return Reply(status, h, text.encode())


def redirect(location: str) -> Reply:
    return Reply(302, {"Location": location, "Content-Type": TEXT_CT}, b"")
