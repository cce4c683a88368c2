"""RFC 9162 §2.1.3.2 and §2.1.4.2: verify inclusion and consistency proofs; raise on failure.

The proof's shape (how many hashes, which side each joins on) follows from the index and
sizes alone, so it is checked first and a wrong-length proof fails with that as evidence
before anything is hashed. The walk itself is the RFC's `fn`/`sn` loop unrolled: the first
`inner` steps go up from the leaf while it is still apart from the tree's last leaf, taking
the sibling's side from the leaf's index bit; every later sibling is a left sibling on the
right edge. The tests check it accepts and rejects exactly what the RFC's literal algorithm
does. This module shares no code with the proof generators on purpose.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from shared.merkle.errors import ConsistencyProofError, InclusionProofError, MerkleError
from shared.merkle.hashing import EMPTY_ROOT, HASH_SIZE, NODE_PREFIX

_sha256 = hashlib.sha256


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf_hash` is leaf `index` of the tree of `tree_size` leaves with `root`.

    Raises `InclusionProofError` with the evidence (expected vs computed, index, size,
    proof length) on any failure, including malformed input; returns nothing on success.
    Take `tree_size` from the same signed head as `root`: as in the RFC, a proof does not
    bind the size by itself (sizes giving the same proof shape verify alike).
    """
    context: dict[str, Any] = {
        "leaf_hash": leaf_hash,
        "index": index,
        "tree_size": tree_size,
        "proof_length": len(proof),
    }
    _require_hash_sizes(InclusionProofError, context, leaf_hash=leaf_hash, root=root)
    _require_proof_hash_sizes(InclusionProofError, context, proof)
    if not 0 <= index < tree_size:
        raise InclusionProofError("leaf index is outside the tree", **context)
    inner = (index ^ (tree_size - 1)).bit_length()
    _require_length(InclusionProofError, context, proof, inner + (index >> inner).bit_count())
    computed = _climb(leaf_hash, index, inner, proof)
    if computed != root:
        raise InclusionProofError(
            "inclusion proof does not lead to the root", expected=root, computed=computed, **context
        )


def verify_consistency(
    first_size: int,
    second_size: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Check that the tree of `first_size` leaves is a prefix of the tree of `second_size`.

    Sizes 0 and equal sizes are trivially consistent and need an empty proof; the empty
    tree's root must be `EMPTY_ROOT` and equal sizes need equal roots. Raises
    `ConsistencyProofError` with the evidence on any failure; returns nothing on success.
    """
    context: dict[str, Any] = {
        "first_size": first_size,
        "second_size": second_size,
        "proof_length": len(proof),
    }
    _require_hash_sizes(
        ConsistencyProofError, context, first_root=first_root, second_root=second_root
    )
    _require_proof_hash_sizes(ConsistencyProofError, context, proof)
    if not 0 <= first_size <= second_size:
        raise ConsistencyProofError("first size must be between 0 and the second size", **context)
    if first_size in (0, second_size):
        _require_length(ConsistencyProofError, context, proof, 0)
        if first_size == 0 and first_root != EMPTY_ROOT:
            raise ConsistencyProofError(
                "the empty tree's root is the hash of the empty string",
                expected=EMPTY_ROOT,
                computed=first_root,
                **context,
            )
        if first_size == second_size and first_root != second_root:
            raise ConsistencyProofError(
                "a tree of the same size must have the same root",
                expected=first_root,
                computed=second_root,
                **context,
            )
        return
    # The proof starts at the largest perfect subtree ending at first_size (level = ctz);
    # when that subtree is the whole first tree the proof leaves it out: it is first_root.
    level = (first_size & -first_size).bit_length() - 1
    node = (first_size - 1) >> level
    inner = (node ^ ((second_size - 1) >> level)).bit_length()
    seeded = first_size != 1 << level
    _require_length(
        ConsistencyProofError, context, proof, int(seeded) + inner + (node >> inner).bit_count()
    )
    seed, path = (proof[0], proof[1:]) if seeded else (first_root, proof)
    computed_first, computed_second = _climb_both(seed, node, inner, path)
    if computed_first != first_root:
        raise ConsistencyProofError(
            "consistency proof does not lead to the first root",
            expected=first_root,
            computed=computed_first,
            **context,
        )
    if computed_second != second_root:
        raise ConsistencyProofError(
            "consistency proof does not lead to the second root",
            expected=second_root,
            computed=computed_second,
            **context,
        )


def _climb(start: bytes, index: int, inner: int, path: Sequence[bytes]) -> bytes:
    """Hash the node `index` (of its level) up to the root along its audit path."""
    node = start
    for step, sibling in enumerate(path):
        if step >= inner or (index >> step) & 1:
            node = _sha256(NODE_PREFIX + sibling + node).digest()
        else:
            node = _sha256(NODE_PREFIX + node + sibling).digest()
    return node


def _climb_both(start: bytes, index: int, inner: int, path: Sequence[bytes]) -> tuple[bytes, bytes]:
    """`_climb`, plus the root of the tree that ends with node `index` (the first tree).

    That smaller tree takes only the left siblings: a right sibling lies beyond the
    starting node, so it was appended after the first tree was published.
    """
    second = first = start
    for step, sibling in enumerate(path):
        if step >= inner or (index >> step) & 1:
            second = _sha256(NODE_PREFIX + sibling + second).digest()
            first = _sha256(NODE_PREFIX + sibling + first).digest()
        else:
            second = _sha256(NODE_PREFIX + second + sibling).digest()
    return first, second


def _require_hash_sizes(error: type[MerkleError], context: dict[str, Any], **hashes: bytes) -> None:
    for name, value in hashes.items():
        if len(value) != HASH_SIZE:
            raise error(
                f"{name} must be {HASH_SIZE} bytes",
                expected=HASH_SIZE,
                computed=len(value),
                **{name: value, **context},
            )


def _require_proof_hash_sizes(
    error: type[MerkleError], context: dict[str, Any], proof: Sequence[bytes]
) -> None:
    for position, value in enumerate(proof):
        if len(value) != HASH_SIZE:
            raise error(
                f"proof[{position}] must be {HASH_SIZE} bytes",
                expected=HASH_SIZE,
                computed=len(value),
                position=position,
                **context,
            )


def _require_length(
    error: type[MerkleError], context: dict[str, Any], proof: Sequence[bytes], length: int
) -> None:
    if len(proof) != length:
        raise error(
            "proof has the wrong number of hashes for these sizes",
            expected=length,
            computed=len(proof),
            **context,
        )
