"""Store-backed proofs: one batched read of O(log n) stored hashes, never the leaves."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MemorySubtreeStore,
    MerkleArgumentError,
    SubtreeReader,
    SubtreeStoreError,
    consistency_proof_at,
    inclusion_proof_at,
    root_at,
)
from tests.unit.core.merkle.support import LEAF_HASHES, MAX_SIZE, REFERENCE, STORE, CountingReader

sizes = st.integers(min_value=1, max_value=MAX_SIZE)


def _log2_ceil(size: int) -> int:
    return (size - 1).bit_length()


@given(sizes, st.data())
def test_each_proof_is_one_read_of_logarithmically_many_hashes(
    size: int, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    first = data.draw(st.integers(1, size), label="first")
    reader = CountingReader(STORE)
    inclusion_proof_at(reader, index, size)
    consistency_proof_at(reader, first, size)
    root_at(reader, size)
    reads = reader.calls
    # Trivial answers (a one-leaf tree, equal sizes) read nothing at all.
    assert len(reads) == (size > 1) + (first < size) + 1
    # A right-edge hash is a few subtrees instead of one, so at most twice the tree height.
    assert all(0 < count <= 2 * _log2_ceil(size) + 1 for count in reads)


def test_trivial_requests_do_not_touch_the_store() -> None:
    reader = CountingReader(STORE)
    assert root_at(reader, 0) == EMPTY_ROOT
    assert inclusion_proof_at(reader, 0, 1) == []
    assert consistency_proof_at(reader, 0, 9) == []
    assert consistency_proof_at(reader, 9, 9) == []
    assert reader.calls == []


def test_past_sizes_are_answered_from_a_bigger_store() -> None:
    # Perfect subtrees never change, so one store answers for every size it has reached.
    for size in (1, 2, 3, 100, 513, MAX_SIZE):
        assert root_at(STORE, size) == REFERENCE.root(size)


@pytest.mark.parametrize(
    ("call", "args"),
    [
        (root_at, (-1,)),
        (inclusion_proof_at, (0, 0)),
        (inclusion_proof_at, (5, 5)),
        (inclusion_proof_at, (-1, 5)),
        (consistency_proof_at, (6, 5)),
        (consistency_proof_at, (-1, 5)),
    ],
)
def test_impossible_requests_are_argument_errors(call: object, args: tuple[int, ...]) -> None:
    with pytest.raises(MerkleArgumentError):
        call(STORE, *args)  # type: ignore[operator]


def test_a_missing_node_is_a_key_error() -> None:
    store = MemorySubtreeStore()
    store.add_all(CompactRange().extend(LEAF_HASHES[:6]))
    assert inclusion_proof_at(store, 0, 6) == REFERENCE.inclusion_proof(0, 6)
    with pytest.raises(KeyError):
        inclusion_proof_at(store, 0, 7)
    with pytest.raises(KeyError):
        root_at(store, 8)


class _LyingReader:
    def __init__(self, answer: Sequence[bytes]) -> None:
        self.answer = answer

    def subtree_hashes(self, addresses: Sequence[tuple[int, int]]) -> Sequence[bytes]:
        return self.answer


@pytest.mark.parametrize(
    "answer",
    [[], [EMPTY_ROOT], [EMPTY_ROOT] * 4, [EMPTY_ROOT, b"short", EMPTY_ROOT]],
)
def test_a_reader_breaking_its_contract_is_a_store_error(answer: list[bytes]) -> None:
    reader: SubtreeReader = _LyingReader(answer)
    with pytest.raises(SubtreeStoreError):
        root_at(reader, 7)


# --- MemorySubtreeStore ------------------------------------------------------------------


def test_memory_store_holds_two_nodes_per_leaf_minus_the_frontier_joins() -> None:
    store = MemorySubtreeStore()
    assert len(store) == 0
    store.add_all(CompactRange().extend(LEAF_HASHES[:7]))
    assert len(store) == 7 + 3 + 1
    assert store.subtree_hashes([(2, 0), (0, 6)]) == [REFERENCE.mth(0, 4), LEAF_HASHES[6]]
    assert store.subtree_hashes([]) == []


@pytest.mark.parametrize("address", [(0, 7), (2, 1), (3, 0), (-1, 0), (0, -1)])
def test_memory_store_raises_key_error_for_what_it_does_not_hold(
    address: tuple[int, int],
) -> None:
    store = MemorySubtreeStore()
    store.add_all(CompactRange().extend(LEAF_HASHES[:7]))
    with pytest.raises(KeyError):
        store.subtree_hashes([(0, 0), address])


def test_memory_store_accepts_a_replay_and_refuses_a_rewrite_or_a_gap() -> None:
    store = MemorySubtreeStore()
    nodes = CompactRange().extend(LEAF_HASHES[:4])
    store.add_all(nodes)
    store.add_all(nodes)  # at-least-once delivery: the same nodes again are a no-op
    assert len(store) == 7
    with pytest.raises(SubtreeStoreError, match="different hash"):
        store.add(1, 1, LEAF_HASHES[9])
    with pytest.raises(SubtreeStoreError, match="gap"):
        store.add(0, 5, LEAF_HASHES[5])
    with pytest.raises(SubtreeStoreError, match="no such node"):
        store.add(-1, 0, LEAF_HASHES[0])
    with pytest.raises(SubtreeStoreError, match="32 bytes"):
        store.add(0, 4, b"")
    assert len(store) == 7
