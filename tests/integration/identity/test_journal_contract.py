"""The identity journal contract, run against memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import inspect

from services.identity.adapters.memory import MemoryIdentityJournal
from services.identity.adapters.sql import (
    SqlIdentityJournal,
    metadata,
    migrate_identity_store,
)
from services.identity.core.directory import JournalEntry
from shared.events.identity import (
    AUTHORITY_REGISTERED,
    PATIENT_REGISTERED,
    PRACTITIONER_REGISTERED,
    PRACTITIONER_REVOKED,
)
from shared.store import MemoryDatabase
from tests.integration.store.backends import BACKENDS, reopen, sql_database

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PARAMS = [
    pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else [], id=kind)
    for kind in BACKENDS
]
DURABLE_PARAMS = [param for param in PARAMS if param.values[0] != "memory"]
DIGEST = "ab" * 32


class Units(Protocol):
    def transaction(self) -> AbstractContextManager[Any]: ...


Backend = tuple[Any, Units, dict[str, object]]


@pytest.fixture(params=PARAMS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        memory = MemoryDatabase()
        yield MemoryIdentityJournal(database=memory), memory, {}
        return
    with sql_database(request.param, tmp_path) as (database, args):
        migrate_identity_store(database)
        migrate_identity_store(database)  # idempotent
        yield SqlIdentityJournal(database=database), database, args


def entry(event_id: str, event_type: str, subject: str, **data: object) -> JournalEntry:
    return JournalEntry(event_id=event_id, type=event_type, subject=subject, data=data)


def record(backend: Backend, *entries: JournalEntry) -> None:
    journal, units, _ = backend
    with units.transaction() as tx:
        journal.lock(tx)
        for item in entries:
            journal.record(tx, item)


def test_an_empty_journal_has_nothing_and_no_position(backend: Backend) -> None:
    journal, _, _ = backend
    assert list(journal.about(["did:key:z6Mkx"])) == []
    assert list(journal.of_type(AUTHORITY_REGISTERED)) == []
    assert list(journal.with_credential(DIGEST)) == []
    assert journal.position() is None


def test_entries_come_back_in_recording_order_by_subject_type_and_credential(
    backend: Backend,
) -> None:
    journal, units, _ = backend
    first = entry("e1", PRACTITIONER_REGISTERED, "did:a", credential=DIGEST, did="did:a")
    second = entry("e2", AUTHORITY_REGISTERED, "did:b", did="did:b", name="Board")
    third = entry("e3", PRACTITIONER_REVOKED, "did:a", credential=DIGEST, did="did:a")
    record(backend, first, second)
    record(backend, third)
    assert list(journal.about(["did:a"])) == [first, third]
    assert list(journal.about(["did:a", "did:b"])) == [first, second, third]
    assert list(journal.of_type(AUTHORITY_REGISTERED)) == [second]
    assert list(journal.with_credential(DIGEST)) == [first, third]
    with units.transaction() as tx:  # reads inside a transaction see the same
        assert list(journal.about(["did:b"], tx)) == [second]
        assert list(journal.of_type(PRACTITIONER_REVOKED, tx)) == [third]
        assert list(journal.with_credential(DIGEST, tx)) == [first, third]


def test_a_rolled_back_transaction_leaves_no_entry(backend: Backend) -> None:
    journal, units, _ = backend

    def write_then_fail() -> None:
        with units.transaction() as tx:
            journal.record(tx, entry("e1", PATIENT_REGISTERED, "p" * 64, pseudonym="p" * 64))
            raise RuntimeError("the outbox write failed")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert list(journal.of_type(PATIENT_REGISTERED)) == []


def test_an_event_id_is_recorded_once(backend: Backend) -> None:
    record(backend, entry("e1", PATIENT_REGISTERED, "p", pseudonym="p"))
    with pytest.raises(Exception):  # noqa: B017,PT011 - IntegrityError or ValueError
        record(backend, entry("e1", PATIENT_REGISTERED, "q", pseudonym="q"))
    journal, _, _ = backend
    assert [e.subject for e in journal.of_type(PATIENT_REGISTERED)] == ["p"]


def test_sealed_heights_are_set_once_and_saved_with_the_position(backend: Backend) -> None:
    journal, units, _ = backend
    record(backend, entry("e1", AUTHORITY_REGISTERED, "did:b", did="did:b", name="Board"))
    record(backend, entry("e2", AUTHORITY_REGISTERED, "did:c", did="did:c", name="Other"))
    with units.transaction() as tx:
        assert journal.mark_sealed(tx, {"e1": 4, "unknown": 9}) == 1
        journal.save_position(tx, {"height": 4, "head": "x"})
    with units.transaction() as tx:
        assert journal.mark_sealed(tx, {"e1": 7, "e2": 5}) == 1  # e1 keeps height 4
        journal.save_position(tx, {"height": 5, "head": "y"})
    heights = {e.event_id: e.sealed_height for e in journal.of_type(AUTHORITY_REGISTERED)}
    assert heights == {"e1": 4, "e2": 5}
    assert journal.position() == {"height": 5, "head": "y"}


def test_a_rolled_back_follower_step_keeps_the_previous_position(backend: Backend) -> None:
    journal, units, _ = backend
    record(backend, entry("e1", PATIENT_REGISTERED, "p", pseudonym="p"))
    with units.transaction() as tx:
        journal.save_position(tx, {"height": 1})

    def follow_then_crash() -> None:
        with units.transaction() as tx:
            journal.mark_sealed(tx, {"e1": 2})
            journal.save_position(tx, {"height": 2})
            raise RuntimeError("crash mid-block")

    with pytest.raises(RuntimeError):
        follow_then_crash()
    assert journal.position() == {"height": 1}
    assert [e.sealed_height for e in journal.of_type(PATIENT_REGISTERED)] == [None]


@pytest.mark.parametrize("kind", DURABLE_PARAMS)
def test_the_journal_survives_a_reopen(kind: str, tmp_path: Path) -> None:
    with sql_database(kind, tmp_path) as (database, args):
        migrate_identity_store(database)
        journal = SqlIdentityJournal(database=database)
        item = entry("e1", PRACTITIONER_REGISTERED, "did:a", credential=DIGEST, did="did:a")
        with database.transaction() as tx:
            journal.record(tx, item)
            journal.mark_sealed(tx, {"e1": 3})
            journal.save_position(tx, {"height": 3})
        with reopen(args) as again:
            reread = SqlIdentityJournal(database=again)
            assert list(reread.with_credential(DIGEST)) == [
                JournalEntry(item.event_id, item.type, item.subject, item.data, 3)
            ]
            assert reread.position() == {"height": 3}


@pytest.mark.parametrize("kind", DURABLE_PARAMS)
def test_the_table_definitions_mirror_the_migrations(kind: str, tmp_path: Path) -> None:
    with sql_database(kind, tmp_path) as (database, _):
        migrate_identity_store(database)
        with database.read() as connection:
            found = inspect(connection)
            for table in metadata.sorted_tables:
                columns = {column["name"] for column in found.get_columns(table.name)}
                assert columns == {column.name for column in table.columns}
                indexes = {index["name"] for index in found.get_indexes(table.name)}
                assert {index.name for index in table.indexes} <= indexes
