"""eddsa-jcs-2022 against the W3C specification's published test vectors, byte for byte."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from shared.credentials import VerifiedProof, add_proof, verify_proof
from shared.credentials.proof import hash_data, proof_configuration, transform_document
from shared.crypto import SigningKey, base58btc_multibase_decode, base58btc_multibase_encode

VECTORS = Path(__file__).parent / "vectors"
ED25519_PRIVATE_MULTICODEC = b"\x80\x26"  # varint of 0x1300, ed25519-priv


def text(name: str) -> str:
    return (VECTORS / name).read_text(encoding="utf-8").strip()


def document(name: str) -> dict[str, Any]:
    value = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


@pytest.fixture(scope="module")
def spec_key() -> SigningKey:
    private = base58btc_multibase_decode(document("keyPair.json")["privateKeyMultibase"])
    assert private[:2] == ED25519_PRIVATE_MULTICODEC
    return SigningKey.from_seed(private[2:])


def test_the_spec_key_is_the_published_did_key(spec_key: SigningKey) -> None:
    assert spec_key.did == "did:key:" + document("keyPair.json")["publicKeyMultibase"]


def test_transformation_is_the_published_canonical_document() -> None:
    transformed = transform_document(document("unsigned.json"))
    assert transformed == text("canonDocJCS.txt").encode("utf-8")
    assert hashlib.sha256(transformed).hexdigest() == text("docHashJCS.txt")


def test_proof_configuration_is_the_published_one() -> None:
    canonical = proof_configuration(document("proofConfigJCS.json"))
    assert canonical == text("proofCanonJCS.txt").encode("utf-8")
    assert hashlib.sha256(canonical).hexdigest() == text("proofHashJCS.txt")


def test_hash_data_and_signature_are_the_published_ones(spec_key: SigningKey) -> None:
    combined = hash_data(
        transform_document(document("unsigned.json")),
        proof_configuration(document("proofConfigJCS.json")),
    )
    assert combined.hex() == text("combinedHashJCS.txt")
    signature = spec_key.sign(combined)
    assert signature.hex() == text("sigHexJCS.txt")
    assert base58btc_multibase_encode(signature) == text("sigBTC58JCS.txt")


def test_add_proof_reproduces_the_signed_credential(spec_key: SigningKey) -> None:
    proof_options = document("proofConfigJCS.json")
    secured = add_proof(document("unsigned.json"), key=spec_key, created=proof_options["created"])
    assert secured == document("signedJCS.json")
    assert secured["proof"]["proofValue"] == text("sigBTC58JCS.txt")


def test_add_proof_copies_the_document_context_into_the_proof(spec_key: SigningKey) -> None:
    unsigned = document("unsigned.json")
    secured = add_proof(unsigned, key=spec_key, created="2023-02-24T23:36:38Z")
    assert secured["proof"]["@context"] == unsigned["@context"]
    assert "proof" not in unsigned  # the input is not changed


def test_the_published_signed_credential_verifies(spec_key: SigningKey) -> None:
    proof = document("proofConfigJCS.json")
    assert verify_proof(document("signedJCS.json")) == VerifiedProof(
        controller=spec_key.did,
        verification_method=proof["verificationMethod"],
        created=proof["created"],
    )
