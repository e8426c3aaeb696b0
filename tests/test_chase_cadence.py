"""Chase cadence arithmetic, pinned: calendar days in the practice's time zone at the opening's time of
day, weekends and quiet hours moved to the next sending window, across DST changes and the year end."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from xero_core.practice.chase import ChaseError, Window, latest_slot, parse_cadence, schedule, slot_time

SYD = ZoneInfo("Australia/Sydney")
UTC = timezone.utc


def syd(*a) -> datetime:
    return datetime(*a, tzinfo=SYD)


def local(dts):
    return [d.astimezone(SYD).strftime("%a %Y-%m-%d %H:%M") for d in dts]


def test_default_cadence_is_at_once_3_7_14_then_weekly():
    c = parse_cadence(None)
    assert [c.days(k) for k in range(7)] == [0, 3, 7, 14, 21, 28, 35]
    assert c.words() == "at once, then 3, 7, 14 days, then weekly"
    assert parse_cadence("at once, 2 and 5 days, then every 10").text() == "0, 2, 5, then every 10"
    assert parse_cadence("1, 4").days(2) is None  # no repeat: the cadence ends
    for bad, words in (("3, 1", "go up"), ("", None), ("0, soon", "not a number"), ("then every 7, 3", "comes last"),
                       ("0, every 400", "1 to 90")):
        if words is None:
            continue
        with pytest.raises(ChaseError, match=words):
            parse_cadence(bad)


def test_weekdays_and_quiet_hours_in_sydney():
    w = Window.of("09:00", "17:00", "Australia/Sydney")
    # Opened Thursday 10 Dec 2026 at 16:30: at once; +3 = Sunday -> Monday 09:00; +7 = Thursday 16:30;
    # +14 = Thursday 16:30; weekly after.
    got = local(schedule(syd(2026, 12, 10, 16, 30), parse_cadence(None), w, 5))
    assert got == ["Thu 2026-12-10 16:30", "Mon 2026-12-14 09:00", "Thu 2026-12-17 16:30", "Thu 2026-12-24 16:30",
                   "Thu 2026-12-31 16:30"]
    # Opened Friday at 19:00 (quiet): the first reminder waits for Monday 09:00.
    assert local([slot_time(syd(2026, 12, 11, 19, 0), 0, w)]) == ["Mon 2026-12-14 09:00"]
    # Early morning: the same day at 09:00.
    assert local([slot_time(syd(2026, 12, 9, 6, 15), 0, w)]) == ["Wed 2026-12-09 09:00"]


def test_year_end():
    w = Window.of("09:00", "17:00", "Australia/Sydney")
    # Wednesday 30 Dec 2026 11:00: +3 = Saturday 2 Jan 2027 -> Monday 4 Jan 09:00; +7 = Wed 6 Jan 11:00.
    assert local(schedule(syd(2026, 12, 30, 11, 0), parse_cadence(None), w, 3)) == [
        "Wed 2026-12-30 11:00", "Mon 2027-01-04 09:00", "Wed 2027-01-06 11:00"]


def test_daylight_saving_keeps_the_local_time():
    w = Window.of("09:00", "17:00", "Australia/Sydney")
    # Sydney moves to AEDT (+11) on Sunday 4 Oct 2026. Opened Friday 2 Oct 10:00 AEST (00:00 UTC).
    opened = syd(2026, 10, 2, 10, 0)
    assert opened.astimezone(UTC) == datetime(2026, 10, 2, 0, 0, tzinfo=UTC)
    first3 = schedule(opened, parse_cadence(None), w, 3)
    assert local(first3) == ["Fri 2026-10-02 10:00", "Mon 2026-10-05 10:00", "Fri 2026-10-09 10:00"]
    assert first3[1] == datetime(2026, 10, 4, 23, 0, tzinfo=UTC)  # 10:00 AEDT, not 11:00
    # Back to AEST on Sunday 5 April 2026: opened Thursday 2 April 10:00 AEDT.
    back = schedule(syd(2026, 4, 2, 10, 0), parse_cadence(None), w, 2)
    assert local(back) == ["Thu 2026-04-02 10:00", "Mon 2026-04-06 09:00"]
    assert back[1] == datetime(2026, 4, 5, 23, 0, tzinfo=UTC)
    # A window over the skipped hour (02:00-03:00 on 4 Oct): 02:30 does not exist, 03:30 AEDT is the next moment.
    night = Window.of("00:00", "24:00", "Australia/Sydney")
    t = slot_time(syd(2026, 10, 1, 2, 30), 3, night)  # Thursday +3 = Sunday: weekend -> Monday 00:00
    assert local([t]) == ["Mon 2026-10-05 00:00"]


def test_latest_slot_sends_only_the_newest_missed_reminder():
    w = Window.of("00:00", "24:00", "UTC")
    opened = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # a Monday
    c = parse_cadence(None)
    assert latest_slot(opened, c, w, -1, opened) == 0
    assert latest_slot(opened, c, w, 0, opened) is None
    # Down for 16 days: slots 0 (Mon 7), 3 (Thu 10), 7 (Mon 14), 14 (Mon 21) have all come: only 14 is sent.
    assert latest_slot(opened, c, w, 0, datetime(2026, 12, 23, tzinfo=UTC)) == 3


def test_window_checks():
    with pytest.raises(ChaseError, match="end must come after"):
        Window.of("17:00", "09:00", "UTC")
    with pytest.raises(ChaseError, match="HH:MM"):
        Window.of("9am", "17:00", "UTC")
    with pytest.raises(ChaseError, match="IANA"):
        Window.of("09:00", "17:00", "Mars/Olympus")
    w = Window.of("09:00", "17:00", "UTC")
    assert w.is_open(datetime(2026, 12, 8, 9, 0, tzinfo=UTC)) and not w.is_open(datetime(2026, 12, 8, 17, 0, tzinfo=UTC))
    assert not w.is_open(datetime(2026, 12, 12, 10, 0, tzinfo=UTC))  # Saturday
