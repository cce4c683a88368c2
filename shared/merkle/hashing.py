"""RFC 9162 §2.1.1 hashing: SHA-256 with domain-separated leaf and node prefixes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
"""Bytes in every hash of the log (SHA-256)."""

LEAF_PREFIX = b"\x00"
"""Prepended to leaf data, so a leaf can never be passed off as an interior node."""

NODE_PREFIX = b"\x01"
"""Prepended to the two child hashes of an interior node."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}): the root of the empty tree is the hash of the empty string, without a prefix."""

# Bound once: the attribute lookup is measurable when hashing millions of nodes.
_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d): the hash of one leaf's data."""
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return _sha256(NODE_PREFIX + left + right).digest()


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """The hash of the tree made of consecutive perfect subtrees, given left to right.

    The RFC splits a range at the largest power of two below its size, so a range that is
    not a perfect subtree is its left perfect part followed by the same split of the rest:
    its hash is H(p1, H(p2, ... H(pk-1, pk))). `hashes` must not be empty.
    """
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = _sha256(NODE_PREFIX + left + result).digest()
    return result


def merkle_tree_hash(hashes: Sequence[bytes]) -> bytes:
    """MTH over hashes that are already leaf hashes (or equal-height subtree roots).

    Pairs neighbours level by level and lifts an unpaired last node unchanged to the next
    level. For the RFC's left-balanced tree this is the same as the recursive split at the
    largest power of two (the lifted node is exactly the right-edge subtree the recursion
    would reach), but it needs no recursion and hashes each interior node once.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        pairs = iter(level)
        # zip(it, it) walks neighbours pairwise without index arithmetic (fastest in CPython);
        # not strict: an unpaired last node is lifted just below.
        parents = [
            _sha256(NODE_PREFIX + left + right).digest()
            for left, right in zip(pairs, pairs, strict=False)
        ]
        if len(level) & 1:
            parents.append(level[-1])
        level = parents
    return level[0]


def all_hash_sized(values: Sequence[bytes]) -> bool:
    """Whether every value has the size of a log hash; runs at C speed on long lists."""
    return set(map(len, values)) <= {HASH_SIZE}
