"""Weekly finance analysis over Ledgerlink's DuckDB, as polars frames: for notebooks and the app.

Quick start (a notebook anywhere in the checkout; nothing to edit)::

    from xero_core import analysis as an

    db = an.locate_database()          # <repo>/data/xero.duckdb, or XERO_DATA_DIR from the env / .env
    print(an.data_status(db))          # is there data? if not, how to get some
    an.organisation(db)                # name, base currency, time zone, financial year end (GET /Organisation)
    an.headline(db)                    # income, gross margin %, opex, net profit, cash: vs last week and last year
    an.weekly_pnl(db)                  # one row per complete week: income … net_profit
    an.latest_week_comparison(db)      # latest week vs previous week, same week last year, 4-week average
    an.margins(db)                     # gross and net margin per week, and over a rolling 4 weeks
    an.rolling_averages(db, window=4)  # trailing averages of every P&L line
    an.revenue_mix(db, weeks=4)        # sales by region and job type, with shares
    an.revenue_trend(db, by="region")  # weekly sales per region (long format, for charts)
    an.cash_position(db)               # weekly opening / received / spent / closing, all bank accounts
    an.cash_runway(db)                 # closing cash ÷ average weekly net outflow
    an.top_account_movers(db, n=10)    # the accounts that moved most against the week before
    an.latest_week(db)                 # the week the comparisons default to

Charts: `an.use_offline_charts()` once, then altair on `an.money_as_float(frame)`: each chart is
interactive in JupyterLab / VS Code and a PNG in HTML exports and GitHub's viewer.

`source` (the first argument everywhere) is a `Settings`, a data directory, or the `.duckdb`
file itself. Each call opens the database read-only, reads, and closes it at once: DuckDB lets
only one process write, and the scheduler or the app may be syncing.

Organisations
    `tenant_id=None` means "the only organisation": with several, every function raises
    `ChooseOrganisation` listing them (never a silent first pick). `organisations(db)` lists them
    with their weeks of data.

Conventions
    * Money is `Decimal(18,2)` (polars `Decimal`) as stored, never a float; averages are rounded
      half-up to the cent. Cast to `pl.Float64` only to draw a chart.
    * Percentages are `Float64` in percent (42.5 means 42.5 %), rounded to 0.1.
    * A week is named by its last day, `week_ending`. A week is *complete* once `today` is past
      its last day; every function shows complete weeks only (the week under way would plunge every
      trend at its right edge) unless asked `include_current=True`, which names it "… (to date)".
      `today` is the date in the organisation's own time zone (`organisations.timezone`, from Xero;
      XERO_TIMEZONE before its first sync), as the sync sees it, whatever zone your computer is in;
      pass `today=` or set `XERO_TODAY=YYYY-MM-DD` in the environment to pin it.
    * Every amount is in the organisation's base currency (`currency(db)`), foreign-currency
      invoices converted at their own rate.
    * Costs are positive as in Xero's report: gross_profit = income − cost_of_sales;
      net_profit = gross_profit + other_income − operating_expenses.
    * "Same week last year" is 52 weeks (364 days) earlier: the same weekday, so the weeks line up.

Errors (all `AnalysisError`, shown in a notebook as one friendly paragraph without a traceback):
`NoDataYet` (says how to get data), `ChooseOrganisation`, `UnknownOrganisation`.

Plain SQL works too: `with xero_core.db.connect(db, read_only=True) as con:
con.sql("SELECT * FROM financial_weekly").pl()` (see notebooks/query_tables.ipynb).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import polars as pl

from . import clock
from .errors import LedgerlinkError
from .pipeline.request import DEMO_WEEKS

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler

    from .settings import Settings

# A read of the database: q(sql, *params) -> a polars frame (`_reader`).
Query = Callable[..., pl.DataFrame]

METRICS = ("income", "cost_of_sales", "gross_profit", "other_income", "operating_expenses", "net_profit")
LABELS = {
    "income": "Income",
    "cost_of_sales": "Cost of sales",
    "gross_profit": "Gross profit",
    "other_income": "Other income",
    "operating_expenses": "Operating expenses",
    "net_profit": "Net profit",
}
# Sections whose increase lowers profit (costs are stored positive).
COST_SECTIONS = ("cost_of_sales", "operating_expenses")
MONEY = pl.Decimal(18, 2)
CENT = Decimal("0.01")
DB_FILE = "xero.duckdb"

HOW_TO_GET_DATA = (
    "To get data:\n"
    "  * try it with the offline fake Xero: `python -m xero_core demo` from the repository root "
    f"(mock mode: connects the demo organisation and syncs {DEMO_WEEKS} weeks, the latest first; "
    "`--weeks N` for fewer);\n"
    "  * or connect your Xero organisation in the admin app (`streamlit run app.py`, Connection page) and press "
    "Sync now, or run `python -m xero_core sync --all --weeks 60`; the scheduler (`python scheduler.py`) keeps it "
    "fresh.\n"
    "If your data lives elsewhere, set XERO_DATA_DIR (environment or .env) and restart the kernel."
)


class AnalysisError(LedgerlinkError):
    """A question the data cannot answer as asked; the message says what to do."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: finance users get the sentence, not the stack.
        return [f"{type(self).__name__}: {self}"]


class NoDataYet(AnalysisError):
    pass


class ChooseOrganisation(AnalysisError):
    pass


class UnknownOrganisation(AnalysisError):
    pass


# ---------------------------------------------------------------------------------------------
# Finding and reading the database
# ---------------------------------------------------------------------------------------------


