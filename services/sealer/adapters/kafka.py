"""The sealer's Kafka adapters (confluent-kafka): the input topics and the ledger's topics.

The consumer uses `assign()` with explicit start offsets, never a group subscription: the
store says where to resume, and a group join is slow on the embedded broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as KafkaPartition

from services.sealer.errors import TransientError
from services.sealer.ports import SourceMessage
from shared.block import PartitionKey
from shared.kafka import KafkaSettings
from shared.kafka.consume import consume_available
from shared.topics import INPUT_TOPICS, LEDGER_BLOCKS, LEDGER_REJECTED, TopicNames

log = logging.getLogger(__name__)

#: A block holds up to max_bytes of events plus its header; room for the JSON around them.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_CONSUMER_OVERRIDES: dict[str, Any] = {
    "enable.partition.eof": False,
    "fetch.message.max.bytes": MAX_MESSAGE_BYTES,
}


class KafkaEventSource:
    """`EventSource`: every partition of the four input topics, assigned explicitly."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        topics: TopicNames,
        group_id: str,
        statistics: Callable[[str], None] | None = None,
    ) -> None:
        self._kafka = kafka
        self._topics = topics
        self._group_id = group_id
        self._statistics = statistics  # librdkafka's stats_cb: consumer lag
        self._consumer: Any = None

    def open(self, positions: Mapping[PartitionKey, int]) -> None:
        self.close()
        consumer = Consumer(
            self._kafka.consumer_config(
                self._group_id, statistics=self._statistics, **_CONSUMER_OVERRIDES
            )
        )
        try:
            metadata = consumer.list_topics(timeout=5.0)
            assignment = []
            for logical in INPUT_TOPICS:
                physical = self._topics.physical(logical)
                topic = metadata.topics.get(physical)
                if topic is None or topic.error is not None or not topic.partitions:
                    raise TransientError(f"input topic {physical} does not exist (yet)")
                for partition in sorted(topic.partitions):
                    start = positions.get((logical, partition), OFFSET_BEGINNING)
                    assignment.append(KafkaPartition(physical, partition, start))
            consumer.assign(assignment)
        except KafkaException as exc:
            consumer.close()
            raise TransientError(f"cannot read the input topics: {exc}") from exc
        except BaseException:
            consumer.close()
            raise
        self._consumer = consumer
        log.info("input partitions assigned", extra={"partitions": len(assignment)})

    def poll(self, *, max_messages: int, timeout: float) -> list[SourceMessage]:
        if self._consumer is None:
            raise TransientError("the input topics are not open")
        try:
            messages = consume_available(self._consumer, max_messages=max_messages, timeout=timeout)
        except KafkaException as exc:
            raise TransientError(f"consume failed: {exc}") from exc
        out = []
        for message in messages:
            error = message.error()
            if error is not None:
                # Errors carry no record: the consumer keeps its position and fetches again.
                log.warning("consumer error", extra={"code": error.name()})
                continue
            out.append(
                SourceMessage(
                    topic=self._topics.logical(message.topic()),
                    partition=message.partition(),
                    offset=message.offset(),
                    value=message.value() or b"",
                )
            )
        return out

    def commit(self, positions: Mapping[PartitionKey, int]) -> None:
        if self._consumer is None or not positions:
            return
        offsets = [
            KafkaPartition(self._topics.physical(topic), partition, offset)
            for (topic, partition), offset in sorted(positions.items())
        ]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            raise TransientError(f"commit failed: {exc}") from exc

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()


class KafkaLedgerPublisher:
    """`LedgerPublisher` on one idempotent producer: blocks wait for their delivery report;
    rejections are delivered by `flush`, and re-sent there if a delivery failed."""

    def __init__(
        self,
        *,
        kafka: KafkaSettings,
        topics: TopicNames,
        producer_factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        self._producer = producer_factory(
            kafka.producer_config(**{"message.max.bytes": MAX_MESSAGE_BYTES})
        )
        self._blocks = topics.physical(LEDGER_BLOCKS)
        self._rejected = topics.physical(LEDGER_REJECTED)
        self._failed_rejections: list[bytes] = []
        self._closed = False

    def publish_block(self, height: int, value: bytes, *, timeout: float) -> None:
        outcome: list[KafkaError | None] = []

        def report(error: KafkaError | None, _message: object) -> None:
            outcome.append(error)

        self._produce(self._blocks, str(height).encode("ascii"), value, report)
        deadline = time.monotonic() + timeout
        while not outcome and time.monotonic() < deadline:
            self._producer.poll(0.05)
        if not outcome:
            raise TransientError(f"block {height}: no delivery report within {timeout} s")
        if outcome[0] is not None:
            raise TransientError(f"block {height} not delivered: {outcome[0].name()}")

    def publish_rejection(self, value: bytes) -> None:
        def report(error: KafkaError | None, _message: object) -> None:
            if error is not None:
                self._failed_rejections.append(value)

        self._produce(self._rejected, None, value, report)

    def flush(self, *, timeout: float) -> None:
        left = self._producer.flush(timeout)
        if self._failed_rejections:
            again, self._failed_rejections = self._failed_rejections, []
            for value in again:
                self.publish_rejection(value)
            raise TransientError(f"{len(again)} rejection records not delivered; sent again")
        if left:
            raise TransientError(f"{left} records not delivered within {timeout} s")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            left = self._producer.flush(5.0)
            if left:
                log.warning("producer closed with undelivered records", extra={"count": left})

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        report: Callable[[KafkaError | None, object], None],
    ) -> None:
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=report)
                return
            except BufferError:
                self._producer.poll(0.1)  # the local queue is full: let deliveries drain
            except KafkaException as exc:
                raise TransientError(f"produce to {topic} failed: {exc}") from exc
