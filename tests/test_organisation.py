"""Issue 23 §2: the product reads the organisation itself (GET /Organisation) at connect and on each
sync into `organisations`, writes it only when it changed, and each tenant's "today" and weeks
follow its own organisation's time zone (a practice with NZ, AU and UK clients has different weeks)."""
from __future__ import annotations

import pytest

import secrets
from datetime import date, datetime, timezone

from xero_core import db, oauth
from xero_core.fake import FakeXero
from xero_core.fake.clock import FakeClock
from xero_core.fake.ledger import generate_org
from xero_core.settings import load_settings
from xero_core.engine import Engine


def small_org(seed, today, *, invoices=None, tenant_id=None):
    return generate_org(seed, today, years=0.1, invoices=invoices or 200, tenant_id=tenant_id)


def setup(tmp_path, now: datetime, zones=("AUSEASTERNSTANDARDTIME",)):
    s = load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(tmp_path / "data"),
                       "XERO_ENCRYPTION_KEY": secrets.token_hex(32), "XERO_TIMEZONE": "Australia/Sydney"})
    clock = FakeClock(now)
    fake = FakeXero(today=now.date(), clock=clock, seed=3, tenants=len(zones), org_factory=small_org)
    for org, (zone, currency, country) in zip(fake.orgs, [(z, *{
            "AUSEASTERNSTANDARDTIME": ("AUD", "AU"), "NEWZEALANDSTANDARDTIME": ("NZD", "NZ"),
            "GMTSTANDARDTIME": ("GBP", "GB")}[z]) for z in zones]):
        org.timezone, org.country_code = zone, country
        if country == "NZ":
            org.financial_year_end = (3, 31)
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)), transport=fake.transport(),
                                     clock=clock)
    ids = [t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION"]
    return s, clock, fake, ids


def org_rows(s):
    with db.connect(s.db_path, read_only=True) as con:
        cur = con.execute("SELECT * FROM organisations ORDER BY name")
        return {r[0]: dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()}


@pytest.mark.slow
def test_organisation_is_read_at_connect_and_rewritten_only_when_it_changes(tmp_path):
    s, clock, fake, (tid,) = setup(tmp_path, datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc))
    org = org_rows(s)[tid]     # already there after connect, before any sync
    assert (org["base_currency"], org["country_code"], org["timezone"], org["xero_timezone"]) == \
        ("AUD", "AU", "Australia/Sydney", "AUSEASTERNSTANDARDTIME")
    assert (org["financial_year_end_month"], org["financial_year_end_day"]) == (6, 30)
    assert org["name"] == fake.org(tid).name and org["short_code"] == fake.org(tid).short_code
    assert org["organisation_type"] == "COMPANY" and org["sales_tax_basis"] == "ACCRUALS" and org["raw"]
    first = org["updated_at"]

    fake.clear_requests()
    res = Engine(s, transport=fake.transport(), clock=clock).sync(tid, only="organisation")
    step = res.steps[0]
    assert (step.step, step.status, step.rows) == ("organisation", "success", 0)   # unchanged: nothing written
    assert [r.path for r in fake.requests if r.api].count("/api.xro/2.0/Organisation") == 1
    assert org_rows(s)[tid]["updated_at"] == first

    fake.org(tid).timezone = "NEWZEALANDSTANDARDTIME"
    fake.org(tid).name = "Kauri Coast Developments Ltd"
    res = Engine(s, transport=fake.transport(), clock=clock).sync(tid, only="organisation")
    assert res.steps[0].rows == 1
    org = org_rows(s)[tid]
    assert (org["name"], org["timezone"]) == ("Kauri Coast Developments Ltd", "Pacific/Auckland")


@pytest.mark.slow
def test_each_tenant_has_its_own_today_and_weeks(tmp_path):
    """Saturday 5 Dec 2026 14:00 UTC is already Sunday 6 Dec in Sydney (01:00) and Auckland (03:00)
    but still Saturday in London: the UK organisation's current week ends on 5 Dec, the others' on
    12 Dec, though XERO_TIMEZONE (Sydney) alone would give every tenant 12 Dec."""
    now = datetime(2026, 12, 5, 14, 0, tzinfo=timezone.utc)
    s, clock, fake, ids = setup(tmp_path, now, ("AUSEASTERNSTANDARDTIME", "NEWZEALANDSTANDARDTIME", "GMTSTANDARDTIME"))
    zones = {fake.org(t).timezone: t for t in ids}
    latest = {}
    for zone, tid in zones.items():
        res = Engine(s, transport=fake.transport(), clock=clock).sync(tid, weeks=1, only="pnl")
        assert res.ok, res.to_dict()
        with db.connect(s.db_path, read_only=True) as con:
            latest[zone] = con.execute("SELECT max(week_ending) FROM financial_weekly WHERE tenant_id = ?",
                                       [tid]).fetchone()[0]
    assert latest == {"AUSEASTERNSTANDARDTIME": date(2026, 12, 12), "NEWZEALANDSTANDARDTIME": date(2026, 12, 12),
                      "GMTSTANDARDTIME": date(2026, 12, 5)}
