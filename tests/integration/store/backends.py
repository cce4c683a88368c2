"""Test back-ends for the store contract suites: SQLite files, PostgreSQL schemas, memory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Column, Connection, MetaData, String, Table, Text, select

from shared.store import Database, MemoryDatabase, MemoryTransaction, open_database
from tests.integration.conftest import POSTGRES_DSN

BACKENDS = ("memory", "sqlite", "postgres")
SQL_BACKENDS = ("sqlite", "postgres")


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A schema of the test's own on the CI PostgreSQL, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = open_database(POSTGRES_DSN)
    try:
        with admin.transaction() as tx:
            tx.exec_driver_sql(f'CREATE SCHEMA "{name}"')
        yield name
    finally:
        with admin.transaction() as tx:
            tx.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        admin.close()


@contextmanager
def sql_database(kind: str, tmp_path: Path) -> Iterator[tuple[Database, dict[str, object]]]:
    """An open SQL database, and the open_database() arguments that reopen it."""
    if kind == "sqlite":
        args: dict[str, object] = {"url": "sqlite:///state.db", "data_dir": tmp_path}
        with open_database("sqlite:///state.db", data_dir=tmp_path) as database:
            yield database, args
        return
    with postgres_schema() as schema:
        args = {"url": POSTGRES_DSN, "schema": schema}
        with open_database(POSTGRES_DSN, schema=schema) as database:
            yield database, args


def reopen(args: dict[str, object]) -> Database:
    url = args["url"]
    assert isinstance(url, str)
    data_dir = args.get("data_dir")
    schema = args.get("schema")
    return open_database(
        url,
        data_dir=data_dir if isinstance(data_dir, Path) else None,
        schema=schema if isinstance(schema, str) else None,
    )


# --- a service's own state, to write in the same transaction as the outbox -------------

notes_metadata = MetaData()
notes_table = Table(
    "demo_notes",
    notes_metadata,
    Column("note_id", String(64), primary_key=True),
    Column("body", Text(), nullable=False),
)


class SqlNotes:
    """A service's SQL store adapter in miniature: writes on the caller's Connection."""

    def __init__(self, *, database: Database) -> None:
        self._database = database
        with database.transaction() as tx:
            notes_metadata.create_all(tx)

    def put(self, tx: Connection, note_id: str, body: str) -> None:
        tx.execute(notes_table.insert().values(note_id=note_id, body=body))

    def get(self, note_id: str) -> str | None:
        with self._database.read() as connection:
            query = select(notes_table.c.body).where(notes_table.c.note_id == note_id)
            body = connection.execute(query).scalar_one_or_none()
            return None if body is None else str(body)


class MemoryNotes:
    """The same adapter in memory: stages its writes in the unit of work."""

    def __init__(self, *, database: MemoryDatabase) -> None:
        self._database = database
        self._notes: dict[str, str] = {}

    def put(self, tx: MemoryTransaction, note_id: str, body: str) -> None:
        self._database.check(tx)
        staged = tx.scratch(self, set[str])
        if note_id in self._notes or note_id in staged:
            raise KeyError(note_id)
        staged.add(note_id)
        tx.on_commit(lambda: self._notes.__setitem__(note_id, body))

    def get(self, note_id: str) -> str | None:
        with self._database.read():
            return self._notes.get(note_id)
