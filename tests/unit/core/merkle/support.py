"""Shared fixtures of the Merkle tests: one deterministic log, its naive twin and its store."""

from __future__ import annotations

from collections.abc import Sequence

from shared.merkle import CompactRange, MemorySubtreeStore, leaf_hash
from tests.unit.core.merkle.reference import ReferenceTree

MAX_SIZE = 1100
"""Every test tree is a prefix of this log: perfect subtrees never change as it grows."""

# Distinct leaves, so that no wrong index can verify by two leaves sharing a hash.
DATA = [b"event %d" % i for i in range(MAX_SIZE)]
LEAF_HASHES = [leaf_hash(data) for data in DATA]
REFERENCE = ReferenceTree(DATA)


def _filled_store() -> MemorySubtreeStore:
    store = MemorySubtreeStore()
    store.add_all(CompactRange().extend(LEAF_HASHES))
    return store


STORE = _filled_store()


class CountingReader:
    """A `SubtreeReader` that records every call, to check the one-read, O(log n) promise."""

    def __init__(self, inner: MemorySubtreeStore) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def subtree_hashes(self, addresses: Sequence[tuple[int, int]]) -> list[bytes]:
        self.calls.append(len(addresses))
        return self.inner.subtree_hashes(addresses)


def flip_bit(value: bytes, bit: int = 0) -> bytes:
    """`value` with one bit inverted (bit counts from the most significant of byte 0)."""
    position, shift = divmod(bit % (len(value) * 8), 8)
    changed = bytearray(value)
    changed[position] ^= 0x80 >> shift
    return bytes(changed)
