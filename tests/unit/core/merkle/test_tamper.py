"""Tampering with anything a verifier is given makes it raise, with the evidence attached.

Proofs for the published vectors and for random trees; each mutation (a flipped bit in the
leaf hash, in any proof hash or in a root; another index or size; a reordered, truncated or
extended proof; a first size above the second; hashes of the wrong length) must raise the
right error, never return quietly.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import VerificationError
from shared.merkle import (
    EMPTY_ROOT,
    ConsistencyProofError,
    InclusionProofError,
    MerkleError,
    verify_consistency,
    verify_inclusion,
)
from tests.unit.core.merkle import vectors
from tests.unit.core.merkle.support import LEAF_HASHES, MAX_SIZE, REFERENCE, flip_bit

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _inclusion_case(index: int, size: int) -> tuple[bytes, list[bytes], bytes]:
    return LEAF_HASHES[index], REFERENCE.inclusion_proof(index, size), REFERENCE.root(size)


def _consistency_case(first: int, second: int) -> tuple[bytes, bytes, list[bytes]]:
    return REFERENCE.root(first), REFERENCE.root(second), REFERENCE.consistency_proof(first, second)


# --- inclusion ---------------------------------------------------------------------------


@given(st.integers(1, MAX_SIZE), st.data())
def test_inclusion_any_flipped_bit_fails(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    leaf, proof, size_root = _inclusion_case(index, size)
    bit = data.draw(st.integers(0, 255), label="bit")
    with pytest.raises(InclusionProofError) as failure:
        verify_inclusion(flip_bit(leaf, bit), index, size, proof, size_root)
    assert failure.value.expected == size_root
    assert failure.value.computed != size_root
    assert failure.value.context["index"] == index
    assert failure.value.context["tree_size"] == size
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, index, size, proof, flip_bit(size_root, bit))
    if proof:
        position = data.draw(st.integers(0, len(proof) - 1), label="position")
        tampered = list(proof)
        tampered[position] = flip_bit(proof[position], bit)
        with pytest.raises(InclusionProofError) as failure:
            verify_inclusion(leaf, index, size, tampered, size_root)
        assert failure.value.expected == size_root


@given(st.integers(2, MAX_SIZE), st.data())
def test_inclusion_reordered_truncated_or_extended_proof_fails(
    size: int, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    leaf, proof, size_root = _inclusion_case(index, size)
    with pytest.raises(InclusionProofError) as failure:
        verify_inclusion(leaf, index, size, proof[:-1], size_root)
    assert failure.value.expected == len(proof)
    assert failure.value.computed == len(proof) - 1
    for extended in ([*proof, SOME_HASH], [*proof, size_root], [size_root, *proof]):
        with pytest.raises(InclusionProofError):
            verify_inclusion(leaf, index, size, extended, size_root)
    if len(proof) > 1:
        reordered = data.draw(st.permutations(proof).filter(lambda p: p != proof))
        with pytest.raises(InclusionProofError):
            verify_inclusion(leaf, index, size, reordered, size_root)


@given(st.integers(2, MAX_SIZE), st.data())
def test_inclusion_wrong_index_fails(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    leaf, proof, size_root = _inclusion_case(index, size)
    wrong = data.draw(st.integers(0, size).filter(lambda i: i != index), label="wrong")
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, wrong, size, proof, size_root)


@pytest.mark.parametrize(("index", "size", "proof"), vectors.INCLUSION_PROOFS)
def test_inclusion_published_vectors_resist_the_usual_corruptions(
    index: int, size: int, proof: list[bytes]
) -> None:
    # The probes of transparency-dev/merkle proof/verify_test.go (corruptInclusionProof).
    leaf, root = LEAF_HASHES[index], vectors.ROOTS[size]
    probes = [
        (index - 1, size, leaf, root, proof),
        (index + 1, size, leaf, root, proof),
        (index ^ 2, size, leaf, root, proof),
        (index, size * 2, leaf, root, proof),
        (index, size // 2, leaf, root, proof),
        (index, size, b"WrongLeaf", root, proof),
        (index, size, leaf, EMPTY_ROOT, proof),
        (index, size, leaf, SOME_HASH, proof),
        (index, size, leaf, root, [*proof, b""]),
        (index, size, leaf, root, [*proof, root]),
        (index, size, leaf, root, [b"", *proof]),
        (index, size, leaf, root, [root, *proof]),
    ]
    for position in range(len(proof)):
        wrong = list(proof)
        wrong[position] = flip_bit(proof[position], 4)
        probes.append((index, size, leaf, root, wrong))
    if proof:
        probes.append((index, size, leaf, root, proof[:-1]))
    if len(proof) > 1:
        probes.append((index, size, leaf, root, [proof[0], SOME_HASH, *proof[1:]]))
    for probe in probes:
        with pytest.raises(InclusionProofError):
            verify_inclusion(probe[2], probe[0], probe[1], probe[4], probe[3])


@pytest.mark.parametrize(
    ("index", "size"), [(0, 0), (1, 0), (-1, 1), (1, 1), (5, 5), (8, 7), (-1, -1)]
)
def test_inclusion_index_outside_the_tree_fails(index: int, size: int) -> None:
    with pytest.raises(InclusionProofError, match="outside the tree") as failure:
        verify_inclusion(LEAF_HASHES[0], index, size, [], EMPTY_ROOT)
    assert failure.value.evidence()["index"] == index
    assert failure.value.evidence()["tree_size"] == size


def test_inclusion_hashes_of_the_wrong_length_fail() -> None:
    leaf, proof, size_root = _inclusion_case(3, 7)
    with pytest.raises(InclusionProofError, match="leaf_hash must be 32 bytes") as failure:
        verify_inclusion(leaf[:31], 3, 7, proof, size_root)
    assert (failure.value.expected, failure.value.computed) == (32, 31)
    with pytest.raises(InclusionProofError, match="root must be 32 bytes"):
        verify_inclusion(leaf, 3, 7, proof, size_root + b"\x00")
    with pytest.raises(InclusionProofError, match=r"proof\[1\] must be 32 bytes") as failure:
        verify_inclusion(leaf, 3, 7, [proof[0], b"", proof[2]], size_root)
    assert failure.value.context["position"] == 1


def test_inclusion_in_a_one_leaf_tree() -> None:
    leaf = LEAF_HASHES[0]
    verify_inclusion(leaf, 0, 1, [], leaf)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, 0, 1, [], SOME_HASH)
    with pytest.raises(InclusionProofError):
        verify_inclusion(leaf, 0, 1, [leaf], leaf)


def test_inclusion_evidence_is_printable() -> None:
    leaf, proof, size_root = _inclusion_case(5, 8)
    with pytest.raises(MerkleError) as failure:
        verify_inclusion(flip_bit(leaf), 5, 8, proof, size_root)
    assert isinstance(failure.value, VerificationError)
    evidence = failure.value.evidence()
    assert evidence["error"] == "InclusionProofError"
    assert evidence["expected"] == size_root.hex()
    assert evidence["leaf_hash"] == flip_bit(leaf).hex()
    assert evidence["proof_length"] == 3
    assert size_root.hex() in str(failure.value)


# --- consistency -------------------------------------------------------------------------


@given(st.integers(2, MAX_SIZE), st.data())
def test_consistency_any_flipped_bit_fails(second: int, data: st.DataObject) -> None:
    first = data.draw(st.integers(1, second - 1), label="first")
    first_root, second_root, proof = _consistency_case(first, second)
    bit = data.draw(st.integers(0, 255), label="bit")
    with pytest.raises(ConsistencyProofError) as failure:
        verify_consistency(first, second, flip_bit(first_root, bit), second_root, proof)
    assert failure.value.context["first_size"] == first
    assert failure.value.context["second_size"] == second
    with pytest.raises(ConsistencyProofError) as failure:
        verify_consistency(first, second, first_root, flip_bit(second_root, bit), proof)
    assert failure.value.computed == second_root
    position = data.draw(st.integers(0, len(proof) - 1), label="position")
    tampered = list(proof)
    tampered[position] = flip_bit(proof[position], bit)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(first, second, first_root, second_root, tampered)


@given(st.integers(2, MAX_SIZE), st.data())
def test_consistency_reordered_truncated_or_extended_proof_fails(
    second: int, data: st.DataObject
) -> None:
    first = data.draw(st.integers(1, second - 1), label="first")
    first_root, second_root, proof = _consistency_case(first, second)
    variants = [
        proof[:-1],
        proof[1:],
        [],
        [*proof, SOME_HASH],
        [*proof, first_root],
        [proof[0], *proof],
        [second_root, *proof],
    ]
    if len(proof) > 1:
        variants.append(data.draw(st.permutations(proof).filter(lambda p: p != proof)))
    for variant in variants:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(first, second, first_root, second_root, variant)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(first, second, second_root, first_root, proof)


@given(st.integers(3, MAX_SIZE), st.data())
def test_consistency_wrong_first_size_fails(second: int, data: st.DataObject) -> None:
    first = data.draw(st.integers(1, second - 1), label="first")
    first_root, second_root, proof = _consistency_case(first, second)
    wrong = data.draw(st.integers(1, second - 1).filter(lambda s: s != first), label="wrong")
    with pytest.raises(ConsistencyProofError):
        verify_consistency(wrong, second, first_root, second_root, proof)


@pytest.mark.parametrize(("first", "second", "proof"), vectors.CONSISTENCY_PROOFS[1:])
def test_consistency_published_vectors_resist_the_usual_corruptions(
    first: int, second: int, proof: list[bytes]
) -> None:
    # The probes of transparency-dev/merkle proof/verify_test.go (corruptConsistencyProof).
    root1, root2 = vectors.ROOTS[first], vectors.ROOTS[second]
    probes = [
        (first - 1, second, root1, root2, proof),
        (first + 1, second, root1, root2, proof),
        (first ^ 2, second, root1, root2, proof),
        (first, second * 2, root1, root2, proof),
        (first, second // 2, root1, root2, proof),
        (first, second, b"WrongRoot", root2, proof),
        (first, second, root1, b"WrongRoot", proof),
        (first, second, root2, root1, proof),
        (first, second, root1, root2, []),
        (first, second, root1, root2, [*proof, b""]),
        (first, second, root1, root2, [*proof, root1]),
        (first, second, root1, root2, [*proof, root2]),
        (first, second, root1, root2, [b"", *proof]),
        (first, second, root1, root2, [root1, *proof]),
        (first, second, root1, root2, [root2, *proof]),
        (first, second, root1, root2, [proof[0], *proof]),
        (first, second, root1, root2, proof[:-1]),
    ]
    for position in range(len(proof)):
        wrong = list(proof)
        wrong[position] = flip_bit(proof[position], 3)
        probes.append((first, second, root1, root2, wrong))
    for probe in probes:
        with pytest.raises(ConsistencyProofError):
            verify_consistency(*probe)


@pytest.mark.parametrize(("first", "second"), [(1, 0), (2, 1), (8, 5), (-1, 3), (-2, -1)])
def test_consistency_first_above_second_or_negative_fails(first: int, second: int) -> None:
    with pytest.raises(ConsistencyProofError, match="between 0 and the second") as failure:
        verify_consistency(first, second, SOME_HASH, SOME_HASH, [])
    assert failure.value.context == {"first_size": first, "second_size": second, "proof_length": 0}


def test_consistency_trivial_cases() -> None:
    # From the empty tree: always consistent, but the empty tree's root is fixed.
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 5, EMPTY_ROOT, REFERENCE.root(5), [])
    with pytest.raises(ConsistencyProofError, match="empty string") as failure:
        verify_consistency(0, 5, SOME_HASH, REFERENCE.root(5), [])
    assert failure.value.expected == EMPTY_ROOT
    with pytest.raises(ConsistencyProofError, match="empty string"):
        verify_consistency(0, 0, SOME_HASH, SOME_HASH, [])
    with pytest.raises(ConsistencyProofError, match="same root"):
        verify_consistency(0, 0, EMPTY_ROOT, SOME_HASH, [])
    # Equal sizes: the same tree, so the same root and nothing to prove.
    verify_consistency(3, 3, REFERENCE.root(3), REFERENCE.root(3), [])
    with pytest.raises(ConsistencyProofError, match="same root") as failure:
        verify_consistency(3, 3, REFERENCE.root(3), SOME_HASH, [])
    assert (failure.value.expected, failure.value.computed) == (REFERENCE.root(3), SOME_HASH)
    for size, first_root in ((0, EMPTY_ROOT), (3, REFERENCE.root(3))):
        with pytest.raises(ConsistencyProofError, match="wrong number") as failure:
            verify_consistency(size, size, first_root, first_root, [EMPTY_ROOT])
        assert (failure.value.expected, failure.value.computed) == (0, 1)
    with pytest.raises(ConsistencyProofError, match="wrong number"):
        verify_consistency(0, 4, EMPTY_ROOT, REFERENCE.root(4), [EMPTY_ROOT])


def test_consistency_hashes_of_the_wrong_length_fail() -> None:
    first_root, second_root, proof = _consistency_case(6, 8)
    with pytest.raises(ConsistencyProofError, match="first_root must be 32 bytes"):
        verify_consistency(6, 8, first_root[:-1], second_root, proof)
    with pytest.raises(ConsistencyProofError, match="second_root must be 32 bytes"):
        verify_consistency(6, 8, first_root, b"", proof)
    with pytest.raises(ConsistencyProofError, match=r"proof\[2\] must be 32 bytes"):
        verify_consistency(6, 8, first_root, second_root, [*proof[:2], proof[2] * 2])


def test_consistency_failure_names_the_root_that_did_not_match() -> None:
    first_root, second_root, proof = _consistency_case(6, 8)
    with pytest.raises(ConsistencyProofError, match="first root") as failure:
        verify_consistency(6, 8, SOME_HASH, second_root, proof)
    assert (failure.value.expected, failure.value.computed) == (SOME_HASH, first_root)
    with pytest.raises(ConsistencyProofError, match="second root") as failure:
        verify_consistency(6, 8, first_root, SOME_HASH, proof)
    assert (failure.value.expected, failure.value.computed) == (SOME_HASH, second_root)
