"""What a run reads of a tenant before its steps (store.sync_state): cursors, the report weeks'
fingerprints that still have their rows, and whether the P&L tie-out is older than what it reads."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from xero_core import db
from xero_core.sync import store

T, OTHER = "tenant-a", "tenant-b"
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
W1, W2 = date(2026, 11, 20), date(2026, 11, 27)


def _seed(con) -> None:
    for tenant in (T, OTHER):
        con.execute("INSERT INTO sync_cursors VALUES (?, 'invoices', '2026-11-25T00:00:00', ?), "
                    "(?, 'journals', '1200', ?)", [tenant, T0, tenant, T0])
        for week in (W1, W2):
            con.execute("INSERT INTO financial_weekly (tenant_id, week_ending, synced_at) VALUES (?, ?, ?)",
                        [tenant, week, T0])
            con.execute("INSERT INTO report_fingerprints VALUES (?, 'pnl', ?, ?, ?), (?, 'bank', ?, ?, ?)",
                        [tenant, week, f"p{week.day}", T0, tenant, week, f"b{week.day}", T0])
        con.execute("INSERT INTO cash_position_weekly (tenant_id, week_ending, bank_account_id, synced_at) "
                    "VALUES (?, ?, 'acc-1', ?)", [tenant, W2, T0])
        con.execute("INSERT INTO accounts (tenant_id, account_id, synced_at) VALUES (?, 'a1', ?)", [tenant, T0])


def test_an_unknown_tenant_has_nothing_and_nothing_stale(settings):
    with db.connect(settings.db_path) as con:
        _seed(con)
        st = store.sync_state(con, "nobody")
    assert st.cursors == {} and st.fingerprints == {} and st.tieout_stale is False


def test_cursors_and_fingerprints_of_weeks_that_still_have_their_rows(settings):
    with db.connect(settings.db_path) as con:
        _seed(con)
        con.execute("DELETE FROM financial_weekly WHERE tenant_id = ? AND week_ending = ?", [T, W1])  # emptied by hand
        st = store.sync_state(con, T)
    assert st.cursors == {"invoices": "2026-11-25T00:00:00", "journals": "1200"}
    # pnl W1's rows are gone (refilled next run); bank has only W2 stored; the other tenant's never count
    assert st.fingerprints == {"pnl@2026-11-27": "p27", "bank@2026-11-27": "b27"}


def test_the_tieout_is_stale_when_anything_it_reads_was_written_after_it(settings):
    with db.connect(settings.db_path) as con:
        _seed(con)
        assert store.sync_state(con, T).tieout_stale  # never built
        con.execute("INSERT INTO pnl_tieout_weekly (tenant_id, week_ending, synced_at) VALUES (?, ?, ?)",
                    [T, W2, T0 + timedelta(minutes=1)])
        assert not store.sync_state(con, T).tieout_stale
        for k, (table, sql) in enumerate((
                ("accounts", "UPDATE accounts SET synced_at = ? WHERE tenant_id = ?"),
                ("financial_weekly", "UPDATE financial_weekly SET synced_at = ? WHERE tenant_id = ?"),
                ("journals", "UPDATE sync_cursors SET updated_at = ? WHERE tenant_id = ? AND resource = 'journals'"))):
            con.execute(sql, [T0 + timedelta(minutes=10 * k + 2), T])
            assert store.sync_state(con, T).tieout_stale, table
            con.execute("UPDATE pnl_tieout_weekly SET synced_at = ? WHERE tenant_id = ?",
                        [T0 + timedelta(minutes=10 * k + 3), T])
            assert not store.sync_state(con, T).tieout_stale, table
        # Another tenant's writes never make this one's tie-out stale.
        con.execute("UPDATE accounts SET synced_at = ? WHERE tenant_id = ?", [T0 + timedelta(days=1), OTHER])
        assert not store.sync_state(con, T).tieout_stale


def test_the_chase_probe_sees_an_open_campaign_or_a_reminder_still_to_send(settings):
    from xero_core.practice.chase import due_count

    with db.connect(settings.db_path) as con:
        assert due_count(con, T) == 0
        con.execute("INSERT INTO chase_outbox (reminder_id, campaign_id, tenant_id, seq, message_id, state, next_try_at) "
                    "VALUES ('r1', 'c1', ?, 0, 'm1', 'sent', NULL), ('r2', 'c1', ?, 1, 'm2', 'due', ?)",
                    [T, OTHER, T0])
        assert due_count(con, T) == 0  # sent here; the due one is another tenant's
        con.execute("UPDATE chase_outbox SET tenant_id = ? WHERE reminder_id = 'r2'", [T])
        assert due_count(con, T) == 1
        con.execute("DELETE FROM chase_outbox")
        con.execute("INSERT INTO chase_campaigns (campaign_id, tenant_id, job_id, status) VALUES "
                    "('c1', ?, 'j1', 'completed'), ('c2', ?, 'j2', 'open')", [T, OTHER])
        assert due_count(con, T) == 0
        con.execute("UPDATE chase_campaigns SET status = 'open' WHERE campaign_id = 'c1'")
        assert due_count(con, T) == 1
