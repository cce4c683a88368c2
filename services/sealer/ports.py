"""The sealer's ports: where sealed blocks are kept, where events come from, where blocks go."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from shared.admission import DedupKey
from shared.block import Block, PartitionKey
from shared.chain import ChainState
from shared.outbox import OutboxMessage


@dataclass(frozen=True, slots=True)
class SealedHead:
    """What the store knows about the end of the chain: enough to resume sealing."""

    state: ChainState = field(repr=False)
    block: bytes = field(repr=False)  # the last block, as published (block_to_json)
    #: The next offset to read per (logical topic, partition): past every event that is
    #: sealed or was rejected before this block was cut. Never before `last_offsets` + 1.
    read_positions: Mapping[PartitionKey, int]

    @property
    def height(self) -> int:
        return self.state.head.height


class ChainStore(Protocol):
    """The sealer's system of record (the broker is not: the embedded one forgets)."""

    def head(self) -> SealedHead | None:
        """The last sealed block and the state after it; None before genesis."""

    def append(
        self,
        block: Block,
        state: ChainState,
        dedup_keys: Sequence[DedupKey],
        read_positions: Mapping[PartitionKey, int],
        *,
        raw: bytes | None = None,
    ) -> None:
        """Store `block` durably with the state after it and its events' `(source, id)`, all
        in one transaction. Raises `ChainConflictError` unless it extends the stored head.
        `raw` is `block_to_json(block)` when the caller has it already (it is stored as is)."""

    def contains(self, key: DedupKey) -> bool:
        """Whether an event with this `(source, id)` is in a stored block."""

    def sealed_among(self, keys: Collection[DedupKey]) -> set[DedupKey]:
        """Those of `keys` that are in a stored block (one round trip for a batch)."""

    def block(self, height: int) -> bytes | None:
        """A stored block (block_to_json bytes), or None."""


class WriterLease(Protocol):
    """One sealer per chain: whoever holds the lease may append (the store checks it again in
    the append transaction, so a sealer that lost it cannot write)."""

    def acquire(self) -> bool:
        """Take or renew the lease; False while another holder's lease is live."""

    def release(self) -> None:
        """Give the lease up now (a clean stop), so a standby takes over at once."""


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """One Kafka record of an input topic, named by its logical topic."""

    topic: str
    partition: int
    offset: int
    value: bytes


class EventSource(Protocol):
    """The input topics, read from given positions in per-partition order."""

    def open(self, positions: Mapping[PartitionKey, int]) -> None:
        """Read every partition of every input topic from `positions` (next offset to read;
        a partition not named is read from its beginning)."""

    def poll(self, *, max_messages: int, timeout: float) -> list[SourceMessage]:
        """The next messages (possibly none within `timeout`); raises `TransientError`."""

    def commit(self, positions: Mapping[PartitionKey, int]) -> None:
        """Tell the broker how far the sealer got (informational: the store is the truth)."""

    def close(self) -> None: ...


class LedgerPublisher(Protocol):
    """`ledger.blocks` and `ledger.rejected`."""

    def publish_block(self, height: int, value: bytes, *, timeout: float) -> None:
        """Produce the block (key = height) and wait for its delivery report; raises
        `TransientError` if it is not delivered within `timeout`."""

    def publish_rejection(self, value: bytes) -> None:
        """Produce a `ledger.rejected` record (delivered by the next `flush`)."""

    def flush(self, *, timeout: float) -> None:
        """Wait until everything produced is delivered; raises `TransientError` otherwise."""

    def close(self) -> None: ...


class SealerMetrics(Protocol):
    """What the sealer counts (bound to Prometheus in adapters/metrics.py)."""

    def sealed(self, events: int, *, height: int, cut_seconds: float) -> None: ...

    def published_to_sealed(self, seconds: Sequence[float]) -> None:
        """Per event of a stored block: from its CloudEvents `time` to the block's
        `sealed_at`, in seconds (never negative: clock skew is clamped to 0)."""

    def rejected(self, reason: str) -> None: ...

    def at_height(self, height: int) -> None: ...

    def leading(self, holds_lease: bool) -> None:
        """Whether this sealer is the chain's writer (False: standby)."""


class EventQueue(Protocol):
    """Where the HTTP ingest puts an accepted event: durably, before it answers 202 (a
    transactional outbox the relay drains to Kafka)."""

    def enqueue(self, message: OutboxMessage) -> bool:
        """Store `message` for publication; True if stored now, False if the same bytes
        under the same `(source, id)` were stored before (a retried post). Raises
        `DuplicateEventError` if another event holds that `(source, id)`."""
        ...
