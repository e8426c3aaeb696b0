"""Marks of what a fetch returned, so a day with nothing new in Xero skips the database.

An incremental fetch asks Xero for records modified since a second before the cursor, truncated to
the second (Xero compares at second precision), so with nothing changed it still hands back the
records updated in that last second or so. A whole-list fetch (the chart of accounts) hands back
everything. Writing them again would change nothing, but finding that out costs a transaction and
a comparison against stored rows: the largest part of a quiet daily sync's CPU.

A mark is a digest of those records' JSON (`Edge` follows an incremental fetch; `Whole` a whole list), independent of their order. A step saves the mark of what
the next unchanged fetch would return in the same transaction as its cursor; when the next fetch
returns exactly the records the mark was made of, nothing has changed since, and the step writes
nothing. Any difference, in any field, in the count, in the order of pages, means the normal write
path, which compares versions row by row. Pure functions; no I/O.
"""
from __future__ import annotations

from typing import Any

import hashlib
import json
from datetime import datetime, timedelta

from .transforms import parse_xero_datetime


def key(resource: str) -> str:
    """The sync_cursors resource holding `resource`'s mark (read with the cursors, in one query)."""
    return f"{resource}#mark"


def refetch_from(since: datetime) -> datetime:
    """The time an incremental fetch from cursor `since` asks for (If-Modified-Since): a second
    back, so an edit in the cursor's own second is fetched again, truncated to Xero's precision."""
    return (since - timedelta(seconds=1)).replace(microsecond=0)


def _one(record: dict[str, Any]) -> bytes:
    return hashlib.blake2b(json.dumps(record, sort_keys=True, separators=(",", ":"), default=str).encode(),
                           digest_size=16).digest()


def digest(records: list[dict[str, Any]]) -> str:
    return hashlib.blake2b(b"".join(sorted(_one(r) for r in records)), digest_size=16).hexdigest()


class Edge:
    """Follows an incremental fetch page by page. Keeps only the records an unchanged fetch from
    the newest time seen would return again (a few: memory stays flat on a backfill)."""

    PRUNE_AT = 256

    def __init__(self) -> None:
        self.newest: datetime | None = None
        self.seen = 0
        self._kept: list[tuple[datetime, dict[str, Any]]] = []

    def see(self, records: list[dict[str, Any]]) -> None:
        for r in records:
            self.seen += 1
            t = parse_xero_datetime(r.get("UpdatedDateUTC"))
            if t is None:
                continue  # never returned by If-Modified-Since alone: it keeps `unchanged` false
            if self.newest is None or t > self.newest:
                self.newest = t
            if t >= refetch_from(self.newest):
                self._kept.append((t, r))
        if len(self._kept) > self.PRUNE_AT:
            self._kept = self._edge()

    def _edge(self) -> list[tuple[datetime, dict[str, Any]]]:
        if self.newest is None:
            return []
        start = refetch_from(self.newest)
        return [(t, r) for t, r in self._kept if t >= start]

    def mark(self) -> str | None:
        """The mark to save with the cursor at `newest`: what a fetch from it returns if nothing changes."""
        edge = self._edge()
        return digest([r for _, r in edge]) if edge else None

    @property
    def complete(self) -> bool:
        """Everything fetched lies at the edge (so a mark equal to the held one means nothing moved)."""
        return bool(self.seen) and len(self._edge()) == self.seen

    def unchanged(self, held: str | None) -> bool:
        """True when everything fetched is exactly what `held` was made of."""
        return bool(held) and self.complete and self.mark() == held


class Whole:
    """The mark of a whole list (the chart of accounts): everything fetched, by digest only."""

    def __init__(self) -> None:
        self.seen = 0
        self._parts: list[bytes] = []

    def see(self, records: list[dict[str, Any]]) -> None:
        self.seen += len(records)
        self._parts += [_one(r) for r in records]

    def mark(self) -> str:
        return hashlib.blake2b(b"".join(sorted(self._parts)), digest_size=16).hexdigest()

    complete = True  # a whole list is all edge: the same mark means the same list

    def unchanged(self, held: str | None) -> bool:
        return bool(held) and self.mark() == held
