"""Billing store revisions, applied in order by shared.store.migrate()."""
