"""The records events the service signs: one CloudEvent per change or access, on `records.events`.

`source` is ``careledger:records:<chain_id>``; `subject` is the record id (record and access
events) or the consent id (consent events), so the events about one record or one consent keep
their order on one Kafka partition. No `data` member ever holds content or a patient's DID.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from shared.crypto import SigningKey
from shared.events import EventData
from shared.events.records import (
    CONSENT_GRANTED,
    CONSENT_REVOKED,
    RECORD_ACCESSED,
    RECORD_CREATED,
    RECORD_ERASED,
    RECORD_UPDATED,
    RECORDS_SCHEMAS,
    ConsentGranted,
    ConsentRevoked,
    RecordAccessed,
    RecordCreated,
    RecordErased,
    RecordUpdated,
)
from shared.events.signing import SignedEvent, sign_service_event

__all__ = ["RecordsEvent", "records_source", "sign_records_event"]

_TYPES: Final[Mapping[type[EventData], str]] = {
    RecordCreated: RECORD_CREATED,
    RecordUpdated: RECORD_UPDATED,
    RecordErased: RECORD_ERASED,
    ConsentGranted: CONSENT_GRANTED,
    ConsentRevoked: CONSENT_REVOKED,
    RecordAccessed: RECORD_ACCESSED,
}


def records_source(chain_id: str) -> str:
    """The `source` of every event the records service of chain `chain_id` signs."""
    return f"careledger:records:{chain_id}"


#: A signed records event and its (source, id, type).
RecordsEvent = SignedEvent


def sign_records_event(
    data: EventData,
    *,
    subject: str,
    key: SigningKey,
    chain_id: str,
    event_id: str,
    time: datetime,
) -> RecordsEvent:
    """The signed event for `data`; its type follows from the data's schema."""
    return sign_service_event(
        data,
        types=_TYPES,
        schemas=RECORDS_SCHEMAS,
        source=records_source(chain_id),
        subject=subject,
        key=key,
        event_id=event_id,
        time=time,
    )
