"""The in-memory inbox: processed (source, id) keys, recorded when the transaction commits."""

from __future__ import annotations

from shared.store.memory import MemoryDatabase, MemoryTransaction


class MemoryProcessedEvents:
    """ProcessedEvents[MemoryTransaction], for tests and `dev` runs."""

    def __init__(self, *, database: MemoryDatabase) -> None:
        self._database = database
        self._seen: set[tuple[str, str]] = set()

    def add_if_new(self, tx: MemoryTransaction, key: tuple[str, str]) -> bool:
        self._database.check(tx)
        _require_key(key)
        staged = tx.scratch(self, set[tuple[str, str]])
        # The transaction holds the database lock, so nobody commits between check and add.
        if key in self._seen or key in staged:
            return False
        staged.add(key)
        tx.on_commit(lambda: self._seen.add(key))
        return True

    def __len__(self) -> int:
        with self._database.read():
            return len(self._seen)


def _require_key(key: tuple[str, str]) -> None:
    source, event_id = key
    if not source or not event_id:
        raise ValueError("a processed-event key is a non-empty (source, id)")
