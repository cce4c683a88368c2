"""Outbox messages: a CloudEvent as Kafka key, value and headers (BRIEF: Kafka contract)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from shared.canonical import CanonicalizationError
from shared.envelope import CONTENT_TYPE, CONTENT_TYPE_HEADER, encode_event, kafka_key
from shared.errors import CareLedgerError

CLOUDEVENTS_JSON = CONTENT_TYPE.encode()

__all__ = [
    "CLOUDEVENTS_JSON",
    "CONTENT_TYPE_HEADER",
    "DuplicateEventError",
    "InvalidEventError",
    "OutboxEntry",
    "OutboxMessage",
    "message_for_event",
]


class InvalidEventError(CareLedgerError, ValueError):
    """The event cannot become an outbox message (no source/id, not JSON-serialisable)."""


class DuplicateEventError(CareLedgerError):
    """The outbox already holds an event with this (source, id): adding it again is a bug."""

    def __init__(self, *dedup_keys: tuple[str, str]) -> None:
        ids = ", ".join(repr(event_id) for _, event_id in dedup_keys)
        super().__init__(f"the outbox already holds event id {ids}")
        #: The offending keys; when the database cannot say which one it was, every key
        #: of the batch.
        self.dedup_keys = dedup_keys


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxMessage:
    """One Kafka record to publish, exactly as it will be produced.

    `topic` is the logical topic name (the relay applies the deployment prefix); `value`
    is final bytes, never re-encoded; `dedup_key` is the event's (source, id).
    """

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    dedup_key: tuple[str, str]

    def __post_init__(self) -> None:
        if not self.topic:
            raise ValueError("an outbox message needs a topic")
        if not isinstance(self.value, bytes) or not (
            self.key is None or isinstance(self.key, bytes)
        ):
            raise TypeError("key and value must be bytes")
        if any(not isinstance(n, str) or not isinstance(v, bytes) for n, v in self.headers):
            raise TypeError("headers must be (str, bytes) pairs")
        source, event_id = self.dedup_key
        if not source or not event_id:
            raise ValueError("dedup_key needs a non-empty (source, id)")


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxEntry:
    """A stored message: `seq` orders publication; `created_at` is when it was committed (UTC)."""

    seq: int
    message: OutboxMessage
    created_at: datetime


def message_for_event(event: Mapping[str, object], *, topic: str) -> OutboxMessage:
    """The outbox message for a CloudEvent, by the brief's Kafka conventions.

    value = the event's RFC 8785 bytes (`shared.envelope.encode_event`, so the value is
    exactly the Merkle leaf input); key = `subject`, or `id` when there is no subject;
    header `content-type: application/cloudevents+json`.
    """
    source = _required(event, "source")
    event_id = _required(event, "id")
    subject = event.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise InvalidEventError("event subject must be a string")
    try:
        value = encode_event(event)
    except CanonicalizationError as exc:
        raise InvalidEventError(f"event id={event_id!r} is not JSON: {exc}") from exc
    return OutboxMessage(
        topic=topic,
        key=kafka_key(event).encode("utf-8"),
        value=value,
        headers=((CONTENT_TYPE_HEADER, CLOUDEVENTS_JSON),),
        dedup_key=(source, event_id),
    )


def _required(event: Mapping[str, object], member: str) -> str:
    value = event.get(member)
    if not isinstance(value, str) or not value:
        raise InvalidEventError(f"event has no {member!r}: (source, id) is its de-duplication key")
    return value
