"""Many rows into one table, straight to the driver's `executemany`.

SQLAlchemy's `execute(insert(table), rows)` runs each row's values through its bind
processors and parameter bookkeeping: for the validator's ~2 Merkle node rows and 1 event row
per sealed event that cost more CPU than the SQL itself. Here the statement is rendered once
per table and dialect, in the driver's own parameter style, and the rows go to the driver as
tuples. Use it only for columns whose Python values the driver takes as they are (int, str,
bytes): no type processing happens.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Final

from sqlalchemy import Connection, Table

__all__ = ["insert_rows", "placeholder"]

#: Rows per `executemany` call: bounds the memory of one call, not a driver limit.
BATCH: Final = 1000

#: The placeholder of each DB-API parameter style the project's drivers use (sqlite3: qmark,
#: psycopg: pyformat, which also takes positional ``%s``).
_PLACEHOLDERS: Final = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def insert_rows(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[object, ...]],
) -> None:
    """INSERT `rows` (tuples in the order of `columns`) into `table`, in the open transaction."""
    if not rows:
        return
    unknown = [name for name in columns if name not in table.c]
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {unknown}")
    dialect = connection.dialect
    preparer = dialect.identifier_preparer
    statement = _statement(
        dialect.paramstyle,
        preparer.format_table(table),
        tuple(preparer.quote(name) for name in columns),
    )
    for start in range(0, len(rows), BATCH):
        connection.exec_driver_sql(statement, list(rows[start : start + BATCH]))


def placeholder(paramstyle: str) -> str:
    """The positional parameter marker of a DB-API parameter style (`?` or `%s`)."""
    try:
        return _PLACEHOLDERS[paramstyle]
    except KeyError:
        raise ValueError(f"parameter style {paramstyle!r} is not supported") from None


@cache
def _statement(paramstyle: str, table: str, columns: tuple[str, ...]) -> str:
    mark = placeholder(paramstyle)
    marks = ", ".join([mark] * len(columns))
    # Names come from table metadata, quoted by the dialect; values are driver parameters.
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
