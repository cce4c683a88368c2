"""The validator's start check: is the stored chain still the chain it verified? Cheap enough
to run at every start on a long chain, before anything is attested.

Checked for every stored block (one pass over the blocks table): heights have no gap; the
block parses; its header hashes to its `block_hash`, which the genesis sealer signed and the
block's columns repeat; it links to the block before (`prev_hash`, `tree_size` grown by
`event_count`, which is the number of its events). Every stored attestation of a block's
hash describes it exactly (height, tree size, root), and this validator's own name its
blocks (another validator's may name another block: the evidence of a conflict). The last
`tail` blocks are checked fully against what the store proves with: their events hash to
the stored leaves, and their attestations' signatures verify. At the head: the stored chain
state is the head's, and the stored subtree hashes give the head's `log_root`. A file-level
check (SQLite's `quick_check`) runs before, in `adapters.sql.check_store_file`.

What it does not do is re-verify the events (signatures, admission, each block's Merkle
leaves): that is the full audit from genesis (`Validator.audit`, setting `audit_on_start`),
which costs as much as verifying the chain did. docs/chain.md states both costs.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from services.validator.errors import StoreIntegrityError
from services.validator.ports import ChainStore
from shared.attestation import Attestation, AttestationError, verify_attestation
from shared.block import (
    GENESIS_PREV_HASH,
    Block,
    BlockFormatError,
    BlockHeader,
    ChainError,
    verify_block_signature,
)
from shared.canonical import canonicalize
from shared.genesis import GenesisConfig
from shared.merkle.hashing import leaf_hash
from shared.merkle.store_proofs import root_at

__all__ = ["DEFAULT_TAIL_BLOCKS", "StartCheck", "check_stored_chain"]

#: How many of the newest blocks have their attestations' signatures checked at start.
DEFAULT_TAIL_BLOCKS: Final = 100


@dataclass(frozen=True, slots=True)
class StartCheck:
    """What the start check covered, and how long it took (logged at start)."""

    blocks: int
    attestations: int
    signatures_checked: int
    seconds: float


def check_stored_chain(
    store: ChainStore,
    genesis: GenesisConfig,
    *,
    own: str | None = None,
    tail: int = DEFAULT_TAIL_BLOCKS,
) -> StartCheck:
    """Raise `StoreIntegrityError` (with the height and evidence) if the stored chain was
    altered, truncated or has a gap; return what was checked. `own` is this validator's DID:
    its own attestations must name its own blocks (another validator's may name another
    block: that is stored as the evidence of a conflict, not damage)."""
    started = time.perf_counter()
    head = store.head()
    if head is None:
        return StartCheck(0, 0, 0, time.perf_counter() - started)
    previous: _Parsed | None = None
    attestations = signatures = 0
    first_in_tail = head.height - tail + 1
    records = _by_height(store.attestation_records(0, head.height))
    pending = next(records, None)
    tail_leaves: list[tuple[int, int, bytes]] = []  # (height, leaf index, computed hash)
    for stored in store.blocks(0, head.height):
        expected = 0 if previous is None else previous.height + 1
        if stored.height != expected:
            raise StoreIntegrityError(
                "the stored chain has a gap", expected=expected, computed=stored.height,
                height=expected,
            )  # fmt: skip
        block = _parse(stored.raw, stored.height, genesis)
        _check_columns(block, stored.block_hash, stored.tree_size, stored.log_root)
        _check_link(block, previous)
        in_tail = stored.height >= first_in_tail
        if in_tail:
            first = block.header.tree_size - block.header.event_count
            tail_leaves += [
                (block.height, first + i, leaf_hash(canonicalize(event)))
                for i, event in enumerate(block.events)
            ]
        while pending is not None and pending[0] <= block.height:
            if pending[0] == block.height:
                attestations += len(pending[1])
                signatures += _check_attestations(
                    pending[1], block, genesis, own=own, signed=in_tail
                )
            pending = next(records, None)
        previous = block
    if previous is None or previous.height != head.height:
        raise StoreIntegrityError(
            "the stored chain ends before its head",
            expected=head.height,
            computed=None if previous is None else previous.height,
            height=head.height,
        )
    _check_leaves(store, tail_leaves)
    _check_head(store, previous)
    seconds = time.perf_counter() - started
    return StartCheck(head.height + 1, attestations, signatures, seconds)


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A stored block read for the start check: its header checked, its events as JSON."""

    header: BlockHeader
    block_hash: str
    events: list[dict[str, Any]]

    @property
    def height(self) -> int:
        return self.header.height


def _by_height(records: Iterator[tuple[int, str]]) -> Iterator[tuple[int, list[str]]]:
    for height, group in itertools.groupby(records, key=lambda record: record[0]):
        yield height, [raw for _, raw in group]


