"""Node addressing: proofs laid out as perfect subtrees (`shared.merkle.nodes`)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.merkle import (
    MerkleArgumentError,
    consistency_proof_nodes,
    inclusion_proof_nodes,
    root_nodes,
    subtree_cover,
)

ranges = st.tuples(st.integers(0, 5000), st.integers(0, 5000)).map(sorted)


@given(ranges)
def test_cover_is_exact_aligned_and_minimal(bounds: list[int]) -> None:
    begin, end = bounds
    nodes = subtree_cover(begin, end)
    position = begin
    for level, index in nodes:
        assert index << level == position  # contiguous, left to right, aligned
        position += 1 << level
    assert position == end
    # Minimal: never two equal-sized siblings that could have been one subtree.
    for (level_a, index_a), (level_b, index_b) in itertools.pairwise(nodes):
        assert not (level_a == level_b and index_a % 2 == 0 and index_b == index_a + 1)


@given(st.integers(0, 1 << 40))
def test_root_nodes_are_one_per_set_bit_largest_first(size: int) -> None:
    nodes = root_nodes(size)
    assert [1 << level for level, _ in nodes] == [
        1 << bit for bit in reversed(range(size.bit_length())) if size >> bit & 1
    ]


@given(st.integers(1, 1 << 62), st.data())
def test_layouts_stay_logarithmic_for_huge_trees(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    first = data.draw(st.integers(0, size))
    height = (size - 1).bit_length()
    inclusion = inclusion_proof_nodes(index, size)
    consistency = consistency_proof_nodes(first, size)
    assert len(inclusion) <= height
    assert len(consistency) <= height + 1
    for layout in (inclusion, consistency):
        assert sum(map(len, layout)) <= 2 * height + 1
        # Every address is a perfect subtree that a log of `size` leaves has already stored.
        for group in layout:
            assert all((node_index + 1) << level <= size for level, node_index in group)


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (subtree_cover, (5, 4)),
        (subtree_cover, (-1, 4)),
        (root_nodes, (-3,)),
        (inclusion_proof_nodes, (0, 0)),
        (inclusion_proof_nodes, (3, 3)),
        (inclusion_proof_nodes, (-1, 3)),
        (consistency_proof_nodes, (4, 3)),
        (consistency_proof_nodes, (-1, 3)),
    ],
)
def test_impossible_layouts_are_argument_errors(call: object, args: tuple[int, ...]) -> None:
    with pytest.raises(MerkleArgumentError):
        call(*args)  # type: ignore[operator]
