"""Alembic environment of the billing store (billing_alembic_version)."""

from shared.store.alembic_env import run_migrations

run_migrations()
