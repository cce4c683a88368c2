"""Alembic environment of the identity journal (careledger_identity_version)."""

from shared.store.alembic_env import run_migrations

run_migrations()
