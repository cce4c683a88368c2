"""Schema migrations run at start-up: each component upgrades its own tables, under a lock."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from shared.store.alembic_env import CONNECTION_ATTRIBUTE, VERSION_TABLE_ATTRIBUTE
from shared.store.database import Database

log = logging.getLogger(__name__)

# alembic.context and alembic.op are process-wide proxies: two threads running env.py at
# once would swap each other's migration context. Processes are serialised by the database.
_ALEMBIC = threading.Lock()


def migrate(
    database: Database,
    script_location: str | Path,
    *,
    version_table: str,
    revision: str = "head",
) -> str | None:
    """Upgrade one component's schema to its head (or the given) revision; return it.

    Idempotent: at head it changes nothing. Safe when several processes start at once: on
    PostgreSQL they queue on an advisory lock named after the schema and version table, on
    SQLite on the database write lock (BEGIN IMMEDIATE). The whole upgrade is one
    transaction, so a failure leaves the previous revision in place.
    """
    return _run(database, script_location, version_table, lambda c: command.upgrade(c, revision))


def downgrade(
    database: Database, script_location: str | Path, *, version_table: str, revision: str
) -> str | None:
    """Take one component's schema back to `revision` (an operator's way back from an
    upgrade, as one transaction like `migrate`); return the revision reached."""
    return _run(database, script_location, version_table, lambda c: command.downgrade(c, revision))


def _run(
    database: Database,
    script_location: str | Path,
    version_table: str,
    step: Callable[[Config], None],
) -> str | None:
    config = Config()
    # Config values are interpolated by configparser: a literal % must be doubled.
    config.set_main_option("script_location", str(script_location).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    with _ALEMBIC, database.transaction() as connection:
        if database.dialect == "postgresql":
            _lock_schema(connection, version_table)
        before = _current(connection, version_table)
        config.attributes[CONNECTION_ATTRIBUTE] = connection
        config.attributes[VERSION_TABLE_ATTRIBUTE] = version_table
        step(config)
        after = _current(connection, version_table)
    if before != after:
        log.info("migrated %s from %s to %s", version_table, before, after)
    return after


def current_revision(database: Database, *, version_table: str) -> str | None:
    """The revision recorded in `version_table`, or None before the first migration."""
    with database.read() as connection:
        return _current(connection, version_table)


def _current(connection: Connection, version_table: str) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": version_table})
    return context.get_current_revision()


def _lock_schema(connection: Connection, version_table: str) -> None:
    """Hold a transaction-scoped advisory lock for this schema's `version_table`."""
    schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    digest = hashlib.sha256(f"careledger-migrate:{schema}:{version_table}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