def find_repo_root(start: Path | str | None = None) -> Path:
    """The checkout's root (holds pyproject.toml and xero_core/), searching up from `start`
    (default: the working directory, e.g. notebooks/), else where this package lives."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "xero_core").is_dir():
            return d
    pkg_parent = Path(__file__).resolve().parents[1]
    if (pkg_parent / "pyproject.toml").is_file():
        return pkg_parent
    return here


def locate_database(start: Path | str | None = None, env: dict[str, str] | None = None) -> Path:
    """Where the app and scheduler keep the database, without needing Xero credentials.

    XERO_DATA_DIR from the environment, else from the repository's .env (or XERO_ENV_FILE), else
    `data`; a relative directory is taken from the repository root, not the notebook's folder.
    """
    root = find_repo_root(start)
    environ = dict(os.environ if env is None else env)
    data_dir = (environ.get("XERO_DATA_DIR") or "").strip()
    if not data_dir:
        env_file = Path(environ.get("XERO_ENV_FILE") or ".env")
        env_file = env_file if env_file.is_absolute() else root / env_file
        if env_file.is_file():
            from dotenv import dotenv_values

            data_dir = (dotenv_values(env_file).get("XERO_DATA_DIR") or "").strip()
    path = Path(data_dir or "data").expanduser()
    return (path if path.is_absolute() else root / path) / DB_FILE


@dataclass(frozen=True)
class WorkingCopy:
    """Ledgerlink's working database read with its Settings' time zone: the admin app reads this, so
    its own writes show at once (notebooks read the snapshot, xero_core/snapshot.py)."""

    db_path: Path
    timezone: str | None = None


def working_copy(settings: Settings) -> WorkingCopy:
    return WorkingCopy(Path(settings.db_path), getattr(settings, "timezone", None))


def database_path(source: Any) -> Path:
    """The .duckdb file for a Settings, a data directory or the file itself."""
    if hasattr(source, "snapshot_path"):  # Settings: the readers' copy, never the working database
        return Path(source.snapshot_path)
    if hasattr(source, "db_path"):
        return Path(source.db_path)
    if source is None:
        return locate_database()
    p = Path(source)
    return p if p.suffix == ".duckdb" or p.is_file() else p / DB_FILE


@contextlib.contextmanager
def _reader(source: Any) -> Iterator[Query]:
    """One brief read-only connection; yields q(sql, *params) -> polars frame."""
    from .db import connect

    path = database_path(source)
    if not path.exists():
        raise NoDataYet(f"There is no Ledgerlink database at {path} yet.\n{HOW_TO_GET_DATA}")
    with connect(path, read_only=True) as con:
        yield lambda sql, *params: con.sql(sql, params=list(params) or None).pl()


# ---------------------------------------------------------------------------------------------
# Organisations and data status
# ---------------------------------------------------------------------------------------------

_ORGS_SQL = """
WITH data AS (
    SELECT tenant_id, count(*) AS weeks, min(week_ending) AS first_week, max(week_ending) AS latest_week
    FROM financial_weekly GROUP BY tenant_id
), orgs AS (
    SELECT tenant_id, tenant_name, status, role FROM connections
    WHERE upper(coalesce(tenant_type, 'ORGANISATION')) <> 'PRACTICEMANAGER'
)
SELECT coalesce(o.tenant_id, d.tenant_id) AS tenant_id,
       coalesce(o.tenant_name, d.tenant_id) AS tenant_name,
       coalesce(o.status, 'unknown') AS status, o.role,
       coalesce(d.weeks, 0)::INTEGER AS weeks, d.first_week, d.latest_week
FROM orgs o FULL OUTER JOIN data d ON o.tenant_id = d.tenant_id
WHERE d.tenant_id IS NOT NULL OR o.status <> 'disconnected'
ORDER BY lower(tenant_name), tenant_id
"""


def organisations(source: Any = None) -> pl.DataFrame:
    """Organisations you can analyse: connected ones and any with weekly data (even if since
    disconnected): tenant_id, tenant_name, status, role (practice-ledger, client-organisation or
    blank), weeks, first_week, latest_week."""
    with _reader(source) as q:
        return q(_ORGS_SQL)


def _describe_orgs(orgs: pl.DataFrame) -> str:
    return "\n".join(
        f"  tenant_id={r['tenant_id']!r}  # {r['tenant_name']} ({r['weeks']} weeks of data, {r['status']}"
        f"{', ' + r['role'] if r.get('role') else ''})"
        for r in orgs.iter_rows(named=True)
    )


def pick_tenant(source: Any = None, tenant_id: str | None = None, *, _orgs: pl.DataFrame | None = None) -> str:
    """`tenant_id` if known; else the only organisation; else the practice ledger, when an admin has
    named one (`python -m xero_core role`; a role only suggested is not taken); else a clear error
    listing them. A practice's finance lead opens the notebooks on its own books first."""
    orgs = _orgs if _orgs is not None else organisations(source)
    if tenant_id is not None:
        if tenant_id in orgs["tenant_id"].to_list():
            return tenant_id
        raise UnknownOrganisation(
            f"No organisation {tenant_id!r} in {database_path(source)}. Known organisations:\n"
            + (_describe_orgs(orgs) or "  (none)")
        )
    if orgs.height == 0:
        raise NoDataYet(f"No organisation is connected or synced in {database_path(source)}.\n{HOW_TO_GET_DATA}")
    if orgs.height > 1:
        ledger = orgs.filter((pl.col("role") == "practice-ledger") & (pl.col("weeks") > 0)) if "role" in orgs.columns else orgs.clear()
        if ledger.height == 1:
            return str(ledger["tenant_id"][0])
        raise ChooseOrganisation(
            f"{orgs.height} organisations are in {database_path(source)}; say which one, e.g. "
            f"weekly_pnl(db, tenant_id=...), with one of:\n" + _describe_orgs(orgs)
        )
    return str(orgs["tenant_id"][0])


@dataclass
class DataStatus:
    """Whether there is data to analyse, and if not, how to get it. `str()` is the explanation."""

    database: Path
    exists: bool
    organisations: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    @property
    def has_data(self) -> bool:
        return any(o["weeks"] > 0 for o in self.organisations)

    def require(self) -> "DataStatus":
        """Raise NoDataYet (a friendly message in a notebook, no traceback) when there is no data."""
        if not self.has_data:
            raise NoDataYet(self.message)
        return self

    def __str__(self) -> str:
        return self.message

    def _repr_markdown_(self) -> str:
        return self.message.replace("\n", "  \n")


