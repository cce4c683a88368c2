"""The chain verifier: everything a validator (or an offline auditor) checks, block by block.

Incremental: it keeps the head header, the log's compact range (O(log n) hashes), the last
offset of every partition and the signer registry; the `(source, id)` of sealed events sit
behind the `SeenEvents` port. It raises at the first fault with its evidence, and a block that
fails leaves the verifier as it was. The checks and their order: docs/chain.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.admission import (
    InMemorySeenEvents,
    SeenEvents,
    SignatureCheck,
    SignerRegistry,
    registry_from_genesis,
)
from shared.block import (
    BLOCK_VERSION,
    GENESIS_PREV_HASH,
    Block,
    BlockBuilder,
    BlockHeader,
    ChainError,
    PartitionKey,
    SourceOffsetError,
    block_hash,
    event_positions,
    read_block,
    verify_block_signature,
)
from shared.canonical import canonicalize
from shared.envelope import EventRejected, parse_canonical_event, parse_event_object, verify_event
from shared.errors import VerificationError
from shared.events import parse_timestamp
from shared.genesis import GenesisConfig, verify_genesis_event
from shared.merkle import CompactRange, StoredNode, leaf_hash

__all__ = [
    "BlockHeaderError",
    "BlockLinkError",
    "ChainError",
    "ChainHead",
    "ChainState",
    "ChainStateError",
    "ChainVerifier",
    "EventAdmissionError",
    "GenesisBlockError",
    "LogRootError",
    "SourceOffsetError",
    "TreeSizeError",
    "VerifiedBlock",
    "check_count",
    "check_header",
    "check_log",
    "verify_chain",
]


class BlockLinkError(ChainError):
    """The block does not extend the head: wrong height or `prev_hash`."""


class BlockHeaderError(ChainError):
    """A header field breaks a chain rule (`field=`): version, chain_id, sealer, sealed_at
    going back, event_count."""


class GenesisBlockError(ChainError):
    """Block 0 is not a valid genesis block (or not the trusted one)."""


class TreeSizeError(ChainError):
    """`tree_size` is not the previous tree size plus this block's events."""


class LogRootError(ChainError):
    """`log_root` is not the RFC 6962 root of every event sealed through this block."""


class EventAdmissionError(ChainError):
    """A sealed event fails admission at its point of the chain (`reason=`, `leaf_index=`)."""


