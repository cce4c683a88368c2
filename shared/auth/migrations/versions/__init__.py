"""Replay-table revisions, applied in order by shared.store.migrate()."""
