"""AEAD_XChaCha20_Poly1305 (draft-irtf-cfrg-xchacha) and libsodium sealed boxes to a did:key."""

from __future__ import annotations

from typing import Final

from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from shared.crypto.did import x25519_public_key_from_did
from shared.crypto.signing import SigningKey
from shared.errors import VerificationError

__all__ = [
    "DATA_KEY_BYTES",
    "NONCE_BYTES",
    "DecryptionError",
    "aead_decrypt",
    "aead_encrypt",
    "open_sealed",
    "seal_to",
]

DATA_KEY_BYTES: Final = 32
NONCE_BYTES: Final = 24
_TAG_BYTES: Final = 16


class DecryptionError(VerificationError):
    """An AEAD tag does not verify or a sealed box does not open. The message says which; it
    never carries key bytes (nor plaintext: there is none to give)."""


def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """XChaCha20-Poly1305 (IETF, libsodium ``crypto_aead_xchacha20poly1305_ietf_encrypt``):
    the ciphertext followed by the 16-byte Poly1305 tag.

    The caller draws the 24-byte nonce (this module draws no randomness for the AEAD); a nonce
    must never repeat under one key. 192 bits are enough for the caller to draw it at random.
    """
    _check_lengths(key, nonce)
    return bytes(crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, associated_data, nonce, key))


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, associated_data: bytes) -> bytes:
    """The plaintext of `aead_encrypt`'s output; raise `DecryptionError` if the tag does not
    verify (wrong key, nonce or associated data, or any changed byte)."""
    _check_lengths(key, nonce)
    if len(ciphertext) < _TAG_BYTES:
        # PyNaCl 1.5/1.6 fails on these with a bare ValueError from cffi, not CryptoError.
        raise DecryptionError(
            f"the XChaCha20-Poly1305 ciphertext is shorter than its {_TAG_BYTES}-byte tag",
            ciphertext_bytes=len(ciphertext),
        )
    try:
        return bytes(
            crypto_aead_xchacha20poly1305_ietf_decrypt(ciphertext, associated_data, nonce, key)
        )
    except CryptoError as exc:
        # libsodium cannot tell which input was wrong, so neither can we.
        raise DecryptionError(
            "the XChaCha20-Poly1305 tag does not verify (wrong key, nonce or associated data, "
            "or the ciphertext was changed)",
            ciphertext_bytes=len(ciphertext),
        ) from exc


def seal_to(did: str, message: bytes) -> bytes:
    """An anonymous sealed box (libsodium ``crypto_box_seal``) of `message` to the X25519 key
    derived from the Ed25519 key `did` names; raise `InvalidDIDError` for a bad DID.

    libsodium draws a fresh ephemeral X25519 key pair inside ``crypto_box_seal`` for every
    call, so sealing the same message twice gives different boxes, and the sender is anonymous.
    """
    recipient = PublicKey(x25519_public_key_from_did(did))
    return bytes(SealedBox(recipient).encrypt(message))


def open_sealed(key: SigningKey, sealed: bytes) -> bytes:
    """Open a sealed box addressed to `key`'s DID (with the X25519 key pair derived from it);
    raise `DecryptionError` if it was sealed to another key or was changed."""
    private_key = PrivateKey(key.x25519_private_key())
    try:
        return bytes(SealedBox(private_key).decrypt(sealed))
    except CryptoError as exc:
        raise DecryptionError(
            "the sealed box does not open with this key (sealed to another DID, or changed)",
            recipient=key.did,
            sealed_bytes=len(sealed),
        ) from exc


def _check_lengths(key: bytes, nonce: bytes) -> None:
    # Checked here so a wrong length is a ValueError naming the rule, not a libsodium error.
    if len(key) != DATA_KEY_BYTES:
        raise ValueError(f"an XChaCha20-Poly1305 key is exactly {DATA_KEY_BYTES} bytes")
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"an XChaCha20-Poly1305 nonce is exactly {NONCE_BYTES} bytes")
