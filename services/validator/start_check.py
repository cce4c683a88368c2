"""The validator's start check: is the stored chain still the chain it verified? Cheap enough
to run at every start on a long chain, before anything is attested.

Checked for every stored block (one pass over the blocks table): heights have no gap; the
block parses; its header hashes to its `block_hash`, which the genesis sealer signed and the
block's columns repeat; it links to the block before (`prev_hash`, `tree_size` grown by
`event_count`, which is the number of its events). Every stored attestation names a stored
block exactly (height, hash, tree size, root). The last `tail` blocks are checked fully
against what the store proves with: their events hash to the stored leaves, and their
attestations' signatures verify. At the head: the stored chain state is the head's, and the stored
subtree hashes give the head's `log_root`. A file-level check (SQLite's `quick_check`) runs
before, in `adapters.sql.check_store_file`.

What it does not do is re-verify the events (signatures, admission, each block's Merkle
leaves): that is the full audit from genesis (`Validator.audit`, setting `audit_on_start`),
which costs as much as verifying the chain did. docs/chain.md states both costs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from services.validator.errors import StoreIntegrityError
from services.validator.ports import ChainStore
from shared.attestation import AttestationError, verify_attestation
from shared.block import Block, ChainError, block_from_json, verify_block_signature
from shared.canonical import canonicalize
from shared.genesis import GenesisConfig
from shared.merkle.hashing import leaf_hash
from shared.merkle.store_proofs import root_at

__all__ = ["DEFAULT_TAIL_BLOCKS", "StartCheck", "check_stored_chain"]

#: How many of the newest blocks have their attestations' signatures checked at start.
DEFAULT_TAIL_BLOCKS: Final = 100
_ZERO_HASH: Final = "0" * 64


@dataclass(frozen=True, slots=True)
class StartCheck:
    """What the start check covered, and how long it took (logged at start)."""

    blocks: int
    attestations: int
    signatures_checked: int
    seconds: float


def check_stored_chain(
    store: ChainStore, genesis: GenesisConfig, *, tail: int = DEFAULT_TAIL_BLOCKS
) -> StartCheck:
    """Raise `StoreIntegrityError` (with the height and evidence) if the stored chain was
    altered, truncated or has a gap; return what was checked."""
    started = time.perf_counter()
    head = store.head()
    if head is None:
        return StartCheck(0, 0, 0, time.perf_counter() - started)
    previous: Block | None = None
    attestations = signatures = 0
    first_signed = head.height - tail + 1
    for stored in store.blocks(0, head.height):
        expected = 0 if previous is None else previous.header.height + 1
        if stored.height != expected:
            raise StoreIntegrityError(
                "the stored chain has a gap", expected=expected, computed=stored.height,
                height=expected,
            )  # fmt: skip
        block = _stored_block(stored.raw, stored.height, genesis)
        _check_columns(block, stored.block_hash, stored.tree_size, stored.log_root)
        _check_link(block, previous)
        in_tail = stored.height >= first_signed
        if in_tail:
            _check_leaves(store, block)
        found, signed = _check_attestations(store, block, genesis, in_tail)
        attestations += found
        signatures += signed
        previous = block
    if previous is None or previous.header.height != head.height:
        raise StoreIntegrityError(
            "the stored chain ends before its head",
            expected=head.height,
            computed=None if previous is None else previous.header.height,
            height=head.height,
        )
    _check_head(store, previous)
    seconds = time.perf_counter() - started
    return StartCheck(head.height + 1, attestations, signatures, seconds)


def _stored_block(raw: bytes, height: int, genesis: GenesisConfig) -> Block:
    try:
        block = block_from_json(raw)
        verify_block_signature(block, genesis.sealer)
    except ChainError as exc:
        raise StoreIntegrityError(
            f"stored block {height} is not the block the sealer signed: {exc.message}",
            expected=exc.expected,
            computed=exc.computed,
            height=height,
        ) from exc
    if block.header.height != height:
        raise StoreIntegrityError(
            "a stored block is filed under another height",
            expected=height,
            computed=block.header.height,
            height=height,
        )
    return block


def _check_columns(block: Block, block_hash: str, tree_size: int, log_root: str) -> None:
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


def _check_link(block: Block, previous: Block | None) -> None:
    header = block.header
    prev_hash = _ZERO_HASH if previous is None else previous.block_hash
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


def _check_leaves(store: ChainStore, block: Block) -> None:
    """A tail block's events are the leaves the store proves inclusion with (an event altered
    in an older block is the full audit's to find)."""
    header = block.header
    first = header.tree_size - header.event_count
    computed = [leaf_hash(canonicalize(event)) for event in block.events]
    try:
        stored = store.subtree_hashes([(0, first + i) for i in range(len(computed))])
    except KeyError as exc:
        raise StoreIntegrityError("a stored leaf is missing", height=header.height) from exc
    for i, (found, wanted) in enumerate(zip(stored, computed, strict=True)):
        if found != wanted:
            raise StoreIntegrityError(
                "a stored block's event is not the leaf the store proves",
                expected=found.hex(),
                computed=wanted.hex(),
                height=header.height,
                leaf_index=first + i,
            )


def _check_attestations(
    store: ChainStore, block: Block, genesis: GenesisConfig, signatures: bool
) -> tuple[int, int]:
    """Every stored attestation of this height names this block; in the tail, each is also
    signed by its genesis validator. Returns (attestations, signatures checked)."""
    found = store.attestations_at(block.header.height)
    header = block.header
    for attestation in found:
        described = (attestation.block_hash, attestation.tree_size, attestation.log_root)
        if described != (block.block_hash, header.tree_size, header.log_root):
            raise StoreIntegrityError(
                "a stored attestation does not name the stored block",
                expected=block.block_hash,
                computed=attestation.block_hash,
                height=header.height,
                validator=attestation.validator,
            )
        if signatures:
            try:
                verify_attestation(
                    attestation, chain_id=genesis.chain_id, validators=genesis.validators
                )
            except AttestationError as exc:
                raise StoreIntegrityError(
                    f"a stored attestation does not verify: {exc.message}",
                    height=header.height,
                    validator=attestation.validator,
                ) from exc
    return len(found), len(found) if signatures else 0


def _check_head(store: ChainStore, head: Block) -> None:
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
