"""The validator's chain store in memory: tests, and a throw-away validator of a small chain."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace

from services.validator.ports import (
    ATTESTATIONS_CURSOR,
    BLOCKS_CURSOR,
    EventLocation,
    Refusal,
    StoredBlock,
    StoredHeader,
)
from shared.attestation import Attestation
from shared.chain import ChainState, VerifiedBlock
from shared.merkle import Address
from shared.merkle.leaf_backed import (
    STORED_LEVEL,
    LeafRun,
    PackedLeaves,
    pack_leaves,
    read_subtrees,
    upper_nodes,
)


class DuplicateBlockError(Exception):
    """A block at a stored height (the SQL stores raise their IntegrityError)."""


class MemoryChainStore:
    """`ChainStore` in dicts, behind one lock (the loop writes while HTTP reads).

    Laid out as the SQL store is (ADR 0012): each block's leaves packed together, subtree
    nodes from `STORED_LEVEL` up, the lower ones recomputed for proofs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._blocks: dict[int, StoredBlock] = {}
        self._sealed_at: dict[int, str] = {}
        self._upper: dict[Address, bytes] = {}
        self._leaf_firsts: list[int] = []  # each block's first leaf, ascending
        self._leaf_rows: list[PackedLeaves] = []
        self._events: dict[tuple[str, str], EventLocation] = {}
        self._state: ChainState | None = None
        self._attestations: dict[int, dict[tuple[str, str], Attestation]] = {}
        self._refusals: list[Refusal] = []
        self._cursors: dict[str, int] = {}

    def append(
        self,
        verified: VerifiedBlock,
        *,
        raw: bytes,
        offset: int | None,
        attestation: Attestation | None = None,
    ) -> None:
        header = verified.block.header
        with self._lock:
            if header.height in self._blocks:
                raise DuplicateBlockError(f"a block is stored at height {header.height}")
            self._blocks[header.height] = StoredBlock(
                height=header.height,
                block_hash=verified.block.block_hash,
                tree_size=header.tree_size,
                log_root=header.log_root,
                event_count=header.event_count,
                raw=raw,
                final=False,
            )
            self._sealed_at[header.height] = header.sealed_at
            first = header.tree_size - header.event_count
            self._leaf_firsts.append(first)
            self._leaf_rows.append((first, pack_leaves(verified.leaf_hashes)))
            self._upper.update(
                ((level, index), hash_)
                for level, index, hash_ in upper_nodes(verified.nodes, STORED_LEVEL)
            )
            for n, key in enumerate(verified.dedup_keys):
                self._events[key] = EventLocation(first + n, header.height)
            self._state = verified.state
            self._advance(BLOCKS_CURSOR, offset)
            if attestation is not None:
                self._store_attestation(attestation)

    def state(self) -> ChainState | None:
        return self._state

    def head(self) -> StoredHeader | None:
        with self._lock:
            return self._header(max(self._blocks)) if self._blocks else None

    def block_at(self, height: int) -> StoredBlock | None:
        return self._blocks.get(height)

    def header_at(self, height: int) -> StoredHeader | None:
        with self._lock:
            return self._header(height) if height in self._blocks else None

    def _header(self, height: int) -> StoredHeader:
        block = self._blocks[height]
        return StoredHeader(
            height=block.height,
            block_hash=block.block_hash,
            tree_size=block.tree_size,
            log_root=block.log_root,
            event_count=block.event_count,
            sealed_at=self._sealed_at[height],
            final=block.final,
        )

    def blocks(self, first: int, last: int) -> Iterator[StoredBlock]:
        with self._lock:
            found = [self._blocks[h] for h in sorted(self._blocks) if first <= h <= last]
        yield from found

    def sealed_among(self, keys: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        return {key for key in keys if key in self._events}

    def locate(self, source: str, event_id: str) -> EventLocation | None:
        return self._events.get((source, event_id))

    def subtree_hashes(self, addresses: Sequence[Address]) -> Sequence[bytes]:
        with self._lock:
            return read_subtrees(self, addresses, stored_level=STORED_LEVEL)

    def upper_subtrees(self, addresses: Sequence[Address]) -> Mapping[Address, bytes]:
        """`shared.merkle.LeafBackedStore` (called under the lock by `subtree_hashes`)."""
        return {address: self._upper[address] for address in addresses if address in self._upper}

    def packed_leaves(self, runs: Sequence[LeafRun]) -> Iterable[PackedLeaves]:
        """`shared.merkle.LeafBackedStore` (called under the lock by `subtree_hashes`)."""
        rows: dict[int, PackedLeaves] = {}
        for begin, end in runs:
            start = max(0, bisect.bisect_right(self._leaf_firsts, begin) - 1)
            stop = bisect.bisect_left(self._leaf_firsts, end)
            rows.update((row[0], row) for row in self._leaf_rows[start:stop])
        return list(rows.values())

    def add_attestation(
        self, attestation: Attestation, *, offset: int | None, final: bool = False
    ) -> bool:
        with self._lock:
            self._advance(ATTESTATIONS_CURSOR, offset)
            added = self._store_attestation(attestation)
            if final:
                self._mark_final(attestation.height)
            return added

    def _store_attestation(self, attestation: Attestation) -> bool:
        stored = self._attestations.setdefault(attestation.height, {})
        key = (attestation.validator, attestation.block_hash)
        if key in stored:
            return False
        stored[key] = attestation
        return True

    def attestations_at(self, height: int) -> list[Attestation]:
        with self._lock:
            stored = self._attestations.get(height, {})
            return [stored[key] for key in sorted(stored)]

    def attestation_records(self, first: int, last: int) -> Iterator[tuple[int, str]]:
        with self._lock:
            found = [
                (height, stored[key].model_dump_json())
                for height, stored in sorted(self._attestations.items())
                if first <= height <= last
                for key in sorted(stored)
            ]
        yield from found

    def mark_final(self, height: int) -> None:
        with self._lock:
            self._mark_final(height)

    def _mark_final(self, height: int) -> None:
        block = self._blocks.get(height)
        if block is not None:
            self._blocks[height] = replace(block, final=True)

    def final_height(self) -> int | None:
        with self._lock:
            final = [h for h, block in self._blocks.items() if block.final]
        return max(final) if final else None

    def add_refusal(self, refusal: Refusal, *, offset: int | None) -> None:
        with self._lock:
            self._refusals.append(refusal)
            self._advance(BLOCKS_CURSOR, offset)

    def refusals(self, limit: int = 100) -> list[Refusal]:
        with self._lock:
            return list(reversed(self._refusals))[:limit]

    def cursor(self, topic: str) -> int | None:
        return self._cursors.get(topic)

    def _advance(self, topic: str, offset: int | None) -> None:
        if offset is not None:
            self._cursors[topic] = offset
