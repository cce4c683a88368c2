"""eddsa-jcs-2022: every change to a signed document or its proof makes verification fail,
and any document round-trips through add_proof/verify_proof (cross-checked against a naive
reference built directly on the `rfc8785` package)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.credentials import ProofError, ProofGenerationError, add_proof, verify_proof
from shared.credentials.proof import verification_method_for
from shared.crypto import (
    SigningKey,
    base58btc_multibase_decode,
    base58btc_multibase_encode,
    verify_signature,
)

SIGNED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "signedJCS.json").read_text(encoding="utf-8")
)
OTHER_KEY = SigningKey.from_seed(bytes(range(32)))


def signed() -> dict[str, Any]:
    return copy.deepcopy(SIGNED)


def assert_refused(document: dict[str, Any], **options: str) -> ProofError:
    with pytest.raises(ProofError) as caught:
        verify_proof(document, **options)
    return caught.value


@given(st.integers(min_value=0, max_value=511))
def test_flipping_any_bit_of_the_signature_fails(bit: int) -> None:
    document = signed()
    signature = bytearray(base58btc_multibase_decode(document["proof"]["proofValue"]))
    signature[bit // 8] ^= 1 << (bit % 8)
    document["proof"]["proofValue"] = base58btc_multibase_encode(bytes(signature))
    assert_refused(document)


@pytest.mark.parametrize("member", [name for name in SIGNED if name != "proof"])
def test_changing_any_credential_member_fails(member: str) -> None:
    document = signed()
    document[member] = "https://attacker.example/" if member != "type" else ["X"]
    assert_refused(document)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["credentialSubject"].update(alumniOf="Another School"),
        lambda d: d.update(extra="added"),
        lambda d: d.pop("description"),
        lambda d: d["type"].reverse(),
        lambda d: d.update(validFrom="2023-01-01T00:00:00+00:00"),  # same instant, other bytes
    ],
    ids=["nested", "added", "removed", "reordered-array", "respelled-time"],
)
def test_any_change_to_the_credential_fails(change: Any) -> None:
    document = signed()
    change(document)
    assert_refused(document)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("created", "2023-02-24T23:36:39Z"),
        ("proofPurpose", "authentication"),
        ("cryptosuite", "eddsa-rdfc-2022"),
        ("type", "Ed25519Signature2020"),
        ("verificationMethod", verification_method_for(OTHER_KEY.did)),
        ("@context", ["https://www.w3.org/ns/credentials/v2"]),
        ("domain", "added.example"),
    ],
)
def test_changing_any_proof_option_fails(option: str, value: Any) -> None:
    document = signed()
    document["proof"][option] = value
    assert_refused(document, proof_purpose=document["proof"]["proofPurpose"])


def test_removing_the_proof_context_fails() -> None:
    document = signed()
    del document["proof"]["@context"]
    assert_refused(document)


def test_a_proof_for_another_purpose_is_refused_with_evidence() -> None:
    error = assert_refused(signed(), proof_purpose="authentication")
    assert error.expected == "authentication"
    assert error.computed == "assertionMethod"


def test_a_signature_by_another_key_fails() -> None:
    document = signed()
    resigned = add_proof(
        {name: value for name, value in document.items() if name != "proof"},
        key=OTHER_KEY,
        created=document["proof"]["created"],
    )
    # The other key's valid signature, presented as the spec key's.
    document["proof"]["proofValue"] = resigned["proof"]["proofValue"]
    error = assert_refused(document)
    assert error.expected == f"a signature by {SIGNED['proof']['verificationMethod']}"


def test_the_document_context_must_start_with_the_proof_context() -> None:
    document = signed()
    document["@context"] = list(reversed(document["@context"]))
    error = assert_refused(document)
    assert error.expected == SIGNED["proof"]["@context"]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d.pop("proof"), "no 'proof'"),
        (lambda d: d.update(proof=[d["proof"]]), "proof sets"),
        (lambda d: d["proof"].pop("proofValue"), "proofValue"),
        (lambda d: d["proof"].update(proofValue="u" + "A" * 86), "base58btc"),
        (lambda d: d["proof"].update(proofValue="z" + "2" * 40), "signature"),
        (lambda d: d["proof"].update(previousProof="urn:x"), "previousProof"),
        (lambda d: d["proof"].pop("created"), "created"),
        (lambda d: d["proof"].update(created="2023-02-24T23:36:38"), "created"),
        (lambda d: d["proof"].update(verificationMethod="did:key:z6Mk"), "did:key"),
        (
            lambda d: d["proof"].update(verificationMethod=OTHER_KEY.did + "#key-1"),
            "fragment",
        ),
        (lambda d: d.update(value=float("nan")), "RFC 8785"),
    ],
    ids=[
        "no-proof",
        "proof-set",
        "no-proof-value",
        "other-multibase",
        "short-signature",
        "chained",
        "no-created",
        "naive-created",
        "bad-did",
        "wrong-fragment",
        "not-canonicalizable",
    ],
)
def test_malformed_proofs_are_refused_with_a_reason(change: Any, says: str) -> None:
    document = signed()
    change(document)
    assert says in str(assert_refused(document))


def test_a_non_object_is_refused() -> None:
    with pytest.raises(ProofError):
        verify_proof([SIGNED])  # type: ignore[arg-type]


def test_add_proof_refuses_a_second_proof_and_a_naive_created() -> None:
    with pytest.raises(ProofGenerationError, match="already"):
        add_proof(SIGNED, key=OTHER_KEY, created="2024-01-01T00:00:00Z")
    with pytest.raises(ProofGenerationError, match="created"):
        add_proof({"a": 1}, key=OTHER_KEY, created="2024-01-01T00:00:00")


_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_documents = st.dictionaries(
    st.text(max_size=8).filter(lambda name: name != "proof"), _json, max_size=6
)


def naive_hash_data(document: dict[str, Any], proof: dict[str, Any]) -> bytes:
    """The specification's hashing, written out directly on the reference JCS package."""
    options = {name: value for name, value in proof.items() if name != "proofValue"}
    return (
        hashlib.sha256(rfc8785.dumps(options)).digest()
        + hashlib.sha256(rfc8785.dumps(document)).digest()
    )


@settings(max_examples=60, deadline=None)
@given(_documents, st.binary(min_size=32, max_size=32), st.booleans())
def test_any_document_round_trips_and_matches_the_naive_reference(
    document: dict[str, Any], seed: bytes, with_context: bool
) -> None:
    if with_context:
        document["@context"] = ["https://www.w3.org/ns/credentials/v2"]
    key = SigningKey.from_seed(seed)
    secured = add_proof(document, key=key, created="2025-06-01T12:00:00Z")
    verified = verify_proof(secured)
    assert verified.controller == key.did
    assert verified.verification_method == verification_method_for(key.did)
    signature = base58btc_multibase_decode(secured["proof"]["proofValue"])
    verify_signature(key.did, naive_hash_data(document, secured["proof"]), signature)
