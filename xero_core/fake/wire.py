"""Xero's accounting JSON wire format, as recorded from the real API (xero-notes §3).

- Dates: `"\\/Date(1563753600000+0000)\\/"` with the slash JSON-escaped; date-only values are
  midnight UTC; the envelope's DateTimeUTC has no offset.
- Money: numbers with exactly 2 decimals (`89.00`); Quantity 4 dp, CurrencyRate 6 dp.
- Envelope: `{Id, Status, ProviderName, DateTimeUTC, [pagination], <Plural>: [...]}`.

The stdlib encoder cannot write `89.00` as a number or escape slashes, so values are built as
marker strings and rewritten once over the encoded text: fast (C encoder + one regex pass) and
exact (the number text comes from integer cents, never a float).
"""
from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape as xml_escape

_NUM = "\ue000"      # private-use marker: "\ue000" + number text -> bare JSON number
_DATE = "\ue001"     # marker + epoch ms [+ "+0000"] -> "\/Date(...)\/"
_NUM_RE = re.compile('"\ue000(-?[0-9]+(?:\\.[0-9]+)?)"')
_DATE_RE = re.compile('"\ue001(-?[0-9]+(?:\\+0000)?)"')

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def money(cents: int) -> str:
    """2-dp JSON number from integer cents."""
    sign = "-" if cents < 0 else ""
    q, r = divmod(abs(cents), 100)
    return f"{_NUM}{sign}{q}.{r:02d}"


def money_text(cents: int) -> str:
    """The same value as a plain string (report cells)."""
    sign = "-" if cents < 0 else ""
    q, r = divmod(abs(cents), 100)
    return f"{sign}{q}.{r:02d}"


def number(value: int | Decimal, dp: int) -> str:
    return f"{_NUM}{Decimal(value):.{dp}f}"


def ms(dt: datetime | date) -> int:
    if not isinstance(dt, datetime):
        dt = datetime(dt.year, dt.month, dt.day, tzinfo=timezone.utc)
    delta = dt - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def msdate(value: datetime | date, offset: bool = True) -> str:
    """`\\/Date(ms+0000)\\/` once encoded. Dates are midnight UTC."""
    return f"{_DATE}{ms(value)}{'+0000' if offset else ''}"


def date_string(value: date) -> str:
    """DateString / DueDateString: `2019-07-22T00:00:00`."""
    return f"{value:%Y-%m-%d}T00:00:00"


def encode(payload: Any) -> bytes:
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    text = _NUM_RE.sub(r"\1", text)
    text = _DATE_RE.sub(r'"\\/Date(\1)\\/"', text)
    return text.encode("utf-8")


def envelope(plural: str, items: list[Any], now: datetime, *, provider: str, pagination: dict[str, Any] | None = None,
             correlation_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"Id": correlation_id or str(uuid.uuid4()), "Status": "OK", "ProviderName": provider,
            "DateTimeUTC": msdate(now, offset=False)}
    if pagination is not None:
        body["pagination"] = pagination
    body[plural] = items
    return body


def pagination(page: int, page_size: int, item_count: int) -> dict[str, Any]:
    page_count = (item_count + page_size - 1) // page_size
    return {"page": page, "pageSize": page_size, "pageCount": page_count, "itemCount": item_count}


def validation_error(message: str, elements: list[Any] | None = None, *, error_number: int = 10,
                     type_: str = "ValidationException") -> dict[str, Any]:
    return {"ErrorNumber": error_number, "Type": type_, "Message": message, "Elements": elements or []}


# ---- XML (Xero's default when Accept does not ask for JSON) ---------------------------------

_IRREGULAR = {"Addresses": "Address", "Tracking": "TrackingCategory", "TrackingCategories": "TrackingCategory", "Statuses": "Status",
              "Options": "Option", "Attributes": "Attribute", "Cells": "Cell", "Rows": "Row", "Fields": "Field",
              "ReportTitles": "ReportTitle", "Warnings": "Warning", "ValidationErrors": "ValidationError"}


def _singular(name: str) -> str:
    if name in _IRREGULAR:
        return _IRREGULAR[name]
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") else name


def _xml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str) and v.startswith(_NUM):
        return v[1:]
    if isinstance(v, str) and v.startswith(_DATE):
        n = int(v[1:].split("+")[0])
        return datetime.fromtimestamp(n / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return xml_escape(str(v))


def _xml(name: str, v: Any, out: list[Any]) -> None:
    if v is None:
        return
    if isinstance(v, dict):
        out.append(f"<{name}>")
        for k, x in v.items():
            _xml(k, x, out)
        out.append(f"</{name}>")
    elif isinstance(v, list):
        out.append(f"<{name}>")
        for x in v:
            _xml(_singular(name), x, out)
        out.append(f"</{name}>")
    else:
        out.append(f"<{name}>{_xml_value(v)}</{name}>")


def encode_xml(payload: dict[str, Any], root: str = "Response") -> bytes:
    """A minimal rendering of the same payload as Xero's XML (`<Response>` root, plural lists of
    singular elements, ISO dates). Enough for a caller that forgot `Accept: application/json`
    to see what it got; the product always asks for JSON."""
    out = [f'<{root} xmlns:i="http://www.w3.org/2001/XMLSchema-instance">']
    for k, v in payload.items():
        if k == "pagination":
            continue
        _xml(k, v, out)
    out.append(f"</{root}>")
    return "".join(out).encode("utf-8")
