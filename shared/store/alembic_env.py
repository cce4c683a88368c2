"""The body of every `env.py`: run a component's Alembic migrations on the connection given."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

#: Keys of `Config.attributes` that `shared.store.migrations.migrate` fills in.
CONNECTION_ATTRIBUTE = "careledger_connection"
VERSION_TABLE_ATTRIBUTE = "careledger_version_table"


def run_migrations() -> None:
    """Upgrade inside the caller's transaction, recording versions in the caller's table.

    A migrations directory's `env.py` is just::

        from shared.store.alembic_env import run_migrations

        run_migrations()
    """
    config = context.config
    connection = config.attributes.get(CONNECTION_ATTRIBUTE)
    version_table = config.attributes.get(VERSION_TABLE_ATTRIBUTE)
    if not isinstance(connection, Connection) or not isinstance(version_table, str):
        # The alembic CLI would build its own engine from an ini file we do not have.
        raise RuntimeError("run these migrations with shared.store.migrate(), not the CLI")
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table=version_table,
        # SQLite can roll DDL back too once BEGIN is ours (see shared.store.database), so a
        # failed upgrade never leaves half a schema behind.
        transactional_ddl=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
