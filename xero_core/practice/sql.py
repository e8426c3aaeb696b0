"""How the practice modules read DuckDB: rows as dicts by column name, and the one row an aggregate
(count, max, ...) always returns, typed, so no caller indexes a `fetchone()` that might be None.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from duckdb import DuckDBPyConnection

Row = dict[str, Any]  # one DuckDB row by column name; its values are whatever the column holds


def rows(con: DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> list[Row]:
    cur = con.execute(sql, list(params))
    cols = [d[0] for d in cur.description or ()]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def one(con: DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...]:
    """The row of a query that always has exactly one (an aggregate with no GROUP BY). Read with
    fetchall: DuckDB keeps a result read with fetchone open, and the connection's next register()
    then fails ("connection has an unfinished result")."""
    found = con.execute(sql, list(params)).fetchall()
    if len(found) != 1:  # pragma: no cover - an aggregate without GROUP BY always answers one row
        raise RuntimeError(f"expected one row, got {len(found)}, from: {sql}")
    return tuple(found[0])


def value(con: DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> Any:
    """The first column of `one`: a count or a max (None when the max is over no row)."""
    return one(con, sql, params)[0]
