"""Storage foundation: SQL databases (SQLite, PostgreSQL), migrations and the memory unit of work.

A component owns its schema: its migrations live in its own Alembic directory and record
their revision in its own version table, and `migrate()` runs them at start-up.
"""

from shared.store.database import (
    Database,
    DatabaseConfigError,
    NestedTransactionError,
    open_database,
)
from shared.store.memory import MemoryDatabase, MemoryTransaction
from shared.store.migrations import current_revision, downgrade, migrate
from shared.store.ports import UnitOfWork

__all__ = [
    "Database",
    "DatabaseConfigError",
    "MemoryDatabase",
    "MemoryTransaction",
    "NestedTransactionError",
    "UnitOfWork",
    "current_revision",
    "downgrade",
    "migrate",
    "open_database",
]
