"""Complete the consent page the way a browser does: GET the page, read its form, tick boxes,
press a button, follow nothing but the redirect. Works over any `Request -> Response` callable
(the fake in-process) or an httpx.Client (the loopback server), so tests exercise the real HTML.
"""
from __future__ import annotations

from html.parser import HTMLParser
from typing import Callable, Iterable
from urllib.parse import urlencode, urljoin

import httpx


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.hidden: list[tuple[str, str]] = []
        self.boxes: list[tuple[str, str, bool]] = []  # name, value, checked
        self.buttons: list[tuple[str, str]] = []
        self.alerts: list[str] = []
        self._in_alert = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}  # `<input checked>`: an attribute without a value reads as ""
        if tag == "form" and self.action is None:
            self.action, self.method = a.get("action", ""), (a.get("method") or "get").lower()
        elif tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind == "hidden":
                self.hidden.append((a.get("name", ""), a.get("value", "")))
            elif kind == "checkbox":
                self.boxes.append((a.get("name", ""), a.get("value", "on"), "checked" in a))
        elif tag == "button" and (a.get("type") or "submit") == "submit":
            self.buttons.append((a.get("name", ""), a.get("value", "")))
        elif a.get("role") == "alert":
            self._in_alert = True

    def handle_endtag(self, tag: str) -> None:
        self._in_alert = False

    def handle_data(self, data: str) -> None:
        if self._in_alert and data.strip():
            self.alerts.append(data.strip())


class ConsentError(RuntimeError):
    """The consent page could not be completed (an error page, or no such tenant offered)."""


def drive_consent(send: Callable[[httpx.Request], httpx.Response] | httpx.Client, authorize_url: str, *,
                  allow: bool = True, tenant_ids: Iterable[str] | None = None) -> str:
    """Returns the redirect URL (with code/state, or error=...)."""
    do = send.send if isinstance(send, httpx.Client) else send
    page = do(httpx.Request("GET", authorize_url))
    if page.status_code in (301, 302, 303):
        return page.headers["location"]  # refused before consent (invalid_scope, ...)
    form = _Form()
    form.feed(page.text)
    if page.status_code != 200 or form.action is None:
        raise ConsentError(f"consent page answered HTTP {page.status_code}: {' '.join(form.alerts) or page.text[:200]}")
    offered = [v for _, v, _ in form.boxes]
    if tenant_ids is None:
        chosen = [v for _, v, checked in form.boxes if checked]
    else:
        chosen = list(tenant_ids)
        missing = [t for t in chosen if t not in offered]
        if missing:
            raise ConsentError(f"tenant(s) {missing} are not offered on the consent page (offered: {offered})")
    fields = list(form.hidden) + [(n, v) for n, v, _ in form.boxes if v in chosen]
    wanted = "allow" if allow else "deny"
    button = next(((n, v) for n, v in form.buttons if v == wanted), None)
    if button is None:
        raise ConsentError(f"the consent page has no {wanted!r} button")
    fields.append(button)
    resp = do(httpx.Request("POST", urljoin(authorize_url, form.action),
                            headers={"Content-Type": "application/x-www-form-urlencoded"},
                            content=urlencode(fields).encode()))
    if resp.status_code in (301, 302, 303):
        return resp.headers["location"]
    again = _Form()
    again.feed(resp.text)
    raise ConsentError(f"consent form answered HTTP {resp.status_code}: {' '.join(again.alerts) or resp.text[:200]}")
