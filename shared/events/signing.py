"""Signing a service's own events: the `data` checked against its family's schema, the
CloudEvent built with the service's `source`, signed by the service's key.

Each service declares which schema class is which event type (`types`) and its family's
schemas; `sign_service_event` is the one way they become signed events, so what a reader of
the chain expects (the schema) is checked before anything is signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.block import format_timestamp
from shared.crypto import SigningKey
from shared.envelope import build_event, sign_event
from shared.events import EventData

__all__ = ["SignedEvent", "sign_service_event"]


@dataclass(frozen=True, slots=True)
class SignedEvent:
    """A signed service event: the event, and its (source, id, type) for API answers."""

    event: dict[str, object]
    event_id: str
    type: str
    source: str

    def reference(self) -> dict[str, str]:
        """What an API answer carries, so a client can fetch the event's inclusion proof."""
        return {"source": self.source, "id": self.event_id, "type": self.type}


def sign_service_event(
    data: EventData,
    *,
    types: Mapping[type[EventData], str],
    schemas: Mapping[str, type[EventData]],
    source: str,
    subject: str,
    key: SigningKey,
    event_id: str,
    time: datetime,
) -> SignedEvent:
    """The signed event for `data`; its type follows from the data's class (`types`)."""
    event_type = types[type(data)]
    payload: dict[str, Any] = data.model_dump(mode="json", exclude_none=True)
    schemas[event_type].model_validate(payload)  # what a reader of the chain expects
    event = build_event(
        source=source,
        type=event_type,
        id=event_id,
        time=format_timestamp(time),
        subject=subject,
        data=payload,
    )
    return SignedEvent(sign_event(event, key), event_id, event_type, source)
