"""Our P&L against an analytical peer: Fivetran's dbt_xero package run on the same journals.

    DBT_XERO_PATH=/tmp/dbt_pkgs/xero .venv/bin/python bench/dbt_compare.py [--invoices 3000] [--weeks 30]

1. A fake organisation is connected and synced by Ledgerlink (journals, accounts, invoices, contacts,
   `--weeks` of weekly P&L) into a temporary DuckDB file, on a fake clock.
2. Its accounts, journals, journal lines, invoices, contacts and organisation are exported to Parquet
   in the shape of Fivetran's Xero source tables and loaded into a separate DuckDB file.
3. dbt (dbt-duckdb, in its own venv `bench/.venv-dbt`) builds `xero__profit_and_loss_report` (a
   monthly P&L from journals) with dbt_xero and its dependencies from local checkouts.
4. For every complete month covered by our weekly P&L, four views of net profit (and income) are
   printed side by side, with the differences explained:
     dbt       dbt_xero's monthly P&L from journals
     journals  ours from `journal_lines` by journal date, rolled to months (must equal dbt: same data)
     weekly    ours from `financial_weekly` (Xero's weekly reports) rolled to months by week ending
     report    the fake Xero's own monthly ProfitAndLoss
   weekly - journals = days of the month's boundary weeks that fall in the next/previous month
   (a week belongs to the month it ends in; daily data fixes it); report - dbt = the unrealised FX
   revaluation Xero's report shows but no journal carries.

Needs DBT_XERO_PATH (a checkout of github.com/fivetran/dbt_xero, v1.3.0; never committed here) and its
dependencies DBT_FIVETRAN_UTILS_PATH (fivetran/dbt_fivetran_utils v0.4.x) and DBT_UTILS_PATH
(dbt-labs/dbt-utils 1.x), by default siblings of DBT_XERO_PATH named fivetran_utils and dbt_utils;
and dbt at DBT_BIN (default bench/.venv-dbt/bin/dbt). Without them it says what is missing and exits 0.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TODAY = date(2026, 11, 26)
CENT = Decimal("0.01")
INCOME_TYPES = {"REVENUE", "SALES"}
OTHER_INCOME_TYPES = {"OTHERINCOME"}
COST_TYPES = {"DIRECTCOSTS"}
EXPENSE_TYPES = {"EXPENSE", "OVERHEADS", "DEPRECIATN"}


def requirements() -> tuple[dict[str, Path], list[str]]:
    xero = os.environ.get("DBT_XERO_PATH")
    base = Path(xero).parent if xero else None
    paths = {
        "xero": Path(xero or ""),  # "": not set, reported as missing below
        "fivetran_utils": Path(os.environ.get("DBT_FIVETRAN_UTILS_PATH") or (base / "fivetran_utils" if base else "")),
        "dbt_utils": Path(os.environ.get("DBT_UTILS_PATH") or (base / "dbt_utils" if base else "")),
        "dbt": Path(os.environ.get("DBT_BIN") or ROOT / "bench" / ".venv-dbt" / "bin" / "dbt"),
    }
    missing = []
    if not xero:
        missing.append("DBT_XERO_PATH is not set (a checkout of github.com/fivetran/dbt_xero v1.3.0)")
    for name in ("xero", "fivetran_utils", "dbt_utils"):
        p = paths[name]
        if xero and not (p / "dbt_project.yml").is_file():
            missing.append(f"{name}: no dbt_project.yml at {p}")
    if not paths["dbt"].is_file():
        missing.append(f"dbt not found at {paths['dbt']} (uv venv bench/.venv-dbt && uv pip install --python "
                       "bench/.venv-dbt/bin/python 'dbt-duckdb>=1.9,<1.11' 'dbt-core>=1.9,<1.11')")
    return paths, missing


def month_of(d: date) -> date:
    return d.replace(day=1)


def month_end(m: date) -> date:
    nxt = (m.replace(day=28) + timedelta(days=4)).replace(day=1)
    return nxt - timedelta(days=1)


def sections(rows) -> dict[str, Decimal]:
    """(account_type, amount as credit-positive) rows -> the P&L's sections and net profit."""
    out: defaultdict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for typ, amount in rows:
        typ = (typ or "").upper()
        amount = Decimal(amount or 0)
        if typ in INCOME_TYPES:
            out["income"] += amount
        elif typ in OTHER_INCOME_TYPES:
            out["other_income"] += amount
        elif typ in COST_TYPES:
            out["cost_of_sales"] -= amount
        elif typ in EXPENSE_TYPES:
            out["operating_expenses"] -= amount
        else:
            continue
        out["net_profit"] += amount
    return dict(out)


