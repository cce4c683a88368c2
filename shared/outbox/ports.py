"""Outbox ports: the writer side (inside the caller's transaction) and the relay side."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from shared.outbox.message import OutboxEntry, OutboxMessage

TxT_contra = TypeVar("TxT_contra", contravariant=True)


class OutboxWriter(Protocol[TxT_contra]):
    """Where a use case puts the events of a state change, in the same transaction as it."""

    def add(self, tx: TxT_contra, messages: Iterable[OutboxMessage]) -> None:
        """Stage messages in `tx`; they exist once `tx` commits and never if it rolls back.

        Raises DuplicateEventError if a (source, id) is already in the outbox (or twice in
        `messages`); the caller's transaction must then roll back.
        """
        ...


class OutboxStore(Protocol):
    """What the relay needs: the unsent messages in order, and a way to retire them."""

    def pending(self, limit: int) -> Sequence[OutboxEntry]:
        """Up to `limit` committed, unsent entries, lowest `seq` first."""
        ...

    def mark_sent(self, seqs: Sequence[int]) -> None:
        """Record delivery; unknown or already sent seqs are ignored (idempotent)."""
        ...

    def pending_count(self) -> int:
        """How many committed entries are not sent yet."""
        ...


class OutboxMetrics(Protocol):
    """Hooks the relay calls; the service binds them to Prometheus (names in docs/outbox.md).

    Called on the relay thread; implementations must be cheap and must not raise.
    """

    def published(self, topic: str, count: int) -> None:
        """`count` messages were acknowledged by the brokers on `topic` (physical name)."""
        ...

    def failed(self, topic: str, count: int) -> None:
        """`count` deliveries failed on `topic`; the messages stay pending and are retried."""
        ...

    def pending(self, count: int) -> None:
        """The number of unsent outbox entries (a gauge)."""
        ...

    def delivery_latency(self, topic: str, seconds: float) -> None:
        """Time from produce() to the delivery report of one message."""
        ...


class NoMetrics:
    """The default OutboxMetrics: records nothing."""

    def published(self, topic: str, count: int) -> None:
        pass

    def failed(self, topic: str, count: int) -> None:
        pass

    def pending(self, count: int) -> None:
        pass

    def delivery_latency(self, topic: str, seconds: float) -> None:
        pass
