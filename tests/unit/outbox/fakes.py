"""Fakes for relay tests: a producer that reports deliveries on command, recording metrics."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError

from shared.outbox import OutboxEntry, OutboxStore


@dataclass(frozen=True)
class Produced:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class FakeProducer:
    """Queues produced messages and reports on them in poll(), as librdkafka does.

    `hold` withholds reports (a broker that does not answer); `fail_next` makes the next
    reports failures (message timed out).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.produced: list[Produced] = []
        self.hold = False
        self.fail_next = 0
        self.closed = False
        self.purged = 0
        self._queue: list[Callable[[KafkaError | None], None]] = []
        self._lock = threading.Lock()

    def produce(
        self,
        topic: str,
        *,
        value: bytes,
        key: bytes | None,
        headers: list[tuple[str, bytes]],
        on_delivery: Callable[[KafkaError | None, object], None],
    ) -> None:
        with self._lock:
            self.produced.append(Produced(topic, key, value, headers))
            self._queue.append(lambda err: on_delivery(err, None))

    def poll(self, timeout: float) -> int:
        with self._lock:
            if self.hold or not self._queue:
                ready: list[Callable[[KafkaError | None], None]] = []
            else:
                ready, self._queue = self._queue, []
            failing, self.fail_next = (
                min(self.fail_next, len(ready)),
                self.fail_next - min(self.fail_next, len(ready)),
            )
        if not ready:
            time.sleep(min(timeout, 0.005))
            return 0
        for n, report in enumerate(ready):
            report(KafkaError(KafkaError._MSG_TIMED_OUT) if n < failing else None)
        return len(ready)

    def purge(self, *, in_queue: bool, in_flight: bool, blocking: bool) -> None:
        with self._lock:
            dropped, self._queue = self._queue, []
        self.purged += len(dropped)
        for report in dropped:
            report(KafkaError(KafkaError._PURGE_QUEUE))

    def close(self) -> None:
        self.closed = True

    def raise_fatal(self) -> None:
        self.config["error_cb"](KafkaError(KafkaError._FATAL, "fenced", fatal=True))

    def values(self) -> list[bytes]:
        with self._lock:
            return [p.value for p in self.produced]


class FakeProducers:
    """A producer factory that remembers what it built."""

    def __init__(self) -> None:
        self.built: list[FakeProducer] = []

    def __call__(self, config: dict[str, Any]) -> FakeProducer:
        self.built.append(FakeProducer(config))
        return self.built[-1]

    @property
    def current(self) -> FakeProducer:
        return self.built[-1]


@dataclass
class RecordingMetrics:
    """OutboxMetrics that keeps everything it is told."""

    published_total: Counter[str] = field(default_factory=Counter)
    failed_total: Counter[str] = field(default_factory=Counter)
    pending_seen: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def published(self, topic: str, count: int) -> None:
        self.published_total[topic] += count

    def failed(self, topic: str, count: int) -> None:
        self.failed_total[topic] += count

    def pending(self, count: int) -> None:
        self.pending_seen.append(count)

    def delivery_latency(self, topic: str, seconds: float) -> None:
        self.latencies.append(seconds)


class FlakyMarking:
    """An OutboxStore whose mark_sent fails while `broken` is set: a relay that crashed
    after delivery and before recording it, or a database that went away."""

    def __init__(self, store: OutboxStore) -> None:
        self._store = store
        self.broken = True
        self.attempts = 0

    def pending(self, limit: int) -> Sequence[OutboxEntry]:
        return self._store.pending(limit)

    def mark_sent(self, seqs: Sequence[int]) -> None:
        self.attempts += 1
        if self.broken:
            raise ConnectionError("database went away")
        self._store.mark_sent(seqs)

    def pending_count(self) -> int:
        return self._store.pending_count()


def wait_until(condition: Callable[[], bool], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.005)