def _parse(raw: bytes, height: int, genesis: GenesisConfig) -> _Parsed:
    """The stored block's header, hash and sealer signature checked (events only parsed:
    re-verifying them is the full audit's)."""
    try:
        value = json.loads(raw)
        events = value["events"]
        signed = Block.model_validate(
            {
                "header": value["header"],
                "block_hash": value["block_hash"],
                "signature": value["signature"],
                "events": (),
            }
        )
        verify_block_signature(signed, genesis.sealer)
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise BlockFormatError("the block's events are not a list of objects")
    except (ValueError, KeyError, TypeError, ValidationError, ChainError) as exc:
        message = exc.message if isinstance(exc, ChainError) else type(exc).__name__
        raise StoreIntegrityError(
            f"stored block {height} is not the block the sealer signed: {message}",
            expected=getattr(exc, "expected", None),
            computed=getattr(exc, "computed", None),
            height=height,
        ) from exc
    if signed.header.height != height:
        raise StoreIntegrityError(
            "a stored block is filed under another height",
            expected=height,
            computed=signed.header.height,
            height=height,
        )
    return _Parsed(signed.header, signed.block_hash, events)


def _check_columns(block: _Parsed, block_hash: str, tree_size: int, log_root: str) -> None:
    """The columns queries and proofs read are the block's own."""
    header = block.header
    found = (block_hash, tree_size, log_root)
    wanted = (block.block_hash, header.tree_size, header.log_root)
    if found != wanted:
        raise StoreIntegrityError(
            "a stored block's columns are not its header's",
            expected=list(wanted),
            computed=list(found),
            height=header.height,
        )


def _check_link(block: _Parsed, previous: _Parsed | None) -> None:
    header = block.header
    prev_hash = GENESIS_PREV_HASH if previous is None else previous.block_hash
    prev_size = 0 if previous is None else previous.header.tree_size
    if header.prev_hash != prev_hash:
        raise StoreIntegrityError(
            "a stored block does not link to the block before it",
            expected=prev_hash,
            computed=header.prev_hash,
            height=header.height,
        )
    if header.event_count != len(block.events) or header.tree_size != prev_size + len(block.events):
        raise StoreIntegrityError(
            "a stored block's tree size is not the block before's plus its events",
            expected=prev_size + len(block.events),
            computed=header.tree_size,
            height=header.height,
        )


def _check_leaves(store: ChainStore, computed: list[tuple[int, int, bytes]]) -> None:
    """The tail blocks' events are the leaves the store proves inclusion with (an event
    altered in an older block is the full audit's to find). One read for the whole tail."""
    if not computed:
        return
    try:
        stored = store.subtree_hashes([(0, index) for _, index, _ in computed])
    except KeyError as exc:
        raise StoreIntegrityError("a stored leaf is missing", height=computed[0][0]) from exc
    for (height, index, wanted), found in zip(computed, stored, strict=True):
        if found != wanted:
            raise StoreIntegrityError(
                "a stored block's event is not the leaf the store proves",
                expected=found.hex(),
                computed=wanted.hex(),
                height=height,
                leaf_index=index,
            )


def _check_attestations(
    records: list[str], block: _Parsed, genesis: GenesisConfig, *, own: str | None, signed: bool
) -> int:
    """Every stored attestation of this height that names this block's hash describes it
    exactly, and ours all name it; with `signed` (the tail), each is also signed by its
    genesis validator. Returns the signatures checked."""
    header = block.header
    wanted = (header.height, block.block_hash, header.tree_size, header.log_root)
    for raw in records:
        try:
            value = json.loads(raw)
            described = (
                value["height"],
                value["block_hash"],
                value["tree_size"],
                value["log_root"],
            )
            names_ours = value["block_hash"] == block.block_hash or value["validator"] == own
            if signed:
                attestation = Attestation.model_validate(value)
                verify_attestation(
                    attestation, chain_id=genesis.chain_id, validators=genesis.validators
                )
        except (ValueError, KeyError, TypeError, ValidationError, AttestationError) as exc:
            message = exc.message if isinstance(exc, AttestationError) else type(exc).__name__
            raise StoreIntegrityError(
                f"a stored attestation does not verify: {message}", height=header.height
            ) from exc
        if names_ours and described != wanted:
            raise StoreIntegrityError(
                "a stored attestation does not name the stored block",
                expected=block.block_hash,
                computed=str(value.get("block_hash")),
                height=header.height,
                validator=str(value.get("validator")),
            )
    return len(records) if signed else 0


def _check_head(store: ChainStore, head: _Parsed) -> None:
    state = store.state()
    if state is None or state.head_hash != head.block_hash:
        raise StoreIntegrityError(
            "the stored chain state is not the head block's",
            expected=head.block_hash,
            computed=None if state is None else state.head_hash,
            height=head.header.height,
        )
    try:
        root = root_at(store, head.header.tree_size).hex()
    except KeyError as exc:
        raise StoreIntegrityError(
            "a stored subtree hash is missing", height=head.header.height
        ) from exc
    if root != head.header.log_root:
        raise StoreIntegrityError(
            "the stored subtree hashes do not give the head's log_root",
            expected=head.header.log_root,
            computed=root,
            height=head.header.height,
        )
