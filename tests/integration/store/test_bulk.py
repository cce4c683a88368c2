"""`insert_rows`: rows as tuples straight to the driver, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import BigInteger, Column, LargeBinary, MetaData, Table, Text, select

from shared.store import Database
from shared.store.bulk import BATCH, insert_rows
from tests.integration.store.backends import SQL_BACKENDS, sql_database

metadata = MetaData()
rows_table = Table(
    "test_bulk_rows",
    metadata,
    Column("n", BigInteger(), primary_key=True, autoincrement=False),
    Column("label", Text(), nullable=False),
    Column("digest", LargeBinary(), nullable=False),
)


@pytest.fixture(params=SQL_BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with sql_database(request.param, tmp_path) as (opened, _):
        metadata.create_all(opened.engine)
        yield opened


def test_rows_land_exactly_as_given_across_batches(database: Database) -> None:
    rows = [(n, f"label-{n}'\"", bytes([n % 256]) * 32) for n in range(BATCH + 7)]
    with database.transaction() as tx:
        insert_rows(tx, rows_table, ("n", "label", "digest"), rows)
        insert_rows(tx, rows_table, ("n", "label", "digest"), [])
    with database.read() as connection:
        stored = connection.execute(select(rows_table).order_by(rows_table.c.n)).all()
    assert [(r.n, r.label, bytes(r.digest)) for r in stored] == rows


def test_the_rows_belong_to_the_callers_transaction(database: Database) -> None:
    def insert_then_fail() -> None:
        with database.transaction() as tx:
            insert_rows(tx, rows_table, ("n", "label", "digest"), [(1, "a", b"x")])
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        insert_then_fail()
    with database.read() as connection:
        assert connection.execute(select(rows_table)).all() == []


def test_an_unknown_column_is_refused(database: Database) -> None:
    with database.transaction() as tx, pytest.raises(ValueError, match="no column"):
        insert_rows(tx, rows_table, ("n", "nope"), [(1, "a")])
