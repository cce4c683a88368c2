"""The SQL replay table (SQLite, PostgreSQL): one row per (issuer, jti) until it expires."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from shared.auth.memory import replayed, require_entry
from shared.store import Database, migrate

SEEN_TOKENS_MIGRATIONS = Path(__file__).parent / "migrations"
SEEN_TOKENS_VERSION_TABLE = "careledger_seen_tokens_version"

metadata = MetaData()
#: Mirrors the migrations (a test compares the two); queries use it, migrations do not.
seen_tokens_table = Table(
    "careledger_seen_tokens",
    metadata,
    Column("issuer", String(200), primary_key=True),
    Column("jti", String(128), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_careledger_seen_tokens_expires_at", "expires_at"),
)


def migrate_seen_tokens(database: Database) -> str | None:
    """Create or upgrade the replay table; call once at start-up, before serving."""
    return migrate(database, SEEN_TOKENS_MIGRATIONS, version_table=SEEN_TOKENS_VERSION_TABLE)


class SqlSeenTokens:
    """SeenTokens on the service's database; each call is its own short transaction."""

    def __init__(self, *, database: Database) -> None:
        self._database = database

    def remember(self, issuer: str, jti: str, expires_at: datetime, now: datetime) -> None:
        require_entry(issuer, jti)
        # SQLite keeps no time zone: every instant is stored and compared in UTC.
        expires_at, now = expires_at.astimezone(UTC), now.astimezone(UTC)
        table = seen_tokens_table
        with self._database.transaction() as tx:
            # Rows locked by a concurrent purge are skipped (PostgreSQL), so purges never
            # wait on each other; SQLite has one writer and ignores the clause.
            expired = (
                select(table.c.issuer, table.c.jti)
                .where(table.c.expires_at <= now)
                .with_for_update(skip_locked=True)
            )
            tx.execute(delete(table).where(tuple_(table.c.issuer, table.c.jti).in_(expired)))
            # ON CONFLICT rather than catching IntegrityError: the primary key decides which
            # of two concurrent uses wins, and the loser sees the conflict after the winner
            # commits.
            dialect = postgresql if tx.dialect.name == "postgresql" else sqlite
            statement = (
                dialect.insert(table)
                .values(issuer=issuer, jti=jti, expires_at=expires_at)
                .on_conflict_do_nothing()
                .returning(table.c.jti)
            )
            accepted = tx.execute(statement).first() is not None
        if not accepted:
            raise replayed(issuer, jti)
