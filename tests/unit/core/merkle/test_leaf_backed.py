"""A store of leaf blobs and upper levels answers exactly what a store of every node does."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.merkle import (
    CompactRange,
    SubtreeStoreError,
    consistency_proof_at,
    inclusion_proof_at,
    root_at,
)
from shared.merkle.leaf_backed import (
    LeafRun,
    PackedLeaves,
    leaf_runs,
    pack_leaves,
    read_subtrees,
    unpack_leaves,
    upper_nodes,
)
from shared.merkle.nodes import Address
from tests.unit.core.merkle.support import LEAF_HASHES, REFERENCE, STORE


class BlobStore:
    """Leaves in blobs of the given sizes (blocks), upper nodes in a dict; counts its reads."""

    def __init__(self, block_sizes: Sequence[int], stored_level: int) -> None:
        self.stored_level = stored_level
        self.blobs: list[PackedLeaves] = []
        self.upper: dict[Address, bytes] = {}
        self.reads: list[str] = []
        log = CompactRange()
        for size in block_sizes:
            first = log.size
            leaves = LEAF_HASHES[first : first + size]
            nodes = log.extend(leaves)
            self.blobs.append((first, pack_leaves(leaves)))
            self.upper.update(((lv, ix), h) for lv, ix, h in upper_nodes(nodes, stored_level))
        self.size = log.size

    def upper_subtrees(self, addresses: Sequence[Address]) -> Mapping[Address, bytes]:
        self.reads.append("upper")
        assert all(level >= self.stored_level for level, _ in addresses)
        return {a: self.upper[a] for a in addresses if a in self.upper}

    def packed_leaves(self, runs: Sequence[LeafRun]) -> Iterable[PackedLeaves]:
        self.reads.append("leaves")
        firsts = [first for first, _ in self.blobs]
        rows: dict[int, bytes] = {}
        for begin, end in runs:
            start = max(0, bisect.bisect_right(firsts, begin) - 1)
            for first, packed in self.blobs[start:]:
                if first >= end:
                    break
                rows[first] = packed
        return sorted(rows.items())

    def subtree_hashes(self, addresses: Sequence[Address]) -> list[bytes]:
        return read_subtrees(self, addresses, stored_level=self.stored_level)


def _blocks(total: int, size: int) -> list[int]:
    return (
        [1] + [size] * ((total - 1) // size) + ([(total - 1) % size] if (total - 1) % size else [])
    )


@pytest.mark.parametrize(("block", "level"), [(1, 0), (7, 2), (50, 3), (500, 8), (13, 5)])
def test_every_stored_node_is_answered_as_a_full_store_does(block: int, level: int) -> None:
    store = BlobStore(_blocks(700, block), level)
    assert store.size == 700
    everything = [(lv, ix) for lv, ix, _ in CompactRange().extend(LEAF_HASHES[: store.size])]
    assert store.subtree_hashes(everything) == STORE.subtree_hashes(everything)
    assert store.reads == (["upper", "leaves"] if level else ["upper"])


@settings(max_examples=60, deadline=None)
@given(
    block=st.integers(min_value=1, max_value=40),
    level=st.integers(min_value=0, max_value=6),
    data=st.data(),
)
def test_proofs_are_byte_identical_and_take_at_most_two_reads(
    block: int, level: int, data: st.DataObject
) -> None:
    store = BlobStore(_blocks(300, block), level)
    size = data.draw(st.integers(min_value=1, max_value=300))
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    first = data.draw(st.integers(min_value=1, max_value=size))
    assert root_at(store, size) == REFERENCE.root(size)
    store.reads.clear()
    assert inclusion_proof_at(store, index, size) == REFERENCE.inclusion_proof(index, size)
    assert len(store.reads) <= 2
    store.reads.clear()
    assert consistency_proof_at(store, first, size) == REFERENCE.consistency_proof(first, size)
    assert len(store.reads) <= 2


def test_a_read_of_nothing_reads_nothing() -> None:
    store = BlobStore([1, 5], 2)
    assert store.subtree_hashes([]) == []
    assert store.reads == []


@pytest.mark.parametrize("address", [(0, 6), (1, 3), (2, 1), (3, 0), (-1, 0), (0, -1), (2, 2)])
def test_what_is_not_stored_or_derivable_is_a_key_error(address: Address) -> None:
    store = BlobStore([1, 5], 2)  # 6 leaves: (1, 2) and (2, 0) exist, nothing past leaf 5
    assert store.subtree_hashes([(1, 2), (2, 0)]) == STORE.subtree_hashes([(1, 2), (2, 0)])
    with pytest.raises(KeyError):
        store.subtree_hashes([(0, 0), address])


def test_a_missing_leaf_row_makes_its_subtrees_key_errors() -> None:
    store = BlobStore([1, 3, 4], 3)
    del store.blobs[1]  # leaves 1..3
    assert store.subtree_hashes([(0, 0), (1, 2)]) == STORE.subtree_hashes([(0, 0), (1, 2)])
    with pytest.raises(KeyError):
        store.subtree_hashes([(1, 0)])


def test_runs_merge_where_spans_touch_or_overlap() -> None:
    assert leaf_runs([]) == []
    assert leaf_runs([(0, 9), (2, 1), (1, 3), (0, 8)]) == [(4, 10)]
    assert leaf_runs([(0, 0), (0, 2), (3, 1)]) == [(0, 1), (2, 3), (8, 16)]


def test_leaf_rows_must_hold_whole_hashes() -> None:
    assert unpack_leaves(pack_leaves(LEAF_HASHES[:3])) == LEAF_HASHES[:3]
    assert unpack_leaves(b"") == []
    with pytest.raises(SubtreeStoreError, match="multiple of 32"):
        unpack_leaves(LEAF_HASHES[0] + b"x")
    with pytest.raises(SubtreeStoreError, match="32 bytes"):
        pack_leaves([LEAF_HASHES[0], b"short"])
    store = BlobStore([1, 2], 1)
    store.blobs[1] = (1, store.blobs[1][1][:-1])
    with pytest.raises(SubtreeStoreError):
        store.subtree_hashes([(0, 1)])


def test_only_the_upper_levels_are_kept() -> None:
    nodes = CompactRange().extend(LEAF_HASHES[:8])
    assert [(lv, ix) for lv, ix, _ in upper_nodes(nodes, 2)] == [(2, 0), (2, 1), (3, 0)]
    assert upper_nodes(nodes, 0) == nodes
