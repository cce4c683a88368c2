"""Alembic migrations of the outbox tables (a package only so that wheels ship them)."""
