"""Alembic migrations of the replay table (a package only so that wheels ship them)."""
