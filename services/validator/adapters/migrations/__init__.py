"""Alembic migrations of the validator chain store."""
