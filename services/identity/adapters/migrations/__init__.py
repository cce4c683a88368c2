"""Alembic migrations of the identity journal (version table careledger_identity_version)."""
