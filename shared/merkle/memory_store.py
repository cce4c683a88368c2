"""An in-memory store of the RFC 9162 §2.1 perfect subtrees, for tests and small logs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shared.merkle.errors import SubtreeStoreError
from shared.merkle.hashing import HASH_SIZE
from shared.merkle.nodes import Address


class MemorySubtreeStore:
    """A `SubtreeReader` holding every perfect subtree hash in memory, one list per level.

    Feed it what `CompactRange.append` returns. Levels are append-only: a node must come
    right after the previous one of its level. Adding a node again with the same hash is a
    no-op (at-least-once delivery); with a different hash it raises, since that means the
    log was rewritten.
    """

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        # Lists, not a dict keyed by address: a million-leaf log has two million nodes and
        # a dict entry with its tuple key costs several times the 32-byte hash it holds.
        self._levels: list[list[bytes]] = []

    def add(self, level: int, index: int, hash_: bytes) -> None:
        """Store the hash of perfect subtree `(level, index)`."""
        if len(hash_) != HASH_SIZE:
            raise SubtreeStoreError(f"hash must be {HASH_SIZE} bytes, got {len(hash_)}")
        if level < 0 or index < 0:
            raise SubtreeStoreError(f"no such node ({level}, {index})")
        while len(self._levels) <= level:
            self._levels.append([])
        stored = self._levels[level]
        if index == len(stored):
            stored.append(hash_)
        elif index > len(stored):
            raise SubtreeStoreError(
                f"node ({level}, {index}) would leave a gap after {len(stored)} nodes"
            )
        elif stored[index] != hash_:
            raise SubtreeStoreError(
                f"node ({level}, {index}) is already stored with a different hash: "
                f"{stored[index].hex()} != {hash_.hex()}"
            )

    def add_all(self, nodes: Iterable[tuple[int, int, bytes]]) -> None:
        """Store every `(level, index, hash)`, e.g. the output of `CompactRange.append`."""
        for level, index, hash_ in nodes:
            self.add(level, index, hash_)

    def subtree_hashes(self, addresses: Sequence[Address]) -> list[bytes]:
        """The stored hashes at `addresses`, in order; `KeyError` for any not stored."""
        levels = self._levels
        found: list[bytes] = []
        for level, index in addresses:
            # Checked by hand: a negative list index would silently read from the end.
            if not (0 <= level < len(levels) and 0 <= index < len(levels[level])):
                raise KeyError((level, index))
            found.append(levels[level][index])
        return found

    def __len__(self) -> int:
        """The number of stored nodes."""
        return sum(map(len, self._levels))
