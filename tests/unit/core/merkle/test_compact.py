"""CompactRange: the incremental log a sealer and validators keep in O(log n) memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleArgumentError,
    root,
    root_nodes,
)
from tests.unit.core.merkle.support import LEAF_HASHES, MAX_SIZE, REFERENCE, STORE

sizes = st.integers(min_value=0, max_value=MAX_SIZE)


def _range_of(size: int) -> CompactRange:
    compact = CompactRange()
    compact.extend(LEAF_HASHES[:size])
    return compact


def test_empty() -> None:
    compact = CompactRange()
    assert compact.size == 0
    assert compact.root() == EMPTY_ROOT
    assert compact.frontier() == []
    assert repr(compact) == f"CompactRange(size=0, root={EMPTY_ROOT.hex()})"


def test_append_reports_the_leaf_then_every_completed_subtree() -> None:
    compact = _range_of(7)
    completed = compact.append(LEAF_HASHES[7])
    assert [(level, index) for level, index, _ in completed] == [(0, 7), (1, 3), (2, 1), (3, 0)]
    assert [digest for _, _, digest in completed] == [
        LEAF_HASHES[7],
        REFERENCE.mth(6, 8),
        REFERENCE.mth(4, 8),
        REFERENCE.mth(0, 8),
    ]
    assert compact.append(LEAF_HASHES[8]) == [(0, 8, LEAF_HASHES[8])]


@given(sizes)
def test_root_size_and_frontier_at_every_size(size: int) -> None:
    compact = _range_of(size)
    assert compact.size == size
    assert compact.root() == REFERENCE.root(size) == root(LEAF_HASHES[:size])
    assert compact.frontier() == STORE.subtree_hashes(root_nodes(size))


@given(sizes)
def test_appends_report_each_perfect_subtree_exactly_once(size: int) -> None:
    nodes = CompactRange().extend(LEAF_HASHES[:size])
    addresses = [(level, index) for level, index, _ in nodes]
    assert len(set(addresses)) == len(addresses)
    # A perfect subtree exists for each aligned block of 2**level leaves inside [0, size).
    assert len(addresses) == sum(size >> level for level in range(size.bit_length()))
    for level, index, digest in nodes:
        assert digest == REFERENCE.mth(index << level, (index + 1) << level)


@given(sizes, st.integers(min_value=0, max_value=40))
def test_restored_from_frontier_continues_identically(size: int, more: int) -> None:
    original = _range_of(size)
    restored = CompactRange.from_frontier(original.size, original.frontier())
    end = min(size + more, MAX_SIZE)
    assert restored.extend(LEAF_HASHES[size:end]) == original.extend(LEAF_HASHES[size:end])
    assert restored.root() == original.root() == REFERENCE.root(end)


def test_copy_is_independent() -> None:
    original = _range_of(5)
    duplicate = original.copy()
    duplicate.append(LEAF_HASHES[5])
    assert (original.size, original.root()) == (5, REFERENCE.root(5))
    assert (duplicate.size, duplicate.root()) == (6, REFERENCE.root(6))
    frontier = original.frontier()
    frontier.clear()
    assert original.frontier() != frontier


@pytest.mark.parametrize(
    ("size", "frontier"),
    [
        (-1, []),
        (0, [LEAF_HASHES[0]]),
        (3, [LEAF_HASHES[0]]),
        (4, [LEAF_HASHES[0], LEAF_HASHES[1]]),
        (1, [b"short"]),
        (3, [LEAF_HASHES[0], LEAF_HASHES[1] + b"!"]),
    ],
)
def test_from_frontier_refuses_a_frontier_that_cannot_fit(size: int, frontier: list[bytes]) -> None:
    with pytest.raises(MerkleArgumentError):
        CompactRange.from_frontier(size, frontier)


def test_append_refuses_what_is_not_a_leaf_hash() -> None:
    compact = _range_of(3)
    with pytest.raises(MerkleArgumentError, match="32 bytes"):
        compact.append(b"raw event bytes, not their hash")
    assert compact.size == 3
    assert isinstance(MerkleArgumentError("x"), ValueError)
