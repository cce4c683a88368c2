"""The fast code agrees with a naive reading of RFC 9162 §2.1 (`reference.py`).

Exhaustive for every size, index and pair of sizes up to a few hundred leaves, then under
Hypothesis up to `MAX_SIZE`: list-based proofs, store-backed proofs, the compact range and
both verifiers against MTH / PATH / PROOF and the RFC's own verification algorithms.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ConsistencyProofError,
    InclusionProofError,
    consistency_proof,
    consistency_proof_at,
    inclusion_proof,
    inclusion_proof_at,
    leaf_hash,
    root,
    root_at,
    verify_consistency,
    verify_inclusion,
)
from tests.unit.core.merkle.reference import (
    ReferenceTree,
    rfc_verify_consistency,
    rfc_verify_inclusion,
)
from tests.unit.core.merkle.support import LEAF_HASHES, MAX_SIZE, REFERENCE, STORE

# List-based proofs hash the whole list (O(n) each), so their exhaustive range is smaller.
LIST_EXHAUSTIVE = 130
STORE_EXHAUSTIVE = 300

sizes = st.integers(min_value=1, max_value=MAX_SIZE)


def test_the_reference_itself_matches_the_rfc_examples() -> None:
    # RFC 9162 §2.1.5's example tree of 7 leaves: PATH(0) = [b, h, l], PROOF(3, 7) = [c, d, g, l].
    tree = ReferenceTree([b"d%d" % i for i in range(7)])
    a, b, c, d = (tree.mth(i, i + 1) for i in range(4))
    g, h, l_ = tree.mth(0, 2), tree.mth(2, 4), tree.mth(4, 7)
    assert tree.inclusion_proof(0, 7) == [b, h, l_]
    assert tree.consistency_proof(3, 7) == [c, d, g, l_]
    assert tree.consistency_proof(4, 7) == [l_]
    assert tree.consistency_proof(6, 7) == [tree.mth(4, 6), tree.mth(6, 7), tree.mth(0, 4)]
    assert tree.root(0) == EMPTY_ROOT
    assert tree.mth(0, 1) == leaf_hash(b"d0") == a


def test_roots_for_every_size() -> None:
    compact = CompactRange()
    for size in range(STORE_EXHAUSTIVE + 1):
        expected = REFERENCE.root(size)
        assert root(LEAF_HASHES[:size]) == expected
        assert root_at(STORE, size) == expected
        assert compact.root() == expected
        if size < STORE_EXHAUSTIVE:
            compact.append(LEAF_HASHES[size])


@pytest.mark.parametrize("size", range(1, LIST_EXHAUSTIVE + 1))
def test_list_based_proofs_for_every_index_and_first_size(size: int) -> None:
    leaves = LEAF_HASHES[:size]
    for index in range(size):
        assert inclusion_proof(leaves, index) == REFERENCE.inclusion_proof(index, size)
    for first in range(1, size):
        assert consistency_proof(leaves, first) == REFERENCE.consistency_proof(first, size)
    assert consistency_proof(leaves, 0) == []
    assert consistency_proof(leaves, size) == []


def test_store_based_proofs_and_both_verifiers_for_every_index_and_pair() -> None:
    for size in range(1, STORE_EXHAUSTIVE + 1):
        size_root = REFERENCE.root(size)
        for index in range(size):
            proof = inclusion_proof_at(STORE, index, size)
            assert proof == REFERENCE.inclusion_proof(index, size)
            verify_inclusion(LEAF_HASHES[index], index, size, proof, size_root)
            assert rfc_verify_inclusion(index, size, LEAF_HASHES[index], proof, size_root)
        for first in range(1, size):
            proof = consistency_proof_at(STORE, first, size)
            assert proof == REFERENCE.consistency_proof(first, size)
            first_root = REFERENCE.root(first)
            verify_consistency(first, size, first_root, size_root, proof)
            assert rfc_verify_consistency(first, size, first_root, size_root, proof)


@given(sizes, st.data())
def test_inclusion_agrees_everywhere(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    expected = REFERENCE.inclusion_proof(index, size)
    assert inclusion_proof(LEAF_HASHES[:size], index) == expected
    assert inclusion_proof_at(STORE, index, size) == expected
    verify_inclusion(LEAF_HASHES[index], index, size, expected, REFERENCE.root(size))


@given(sizes, st.data())
def test_consistency_agrees_everywhere(size: int, data: st.DataObject) -> None:
    first = data.draw(st.integers(min_value=1, max_value=size), label="first")
    expected = [] if first == size else REFERENCE.consistency_proof(first, size)
    assert consistency_proof(LEAF_HASHES[:size], first) == expected
    assert consistency_proof_at(STORE, first, size) == expected
    verify_consistency(first, size, REFERENCE.root(first), REFERENCE.root(size), expected)


@given(st.lists(st.binary(max_size=40), max_size=70))
def test_roots_of_arbitrary_data(data: list[bytes]) -> None:
    expected = ReferenceTree(data).root(len(data))
    hashes = [leaf_hash(item) for item in data]
    assert root(hashes) == expected
    compact = CompactRange()
    compact.extend(hashes)
    assert compact.root() == expected


def _proofs_around(real: list[bytes], noise: list[bytes]) -> st.SearchStrategy[list[bytes]]:
    """The real proof, its reorderings, and lists mixing its hashes with random ones."""
    pool = real + noise
    return st.one_of(
        st.just(real),
        st.permutations(real),
        st.lists(st.sampled_from(pool), max_size=len(real) + 2) if pool else st.just([]),
    )


noise_hashes = st.lists(st.binary(min_size=32, max_size=32), max_size=4)


@given(sizes, st.data(), noise_hashes)
def test_inclusion_verifier_accepts_exactly_what_the_rfc_algorithm_accepts(
    size: int, data: st.DataObject, noise: list[bytes]
) -> None:
    # Shape first, then an unrolled walk: it must decide as the RFC's fn/sn loop does,
    # including for another index or size than the proof was made for.
    made_for = data.draw(st.integers(0, size - 1), label="made_for")
    proof = data.draw(_proofs_around(REFERENCE.inclusion_proof(made_for, size), noise))
    index = data.draw(st.sampled_from([made_for, made_for ^ 1, made_for + 1]), label="index")
    tree_size = data.draw(st.sampled_from([size, size + 1, size - 1, size * 2]), label="tree_size")
    leaf = LEAF_HASHES[min(index, MAX_SIZE - 1)]
    size_root = REFERENCE.root(min(tree_size, MAX_SIZE))
    accepted = rfc_verify_inclusion(index, tree_size, leaf, proof, size_root)
    try:
        verify_inclusion(leaf, index, tree_size, proof, size_root)
    except InclusionProofError:
        assert not accepted
    else:
        assert accepted


@given(st.integers(min_value=2, max_value=MAX_SIZE), st.data(), noise_hashes)
def test_consistency_verifier_accepts_exactly_what_the_rfc_algorithm_accepts(
    size: int, data: st.DataObject, noise: list[bytes]
) -> None:
    made_for = data.draw(st.integers(1, size - 1), label="made_for")
    proof = data.draw(_proofs_around(REFERENCE.consistency_proof(made_for, size), noise))
    first = data.draw(st.sampled_from([made_for, made_for - 1 or 1, made_for + 1]), label="first")
    second = data.draw(st.sampled_from([size, size - 1, size + 1]), label="second")
    if not 0 < first < second:
        return  # the RFC algorithm is defined for 0 < first < second only
    first_root = REFERENCE.root(first)
    second_root = REFERENCE.root(min(second, MAX_SIZE))
    accepted = rfc_verify_consistency(first, second, first_root, second_root, proof)
    try:
        verify_consistency(first, second, first_root, second_root, proof)
    except ConsistencyProofError:
        assert not accepted
    else:
        assert accepted
