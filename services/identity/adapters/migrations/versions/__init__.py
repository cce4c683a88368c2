"""Identity journal revisions, applied in order by shared.store.migrate()."""
