"""Alembic environment of the replay table (version table careledger_seen_tokens_version)."""

from shared.store.alembic_env import run_migrations

run_migrations()
