"""`EventQueue` on the transactional outbox in the sealer's database (ADR 0016).

The outbox's unique `(source, id)` is the ingest's idempotency key: a second post of the
same event finds its row and is answered as the first was, without a second row; another
event under the same key is refused.
"""

from __future__ import annotations

from sqlalchemy import select

from shared.outbox import DuplicateEventError, OutboxMessage, SqlOutbox
from shared.outbox.sql import outbox_table
from shared.store import Database


class OutboxEventQueue:
    """Stores each accepted event as one outbox row, in a transaction of its own."""

    def __init__(self, *, database: Database, outbox: SqlOutbox) -> None:
        self._database = database
        self._outbox = outbox

    def enqueue(self, message: OutboxMessage) -> bool:
        try:
            with self._database.transaction() as tx:
                self._outbox.add(tx, [message])
        except DuplicateEventError:
            if self._stored_value(message.dedup_key) == message.value:
                return False
            raise
        return True

    def _stored_value(self, key: tuple[str, str]) -> bytes | None:
        query = select(outbox_table.c.value).where(
            outbox_table.c.source == key[0], outbox_table.c.event_id == key[1]
        )
        with self._database.read() as connection:
            value = connection.execute(query).scalar_one_or_none()
        return None if value is None else bytes(value)
