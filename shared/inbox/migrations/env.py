"""Alembic environment of the inbox table (version table careledger_inbox_version)."""

from shared.store.alembic_env import run_migrations

run_migrations()
