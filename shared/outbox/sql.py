"""The SQL outbox on SQLite or PostgreSQL: written on the caller's Connection, read by the relay."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from shared.outbox.message import DuplicateEventError, OutboxEntry, OutboxMessage
from shared.sources import utc_now
from shared.store import Database, migrate

OUTBOX_MIGRATIONS = Path(__file__).parent / "migrations"
OUTBOX_VERSION_TABLE = "careledger_outbox_version"
# Keeps `IN (...)` lists well below SQLite's and PostgreSQL's bind-parameter limits.
_CHUNK = 500

metadata = MetaData()
#: Mirrors the migrations (a test compares the two); queries use it, migrations do not.
outbox_table = Table(
    "careledger_outbox",
    metadata,
    Column(
        "seq",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("topic", String(249), nullable=False),
    Column("source", Text(), nullable=False),
    Column("event_id", Text(), nullable=False),
    Column("message_key", LargeBinary(), nullable=True),
    Column("value", LargeBinary(), nullable=False),
    Column("headers", Text(), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("source", "event_id", name="uq_careledger_outbox_event"),
    Index(
        "ix_careledger_outbox_pending",
        "seq",
        sqlite_where=text("sent_at IS NULL"),
        postgresql_where=text("sent_at IS NULL"),
    ),
    sqlite_autoincrement=True,
)


def migrate_outbox(database: Database) -> str | None:
    """Create or upgrade the outbox tables; call once at start-up, before the relay starts."""
    return migrate(database, OUTBOX_MIGRATIONS, version_table=OUTBOX_VERSION_TABLE)


class SqlOutbox:
    """OutboxWriter[Connection] and OutboxStore on one database.

    `add` writes on the Connection of the caller's transaction, next to the caller's own
    rows; the relay side opens short transactions of its own on `database`.
    """

    def __init__(self, *, database: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self._database = database
        self._clock = clock

    def add(self, tx: Connection, messages: Iterable[OutboxMessage]) -> None:
        rows = []
        seen: set[tuple[str, str]] = set()
        created_at = self._clock()
        for message in messages:
            if message.dedup_key in seen:
                raise DuplicateEventError(message.dedup_key)
            seen.add(message.dedup_key)
            rows.append(_row(message, created_at))
        if not rows:
            return
        try:
            tx.execute(insert(outbox_table), rows)
        except IntegrityError as exc:
            if not _is_unique_violation(exc):
                raise
            raise DuplicateEventError(*_duplicates(tx, seen)) from exc

    def pending(self, limit: int) -> Sequence[OutboxEntry]:
        query = (
            select(outbox_table)
            .where(outbox_table.c.sent_at.is_(None))
            .order_by(outbox_table.c.seq)
            .limit(max(limit, 0))
        )
        with self._database.read() as connection:
            return [_entry(row) for row in connection.execute(query)]

    def mark_sent(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        statement = (
            update(outbox_table)
            .where(outbox_table.c.seq.in_(bindparam("seqs", expanding=True)))
            .where(outbox_table.c.sent_at.is_(None))
            .values(sent_at=self._clock())
        )
        ordered = sorted(set(seqs))
        with self._database.transaction() as connection:
            for start in range(0, len(ordered), _CHUNK):
                connection.execute(statement, {"seqs": ordered[start : start + _CHUNK]})

    def pending_count(self) -> int:
        query = (
            select(func.count()).select_from(outbox_table).where(outbox_table.c.sent_at.is_(None))
        )
        with self._database.read() as connection:
            return int(connection.execute(query).scalar_one())

    def prune_sent(self, *, before: datetime) -> int:
        """Delete entries sent before `before`; return how many. Unsent entries stay."""
        statement = delete(outbox_table).where(
            outbox_table.c.sent_at.is_not(None), outbox_table.c.sent_at < before
        )
        with self._database.transaction() as connection:
            return int(connection.execute(statement).rowcount)


def _row(message: OutboxMessage, created_at: datetime) -> dict[str, object]:
    return {
        "topic": message.topic,
        "source": message.dedup_key[0],
        "event_id": message.dedup_key[1],
        "message_key": message.key,
        "value": message.value,
        "headers": _encode_headers(message.headers),
        "created_at": created_at,
    }


def _entry(row: Row[tuple[object, ...]]) -> OutboxEntry:
    values = row._mapping
    created_at: datetime = values["created_at"]
    return OutboxEntry(
        seq=int(values["seq"]),
        created_at=_as_utc(created_at),
        message=OutboxMessage(
            topic=values["topic"],
            key=None if values["message_key"] is None else bytes(values["message_key"]),
            value=bytes(values["value"]),
            headers=_decode_headers(values["headers"]),
            dedup_key=(values["source"], values["event_id"]),
        ),
    )


def _is_unique_violation(exc: IntegrityError) -> bool:
    # The only unique constraint besides the generated seq is (source, event_id).
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == "23505")
    return "UNIQUE constraint failed" in str(exc.orig)


def _duplicates(tx: Connection, keys: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """The keys that broke the constraint. A failed statement aborts a PostgreSQL
    transaction, so there nothing can be asked and every key of the batch is named."""
    ordered = sorted(keys)
    if tx.dialect.name != "sqlite":
        return ordered
    query = select(outbox_table.c.source, outbox_table.c.event_id).where(
        outbox_table.c.source == bindparam("source"),
        outbox_table.c.event_id == bindparam("event_id"),
    )
    found = [
        key
        for key in ordered
        if tx.execute(query, {"source": key[0], "event_id": key[1]}).first() is not None
    ]
    return found or ordered


def _encode_headers(headers: tuple[tuple[str, bytes], ...]) -> str:
    # Header values are bytes; base64 keeps the column plain text on both databases.
    return json.dumps([[name, base64.b64encode(value).decode("ascii")] for name, value in headers])


def _decode_headers(stored: str) -> tuple[tuple[str, bytes], ...]:
    return tuple((str(name), base64.b64decode(value)) for name, value in json.loads(stored))


def _as_utc(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; they were written in UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
