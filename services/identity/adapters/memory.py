"""The identity journal in memory: staged in the unit of work, applied at commit."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from services.identity.core.directory import JournalEntry
from shared.store import MemoryDatabase, MemoryTransaction


class MemoryIdentityJournal:
    """`IdentityJournal[MemoryTransaction]` for unit tests and the contract suite."""

    def __init__(self, *, database: MemoryDatabase) -> None:
        self._database = database
        self._entries: list[JournalEntry] = []
        self._position: dict[str, Any] | None = None

    def lock(self, tx: MemoryTransaction) -> None:
        self._database.check(tx)  # the memory database runs one transaction at a time

    # Reads see committed state: the memory database runs one transaction at a time, and a
    # use case reads before it writes, so `tx` adds nothing to see.
    def about(
        self,
        subjects: Collection[str],
        tx: MemoryTransaction | None = None,  # noqa: ARG002 - see above
    ) -> Sequence[JournalEntry]:
        return self._select(lambda entry: entry.subject in subjects)

    def with_credential(
        self,
        digest: str,
        tx: MemoryTransaction | None = None,  # noqa: ARG002 - see above
    ) -> Sequence[JournalEntry]:
        return self._select(lambda entry: entry.credential == digest)

    def of_type(
        self,
        event_type: str,
        tx: MemoryTransaction | None = None,  # noqa: ARG002 - see above
    ) -> Sequence[JournalEntry]:
        return self._select(lambda entry: entry.type == event_type)

    def record(self, tx: MemoryTransaction, entry: JournalEntry) -> None:
        self._database.check(tx)
        staged = tx.scratch(self, set[str])
        if entry.event_id in staged or any(e.event_id == entry.event_id for e in self._entries):
            raise ValueError(f"journal entry {entry.event_id} exists")
        staged.add(entry.event_id)
        tx.on_commit(lambda: self._entries.append(entry))

    def mark_sealed(self, tx: MemoryTransaction, heights: Mapping[str, int]) -> int:
        self._database.check(tx)
        wanted = dict(heights)
        changed = sum(
            1 for entry in self._entries if entry.sealed_height is None and entry.event_id in wanted
        )
        tx.on_commit(lambda: self._seal(wanted))
        return changed

    def save_position(self, tx: MemoryTransaction, position: Mapping[str, Any]) -> None:
        self._database.check(tx)
        saved = dict(position)
        tx.on_commit(lambda: setattr(self, "_position", saved))

    def position(self) -> Mapping[str, Any] | None:
        with self._database.read():
            return self._position

    def _seal(self, heights: Mapping[str, int]) -> None:
        self._entries = [
            replace(entry, sealed_height=heights[entry.event_id])
            if entry.sealed_height is None and entry.event_id in heights
            else entry
            for entry in self._entries
        ]

    def _select(self, keep: Callable[[JournalEntry], bool]) -> list[JournalEntry]:
        with self._database.read():
            return [entry for entry in self._entries if keep(entry)]
