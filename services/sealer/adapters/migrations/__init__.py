"""Alembic migrations of the sealer's chain store (version table careledger_sealer_version)."""
