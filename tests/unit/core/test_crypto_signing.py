"""Ed25519 signing keys and verification: RFC 8032 vectors, tamper tests, evidence, the cache."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.crypto import SignatureError, SigningKey, verify_signature
from shared.crypto.signing import _verify_key
from shared.errors import VerificationError

# RFC 8032 §7.1: TEST 1 (empty message), TEST 2 (one byte), TEST 3 (two bytes).
RFC8032_VECTORS = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]
SEED = bytes(range(32))


@pytest.mark.parametrize(("seed", "public", "message", "signature"), RFC8032_VECTORS)
def test_rfc8032_vectors(seed: str, public: str, message: str, signature: str) -> None:
    key = SigningKey.from_seed(bytes.fromhex(seed))
    assert key.seed == bytes.fromhex(seed)
    assert key.public_key.hex() == public
    assert key.sign(bytes.fromhex(message)).hex() == signature
    verify_signature(key.did, bytes.fromhex(message), bytes.fromhex(signature))


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300))
def test_sign_then_verify(seed: bytes, message: bytes) -> None:
    key = SigningKey.from_seed(seed)
    signature = key.sign(message)
    assert len(signature) == 64
    verify_signature(key.did, message, signature)


@given(st.binary(max_size=100), st.integers(min_value=0, max_value=64 * 8 - 1))
def test_any_flipped_signature_bit_is_refused(message: bytes, bit: int) -> None:
    key = SigningKey.from_seed(SEED)
    signature = bytearray(key.sign(message))
    signature[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SignatureError):
        verify_signature(key.did, message, bytes(signature))


@given(st.binary(min_size=1, max_size=100), st.data())
def test_any_flipped_message_bit_is_refused(message: bytes, data: st.DataObject) -> None:
    key = SigningKey.from_seed(SEED)
    signature = key.sign(message)
    bit = data.draw(st.integers(min_value=0, max_value=len(message) * 8 - 1))
    tampered = bytearray(message)
    tampered[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(SignatureError):
        verify_signature(key.did, bytes(tampered), signature)


def test_another_signer_is_refused_with_evidence() -> None:
    key, other = SigningKey.from_seed(SEED), SigningKey.from_seed(bytes(32))
    with pytest.raises(SignatureError, match="does not verify") as caught:
        verify_signature(other.did, b"hello", key.sign(b"hello"))
    assert isinstance(caught.value, VerificationError)
    assert caught.value.evidence() == {
        "error": "SignatureError",
        "message": "the Ed25519 signature does not verify",
        "signer": other.did,
        "message_sha256": hashlib.sha256(b"hello").hexdigest(),
    }


@pytest.mark.parametrize("length", [0, 63, 65])
def test_a_signature_of_the_wrong_length_is_refused(length: int) -> None:
    key = SigningKey.from_seed(SEED)
    with pytest.raises(SignatureError, match=f"64 bytes, not {length}"):
        verify_signature(key.did, b"m", bytes(length))


def test_an_invalid_signer_did_is_a_signature_error() -> None:
    with pytest.raises(SignatureError, match="not a valid did:key") as caught:
        verify_signature("did:web:example.com", b"m", bytes(64))
    assert caught.value.context["signer"] == "did:web:example.com"


def test_verify_keys_are_cached_per_did() -> None:
    key = SigningKey.from_seed(SEED)
    signature = key.sign(b"m")
    verify_signature(key.did, b"m", signature)
    hits = _verify_key.cache_info().hits
    verify_signature(key.did, b"m", signature)
    assert _verify_key.cache_info().hits == hits + 1
    assert _verify_key.cache_info().maxsize == 65_536


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), bytearray(32)])
def test_seeds_must_be_32_bytes(seed: bytes) -> None:
    with pytest.raises(ValueError, match="exactly 32 bytes"):
        SigningKey.from_seed(seed)


def test_signing_keys_are_frozen_comparable_and_do_not_show_the_seed() -> None:
    key = SigningKey.from_seed(SEED)
    assert SEED.hex() not in repr(key)
    assert repr(key) == f"SigningKey(did={key.did!r})"
    assert key == SigningKey(SEED)
    assert hash(key) == hash(SigningKey.from_seed(SEED))
    assert key != SigningKey.from_seed(bytes(32))
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.seed = bytes(32)  # type: ignore[misc]


def test_x25519_private_key_is_deterministic_and_clamped() -> None:
    private = SigningKey.from_seed(SEED).x25519_private_key()
    assert private == SigningKey.from_seed(SEED).x25519_private_key()
    assert len(private) == 32
    # RFC 7748 §5 clamping, applied by the Ed25519 -> X25519 conversion.
    assert private[0] & 7 == 0
    assert private[31] & 0x80 == 0
    assert private[31] & 0x40 == 0x40
