"""The in-memory database: a unit of work whose staged changes apply all together or not at all."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from shared.store.database import NestedTransactionError

T = TypeVar("T")


class MemoryTransaction:
    """What memory adapters write into: changes are staged and applied only at commit.

    Adapters validate while staging (raising there rolls the whole transaction back) and
    stage closures that cannot fail, so applying them at commit is all-or-nothing.
    """

    def __init__(self, *, database: MemoryDatabase) -> None:
        self.database = database
        self._apply: list[Callable[[], None]] = []
        self._scratch: dict[int, Any] = {}

    def on_commit(self, apply: Callable[[], None]) -> None:
        """Stage a change; it runs, in staging order, when the transaction commits."""
        self._apply.append(apply)

    def scratch(self, owner: object, factory: Callable[[], T]) -> T:
        """Per-adapter state for this transaction only (e.g. what it staged so far)."""
        key = id(owner)
        if key not in self._scratch:
            self._scratch[key] = factory()
        return cast("T", self._scratch[key])

    def _commit(self) -> None:
        for apply in self._apply:
            apply()
        self._apply.clear()


class MemoryDatabase:
    """Serialises transactions like SQLite does, and lets readers see only committed state."""

    def __init__(self) -> None:
        # Re-entrant so an adapter may read committed state inside a transaction.
        self._lock = threading.RLock()
        self._writer: int | None = None
        self._closed = False

    @contextmanager
    def transaction(self) -> Iterator[MemoryTransaction]:
        """A unit of work: commits what was staged if the block ends normally, else nothing."""
        me = threading.get_ident()
        with self._lock:
            if self._writer == me:
                raise NestedTransactionError("this thread already holds a write transaction")
            self._writer = me
            try:
                tx = MemoryTransaction(database=self)
                yield tx
                tx._commit()
            finally:
                self._writer = None

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold off commits while reading, so a reader never sees half a transaction."""
        with self._lock:
            yield

    def check(self, tx: MemoryTransaction) -> None:
        """Refuse a transaction from another database: its changes would land elsewhere."""
        if tx.database is not self:
            raise ValueError("this transaction belongs to another MemoryDatabase")

    def ping(self) -> bool:
        return not self._closed

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> MemoryDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
