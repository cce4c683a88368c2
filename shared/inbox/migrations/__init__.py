"""Alembic migrations of the inbox table (a package only so that wheels ship them)."""
