"""Paginators as objects. Each yields the records of one page at a time, with its size in bytes.

Rules from real Xero (xero-notes §3/§4): page numbers start at 1; paging stops at a short page
(the `pagination` object is not always there); Journals page by `offset` = the last JournalNumber
seen, 100 at a time, ascending.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import orjson

from ..errors import RetriableError
from .context import checkpoint

BAD_BODY_RETRIES = 2


@dataclass
class Page:
    records: list[dict]
    nbytes: int
    number: int


def get_json(client, path: str, params: dict | None = None, headers: dict | None = None) -> tuple[Any, int]:
    """GET and decode, retrying a body cut short or garbled on the way (a proxy's error page, a
    dropped connection); returns (document, bytes received)."""
    for attempt in range(BAD_BODY_RETRIES + 1):
        resp = client.request("GET", path, params=params, headers=headers)
        try:
            return orjson.loads(resp.content), len(resp.content or b"")
        except orjson.JSONDecodeError:
            if attempt == BAD_BODY_RETRIES:
                raise RetriableError(
                    f"Xero's answer was not valid JSON {BAD_BODY_RETRIES + 1} times in a row "
                    f"(HTTP {resp.status_code}, {len(resp.content or b'')} bytes); try again later.",
                    method="GET", endpoint=path, status=resp.status_code,
                    correlation_id=resp.headers.get("xero-correlation-id")) from None
    raise AssertionError("unreachable")


def _records(body: Any, collection: str) -> list[dict]:
    if isinstance(body, dict):
        return list(body.get(collection) or [])
    return []


@dataclass(frozen=True)
class SinglePage:
    def pages(self, client, path: str, collection: str, params: dict, headers: dict, start: Any = None) -> Iterator[Page]:
        checkpoint(f"{collection}:page:1")
        body, nbytes = get_json(client, path, dict(params), headers)
        yield Page(_records(body, collection), nbytes, 1)


@dataclass(frozen=True)
class PagePager:
    page_size: int = 1000

    def pages(self, client, path: str, collection: str, params: dict, headers: dict, start: Any = None) -> Iterator[Page]:
        page = 1
        while True:
            checkpoint(f"{collection}:page:{page}")
            body, nbytes = get_json(client, path, {**params, "page": page, "pageSize": self.page_size}, headers)
            records = _records(body, collection)
            yield Page(records, nbytes, page)
            pagination = body.get("pagination") if isinstance(body, dict) else None
            if len(records) < self.page_size:
                break
            if pagination and pagination.get("pageCount") and page >= int(pagination["pageCount"]):
                break
            page += 1


@dataclass(frozen=True)
class OffsetPager:
    field: str = "JournalNumber"
    page_size: int = 100

    def pages(self, client, path: str, collection: str, params: dict, headers: dict, start: Any = None) -> Iterator[Page]:
        offset = int(start or 0)
        n = 1
        while True:
            checkpoint(f"{collection}:offset:{offset}")
            body, nbytes = get_json(client, path, {**params, "offset": offset}, headers)
            records = _records(body, collection)
            yield Page(records, nbytes, n)
            if len(records) < self.page_size:
                break
            last = max(int(r.get(self.field) or 0) for r in records)
            if last <= offset:  # a server that ignores offset would loop forever
                break
            offset = last
            n += 1
