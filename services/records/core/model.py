"""What the records service keeps: encrypted record versions, wrapped keys, consents, accesses.

Plain values; the ports store them and the core decides with them. Nothing here holds a
resource in clear: content exists only as `RecordVersion.ciphertext`, under a data key that
exists only sealed (`RecordHead.custody_key`, `WrappedKey.sealed_key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.events.records import AccessAction, AccessOutcome, ActorRole, Purpose

__all__ = [
    "AccessEntry",
    "Consent",
    "Erasure",
    "Practitioner",
    "RecordHead",
    "RecordVersion",
    "SealedMark",
    "WrappedKey",
]


@dataclass(frozen=True, slots=True)
class Erasure:
    """When and by whom a record was crypto-shredded, and the `RecordErased` event's id."""

    at: datetime
    by: ActorRole
    event_id: str


@dataclass(frozen=True, slots=True)
class RecordHead:
    """One record across its versions.

    `custody_key` is the record's data key sealed to the records service's own X25519 key
    (the service is the custodian: it checks integrity on read and wraps keys for grants);
    `salt` keys the content commitment. Both are None once the record is erased.
    """

    record_id: str
    patient: str  # the patient's pseudonym: the store never holds the patient's DID
    author: str  # the DID of the practitioner who created it
    resource_type: str
    version: int  # the latest version
    created_at: datetime
    custody_key: bytes | None
    salt: bytes | None
    erasure: Erasure | None = None

    @property
    def erased(self) -> bool:
        return self.erasure is not None


@dataclass(frozen=True, slots=True)
class RecordVersion:
    """One immutable version: XChaCha20-Poly1305 ciphertext of the canonical resource.

    The associated data binds it to (record_id, version). `envelope_signature` is the
    service's Ed25519 signature over the envelope (`core.envelope`): sealed boxes do not
    authenticate their sender, so the signature does. `nonce` and `ciphertext` are None once
    the record is erased; the hashes stay (they are on the chain anyway).
    """

    record_id: str
    version: int
    author: str
    created_at: datetime
    nonce: bytes | None
    ciphertext: bytes | None
    ciphertext_hash: str
    commitment: str
    envelope_signature: str
    event_id: str


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A record's data key sealed to one recipient's X25519 key (their did:key's)."""

    record_id: str
    recipient: str  # a DID
    sealed_key: bytes
    consent_id: str | None = None  # set when a consent grant wrapped it


@dataclass(frozen=True, slots=True)
class Consent:
    """A patient's grant to `grantee`: these resource types (empty: all) for `purpose`."""

    consent_id: str
    patient: str  # pseudonym
    grantee: str  # DID
    resource_types: tuple[str, ...]
    purpose: Purpose
    expires: datetime
    granted_at: datetime
    event_id: str
    revoked_at: datetime | None = None
    revoke_event_id: str | None = None

    def covers(self, resource_type: str) -> bool:
        return not self.resource_types or resource_type in self.resource_types

    def in_force(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """One audited access, as the patient's accounting of disclosures lists it.

    `actor` is None when the patient acted. `reason_sealed` is a break-glass reason sealed to
    the records service (free text may hold PHI, so it never leaves the store in clear and
    never reaches the chain).
    """

    event_id: str
    at: datetime
    patient: str
    action: AccessAction
    outcome: AccessOutcome
    purpose: Purpose
    role: ActorRole
    actor: str | None = None
    record_id: str | None = None
    version: int | None = None
    consent_id: str | None = None
    reason_sealed: bytes | None = None


@dataclass(frozen=True, slots=True)
class Practitioner:
    """A practitioner as sealed identity events describe them: the licence credential in
    force (its issuer and digest), its window, and block heights (`since`, `revoked`)."""

    did: str
    since: int
    issuer: str
    credential: str
    valid_from: datetime
    valid_until: datetime | None
    revoked: int | None = None

    def active(self, now: datetime) -> bool:
        return (
            self.revoked is None
            and self.valid_from <= now
            and (self.valid_until is None or now <= self.valid_until)
        )


@dataclass(frozen=True, slots=True)
class SealedMark:
    """One of the service's own events as sealed: its height, and for a record version the
    commitment the chain holds (what a read is checked against)."""

    event_id: str
    height: int
    commitment: str | None = None
