"""RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1: root and proofs from the full list of leaf hashes."""

from __future__ import annotations

from collections.abc import Sequence

from shared.merkle.errors import MerkleArgumentError
from shared.merkle.hashing import all_hash_sized, merkle_tree_hash
from shared.merkle.nodes import Address, consistency_proof_nodes, inclusion_proof_nodes


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of the tree whose leaves have these hashes; `EMPTY_ROOT` when there are none.

    Inputs are leaf *hashes* (`leaf_hash(data)`), not leaf data.
    """
    _require_hashes(leaf_hashes)
    return merkle_tree_hash(leaf_hashes)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) for n = len(leaf_hashes): the audit path, leaf level first.

    Hashes every leaf once (O(n)); a log that keeps its perfect subtrees should use
    `inclusion_proof_at` instead, which reads O(log n) stored hashes.
    """
    layout = inclusion_proof_nodes(index, len(leaf_hashes))
    _require_hashes(leaf_hashes)
    return [_span_hash(leaf_hashes, nodes) for nodes in layout]


def consistency_proof(leaf_hashes: Sequence[bytes], first_size: int) -> list[bytes]:
    """PROOF(first_size, D[n]) for n = len(leaf_hashes).

    Empty when `first_size` is 0 (the empty tree is a prefix of every tree) or n (a tree is
    consistent with itself), as `verify_consistency` expects.
    """
    layout = consistency_proof_nodes(first_size, len(leaf_hashes))
    _require_hashes(leaf_hashes)
    return [_span_hash(leaf_hashes, nodes) for nodes in layout]


def _span_hash(leaf_hashes: Sequence[bytes], nodes: list[Address]) -> bytes:
    """The RFC hash of the leaves under consecutive subtrees `nodes` (a proof element)."""
    first_level, first_index = nodes[0]
    last_level, last_index = nodes[-1]
    return merkle_tree_hash(
        leaf_hashes[first_index << first_level : (last_index + 1) << last_level]
    )


def _require_hashes(leaf_hashes: Sequence[bytes]) -> None:
    if not all_hash_sized(leaf_hashes):
        raise MerkleArgumentError("every leaf hash must be 32 bytes (pass leaf_hash(data))")