def sync_fake(work: Path, invoices: int | None, weeks: int):
    from xero_core import oauth
    from xero_core.fake import FakeClock, FakeXero
    from xero_core.settings import load_settings
    from xero_core.engine import Engine

    clock = FakeClock(datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc))
    fake = FakeXero(seed=42, today=TODAY, clock=clock, invoices=invoices)
    s = load_settings({"XERO_MOCK_MODE": "true", "XERO_DATA_DIR": str(work / "data"),
                       "XERO_ENCRYPTION_KEY": secrets.token_hex(32), **fake.settings_env("http://fake.test")})
    tenants = oauth.complete_connect(s, fake.consent(oauth.begin_connect(s, clock=clock)), transport=fake.transport(),
                                     clock=clock)
    org = next(t["tenant_id"] for t in tenants if t["tenant_type"] == "ORGANISATION")
    res = Engine(s, transport=fake.transport(), clock=clock).sync(org, weeks=weeks, trigger="cli")
    if not res.ok:
        raise SystemExit(f"sync failed: {res.to_dict()}")
    return s, fake, org


EXPORTS = {
    "account": "SELECT account_id, name, code, type, class, status, currency_code, now() AS _fivetran_synced "
               "FROM accounts WHERE tenant_id = $t",
    "journal": "SELECT DISTINCT journal_id, journal_number, journal_date, created_at AS created_date_utc, reference, "
               "source_id, source_type, now() AS _fivetran_synced FROM journal_lines WHERE tenant_id = $t",
    "journal_line": "SELECT journal_line_id, journal_id, account_id, account_code, account_name, account_type, "
                    "description, net_amount, gross_amount, tax_amount, tax_type, now() AS _fivetran_synced "
                    "FROM journal_lines WHERE tenant_id = $t",
    "invoice": "SELECT invoice_id, invoice_number, type, contact_id, date, due_date, status, currency_code, "
               "subtotal AS sub_total, total_tax, total, amount_due, amount_paid, updated_at AS updated_date_utc, "
               "now() AS _fivetran_synced FROM invoices WHERE tenant_id = $t",
    "invoice_line_item": "SELECT line_item_id, invoice_id, account_code, description, quantity, unit_amount, "
                         "line_amount, tax_amount, now() AS _fivetran_synced FROM invoice_lines WHERE tenant_id = $t",
    "contact": "SELECT contact_id, name, email AS email_address, status AS contact_status, now() AS _fivetran_synced "
               "FROM contacts WHERE tenant_id = $t",
    "organization": "SELECT tenant_id AS organisation_id, tenant_name AS name, 'AUD' AS base_currency, "
                    "30 AS financial_year_end_day, 6 AS financial_year_end_month, now() AS _fivetran_synced "
                    "FROM connections WHERE tenant_id = $t",
}

DBT_PROJECT = """\
name: ledgerlink_compare
version: '1.0'
config-version: 2
profile: ledgerlink_compare
vars:
  xero_schema: xero
  xero__calendar_start_date: '{start}'
  xero__using_credit_note: false
  xero__using_bank_transaction: false
  xero__using_tracking_categories: false
  xero__using_journal_line_tracking_category: false
  xero__using_invoice_line_item_tracking_category: false
  xero__using_journal_cash: false
  xero__using_journal_cash_line_tracking_category: false
"""

PROFILES = """\
ledgerlink_compare:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: '{path}'
      threads: 2
"""


