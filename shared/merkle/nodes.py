"""RFC 9162 §2.1.3.1 / §2.1.4.1 proofs laid out as perfect subtrees of the log.

A node address `(level, index)` names the perfect subtree over leaves
`[index * 2**level, (index + 1) * 2**level)`. Those subtrees never change once their last
leaf is appended, so a store can persist them and answer any proof for any past size from
O(log n) of them. Every hash in a proof is either one such subtree or, on the right edge of
a tree whose size is not a power of two, the RFC hash of a few consecutive ones. This module
only does the address arithmetic; `tree` and `store_proofs` turn addresses into hashes.
"""

from __future__ import annotations

from shared.merkle.errors import MerkleArgumentError

Address = tuple[int, int]
"""(level, index) of a perfect subtree: level 0 is a leaf, index counts along the level."""


def subtree_cover(begin: int, end: int) -> list[Address]:
    """The fewest perfect subtrees that exactly cover leaves [begin, end), left to right.

    For the ranges proofs need (ones starting on a multiple of a power of two at least
    their length) `fold_right` over their hashes gives the RFC hash of the range.
    """
    if not 0 <= begin <= end:
        raise MerkleArgumentError(f"not a leaf range: [{begin}, {end})")
    nodes: list[Address] = []
    while begin < end:
        # The largest block that both starts aligned at `begin` and still fits before `end`.
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        nodes.append((level, begin >> level))
        begin += 1 << level
    return nodes


def root_nodes(tree_size: int) -> list[Address]:
    """The perfect subtrees whose right fold is the root of a tree of `tree_size` leaves.

    One per set bit of `tree_size`, largest first: the same nodes, in the same order, as a
    `CompactRange` frontier of that size.
    """
    if tree_size < 0:
        raise MerkleArgumentError(f"tree size must not be negative, got {tree_size}")
    return subtree_cover(0, tree_size)


def inclusion_proof_nodes(index: int, tree_size: int) -> list[list[Address]]:
    """For each hash of PATH(index, D[tree_size]), bottom up, the subtrees that make it.

    Below level `inner`, where the paths from the root to this leaf and to the last leaf
    split, every sibling is a whole perfect subtree, except the topmost one, which holds
    the last leaf and so may be cut short by the right edge. Above it the leaf's ancestors
    lie on the right edge: a sibling exists only where the ancestor is a right child, and
    is then a perfect left subtree.
    """
    if not 0 <= index < tree_size:
        raise MerkleArgumentError(f"leaf index {index} is outside a tree of {tree_size} leaves")
    inner = (index ^ (tree_size - 1)).bit_length()
    path: list[list[Address]] = []
    for level in range(inner):
        begin = ((index >> level) ^ 1) << level
        path.append(subtree_cover(begin, min(begin + (1 << level), tree_size)))
    for level in range(inner, index.bit_length()):
        if (index >> level) & 1:
            path.append([(level, (index >> level) - 1)])
    return path


def consistency_proof_nodes(first_size: int, second_size: int) -> list[list[Address]]:
    """For each hash of PROOF(first_size, D[second_size]), the subtrees that make it.

    SUBPROOF descends to the largest node of the second tree that ends exactly at
    `first_size`: the perfect subtree at level ctz(first_size). The proof is that node
    (left out when it is the whole first tree, i.e. `first_size` is a power of two, because
    the verifier already holds it as the first root) followed by its siblings up to the
    root, which are the inclusion path of leaf `first_size - 1` above that level.

    Sizes 0 and `first_size == second_size` are trivially consistent: the empty proof.
    """
    if not 0 <= first_size <= second_size:
        raise MerkleArgumentError(
            f"first size {first_size} must be between 0 and the second size {second_size}"
        )
    if first_size in (0, second_size):
        return []
    level = (first_size & -first_size).bit_length() - 1
    path = inclusion_proof_nodes(first_size - 1, second_size)[level:]
    if first_size != 1 << level:
        path.insert(0, [(level, (first_size >> level) - 1)])
    return path
