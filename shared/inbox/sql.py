"""The SQL inbox (SQLite, PostgreSQL): one row per processed (consumer, source, id)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from sqlalchemy import Column, Connection, DateTime, MetaData, String, Table, Text
from sqlalchemy.dialects import postgresql, sqlite

from shared.inbox.memory import _require_key
from shared.sources import utc_now
from shared.store import Database, migrate

INBOX_MIGRATIONS = Path(__file__).parent / "migrations"
INBOX_VERSION_TABLE = "careledger_inbox_version"

metadata = MetaData()
#: Mirrors the migrations (a test compares the two); queries use it, migrations do not.
inbox_table = Table(
    "careledger_inbox",
    metadata,
    Column("consumer", String(200), primary_key=True),
    Column("source", Text(), primary_key=True),
    Column("event_id", Text(), primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)


def migrate_inbox(database: Database) -> str | None:
    """Create or upgrade the inbox table; call once at start-up, before consuming."""
    return migrate(database, INBOX_MIGRATIONS, version_table=INBOX_VERSION_TABLE)


class SqlProcessedEvents:
    """ProcessedEvents[Connection]. `consumer` names the consumer (one service may run
    several, e.g. one per input topic), so each de-duplicates on its own."""

    def __init__(self, *, consumer: str, clock: Callable[[], datetime] = utc_now) -> None:
        if not consumer:
            raise ValueError("name the consumer")
        self._consumer = consumer
        self._clock = clock

    def add_if_new(self, tx: Connection, key: tuple[str, str]) -> bool:
        _require_key(key)
        values = {
            "consumer": self._consumer,
            "source": key[0],
            "event_id": key[1],
            "processed_at": self._clock(),
        }
        # ON CONFLICT DO NOTHING rather than catching IntegrityError: on PostgreSQL a failed
        # statement would abort the consumer's whole transaction. A concurrent insert of the
        # same key waits for the other transaction and then reports a conflict.
        dialect = postgresql if tx.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(inbox_table)
            .values(values)
            .on_conflict_do_nothing()
            .returning(inbox_table.c.event_id)
        )
        return tx.execute(statement).first() is not None