def run_dbt(paths: dict[str, Path], work: Path, parquet: dict[str, Path], start: date) -> Path:
    proj = work / "dbt_project"
    (proj / "dbt_packages").mkdir(parents=True)
    for name in ("xero", "fivetran_utils", "dbt_utils"):
        os.symlink(paths[name].resolve(), proj / "dbt_packages" / name)
    (proj / "dbt_project.yml").write_text(DBT_PROJECT.format(start=start.isoformat()))
    db_file = work / "dbt.duckdb"
    (proj / "profiles.yml").write_text(PROFILES.format(path=db_file))
    py = paths["dbt"].parent / "python"
    load = "import duckdb\ncon = duckdb.connect(%r)\ncon.execute('CREATE SCHEMA IF NOT EXISTS xero')\n" % str(db_file)
    for table, p in parquet.items():
        load += f"con.execute(\"CREATE OR REPLACE TABLE xero.{table} AS SELECT * FROM read_parquet('{p}')\")\n"
    subprocess.run([str(py), "-c", load], check=True)
    env = {**os.environ, "DBT_PROFILES_DIR": str(proj), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    dbt = subprocess.run([str(paths["dbt"]), "run", "--select", "+xero__profit_and_loss_report", "--project-dir",
                          str(proj), "--profiles-dir", str(proj)], cwd=proj, env=env, capture_output=True, text=True)
    print(textwrap.indent("\n".join(dbt.stdout.splitlines()[-8:]), "  dbt| "))
    if dbt.returncode != 0:
        raise SystemExit(f"dbt run failed:\n{dbt.stdout[-4000:]}\n{dbt.stderr[-2000:]}")
    out = work / "dbt_pnl.parquet"
    subprocess.run([str(py), "-c", textwrap.dedent(f"""
        import duckdb
        con = duckdb.connect({str(db_file)!r}, read_only=True)
        schema = con.execute("SELECT table_schema FROM information_schema.tables "
                             "WHERE table_name = 'xero__profit_and_loss_report'").fetchone()[0]
        con.execute(f"COPY (SELECT date_month, account_type, account_class, net_amount "
                    f"FROM {{schema}}.xero__profit_and_loss_report) TO '{out}' (FORMAT parquet)")
        """)], check=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--invoices", type=int, default=3000, help="sales invoices in the fake organisation")
    ap.add_argument("--weeks", type=int, default=30, help="weeks of weekly P&L to sync (sets the months compared)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    paths, missing = requirements()
    if missing:
        print("dbt comparison skipped:\n  " + "\n  ".join(missing))
        return 0
    import duckdb

    from xero_core import db

    work = Path(tempfile.mkdtemp(prefix="ledgerlink-dbt-"))
    try:
        s, fake, org = sync_fake(work, args.invoices, args.weeks)
        parquet = {}
        with db.connect(s.db_path, read_only=True) as con:
            for table, sql in EXPORTS.items():
                p = work / f"{table}.parquet"
                con.execute(f"COPY ({sql.replace('$t', repr(org))}) TO '{p}' (FORMAT parquet)")
                parquet[table] = p
            ours_journals = con.execute(
                "SELECT date_trunc('month', journal_date)::DATE, account_type, -sum(net_amount) FROM journal_lines "
                "WHERE tenant_id = ? GROUP BY ALL", [org]).fetchall()
            weekly = con.execute(
                "SELECT week_ending, income, cost_of_sales, other_income, operating_expenses, net_profit "
                "FROM financial_weekly WHERE tenant_id = ? ORDER BY week_ending", [org]).fetchall()
        first_month = min(r[0] for r in ours_journals)
        dbt_file = run_dbt(paths, work, parquet, first_month)
        dbt_rows = duckdb.execute(f"SELECT date_month::DATE, account_type, net_amount FROM read_parquet('{dbt_file}')"
                                  ).fetchall()

        by_month = lambda rows: {m: sections([(t, a) for mm, t, a in rows if mm == m])  # noqa: E731
                                 for m in {r[0] for r in rows}}
        dbt_m, jr_m = by_month(dbt_rows), by_month(ours_journals)
        wk_m: dict[date, dict] = defaultdict(lambda: defaultdict(lambda: Decimal("0.00")))
        for we, inc, cos, oi, opex, net in weekly:
            m = month_of(we)
            wk_m[m]["income"] += inc
            wk_m[m]["net_profit"] += net
        # complete months whose every week-ending week we synced
        first_week_start = weekly[0][0] - timedelta(days=6)
        months = sorted(m for m in wk_m if m >= month_of(first_week_start + timedelta(days=7)) and month_end(m) < TODAY
                        and m > month_of(first_week_start))
        o = fake.org(org)
        print()
        print(f"Monthly net profit, {len(months)} complete months (AUD); differences explained on the right")
        head = (f"{'month':<8} {'dbt_xero':>13} {'journals':>13} {'weekly->mo':>13} {'Xero report':>13} "
                f"{'wk-jr':>12} {'boundary days':>13} {'rep-dbt':>10} {'FX reval':>10} {'unexplained':>11}")
        print(head)
        worst = Decimal("0.00")
        for m in months:
            d = dbt_m.get(m, {}).get("net_profit", Decimal("0.00"))
            j = jr_m.get(m, {}).get("net_profit", Decimal("0.00"))
            w = wk_m[m]["net_profit"]
            rep = o.profit_and_loss(m, month_end(m))["net_profit"]
            rep_no_fx = o.profit_and_loss(m, month_end(m), include_report_only=False)["net_profit"]
            # the weeks ending in month m cover [first week start, last week end]: their journal net
            wes = [r[0] for r in weekly if month_of(r[0]) == m]
            span = o.profit_and_loss(wes[0] - timedelta(days=6), wes[-1], include_report_only=False)["net_profit"]
            span_fx = o.profit_and_loss(wes[0] - timedelta(days=6), wes[-1])["net_profit"] - span
            boundary = span - rep_no_fx
            fx = rep - rep_no_fx
            unexplained = abs(w - j - boundary - span_fx) + abs(rep - d - fx) + abs(j - d)
            worst = max(worst, abs(unexplained))
            print(f"{m:%Y-%m}  {d:>13,.2f} {j:>13,.2f} {w:>13,.2f} {rep:>13,.2f} {w - j:>12,.2f} "
                  f"{boundary + span_fx:>13,.2f} {rep - d:>10,.2f} {fx:>10,.2f} {unexplained:>11,.2f}")
        print()
        print("journals - dbt_xero: 0 when both read the same journals (dbt's sign: credit positive).")
        print("weekly->mo - journals: a week counts in the month it ends in, so the days of a boundary week that fall in")
        print("  the neighbouring month move with it ('boundary days' = those days' profit, FX included); only daily")
        print("  data (journal_lines by date, as dbt_xero uses) gives calendar months exactly.")
        print("Xero report - dbt_xero: the month-end unrealised currency revaluation (account 498) that Xero's P&L shows")
        print("  and no journal carries ('FX reval').")
        print(f"largest unexplained difference: {worst:,.2f}")
        return 0 if worst == 0 else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    raise SystemExit(main())
