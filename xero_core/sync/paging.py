"""Paging: `pages(client, resource, headers, start)` yields a resource's records one page at a time,
with its size in bytes (how it pages follows from its declaration in sync/resources.py).

Rules from real Xero (xero-notes §3/§4): page numbers start at 1; paging stops at a short page
(the `pagination` object is not always there); Journals page by `offset` = the last JournalNumber
seen, 100 at a time, ascending.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from ..client import request_json
from .context import checkpoint


@dataclass
class Page:
    records: list[dict[str, Any]]
    nbytes: int
    number: int


def get_json(client: Any, path: str, params: dict[str, Any] | None = None, headers: dict[str, Any] | None = None) -> tuple[Any, int]:
    """GET and decode through the client's one JSON reading (which asks again for a body garbled on
    the way); returns (document, bytes received)."""
    return request_json(client, "GET", path, params=params, headers=headers)


def _records(body: Any, collection: str) -> list[dict[str, Any]]:
    if isinstance(body, dict):
        return list(body.get(collection) or [])
    return []


def pages(client: Any, resource: Any, headers: dict[str, Any], start: Any = None) -> Iterator[Page]:
    """The pages of `resource` (sync/resources.py): one page when it has no page size; by `offset`
    from `start` for an Offset cursor; else by page number."""
    if resource.page_size is None:
        return _single(client, resource, headers)
    if resource.cursor is not None and resource.cursor.per_chunk:
        return _by_offset(client, resource, headers, start)
    return _numbered(client, resource, headers)


def _single(client: Any, resource: Any, headers: dict[str, Any]) -> Iterator[Page]:
    checkpoint(f"{resource.collection}:page:1")
    body, nbytes = get_json(client, resource.path, dict(resource.params), headers)
    yield Page(_records(body, resource.collection), nbytes, 1)


def _numbered(client: Any, resource: Any, headers: dict[str, Any]) -> Iterator[Page]:
    page, size = 1, resource.page_size
    while True:
        checkpoint(f"{resource.collection}:page:{page}")
        body, nbytes = get_json(client, resource.path, {**resource.params, "page": page, "pageSize": size}, headers)
        records = _records(body, resource.collection)
        yield Page(records, nbytes, page)
        pagination = body.get("pagination") if isinstance(body, dict) else None
        if len(records) < size:
            break
        if pagination and pagination.get("pageCount") and page >= int(pagination["pageCount"]):
            break
        page += 1


def _by_offset(client: Any, resource: Any, headers: dict[str, Any], start: Any) -> Iterator[Page]:
    offset, n, field = int(start or 0), 1, resource.cursor.field
    while True:
        checkpoint(f"{resource.collection}:offset:{offset}")
        body, nbytes = get_json(client, resource.path, {**resource.params, "offset": offset}, headers)
        records = _records(body, resource.collection)
        yield Page(records, nbytes, n)
        if len(records) < resource.page_size:
            break
        last = max(int(r.get(field) or 0) for r in records)
        if last <= offset:  # a server that ignores offset would loop forever
            break
        offset = last
        n += 1
