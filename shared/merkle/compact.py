"""RFC 9162 §2.1.1 tree heads kept incrementally: a compact range over leaves [0, size)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from shared.merkle.errors import MerkleArgumentError
from shared.merkle.hashing import EMPTY_ROOT, HASH_SIZE, NODE_PREFIX, all_hash_sized, fold_right

_sha256 = hashlib.sha256

StoredNode = tuple[int, int, bytes]
"""(level, index, hash) of a perfect subtree completed by an append; see `nodes.Address`."""


class CompactRange:
    """An append-only Merkle log in O(log n) memory.

    Holds only the roots of the maximal perfect subtrees of the leaves appended so far (the
    frontier: one per set bit of `size`, largest and leftmost first). That is enough to
    append, to compute the root, and to report every perfect subtree an append completes,
    which is what a store persists to answer proofs later (`store_proofs`).
    """

    __slots__ = ("_frontier", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._frontier: list[bytes] = []

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> list[StoredNode]:
        """Append one leaf hash; return the perfect subtrees it completed, bottom up.

        The first is always the leaf itself `(0, size_before, leaf_hash)`; then one node per
        trailing one bit of the old size, as the new leaf closes each equal-sized pair.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise MerkleArgumentError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf_hash)}")
        index = self._size
        frontier = self._frontier
        completed = [(0, index, leaf_hash)]
        node = leaf_hash
        level = 0
        # Each trailing 1 bit of the old size is a perfect subtree of that height waiting
        # for an equal right neighbour; the new leaf's subtree is that neighbour.
        while index & 1:
            node = _sha256(NODE_PREFIX + frontier.pop() + node).digest()
            level += 1
            index >>= 1
            completed.append((level, index, node))
        frontier.append(node)
        self._size += 1
        return completed

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[StoredNode]:
        """Append several leaf hashes in order; return every subtree they completed."""
        completed: list[StoredNode] = []
        for leaf_hash in leaf_hashes:
            completed.extend(self.append(leaf_hash))
        return completed

    def root(self) -> bytes:
        """MTH of the leaves so far; `EMPTY_ROOT` for an empty log."""
        if not self._frontier:
            return EMPTY_ROOT
        return fold_right(self._frontier)

    def frontier(self) -> list[bytes]:
        """A copy of the frontier hashes, leftmost first; persist it with `size`.

        They are the hashes of `root_nodes(size)`, in that order.
        """
        return list(self._frontier)

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[bytes]) -> CompactRange:
        """Restore a range persisted as `(size, frontier())`.

        Raises `MerkleArgumentError` if the frontier cannot belong to that size: its length
        must be popcount(size) and every hash 32 bytes.
        """
        if size < 0:
            raise MerkleArgumentError(f"size must not be negative, got {size}")
        if len(frontier) != size.bit_count():
            raise MerkleArgumentError(
                f"a log of {size} leaves has a frontier of {size.bit_count()} hashes, "
                f"got {len(frontier)}"
            )
        if not all_hash_sized(frontier):
            raise MerkleArgumentError(f"every frontier hash must be {HASH_SIZE} bytes")
        restored = cls()
        restored._size = size
        restored._frontier = list(frontier)
        return restored

    def copy(self) -> CompactRange:
        """An independent range with the same leaves (appending to one leaves the other)."""
        duplicate = CompactRange()
        duplicate._size = self._size
        duplicate._frontier = list(self._frontier)
        return duplicate

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()})"
