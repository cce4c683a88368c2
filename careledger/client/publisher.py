"""Publishing signed CloudEvents to Kafka with confluent-kafka (BRIEF: Kafka contract).

Kafka value = the event's RFC 8785 bytes (so it is exactly the Merkle leaf input), key =
`subject` or `id`, header `content-type: application/cloudevents+json`. The producer is
idempotent with acks=all (`shared.kafka.KafkaSettings.producer_config`), and `publish`
returns only once the broker acknowledged the write; otherwise it raises `PublishError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from careledger.client.closing import Closing
from careledger.client.errors import ClientConfigError, PublishError
from careledger.client.event import (
    check_signed_event,
    check_topic,
    event_from_partial,
    signed_event,
)
from shared.crypto import SigningKey
from shared.envelope import CONTENT_TYPE, CONTENT_TYPE_HEADER, encode_event, kafka_key
from shared.errors import CareLedgerError
from shared.kafka import KafkaSettings
from shared.keystore import read_key_file
from shared.sources import utc_now
from shared.topics import CLINICAL_EVENTS, TopicNames

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "Delivery",
    "EventProducer",
    "Publisher",
    "complete_event",
    "produce_event",
]

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
#: Builds the producer from a librdkafka configuration; tests may pass another.
ProducerFactory = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where the broker acknowledged the event, and its de-duplication key `(source, id)`."""

    topic: str
    partition: int
    offset: int
    source: str
    id: str


class EventProducer:
    """One idempotent producer that sends already signed events and waits for each ack."""

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        timeout: float = 15.0,
        producer_factory: ProducerFactory = Producer,
    ) -> None:
        self._kafka = kafka
        self._timeout = timeout
        self._producer = producer_factory(
            kafka.producer_config(**{"message.timeout.ms": int(timeout * 1000)})
        )

    def send(self, physical_topic: str, event: Mapping[str, Any]) -> Delivery:
        """Produce `event` to `physical_topic` and wait for the broker's acknowledgement."""
        outcome: list[Message] = []
        failures: list[KafkaError] = []

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failures.append(error)
            else:
                outcome.append(message)

        try:
            self._producer.produce(
                physical_topic,
                value=encode_event(event),
                key=kafka_key(event).encode("utf-8"),
                headers=[(CONTENT_TYPE_HEADER, CONTENT_TYPE.encode())],
                on_delivery=delivered,
            )
        except (KafkaException, BufferError) as exc:
            raise PublishError(f"cannot produce to {physical_topic}: {exc}") from exc
        self._producer.flush(self._timeout + 1)
        if failures or not outcome:
            reason = failures[0].str() if failures else "no delivery report"
            raise PublishError(f"not acknowledged by {self._kafka.bootstrap_servers}: {reason}")
        message = outcome[0]
        return Delivery(
            topic=str(message.topic()),
            partition=int(message.partition() or 0),
            offset=int(message.offset() or 0),
            source=str(event["source"]),
            id=str(event["id"]),
        )

    def close(self) -> None:
        """Deliver anything still queued (at most the timeout)."""
        self._producer.flush(self._timeout)


class Publisher(Closing):
    """Signs events with one key and publishes them to one input topic.

    >>> with Publisher.from_key_file("data/keys/publisher-demo.json",
    ...                              source="https://videoconsult.example/app") as client:
    ...     delivery = client.publish(type="org.careledger.clinical.note.signed.v1",
    ...                               data={"encounter": "enc-1"}, subject="enc-1")

    Nothing is produced unless the event is one admission could seal structurally (members,
    size, signature); every refusal is an `EventBuildError`, a missing ack a `PublishError`.
    """

    def __init__(
        self,
        *,
        key: SigningKey,
        source: str,
        kafka: KafkaSettings | None = None,
        topic: str = CLINICAL_EVENTS,
        topic_prefix: str = "",
        timeout: float = 15.0,
        clock: Callable[[], datetime] = utc_now,
        entropy: Callable[[int], bytes] = os.urandom,
        producer_factory: ProducerFactory = Producer,
    ) -> None:
        self._key = key
        self._source = source
        self._topic = check_topic(topic)
        self._physical = TopicNames(topic_prefix).physical(topic)
        self._clock = clock
        self._entropy = entropy
        self._producer = EventProducer(
            kafka or KafkaSettings(bootstrap_servers=DEFAULT_BOOTSTRAP),
            timeout=timeout,
            producer_factory=producer_factory,
        )

    @classmethod
    def from_key_file(
        cls,
        path: str | Path,
        *,
        source: str | None = None,
        bootstrap_servers: str = DEFAULT_BOOTSTRAP,
        **options: Any,
    ) -> Publisher:
        """A publisher signing with the key file at `path` (`{"did", "private_key"}`); the
        default `source` is ``urn:careledger:client:<file stem>``."""
        path = Path(path)
        try:
            key = read_key_file(path)
        except CareLedgerError as exc:
            raise ClientConfigError(str(exc)) from exc
        return cls(
            key=key,
            source=source or f"urn:careledger:client:{path.stem}",
            kafka=KafkaSettings(bootstrap_servers=bootstrap_servers),
            **options,
        )

    @property
    def key(self) -> SigningKey:
        """The signing key (e.g. for an `IngestClient`'s bearer tokens)."""
        return self._key

    @property
    def did(self) -> str:
        """The signer: this publisher's did:key."""
        return self._key.did

    @property
    def source(self) -> str:
        """The default `source` of the events this publisher builds."""
        return self._source

    def event(
        self,
        *,
        type: str,
        data: Mapping[str, Any],
        subject: str | None = None,
        id: str | None = None,
        time: str | None = None,
        source: str | None = None,
    ) -> dict[str, object]:
        """A signed event, not published (for the HTTP ingest, or to publish later)."""
        return signed_event(
            self._key,
            type=type,
            data=data,
            source=source or self._source,
            subject=subject,
            id=id,
            time=time,
            now=self._clock(),
            entropy=self._entropy(10),
        )

    def publish(
        self,
        *,
        type: str,
        data: Mapping[str, Any],
        subject: str | None = None,
        id: str | None = None,
        time: str | None = None,
        source: str | None = None,
    ) -> Delivery:
        """Build, sign and publish one event; returns once the broker acknowledged it."""
        event = self.event(type=type, data=data, subject=subject, id=id, time=time, source=source)
        return self._producer.send(self._physical, event)

    def publish_event(self, event: Mapping[str, Any]) -> Delivery:
        """Publish an event signed already (by any key): parsed and its signature checked
        first, so a broken event is refused here (`EventBuildError`), not by admission."""
        check_signed_event(event)
        return self._producer.send(self._physical, event)

    def close(self) -> None:
        self._producer.close()


def complete_event(
    partial: Mapping[str, Any], *, key: SigningKey, default_source: str
) -> dict[str, object]:
    """`careledger publish`'s event: `event_from_partial` with the real clock and entropy."""
    return event_from_partial(
        partial, key=key, default_source=default_source, now=utc_now(), entropy=os.urandom(10)
    )


def produce_event(
    kafka: KafkaSettings, topic: str, event: Mapping[str, Any], *, timeout: float = 15.0
) -> Delivery:
    """Produce one signed event to the physical `topic` on a producer of its own; wait for
    the ack (tests and the CLI; a long-lived `Publisher` is cheaper for many events)."""
    producer = EventProducer(kafka, timeout=timeout)
    try:
        return producer.send(topic, event)
    finally:
        producer.close()
