"""Alembic environment of the validator chain store (careledger_validator_version)."""

from shared.store.alembic_env import run_migrations

run_migrations()
