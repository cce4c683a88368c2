"""The in-memory outbox: entries appear when the MemoryTransaction that staged them commits."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from shared.outbox.message import DuplicateEventError, OutboxEntry, OutboxMessage
from shared.sources import utc_now
from shared.store.memory import MemoryDatabase, MemoryTransaction


class MemoryOutbox:
    """OutboxWriter[MemoryTransaction] and OutboxStore in one, for tests and `dev` runs."""

    def __init__(
        self, *, database: MemoryDatabase, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._database = database
        self._clock = clock
        # Insertion order is seq order, so the head of this dict is the next to publish.
        self._unsent: dict[int, OutboxEntry] = {}
        self._keys: set[tuple[str, str]] = set()
        self._last_seq = 0

    def add(self, tx: MemoryTransaction, messages: Iterable[OutboxMessage]) -> None:
        self._database.check(tx)
        staged = tx.scratch(self, set[tuple[str, str]])
        batch = list(messages)
        for message in batch:
            if message.dedup_key in self._keys or message.dedup_key in staged:
                raise DuplicateEventError(message.dedup_key)
            staged.add(message.dedup_key)
        # Seqs are taken at commit, so seq order is commit order as on the SQL stores.
        tx.on_commit(lambda: self._append(batch))

    def pending(self, limit: int) -> Sequence[OutboxEntry]:
        with self._database.read():
            return list(itertools.islice(self._unsent.values(), max(limit, 0)))

    def mark_sent(self, seqs: Sequence[int]) -> None:
        with self._database.read():
            for seq in seqs:
                self._unsent.pop(seq, None)

    def pending_count(self) -> int:
        with self._database.read():
            return len(self._unsent)

    def _append(self, messages: list[OutboxMessage]) -> None:
        created_at = self._clock()
        for message in messages:
            self._last_seq += 1
            self._unsent[self._last_seq] = OutboxEntry(
                seq=self._last_seq, message=message, created_at=created_at
            )
            self._keys.add(message.dedup_key)
