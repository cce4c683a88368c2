"""Alembic environment of the records store (careledger_records_version)."""

from shared.store.alembic_env import run_migrations

run_migrations()
