"""The records events the service signs: one CloudEvent per change or access, on `records.events`.

`source` is ``careledger:records:<chain_id>``; `subject` is the record id (record and access
events) or the consent id (consent events), so the events about one record or one consent keep
their order on one Kafka partition. No `data` member ever holds content or a patient's DID.
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


@dataclass(frozen=True, slots=True)
class RecordsEvent:
    """A signed records event: the event, and its (source, id, type) for API answers."""

    event: dict[str, object]
    event_id: str
    type: str
    source: str

    def reference(self) -> dict[str, str]:
        """What an API answer carries, so a client can fetch the event's inclusion proof."""
        return {"source": self.source, "id": self.event_id, "type": self.type}


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
    event_type = _TYPES[type(data)]
    payload: dict[str, Any] = data.model_dump(mode="json", exclude_none=True)
    RECORDS_SCHEMAS[event_type].model_validate(payload)  # what a reader of the chain expects
    source = records_source(chain_id)
    event = build_event(
        source=source,
        type=event_type,
        id=event_id,
        time=format_timestamp(time),
        subject=subject,
        data=payload,
    )
    return RecordsEvent(sign_event(event, key), event_id, event_type, source)
