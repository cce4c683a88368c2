"""Attestations: signing, verification, tampering, and finality by quorum."""

from __future__ import annotations

import json

import pytest

from shared.attestation import (
    Attestation,
    AttestationMismatchError,
    AttestationSignatureError,
    FinalityConflictError,
    UnknownValidatorError,
    attesters,
    final_block_hash,
    sign_attestation,
    verify_attestation,
)
from shared.block import Block, block_hash
from shared.canonical import canonicalize
from shared.crypto import b64url_decode, b64url_encode, verify_signature
from tests.unit.core.chainfactory import ChainFactory


@pytest.fixture(scope="module")
def factory() -> ChainFactory:
    made = ChainFactory()
    made.seal_many(2, 2)
    return made


@pytest.fixture(scope="module")
def validators(factory: ChainFactory) -> frozenset[str]:
    return frozenset(factory.config.validators)


def _attest(factory: ChainFactory, block: Block, validator: str = "validator-1") -> Attestation:
    return sign_attestation(block.header, factory.keys[validator])


def test_an_attestation_has_the_brief_members_and_signs_their_jcs(factory: ChainFactory) -> None:
    block = factory.blocks[1]
    attestation = _attest(factory, block)
    value = json.loads(attestation.model_dump_json())
    assert set(value) == {
        "chain_id",
        "height",
        "block_hash",
        "tree_size",
        "log_root",
        "validator",
        "signature",
    }
    assert value["block_hash"] == block.block_hash
    unsigned = {name: item for name, item in value.items() if name != "signature"}
    verify_signature(
        factory.did("validator-1"), canonicalize(unsigned), b64url_decode(value["signature"])
    )


def test_a_valid_attestation_verifies(factory: ChainFactory, validators: frozenset[str]) -> None:
    block = factory.blocks[2]
    attestation = _attest(factory, block, "validator-3")
    verify_attestation(attestation, chain_id=factory.chain_id, validators=validators)
    verify_attestation(
        attestation, chain_id=factory.chain_id, validators=validators, header=block.header
    )


def test_another_chain_is_refused(factory: ChainFactory, validators: frozenset[str]) -> None:
    attestation = _attest(factory, factory.blocks[1])
    with pytest.raises(UnknownValidatorError) as caught:
        verify_attestation(attestation, chain_id="elsewhere", validators=validators)
    assert caught.value.computed == factory.chain_id


def test_a_validator_not_in_genesis_is_refused(
    factory: ChainFactory, validators: frozenset[str]
) -> None:
    attestation = _attest(factory, factory.blocks[1], "stranger")
    with pytest.raises(UnknownValidatorError):
        verify_attestation(attestation, chain_id=factory.chain_id, validators=validators)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("height", 9),
        ("block_hash", "00" * 32),
        ("tree_size", 99),
        ("log_root", "00" * 32),
        ("validator", "validator-2"),
        ("signature", "AAAA"),
        ("signature", "not base64!"),
    ],
)
def test_any_tampering_breaks_the_signature(
    factory: ChainFactory, validators: frozenset[str], name: str, value: object
) -> None:
    attestation = _attest(factory, factory.blocks[1])
    if name == "validator":
        value = factory.did(str(value))
    tampered = attestation.model_copy(update={name: value})
    with pytest.raises(AttestationSignatureError):
        verify_attestation(tampered, chain_id=factory.chain_id, validators=validators)


@pytest.mark.parametrize(
    ("name", "value"),
    [("height", 2), ("block_hash", "00" * 32), ("tree_size", 99), ("log_root", "00" * 32)],
)
def test_an_attestation_that_does_not_describe_the_block_is_refused(
    factory: ChainFactory, validators: frozenset[str], name: str, value: object
) -> None:
    # Signed by a genesis validator, but with one field that is not the block's.
    honest = _attest(factory, factory.blocks[1]).model_dump(exclude={"signature"})
    unsigned = {**honest, name: value}
    signature = b64url_encode(factory.keys["validator-1"].sign(canonicalize(unsigned)))
    attestation = Attestation(**unsigned, signature=signature)
    verify_attestation(attestation, chain_id=factory.chain_id, validators=validators)
    with pytest.raises(AttestationMismatchError) as caught:
        verify_attestation(
            attestation,
            chain_id=factory.chain_id,
            validators=validators,
            header=factory.blocks[1].header,
        )
    assert caught.value.context["field"] == name
    assert caught.value.computed == value


