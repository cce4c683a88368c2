"""Alembic migrations of the billing store (version table careledger_billing_version)."""
