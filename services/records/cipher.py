"""The records service's cryptography: encrypting versions, wrapping and unwrapping data keys.

One data key per record (32 random bytes), one random 24-byte nonce per version, the
associated data binding (record, version). The data key exists only sealed: to the service
itself (custody, so it can check integrity on read and wrap keys for consent grants), and to
the patient, the author and each grantee (so they can decrypt without trusting the service).
Randomness comes in as `random_bytes`, so tests can make it deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.records.core.envelope import (
    SALT_BYTES,
    Envelope,
    associated_data,
    ciphertext_hash,
    commitment_matches,
    record_commitment,
    sign_envelope,
)
from services.records.core.model import RecordHead, RecordVersion, WrappedKey
from services.records.errors import IntegrityError
from shared.canonical import canonicalize
from shared.crypto import (
    DATA_KEY_BYTES,
    NONCE_BYTES,
    DecryptionError,
    SigningKey,
    aead_decrypt,
    aead_encrypt,
    b64url_encode,
    open_sealed,
    seal_to,
)

__all__ = ["RecordCipher", "SealedVersion"]


@dataclass(frozen=True, slots=True)
class SealedVersion:
    """An encrypted version ready to store, and the envelope the service signed for it."""

    version: RecordVersion
    envelope: Envelope


class RecordCipher:
    """Encrypts and decrypts record versions with the service's key as custodian."""

    def __init__(self, *, key: SigningKey, random_bytes: Callable[[int], bytes]) -> None:
        self._key = key
        self._random = random_bytes

    @property
    def custodian(self) -> str:
        return self._key.did

    def new_keys(self) -> tuple[bytes, bytes, bytes]:
        """(data key, its custody seal, commitment salt) for a new record."""
        data_key = self._random(DATA_KEY_BYTES)
        return data_key, seal_to(self._key.did, data_key), self._random(SALT_BYTES)

    def data_key(self, head: RecordHead) -> bytes:
        """The record's data key, from its custody seal."""
        if head.custody_key is None:
            raise IntegrityError("the record's data key is gone (erased)")
        try:
            return open_sealed(self._key, head.custody_key)
        except DecryptionError as exc:
            raise IntegrityError("the record's custody key does not open") from exc

    def encrypt(
        self,
        resource: Mapping[str, Any],
        *,
        data_key: bytes,
        salt: bytes,
        head: RecordHead,
        version: int,
        author: str,
        created_at: datetime,
        event_id: str,
    ) -> SealedVersion:
        """Encrypt `resource` as version `version` of `head`'s record and sign its envelope."""
        content = canonicalize(resource)
        nonce = self._random(NONCE_BYTES)
        ciphertext = aead_encrypt(
            data_key, nonce, content, associated_data(head.record_id, version)
        )
        envelope = Envelope(
            record_id=head.record_id,
            version=version,
            resource_type=head.resource_type,
            author=author,
            patient=head.patient,
            nonce=b64url_encode(nonce),
            ciphertext_hash=ciphertext_hash(ciphertext),
            commitment=record_commitment(salt, content),
        )
        stored = RecordVersion(
            record_id=head.record_id,
            version=version,
            author=author,
            created_at=created_at,
            nonce=nonce,
            ciphertext=ciphertext,
            ciphertext_hash=envelope.ciphertext_hash,
            commitment=envelope.commitment,
            envelope_signature=sign_envelope(envelope, self._key),
            event_id=event_id,
        )
        return SealedVersion(stored, envelope)

    def decrypt(self, head: RecordHead, version: RecordVersion, *, commitment: str) -> bytes:
        """The canonical content of `version`, checked against the ciphertext hash and the
        commitment `commitment` (the chain's, once sealed). `IntegrityError` if anything
        does not match: a record that fails its check is never served."""
        if version.ciphertext is None or version.nonce is None or head.salt is None:
            raise IntegrityError("the record's ciphertext is gone (erased)")
        if ciphertext_hash(version.ciphertext) != version.ciphertext_hash:
            raise IntegrityError("the stored ciphertext does not match its hash")
        try:
            content = aead_decrypt(
                self.data_key(head),
                version.nonce,
                version.ciphertext,
                associated_data(head.record_id, version.version),
            )
        except DecryptionError as exc:
            raise IntegrityError("the stored ciphertext does not decrypt") from exc
        if not commitment_matches(head.salt, content, commitment):
            raise IntegrityError("the decrypted content does not match its commitment")
        return content

    def seal_note(self, text: str) -> bytes:
        """Free text (a break-glass reason) sealed to the service, for the patient's eyes."""
        return seal_to(self._key.did, text.encode("utf-8"))

    def open_note(self, sealed: bytes) -> str:
        try:
            return open_sealed(self._key, sealed).decode("utf-8")
        except DecryptionError as exc:
            raise IntegrityError("a sealed note does not open") from exc

    def wraps(
        self,
        head: RecordHead,
        recipients: Iterable[str],
        *,
        data_key: bytes | None = None,
        consent_id: str | None = None,
    ) -> list[WrappedKey]:
        """The record's data key sealed to each recipient DID."""
        key = self.data_key(head) if data_key is None else data_key
        return [
            WrappedKey(head.record_id, did, seal_to(did, key), consent_id)
            for did in dict.fromkeys(recipients)
        ]
