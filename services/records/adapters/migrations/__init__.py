"""Alembic migrations of the records store (version table careledger_records_version)."""
