"""Paginators as objects. Each yields the records of one page at a time, with its size in bytes.

Rules from real Xero (xero-notes §3/§4): page numbers start at 1; paging stops at a short page
(the `pagination` object is not always there); Journals page by `offset` = the last JournalNumber
seen, 100 at a time, ascending.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .context import checkpoint


@dataclass
class Page:
    records: list[dict]
    nbytes: int
    number: int


def _records(resp, collection: str) -> list[dict]:
    body = resp.json()
    if isinstance(body, dict):
        return list(body.get(collection) or [])
    return []


def _nbytes(resp) -> int:
    return len(resp.content or b"")


@dataclass(frozen=True)
class SinglePage:
    def pages(self, client, path: str, collection: str, params: dict, headers: dict, start: Any = None) -> Iterator[Page]:
        checkpoint(f"{collection}:page:1")
        resp = client.request("GET", path, params=dict(params), headers=headers)
        yield Page(_records(resp, collection), _nbytes(resp), 1)


@dataclass(frozen=True)
class PagePager:
    page_size: int = 1000

    def pages(self, client, path: str, collection: str, params: dict, headers: dict, start: Any = None) -> Iterator[Page]:
        page = 1
        while True:
            checkpoint(f"{collection}:page:{page}")
            resp = client.request("GET", path, params={**params, "page": page, "pageSize": self.page_size},
                                  headers=headers)
            records = _records(resp, collection)
            yield Page(records, _nbytes(resp), page)
            body = resp.json()
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
            resp = client.request("GET", path, params={**params, "offset": offset}, headers=headers)
            records = _records(resp, collection)
            yield Page(records, _nbytes(resp), n)
            if len(records) < self.page_size:
                break
            last = max(int(r.get(self.field) or 0) for r in records)
            if last <= offset:  # a server that ignores offset would loop forever
                break
            offset = last
            n += 1
