"""Records events (topic `records.events`, signed by the records service): metadata, never content.

A record's content lives only encrypted in the records store. The chain learns that a record
version exists, who wrote it, for which patient pseudonym, and a keyed commitment to its
content; that consent was granted or revoked; and every access, allowed or denied. Patients
appear only as their keyed pseudonym (`shared.pseudonym`), never as a DID.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Final, Self

from pydantic import Field, StrictInt, StrictStr, model_validator

from shared.events import DidKey, EventData, HexDigest, Timestamp

__all__ = [
    "CONSENT_GRANTED",
    "CONSENT_REVOKED",
    "RECORDS_SCHEMAS",
    "RECORD_ACCESSED",
    "RECORD_CREATED",
    "RECORD_ERASED",
    "RECORD_UPDATED",
    "AccessAction",
    "AccessOutcome",
    "ActorRole",
    "ConsentGranted",
    "ConsentRevoked",
    "Purpose",
    "RecordAccessed",
    "RecordCreated",
    "RecordErased",
    "RecordUpdated",
]

RECORD_CREATED: Final = "org.careledger.records.record.created.v1"
RECORD_UPDATED: Final = "org.careledger.records.record.updated.v1"
RECORD_ERASED: Final = "org.careledger.records.record.erased.v1"
CONSENT_GRANTED: Final = "org.careledger.records.consent.granted.v1"
CONSENT_REVOKED: Final = "org.careledger.records.consent.revoked.v1"
RECORD_ACCESSED: Final = "org.careledger.records.record.accessed.v1"

#: Record and consent ids are UUIDs in their canonical lower-case spelling.
OpaqueId = Annotated[
    StrictStr,
    Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]
#: A FHIR resource type name (`Observation`), never anything from inside the resource.
ResourceType = Annotated[StrictStr, Field(pattern=r"^[A-Z][A-Za-z]{1,63}$")]


class Purpose(StrEnum):
    """Why a record is read or shared: codes of HL7 v3 PurposeOfUse."""

    TREATMENT = "TREAT"
    EMERGENCY_TREATMENT = "ETREAT"  # break-glass
    PAYMENT = "HPAYMT"
    OPERATIONS = "HOPERAT"
    PATIENT_REQUEST = "PATRQT"
    RESEARCH = "HRESCH"


class ActorRole(StrEnum):
    """In which capacity the actor of an access acted."""

    PATIENT = "patient"
    AUTHOR = "author"
    GRANTEE = "grantee"
    PRACTITIONER = "practitioner"
    ADMIN = "admin"
    OTHER = "other"


class AccessAction(StrEnum):
    """What was done: the FHIR AuditEvent idea, reduced to the actions of this service."""

    READ = "read"
    BREAK_GLASS = "break_glass"
    EXPORT = "export"
    CONSENT_GRANTED = "consent_granted"
    CONSENT_REVOKED = "consent_revoked"
    ERASE = "erase"


class AccessOutcome(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"


class _RecordVersion(EventData):
    """A version of an encrypted record, as the chain knows it.

    `commitment` is BLAKE2b-256 keyed by the record's secret salt over the RFC 8785 bytes of
    the resource: it binds the content without revealing it, and once the salt is destroyed
    (erasure) it can no longer be tested against a guess. `ciphertext` is the hex SHA-256 of
    the stored ciphertext, so a changed ciphertext is evident too.
    """

    record: OpaqueId
    version: StrictInt = Field(ge=1)
    resource_type: ResourceType
    author: DidKey
    patient: HexDigest
    commitment: HexDigest
    ciphertext: HexDigest


class RecordCreated(_RecordVersion):
    """A practitioner wrote a new record for a patient (version 1)."""

    @model_validator(mode="after")
    def _first_version(self) -> Self:
        if self.version != 1:
            raise ValueError("a created record is version 1")
        return self


class RecordUpdated(_RecordVersion):
    """A new version of a record; earlier versions stay (never overwritten)."""

    @model_validator(mode="after")
    def _later_version(self) -> Self:
        if self.version < 2:
            raise ValueError("an updated record is version 2 or later")
        return self


class RecordErased(EventData):
    """A record was crypto-shredded: its data key, wrapped keys and salt are destroyed."""

    record: OpaqueId
    patient: HexDigest
    versions: StrictInt = Field(ge=1)
    by: ActorRole


class ConsentGranted(EventData):
    """A patient let `grantee` read their records of these types (none listed: all types)
    for `purpose` until `expires`."""

    consent: OpaqueId
    patient: HexDigest
    grantee: DidKey
    resource_types: tuple[ResourceType, ...] = Field(default=(), max_length=64)
    purpose: Purpose
    expires: Timestamp


class ConsentRevoked(EventData):
    """A patient withdrew a consent; it stops applying at once."""

    consent: OpaqueId
    patient: HexDigest


class RecordAccessed(EventData):
    """One access to a patient's records, allowed or denied (an accounting of disclosures).

    `actor` is the DID of whoever acted, except the patient, who appears only through
    `patient` (their pseudonym) with `role` = patient. `record` names the record read,
    `consent` the consent changed; an export names neither.
    """

    patient: HexDigest
    action: AccessAction
    outcome: AccessOutcome
    purpose: Purpose
    role: ActorRole
    actor: DidKey | None = None
    record: OpaqueId | None = None
    version: StrictInt | None = Field(default=None, ge=1)
    consent: OpaqueId | None = None

    @model_validator(mode="after")
    def _patient_is_never_named(self) -> Self:
        if (self.role is ActorRole.PATIENT) != (self.actor is None):
            raise ValueError("the actor is named unless it is the patient, who never is")
        return self


#: The `data` schema of every records event type.
RECORDS_SCHEMAS: Final[Mapping[str, type[EventData]]] = MappingProxyType(
    {
        RECORD_CREATED: RecordCreated,
        RECORD_UPDATED: RecordUpdated,
        RECORD_ERASED: RecordErased,
        CONSENT_GRANTED: ConsentGranted,
        CONSENT_REVOKED: ConsentRevoked,
        RECORD_ACCESSED: RecordAccessed,
    }
)
