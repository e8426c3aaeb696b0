"""Mock mode's "Send a test event": the fake Xero signs a webhook delivery and POSTs it to this app's
real webhook route, as Xero does, so a trainer sees an event arrive without curl.

The app only asks the fake's admin route (`POST /_fake/webhooks/deliver`); signing, the delivery and
its answer are the fake's and the receiver's own code, as with real Xero.
"""
from __future__ import annotations

from collections import Counter

import httpx

from xero_core.errors import LedgerlinkError
from xero_core.practice.webhooks import get_webhook_key
from xero_core.settings import Settings

from .webhook_route import PATH


def send_test_event(settings: Settings, *, transport: httpx.BaseTransport | None = None) -> str:
    """Ask the fake to deliver a signed batch (the changes it has queued, else two contacts and two
    invoices of its organisation) to this app; returns what happened, in a sentence."""
    key = get_webhook_key(settings)
    if not key:
        raise LedgerlinkError("Save a webhook key in step 2 first: in mock mode any text will do, and the fake "
                              "Xero signs with it as Xero signs with the key it shows you.")
    receiver = settings.app_url.rstrip("/") + PATH
    try:
        with httpx.Client(transport=transport, timeout=30) as http:
            r = http.post(settings.api_url.rstrip("/") + "/_fake/webhooks/deliver", json={"url": receiver, "key": key})
    except httpx.HTTPError:
        raise LedgerlinkError(f"The fake Xero at {settings.api_url} did not answer, so no event was sent. "
                              "Start it with `bash scripts/demo` and try again.") from None
    if r.status_code >= 400:
        raise LedgerlinkError(f"The fake Xero refused to send a test event (HTTP {r.status_code}): "
                              f"{r.text[:200]}")
    doc = r.json()
    answer = (doc.get("answers") or [{}])[0]
    events = [e for p in doc.get("payloads") or [] for e in p.get("events") or []]
    kinds = Counter(str(e.get("eventCategory") or "").lower() for e in events)
    what = " and ".join(f"{n} {k.replace('creditnote', 'credit note')} event{'s' if n != 1 else ''}"
                        for k, n in sorted(kinds.items())) or "an event"
    if answer.get("ok"):
        return (f"The fake Xero signed {what} and posted them to {receiver}; this app answered 200. They are "
                "processed within a few seconds: see Recent events below.")
    if answer.get("error"):
        raise LedgerlinkError(f"The fake Xero could not reach this app at {receiver} ({answer['error']}): "
                              "check XERO_APP_URL.")
    raise LedgerlinkError(f"The fake Xero posted {what} to {receiver}, and this app answered HTTP "
                          f"{answer.get('status')}, not 200: see Last refused delivery above.")
