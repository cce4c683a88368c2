"""The identity journal on SQLite or PostgreSQL (its own Alembic migrations)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.sql import ColumnElement, Select

from services.identity.core.directory import JournalEntry
from shared.store import Database, migrate

IDENTITY_MIGRATIONS = Path(__file__).parent / "migrations"
IDENTITY_VERSION_TABLE = "careledger_identity_version"
_POSITION_ROW = 1
# One advisory lock serialises identity changes on PostgreSQL (SQLite has one writer anyway).
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"careledger-identity-journal").digest()[:8], "big") >> 1

metadata = MetaData()
#: Mirror the migrations; queries use these, migrations do not.
journal_table = Table(
    "identity_journal",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("type", String(128), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("credential", String(64), nullable=True),
    Column("data", Text(), nullable=False),
    Column("sealed_height", BigInteger(), nullable=True),
    Index("ix_identity_journal_subject", "subject"),
    Index("ix_identity_journal_type", "type"),
    Index("ix_identity_journal_credential", "credential"),
    sqlite_autoincrement=True,
)
follower_table = Table(
    "identity_follower",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("position", Text(), nullable=False),
)


def migrate_identity_store(database: Database) -> str | None:
    """Create or upgrade the identity service's tables; call once at start-up."""
    return migrate(database, IDENTITY_MIGRATIONS, version_table=IDENTITY_VERSION_TABLE)


class SqlIdentityJournal:
    """`IdentityJournal[Connection]` on one SQL database."""

    def __init__(self, *, database: Database) -> None:
        self._database = database

    def lock(self, tx: Connection) -> None:
        if tx.dialect.name == "postgresql":
            tx.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})

    def about(
        self, subjects: Collection[str], tx: Connection | None = None
    ) -> Sequence[JournalEntry]:
        where = journal_table.c.subject.in_(bindparam("subjects", expanding=True))
        return self._select(where, tx, subjects=sorted(subjects))

    def with_credential(self, digest: str, tx: Connection | None = None) -> Sequence[JournalEntry]:
        return self._select(journal_table.c.credential == digest, tx)

    def of_type(self, event_type: str, tx: Connection | None = None) -> Sequence[JournalEntry]:
        return self._select(journal_table.c.type == event_type, tx)

    def record(self, tx: Connection, entry: JournalEntry) -> None:
        tx.execute(
            insert(journal_table).values(
                event_id=entry.event_id,
                type=entry.type,
                subject=entry.subject,
                credential=entry.credential,
                data=json.dumps(dict(entry.data), sort_keys=True),
                sealed_height=entry.sealed_height,
            )
        )

    def mark_sealed(self, tx: Connection, heights: Mapping[str, int]) -> int:
        statement = (
            update(journal_table)
            .where(journal_table.c.event_id == bindparam("id"))
            .where(journal_table.c.sealed_height.is_(None))
            .values(sealed_height=bindparam("height"))
        )
        changed = 0
        for event_id, height in heights.items():
            changed += tx.execute(statement, {"id": event_id, "height": height}).rowcount
        return changed

    def save_position(self, tx: Connection, position: Mapping[str, Any]) -> None:
        text_value = json.dumps(dict(position), sort_keys=True)
        updated = tx.execute(
            update(follower_table)
            .where(follower_table.c.id == _POSITION_ROW)
            .values(position=text_value)
        ).rowcount
        if not updated:
            tx.execute(insert(follower_table).values(id=_POSITION_ROW, position=text_value))

    def position(self) -> Mapping[str, Any] | None:
        query = select(follower_table.c.position).where(follower_table.c.id == _POSITION_ROW)
        with self._database.read() as connection:
            stored = connection.execute(query).scalar_one_or_none()
        if stored is None:
            return None
        value: dict[str, Any] = json.loads(stored)
        return value

    def _select(
        self, where: ColumnElement[bool], tx: Connection | None, **params: Any
    ) -> list[JournalEntry]:
        query: Select[Any] = select(journal_table).where(where).order_by(journal_table.c.seq)
        if tx is not None:
            return [_entry(row) for row in tx.execute(query, params)]
        with self._database.read() as connection:
            return [_entry(row) for row in connection.execute(query, params)]


def _entry(row: Row[Any]) -> JournalEntry:
    values = row._mapping
    height = values["sealed_height"]
    return JournalEntry(
        event_id=values["event_id"],
        type=values["type"],
        subject=values["subject"],
        data=json.loads(values["data"]),
        sealed_height=None if height is None else int(height),
    )
