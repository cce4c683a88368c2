"""`careledger publish`: complete, sign and produce one CloudEvent (the brief's conventions)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from shared.crypto import SigningKey
from shared.envelope import (
    CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    build_event,
    encode_event,
    kafka_key,
    sign_event,
    uuid7,
)
from shared.errors import CareLedgerError
from shared.kafka import KafkaSettings


class PublishError(CareLedgerError):
    """The event could not be built or was not acknowledged by the broker."""


@dataclass(frozen=True, slots=True)
class Delivery:
    topic: str
    partition: int
    offset: int
    source: str
    id: str


def complete_event(
    partial: Mapping[str, Any], *, key: SigningKey, default_source: str
) -> dict[str, Any]:
    """Fill `id` (UUIDv7), `time` (now, UTC) and `source` where missing, then sign."""
    unknown = set(partial) - {"type", "data", "subject", "source", "id", "time"}
    if unknown:
        raise PublishError(f"unexpected members {sorted(unknown)}; signer and signature are ours")
    if "type" not in partial or "data" not in partial:
        raise PublishError("the event needs at least `type` and `data`")
    now = datetime.now(UTC)
    event = build_event(
        source=str(partial.get("source", default_source)),
        type=str(partial["type"]),
        id=str(partial.get("id") or uuid7(int(now.timestamp() * 1000), os.urandom(10))),
        time=str(partial.get("time") or now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
        data=partial["data"],
        subject=partial.get("subject"),
    )
    return sign_event(event, key)


def produce_event(
    kafka: KafkaSettings, topic: str, event: Mapping[str, Any], *, timeout: float = 15.0
) -> Delivery:
    """Produce with key = subject (or id) and the CloudEvents content-type header; wait for ack."""
    value = encode_event(event)
    key = kafka_key(event).encode("utf-8")
    outcome: list[Message] = []
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(error)
        else:
            outcome.append(message)

    producer = Producer(kafka.producer_config(**{"message.timeout.ms": int(timeout * 1000)}))
    producer.produce(
        topic,
        value=value,
        key=key,
        headers=[(CONTENT_TYPE_HEADER, CONTENT_TYPE.encode())],
        on_delivery=delivered,
    )
    producer.flush(timeout + 1)
    if failures or not outcome:
        reason = failures[0].str() if failures else "no delivery report"
        raise PublishError(f"not acknowledged by {kafka.bootstrap_servers}: {reason}")
    message = outcome[0]
    return Delivery(
        topic=str(message.topic()),
        partition=int(message.partition() or 0),
        offset=int(message.offset() or 0),
        source=str(event["source"]),
        id=str(event["id"]),
    )
