"""Identity events (topic `identity.events`, signed by the identity service): the registry family.

The sealed events of this family, together with genesis, are the whole signer registry that
admission reads (`shared.admission`): who is a publisher, a trusted licensing authority or a
licensed practitioner, with what rights, and since or until which block. Patients appear only
as a keyed pseudonym: their DID never reaches the chain, so they never enter the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Final, Self

from pydantic import Field, StrictStr, model_validator

from shared.events import DidKey, EventData, HexDigest, Timestamp, TypePattern, parse_timestamp
from shared.topics import INPUT_TOPICS

__all__ = [
    "AUTHORITY_REGISTERED",
    "IDENTITY_SCHEMAS",
    "IDENTITY_TYPE_PREFIX",
    "PATIENT_REGISTERED",
    "PRACTITIONER_REGISTERED",
    "PRACTITIONER_REVOKED",
    "PUBLISHER_REGISTERED",
    "PUBLISHER_REVOKED",
    "AuthorityRegistered",
    "PatientRegistered",
    "PractitionerRegistered",
    "PractitionerRevoked",
    "PublisherGrant",
    "PublisherRegistered",
    "PublisherRevoked",
]

IDENTITY_TYPE_PREFIX: Final = "org.careledger.identity."
PUBLISHER_REGISTERED: Final = "org.careledger.identity.publisher.registered.v1"
PUBLISHER_REVOKED: Final = "org.careledger.identity.publisher.revoked.v1"
AUTHORITY_REGISTERED: Final = "org.careledger.identity.authority.registered.v1"
PRACTITIONER_REGISTERED: Final = "org.careledger.identity.practitioner.registered.v1"
PRACTITIONER_REVOKED: Final = "org.careledger.identity.practitioner.revoked.v1"
PATIENT_REGISTERED: Final = "org.careledger.identity.patient.registered.v1"

_Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class PublisherGrant(EventData):
    """A platform's key may publish these types (exact, or a prefix ending in ``.*`` such as
    ``org.careledger.clinical.*``) on this input topic: in genesis, and in every
    `PublisherRegistered` event, so a grant means the same in either place."""

    did: DidKey
    name: _Name
    topic: StrictStr
    types: tuple[TypePattern, ...] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _topic_is_an_input_topic(self) -> Self:
        if self.topic not in INPUT_TOPICS:
            raise ValueError(f"topic {self.topic!r} is not one of {', '.join(INPUT_TOPICS)}")
        return self


class PublisherRegistered(PublisherGrant):
    """The admin authorised a platform's key to publish these types on this topic.

    Registering a DID again replaces its grant; a revoked publisher DID stays revoked (the
    revocation is of the key: a platform that rotates keys registers its new DID).
    """


class PublisherRevoked(EventData):
    """The admin revoked a publisher's key: none of its later events is sealed."""

    did: DidKey


class AuthorityRegistered(EventData):
    """The admin added a licensing authority whose practitioner credentials are trusted."""

    did: DidKey
    name: _Name


class PractitionerRegistered(EventData):
    """A verified license credential made a DID a practitioner, within the credential's window.

    `credential` is the hex SHA-256 of the credential's RFC 8785 bytes: it names the exact
    credential (for its revocation) without putting the credential on the chain.
    """

    did: DidKey
    issuer: DidKey
    credential: HexDigest
    role: _Name
    valid_from: Timestamp
    valid_until: Timestamp | None = None

    @model_validator(mode="after")
    def _window_is_not_empty(self) -> Self:
        if self.valid_until is not None and parse_timestamp(self.valid_until) < parse_timestamp(
            self.valid_from
        ):
            raise ValueError("valid_until is earlier than valid_from")
        return self


class PractitionerRevoked(EventData):
    """The issuing authority revoked a practitioner credential (named by its digest)."""

    did: DidKey
    issuer: DidKey
    credential: HexDigest


class PatientRegistered(EventData):
    """A patient registered; the chain holds only their keyed pseudonym (an HMAC-SHA-256)."""

    pseudonym: HexDigest


#: The `data` schema of every identity event type: admission refuses (as `malformed`) an event
#: of one of these types whose `data` does not validate, whoever signed it.
IDENTITY_SCHEMAS: Final[Mapping[str, type[EventData]]] = MappingProxyType(
    {
        PUBLISHER_REGISTERED: PublisherRegistered,
        PUBLISHER_REVOKED: PublisherRevoked,
        AUTHORITY_REGISTERED: AuthorityRegistered,
        PRACTITIONER_REGISTERED: PractitionerRegistered,
        PRACTITIONER_REVOKED: PractitionerRevoked,
        PATIENT_REGISTERED: PatientRegistered,
    }
)
