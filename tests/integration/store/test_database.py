"""Database behaviour on SQLite files and PostgreSQL: durability settings, transactions, locks."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from shared.store import (
    Database,
    DatabaseConfigError,
    MemoryDatabase,
    NestedTransactionError,
    open_database,
)
from tests.integration.conftest import POSTGRES_DSN
from tests.integration.store.backends import postgres_schema

pytestmark = pytest.mark.integration


def _counter_table(database: Database) -> None:
    with database.transaction() as tx:
        tx.exec_driver_sql("CREATE TABLE IF NOT EXISTS counter (n INTEGER NOT NULL)")
        tx.exec_driver_sql("CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY)")


def test_sqlite_file_lives_under_the_data_dir(tmp_path: Path) -> None:
    with open_database("sqlite:///stores/identity.db", data_dir=tmp_path) as database:
        assert database.dialect == "sqlite"
        assert database.ping()
    assert (tmp_path / "stores" / "identity.db").is_file()


def test_sqlite_absolute_path_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    with open_database(f"sqlite:///{path}", data_dir=tmp_path / "elsewhere") as database:
        assert database.ping()
    assert path.is_file()


def test_sqlite_connections_are_durable_and_enforce_foreign_keys(tmp_path: Path) -> None:
    with open_database("sqlite:///s.db", data_dir=tmp_path) as database, database.read() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory"])
def test_in_memory_sqlite_is_refused(url: str) -> None:
    with pytest.raises(DatabaseConfigError, match="not durable"):
        open_database(url)


@pytest.mark.parametrize("url", ["mysql://x@y/z", "sqlite+aiosqlite:///x.db"])
def test_unsupported_databases_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(DatabaseConfigError):
        open_database(url, data_dir=tmp_path)


def test_schema_must_be_a_plain_identifier(tmp_path: Path) -> None:
    with pytest.raises(DatabaseConfigError):
        open_database(POSTGRES_DSN, schema='x"; drop table y; --')
    with pytest.raises(DatabaseConfigError):
        open_database("sqlite:///x.db", data_dir=tmp_path, schema="x")


def test_sqlite_transaction_commits_or_rolls_back(tmp_path: Path) -> None:
    with open_database("sqlite:///s.db", data_dir=tmp_path) as database:
        _counter_table(database)
        with database.transaction() as tx:
            tx.exec_driver_sql("INSERT INTO item (id) VALUES (1)")
        with pytest.raises(RuntimeError):
            _insert_then_fail(database, 2)
        with database.read() as connection:
            assert connection.exec_driver_sql("SELECT id FROM item").scalars().all() == [1]


def _insert_then_fail(database: Database, item: int) -> None:
    with database.transaction() as tx:
        tx.execute(text("INSERT INTO item (id) VALUES (:id)"), {"id": item})
        raise RuntimeError("boom")


def _nest(database: Database | MemoryDatabase) -> None:
    with database.transaction(), database.transaction():
        pass


def test_a_nested_write_transaction_fails_fast_instead_of_deadlocking(tmp_path: Path) -> None:
    with open_database("sqlite:///s.db", data_dir=tmp_path) as database:
        with pytest.raises(NestedTransactionError):
            _nest(database)
        assert database.ping()
    with pytest.raises(NestedTransactionError):
        _nest(MemoryDatabase())


def test_readers_do_not_wait_for_a_writer_on_sqlite(tmp_path: Path) -> None:
    with open_database("sqlite:///s.db", data_dir=tmp_path) as database:
        _counter_table(database)
        with database.transaction() as tx:
            tx.exec_driver_sql("INSERT INTO item (id) VALUES (1)")
            with database.read() as reader:  # another connection, WAL snapshot
                assert reader.exec_driver_sql("SELECT count(*) FROM item").scalar() == 0


def _hammer(database: Database, worker: int, rounds: int, errors: list[BaseException]) -> None:
    try:
        for i in range(rounds):
            with database.transaction() as tx:
                # Read-modify-write: lost updates would show if writers were not serialised.
                n = tx.exec_driver_sql("SELECT n FROM counter").scalar_one()
                tx.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
                tx.execute(text("INSERT INTO item (id) VALUES (:id)"), {"id": worker * 10_000 + i})
    except BaseException as exc:  # collected and asserted on the main thread
        errors.append(exc)


def test_concurrent_writers_on_sqlite_neither_fail_nor_lose_updates(tmp_path: Path) -> None:
    # Two Database objects on one file stand for two processes: they do not share the
    # in-process write lock, so BEGIN IMMEDIATE + busy_timeout must serialise them.
    with (
        open_database("sqlite:///s.db", data_dir=tmp_path) as first,
        open_database("sqlite:///s.db", data_dir=tmp_path) as second,
    ):
        _counter_table(first)
        with first.transaction() as tx:
            tx.exec_driver_sql("INSERT INTO counter (n) VALUES (0)")
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_hammer, args=(db, w, 40, errors))
            for w, db in enumerate([first, second] * 4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        with first.read() as connection:
            assert connection.exec_driver_sql("SELECT n FROM counter").scalar() == 8 * 40
            assert connection.exec_driver_sql("SELECT count(*) FROM item").scalar() == 8 * 40


@pytest.mark.postgres
def test_postgres_schema_isolates_tables() -> None:
    with (
        postgres_schema() as one,
        postgres_schema() as two,
        open_database(POSTGRES_DSN, schema=one) as a,
        open_database(POSTGRES_DSN, schema=two) as b,
    ):
        assert a.dialect == b.dialect == "postgresql"
        with a.transaction() as tx:
            tx.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY)")
            tx.exec_driver_sql("INSERT INTO item VALUES (1)")
        with b.transaction() as tx:
            tx.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY)")
        with b.read() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM item").scalar() == 0
            assert connection.exec_driver_sql("SELECT current_schema()").scalar() == two
        with pytest.raises(IntegrityError):
            _insert_then_fail(a, 1)  # the duplicate key fails before the RuntimeError
        with a.read() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM item").scalar() == 1


@pytest.mark.postgres
def test_ping_reports_an_unreachable_server_without_raising() -> None:
    from careledger.broker import free_port

    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    with open_database(url, connect_timeout=1) as database:
        assert not database.ping()
    with open_database(POSTGRES_DSN) as database:
        assert database.ping()
    with open_database("postgresql://u:secret@h/d") as never_connected:
        assert "secret" not in never_connected.url
