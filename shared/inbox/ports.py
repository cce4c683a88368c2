"""The inbox port: which events a consumer has already applied, keyed by (source, id)."""

from __future__ import annotations

from typing import Protocol, TypeVar

TxT_contra = TypeVar("TxT_contra", contravariant=True)


class ProcessedEvents(Protocol[TxT_contra]):
    """The consumer side of exactly-once: Kafka delivers at least once, and a consumer
    applies an event only if this says it is new.

    Call it in the same transaction as the event's effect, so the effect and the mark
    commit together: a crash before commit leaves neither, and the redelivered event is
    applied then; a crash after commit leaves both, and the redelivery is skipped.
    """

    def add_if_new(self, tx: TxT_contra, key: tuple[str, str]) -> bool:
        """Record (source, id) as processed in `tx`; False if it already was."""
        ...
