"""Alembic environment of the sealer's tables (version table careledger_sealer_version)."""

from shared.store.alembic_env import run_migrations

run_migrations()
