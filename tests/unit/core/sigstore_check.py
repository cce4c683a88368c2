"""Checks of our checkpoints and inclusion proofs by sigstore-python's own code (its signed-note
and checkpoint parser, its keyring's Ed25519 verification, its RFC 6962 inclusion chaining),
so that a test does not grade our output with our code. Key hashes are computed here from the
C2SP formula, not by `shared.checkpoint`."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sigstore._internal import merkle
from sigstore._internal.rekor.checkpoint import LogCheckpoint, SignedCheckpoint
from sigstore._internal.trust import Keyring
from sigstore._utils import KeyID
from sigstore_models.common.v1 import PublicKey, PublicKeyDetails


def c2sp_key_hash(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n\x01" + public_key).digest()[:4]


def verify_with_sigstore(note: str, name: str, public_key: bytes) -> LogCheckpoint:
    """Parse `note` with sigstore and verify the line of key `name` (raises sigstore's
    `VerificationError` when the line is missing or does not verify)."""
    der = Ed25519PublicKey.from_public_bytes(public_key).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyring = Keyring(
        [PublicKey(raw_bytes=base64.b64encode(der), key_details=PublicKeyDetails.PKIX_ED25519)]
    )
    signed = SignedCheckpoint.from_text(note)
    signed.signed_note.verify(keyring, KeyID(c2sp_key_hash(name, public_key)))
    return signed.checkpoint


def inclusion_root_by_sigstore(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """The root an RFC 6962 audit path gives, chained by sigstore's merkle module."""
    inner, border = merkle._decomp_inclusion_proof(index, size)
    if len(path) != inner + border:
        raise AssertionError(f"path of {len(path)} hashes, sigstore expects {inner + border}")
    seed = merkle._chain_inner(leaf, path[:inner], index)
    return merkle._chain_border_right(seed, path[inner:])
