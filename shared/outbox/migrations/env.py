"""Alembic environment of the outbox tables (version table careledger_outbox_version)."""

from shared.store.alembic_env import run_migrations

run_migrations()
