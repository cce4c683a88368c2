"""The port every store shares: a unit of work whose transaction object adapters write into."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

TxT_co = TypeVar("TxT_co", covariant=True)


class UnitOfWork(Protocol[TxT_co]):
    """Opens transactions: an SQLAlchemy `Connection` for SQL stores, a `MemoryTransaction`
    for the memory adapters.

    A service's use case opens one transaction and hands it to every adapter that must
    change state together (its own store, the outbox, the inbox), so all of them commit or
    none does. `Database` and `MemoryDatabase` both satisfy this protocol.
    """

    def transaction(self) -> AbstractContextManager[TxT_co]:
        """Commit when the block ends normally; roll back if it raises."""
        ...

    def ping(self) -> bool:
        """True while the store can serve requests (for /readyz)."""
        ...

    def close(self) -> None:
        """Release every connection. Idempotent."""
        ...
