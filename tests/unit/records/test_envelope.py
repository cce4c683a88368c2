"""A version's associated data, keyed commitment, ciphertext hash and signed envelope."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from services.records.core.envelope import (
    COMMITMENT_PERSON,
    SALT_BYTES,
    Envelope,
    associated_data,
    ciphertext_hash,
    commitment_matches,
    envelope_document,
    record_commitment,
    sign_envelope,
    verify_envelope,
)
from shared.crypto import SignatureError, SigningKey, b64url_decode

SALT = bytes(range(SALT_BYTES))
CONTENT = b'{"resourceType":"Observation"}'
KEY = SigningKey.from_seed(b"records".ljust(32, b"#"))
ENVELOPE = Envelope(
    record_id="00000000-0000-4000-8000-000000000001",
    version=2,
    resource_type="Observation",
    author="did:key:z6Mkauthor",
    patient="a1" * 32,
    nonce="bm9uY2U",
    ciphertext_hash="cd" * 32,
    commitment="ef" * 32,
)


def test_associated_data_is_rfc_8785_of_record_and_version() -> None:
    assert associated_data("r-1", 3) == b'{"record":"r-1","version":3}'
    assert associated_data("r-1", 3) != associated_data("r-1", 4)


def test_the_commitment_is_keyed_blake2b_256_personalised_for_records() -> None:
    expected = hashlib.blake2b(
        CONTENT, digest_size=32, key=SALT, person=COMMITMENT_PERSON
    ).hexdigest()
    assert record_commitment(SALT, CONTENT) == expected
    assert len(expected) == 64
    plain = hashlib.blake2b(CONTENT, digest_size=32, key=SALT).hexdigest()
    assert record_commitment(SALT, CONTENT) != plain


def test_the_commitment_depends_on_the_salt_and_the_content() -> None:
    other_salt = bytes(reversed(SALT))
    assert record_commitment(other_salt, CONTENT) != record_commitment(SALT, CONTENT)
    assert record_commitment(SALT, CONTENT + b" ") != record_commitment(SALT, CONTENT)


@pytest.mark.parametrize("size", [0, 16, SALT_BYTES - 1, SALT_BYTES + 1, 64])
def test_a_salt_of_another_length_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        record_commitment(b"\x01" * size, CONTENT)


def test_commitment_matches_only_the_committed_content_under_its_salt() -> None:
    commitment = record_commitment(SALT, CONTENT)
    assert commitment_matches(SALT, CONTENT, commitment) is True
    assert commitment_matches(SALT, CONTENT + b"x", commitment) is False
    assert commitment_matches(bytes(reversed(SALT)), CONTENT, commitment) is False
    assert commitment_matches(SALT, CONTENT, "00" * 32) is False


def test_the_ciphertext_hash_is_hex_sha_256() -> None:
    assert ciphertext_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_a_signed_envelope_verifies_under_the_signer() -> None:
    signature = sign_envelope(ENVELOPE, KEY)
    verify_envelope(ENVELOPE, b64url_decode(signature), KEY.did)


@pytest.mark.parametrize(
    "change",
    [
        {"record_id": "00000000-0000-4000-8000-000000000002"},
        {"version": 3},
        {"resource_type": "Condition"},
        {"author": "did:key:z6Mkother"},
        {"patient": "b2" * 32},
        {"nonce": "b3RoZXI"},
        {"ciphertext_hash": "00" * 32},
        {"commitment": "00" * 32},
    ],
    ids=lambda change: next(iter(change)),
)
def test_every_envelope_member_is_signed(change: dict[str, object]) -> None:
    signature = b64url_decode(sign_envelope(ENVELOPE, KEY))
    with pytest.raises(SignatureError):
        verify_envelope(replace(ENVELOPE, **change), signature, KEY.did)  # type: ignore[arg-type]


def test_an_envelope_signed_by_another_key_does_not_verify() -> None:
    other = SigningKey.from_seed(b"other".ljust(32, b"#"))
    with pytest.raises(SignatureError):
        verify_envelope(ENVELOPE, b64url_decode(sign_envelope(ENVELOPE, other)), KEY.did)


def test_the_envelope_document_shows_the_signed_members_the_signature_and_the_signer() -> None:
    document = envelope_document(ENVELOPE, "sig", KEY.did)
    assert document == {
        "v": 1,
        "record": ENVELOPE.record_id,
        "version": 2,
        "resource_type": "Observation",
        "author": ENVELOPE.author,
        "patient": ENVELOPE.patient,
        "nonce": ENVELOPE.nonce,
        "ciphertext": ENVELOPE.ciphertext_hash,
        "commitment": ENVELOPE.commitment,
        "signature": "sig",
        "signer": KEY.did,
    }


def test_an_envelope_round_trips_through_its_document() -> None:
    envelope = Envelope(
        record_id="0b7c3a52-6f1e-4c1a-9d55-3f7e2a1b9c01",
        version=3,
        resource_type="Observation",
        author="did:key:z6MkAuthor",
        patient="ab" * 32,
        nonce="bm9uY2U",
        ciphertext_hash="cd" * 32,
        commitment="ef" * 32,
    )
    document = envelope_document(envelope, "c2ln", "did:key:z6MkSigner")
    assert Envelope.from_document(document) == envelope
