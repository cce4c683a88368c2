"""XChaCha20-Poly1305 and sealed boxes: the draft's published vector, tamper tests, did:key."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.crypto import InvalidDIDError, SigningKey, x25519_public_key_from_did
from shared.crypto.sealing import (
    DATA_KEY_BYTES,
    NONCE_BYTES,
    DecryptionError,
    aead_decrypt,
    aead_encrypt,
    open_sealed,
    seal_to,
)
from shared.errors import VerificationError

# draft-irtf-cfrg-xchacha-03, Appendix A.3.1 (AEAD_XCHACHA20_POLY1305; same values as A.1).
VECTOR_PLAINTEXT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
    b"future, sunscreen would be it."
)
VECTOR_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
VECTOR_KEY = bytes.fromhex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
VECTOR_NONCE = bytes.fromhex("404142434445464748494a4b4c4d4e4f5051525354555657")
VECTOR_CIPHERTEXT = bytes.fromhex(
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
    "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
    "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
    "21f9664c97637da9768812f615c68b13b52e"
)
VECTOR_TAG = bytes.fromhex("c0875924c1c7987947deafd8780acf49")

KEY = bytes(range(DATA_KEY_BYTES))
NONCE = bytes(range(100, 100 + NONCE_BYTES))
ALICE = SigningKey.from_seed(bytes(range(32)))
BOB = SigningKey.from_seed(bytes(range(1, 33)))


def test_published_vector_encrypts_to_ciphertext_and_tag() -> None:
    sealed = aead_encrypt(VECTOR_KEY, VECTOR_NONCE, VECTOR_PLAINTEXT, VECTOR_AAD)
    assert sealed == VECTOR_CIPHERTEXT + VECTOR_TAG


def test_published_vector_decrypts() -> None:
    sealed = VECTOR_CIPHERTEXT + VECTOR_TAG
    assert aead_decrypt(VECTOR_KEY, VECTOR_NONCE, sealed, VECTOR_AAD) == VECTOR_PLAINTEXT


@pytest.mark.parametrize("index", [0, 57, len(VECTOR_PLAINTEXT) - 1, len(VECTOR_PLAINTEXT), -1])
@pytest.mark.parametrize("bit", [0, 7])
def test_flipped_bit_in_ciphertext_or_tag_is_refused(index: int, bit: int) -> None:
    changed = bytearray(VECTOR_CIPHERTEXT + VECTOR_TAG)
    changed[index] ^= 1 << bit
    with pytest.raises(DecryptionError, match="tag does not verify"):
        aead_decrypt(VECTOR_KEY, VECTOR_NONCE, bytes(changed), VECTOR_AAD)


@pytest.mark.parametrize(
    ("key", "nonce", "aad"),
    [
        (bytes(32), VECTOR_NONCE, VECTOR_AAD),  # wrong key
        (VECTOR_KEY, VECTOR_NONCE[:-1] + b"X", VECTOR_AAD),  # changed nonce
        (VECTOR_KEY, VECTOR_NONCE, VECTOR_AAD + b"\x00"),  # longer AD
        (VECTOR_KEY, VECTOR_NONCE, b""),  # missing AD
    ],
)
def test_wrong_key_nonce_or_associated_data_is_refused(
    key: bytes, nonce: bytes, aad: bytes
) -> None:
    with pytest.raises(DecryptionError) as caught:
        aead_decrypt(key, nonce, VECTOR_CIPHERTEXT + VECTOR_TAG, aad)
    assert isinstance(caught.value, VerificationError)
    assert key.hex() not in str(caught.value)  # the key never reaches the message


@pytest.mark.parametrize("length", [0, 15])
def test_ciphertext_shorter_than_the_tag_is_refused(length: int) -> None:
    with pytest.raises(DecryptionError, match="shorter than its 16-byte tag"):
        aead_decrypt(KEY, NONCE, VECTOR_TAG[:length], b"")


@pytest.mark.parametrize(("key", "nonce"), [(KEY[:-1], NONCE), (KEY + b"\x00", NONCE)])
def test_key_length_is_checked(key: bytes, nonce: bytes) -> None:
    for function in (aead_encrypt, aead_decrypt):
        with pytest.raises(ValueError, match=f"key is exactly {DATA_KEY_BYTES} bytes"):
            function(key, nonce, b"x" * 16, b"")


@pytest.mark.parametrize("nonce", [NONCE[:12], NONCE + b"\x00"])
def test_nonce_length_is_checked(nonce: bytes) -> None:
    for function in (aead_encrypt, aead_decrypt):
        with pytest.raises(ValueError, match=f"nonce is exactly {NONCE_BYTES} bytes"):
            function(KEY, nonce, b"x" * 16, b"")


@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=512), aad=st.binary(max_size=64))
def test_aead_round_trip(plaintext: bytes, aad: bytes) -> None:
    sealed = aead_encrypt(KEY, NONCE, plaintext, aad)
    assert len(sealed) == len(plaintext) + 16
    assert aead_decrypt(KEY, NONCE, sealed, aad) == plaintext


def test_sealed_box_round_trip_to_a_did() -> None:
    message = b"data key for record 42"
    sealed = seal_to(ALICE.did, message)
    assert len(sealed) == len(message) + 48  # ephemeral public key (32) + Poly1305 tag (16)
    assert open_sealed(ALICE, sealed) == message


def test_sealed_box_of_empty_message_opens() -> None:
    assert open_sealed(BOB, seal_to(BOB.did, b"")) == b""


def test_two_seals_of_one_message_differ() -> None:
    first, second = seal_to(ALICE.did, b"same"), seal_to(ALICE.did, b"same")
    assert first != second
    assert first[:32] != second[:32]  # a fresh ephemeral public key each time
    assert open_sealed(ALICE, first) == open_sealed(ALICE, second) == b"same"


def test_sealed_box_does_not_open_with_another_key() -> None:
    with pytest.raises(DecryptionError, match="does not open") as caught:
        open_sealed(BOB, seal_to(ALICE.did, b"for alice only"))
    assert caught.value.context["recipient"] == BOB.did
    assert BOB.seed.hex() not in str(caught.value)


@pytest.mark.parametrize("index", [0, 31, 32, 47, 48, -1])
def test_sealed_box_with_a_flipped_byte_does_not_open(index: int) -> None:
    changed = bytearray(seal_to(ALICE.did, b"patient consent"))
    changed[index] ^= 0x01
    with pytest.raises(DecryptionError):
        open_sealed(ALICE, bytes(changed))


def test_truncated_sealed_box_does_not_open() -> None:
    with pytest.raises(DecryptionError):
        open_sealed(ALICE, seal_to(ALICE.did, b"abc")[:47])


@pytest.mark.parametrize("did", ["", "did:web:example.com", ALICE.did + "#key-1", ALICE.did[:-1]])
def test_seal_to_an_invalid_did_is_refused(did: str) -> None:
    with pytest.raises(InvalidDIDError):
        seal_to(did, b"message")


def _x25519_base_point_mult(scalar: bytes) -> bytes:
    """RFC 7748 §5 X25519(k, 9) in pure Python: independent of libsodium, for a cross-check."""
    p, a24 = 2**255 - 19, 121665
    k = int.from_bytes(scalar, "little")
    k = (k & ~7 & ~(1 << 255)) | (1 << 254)  # clamp
    x1, x2, z2, x3, z3, swap = 9, 1, 0, 9, 1, 0
    for t in reversed(range(255)):
        bit = (k >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % p, (x2 - z2) % p
        aa, bb = a * a % p, b * b % p
        e = (aa - bb) % p
        c, d = (x3 + z3) % p, (x3 - z3) % p
        da, cb = d * a % p, c * b % p
        x3, z3 = (da + cb) ** 2 % p, x1 * (da - cb) ** 2 % p
        x2, z2 = aa * bb % p, e * (aa + a24 * e) % p
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, p - 2, p) % p).to_bytes(32, "little")


@pytest.mark.parametrize("key", [ALICE, BOB, SigningKey.from_seed(b"\xff" * 32)])
def test_x25519_key_from_did_is_the_public_half_of_the_private_key(key: SigningKey) -> None:
    derived = x25519_public_key_from_did(key.did)
    assert _x25519_base_point_mult(key.x25519_private_key()) == derived
