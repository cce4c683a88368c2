"""The validator's ports: its chain store, in domain words (append a verified block, locate an
event, read subtree hashes for proofs, keep attestations and refused blocks as evidence)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.attestation import Attestation
from shared.chain import ChainState, VerifiedBlock
from shared.checkpoint import Checkpoint
from shared.merkle import Address

#: Names of the stored consumer positions (`ChainStore.cursor`): logical topic names.
BLOCKS_CURSOR = "ledger.blocks"
ATTESTATIONS_CURSOR = "ledger.attestations"


@dataclass(frozen=True, slots=True)
class StoredBlock:
    """A verified block as stored: its wire JSON and the header fields a query needs."""

    height: int
    block_hash: str
    tree_size: int
    log_root: str
    event_count: int
    raw: bytes
    final: bool


@dataclass(frozen=True, slots=True)
class StoredHeader:
    """A stored block's header fields, without its JSON: what heads, attestation checks and
    finality need (reading a 500-event block's JSON for them cost more than the rest)."""

    height: int
    block_hash: str
    tree_size: int
    log_root: str
    event_count: int
    sealed_at: str
    final: bool


@dataclass(frozen=True, slots=True)
class EventLocation:
    """Where a sealed event sits in the log."""

    leaf_index: int
    height: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """A block the validator refused, kept as evidence (raw bytes exactly as received)."""

    reason: str
    height: int | None
    raw: bytes
    evidence: dict[str, Any]
    #: For an equivocation: the stored block the refused one conflicts with.
    conflicting: bytes | None = None


class ChainStore(Protocol):
    """What a validator stores. Every method is one transaction."""

    def append(
        self,
        verified: VerifiedBlock,
        *,
        raw: bytes,
        offset: int | None,
        attestation: Attestation | None = None,
    ) -> None:
        """Store a verified block, what its proofs need (its leaf hashes and the subtrees it
        completed, in as few rows as the store can: ADR 0012), its events' locations (the
        dedup keys) and the new chain state together; `offset` is its `ledger.blocks`
        position; `attestation` (our own, of this block) is stored in the same transaction."""

    def state(self) -> ChainState | None:
        """The chain state after the last stored block (None before genesis)."""

    def head(self) -> StoredHeader | None:
        """The last stored block's header fields."""

    def block_at(self, height: int) -> StoredBlock | None:
        """The stored block at `height`."""

    def header_at(self, height: int) -> StoredHeader | None:
        """The header fields of the stored block at `height` (its JSON is not read)."""

    def blocks(self, first: int, last: int) -> Iterator[StoredBlock]:
        """The stored blocks of heights `[first, last]`, in order, read in pages."""

    def sealed_among(self, keys: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these `(source, id)` belong to stored blocks (one batched read)."""

    def locate(self, source: str, event_id: str) -> EventLocation | None:
        """Where the event `(source, id)` was sealed."""

    def subtree_hashes(self, addresses: Sequence[Address]) -> Sequence[bytes]:
        """`shared.merkle.SubtreeReader`: the perfect-subtree hashes, stored or recomputed
        from stored leaves, in a bounded number of reads (two at most for the SQL store)."""

    def add_attestation(
        self, attestation: Attestation, *, offset: int | None, final: bool = False
    ) -> bool:
        """Store a verified attestation (False if it was stored already); `offset` is its
        `ledger.attestations` position. With `final`, its height is marked final in the same
        transaction (the attestation completes the quorum; see `mark_final`)."""

    def attestations_at(self, height: int) -> list[Attestation]:
        """Every stored attestation of `height`."""

    def attestation_records(self, first: int, last: int) -> Iterator[tuple[int, str]]:
        """Every stored attestation of heights `first..last` as (height, its JSON), by
        height: the start check reads a long chain's in a few queries, not one per height."""

    def mark_final(self, height: int) -> None:
        """Record that the block at `height` reached the quorum."""

    def final_height(self) -> int | None:
        """The highest final height."""

    def add_refusal(self, refusal: Refusal, *, offset: int | None) -> None:
        """Keep a refused block as evidence (and move past its `ledger.blocks` offset)."""

    def refusals(self, limit: int = 100) -> list[Refusal]:
        """The latest refusals, newest first."""

    def cursor(self, topic: str) -> int | None:
        """The last `topic` offset whose effect is stored."""


class AttestationPublisher(Protocol):
    """Sends the validator's own attestations to `ledger.attestations`."""

    def publish(self, attestation: Attestation) -> None:
        """Hand one attestation to the broker (delivery is at least once)."""


class ValidatorMetrics(Protocol):
    """What the validation loop reports; bound to Prometheus by `adapters.metrics`."""

    def block_verified(self, *, height: int, events: int, seconds: float) -> None:
        """A block verified and was stored."""

    def block_refused(self, *, reason: str) -> None:
        """A block was refused (`reason` is an error class name: a bounded set)."""

    def attestation_refused(self, *, reason: str) -> None:
        """An attestation did not verify and was dropped."""

    def finalized(self, *, height: int) -> None:
        """The block at `height` reached the quorum (also said at a restart, for the gauge)."""

    def sealed_to_final(self, *, seconds: float) -> None:
        """This validator just saw a block become final, `seconds` after its `sealed_at`."""

    def fault(self, *, reason: str) -> None:
        """A fault was detected: a refused block or an alarm (`reason` is a stable code of
        `core.faults.FAULT_CODES`, never a class name)."""

    def checkpoint_witnessed(self, *, outcome: str) -> None:
        """An add-checkpoint request ended: `cosigned`, or the refusal's stable code (one of
        `witness.WITNESS_OUTCOMES`)."""


class WitnessStore(Protocol):
    """What the validator keeps as a witness of checkpoints: the latest cosigned per origin."""

    def latest(self, origin: str) -> Checkpoint | None:
        """The checkpoint of `origin` cosigned last (None: none yet)."""

    def replace(self, checkpoint: Checkpoint, *, note: str, expected_size: int) -> bool:
        """Hold `checkpoint` (and the note it came in) if the held size of its origin is still
        `expected_size` (0: none held); False if another request moved it first."""
