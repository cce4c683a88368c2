"""Perfect subtrees (RFC 9162 §2.1) read from a store of leaves and upper levels only.

Persisting every node `CompactRange.append` reports costs about two rows per leaf. A store
can instead keep the leaf hashes packed together (e.g. one blob per block) and only the
nodes at `level >= stored_level`: a handful of rows per block. Any lower node is a perfect
subtree of fewer than `2**stored_level` leaves, recomputed here from them. A proof still
reads O(log n) stored values, in two calls whatever the log's size (the upper nodes, then
the leaf runs under the lower ones), and hashes at most `2**stored_level - 1` nodes per run.
The answers are exactly what a store of every node gives: a perfect subtree's hash is a
function of its leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from shared.merkle.compact import StoredNode
from shared.merkle.errors import SubtreeStoreError
from shared.merkle.hashing import HASH_SIZE, NODE_PREFIX
from shared.merkle.nodes import Address

_sha256 = hashlib.sha256

STORED_LEVEL = 8
"""The level from which the validator stores nodes. A block of 500 events then adds about
four node rows, and a proof recomputes at most 255 hashes per run of leaves it reads (a few
hundred microseconds, beside the milliseconds of reading the block that holds the event)."""

LeafRun = tuple[int, int]
"""Leaves `[begin, end)`."""

PackedLeaves = tuple[int, bytes]
"""A stored row of leaves: the index of its first leaf and the 32-byte hashes that follow it,
concatenated."""


class LeafBackedStore(Protocol):
    """What a store of leaves and upper levels answers; `read_subtrees` makes the rest."""

    def upper_subtrees(self, addresses: Sequence[Address]) -> Mapping[Address, bytes]:
        """The stored hashes among `addresses` (all at or above the stored level), one read;
        an address not stored is simply absent."""
        ...

    def packed_leaves(self, runs: Sequence[LeafRun]) -> Iterable[PackedLeaves]:
        """Every stored row of leaves that overlaps one of `runs`, in one read."""
        ...


def upper_nodes(nodes: Iterable[StoredNode], stored_level: int) -> list[StoredNode]:
    """The nodes a leaf-backed store persists: those at `level >= stored_level`."""
    return [node for node in nodes if node[0] >= stored_level]


def pack_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """Consecutive leaf hashes as one value to store (`PackedLeaves`)."""
    if any(len(leaf) != HASH_SIZE for leaf in leaf_hashes):
        raise SubtreeStoreError(f"every leaf hash must be {HASH_SIZE} bytes")
    return b"".join(leaf_hashes)


def unpack_leaves(packed: bytes) -> list[bytes]:
    """The leaf hashes of one stored row, in order."""
    if len(packed) % HASH_SIZE:
        raise SubtreeStoreError(
            f"a stored row of leaves holds {len(packed)} bytes, not a multiple of {HASH_SIZE}"
        )
    return [packed[start : start + HASH_SIZE] for start in range(0, len(packed), HASH_SIZE)]


def read_subtrees(
    store: LeafBackedStore, addresses: Sequence[Address], *, stored_level: int
) -> list[bytes]:
    """`SubtreeReader.subtree_hashes` over `store`: the hashes at `addresses`, in order.

    Raises `KeyError` (the address) for one that is not stored and cannot be derived: past
    the log's end, or with a leaf or upper node missing.
    """
    wanted = list(addresses)
    for level, index in wanted:
        if level < 0 or index < 0:
            raise KeyError((level, index))
    upper = sorted({address for address in wanted if address[0] >= stored_level})
    lower = sorted({address for address in wanted if address[0] < stored_level})
    found: dict[Address, bytes] = dict(store.upper_subtrees(upper)) if upper else {}
    if lower:
        found.update(_derive_all(store, lower))
    return [found[address] for address in wanted]  # KeyError when one is missing


def leaf_runs(addresses: Iterable[Address]) -> list[LeafRun]:
    """The fewest runs of leaves under `addresses`: their spans, merged where they touch."""
    runs: list[LeafRun] = []
    for begin, end in sorted((index << level, (index + 1) << level) for level, index in addresses):
        if runs and begin <= runs[-1][1]:
            runs[-1] = (runs[-1][0], max(runs[-1][1], end))
        else:
            runs.append((begin, end))
    return runs


def _derive_all(store: LeafBackedStore, lower: Sequence[Address]) -> dict[Address, bytes]:
    runs = leaf_runs(lower)
    leaves: dict[int, bytes] = {}
    for first, packed in store.packed_leaves(runs):
        for offset, leaf in enumerate(unpack_leaves(packed)):
            leaves[first + offset] = leaf
    derived: dict[Address, bytes] = {}
    memo: dict[Address, bytes] = {}
    for address in lower:
        try:
            derived[address] = _subtree(address, leaves, memo)
        except KeyError:
            continue  # one of its leaves is not stored: the caller's lookup raises
    return derived


def _subtree(address: Address, leaves: Mapping[int, bytes], memo: dict[Address, bytes]) -> bytes:
    level, index = address
    if level == 0:
        return leaves[index]
    known = memo.get(address)
    if known is None:
        left = _subtree((level - 1, 2 * index), leaves, memo)
        right = _subtree((level - 1, 2 * index + 1), leaves, memo)
        known = memo[address] = _sha256(NODE_PREFIX + left + right).digest()
    return known
