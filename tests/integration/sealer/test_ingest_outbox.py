"""The ingest's `EventQueue` on the outbox, on SQLite and PostgreSQL: one row per
`(source, id)`, a retried post stores nothing, another event under a used key is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.sealer.adapters.ingest_outbox import OutboxEventQueue
from shared.outbox import DuplicateEventError, SqlOutbox, message_for_event, migrate_outbox
from tests.integration.store.backends import sql_database
from tests.unit.core.chainfactory import ChainFactory

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def queue(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[OutboxEventQueue, SqlOutbox]]:
    with sql_database(request.param, tmp_path) as (database, _):
        migrate_outbox(database)
        outbox = SqlOutbox(database=database)
        yield OutboxEventQueue(database=database, outbox=outbox), outbox


def test_each_event_is_stored_once_and_a_retry_stores_nothing(
    queue: tuple[OutboxEventQueue, SqlOutbox],
) -> None:
    events, outbox = queue
    factory = ChainFactory()
    event = factory.event(event_id="0190a0a0-0000-7000-8000-00000000000a")
    message = message_for_event(event, topic="clinical.events")
    assert events.enqueue(message) is True
    assert events.enqueue(message) is False
    other = message_for_event(factory.event(event_id=event["id"]), topic="clinical.events")
    with pytest.raises(DuplicateEventError):
        events.enqueue(other)
    pending = outbox.pending(10)
    assert [entry.message for entry in pending] == [message]
