"""Back-ends for the outbox and inbox contract suites: memory, SQLite file, PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from shared.inbox import MemoryProcessedEvents, SqlProcessedEvents, migrate_inbox
from shared.outbox import MemoryOutbox, SqlOutbox, migrate_outbox
from shared.store import Database, MemoryDatabase
from tests.integration.store.backends import (
    BACKENDS,
    MemoryNotes,
    SqlNotes,
    reopen,
    sql_database,
)

T = TypeVar("T")
#: Builds a back-end from (kind, database, reopen arguments, databases opened by reopens).
Builder = Callable[[str, Database, dict[str, object], list[Database]], T]

PARAMS = [
    pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else [], id=kind)
    for kind in BACKENDS
]
#: The back-ends that survive a restart (the memory ones are not durable by design).
DURABLE_PARAMS = [param for param in PARAMS if param.values[0] != "memory"]


@dataclass
class OutboxBackend:
    """What a service has: a unit of work, its own state store and the outbox."""

    kind: str
    uow: Any
    notes: Any
    outbox: Any
    #: Close and open again (durable back-ends only), as a restarted process would.
    reopen: Callable[[], OutboxBackend] | None


@dataclass
class InboxBackend:
    kind: str
    uow: Any
    processed: Any
    #: Another consumer's view of the same database (its own de-duplication).
    other_consumer: Any
    reopen: Callable[[], InboxBackend] | None


def _sql_outbox(
    kind: str, database: Database, args: dict[str, object], opened: list[Database]
) -> OutboxBackend:
    def again() -> OutboxBackend:
        database.close()
        fresh = reopen(args)
        opened.append(fresh)
        return _sql_outbox(kind, fresh, args, opened)

    migrate_outbox(database)
    return OutboxBackend(
        kind=kind,
        uow=database,
        notes=SqlNotes(database=database),
        outbox=SqlOutbox(database=database),
        reopen=again,
    )


def _sql_backend(kind: str, tmp_path: Path, build: Builder[T]) -> Iterator[T]:
    """One SQL back-end for a test, closing every database a reopen created."""
    with sql_database(kind, tmp_path) as (database, args):
        opened: list[Database] = []
        try:
            yield build(kind, database, args, opened)
        finally:
            for extra in opened:
                extra.close()


@pytest.fixture(params=DURABLE_PARAMS)
def durable_outbox_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[OutboxBackend]:
    yield from _sql_backend(request.param, tmp_path, _sql_outbox)


@pytest.fixture(params=DURABLE_PARAMS)
def durable_inbox_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InboxBackend]:
    yield from _sql_backend(request.param, tmp_path, _sql_inbox)


@pytest.fixture(params=PARAMS)
def outbox_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OutboxBackend]:
    kind = request.param
    if kind == "memory":
        memory = MemoryDatabase()
        yield OutboxBackend(
            kind=kind,
            uow=memory,
            notes=MemoryNotes(database=memory),
            outbox=MemoryOutbox(database=memory),
            reopen=None,
        )
        return
    yield from _sql_backend(kind, tmp_path, _sql_outbox)


def _sql_inbox(
    kind: str, database: Database, args: dict[str, object], opened: list[Database]
) -> InboxBackend:
    def again() -> InboxBackend:
        database.close()
        fresh = reopen(args)
        opened.append(fresh)
        return _sql_inbox(kind, fresh, args, opened)

    migrate_inbox(database)
    return InboxBackend(
        kind=kind,
        uow=database,
        processed=SqlProcessedEvents(consumer="contract"),
        other_consumer=SqlProcessedEvents(consumer="another"),
        reopen=again,
    )


@pytest.fixture(params=PARAMS)
def inbox_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InboxBackend]:
    kind = request.param
    if kind == "memory":
        memory = MemoryDatabase()
        yield InboxBackend(
            kind=kind,
            uow=memory,
            processed=MemoryProcessedEvents(database=memory),
            other_consumer=MemoryProcessedEvents(database=memory),
            reopen=None,
        )
        return
    yield from _sql_backend(kind, tmp_path, _sql_inbox)
