"""The pure block follower: a chain's sealed events, in order, with the chain's structure checked.

A lighter reader than `shared.chain.ChainVerifier` for services that need what the chain says
(the identity, records and billing services): it checks every block's place in the chain, the
sealer's signature and the log root, and trusts the sealer's admission of each event (the
validators re-check that). What is checked and trusted, and why: docs/follower.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from shared.block import Block, BlockHeader, ChainError, block_hash, verify_block_signature
from shared.canonical import canonicalize
from shared.chain import (
    BlockLinkError,
    ChainStateError,
    ChainVerifier,
    check_count,
    check_header,
    check_log,
)
from shared.genesis import GenesisConfig, verify_genesis_event
from shared.merkle import CompactRange, MerkleArgumentError, leaf_hash

__all__ = [
    "STATE_VERSION",
    "BlockFollower",
    "EquivocationError",
    "FollowedBlock",
    "FollowedBlockHandler",
    "FollowerState",
    "MissingBlocksError",
    "SealedEvent",
    "SealedEventError",
]

#: The version of `FollowerState.to_json_value`'s format.
STATE_VERSION: Final = 1


class EquivocationError(ChainError):
    """Two different blocks, both signed by the sealer, at one height: `expected` is the hash
    of the block applied there, `computed` the other's."""


class MissingBlocksError(BlockLinkError):
    """A block beyond the next height: the blocks between were not seen (`expected` is the
    next height). A reader may look for them (read the topic again) before calling it a fault."""


class SealedEventError(ChainError):
    """A sealed event lacks a string `source`, `id`, `type` or `signer` (`leaf_index=`)."""


@dataclass(frozen=True, slots=True)
class SealedEvent:
    """One event of the chain: where it was sealed and what it says (not re-verified)."""

    height: int
    leaf_index: int
    source: str
    id: str
    type: str
    signer: str
    event: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True, slots=True)
class FollowedBlock:
    """A block that extends the followed chain, with its events in leaf order."""

    height: int
    block_hash: str
    events: tuple[SealedEvent, ...]


@dataclass(frozen=True, slots=True)
class FollowerState:
    """Where a follower stands: the last applied header, and the log's frontier (O(log n)
    hashes) to check the next log root. `offset` is where the reader found that block in its
    stream (the `ledger.blocks` offset); the pure follower carries it and never reads it."""

    head: BlockHeader
    head_hash: str
    frontier: tuple[bytes, ...] = field(repr=False)
    offset: int | None = None

    @property
    def height(self) -> int:
        """The height of the last applied block."""
        return self.head.height

    def log(self) -> CompactRange:
        """A fresh compact range of every event sealed through the head."""
        return CompactRange.from_frontier(self.head.tree_size, self.frontier)

    def to_json_value(self) -> dict[str, Any]:
        """A JSON-able dict to store with the effects of the last block; see `from_json_value`."""
        return {
            "version": STATE_VERSION,
            "head": self.head.model_dump(mode="json"),
            "frontier": [node.hex() for node in self.frontier],
            "offset": self.offset,
        }

    @classmethod
    def from_json_value(cls, value: Mapping[str, Any]) -> FollowerState:
        """Restore a state saved by `to_json_value`; raise `ChainStateError` if it is not one
        (or if its frontier does not give its head's log root)."""
        try:
            if value["version"] != STATE_VERSION:
                raise ValueError(f"unknown state version {value['version']!r}")
            head = BlockHeader.model_validate_json(json.dumps(value["head"]))
            frontier = tuple(bytes.fromhex(node) for node in value["frontier"])
            offset = value["offset"]
            if offset is not None and (type(offset) is not int or offset < 0):
                raise ValueError(f"offset {offset!r} is not a non-negative integer")
            log = CompactRange.from_frontier(head.tree_size, frontier)
        except (ValueError, KeyError, TypeError, MerkleArgumentError) as exc:
            raise ChainStateError(f"not a saved follower state: {exc}") from exc
        if log.root().hex() != head.log_root:
            raise ChainStateError(
                "the saved frontier does not give the head's log_root",
                expected=head.log_root,
                computed=log.root().hex(),
                height=head.height,
            )
        return cls(head, block_hash(head).hex(), frontier, offset)


