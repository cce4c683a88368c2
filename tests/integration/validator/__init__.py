"""Validator adapters against SQLite, PostgreSQL and the real broker."""
