"""did:key identifiers for Ed25519 keys (W3C CCG did:key method v0.7): multicodec
``ed25519-pub`` (0xed, varint ``0xed 0x01``) + the 32-byte key, multibase base58btc.

Also derives the X25519 key-agreement key the did:key method defines for an Ed25519 DID (the
birational map from the Edwards to the Montgomery curve, RFC 7748 §4.1).
"""

from __future__ import annotations

import functools
from typing import Final

from nacl.bindings import crypto_core_ed25519_is_valid_point, crypto_sign_ed25519_pk_to_curve25519

from shared.crypto.encoding import (
    EncodingError,
    base58btc_multibase_decode,
    base58btc_multibase_encode,
)
from shared.errors import CareLedgerError

__all__ = [
    "DID_KEY_PREFIX",
    "ED25519_MULTICODEC",
    "InvalidDIDError",
    "did_from_public_key",
    "public_key_from_did",
    "x25519_public_key_from_did",
]

DID_KEY_PREFIX: Final = "did:key:"
ED25519_MULTICODEC: Final = b"\xed\x01"
_PUBLIC_KEY_BYTES: Final = 32
# Validators see few signers and many events: remember decoded DIDs (each ~50 µs to check).
_DID_CACHE_SIZE: Final = 65_536

# Encodings of the points of order 1, 2, 4 and 8 of edwards25519, and of y = p and y = p + 1
# (non-canonical spellings of the small-order y = 0 and y = 1), with the sign bit (bit 255)
# cleared: it does not change whether a point has small order. A key of small order makes a
# signature that verifies for every message under some verifiers; libsodium keeps the same list.
_SMALL_ORDER_ENCODINGS: Final = frozenset(
    bytes.fromhex(value)
    for value in (
        "0000000000000000000000000000000000000000000000000000000000000000",  # y=0, order 4
        "0100000000000000000000000000000000000000000000000000000000000000",  # y=1, identity
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y=p-1, order 2
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y=p (=0)
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y=p+1 (=1)
    )
)


class InvalidDIDError(CareLedgerError):
    """A string is not a did:key naming a valid Ed25519 public key."""


def did_from_public_key(public_key: bytes) -> str:
    """Return the did:key of a 32-byte Ed25519 public key (refusing keys no DID may name)."""
    _check_public_key(public_key, subject=f"public key {public_key.hex()}")
    return DID_KEY_PREFIX + base58btc_multibase_encode(ED25519_MULTICODEC + public_key)


def public_key_from_did(did: str) -> bytes:
    """Return the 32-byte Ed25519 public key a did:key names; raise `InvalidDIDError` saying
    what is wrong. Only the bare DID is accepted: no fragment, path, query or parameters."""
    if not isinstance(did, str):
        raise InvalidDIDError(f"a DID is a string, not {type(did).__name__}")
    return _decode_did(did)


@functools.lru_cache(maxsize=_DID_CACHE_SIZE)
def _decode_did(did: str) -> bytes:
    if not did.startswith(DID_KEY_PREFIX):
        raise InvalidDIDError(f"{_shown(did)} is not a did:key (must start with 'did:key:')")
    identifier = did[len(DID_KEY_PREFIX) :]
    for separator, part in (("#", "a fragment"), ("?", "a query"), ("/", "a path"), (":", "")):
        if separator in identifier:
            what = part or "extra ':'-separated parts"
            raise InvalidDIDError(f"{_shown(did)} has {what}; only the bare did:key is accepted")
    try:
        decoded = base58btc_multibase_decode(identifier)
    except EncodingError as exc:
        raise InvalidDIDError(f"{_shown(did)} is not a multibase base58btc did:key: {exc}") from exc
    if decoded[: len(ED25519_MULTICODEC)] != ED25519_MULTICODEC:
        raise InvalidDIDError(
            f"{_shown(did)} does not name an Ed25519 key: multicodec prefix "
            f"{decoded[:2].hex()} is not ed01 (ed25519-pub)"
        )
    public_key = decoded[len(ED25519_MULTICODEC) :]
    _check_public_key(public_key, subject=_shown(did))
    return public_key


def x25519_public_key_from_did(did: str) -> bytes:
    """Return the X25519 public key derived from the Ed25519 key a did:key names."""
    return bytes(crypto_sign_ed25519_pk_to_curve25519(public_key_from_did(did)))


def _check_public_key(public_key: bytes, *, subject: str) -> None:
    if len(public_key) != _PUBLIC_KEY_BYTES:
        raise InvalidDIDError(
            f"{subject}: an Ed25519 public key has {_PUBLIC_KEY_BYTES} bytes, not {len(public_key)}"
        )
    if public_key[:31] + bytes([public_key[31] & 0x7F]) in _SMALL_ORDER_ENCODINGS:
        raise InvalidDIDError(f"{subject}: the Ed25519 key is a small-order point")
    # Also refuses non-canonical encodings, points off the curve and points with a torsion
    # component: an honest key (seed -> scalar x base point) is never any of these.
    if not crypto_core_ed25519_is_valid_point(public_key):
        raise InvalidDIDError(
            f"{subject}: the Ed25519 key is not a canonical point of the prime-order subgroup"
        )


def _shown(did: object) -> str:
    """A DID for an error message: quoted and cut short (error text may end up in logs)."""
    text = repr(did)
    return text if len(text) <= 80 else text[:77] + "..."
