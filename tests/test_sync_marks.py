"""xero_core.sync.marks: what an unchanged fetch returns, recognised without the database."""
from __future__ import annotations

from datetime import datetime, timezone

from xero_core.sync import marks


def rec(i: int, at: str, **extra) -> dict:
    return {"ContactID": f"c-{i}", "Name": f"Contact {i}", "UpdatedDateUTC": at, **extra}


def test_refetch_from_steps_back_a_second_across_year_month_and_leap_day_boundaries():
    utc = timezone.utc
    assert marks.refetch_from(datetime(2027, 1, 1, 0, 0, 0, 400_000, tzinfo=utc)) == datetime(2026, 12, 31, 23, 59, 59, tzinfo=utc)
    assert marks.refetch_from(datetime(2028, 3, 1, 0, 0, 0, tzinfo=utc)) == datetime(2028, 2, 29, 23, 59, 59, tzinfo=utc)
    assert marks.refetch_from(datetime(2026, 11, 30, 23, 59, 59, 999_999, tzinfo=utc)) == \
        datetime(2026, 11, 30, 23, 59, 58, tzinfo=utc)


def test_the_digest_ignores_order_and_sees_any_field():
    a, b = rec(1, "2026-11-26T09:00:00"), rec(2, "2026-11-26T09:00:00")
    assert marks.digest([a, b]) == marks.digest([b, a])
    assert marks.digest([a, b]) != marks.digest([a, dict(b, Name="Contact 2 Ltd")])
    assert marks.digest([a, b]) != marks.digest([a, b, b]), "a record twice is not the same fetch"


def test_an_edge_is_what_an_unchanged_fetch_returns_again():
    first = marks.Edge()
    older = [rec(i, f"2026-11-25T10:{i:02d}:00") for i in range(30)]
    edge = [rec(100, "/Date(1795687200500+0000)/"), rec(101, "2026-11-26T10:00:00.0000000")]  # 10:00:00.5 and 10:00:00
    first.see(older[:15])
    first.see(older[15:] + edge)  # two pages
    held = first.mark()
    assert held == marks.digest(edge), "only the records an If-Modified-Since from the newest returns"

    quiet = marks.Edge()
    quiet.see(list(reversed(edge)))
    assert quiet.unchanged(held)

    new_in_same_second = marks.Edge()
    new_in_same_second.see(edge + [rec(102, "2026-11-26T10:00:00.2500000")])
    assert not new_in_same_second.unchanged(held)

    with_an_older_one = marks.Edge()  # an older record returned too: something moved
    with_an_older_one.see(edge + [older[0]])
    assert not with_an_older_one.unchanged(held)

    no_time = marks.Edge()
    no_time.see(edge + [{"ContactID": "x"}])
    assert not no_time.unchanged(held)
    assert not marks.Edge().unchanged(held) and not quiet.unchanged(None)


def test_an_edge_keeps_few_records_on_a_backfill():
    e = marks.Edge()
    for page in range(100):  # 10,000 records, one a second, in pages of 100
        e.see([rec(page * 100 + i, datetime.fromtimestamp(1764000000 + page * 100 + i, timezone.utc)
                   .strftime("%Y-%m-%dT%H:%M:%S")) for i in range(100)])
    assert e.seen == 10_000 and len(e._kept) <= marks.Edge.PRUNE_AT + 100
    assert e.mark() == marks.digest([rec(9998, "2025-11-24T18:46:38"), rec(9999, "2025-11-24T18:46:39")])
