"""Which `(source, id)` keys a table holds, found by primary-key probes.

Both the sealer and the validators keep the sealed keys in a table whose primary key is
`(source, event_id)`, and ask once per batch which of a few hundred keys it holds. The query
names the source in every probe: a condition on `event_id` alone cannot use that index
(SQLite then reads the whole table, a cost that grows with the chain), and a row-value IN list
makes SQLite scan it too. A batch has few sources, so grouping by source keeps the statement
short.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from sqlalchemy import Connection, and_, or_, select
from sqlalchemy.sql.elements import ColumnElement

__all__ = ["stored_keys"]

#: Keys per statement: well under SQLite's and PostgreSQL's bound-parameter limits.
CHUNK: Final = 500


def stored_keys(
    connection: Connection,
    source: ColumnElement[str],
    event_id: ColumnElement[str],
    keys: Collection[tuple[str, str]],
) -> set[tuple[str, str]]:
    """The keys among `keys` that have a row, `source` and `event_id` being its key columns."""
    wanted = sorted(set(keys))
    found: set[tuple[str, str]] = set()
    for start in range(0, len(wanted), CHUNK):
        by_source: dict[str, list[str]] = {}
        for key_source, key_id in wanted[start : start + CHUNK]:
            by_source.setdefault(key_source, []).append(key_id)
        query = select(source, event_id).where(
            or_(*(and_(source == s, event_id.in_(ids)) for s, ids in by_source.items()))
        )
        found.update((str(s), str(i)) for s, i in connection.execute(query))
    return found
