"""Alembic migrations of the billing store (version table billing_alembic_version)."""
