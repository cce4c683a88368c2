"""An independent implementation agrees: pymerkle, configured for plain RFC 9162 hashing.

`InmemoryTree(algorithm="sha256", disable_security=False)` hashes leaves as
SHA-256(0x00 || data) and nodes as SHA-256(0x01 || left || right), with no other tweak, and
empty trees as SHA-256(""), which is exactly RFC 9162 §2.1.1 (read in
pymerkle/hasher.py). Its leaf indices count from 1.

What maps cleanly:
- roots of every size (`get_root(size)`), including past sizes of a bigger tree;
- inclusion proofs: pymerkle's path is the leaf hash followed by the RFC audit path;
- consistency proofs only indirectly. pymerkle 7.0.0's are *not* RFC 9162 PROOFs: it
  descends to the first leaf that the second tree added (leaf `first_size`) and ships
  that leaf followed by its audit path in the second tree, with a mask of the hashes that
  rebuild the first root. So its path must equal our leaf hash plus our inclusion proof
  for that leaf, and pymerkle's own verifier must accept it against our two roots.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from shared.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from tests.unit.core.merkle.support import DATA, LEAF_HASHES

PYMERKLE_SIZE = 600


def rfc9162_tree(data: list[bytes]) -> InmemoryTree:
    tree = InmemoryTree(algorithm="sha256", disable_security=False)
    tree.append_entries(data)
    return tree


BIG = rfc9162_tree(DATA[:PYMERKLE_SIZE])
sizes = st.integers(min_value=1, max_value=PYMERKLE_SIZE)


def test_empty_tree() -> None:
    assert rfc9162_tree([]).get_root() == EMPTY_ROOT == root([])


@given(st.lists(st.binary(max_size=64), max_size=80))
def test_roots_of_arbitrary_data(data: list[bytes]) -> None:
    tree = rfc9162_tree(data)
    assert [tree.get_leaf(i + 1) for i in range(len(data))] == [leaf_hash(d) for d in data]
    assert tree.get_root() == root([leaf_hash(item) for item in data])


@given(sizes)
def test_roots_of_past_sizes(size: int) -> None:
    assert BIG.get_root(size) == root(LEAF_HASHES[:size])


@given(sizes, st.data())
def test_inclusion_proofs(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    theirs = BIG.prove_inclusion(index + 1, size)
    ours = inclusion_proof(LEAF_HASHES[:size], index)
    assert theirs.path == [LEAF_HASHES[index], *ours]
    size_root = root(LEAF_HASHES[:size])
    theirs.verify(LEAF_HASHES[index], size_root, index=index + 1, size=size)
    verify_inclusion(LEAF_HASHES[index], index, size, ours, size_root)


@given(st.integers(min_value=2, max_value=PYMERKLE_SIZE), st.data())
def test_consistency_proofs(second: int, data: st.DataObject) -> None:
    first = data.draw(st.integers(min_value=1, max_value=second - 1), label="first")
    leaves = LEAF_HASHES[:second]
    first_root, second_root = root(leaves[:first]), root(leaves)
    theirs = BIG.prove_consistency(first, second)
    assert theirs.path == [leaves[first], *inclusion_proof(leaves, first)]
    theirs.verify(first_root, second_root, prior_size=first, later_size=second)
    verify_consistency(first, second, first_root, second_root, consistency_proof(leaves, first))