def data_status(source: Any = None) -> DataStatus:
    """Is there weekly data? Never raises for a missing database: it explains instead."""
    path = database_path(source)
    if not path.exists():
        return DataStatus(path, False, [], f"No data yet: there is no Ledgerlink database at {path}.\n{HOW_TO_GET_DATA}")
    orgs = organisations(path).to_dicts()
    with_data = [o for o in orgs if o["weeks"] > 0]
    if not with_data:
        connected = ", ".join(o["tenant_name"] for o in orgs) or "none"
        msg = (
            f"No data yet: the database {path} holds no weekly P&L. Connected organisations: {connected}.\n"
            + HOW_TO_GET_DATA
        )
        return DataStatus(path, True, orgs, msg)
    lines = [f"Data in {path}:"]
    for o in with_data:
        lines.append(f"  {o['tenant_name']} ({o['tenant_id']}): {o['weeks']} weeks, {o['first_week']} to {o['latest_week']}")
    if len(with_data) > 1:
        lines.append("Several organisations: pass tenant_id=... to each function.")
    return DataStatus(path, True, orgs, "\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Small exact helpers (Decimal in, Decimal out)
# ---------------------------------------------------------------------------------------------


def _cents(x: Decimal | None) -> Decimal | None:
    return None if x is None else Decimal(x).quantize(CENT, rounding=ROUND_HALF_UP)


def _mean(values: Iterable[Decimal | None]) -> Decimal | None:
    vals = [v for v in values if v is not None]
    return _cents(sum(vals, Decimal(0)) / len(vals)) if vals else None


def _pct(part: Decimal | None, whole: Decimal | None) -> float | None:
    if part is None or whole is None or whole == 0:
        return None
    return float((Decimal(part) * 100 / abs(Decimal(whole))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _sub(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else a - b


def _today(today: date | None, source: Any = None, tz: str | None = None) -> date:
    """`today`, else the date in the organisation's own time zone (`tz`, from `organisations`), else
    XERO_TIMEZONE (a Settings' own, else the environment's, else Australia/Sydney): the date the
    sync used for that organisation, whatever zone this computer is in."""
    return today or clock.today(tz or getattr(source, "timezone", None))


def _latest_complete(weeks: Sequence[date], today: date | None, source: Any = None, tz: str | None = None) -> date | None:
    if not weeks:
        return None
    done = [w for w in weeks if w < _today(today, source, tz)]
    return max(done) if done else max(weeks)


def _latest_of_pnl(weeks: Sequence[date], today: date | None, source: Any, tz: str | None, tenant: str) -> date:
    """`_latest_complete` of an organisation's P&L weeks, NoDataYet (the sentence) when there are none."""
    week = _latest_complete(weeks, today, source, tz)
    if week is None:
        raise NoDataYet(f"Organisation {tenant} has no weekly P&L yet: sync it first.\n{HOW_TO_GET_DATA}")
    return week


# ---------------------------------------------------------------------------------------------
# The organisation's own settings (issue 23 §2): its currency, time zone and financial year
# ---------------------------------------------------------------------------------------------

_ORG_FIELDS = ("name", "base_currency", "country_code", "timezone", "financial_year_end_month",
               "financial_year_end_day", "short_code")


def _org_row(q: Query, tenant: str) -> dict[str, Any]:
    try:
        df = q(f"SELECT {', '.join(_ORG_FIELDS)} FROM organisations WHERE tenant_id = ?", tenant)
    except Exception:  # a database from before the organisations table
        df = pl.DataFrame()
    row = df.row(0, named=True) if df.height else {}
    return {k: row.get(k) for k in _ORG_FIELDS}


def _tz(q: Query, tenant: str) -> str | None:
    tz = _org_row(q, tenant).get("timezone")
    return tz if isinstance(tz, str) else None


def organisation(source: Any = None, tenant_id: str | None = None) -> dict[str, Any]:
    """The organisation as Xero describes it (GET /Organisation, stored by the sync): tenant_id, name,
    base_currency (every amount here is in it), country_code, timezone (IANA: its "today" and its
    weeks), financial_year_end_month/_day, short_code. Values are None before its first sync."""
    with _reader(source) as q:
        tenant = pick_tenant(source, tenant_id, _orgs=q(_ORGS_SQL))
        return {"tenant_id": tenant, **_org_row(q, tenant)}


def currency(source: Any = None, tenant_id: str | None = None) -> str:
    """The organisation's base currency code (e.g. 'NZD'), '' before its first sync: what every
    amount in the weekly tables is in. For labels: `f"Income ({an.currency(db)})"`."""
    return organisation(source, tenant_id).get("base_currency") or ""


def today(source: Any = None, tenant_id: str | None = None) -> date:
    """Today for the organisation: the date in its own time zone (XERO_TODAY pins it)."""
    with _reader(source) as q:
        tenant = pick_tenant(source, tenant_id, _orgs=q(_ORGS_SQL))
        return _today(None, source, _tz(q, tenant))


def financial_year(source: Any = None, tenant_id: str | None = None, *, on: date | None = None) -> tuple[date, date]:
    """(first day, last day) of the organisation's financial year holding `on` (default its today),
    from its financial year end (30 June when not known)."""
    org = organisation(source, tenant_id)
    day = on or today(source, org["tenant_id"])
    month, dom = org.get("financial_year_end_month") or 6, org.get("financial_year_end_day") or 30

    def end_in(year: int) -> date:
        import calendar

        return date(year, month, min(dom, calendar.monthrange(year, month)[1]))

    end = end_in(day.year) if day <= end_in(day.year) else end_in(day.year + 1)
    prev = end_in(end.year - 1)
    return prev + timedelta(days=1), end


def week_label(week_ending: date, today: date | None = None) -> str:
    """How a week is named for people: "w/e Sat 21 Nov 2026"; the week still under way (its last
    day not past `today`) is "Sat 28 Nov 2026 (to date)", never shown as a finished week."""
    text = f"{week_ending:%a} {week_ending.day} {week_ending:%b %Y}"
    if today is not None and week_ending >= today:
        return f"{text} (to date)"
    return f"w/e {text}"


def week_axis(weeks: Sequence[date], *, every: int | None = None) -> dict[str, Any]:
    """Keyword arguments for an altair temporal axis that names the week-ending dates themselves
    (a tick on each week's last day, "21 Nov"), not the calendar ticks Vega picks ("Mon 05, Tue 13"):
    `alt.X("week_ending:T", title="Week ending", axis=alt.Axis(**an.week_axis(weeks)))`."""
    ws = sorted(set(weeks))
    step = every or max(1, -(-len(ws) // 13))
    picked = ws[::-1][::step][::-1]
    return {"values": [f"{w.isoformat()}T00:00:00" for w in picked], "format": "%d %b", "labelAngle": 0,
            "tickCount": len(picked)}


def comparison_weeks(week_ending: date, average_weeks: int = 4) -> dict[str, date]:
    """The weeks `latest_week_comparison` compares: previous, same week last year, average span."""
    return {
        "latest": week_ending,
        "previous": week_ending - timedelta(days=7),
        "last_year": week_ending - timedelta(days=364),
        "average_from": week_ending - timedelta(days=7 * average_weeks),
        "average_to": week_ending - timedelta(days=7),
    }


# ---------------------------------------------------------------------------------------------
# The weekly P&L and what is derived from it
# ---------------------------------------------------------------------------------------------


def _pnl(q: Query, tenant: str) -> pl.DataFrame:
    return q(
        f"SELECT week_start, week_ending, {', '.join(METRICS)} FROM financial_weekly "
        "WHERE tenant_id = ? ORDER BY week_ending",
        tenant,
    )


def _tenant_and_pnl(source: Any, tenant_id: str | None) -> tuple[str, pl.DataFrame]:
    tenant, df, _ = _tenant_pnl_tz(source, tenant_id)
    return tenant, df


def _tenant_pnl_tz(source: Any, tenant_id: str | None) -> tuple[str, pl.DataFrame, str | None]:
    with _reader(source) as q:
        tenant = pick_tenant(source, tenant_id, _orgs=q(_ORGS_SQL))
        df = _pnl(q, tenant)
        tz = _tz(q, tenant)
    if df.height == 0:
        raise NoDataYet(f"Organisation {tenant} has no weekly P&L yet: sync it first.\n{HOW_TO_GET_DATA}")
    return tenant, df, tz


def _complete_flag(df: pl.DataFrame, today: date | None, source: Any, tz: str | None) -> pl.DataFrame:
    day = _today(today, source, tz)
    return df.with_columns(pl.col("week_ending").lt(pl.lit(day)).alias("complete"))


def latest_week(source: Any = None, tenant_id: str | None = None, *, today: date | None = None) -> date:
    """The latest complete week with a P&L (the latest week at all if none is complete yet)."""
    tenant, df, tz = _tenant_pnl_tz(source, tenant_id)
    return _latest_of_pnl(df["week_ending"].to_list(), today, source, tz, tenant)


def weekly_pnl(source: Any = None, tenant_id: str | None = None, *, weeks: int | None = None,
               today: date | None = None, include_current: bool = False) -> pl.DataFrame:
    """One row per complete week, oldest first: week_start, week_ending, income, cost_of_sales,
    gross_profit, other_income, operating_expenses, net_profit (Decimal), complete (bool), week
    (how to name it: "w/e Sat 21 Nov 2026"). The week still under way (in the organisation's own time
    zone) is left out unless `include_current=True`, and then named "… (to date)": never a point of
    the trend. `weeks` keeps the last N rows."""
    _, df, tz = _tenant_pnl_tz(source, tenant_id)
    day = _today(today, source, tz)
    df = _complete_flag(df, today, source, tz)
    if not include_current:
        df = df.filter(pl.col("complete"))
    df = df.with_columns(pl.Series("week", [week_label(w, day) for w in df["week_ending"].to_list()], dtype=pl.String))
    return df.tail(weeks) if weeks else df


def latest_week_comparison(source: Any = None, tenant_id: str | None = None, *, week_ending: date | None = None,
                           average_weeks: int = 4, today: date | None = None) -> pl.DataFrame:
    """The latest complete week's P&L against the previous week, the same week last year and the
    average of the `average_weeks` weeks before it. One row per P&L line (`metric`, `label`):
    latest, previous_week, change, change_pct, same_week_last_year, change_vs_last_year,
    change_vs_last_year_pct, avg_4_weeks, change_vs_avg, change_vs_avg_pct. A comparator with no
    data is null (e.g. less than a year synced). `comparison_weeks()` names the weeks."""
    tenant, df, tz = _tenant_pnl_tz(source, tenant_id)
    by_week = {r["week_ending"]: r for r in df.iter_rows(named=True)}
    we = week_ending or _latest_of_pnl(list(by_week), today, source, tz, tenant)
    if we not in by_week:
        raise NoDataYet(f"No weekly P&L for the week ending {we}; weeks available: {min(by_week)} to {max(by_week)}.")
    w = comparison_weeks(we, average_weeks)
    prev, ly = by_week.get(w["previous"]), by_week.get(w["last_year"])
    span = [by_week.get(we - timedelta(days=7 * i)) for i in range(1, average_weeks + 1)]
    avg_col = f"avg_{average_weeks}_weeks"
    rows = []
    for m in METRICS:
        latest = by_week[we][m]
        p = prev[m] if prev else None
        y = ly[m] if ly else None
        a = _mean(r[m] for r in span if r)
        rows.append({
            "metric": m, "label": LABELS[m], "latest": latest,
            "previous_week": p, "change": _sub(latest, p), "change_pct": _pct(_sub(latest, p), p),
            "same_week_last_year": y, "change_vs_last_year": _sub(latest, y), "change_vs_last_year_pct": _pct(_sub(latest, y), y),
            avg_col: a, "change_vs_avg": _sub(latest, a), "change_vs_avg_pct": _pct(_sub(latest, a), a),
        })
    money = ["latest", "previous_week", "change", "same_week_last_year", "change_vs_last_year", avg_col, "change_vs_avg"]
    return pl.DataFrame(rows, schema={
        "metric": pl.String, "label": pl.String, "latest": MONEY, "previous_week": MONEY, "change": MONEY,
        "change_pct": pl.Float64, "same_week_last_year": MONEY, "change_vs_last_year": MONEY,
        "change_vs_last_year_pct": pl.Float64, avg_col: MONEY, "change_vs_avg": MONEY, "change_vs_avg_pct": pl.Float64,
    }).with_columns(pl.col(money).cast(MONEY))


HEADLINE = (("income", "Income", "money"), ("gross_margin_pct", "Gross margin", "percent"),
            ("operating_expenses", "Operating expenses", "money"), ("net_profit", "Net profit", "money"),
            ("cash_at_bank", "Cash at bank", "money"))


def headline(source: Any = None, tenant_id: str | None = None, *, week_ending: date | None = None,
             today: date | None = None) -> pl.DataFrame:
    """What a finance lead looks at first, for the latest complete week (or `week_ending`): income,
    gross margin %, operating expenses, net profit and cash at bank (closing, all bank accounts),
    each against the week before and the same week last year (52 weeks earlier). One row per figure:
    metric, label, unit ("money" in the base currency, or "percent"), week_ending, latest,
    previous_week, change, change_pct, same_week_last_year, change_vs_last_year,
    change_vs_last_year_pct, currency. A margin's change is in percentage points (change_pct null).
    A comparison with no data is null. The Data page shows exactly these figures."""
    with _reader(source) as q:
        tenant = pick_tenant(source, tenant_id, _orgs=q(_ORGS_SQL))
        org = _org_row(q, tenant)
        pnl = _pnl(q, tenant)
        cash = q("SELECT week_ending, sum(closing)::DECIMAL(18,2) AS closing FROM cash_position_weekly "
                 "WHERE tenant_id = ? GROUP BY 1", tenant)
    if pnl.height == 0:
        raise NoDataYet(f"Organisation {tenant} has no weekly P&L yet: sync it first.\n{HOW_TO_GET_DATA}")
    by_week = {r["week_ending"]: r for r in pnl.iter_rows(named=True)}
    closing = dict(cash.iter_rows()) if cash.height else {}
    we = week_ending or _latest_of_pnl(list(by_week), today, source, org.get("timezone"), tenant)

    def figures(w: date) -> dict[str, Any] | None:
        r = by_week.get(w)
        if r is None:
            return None
        gm = None
        if r["income"]:
            gm = (Decimal(r["gross_profit"]) * 100 / abs(Decimal(r["income"]))).quantize(CENT, rounding=ROUND_HALF_UP)
        return {"income": r["income"], "gross_margin_pct": gm, "operating_expenses": r["operating_expenses"],
                "net_profit": r["net_profit"], "cash_at_bank": closing.get(w)}

    now, prev, ly = figures(we), figures(we - timedelta(days=7)), figures(we - timedelta(days=364))
    if now is None:
        raise NoDataYet(f"No weekly P&L for the week ending {we}.")
    rows = []
    for metric, label, unit in HEADLINE:
        v = now[metric]
        p = prev[metric] if prev else None
        y = ly[metric] if ly else None
        pct = unit == "money"
        rows.append({"metric": metric, "label": label, "unit": unit, "week_ending": we, "latest": v,
                     "previous_week": p, "change": _sub(v, p), "change_pct": _pct(_sub(v, p), p) if pct else None,
                     "same_week_last_year": y, "change_vs_last_year": _sub(v, y),
                     "change_vs_last_year_pct": _pct(_sub(v, y), y) if pct else None,
                     "currency": org.get("base_currency") or ""})
    return pl.DataFrame(rows, schema={
        "metric": pl.String, "label": pl.String, "unit": pl.String, "week_ending": pl.Date, "latest": MONEY,
        "previous_week": MONEY, "change": MONEY, "change_pct": pl.Float64, "same_week_last_year": MONEY,
        "change_vs_last_year": MONEY, "change_vs_last_year_pct": pl.Float64, "currency": pl.String})


def _trailing(values: list[tuple[date, Decimal | None]], window: int) -> list[list[Decimal | None] | None]:
    """For each week, the values of the `window` weeks ending there (by date, so a missing week
    leaves a gap rather than pulling in an older one); None until a full window exists."""
    index = {d: v for d, v in values}
    out: list[list[Decimal | None] | None] = []
    for d, _ in values:
        span = [d - timedelta(days=7 * i) for i in range(window)]
        out.append([index[x] for x in span] if all(x in index for x in span) else None)
    return out


def rolling_averages(source: Any = None, tenant_id: str | None = None, *, window: int = 4,
                     metrics: Sequence[str] = METRICS, today: date | None = None) -> pl.DataFrame:
    """week_ending, each metric, and `<metric>_avg_<window>w`: the average of the `window`
    weeks ending that week (null until `window` consecutive weeks exist). Decimal, to the cent.
    Complete weeks only: the week under way would drag every average down."""
    _, df, tz = _tenant_pnl_tz(source, tenant_id)
    df = _complete_flag(df, today, source, tz).filter(pl.col("complete"))
    out = df.select("week_ending", *metrics)
    weeks = out["week_ending"].to_list()
    for m in metrics:
        spans = _trailing(list(zip(weeks, out[m].to_list())), window)
        out = out.with_columns(pl.Series(f"{m}_avg_{window}w", [_mean(s) if s else None for s in spans], dtype=MONEY))
    return out


def margins(source: Any = None, tenant_id: str | None = None, *, window: int = 4,
            today: date | None = None, include_current: bool = False) -> pl.DataFrame:
    """Per complete week: income, gross_profit, net_profit, gross_margin_pct, net_margin_pct (percent of
    income), and the same margins over the trailing `window` weeks (sums, not an average of
    percentages: gross_margin_pct_<window>w). Null where income is zero. `complete` and
    `include_current` as in weekly_pnl."""
    _, df, tz = _tenant_pnl_tz(source, tenant_id)
    if not include_current:
        df = _complete_flag(df, today, source, tz).filter(pl.col("complete")).drop("complete")
    weeks = df["week_ending"].to_list()
    inc, gp, np_ = (df[c].to_list() for c in ("income", "gross_profit", "net_profit"))
    inc_w, gp_w, np_w = (_trailing(list(zip(weeks, v)), window) for v in (inc, gp, np_))

    def ssum(xs: list[Decimal | None] | None) -> Decimal | None:
        if xs is None:
            return None
        known = [x for x in xs if x is not None]
        return sum(known, Decimal(0)) if len(known) == len(xs) else None

    return df.select("week_ending", "income", "gross_profit", "net_profit").with_columns(
        pl.Series("gross_margin_pct", [_pct(g, i) for g, i in zip(gp, inc)], dtype=pl.Float64),
        pl.Series("net_margin_pct", [_pct(n, i) for n, i in zip(np_, inc)], dtype=pl.Float64),
        pl.Series(f"gross_margin_pct_{window}w", [_pct(ssum(g), ssum(i)) for g, i in zip(gp_w, inc_w)], dtype=pl.Float64),
        pl.Series(f"net_margin_pct_{window}w", [_pct(ssum(n), ssum(i)) for n, i in zip(np_w, inc_w)], dtype=pl.Float64),
        pl.col("week_ending").lt(pl.lit(_today(today, source, tz))).alias("complete"),
    )


# ---------------------------------------------------------------------------------------------
# Revenue by region and job type
# ---------------------------------------------------------------------------------------------

_BY = ("region", "revenue_type")


def _check_by(by: str | Sequence[str]) -> list[str]:
    cols = [by] if isinstance(by, str) else list(by)
    bad = [c for c in cols if c not in _BY]
    if bad or not cols:
        raise AnalysisError(f"by={by!r}: group by 'region', 'revenue_type' or both.")
    return cols


def revenue_mix(source: Any = None, tenant_id: str | None = None, *, weeks: int = 4, week_ending: date | None = None,
                by: str | Sequence[str] = _BY, today: date | None = None) -> pl.DataFrame:
    """Sales invoices (AUTHORISED and PAID) of the `weeks` weeks ending `week_ending` (default
    the latest complete week), grouped `by` region and/or revenue_type (the job type):
    invoice_count, subtotal (ex tax), total_tax, total (inc tax), share_pct (of subtotal).
    An invoice split across regions counts once in each. Largest first."""
    cols = _check_by(by)
    with _reader(source) as q:
        tenant = pick_tenant(source, tenant_id, _orgs=q(_ORGS_SQL))
        all_weeks = q("SELECT DISTINCT week_ending FROM revenue_weekly WHERE tenant_id = ?", tenant)["week_ending"].to_list()
        end = week_ending or _latest_complete(all_weeks, today, source, _tz(q, tenant))
        if end is None:
            raise NoDataYet(f"Organisation {tenant} has no sales invoices synced yet (revenue_weekly is empty).\n{HOW_TO_GET_DATA}")
        start = end - timedelta(days=7 * (weeks - 1))
        df = q(
            f"SELECT {', '.join(cols)}, sum(invoice_count)::INTEGER AS invoice_count, "
            "sum(subtotal)::DECIMAL(18,2) AS subtotal, sum(total_tax)::DECIMAL(18,2) AS total_tax, "
            "sum(total)::DECIMAL(18,2) AS total FROM revenue_weekly "
            f"WHERE tenant_id = ? AND week_ending BETWEEN ? AND ? GROUP BY ALL ORDER BY subtotal DESC, {', '.join(cols)}",
            tenant, start, end,
        )
    whole = sum(df["subtotal"].to_list(), Decimal(0))
    return df.with_columns(
        pl.Series("share_pct", [_pct(v, whole) for v in df["subtotal"].to_list()], dtype=pl.Float64),
        pl.lit(start).alias("from_week_ending"),
        pl.lit(end).alias("to_week_ending"),
    )


def revenue_trend(source: Any = None, tenant_id: str | None = None, *, by: str = "region",
                  weeks: int | None = None, today: date | None = None, include_current: bool = False) -> pl.DataFrame:
    """Weekly sales per region (or revenue_type), long format for charts: week_ending, <by>,
    invoice_count, subtotal, total. Complete weeks only unless `include_current=True`; `weeks`
    keeps the last N weeks."""
    (col,) = _check_by(by)
    with _reader(source) as q:
        tenant = pick_tenant(source, tenant_id, _orgs=q(_ORGS_SQL))
        day = _today(today, source, _tz(q, tenant))
        df = q(
            f"SELECT week_ending, {col}, sum(invoice_count)::INTEGER AS invoice_count, "
            "sum(subtotal)::DECIMAL(18,2) AS subtotal, sum(total)::DECIMAL(18,2) AS total "
            f"FROM revenue_weekly WHERE tenant_id = ? AND (? OR week_ending < ?) GROUP BY ALL ORDER BY week_ending, {col}",
            tenant, include_current, day,
        )
    if weeks and df.height:
        keep = sorted(set(df["week_ending"].to_list()))[-weeks:]
        df = df.filter(pl.col("week_ending").is_in(keep))
    return df


# ---------------------------------------------------------------------------------------------
# Cash
# ---------------------------------------------------------------------------------------------


def cash_position(source: Any = None, tenant_id: str | None = None, *, by_account: bool = False,
                  today: date | None = None, include_current: bool = False) -> pl.DataFrame:
    """Xero's Bank Summary per complete week, oldest first: opening, received, spent, closing and
    net_change (received − spent), summed over the bank accounts (`accounts` = how many), or
    one row per account with `by_account=True`. Amounts as Xero reports them (base currency).
    The week under way only with `include_current=True`."""
    with _reader(source) as q:
        tenant = pick_tenant(source, tenant_id, _orgs=q(_ORGS_SQL))
        day = _today(today, source, _tz(q, tenant))
        if by_account:
            df = q(
                "SELECT week_ending, bank_account_id, bank_account_name, opening, received, spent, closing, "
                "(received - spent)::DECIMAL(18,2) AS net_change FROM cash_position_weekly WHERE tenant_id = ? "
                "AND (? OR week_ending < ?) ORDER BY week_ending, bank_account_name",
                tenant, include_current, day,
            )
        else:
            df = q(
                "SELECT week_ending, count(*)::INTEGER AS accounts, sum(opening)::DECIMAL(18,2) AS opening, "
                "sum(received)::DECIMAL(18,2) AS received, sum(spent)::DECIMAL(18,2) AS spent, "
                "sum(closing)::DECIMAL(18,2) AS closing, sum(received - spent)::DECIMAL(18,2) AS net_change "
                "FROM cash_position_weekly WHERE tenant_id = ? AND (? OR week_ending < ?) GROUP BY week_ending "
                "ORDER BY week_ending",
                tenant, include_current, day,
            )
    return df


def cash_runway(source: Any = None, tenant_id: str | None = None, *, weeks: int = 4, week_ending: date | None = None,
                today: date | None = None) -> pl.DataFrame:
    """Weeks of cash runway, one row.

    burn = the average weekly net outflow, (spent − received) over all bank accounts, across the
    `weeks` complete weeks ending `week_ending` (default the latest complete week);
    runway = closing cash that week ÷ burn. Columns: week_ending, closing_cash,
    avg_weekly_net_outflow (Decimal; negative means cash grew), weeks_of_runway (Float64, null
    when not burning cash), status ("burning cash" | "not burning cash" | "out of cash"),
    explanation (a sentence).
    """
    cash = cash_position(source, tenant_id, today=today)   # complete weeks
    if cash.height == 0:
        raise NoDataYet(f"No bank summary synced yet (cash_position_weekly is empty).\n{HOW_TO_GET_DATA}")
    by_week = {r["week_ending"]: r for r in cash.iter_rows(named=True)}
    end = week_ending or max(by_week)
    if end not in by_week:
        raise NoDataYet(f"No bank summary for the week ending {end}.")
    span = [by_week.get(end - timedelta(days=7 * i)) for i in range(weeks)]
    outflows = [r["spent"] - r["received"] for r in span if r]
    burn = _mean(outflows)
    closing = by_week[end]["closing"]
    n = len(outflows)
    if closing <= 0:
        status, runway = "out of cash", 0.0
        why = f"Closing cash for the week ending {end} is {closing:,.2f}: no runway left."
    elif burn is None or burn <= 0:
        status, runway = "not burning cash", None
        grew = -(burn or Decimal(0))
        why = (f"Cash grew by {grew:,.2f} a week on average over the last {n} week(s) to {end}: "
               "the business is not burning cash, so there is no runway limit.")
    else:
        status = "burning cash"
        runway = float((closing / burn).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
        why = (f"{closing:,.2f} in the bank at the end of the week ending {end}, and cash fell by {burn:,.2f} "
               f"a week on average over the last {n} week(s): about {runway} weeks of runway at that rate.")
    return pl.DataFrame(
        [{"week_ending": end, "closing_cash": closing, "avg_weekly_net_outflow": burn, "weeks_averaged": n,
          "weeks_of_runway": runway, "status": status, "explanation": why}],
        schema={"week_ending": pl.Date, "closing_cash": MONEY, "avg_weekly_net_outflow": MONEY, "weeks_averaged": pl.Int32,
                "weeks_of_runway": pl.Float64, "status": pl.String, "explanation": pl.String},
    )


# ---------------------------------------------------------------------------------------------
# Charts in notebooks
# ---------------------------------------------------------------------------------------------


VEGALITE_MIME_TYPES = ("application/vnd.vegalite.v6+json", "application/vnd.vegalite.v5+json")
CHART_IMAGE_SCALE = 2  # the PNG is drawn at twice its display size, so it stays sharp on high-DPI screens


def chart_mimebundle(spec: dict[str, Any], **_meta: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """An altair renderer: the chart's interactive Vega-Lite spec and a static PNG of it, side by side.

    Front ends pick what they can draw: JupyterLab and VS Code the interactive spec (under the v6 and
    v5 media types, so older front ends draw it too); an HTML export (`jupyter nbconvert --to html`),
    nbviewer and GitHub's notebook viewer the PNG. The PNG comes from vl-convert-python (altair's own
    converter, installed by `bash scripts/notebooks`; it carries Vega's JavaScript, so it works
    offline). Without it the chart is still interactive, and the plain-text fallback says how to
    get the image.
    """
    title = spec.get("title")
    title = title.get("text") if isinstance(title, dict) else title
    bundle: dict[str, Any] = {m: spec for m in VEGALITE_MIME_TYPES}
    bundle["text/plain"] = f"<chart: {title}>" if title else "<chart>"
    try:
        from altair.utils.mimebundle import spec_to_mimebundle
    except ImportError:  # pragma: no cover - altair is a dependency
        return bundle, {}
    try:
        png_bundle = spec_to_mimebundle(spec, format="png", mode="vega-lite", scale_factor=CHART_IMAGE_SCALE)
    except ImportError:
        bundle["text/plain"] += (" (no static image: vl-convert-python is not installed; "
                                 "`bash scripts/notebooks` installs it)")
        return bundle, {}
    png, png_meta = png_bundle if isinstance(png_bundle, tuple) else (png_bundle, {})
    size = png_meta.get("image/png", {})
    bundle["image/png"] = png["image/png"]
    meta = {"image/png": {k: size[k] / CHART_IMAGE_SCALE for k in ("width", "height") if k in size}}
    return bundle, meta


def use_offline_charts() -> None:
    """Make altair charts draw everywhere a notebook is read, with no internet connection.

    altair's default renderer loads its JavaScript from a CDN, and an HTML export or GitHub's
    viewer shows no Vega-Lite chart at all. This renderer (`chart_mimebundle`) sends each chart
    both as its interactive spec, drawn by the notebook front end's own renderer (JupyterLab,
    VS Code), and as a PNG image for HTML exports, nbviewer and GitHub.
    """
    import altair as alt

    alt.renderers.register("ledgerlink_offline", chart_mimebundle)
    alt.renderers.enable("ledgerlink_offline")


_HEADERS = {
    "label": "", "week_ending": "Week ending", "week_start": "Week start", "week": "Week",
    "previous_week": "Previous week", "change": "Change", "change_pct": "Change %",
    "same_week_last_year": "Same week last year", "change_vs_last_year": "Change on last year",
    "change_vs_last_year_pct": "Change on last year %", "avg_4_weeks": "4-week average",
    "change_vs_avg": "Change on average", "change_vs_avg_pct": "Change on average %", "revenue_type": "Job type",
    "invoice_count": "Invoices", "subtotal": "Sales ex tax", "total_tax": "Tax", "total": "Sales inc tax",
    "share_pct": "Share %", "bank_account_name": "Bank account", "net_change": "Net change",
    "gross_margin_pct": "Gross margin %", "net_margin_pct": "Net margin %", "gross_margin_pct_4w": "Gross margin % (4 weeks)",
    "net_margin_pct_4w": "Net margin % (4 weeks)", "effect_on_profit": "Effect on profit", "account_code": "Code",
    "account_name": "Account", "closing_cash": "Closing cash", "avg_weekly_net_outflow": "Average weekly net outflow",
    "weeks_of_runway": "Weeks of runway", "from_week_ending": "From week ending", "to_week_ending": "To week ending",
    "previous_week_ending": "Previous week ending",
}


def table(frame: pl.DataFrame, currency: str = "") -> Styler:
    """A frame as a finance lead reads it in a notebook (and its HTML export): readable headers, money
    with thousands separators under "(NZD)", percentages with one decimal, dates as "Sat 21 Nov 2026",
    names without quotes and blanks where there is no value (not `null`). Display only: the frame
    keeps its exact Decimals. Returns a pandas Styler."""
    money = [c for c, t in frame.schema.items() if isinstance(t, pl.Decimal)]
    pct = [c for c in frame.columns if c.endswith("_pct") or "_pct_" in c]
    dates = [c for c, t in frame.schema.items() if t == pl.Date]

    def header(c: str) -> str:
        h = _HEADERS.get(c, LABELS.get(c, c.replace("_", " ").capitalize()))
        return f"{h} ({currency})" if c in money and currency and h else h

    names = {c: header(c) for c in frame.columns}
    if "section" in frame.columns:  # "operating_expenses" -> "Operating expenses", as the report names it
        frame = frame.with_columns(pl.col("section").replace_strict(LABELS, default=pl.col("section")))
    df = frame.to_pandas(use_pyarrow_extension_array=False).rename(columns=names)
    fmt: dict[str, Any] = {}
    fmt.update({names[c]: "{:,.2f}" for c in money})
    fmt.update({names[c]: "{:,.1f}" for c in pct if c not in money})
    fmt.update({names[c]: (lambda d: f"{d:%a} {d.day} {d:%b %Y}") for c in dates})
    return df.style.hide(axis="index").format(fmt, na_rep="")


def money_as_float(df: pl.DataFrame) -> pl.DataFrame:
    """Decimal columns as Float64, for charts only (tables and sums stay Decimal)."""
    return df.with_columns(pl.col(pl.Decimal).cast(pl.Float64))


# ---------------------------------------------------------------------------------------------
# Account movers
# ---------------------------------------------------------------------------------------------


def top_account_movers(source: Any = None, tenant_id: str | None = None, *, n: int = 10, week_ending: date | None = None,
                       today: date | None = None) -> pl.DataFrame:
    """The P&L accounts (pnl_lines) that moved most from the week before to `week_ending` (default
    the latest complete week), largest absolute change first: section, account_code,
    account_name, previous, latest, change, change_pct, and effect_on_profit (the change as it
    moves net profit: a cost going up is negative). An account missing in a week counts as 0."""
    with _reader(source) as q:
        tenant = pick_tenant(source, tenant_id, _orgs=q(_ORGS_SQL))
        weeks = q("SELECT DISTINCT week_ending FROM pnl_lines WHERE tenant_id = ?", tenant)["week_ending"].to_list()
        end = week_ending or _latest_complete(weeks, today, source, _tz(q, tenant))
        if end is None:
            raise NoDataYet(f"Organisation {tenant} has no P&L lines synced yet.\n{HOW_TO_GET_DATA}")
        prev = end - timedelta(days=7)
        df = q(
            """
            WITH l AS (SELECT * FROM pnl_lines WHERE tenant_id = ? AND week_ending = ?),
                 p AS (SELECT * FROM pnl_lines WHERE tenant_id = ? AND week_ending = ?)
            SELECT coalesce(l.section, p.section) AS section,
                   coalesce(l.account_code, p.account_code) AS account_code,
                   coalesce(l.account_name, p.account_name) AS account_name,
                   coalesce(p.amount, 0)::DECIMAL(18,2) AS previous,
                   coalesce(l.amount, 0)::DECIMAL(18,2) AS latest
            FROM l FULL OUTER JOIN p ON l.account_id = p.account_id
            """,
            tenant, end, tenant, prev,
        )
    rows = []
    for r in df.iter_rows(named=True):
        change = r["latest"] - r["previous"]
        rows.append({**r, "change": change, "change_pct": _pct(change, r["previous"]),
                     "effect_on_profit": -change if r["section"] in COST_SECTIONS else change})
    rows.sort(key=lambda r: (-abs(r["change"]), r["account_name"] or "", r["account_code"] or ""))
    out = pl.DataFrame(rows[:n], schema={
        "section": pl.String, "account_code": pl.String, "account_name": pl.String, "previous": MONEY, "latest": MONEY,
        "change": MONEY, "change_pct": pl.Float64, "effect_on_profit": MONEY,
    })
    return out.with_columns(pl.lit(prev).alias("previous_week_ending"), pl.lit(end).alias("week_ending"))
