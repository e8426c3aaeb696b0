"""Shared fixtures. Every test gets its own data dir under tmp_path; nothing touches ./data.

The test date (issue 13 §1: no test may depend on the date it runs)
-------------------------------------------------------------------
A test that reads dates pins them: the fake's `today=`, a `FakeClock`, `today=` arguments, or for a
date-sensitive test, the `test_today` fixture. A test taking `test_today` is marked `dates`
(automatically) and runs on:

* today's date (in XERO_TIMEZONE, default Australia/Sydney) by default, so each day's run tries a new one;
* each date in `LEDGERLINK_TEST_TODAY=YYYY-MM-DD[,YYYY-MM-DD...]` otherwise (the test's id gets
  `[date]`). For each, the fixture moves this process's clock onto that day with time-machine
  (same wall-clock time in XERO_TIMEZONE, ticking) and sets `XERO_TODAY` for the subprocesses the
  test starts (the product's SYSTEM_CLOCK makes the same move, clock.pin_shift, and clock.today()
  returns the date). scripts/test runs `-m dates` at the month ends, year ends, DST changes and leap
  day listed there.

A failure at a date reproduces with `LEDGERLINK_TEST_TODAY=that-date bash scripts/test -m dates`.
"""
from __future__ import annotations

import os
import secrets
import time
from datetime import date, datetime, timezone

import pytest

from xero_core.settings import Settings, load_settings

TEST_TODAY_ENV = "LEDGERLINK_TEST_TODAY"


def test_dates() -> list[date]:
    """The dates LEDGERLINK_TEST_TODAY asks for (empty: the real date, no pinning)."""
    raw = os.environ.get(TEST_TODAY_ENV, "").strip()
    try:
        return [date.fromisoformat(part.strip()) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise pytest.UsageError(f"{TEST_TODAY_ENV}={raw!r}: give dates as YYYY-MM-DD, separated by commas.") from None


test_dates.__test__ = False  # a helper, not a test


def pytest_report_header(config):
    dates = test_dates()
    if dates:
        return f"test date ({TEST_TODAY_ENV}): {', '.join(d.isoformat() for d in dates)}"
    from xero_core import clock

    return f"test date: {clock.today()} (today in XERO_TIMEZONE; {TEST_TODAY_ENV}=YYYY-MM-DD pins another)"


def pytest_generate_tests(metafunc):
    if "test_today" in metafunc.fixturenames:
        dates = test_dates()
        if dates:
            metafunc.parametrize("test_today", dates, indirect=True, scope="module",
                                 ids=[d.isoformat() for d in dates])


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the marks added here count
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.slow)  # a streamlit server and a chromium each: never the quick lane
        wants = "test_today" in getattr(item, "fixturenames", ())
        marked = item.get_closest_marker("dates") is not None
        if wants and not marked:
            item.add_marker(pytest.mark.dates)
        elif marked and not wants:
            raise pytest.UsageError(f"{item.nodeid} is marked dates but does not take the test_today fixture: "
                                    "take it (the date to use) or drop the marker.")


@pytest.fixture(scope="module")
def test_today(request):
    """The date a date-sensitive test runs on: today, or each LEDGERLINK_TEST_TODAY date, with
    this process's clock moved there and XERO_TODAY set for subprocesses (see the module doc)."""
    from xero_core import clock

    day = getattr(request, "param", None)
    if day is None:
        yield clock.today()  # in XERO_TIMEZONE, as the sync sees it
        return
    import time_machine

    real = time.time()  # the same move the product's SYSTEM_CLOCK makes for XERO_TODAY (clock.pin_shift)
    with pytest.MonkeyPatch.context() as mp, \
            time_machine.travel(datetime.fromtimestamp(real + clock.pin_shift(day, real), timezone.utc), tick=True):
        mp.setenv("XERO_TODAY", day.isoformat())
        yield day


@pytest.fixture
def make_settings(tmp_path):
    """make_settings(**env_overrides) -> Settings in mock mode, in a private data dir."""

    def _make(**overrides: str) -> Settings:
        env = {
            "XERO_MOCK_MODE": "true",
            "XERO_DATA_DIR": str(tmp_path / "data"),
            "XERO_ENCRYPTION_KEY": secrets.token_hex(32),
        }
        env.update({k: str(v) for k, v in overrides.items()})
        return load_settings(env)

    return _make


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


# LEDGERLINK_TEST_CPU=file.jsonl records each test's CPU seconds (this process and the children it
# waited for, i.e. servers and subprocesses it started and stopped): what decides the quick lane
# (`slow`: over ~0.75 s of CPU), since wall time on a shared 2-core machine says more about the neighbours than the test.
_CPU_LOG = os.environ.get("LEDGERLINK_TEST_CPU")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not _CPU_LOG:
        yield
        return
    import json
    import resource

    def cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    start, wall = cpu(), time.monotonic()
    yield
    with open(_CPU_LOG, "a") as f:
        f.write(json.dumps({"test": item.nodeid, "cpu": round(cpu() - start, 2),
                            "wall": round(time.monotonic() - wall, 2),
                            "slow": item.get_closest_marker("slow") is not None}) + "\n")