def test_finality_needs_a_quorum_of_distinct_genesis_validators(
    factory: ChainFactory, validators: frozenset[str]
) -> None:
    block = factory.blocks[1]
    one = _attest(factory, block, "validator-1")
    two = _attest(factory, block, "validator-2")
    outsider = _attest(factory, block, "stranger")
    elsewhere = _attest(factory, factory.blocks[2], "validator-3")
    digest = block_hash(block.header).hex()
    assert (
        final_block_hash([one, one, outsider, elsewhere], height=1, quorum=2, validators=validators)
        is None
    )
    assert final_block_hash([one, two], height=1, quorum=2, validators=validators) == digest
    assert final_block_hash([one, two], height=2, quorum=2, validators=validators) is None
    assert attesters(
        [one, one, two, outsider, elsewhere], height=1, block_hash=digest, validators=validators
    ) == {
        factory.did("validator-1"),
        factory.did("validator-2"),
    }
    assert attesters([one], height=2, block_hash=digest, validators=validators) == frozenset()
    with pytest.raises(ValueError, match="quorum"):
        final_block_hash([one], height=1, quorum=0, validators=validators)


def test_two_final_hashes_at_one_height_is_a_conflict(
    factory: ChainFactory, validators: frozenset[str]
) -> None:
    block = factory.blocks[1]
    fork = factory.resign(block, sealed_at="2027-01-01T00:00:00Z")
    votes = [
        _attest(factory, block, "validator-1"),
        _attest(factory, block, "validator-2"),
        _attest(factory, fork, "validator-2"),
        _attest(factory, fork, "validator-3"),
    ]
    with pytest.raises(FinalityConflictError) as caught:
        final_block_hash(votes, height=1, quorum=2, validators=validators)
    assert sorted(caught.value.context["block_hashes"]) == sorted(
        [block.block_hash, fork.block_hash]
    )


def test_an_attestation_may_carry_a_checkpoint_signature(
    factory: ChainFactory, validators: frozenset[str]
) -> None:
    from shared.checkpoint import Checkpoint, signature_line_of, verify_note_signature

    block = factory.blocks[1]
    key = factory.keys["validator-2"]
    attestation = sign_attestation(block.header, key, checkpoint_origin="careledger/test")
    verify_attestation(
        attestation, chain_id=factory.config.chain_id, validators=validators, header=block.header
    )
    assert attestation.checkpoint_signature is not None
    body = Checkpoint(
        "careledger/test", block.header.tree_size, bytes.fromhex(block.header.log_root)
    ).body()
    line = signature_line_of(key.did, b64url_decode(attestation.checkpoint_signature))
    verify_note_signature(line, body, key.did)
    # The member is signed: changing it breaks the attestation's signature.
    forged = attestation.model_copy(update={"checkpoint_signature": b64url_encode(b"x" * 64)})
    with pytest.raises(AttestationSignatureError):
        verify_attestation(forged, chain_id=factory.config.chain_id, validators=validators)


def test_an_attestation_without_the_member_is_the_briefs(factory: ChainFactory) -> None:
    attestation = _attest(factory, factory.blocks[1])
    dumped = json.loads(attestation.model_dump_json())
    assert set(dumped) == {
        "chain_id",
        "height",
        "block_hash",
        "tree_size",
        "log_root",
        "validator",
        "signature",
    }
    assert Attestation.model_validate(dumped) == attestation
