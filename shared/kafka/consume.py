"""Reading a batch without waiting for it to fill: the latency side of consuming in batches.

confluent-kafka's `Consumer.consume(num_messages=n, timeout=t)` returns only when `n`
messages are there or `t` has passed. A consumer that asks for batches of 200 while a block
or an attestation trickles in every few milliseconds therefore sits on what it already has
for the whole timeout, at every hop of the pipeline. `consume_available` waits at most
`timeout` for the *first* message, then takes only what is already fetched: batches still
form under load (the fetch queue is full), and a lone message is handled at once.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from confluent_kafka import KafkaException

__all__ = ["BatchConsumer", "consume_available", "store_position"]

log = logging.getLogger(__name__)


class BatchConsumer(Protocol):
    """The two calls of `confluent_kafka.Consumer` this module needs."""

    def poll(self, timeout: float) -> Any: ...

    def consume(self, num_messages: int, timeout: float) -> list[Any]: ...


def consume_available(consumer: BatchConsumer, *, max_messages: int, timeout: float) -> list[Any]:
    """Up to `max_messages` messages: wait at most `timeout` s for one, then add those ready."""
    if max_messages < 1:
        raise ValueError(f"max_messages must be at least 1, not {max_messages}")
    first = consumer.poll(timeout)
    if first is None:
        return []
    if max_messages == 1:
        return [first]
    return [first, *consumer.consume(num_messages=max_messages - 1, timeout=0)]


def store_position(consumer: Any, message: Any) -> None:
    """Tell librdkafka that `message` is done with (its effect is stored), so the lag in its
    statistics counts from there (`shared.kafka.lag`). Nothing is committed: positions live
    in the service's store. A refusal (the partition is no longer assigned) only leaves the
    lag behind, never the messages, so it is logged rather than raised."""
    try:
        consumer.store_offsets(message=message)
    except KafkaException as exc:
        log.debug("offset not stored for the lag statistics", extra={"error": str(exc)})
