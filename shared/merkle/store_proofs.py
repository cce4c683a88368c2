"""RFC 9162 §2.1.3.1 / §2.1.4.1 proofs answered from stored perfect subtrees, never the leaves.

A validator persists every `(level, index, hash)` that `CompactRange.append` reports. Each
function here lists the O(log n) addresses it needs (`nodes`), reads them in a single
`SubtreeReader.subtree_hashes` call, and folds the right-edge ones that a tree of the
requested size cuts short. Past sizes work too: perfect subtrees never change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shared.merkle.errors import SubtreeStoreError
from shared.merkle.hashing import EMPTY_ROOT, all_hash_sized, fold_right
from shared.merkle.nodes import (
    Address,
    consistency_proof_nodes,
    inclusion_proof_nodes,
    root_nodes,
)


class SubtreeReader(Protocol):
    """Read access to stored perfect-subtree hashes, the port a log store implements."""

    def subtree_hashes(self, addresses: Sequence[Address]) -> Sequence[bytes]:
        """The hashes at `addresses` `(level, index)`, in the same order, in one read.

        Raises `KeyError` if any is not stored.
        """
        ...


def root_at(reader: SubtreeReader, tree_size: int) -> bytes:
    """MTH of the first `tree_size` leaves, from popcount(tree_size) stored hashes."""
    nodes = root_nodes(tree_size)
    if not nodes:
        return EMPTY_ROOT
    return _read_folded(reader, [nodes])[0]


def inclusion_proof_at(reader: SubtreeReader, index: int, tree_size: int) -> list[bytes]:
    """PATH(index, D[tree_size]) from stored hashes; same result as `inclusion_proof`."""
    return _read_folded(reader, inclusion_proof_nodes(index, tree_size))


def consistency_proof_at(reader: SubtreeReader, first_size: int, second_size: int) -> list[bytes]:
    """PROOF(first_size, D[second_size]) from stored hashes; same as `consistency_proof`."""
    return _read_folded(reader, consistency_proof_nodes(first_size, second_size))


def _read_folded(reader: SubtreeReader, groups: list[list[Address]]) -> list[bytes]:
    """Read every group's subtrees in one call, then fold each group into one hash."""
    wanted = [address for group in groups for address in group]
    if not wanted:
        return []
    hashes = reader.subtree_hashes(wanted)
    if len(hashes) != len(wanted) or not all_hash_sized(hashes):
        raise SubtreeStoreError(
            f"asked for {len(wanted)} subtree hashes of 32 bytes, got {len(hashes)} "
            f"of sizes {sorted(set(map(len, hashes)))}"
        )
    folded: list[bytes] = []
    start = 0
    for group in groups:
        folded.append(fold_right(hashes[start : start + len(group)]))
        start += len(group)
    return folded
