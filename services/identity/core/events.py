"""The identity events the service signs: one CloudEvent per change, on `identity.events`.

`source` is ``careledger:identity:<chain_id>`` (one per chain, documented in
docs/identity-api.md); `subject` is the DID the change is about, or the patient's
pseudonym, so every change to one subject keeps its order on one Kafka partition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from shared.block import format_timestamp
from shared.crypto import SigningKey
from shared.envelope import build_event, sign_event
from shared.events import EventData
from shared.events.identity import (
    AUTHORITY_REGISTERED,
    IDENTITY_SCHEMAS,
    PATIENT_REGISTERED,
    PRACTITIONER_REGISTERED,
    PRACTITIONER_REVOKED,
    PUBLISHER_REGISTERED,
    PUBLISHER_REVOKED,
    AuthorityRegistered,
    PatientRegistered,
    PractitionerRegistered,
    PractitionerRevoked,
    PublisherRegistered,
    PublisherRevoked,
)

__all__ = ["CHANGE_KINDS", "IdentityChange", "change_kind", "identity_source", "sign_change"]

_TYPES: Final[Mapping[type[EventData], str]] = {
    AuthorityRegistered: AUTHORITY_REGISTERED,
    PublisherRegistered: PUBLISHER_REGISTERED,
    PublisherRevoked: PUBLISHER_REVOKED,
    PractitionerRegistered: PRACTITIONER_REGISTERED,
    PractitionerRevoked: PRACTITIONER_REVOKED,
    PatientRegistered: PATIENT_REGISTERED,
}
#: The `kind` label of `careledger_identity_changes_total`, by event type.
CHANGE_KINDS: Final[Mapping[str, str]] = {
    AUTHORITY_REGISTERED: "authority_registered",
    PUBLISHER_REGISTERED: "publisher_registered",
    PUBLISHER_REVOKED: "publisher_revoked",
    PRACTITIONER_REGISTERED: "practitioner_registered",
    PRACTITIONER_REVOKED: "practitioner_revoked",
    PATIENT_REGISTERED: "patient_registered",
}


def identity_source(chain_id: str) -> str:
    """The `source` of every event the identity service of chain `chain_id` signs."""
    return f"careledger:identity:{chain_id}"


def change_kind(event_type: str) -> str:
    """The metric label of an identity event type."""
    return CHANGE_KINDS[event_type]


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """A signed identity event and what the service's journal keeps of it."""

    event: dict[str, object]
    event_id: str
    type: str
    subject: str
    data: Mapping[str, Any]


def sign_change(
    data: EventData,
    *,
    subject: str,
    key: SigningKey,
    chain_id: str,
    event_id: str,
    time: datetime,
) -> IdentityChange:
    """The signed event for `data`; its type follows from the data's schema."""
    event_type = _TYPES[type(data)]
    payload = data.model_dump(mode="json", exclude_none=True)
    IDENTITY_SCHEMAS[event_type].model_validate(payload)  # what admission will check
    event = build_event(
        source=identity_source(chain_id),
        type=event_type,
        id=event_id,
        time=_event_time(time),
        subject=subject,
        data=payload,
    )
    return IdentityChange(
        event=sign_event(event, key),
        event_id=event_id,
        type=event_type,
        subject=subject,
        data=payload,
    )


def _event_time(moment: datetime) -> str:
    # The envelope wants RFC 3339 UTC with 'Z'; milliseconds are plenty for an API event.
    return format_timestamp(moment)
