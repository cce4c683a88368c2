"""verify_receipt: an inclusion proof is accepted only with a signed, quorum-attested block."""

from __future__ import annotations

from typing import Any

import pytest

from careledger.client import (
    GenesisPinError,
    ReceiptError,
    genesis_fingerprint,
    pin_genesis,
    verify_receipt,
)
from shared.attestation import sign_attestation
from shared.block import Block
from shared.canonical import canonicalize
from shared.merkle import inclusion_proof, leaf_hash
from tests.unit.core.chainfactory import ChainFactory


def sealed_chain() -> tuple[ChainFactory, list[dict[str, Any]]]:
    factory = ChainFactory()
    factory.seal_many(3, 4)
    events = [event for block in factory.blocks for event in block.events]
    return factory, events


def receipt_parts(
    factory: ChainFactory, events: list[dict[str, Any]], index: int, *, attesting: int = 2
) -> dict[str, Any]:
    block = factory.blocks[-1]
    leaves = [leaf_hash(canonicalize(event)) for event in events]
    height = next(b.header.height for b in factory.blocks if index < b.header.tree_size)
    attestations = [
        sign_attestation(block.header, factory.keys[f"validator-{n}"]).model_dump()
        for n in range(1, attesting + 1)
    ]
    proof = {
        "height": height,
        "leaf_index": index,
        "tree_size": block.header.tree_size,
        "leaf_hash": leaves[index].hex(),
        "audit_path": [step.hex() for step in inclusion_proof(leaves, index)],
        "log_root": block.header.log_root,
        "event": events[index],
    }
    return {
        "genesis": factory.config,
        "source": events[index]["source"],
        "event_id": events[index]["id"],
        "final_block": block,
        "attestations": attestations,
        "proof": proof,
    }


def test_a_valid_receipt_names_the_height_leaf_and_attesters() -> None:
    factory, events = sealed_chain()
    receipt = verify_receipt(**receipt_parts(factory, events, 5))
    assert receipt.leaf_index == 5
    assert receipt.height == 2  # genesis is leaf 0, blocks of 4 events follow
    assert receipt.final_height == 3
    assert receipt.tree_size == len(events)
    assert set(receipt.attested_by) == {factory.did("validator-1"), factory.did("validator-2")}


def test_one_attestation_is_not_final() -> None:
    factory, events = sealed_chain()
    with pytest.raises(ReceiptError, match="not final") as raised:
        verify_receipt(**receipt_parts(factory, events, 5, attesting=1))
    assert raised.value.expected == 2
    assert raised.value.computed == 1


def test_an_attestation_of_another_block_is_refused() -> None:
    factory, events = sealed_chain()
    parts = receipt_parts(factory, events, 5)
    parts["attestations"][0] = sign_attestation(
        factory.blocks[-2].header, factory.keys["validator-1"]
    ).model_dump()
    with pytest.raises(ReceiptError) as raised:
        verify_receipt(**parts)
    assert raised.value.context["check"] == "AttestationMismatchError"


def test_a_block_not_signed_by_the_genesis_sealer_is_refused() -> None:
    factory, events = sealed_chain()
    parts = receipt_parts(factory, events, 5)
    block: Block = parts["final_block"]
    parts["final_block"] = block.model_copy(
        update={"signature": parts["final_block"].signature[::-1]}
    )
    with pytest.raises(ReceiptError) as raised:
        verify_receipt(**parts)
    assert raised.value.context["check"] == "BlockSignatureError"


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda p: p.update(tree_size=p["tree_size"] - 1), ReceiptError, "tree_size"),
        (lambda p: p.update(log_root="00" * 32), ReceiptError, "log_root"),
        (lambda p: p.update(leaf_hash="11" * 32), ReceiptError, "leaf hash"),
        (lambda p: p.update(leaf_index=p["leaf_index"] + 1), ReceiptError, "root"),
        (lambda p: p["audit_path"].reverse(), ReceiptError, "root"),
        (lambda p: p.update(event="not an object"), ReceiptError, "no event"),
    ],
)
def test_a_tampered_proof_is_refused(change: Any, error: type[Exception], message: str) -> None:
    factory, events = sealed_chain()
    parts = receipt_parts(factory, events, 6)
    change(parts["proof"])
    with pytest.raises(error, match=message or None):
        verify_receipt(**parts)


def test_a_proof_of_another_event_is_refused() -> None:
    factory, events = sealed_chain()
    parts = receipt_parts(factory, events, 6)
    parts["event_id"] = events[7]["id"]
    with pytest.raises(ReceiptError, match="another event"):
        verify_receipt(**parts)


def test_an_event_altered_after_sealing_is_refused() -> None:
    factory, events = sealed_chain()
    parts = receipt_parts(factory, events, 6)
    parts["proof"]["event"] = {**events[6], "data": {"n": 999}}
    with pytest.raises(ReceiptError, match="signature"):
        verify_receipt(**parts)


def test_a_block_of_another_chain_is_refused() -> None:
    factory, events = sealed_chain()
    parts = receipt_parts(factory, events, 5)
    parts["genesis"] = factory.config.model_copy(update={"chain_id": "careledger-other"})
    with pytest.raises(ReceiptError, match="another chain"):
        verify_receipt(**parts)


def test_a_genesis_is_pinned_by_its_fingerprint() -> None:
    factory = ChainFactory()
    fingerprint = genesis_fingerprint(factory.genesis_event)
    assert pin_genesis(factory.genesis_event, fingerprint=fingerprint.upper()) == factory.config
    assert pin_genesis(factory.genesis_event, fingerprint=None) == factory.config


@pytest.mark.parametrize(
    ("genesis", "message"),
    [
        (["not", "an", "object"], "not a JSON object"),
        ({"data": float("nan")}, "not JSON"),
        ({"specversion": "1.0"}, "does not verify"),
    ],
)
def test_what_is_not_a_genesis_is_refused(genesis: Any, message: str) -> None:
    fingerprint = "00" * 32 if message == "not JSON" else None
    with pytest.raises(GenesisPinError, match=message):
        pin_genesis(genesis, fingerprint=fingerprint)


def test_a_forged_genesis_does_not_verify_even_when_pinned() -> None:
    factory = ChainFactory()
    forged = {**factory.genesis_event, "time": "2026-01-02T00:00:00Z"}
    with pytest.raises(GenesisPinError, match="does not verify") as raised:
        pin_genesis(forged, fingerprint=genesis_fingerprint(forged))
    assert raised.value.context["check"] == "GenesisError"
    assert raised.value.reason == "genesis_mismatch"
