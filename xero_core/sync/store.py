"""DuckDB writes for the sync: bulk (polars frames through Arrow), repeatable, one transaction each.

Callers fetch first (network), then open the database briefly (`db.connect`) and call these inside
`db.transaction(con)`. Nothing here talks to Xero.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Collection, Iterable

import duckdb
import polars as pl

from . import transforms as T
from .weeks import week_ending_for

# The key of each table the sync writes (the DuckDB contract, ../shared/design.md).
KEYS = {
    "accounts": ("tenant_id", "account_id"),
    "financial_weekly": ("tenant_id", "week_ending"),
    "pnl_lines": ("tenant_id", "week_ending", "account_id"),
    "revenue_weekly": ("tenant_id", "week_ending", "region", "revenue_type"),
    "cash_position_weekly": ("tenant_id", "week_ending", "bank_account_id"),
    "invoices": ("tenant_id", "invoice_id"),
    "invoice_lines": ("tenant_id", "line_item_id"),
    "credit_notes": ("tenant_id", "credit_note_id"),
    "credit_note_lines": ("tenant_id", "line_item_id"),
    "journal_lines": ("tenant_id", "journal_line_id"),
    "contacts": ("tenant_id", "contact_id"),
    "pnl_tieout_weekly": ("tenant_id", "week_ending"),
    "organisations": ("tenant_id",),
    "report_fingerprints": ("tenant_id", "report", "week_ending"),
}


def _frame(data: Any) -> pl.DataFrame:
    """An Arrow table read from DuckDB as a polars DataFrame (pl.from_arrow of a table is one)."""
    frame = pl.from_arrow(data)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _with_tenant(frame: pl.DataFrame, tenant_id: str, synced_at: datetime) -> pl.DataFrame:
    cols = [pl.lit(tenant_id, dtype=pl.String).alias("tenant_id")] if "tenant_id" not in frame.columns else []
    return frame.with_columns(*cols, pl.lit(synced_at, dtype=pl.Datetime("us", "UTC")).alias("synced_at"))


def upsert(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, tenant_id: str,
           synced_at: datetime | None = None) -> int:
    """Insert or replace rows by the table's key. Duplicate keys in the frame: the last wins
    (a record changed while we paged can arrive twice)."""
    if frame.height == 0:
        return 0
    synced_at = synced_at or datetime.now(timezone.utc)
    df = _with_tenant(frame, tenant_id, synced_at).unique(subset=list(KEYS[table]), keep="last", maintain_order=True)
    name = f"_frame_{uuid.uuid4().hex[:8]}"
    con.register(name, df.to_arrow())
    try:
        con.execute(f"INSERT OR REPLACE INTO {table} BY NAME SELECT * FROM {name}")
    finally:
        con.unregister(name)
    return df.height


def upsert_new_versions(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, tenant_id: str,
                        id_col: str, synced_at: datetime | None = None) -> int:
    """`upsert` of the rows whose version (Xero's UpdatedDateUTC, `updated_at`) is not the one stored:
    Xero hands back unchanged records (a whole chart of accounts, the newest contact again under
    If-Modified-Since) and rewriting them costs a daily sync more than fetching them."""
    if frame.height == 0:
        return 0
    con.register("_ids", pl.DataFrame({"id": frame[id_col]}).to_arrow())
    try:
        stored = _frame(con.sql(
            f"SELECT {id_col} AS id, updated_at FROM {table} WHERE tenant_id = ? AND {id_col} IN (SELECT id FROM _ids)",
            params=[tenant_id]).to_arrow_table())
    finally:
        con.unregister("_ids")
    same = _same_version(frame, stored, id_col)
    if same:
        frame = frame.filter(~pl.col(id_col).is_in(same))
    return upsert(con, table, frame, tenant_id, synced_at)


@dataclass(frozen=True)
class SyncState:
    """What a run reads of a tenant before its steps fetch anything."""

    cursors: dict[str, str | None]
    # {"pnl@2026-11-28": fingerprint, ...} of the report weeks stored (only where the week's rows are
    # still in their table, so a table emptied by hand is refilled)
    fingerprints: dict[str, str]
    # Has anything the P&L tie-out reads (report weeks, accounts, journals) been written since it was
    # last rebuilt? (A run stopped between those writes and the rebuild leaves it stale.)
    tieout_stale: bool


def sync_state(con: duckdb.DuckDBPyConnection, tenant_id: str) -> SyncState:
    """One tenant's SyncState in six single-table statements. DuckDB plans a subquery or a join at
    several times the cost of the scan it would save (the fingerprints and the staleness as one
    statement each cost 5.3 and 4.9 ms at 500 organisations; these six cost ~6 ms in all), and a
    daily run reads this for every organisation."""
    def rows(sql: str) -> list[tuple[Any, ...]]:
        return con.execute(sql, [tenant_id]).fetchall()

    cursors: dict[str, str | None] = {}
    journals_at = None
    for resource, value, updated_at in rows(
            "SELECT resource, cursor_value, updated_at FROM sync_cursors WHERE tenant_id = ?"):
        cursors[resource] = value
        if resource == "journals":
            journals_at = updated_at
    pnl_weeks = dict(rows("SELECT week_ending, max(synced_at) FROM financial_weekly WHERE tenant_id = ? "
                          "GROUP BY week_ending"))
    stored = {"pnl": set(pnl_weeks),
              "bank": {r[0] for r in rows("SELECT DISTINCT week_ending FROM cash_position_weekly WHERE tenant_id = ?")}}
    fingerprints = {f"{report}@{week:%Y-%m-%d}": fp
                    for report, week, fp in rows("SELECT report, week_ending, fingerprint FROM report_fingerprints "
                                                 "WHERE tenant_id = ?")
                    if week in stored.get(report, ())}
    accounts_at = rows("SELECT max(synced_at) FROM accounts WHERE tenant_id = ?")[0][0]
    tieout_at = rows("SELECT max(synced_at) FROM pnl_tieout_weekly WHERE tenant_id = ?")[0][0]
    written = [t for t in (*pnl_weeks.values(), accounts_at, journals_at) if t is not None]
    stale = bool(written) and (tieout_at is None or max(written) > tieout_at)
    return SyncState(cursors, fingerprints, stale)


def set_report_fingerprints(con: duckdb.DuckDBPyConnection, tenant_id: str, report: str,
                            fingerprints: dict[date, str]) -> None:
    if not fingerprints:
        return
    frame = pl.DataFrame({"report": [report] * len(fingerprints),
                          "week_ending": pl.Series(list(fingerprints), dtype=pl.Date),
                          "fingerprint": list(fingerprints.values())})
    upsert(con, "report_fingerprints", frame, tenant_id)


def replace_weeks(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, tenant_id: str,
                  weeks: Iterable[date], synced_at: datetime | None = None) -> int:
    """Replace every row of `tenant_id` for `weeks` (a report's rows for a week are the whole truth:
    an account that left the report leaves the table)."""
    weeks = sorted(set(weeks))
    if not weeks:
        return 0
    wk = pl.DataFrame({"week_ending": pl.Series(weeks, dtype=pl.Date)}).to_arrow()
    con.register("_weeks", wk)
    try:
        con.execute(f"DELETE FROM {table} WHERE tenant_id = ? AND week_ending IN (SELECT week_ending FROM _weeks)", [tenant_id])
    finally:
        con.unregister("_weeks")
    return upsert(con, table, frame, tenant_id, synced_at)


# -- invoices, credit notes + revenue_weekly --------------------------------------------------
def _save_documents(con: duckdb.DuckDBPyConnection, tenant_id: str, table: str, lines_table: str, id_col: str,
                    docs: pl.DataFrame, lines: pl.DataFrame, week_ends_on: str, synced_at: datetime | None,
                    rebuild: bool, settled_to: datetime | None = None) -> tuple[int, set[Any]]:
    """`settled_to`: the resource's cursor. revenue_weekly was rebuilt, in the transaction that
    moved the cursor there, for every document updated up to it; a stored document updated after it
    was written by a run that stopped before its rebuild, so its week is rebuilt now."""
    if docs.height == 0:
        return 0, set()

    docs = docs.unique(subset=[id_col], keep="last", maintain_order=True)
    con.register("_ids", pl.DataFrame({"id": docs[id_col]}).to_arrow())
    try:
        stored = _frame(con.sql(
            f"SELECT {id_col} AS id, updated_at, date FROM {table} WHERE tenant_id = ? AND {id_col} IN (SELECT id FROM _ids)",
            params=[tenant_id]).to_arrow_table())
        # Xero's If-Modified-Since hands back the newest documents already stored (the cursor is
        # their time): a document whose UpdatedDateUTC we hold is that version, so it is not written
        # again. A daily sync with nothing new then writes nothing here.
        same = _same_version(docs, stored, id_col)
        unsettled: set[Any] = set()
        if same:
            held = docs.filter(pl.col(id_col).is_in(same))
            if settled_to is not None:
                held = held.filter(pl.col("updated_at").cast(pl.Datetime("us", "UTC")) > settled_to)
            unsettled = {week_ending_for(d, week_ends_on) for d in held["date"].to_list() if d is not None}
            docs = docs.filter(~pl.col(id_col).is_in(same))
            lines = lines.filter(~pl.col(id_col).is_in(same)) if lines is not None else lines
            if docs.height == 0:
                if rebuild:
                    rebuild_revenue_weekly(con, tenant_id, unsettled, week_ends_on, synced_at)
                return 0, unsettled
            con.unregister("_ids")
            con.register("_ids", pl.DataFrame({"id": docs[id_col]}).to_arrow())
        changed = stored.filter(~pl.col("id").is_in(same)) if same else stored
        old_dates = [d for d in changed["date"].unique().to_list() if d is not None]
        # A document's lines are replaced whole: a line removed in Xero leaves our table too.
        con.execute(f"DELETE FROM {lines_table} WHERE tenant_id = ? AND {id_col} IN (SELECT id FROM _ids)", [tenant_id])
    finally:
        con.unregister("_ids")
    n = upsert(con, table, docs, tenant_id, synced_at)
    upsert(con, lines_table, lines, tenant_id, synced_at)
    dates = set(old_dates) | {d for d in docs["date"].to_list() if d is not None}
    weeks = {week_ending_for(d, week_ends_on) for d in dates} | unsettled
    if rebuild:
        rebuild_revenue_weekly(con, tenant_id, weeks, week_ends_on, synced_at)
    return n, weeks


def _same_version(docs: pl.DataFrame, stored: pl.DataFrame, id_col: str) -> list[str]:
    """Ids of `docs` stored with the same updated_at (Xero's UpdatedDateUTC) as they arrive with."""
    if stored.height == 0 or "updated_at" not in docs.columns:
        return []
    ts = pl.Datetime("us", "UTC")
    incoming = docs.select(pl.col(id_col).alias("id"), pl.col("updated_at").cast(ts)).drop_nulls()
    held = stored.select("id", pl.col("updated_at").cast(ts)).drop_nulls()
    return incoming.join(held, on=["id", "updated_at"], how="inner")["id"].to_list()


def save_invoice_frames(con: duckdb.DuckDBPyConnection, tenant_id: str, invoices: pl.DataFrame,
                        lines: pl.DataFrame, week_ends_on: str, synced_at: datetime | None = None,
                        *, rebuild: bool = True, settled_to: datetime | None = None) -> tuple[int, set[Any]]:
    """Upsert invoices and their lines, then rebuild revenue_weekly for every week an invoice
    entered or left (its old and new dates), from the invoices table. Returns (invoices, weeks).

    `rebuild=False` leaves revenue_weekly to the caller (a backfill rebuilds once, at its last
    chunk): safe, because until then the cursor has not moved, so a rerun refetches these invoices
    and rebuilds their weeks."""
    return _save_documents(con, tenant_id, "invoices", "invoice_lines", "invoice_id", invoices, lines,
                           week_ends_on, synced_at, rebuild, settled_to)


def save_credit_note_frames(con: duckdb.DuckDBPyConnection, tenant_id: str, credit_notes: pl.DataFrame,
                            lines: pl.DataFrame, week_ends_on: str, synced_at: datetime | None = None,
                            *, rebuild: bool = True, settled_to: datetime | None = None) -> tuple[int, set[Any]]:
    """The same for credit notes: a credit note voided, deleted or moved to another date leaves
    (or moves within) revenue_weekly when its update is saved."""
    return _save_documents(con, tenant_id, "credit_notes", "credit_note_lines", "credit_note_id", credit_notes,
                           lines, week_ends_on, synced_at, rebuild, settled_to)


def rebuild_revenue_weekly(con: duckdb.DuckDBPyConnection, tenant_id: str, weeks: Iterable[date],
                           week_ends_on: str, synced_at: datetime | None = None) -> int:
    """revenue_weekly for `weeks`, from every sales invoice and sales credit note dated in them, in the
    organisation's base currency (the documents' `base_*` amounts)."""
    weeks = sorted(set(weeks))
    if not weeks:
        return 0
    con.register("_weeks", pl.DataFrame({"week_ending": pl.Series(weeks, dtype=pl.Date)}).to_arrow())
    try:
        def docs(table: str, id_col: str, typ: str) -> Any:
            return con.sql(
                f"""SELECT d.{id_col}, d.type, d.status, d.date, d.line_amount_types, d.base_subtotal, d.base_total_tax,
                           d.base_total
                    FROM {table} d JOIN _weeks w ON d.date BETWEEN w.week_ending - 6 AND w.week_ending
                    WHERE d.tenant_id = ? AND d.type = '{typ}' AND d.status IN {T.REVENUE_STATUSES}""",
                params=[tenant_id]).to_arrow_table()

        def lines(table: str, lines_table: str, id_col: str, typ: str) -> Any:
            return con.sql(
                f"""SELECT l.{id_col}, l.base_line_amount, l.base_tax_amount, l.region, l.revenue_type
                    FROM {lines_table} l JOIN {table} d ON d.tenant_id = l.tenant_id AND d.{id_col} = l.{id_col}
                    JOIN _weeks w ON d.date BETWEEN w.week_ending - 6 AND w.week_ending
                    WHERE l.tenant_id = ? AND d.type = '{typ}' AND d.status IN {T.REVENUE_STATUSES}""",
                params=[tenant_id]).to_arrow_table()

        (sales,), (credits,) = T.REVENUE_TYPES, T.CREDIT_TYPES
        inv = docs("invoices", "invoice_id", sales)
        inv_lines = lines("invoices", "invoice_lines", "invoice_id", sales)
        cn = docs("credit_notes", "credit_note_id", credits)
        cn_lines = lines("credit_notes", "credit_note_lines", "credit_note_id", credits)
    finally:
        con.unregister("_weeks")
    frame = T.revenue_weekly_frame(tenant_id, _frame(inv), _frame(inv_lines), week_ends_on,
                                   _frame(cn), _frame(cn_lines))
    return replace_weeks(con, "revenue_weekly", frame, tenant_id, weeks, synced_at)


# -- cursors and sync_log -------------------------------------------------------------------
def get_cursor(con: duckdb.DuckDBPyConnection, tenant_id: str, resource: str) -> str | None:
    row = con.execute("SELECT cursor_value FROM sync_cursors WHERE tenant_id = ? AND resource = ?",
                      [tenant_id, resource]).fetchone()
    return row[0] if row else None


def set_cursor(con: duckdb.DuckDBPyConnection, tenant_id: str, resource: str, value: str | None) -> None:
    if value is None:
        return
    con.execute(
        "INSERT OR REPLACE INTO sync_cursors (tenant_id, resource, cursor_value, updated_at) VALUES (?, ?, ?, now())",
        [tenant_id, resource, value])


_LOG_COLUMNS = ("sync_id", "run_id", "tenant_id", "sync_type", "period_start", "period_end", "status", "rows",
                "api_calls", "bytes_downloaded", "error", "trigger", "started_at", "finished_at", "detail")


def _log_values(sync_id: str, run_id: str, tenant_id: str, sync_type: str, trigger: str, status: str, rows: int,
                api_calls: int, bytes_downloaded: int, error: str | None, started_at: datetime,
                finished_at: datetime, period: tuple[date, date] | None = None, detail: dict[str, Any] | None = None) -> list[Any]:
    return [sync_id, run_id, tenant_id, sync_type, period[0] if period else None, period[1] if period else None,
            status, rows, api_calls, bytes_downloaded, error, trigger, started_at, finished_at,
            json.dumps(detail, default=str) if detail else None]


def log_rows(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]], *,
             replace: bool | Collection[str] = True) -> None:
    """sync_log rows (each as `log_finish`'s keywords) in one INSERT. `replace`: some may be there
    already (a step logs inside its last write, then its outcome adds to the row): True for any of
    them, or the sync_ids that may be. DuckDB's INSERT OR REPLACE costs ~2.5 ms a row; a DELETE and a
    plain many-row INSERT cost ~1.5 ms for a whole run."""
    if not rows:
        return
    replaced = [r["sync_id"] for r in rows] if replace is True else list(replace or ())
    if replaced:
        con.execute(f"DELETE FROM sync_log WHERE sync_id IN ({', '.join('?' * len(replaced))})", replaced)
    one = "(" + ", ".join("?" * len(_LOG_COLUMNS)) + ")"
    con.execute(f"INSERT INTO sync_log ({', '.join(_LOG_COLUMNS)}) VALUES {', '.join([one] * len(rows))}",
                [v for r in rows for v in _log_values(**r)])


