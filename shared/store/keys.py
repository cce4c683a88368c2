"""Which `(source, id)` keys a table holds, found by primary-key probes.

Both the sealer and the validators keep the sealed keys in a table whose primary key is
`(source, event_id)`, and ask once per batch which of a few hundred keys it holds. The query
names the source in every probe: a condition on `event_id` alone cannot use that index
(SQLite then reads the whole table, a cost that grows with the chain), and a row-value IN list
makes SQLite scan it too. A batch has few sources, so grouping by source keeps the statement
short. The statement goes to the driver as text with positional parameters: SQLAlchemy's
compilation of a 500-value IN list cost several times the index probes themselves (about
5 µs per key against 1 µs, measured on SQLite).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from sqlalchemy import Column, Connection

from shared.store.bulk import placeholder

__all__ = ["stored_keys"]

#: Keys per statement: well under SQLite's and PostgreSQL's bound-parameter limits.
CHUNK: Final = 500


def stored_keys(
    connection: Connection,
    source: Column[str],
    event_id: Column[str],
    keys: Collection[tuple[str, str]],
) -> set[tuple[str, str]]:
    """The keys among `keys` that have a row, `source` and `event_id` being its key columns
    (of one table)."""
    wanted = sorted(set(keys))
    if not wanted:
        return set()
    preparer = connection.dialect.identifier_preparer
    mark = placeholder(connection.dialect.paramstyle)
    table = preparer.format_table(source.table)
    source_name, id_name = preparer.quote(source.name), preparer.quote(event_id.name)
    found: set[tuple[str, str]] = set()
    for start in range(0, len(wanted), CHUNK):
        by_source: dict[str, list[str]] = {}
        for key_source, key_id in wanted[start : start + CHUNK]:
            by_source.setdefault(key_source, []).append(key_id)
        conditions = " OR ".join(
            f"({source_name} = {mark} AND {id_name} IN ({', '.join([mark] * len(ids))}))"
            for ids in by_source.values()
        )
        parameters = tuple(value for s, ids in by_source.items() for value in (s, *ids))
        # Names come from table metadata, quoted by the dialect; values are parameters.
        statement = f"SELECT {source_name}, {id_name} FROM {table} WHERE {conditions}"  # noqa: S608
        found.update((str(s), str(i)) for s, i in connection.exec_driver_sql(statement, parameters))
    return found