class ChainStateError(ChainError):
    """Saved verifier state that does not restore to a consistent state."""


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a verified chain ends."""

    height: int
    block_hash: str
    tree_size: int
    log_root: str


@dataclass(frozen=True, slots=True)
class ChainState:
    """All that verifying (or building) the next block needs; only the registry grows with
    the chain. `log` is never modified: builders work on a copy."""

    genesis: GenesisConfig
    genesis_event: Mapping[str, Any] = field(repr=False)
    head: BlockHeader
    head_hash: str
    log: CompactRange = field(repr=False)
    last_offsets: Mapping[PartitionKey, int]
    registry: SignerRegistry = field(repr=False)

    @property
    def chain_head(self) -> ChainHead:
        """The head as a summary."""
        return ChainHead(self.head.height, self.head_hash, self.head.tree_size, self.head.log_root)

    def open_block(
        self,
        *,
        sealed_at: datetime,
        seen: SeenEvents,
        check_signature: SignatureCheck = verify_event,
    ) -> BlockBuilder:
        """A builder for the next block, admitting events as of `sealed_at`."""
        return BlockBuilder(
            previous=self.head,
            log=self.log,
            registry=self.registry,
            seen=seen,
            last_offsets=self.last_offsets,
            sealed_at=sealed_at,
            check_signature=check_signature,
        )

    def advance(self, builder: BlockBuilder, header: BlockHeader) -> ChainState:
        """The state once the block `header`, built by `builder`, is part of the chain."""
        return ChainState(
            genesis=self.genesis,
            genesis_event=self.genesis_event,
            head=header,
            head_hash=block_hash(header).hex(),
            log=builder.log.copy(),
            last_offsets=dict(builder.last_offsets),
            registry=builder.registry,
        )

    def to_json(self) -> bytes:
        """Bytes to persist (a validator's or sealer's restart point); see `from_json`."""
        value = {
            "genesis_event": self.genesis_event,
            "head": self.head.model_dump(mode="json"),
            "frontier": [node.hex() for node in self.log.frontier()],
            "last_offsets": [[t, p, o] for (t, p), o in sorted(self.last_offsets.items())],
            "registry": self.registry.to_json_value(),
        }
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ChainState:
        """Restore a state saved by `to_json`; raise `ChainStateError` if it is not one."""
        try:
            value = json.loads(data)
            config = verify_genesis_event(value["genesis_event"])
            head = BlockHeader.model_validate_json(json.dumps(value["head"]))
            frontier = [bytes.fromhex(node) for node in value["frontier"]]
            log = CompactRange.from_frontier(head.tree_size, frontier)
            offsets = {(str(t), int(p)): int(o) for t, p, o in value["last_offsets"]}
            registry = SignerRegistry.from_json_value(value["registry"])
        except (ValueError, KeyError, TypeError, VerificationError) as exc:
            raise ChainStateError(f"not a saved chain state: {exc}") from exc
        if log.root().hex() != head.log_root:
            raise ChainStateError(
                "the saved frontier does not give the head's log_root",
                expected=head.log_root,
                computed=log.root().hex(),
                height=head.height,
            )
        event = value["genesis_event"]
        return cls(config, event, head, block_hash(head).hex(), log, offsets, registry)


@dataclass(frozen=True, slots=True)
class VerifiedBlock:
    """What verifying a block established, for the validator to store with it."""

    block: Block
    leaf_hashes: list[bytes]  # this block's leaves, from `tree_size - event_count` on
    nodes: list[StoredNode]  # the perfect subtrees the block completed, for proofs
    dedup_keys: list[tuple[str, str]]
    state: ChainState


class ChainVerifier:
    """Verifies a chain from its genesis block on, one block at a time.

    `seen` holds the `(source, id)` of every sealed event; a store-backed one should record
    a block's keys in the same transaction as the block. `trusted_genesis` pins the genesis
    event (e.g. `data/genesis.json`): without it, any well-formed chain verifies.
    """

    def __init__(
        self,
        *,
        seen: SeenEvents | None = None,
        trusted_genesis: Mapping[str, Any] | None = None,
        state: ChainState | None = None,
    ) -> None:
        self._seen: SeenEvents = InMemorySeenEvents() if seen is None else seen
        self._trusted = None if trusted_genesis is None else canonicalize(dict(trusted_genesis))
        self._state = state

    @property
    def state(self) -> ChainState | None:
        """The state after the last verified block (None before genesis); persist it."""
        return self._state

    def verify_block(
        self,
        block: Block,
        *,
        leaves: Sequence[bytes] | None = None,
        check_signature: SignatureCheck = verify_event,
    ) -> VerifiedBlock:
        """Verify the genesis block first (`verify_genesis`), then each next one."""
        if self._state is not None:
            return self.verify_next(block, leaves=leaves, check_signature=check_signature)
        state = self._start(block)
        leaf = state.log.frontier()[0]  # a log of one leaf is that leaf
        return VerifiedBlock(block, [leaf], [(0, 0, leaf)], [_dedup_key(block.events[0])], state)

    def verify_genesis(self, block: Block) -> GenesisConfig:
        """Verify block 0 and start the chain from it; return the genesis configuration."""
        return self._start(block).genesis

    def _start(self, block: Block) -> ChainState:
        header = block.header
        _check_link(header, self._state)
        check_count(header, len(block.events))
        if len(block.events) != 1:
            raise GenesisBlockError("genesis holds one event", computed=len(block.events), height=0)
        event = block.events[0]
        leaf_bytes = canonicalize(event)
        if self._trusted is not None and leaf_bytes != self._trusted:
            raise GenesisBlockError(
                "the genesis event is not the trusted one",
                expected=hashlib.sha256(self._trusted).hexdigest(),
                computed=hashlib.sha256(leaf_bytes).hexdigest(),
                height=0,
            )
        try:
            config = verify_genesis_event(event)
        except VerificationError as exc:
            raise GenesisBlockError(f"the genesis event does not verify: {exc}", height=0) from exc
        check_header(header, chain_id=config.chain_id, sealer=config.sealer)
        verify_block_signature(block, config.sealer)
        if header.sources:
            raise SourceOffsetError("genesis is read from no topic", height=0)
        log = CompactRange()
        log.append(leaf_hash(leaf_bytes))
        check_log(header, log)
        registry = registry_from_genesis(config)
        self._seen.add(_dedup_key(event))
        self._state = ChainState(config, event, header, block.block_hash, log, {}, registry)
        return self._state

    def verify_next(
        self,
        block: Block,
        *,
        leaves: Sequence[bytes] | None = None,
        check_signature: SignatureCheck = verify_event,
    ) -> VerifiedBlock:
        """Verify the block that extends the head; on success it becomes the head.

        `leaves` are the RFC 8785 bytes of the block's events as `shared.block.read_block`
        found them in the block's text: they are hashed and checked as they are, not encoded
        again (None: each event is canonicalised). `check_signature` lets a caller that
        verified the events' signatures in a batch (`PreverifiedSignatures`) spare this
        process checking them again.
        """
        if leaves is not None and len(leaves) != len(block.events):
            raise ValueError("one leaf per event of the block")
        state = self._state
        if state is None:
            raise GenesisBlockError("no genesis block verified yet", height=block.header.height)
        header = block.header
        _check_link(header, state)
        check_header(header, chain_id=state.genesis.chain_id, sealer=state.genesis.sealer)
        verify_block_signature(block, state.genesis.sealer)
        if parse_timestamp(header.sealed_at) < parse_timestamp(state.head.sealed_at):
            raise BlockHeaderError(
                "sealed_at goes back in time",
                expected=f">= {state.head.sealed_at}",
                computed=header.sealed_at,
                field="sealed_at",
                height=header.height,
            )
        check_count(header, len(block.events))
        positions = event_positions(header, state.last_offsets)
        builder = state.open_block(
            sealed_at=parse_timestamp(header.sealed_at),
            seen=self._seen,
            check_signature=check_signature,
        )
        for index, (event, position) in enumerate(zip(block.events, positions, strict=True)):
            topic, partition, offset = position
            try:
                parsed = (
                    parse_event_object(event)
                    if leaves is None
                    else parse_canonical_event(event, leaves[index])
                )
                builder.admit(parsed, topic=topic, partition=partition, offset=offset)
            except EventRejected as exc:
                raise EventAdmissionError(
                    f"event {index} of the block is not admissible: {exc}",
                    reason=exc.reason.value,
                    leaf_index=state.head.tree_size + index,
                    height=header.height,
                    topic=topic,
                    partition=partition,
                    offset=offset,
                ) from exc
        if builder.sources() != header.sources:
            raise SourceOffsetError(
                "runs that touch must be merged into one",
                expected=[run.model_dump() for run in header.sources],
                computed=[run.model_dump() for run in builder.sources()],
                height=header.height,
            )
        check_log(header, builder.log)
        next_state = state.advance(builder, header)
        keys = builder.dedup_keys
        for key in keys:
            self._seen.add(key)
        self._state = next_state
        return VerifiedBlock(block, builder.leaf_hashes, builder.nodes, keys, next_state)


def verify_chain(
    blocks: Iterable[Block | bytes],
    *,
    trusted_genesis: Mapping[str, Any] | None = None,
    seen: SeenEvents | None = None,
) -> ChainHead:
    """Verify a whole chain from its genesis block; return its head or raise a `ChainError`."""
    verifier = ChainVerifier(seen=seen, trusted_genesis=trusted_genesis)
    for item in blocks:
        block, leaves = read_block(item) if isinstance(item, bytes) else (item, None)
        verifier.verify_block(block, leaves=leaves)
    if verifier.state is None:
        raise GenesisBlockError("the chain is empty: no genesis block")
    return verifier.state.chain_head


def _check_link(header: BlockHeader, state: ChainState | None) -> None:
    height = 0 if state is None else state.head.height + 1
    prev_hash = GENESIS_PREV_HASH if state is None else state.head_hash
    if header.height != height:
        raise BlockLinkError("not the next height", expected=height, computed=header.height)
    if header.prev_hash != prev_hash:
        raise BlockLinkError(
            "prev_hash is not the hash of the previous block",
            expected=prev_hash,
            computed=header.prev_hash,
            height=height,
        )


def check_header(header: BlockHeader, *, chain_id: str, sealer: str) -> None:
    """The header's version, chain id and sealer are the chain's (raises `BlockHeaderError`)."""
    required = {"version": BLOCK_VERSION, "chain_id": chain_id, "sealer": sealer}
    for name, value in required.items():
        if getattr(header, name) != value:
            raise BlockHeaderError(
                f"{name} is not the chain's",
                expected=value,
                computed=getattr(header, name),
                field=name,
                height=header.height,
            )


def check_count(header: BlockHeader, events: int) -> None:
    """`event_count` is the number of events the block carries, never zero."""
    if header.event_count != events or events == 0:
        raise BlockHeaderError(
            "event_count is not the number of events (and a block is never empty)",
            expected=header.event_count,
            computed=events,
            field="event_count",
            height=header.height,
        )


def check_log(header: BlockHeader, log: CompactRange) -> None:
    """The header's log fields against the log recomputed from the events."""
    if header.tree_size != log.size:
        raise TreeSizeError(
            "tree_size is not the number of events sealed through this block",
            expected=header.tree_size,
            computed=log.size,
            height=header.height,
        )
    if header.log_root != log.root().hex():
        raise LogRootError(
            "log_root is not the root of the log through this block",
            expected=header.log_root,
            computed=log.root().hex(),
            height=header.height,
            tree_size=log.size,
        )


def _dedup_key(event: Mapping[str, Any]) -> tuple[str, str]:
    return (str(event["source"]), str(event["id"]))
