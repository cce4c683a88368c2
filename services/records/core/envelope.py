"""The encrypted envelope of a record version: its associated data, commitment and signature.

A version's content is the RFC 8785 bytes of its FHIR resource, encrypted with
XChaCha20-Poly1305 under the record's data key; the associated data binds the ciphertext to
(record id, version), so a ciphertext moved to another record or version does not open. The
commitment is BLAKE2b-256 keyed by the record's salt (personalised, so it can never equal
another BLAKE2b use of the same key). The service signs the envelope (sealed boxes do not
authenticate their sender), so a client holding a wrapped key can check who wrote what it
decrypts. Layout and algorithms: docs/records-api.md.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.canonical import canonicalize
from shared.crypto import SigningKey, b64url_encode, verify_signature

__all__ = [
    "COMMITMENT_PERSON",
    "SALT_BYTES",
    "Envelope",
    "associated_data",
    "ciphertext_hash",
    "commitment_matches",
    "envelope_document",
    "record_commitment",
    "sign_envelope",
    "verify_envelope",
]

SALT_BYTES: Final = 32
#: BLAKE2b personalisation of record commitments (16 bytes).
COMMITMENT_PERSON: Final = b"careledger.rec.1"
_ENVELOPE_VERSION: Final = 1


def associated_data(record_id: str, version: int) -> bytes:
    """The AEAD associated data of a version: RFC 8785 of {"record", "version"}."""
    return canonicalize({"record": record_id, "version": version})


def record_commitment(salt: bytes, content: bytes) -> str:
    """Hex BLAKE2b-256 of `content` keyed by the record's 32-byte salt."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"a commitment salt is {SALT_BYTES} bytes")
    return hashlib.blake2b(content, digest_size=32, key=salt, person=COMMITMENT_PERSON).hexdigest()


def commitment_matches(salt: bytes, content: bytes, expected: str) -> bool:
    """Whether `content` opens the commitment `expected` (constant-time comparison)."""
    return hmac.compare_digest(record_commitment(salt, content), expected)


def ciphertext_hash(ciphertext: bytes) -> str:
    """Hex SHA-256 of a stored ciphertext (what `RecordCreated.ciphertext` carries)."""
    return hashlib.sha256(ciphertext).hexdigest()


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the service signs for each version: everything but the ciphertext itself, which
    the signature covers through its hash."""

    record_id: str
    version: int
    resource_type: str
    author: str
    patient: str
    nonce: str  # base64url
    ciphertext_hash: str
    commitment: str

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Envelope:
        """The envelope an API answer shows (`envelope_document`), for a client to verify."""
        return cls(
            record_id=str(document["record"]),
            version=int(document["version"]),
            resource_type=str(document["resource_type"]),
            author=str(document["author"]),
            patient=str(document["patient"]),
            nonce=str(document["nonce"]),
            ciphertext_hash=str(document["ciphertext"]),
            commitment=str(document["commitment"]),
        )

    def signed_members(self) -> dict[str, Any]:
        return {
            "v": _ENVELOPE_VERSION,
            "record": self.record_id,
            "version": self.version,
            "resource_type": self.resource_type,
            "author": self.author,
            "patient": self.patient,
            "nonce": self.nonce,
            "ciphertext": self.ciphertext_hash,
            "commitment": self.commitment,
        }


def sign_envelope(envelope: Envelope, key: SigningKey) -> str:
    """The service's base64url Ed25519 signature over RFC 8785 of the envelope's members."""
    return b64url_encode(key.sign(canonicalize(envelope.signed_members())))


def verify_envelope(envelope: Envelope, signature: bytes, signer: str) -> None:
    """Raise `SignatureError` unless `signer` signed this envelope."""
    verify_signature(signer, canonicalize(envelope.signed_members()), signature)


def envelope_document(envelope: Envelope, signature: str, signer: str) -> Mapping[str, Any]:
    """The envelope as the API shows it, with its signature and signer."""
    return {**envelope.signed_members(), "signature": signature, "signer": signer}
