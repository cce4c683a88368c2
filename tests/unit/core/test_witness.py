"""The witness's state transition and the add-checkpoint request (`shared.witness`): every
refusal, with consistency proofs from our tree cross-checked by tlog-scales."""

from __future__ import annotations

import base64
import hashlib

import pytest
from tlog_scales.tlog import ConsistencyProof

from shared.checkpoint import Checkpoint
from shared.merkle import consistency_proof, leaf_hash, root
from shared.witness import (
    AddCheckpointRequest,
    AddCheckpointRequestError,
    BadConsistencyProofError,
    ForkError,
    RollbackError,
    StaleSizeError,
    advance,
    parse_add_checkpoint,
)

ORIGIN = "careledger/careledger-test"
LEAVES = [leaf_hash(f"event {n}".encode()) for n in range(20)]


def head(size: int, leaves: list[bytes] = LEAVES) -> Checkpoint:
    return Checkpoint(ORIGIN, size, root(leaves[:size]))


def proof(first: int, second: int) -> list[bytes]:
    return list(consistency_proof(LEAVES[:second], first))


@pytest.mark.parametrize(("first", "second"), [(1, 2), (3, 7), (4, 8), (6, 20), (13, 14)])
def test_a_consistent_checkpoint_advances_and_tlog_scales_agrees(first: int, second: int) -> None:
    path = proof(first, second)
    ConsistencyProof(first, second, path).check(head(first).root_hash, head(second).root_hash)
    assert advance(head(first), head(second), old_size=first, proof=path) == head(second)


def test_an_empty_witness_takes_any_first_checkpoint_with_no_proof() -> None:
    assert advance(None, head(5), old_size=0, proof=[]) == head(5)
    with pytest.raises(BadConsistencyProofError):
        advance(None, head(5), old_size=0, proof=[LEAVES[0]])


def test_a_stale_old_size_is_refused_with_the_size_held() -> None:
    with pytest.raises(StaleSizeError) as raised:
        advance(head(5), head(8), old_size=3, proof=proof(3, 8))
    assert (raised.value.known_size, raised.value.reason) == (5, "stale_size")
    with pytest.raises(StaleSizeError) as empty:
        advance(None, head(8), old_size=3, proof=[])
    assert empty.value.known_size == 0


def test_a_smaller_checkpoint_is_a_rollback() -> None:
    with pytest.raises(RollbackError) as raised:
        advance(head(8), head(5), old_size=8, proof=[])
    assert raised.value.reason == "rollback"


def test_the_same_size_must_have_the_same_root_and_no_proof() -> None:
    assert advance(head(8), head(8), old_size=8, proof=[]) == head(8)
    forked = [hashlib.sha256(b"other").digest(), *LEAVES[1:]]
    with pytest.raises(ForkError):
        advance(head(8), head(8, forked), old_size=8, proof=[])
    with pytest.raises(ForkError):
        advance(head(8), head(8), old_size=8, proof=[LEAVES[0]])


def test_a_fork_or_a_tampered_proof_is_refused() -> None:
    forked = [*LEAVES[:3], hashlib.sha256(b"other").digest(), *LEAVES[4:]]
    with pytest.raises(BadConsistencyProofError) as raised:
        advance(head(6), head(12, forked), old_size=6, proof=proof(6, 12))
    assert raised.value.reason == "bad_proof"
    path = proof(6, 12)
    path[0] = bytes([path[0][0] ^ 1]) + path[0][1:]
    with pytest.raises(BadConsistencyProofError):
        advance(head(6), head(12), old_size=6, proof=path)


def _b64(node: bytes) -> str:
    return base64.b64encode(node).decode()


def test_the_request_body_parses() -> None:
    nodes = proof(3, 7)
    body = "old 3\n" + "".join(_b64(n) + "\n" for n in nodes) + "\nthe note\n\n— k AAAAAAA=\n"
    assert parse_add_checkpoint(body) == AddCheckpointRequest(
        3, tuple(nodes), "the note\n\n— k AAAAAAA=\n"
    )
    assert parse_add_checkpoint("old 0\n\nnote").proof == ()


@pytest.mark.parametrize(
    "body",
    [
        "old 3\nno blank line",
        "new 3\n\nnote",
        "old 03\n\nnote",
        "old -1\n\nnote",
        f"old {2**63}\n\nnote",
        "old 3\nnot*base64\n\nnote",
        "old 3\n" + _b64(b"short") + "\n\nnote",
        "old 3\n" + (_b64(LEAVES[0]) + "\n") * 64 + "\nnote",
    ],
)
def test_a_malformed_request_is_refused(body: str) -> None:
    with pytest.raises(AddCheckpointRequestError):
        parse_add_checkpoint(body)


def test_our_inclusion_proofs_chain_to_the_root_with_sigstore() -> None:
    from shared.merkle import inclusion_proof
    from tests.unit.core.sigstore_check import inclusion_root_by_sigstore

    for size in (1, 2, 7, 20):
        for index in range(size):
            path = inclusion_proof(LEAVES[:size], index)
            assert inclusion_root_by_sigstore(LEAVES[index], index, size, path) == root(
                LEAVES[:size]
            )
