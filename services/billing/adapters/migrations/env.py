"""Alembic environment of the billing store (careledger_billing_version)."""

from shared.store.alembic_env import run_migrations

run_migrations()
