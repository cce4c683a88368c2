"""`stored_keys`: which (source, id) keys a table holds, by primary-key probes only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, Table, Text, event, insert

from shared.store import Database
from shared.store.keys import CHUNK, stored_keys
from tests.integration.store.backends import SQL_BACKENDS, sql_database

metadata = MetaData()
keys_table = Table(
    "test_sealed_keys",
    metadata,
    Column("source", Text(), nullable=False),
    Column("event_id", Text(), nullable=False),
    PrimaryKeyConstraint("source", "event_id"),
)


@pytest.fixture(params=SQL_BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with sql_database(request.param, tmp_path) as (opened, _):
        metadata.create_all(opened.engine)
        yield opened


def _fill(database: Database, keys: list[tuple[str, str]]) -> None:
    with database.transaction() as tx:
        tx.execute(insert(keys_table), [{"source": s, "event_id": i} for s, i in keys])


def test_finds_exactly_the_stored_keys_across_sources_and_chunks(database: Database) -> None:
    stored = [(f"urn:source:{n % 3}", f"id-{n}") for n in range(CHUNK + 50)]
    _fill(database, stored)
    probe = [
        *stored[::2],
        ("urn:source:0", "id-1"),  # an id stored under another source
        ("urn:source:9", "id-0"),
        ("urn:source:1", "never"),
        stored[0],  # asked twice
    ]
    with database.read() as connection:
        found = stored_keys(connection, keys_table.c.source, keys_table.c.event_id, probe)
        assert found == set(stored[::2])
        assert stored_keys(connection, keys_table.c.source, keys_table.c.event_id, []) == set()


def test_sqlite_probes_the_primary_key_and_never_scans_the_table(tmp_path: Path) -> None:
    """The sealer asked `event_id IN (...)` alone, which SQLite answers by reading the whole
    table once per batch: a cost growing with the chain. Every statement must search."""
    with sql_database("sqlite", tmp_path) as (database, _):
        metadata.create_all(database.engine)
        _fill(database, [(f"urn:source:{n % 2}", f"id-{n}") for n in range(200)])
        statements: list[tuple[str, Any]] = []

        def remember(_conn: object, _cursor: object, sql: str, params: Any, *_: object) -> None:
            if sql.lstrip().upper().startswith("SELECT"):
                statements.append((sql, params))

        event.listen(database.engine, "before_cursor_execute", remember)
        probe = [(f"urn:source:{n % 2}", f"id-{n}") for n in range(0, 400, 3)]
        with database.read() as connection:
            stored_keys(connection, keys_table.c.source, keys_table.c.event_id, probe)
        event.remove(database.engine, "before_cursor_execute", remember)
        assert statements
        with database.read() as connection:
            for sql, params in statements:
                plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()
                details = [str(row[-1]) for row in plan]
                assert details, sql
                assert all("SCAN test_sealed_keys" not in detail for detail in details), details
                assert any("USING" in d and "INDEX" in d for d in details), details
