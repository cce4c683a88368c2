"""The validation loop with a fake consumer: offsets, consumer errors, retries, rewinds."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING

from services.validator.adapters.kafka import KafkaAttestationPublisher, ValidationLoop
from services.validator.errors import MissingBlocksError
from shared.kafka import KafkaSettings
from shared.runtime.component import NotReadyError


@dataclass
class FakeMessage:
    _topic: str
    _offset: int
    _value: bytes | None = b"x"
    _error: Any = None

    def topic(self) -> str:
        return self._topic

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def error(self) -> Any:
        return self._error


@dataclass
class FakeConsumer:
    batches: list[list[FakeMessage]]
    assigned: list[Any] = field(default_factory=list)
    seeks: list[Any] = field(default_factory=list)
    stored: list[tuple[str, int]] = field(default_factory=list)
    closed: bool = False

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = partitions

    fetched: list[FakeMessage] = field(default_factory=list)

    def poll(self, timeout: float) -> FakeMessage | None:
        if not self.fetched and self.batches:
            self.fetched = self.batches.pop(0)
        if self.fetched:
            return self.fetched.pop(0)
        time.sleep(0.01)
        return None

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        taken, self.fetched = self.fetched[:num_messages], self.fetched[num_messages:]
        return taken

    def seek(self, partition: Any) -> None:
        self.seeks.append(partition)

    def store_offsets(self, message: FakeMessage) -> None:
        self.stored.append((message.topic(), message.offset()))

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeProducer:
    def produce(self, *args: Any, **kwargs: Any) -> None: ...

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


@dataclass
class ScriptedValidator:
    """Fails as told, then records what it was given."""

    failures: dict[tuple[str, int], list[Exception]]
    seen: list[tuple[str, int]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    expect: int = 0

    restore_failures: int = 0

    def restore(self) -> None:
        if self.restore_failures:
            self.restore_failures -= 1
            raise OSError("store not there yet")

    def check_store(self) -> None: ...

    def audit(self) -> None: ...

    def reattest_recent(self) -> int:
        return 0

    def _apply(self, kind: str, offset: int) -> None:
        pending = self.failures.get((kind, offset))
        if pending:
            raise pending.pop(0)
        self.seen.append((kind, offset))
        if len(self.seen) >= self.expect:
            self.done.set()

    def receive_block(self, raw: bytes, *, offset: int | None = None) -> None:
        self._apply("block", offset or 0)

    def receive_attestation(self, raw: bytes, *, offset: int | None = None) -> None:
        self._apply("attestation", offset or 0)


class Cursors:
    def __init__(self, blocks: int | None, attestations: int | None) -> None:
        self._cursors = {"ledger.blocks": blocks, "ledger.attestations": attestations}

    def cursor(self, topic: str) -> int | None:
        return self._cursors[topic]


def _loop(validator: ScriptedValidator, consumer: FakeConsumer, store: Any) -> ValidationLoop:
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1")

    def factory(_config: dict[str, Any]) -> FakeProducer:
        return FakeProducer()

    return ValidationLoop(
        validator=validator,  # duck-typed: the loop calls only these methods
        store=store,
        publisher=KafkaAttestationPublisher(kafka=kafka, topic="a", producer_factory=factory),
        kafka=kafka,
        blocks_topic="b",
        attestations_topic="a",
        group_id="careledger-validator-1",
        consumer_factory=lambda _config: consumer,
    )


def test_it_resumes_after_the_stored_offsets_and_retries_a_failing_store() -> None:
    consumer = FakeConsumer(
        [
            [
                FakeMessage("b", 8),
                FakeMessage("b", 9, _error="broker hiccup"),
                FakeMessage("a", 3),
            ]
        ]
    )
    validator = ScriptedValidator({("block", 8): [OSError("db down"), OSError("still")]}, expect=2)
    loop = _loop(validator, consumer, Cursors(blocks=7, attestations=None))
    loop.start()
    try:
        assert validator.done.wait(5)
        loop.check()
    finally:
        loop.stop()
    assert [(p.topic, p.offset) for p in consumer.assigned] == [("b", 8), ("a", OFFSET_BEGINNING)]
    assert validator.seen == [("block", 8), ("attestation", 3)]
    # Stored in librdkafka (for its lag statistics) once applied, never before.
    assert consumer.stored == [("b", 8), ("a", 3)]
    assert consumer.closed


def test_missing_blocks_rewind_the_blocks_topic_and_skip_the_rest_of_the_batch() -> None:
    consumer = FakeConsumer(
        [
            [FakeMessage("b", 5), FakeMessage("b", 6), FakeMessage("a", 1)],
            [FakeMessage("b", 0)],
        ]
    )
    gap = MissingBlocksError("ahead", expected=3, computed=5)
    validator = ScriptedValidator({("block", 5): [gap]}, expect=2)
    loop = _loop(validator, consumer, Cursors(blocks=4, attestations=0))
    loop.start()
    try:
        assert validator.done.wait(5)
    finally:
        loop.stop()
    assert [(p.topic, p.offset) for p in consumer.seeks] == [("b", OFFSET_BEGINNING)]
    assert validator.seen == [("attestation", 1), ("block", 0)]
    assert consumer.stored == [("a", 1), ("b", 0)]  # not the block that was ahead


def test_it_is_not_ready_while_a_message_keeps_failing() -> None:
    consumer = FakeConsumer([[FakeMessage("b", 0)]])
    validator = ScriptedValidator({("block", 0): [OSError("down")] * 1000})
    loop = _loop(validator, consumer, Cursors(blocks=None, attestations=None))
    loop.start()
    try:
        deadline = time.monotonic() + 5
        while not _failing(loop):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(NotReadyError, match="OSError"):
            loop.check()
    finally:
        loop.stop()
    with pytest.raises(NotReadyError, match="not running"):
        loop.check()


def _failing(loop: ValidationLoop) -> bool:
    try:
        loop.check()
    except NotReadyError:
        return True
    return False


def test_a_store_down_at_start_is_retried() -> None:
    consumer = FakeConsumer([[FakeMessage("b", 0)]])
    validator = ScriptedValidator({}, restore_failures=2, expect=1)
    loop = _loop(validator, consumer, Cursors(blocks=None, attestations=None))
    loop.start()
    try:
        assert validator.done.wait(5)
        loop.check()
    finally:
        loop.stop()
    assert validator.seen == [("block", 0)]
