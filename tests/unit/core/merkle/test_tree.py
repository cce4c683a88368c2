"""Root and proofs computed from the full list of leaf hashes (`shared.merkle.tree`)."""

from __future__ import annotations

import pytest

from shared.merkle import (
    EMPTY_ROOT,
    MerkleArgumentError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
)
from tests.unit.core.merkle.support import LEAF_HASHES, REFERENCE


def test_any_sequence_of_leaf_hashes_will_do() -> None:
    assert root(()) == root([]) == EMPTY_ROOT
    assert root(tuple(LEAF_HASHES[:5])) == REFERENCE.root(5)
    assert inclusion_proof(tuple(LEAF_HASHES[:5]), 4) == REFERENCE.inclusion_proof(4, 5)


def test_leaf_data_instead_of_leaf_hashes_is_refused() -> None:
    data = [b"event 0", b"event 1"]
    with pytest.raises(MerkleArgumentError, match="leaf_hash"):
        root(data)
    with pytest.raises(MerkleArgumentError, match="leaf_hash"):
        inclusion_proof(data, 0)
    with pytest.raises(MerkleArgumentError, match="leaf_hash"):
        consistency_proof(data, 1)
    assert root([leaf_hash(item) for item in data]) == REFERENCE.root(2)


@pytest.mark.parametrize(("size", "index"), [(0, 0), (3, 3), (3, -1), (8, 100)])
def test_inclusion_proof_of_a_leaf_outside_the_list_is_refused(size: int, index: int) -> None:
    with pytest.raises(MerkleArgumentError, match="outside"):
        inclusion_proof(LEAF_HASHES[:size], index)


@pytest.mark.parametrize(("size", "first"), [(3, 4), (0, 1), (5, -1)])
def test_consistency_proof_beyond_the_list_is_refused(size: int, first: int) -> None:
    with pytest.raises(MerkleArgumentError, match="between 0 and the second size"):
        consistency_proof(LEAF_HASHES[:size], first)


def test_trivial_consistency_proofs_are_empty() -> None:
    assert consistency_proof([], 0) == []
    assert consistency_proof(LEAF_HASHES[:5], 0) == []
    assert consistency_proof(LEAF_HASHES[:5], 5) == []
