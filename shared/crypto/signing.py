"""Ed25519 signing keys and signature verification (RFC 8032, pure Ed25519), named by did:key.

Keys are only ever made from a 32-byte seed handed in by the caller: this module draws no
randomness, so the imperative shell decides where seeds come from (os.urandom, a key file).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Final

from nacl.bindings import crypto_sign_ed25519_sk_to_curve25519
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey as _NaclSigningKey
from nacl.signing import VerifyKey

from shared.crypto.did import InvalidDIDError, did_from_public_key, public_key_from_did
from shared.errors import VerificationError

__all__ = [
    "SEED_BYTES",
    "SIGNATURE_BYTES",
    "SignatureError",
    "SigningKey",
    "verify_signature",
]

SEED_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
# Bounded so a flood of distinct signers cannot grow memory without limit.
_VERIFY_KEY_CACHE_SIZE: Final = 65_536


class SignatureError(VerificationError):
    """An Ed25519 signature does not verify. Evidence: the signer DID and the SHA-256 of the
    message, never the message itself (it may be large, and is the caller's to log)."""


@dataclass(frozen=True, slots=True, repr=False)
class SigningKey:
    """An Ed25519 private key, from its 32-byte seed. Equal when the seeds are equal.

    The repr names only the DID, so a key that ends up in a log or traceback leaks nothing.
    """

    seed: bytes
    public_key: bytes = field(init=False, compare=False)
    did: str = field(init=False, compare=False)
    _signer: _NaclSigningKey = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, bytes) or len(self.seed) != SEED_BYTES:
            raise ValueError(f"an Ed25519 seed is exactly {SEED_BYTES} bytes")
        signer = _NaclSigningKey(self.seed)
        public_key = bytes(signer.verify_key)
        # Frozen dataclass: the derived members are set once, here.
        object.__setattr__(self, "_signer", signer)
        object.__setattr__(self, "public_key", public_key)
        object.__setattr__(self, "did", did_from_public_key(public_key))

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key for a 32-byte seed (raises `ValueError` for any other length)."""
        return cls(seed)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `message`."""
        return bytes(self._signer.sign(message).signature)

    def x25519_private_key(self) -> bytes:
        """The X25519 private key matching `x25519_public_key_from_did(self.did)`."""
        return bytes(crypto_sign_ed25519_sk_to_curve25519(self.seed + self.public_key))

    def __repr__(self) -> str:
        return f"SigningKey(did={self.did!r})"


def verify_signature(did: str, message: bytes, signature: bytes) -> None:
    """Check that `signature` is the Ed25519 signature of `message` by the key `did` names;
    raise `SignatureError` (with the signer and the message's SHA-256) otherwise."""
    if len(signature) != SIGNATURE_BYTES:
        raise _signature_error(
            f"an Ed25519 signature has {SIGNATURE_BYTES} bytes, not {len(signature)}", did, message
        )
    try:
        key = _verify_key(did)
    except InvalidDIDError as exc:
        raise _signature_error(f"the signer is not a valid did:key: {exc}", did, message) from exc
    try:
        key.verify(message, signature)
    except BadSignatureError as exc:
        raise _signature_error("the Ed25519 signature does not verify", did, message) from exc


@functools.lru_cache(maxsize=_VERIFY_KEY_CACHE_SIZE)
def _verify_key(did: str) -> VerifyKey:
    return VerifyKey(public_key_from_did(did))


def _signature_error(message: str, did: str, signed: bytes) -> SignatureError:
    return SignatureError(message, signer=did, message_sha256=hashlib.sha256(signed).hexdigest())