class FollowedBlockHandler(Protocol):
    """The service's side of a follower: where it stands, and applying the next block."""

    def position(self) -> FollowerState | None:
        """The state stored with the last applied block (None: start at genesis)."""

    def apply(self, block: FollowedBlock, state: FollowerState) -> None:
        """Store the block's effects and `state` durably, in one transaction. Idempotent: the
        same block may come again after a crash between storing and reading on."""


class BlockFollower:
    """Follows one chain from its genesis block (or a saved state), one block at a time.

    `follow` raises a `ChainError` at the first fault and then leaves the state as it was.
    """

    def __init__(
        self, *, genesis_event: Mapping[str, Any], state: FollowerState | None = None
    ) -> None:
        self._genesis_event = dict(genesis_event)
        self.genesis: GenesisConfig = verify_genesis_event(self._genesis_event)
        if state is not None and state.head.chain_id != self.genesis.chain_id:
            raise ChainStateError(
                "the saved state is of another chain",
                expected=self.genesis.chain_id,
                computed=state.head.chain_id,
                height=state.height,
            )
        self._state = state

    @property
    def state(self) -> FollowerState | None:
        """The state after the last followed block (None before genesis): store it."""
        return self._state

    def follow(
        self, block: Block, *, leaves: Sequence[bytes] | None = None
    ) -> FollowedBlock | None:
        """Check `block` against the chain so far; return it if it extends the chain, None if
        it is an identical copy of the head or lies below it (already applied). `leaves` are
        the events' RFC 8785 bytes as `shared.block.read_block` found them (hashed as they
        are); None: each event is canonicalised."""
        state = self._state
        if state is None:
            return self._start(block)
        header = block.header
        if header.height < state.height:
            return None  # applied long ago; the reader resumes past it, validators audit it
        check_header(header, chain_id=self.genesis.chain_id, sealer=self.genesis.sealer)
        verify_block_signature(block, self.genesis.sealer)
        if header.height == state.height:
            if block.block_hash == state.head_hash:
                return None
            raise EquivocationError(
                "the sealer signed two different blocks at one height",
                expected=state.head_hash,
                computed=block.block_hash,
                height=header.height,
            )
        if header.height > state.height + 1:
            raise MissingBlocksError(
                "not the next height: blocks are missing before this one",
                expected=state.height + 1,
                computed=header.height,
            )
        if header.prev_hash != state.head_hash:
            raise BlockLinkError(
                "prev_hash is not the hash of the previous block",
                expected=state.head_hash,
                computed=header.prev_hash,
                height=header.height,
            )
        check_count(header, len(block.events))
        log = state.log()
        if leaves is None:
            leaves = [canonicalize(event) for event in block.events]
        elif len(leaves) != len(block.events):
            raise ValueError("one leaf per event of the block")
        log.extend(leaf_hash(leaf) for leaf in leaves)
        check_log(header, log)
        followed = _followed(block, first_leaf=state.head.tree_size)
        self._state = FollowerState(header, block.block_hash, tuple(log.frontier()))
        return followed

    def _start(self, block: Block) -> FollowedBlock:
        if block.header.height != 0:
            raise MissingBlocksError(
                "the first block followed must be the genesis block",
                expected=0,
                computed=block.header.height,
            )
        verifier = ChainVerifier(trusted_genesis=self._genesis_event)
        verifier.verify_genesis(block)
        started = verifier.state
        if started is None:  # pragma: no cover - verify_genesis raises or sets the state
            raise RuntimeError("the genesis block verified but gave no state")
        followed = _followed(block, first_leaf=0)
        frontier = tuple(started.log.frontier())
        self._state = FollowerState(started.head, started.head_hash, frontier)
        return followed


def _followed(block: Block, *, first_leaf: int) -> FollowedBlock:
    height = block.header.height
    events = tuple(
        _sealed(event, height=height, leaf_index=first_leaf + index)
        for index, event in enumerate(block.events)
    )
    return FollowedBlock(height=height, block_hash=block.block_hash, events=events)


def _sealed(event: Mapping[str, Any], *, height: int, leaf_index: int) -> SealedEvent:
    names = ("source", "id", "type", "signer")
    values = [event.get(name) for name in names]
    missing = [
        name for name, value in zip(names, values, strict=True) if not isinstance(value, str)
    ]
    if missing:
        raise SealedEventError(
            "a sealed event lacks an envelope attribute",
            computed=missing,
            height=height,
            leaf_index=leaf_index,
        )
    source, event_id, event_type, signer = (str(value) for value in values)
    return SealedEvent(height, leaf_index, source, event_id, event_type, signer, event)