def log_finish(con: duckdb.DuckDBPyConnection, **row: Any) -> None:
    """One step's sync_log row (replacing one of the same sync_id)."""
    log_rows(con, [row])


def touch_last_sync(con: duckdb.DuckDBPyConnection, tenant_id: str, when: datetime) -> None:
    con.execute("UPDATE connections SET last_sync_at = ? WHERE tenant_id = ?", [when, tenant_id])


def rebuild_tieout(con: duckdb.DuckDBPyConnection, tenant_id: str, synced_at: datetime | None = None) -> int:
    """pnl_tieout_weekly: for every week with a P&L report, net profit rebuilt from journal lines
    (revenue and expense accounts; credits are negative, so profit = -sum) beside the report's, and
    for a week where they differ, the cause found account by account (`transforms.tieout_causes`):
    `explained` when every account's difference has one, `flagged` only when some difference has
    none. A difference is kept and said, never hidden."""
    synced_at = synced_at or datetime.now(timezone.utc)
    pnl_types = tuple(T.TYPE_SECTION)
    weeks = con.execute(
        """
        WITH j AS (
            SELECT f.week_ending, -coalesce(sum(l.net_amount), 0) AS journal_net
            FROM financial_weekly f
            LEFT JOIN journal_lines l
              ON l.tenant_id = f.tenant_id AND l.journal_date BETWEEN f.week_ending - 6 AND f.week_ending
             AND list_contains(?, coalesce(l.account_type, (SELECT a.type FROM accounts a WHERE a.tenant_id = l.tenant_id
                                            AND a.account_id = l.account_id)))
            WHERE f.tenant_id = ?
            GROUP BY f.week_ending
        )
        SELECT f.week_ending, f.net_profit, CAST(j.journal_net AS DECIMAL(18,2)), f.synced_at
        FROM financial_weekly f JOIN j USING (week_ending) WHERE f.tenant_id = ? ORDER BY 1
        """, [list(pnl_types), tenant_id, tenant_id]).fetchall()
    differing = [w for w, report, journal, _ in weeks if report != journal]
    report_lines: dict[str, Any] = {}
    journal_lines: dict[str, Any] = {}
    accounts: dict[str, Any] = {}
    journals_synced = None
    if differing:
        con.register("_weeks", pl.DataFrame({"week_ending": pl.Series(differing, dtype=pl.Date)}).to_arrow())
        try:
            for we, aid, section, code, name, amount in con.execute(
                    """SELECT p.week_ending, p.account_id, p.section, p.account_code, p.account_name, p.amount
                       FROM pnl_lines p JOIN _weeks w USING (week_ending) WHERE p.tenant_id = ?""",
                    [tenant_id]).fetchall():
                report_lines.setdefault(we, []).append(
                    {"account_id": aid, "section": section, "account_code": code, "account_name": name, "amount": amount})
            for we, aid, code, typ, name, net, created in con.execute(
                    """SELECT w.week_ending, l.account_id, l.account_code,
                              coalesce(l.account_type, a.type), coalesce(l.account_name, a.name), l.net_amount, l.created_at
                       FROM journal_lines l JOIN _weeks w ON l.journal_date BETWEEN w.week_ending - 6 AND w.week_ending
                       LEFT JOIN accounts a ON a.tenant_id = l.tenant_id AND a.account_id = l.account_id
                       WHERE l.tenant_id = ?""", [tenant_id]).fetchall():
                journal_lines.setdefault(we, []).append(
                    {"account_id": aid, "account_code": code, "account_type": typ, "account_name": name,
                     "net_amount": net, "created_at": created})
        finally:
            con.unregister("_weeks")
        for aid, code, name, typ, raw in con.execute(
                "SELECT account_id, code, name, type, raw FROM accounts WHERE tenant_id = ?", [tenant_id]).fetchall():
            system = None
            if raw:
                try:
                    system = (json.loads(raw) or {}).get("SystemAccount")
                except ValueError:
                    system = None
            accounts[aid] = {"code": code, "name": name, "type": typ, "system": system}
        row = con.execute("SELECT updated_at FROM sync_cursors WHERE tenant_id = ? AND resource = 'journals'",
                          [tenant_id]).fetchone()
        journals_synced = row[0] if row else None
    out: dict[str, list[Any]] = {k: [] for k in ("week_ending", "report_net_profit", "journal_net_profit", "difference", "flagged",
                           "explained", "cause", "causes", "note")}
    for we, report, journal, report_synced in weeks:
        diff = report - journal
        found = T.tieout_causes(diff, report_lines.get(we, []), journal_lines.get(we, []), accounts,
                                report_synced_at=report_synced, journals_synced_at=journals_synced) if diff else None
        out["week_ending"].append(we)
        out["report_net_profit"].append(report)
        out["journal_net_profit"].append(journal)
        out["difference"].append(diff)
        out["explained"].append(None if found is None else found.explained)
        out["flagged"].append(bool(diff) and found is not None and not found.explained)
        out["cause"].append(None if found is None else found.sentence)
        out["causes"].append(None if found is None else json.dumps(found.accounts, default=str))
        out["note"].append(None if found is None else found.sentence)
    con.execute("DELETE FROM pnl_tieout_weekly WHERE tenant_id = ?", [tenant_id])
    if not weeks:
        return 0
    frame = pl.DataFrame({
        "week_ending": pl.Series(out["week_ending"], dtype=pl.Date),
        "report_net_profit": T._money_col([str(x) for x in out["report_net_profit"]]),
        "journal_net_profit": T._money_col([str(x) for x in out["journal_net_profit"]]),
        "difference": T._money_col([str(x) for x in out["difference"]]),
        "flagged": pl.Series(out["flagged"], dtype=pl.Boolean),
        "explained": pl.Series(out["explained"], dtype=pl.Boolean),
        "cause": pl.Series(out["cause"], dtype=pl.String),
        "causes": pl.Series(out["causes"], dtype=pl.String),
        "note": pl.Series(out["note"], dtype=pl.String),
    })
    return upsert(con, "pnl_tieout_weekly", frame, tenant_id, synced_at)


def tieout_cause_names(con: duckdb.DuckDBPyConnection, tenant_id: str) -> str:
    """The kinds of cause found for the tenant's explained weeks, e.g. "unrealised currency gains"."""
    names = set()
    for (causes,) in con.execute("SELECT causes FROM pnl_tieout_weekly WHERE tenant_id = ? AND explained",
                                 [tenant_id]).fetchall():
        for c in json.loads(causes or "[]"):
            if c.get("cause"):
                names.add(T.CAUSES[c["cause"]].split(" (")[0])
    return ", ".join(sorted(names))
