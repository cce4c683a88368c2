"""The library reproduces the published RFC 6962 test vectors (see `vectors.py`)."""

from __future__ import annotations

import hashlib

import pytest

from shared.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    LEAF_PREFIX,
    NODE_PREFIX,
    CompactRange,
    MemorySubtreeStore,
    consistency_proof,
    consistency_proof_at,
    consistency_proof_nodes,
    inclusion_proof,
    inclusion_proof_at,
    inclusion_proof_nodes,
    leaf_hash,
    node_hash,
    root,
    root_at,
    verify_consistency,
    verify_inclusion,
)
from tests.unit.core.merkle import vectors

LEAF_HASHES = [leaf_hash(data) for data in vectors.LEAF_INPUTS]


def _store() -> MemorySubtreeStore:
    store = MemorySubtreeStore()
    store.add_all(CompactRange().extend(LEAF_HASHES))
    return store


def test_constants_are_the_rfc_ones() -> None:
    assert LEAF_PREFIX == b"\x00"
    assert NODE_PREFIX == b"\x01"
    assert HASH_SIZE == 32
    assert EMPTY_ROOT == vectors.EMPTY_ROOT == hashlib.sha256(b"").digest()


def test_leaf_and_node_hashes() -> None:
    assert [leaf_hash(data) for data in vectors.LEAF_INPUTS] == vectors.NODE_HASHES[0]
    level1 = vectors.NODE_HASHES[1]
    assert node_hash(LEAF_HASHES[0], LEAF_HASHES[1]) == level1[0]
    assert node_hash(level1[0], level1[1]) == vectors.NODE_HASHES[2][0]


@pytest.mark.parametrize("size", range(9))
def test_roots(size: int) -> None:
    expected = vectors.ROOTS[size]
    assert root(LEAF_HASHES[:size]) == expected
    assert root_at(_store(), size) == expected
    compact = CompactRange()
    compact.extend(LEAF_HASHES[:size])
    assert compact.root() == expected


def test_every_perfect_subtree_is_reported_for_the_store() -> None:
    nodes = CompactRange().extend(LEAF_HASHES)
    by_level: dict[int, list[bytes]] = {}
    for level, index, digest in sorted(nodes):
        assert index == len(by_level.setdefault(level, []))
        by_level[level].append(digest)
    assert [by_level[level] for level in sorted(by_level)] == vectors.NODE_HASHES


@pytest.mark.parametrize(("index", "size", "proof"), vectors.INCLUSION_PROOFS)
def test_inclusion_proofs(index: int, size: int, proof: list[bytes]) -> None:
    assert inclusion_proof(LEAF_HASHES[:size], index) == proof
    assert inclusion_proof_at(_store(), index, size) == proof
    verify_inclusion(LEAF_HASHES[index], index, size, proof, vectors.ROOTS[size])


@pytest.mark.parametrize(("first", "second", "proof"), vectors.CONSISTENCY_PROOFS)
def test_consistency_proofs(first: int, second: int, proof: list[bytes]) -> None:
    assert consistency_proof(LEAF_HASHES[:second], first) == proof
    assert consistency_proof_at(_store(), first, second) == proof
    verify_consistency(first, second, vectors.ROOTS[first], vectors.ROOTS[second], proof)


@pytest.mark.parametrize(("index", "size", "layout"), vectors.INCLUSION_LAYOUTS)
def test_inclusion_layouts(index: int, size: int, layout: list[list[tuple[int, int]]]) -> None:
    assert inclusion_proof_nodes(index, size) == layout


@pytest.mark.parametrize(("first", "second", "layout"), vectors.CONSISTENCY_LAYOUTS)
def test_consistency_layouts(first: int, second: int, layout: list[list[tuple[int, int]]]) -> None:
    assert consistency_proof_nodes(first, second) == layout


@pytest.mark.parametrize("size", range(9))
def test_compact_frontiers(size: int) -> None:
    compact = CompactRange()
    compact.extend(LEAF_HASHES[:size])
    assert compact.frontier() == vectors.COMPACT_FRONTIERS[size]
    restored = CompactRange.from_frontier(size, vectors.COMPACT_FRONTIERS[size])
    assert restored.root() == vectors.ROOTS[size]
