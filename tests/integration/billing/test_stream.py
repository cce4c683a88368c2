"""The billing block stream (faust on `ledger.blocks`) against the real broker: every message
handled in order, offsets committed only after the handler returned, a failing handler
retried, a rewind read from the start, a fault stopping for good, readiness, prompt stop; and
the whole billing path (stream, chain reader, engine) on real sealed blocks, across restarts."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from services.billing.adapters.stream import (
    BlockStream,
    StreamMessage,
    StreamSettingsError,
)
from services.billing.following import Reading, Verdict
from shared.kafka import KafkaSettings, ensure_topics
from shared.runtime.component import NotReadyError
from shared.topics import LEDGER_BLOCKS, TopicNames, TopicSpec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PARTITIONS = 1  # as ledger.blocks has
DEADLINE = 15.0


class Recorder:
    """A handler that records what it saw; optionally fails or blocks on chosen messages."""

    def __init__(self, fail: Callable[[StreamMessage], bool] | None = None) -> None:
        self._lock = threading.Lock()
        self._fail = fail
        self.seen: list[StreamMessage] = []

    def __call__(self, message: StreamMessage) -> Reading:
        if self._fail is not None and self._fail(message):
            raise ConnectionError("database down")
        with self._lock:
            self.seen.append(message)
        return Reading(Verdict.APPLIED)

    def count(self) -> int:
        with self._lock:
            return len(self.seen)

    def values(self) -> list[bytes]:
        with self._lock:
            return [m.value or b"" for m in self.seen]


@pytest.fixture
def topics(kafka: KafkaSettings) -> TopicNames:
    names = TopicNames(prefix=f"b{uuid.uuid4().hex[:10]}.")
    ensure_topics(kafka, [TopicSpec(names.physical(LEDGER_BLOCKS), PARTITIONS)])
    return names


def produce(kafka: KafkaSettings, topics: TopicNames, n: int, *, start: int = 0) -> None:
    producer = Producer(kafka.producer_config())
    for i in range(start, start + n):
        producer.produce(
            topics.physical(LEDGER_BLOCKS),
            key=f"k{i % 7}".encode(),
            value=f"{i}".encode(),
            headers=[("ce_type", b"test")],
        )
    assert producer.flush(10) == 0


def stream(
    kafka: KafkaSettings,
    topics: TopicNames,
    handler: Callable[[StreamMessage], Reading],
    app_id: str,
    registry: CollectorRegistry | None = None,
) -> BlockStream:
    return BlockStream(
        kafka=kafka,
        topics=topics,
        handler=handler,
        app_id=app_id,
        registry=registry,
        initial_backoff=0.05,
        max_backoff=0.2,
        commit_interval=0.2,
        # A restarted member waits for the previous one's session to expire on Tansu
        # (generation 0 sends no LeaveGroup): short sessions keep restarts quick.
        session_timeout=3.0,
    )


@pytest.fixture
def app_id() -> str:
    return f"billing-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def started() -> Iterator[list[BlockStream]]:
    """Streams a test started; stopped at teardown whatever happened."""
    running: list[BlockStream] = []
    yield running
    for each in running:
        each.stop()


def wait_for(condition: Callable[[], bool], timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def is_ready(engine: BlockStream) -> bool:
    try:
        engine.check()
    except NotReadyError:
        return False
    return True


def per_partition(seen: list[StreamMessage]) -> dict[int, list[int]]:
    offsets: dict[int, list[int]] = {}
    for message in seen:
        offsets.setdefault(message.partition, []).append(message.offset)
    return offsets


def test_every_message_once_in_partition_order(
    kafka: KafkaSettings,
    topics: TopicNames,
    app_id: str,
    started: list[BlockStream],
) -> None:
    produce(kafka, topics, 300)
    recorder = Recorder()
    registry = CollectorRegistry()
    started.append(stream(kafka, topics, recorder, app_id, registry))
    started[0].start()
    wait_for(lambda: recorder.count() >= 300)
    time.sleep(0.3)  # nothing more arrives
    assert sorted(recorder.values(), key=int) == [f"{i}".encode() for i in range(300)]
    offsets = per_partition(recorder.seen)
    assert len(offsets) == PARTITIONS
    for partition_offsets in offsets.values():
        assert partition_offsets == list(range(len(partition_offsets)))
    first = recorder.seen[0]
    assert first.topic == topics.physical(LEDGER_BLOCKS)
    assert first.headers == (("ce_type", b"test"),)
    assert first.key is not None
    assert first.key.startswith(b"k")
    total = sum(
        registry.get_sample_value(
            "careledger_billing_stream_messages_handled_total", {"partition": str(p)}
        )
        or 0
        for p in range(PARTITIONS)
    )
    assert total == 300


def test_restart_resumes_from_committed_offsets(
    kafka: KafkaSettings,
    topics: TopicNames,
    app_id: str,
    started: list[BlockStream],
) -> None:
    produce(kafka, topics, 300)
    gate = threading.Event()
    handled_before = 120

    first_recorder = Recorder()

    def slow_after_k(message: StreamMessage) -> Reading:
        reading = first_recorder(message)
        if first_recorder.count() >= handled_before:
            gate.wait(0.05)  # slow down so the stop lands part-way
        return reading

    first = stream(kafka, topics, slow_after_k, app_id)
    started.append(first)
    first.start()
    wait_for(lambda: first_recorder.count() >= handled_before)
    first.stop()
    first_seen = first_recorder.count()
    assert first_seen < 300

    second_recorder = Recorder()
    second = stream(kafka, topics, second_recorder, app_id)
    started.append(second)
    second.start()
    both = lambda: {m.value for m in first_recorder.seen + second_recorder.seen}  # noqa: E731
    wait_for(lambda: len(both()) == 300)
    time.sleep(0.3)
    assert both() == {f"{i}".encode() for i in range(300)}
    # Committed offsets honoured: only the in-flight message of each partition may repeat.
    first_keys = {(m.partition, m.offset) for m in first_recorder.seen}
    again = [m for m in second_recorder.seen if (m.partition, m.offset) in first_keys]
    assert len(again) <= PARTITIONS, again
    assert second_recorder.count() <= 300 - first_seen + PARTITIONS


def test_failing_handler_is_retried_and_nothing_is_skipped(
    kafka: KafkaSettings,
    topics: TopicNames,
    app_id: str,
    started: list[BlockStream],
) -> None:
    produce(kafka, topics, 30)
    attempts: dict[bytes, int] = {}

    def fail_twice_on_10(message: StreamMessage) -> bool:
        if message.value != b"10":
            return False
        attempts[b"10"] = attempts.get(b"10", 0) + 1
        return attempts[b"10"] <= 2

    recorder = Recorder(fail=fail_twice_on_10)
    registry = CollectorRegistry()
    started.append(stream(kafka, topics, recorder, app_id, registry))
    started[0].start()
    wait_for(lambda: recorder.count() >= 30)
    time.sleep(0.3)
    assert sorted(recorder.values(), key=int) == [f"{i}".encode() for i in range(30)]
    assert attempts[b"10"] == 3
    failures = sum(
        registry.get_sample_value(
            "careledger_billing_stream_handler_failures_total", {"partition": str(p)}
        )
        or 0
        for p in range(PARTITIONS)
    )
    assert failures == 2
    for partition_offsets in per_partition(recorder.seen).values():
        assert partition_offsets == list(range(len(partition_offsets)))


def test_readiness_and_prompt_idempotent_stop(
    kafka: KafkaSettings,
    topics: TopicNames,
    app_id: str,
    started: list[BlockStream],
) -> None:
    engine = stream(kafka, topics, Recorder(), app_id)
    started.append(engine)
    with pytest.raises(NotReadyError, match="not started"):
        engine.check()
    engine.start()
    with pytest.raises(NotReadyError):
        engine.check()

    wait_for(lambda: is_ready(engine))
    began = time.monotonic()
    engine.stop()
    assert time.monotonic() - began < 5.0
    with pytest.raises(NotReadyError, match="stopped"):
        engine.check()
    engine.stop()


def test_stop_during_retries_is_prompt_and_commits_nothing_unhandled(
    kafka: KafkaSettings,
    topics: TopicNames,
    app_id: str,
    started: list[BlockStream],
) -> None:
    produce(kafka, topics, 1)
    recorder = Recorder(fail=lambda _: True)
    engine = stream(kafka, topics, recorder, app_id)
    started.append(engine)
    engine.start()
    wait_for(lambda: is_ready(engine))
    time.sleep(0.5)  # a few failed attempts
    began = time.monotonic()
    engine.stop()
    assert time.monotonic() - began < 5.0

    again = Recorder()
    second = stream(kafka, topics, again, app_id)
    started.append(second)
    second.start()
    wait_for(lambda: again.count() == 1)
    assert again.values() == [b"0"]


@pytest.mark.parametrize(
    "settings",
    [
        KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="GSSAPI"),
        KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN"),
        KafkaSettings(sasl_username="billing"),
        KafkaSettings(ssl_ca_location="/etc/ssl/ca.pem"),
    ],
)
def test_settings_faust_cannot_express_are_refused(settings: KafkaSettings) -> None:
    with pytest.raises(StreamSettingsError):
        BlockStream(
            kafka=settings,
            topics=TopicNames(),
            handler=Recorder(),
            app_id="billing",
            registry=None,
        )


LAG = "careledger_kafka_consumer_lag_messages"


def test_the_lag_counts_what_is_not_handled_yet_per_partition(
    kafka: KafkaSettings,
    topics: TopicNames,
    app_id: str,
    started: list[BlockStream],
) -> None:
    produce(kafka, topics, 30)
    release = threading.Event()
    recorder = Recorder()

    def handler(message: StreamMessage) -> Reading:
        reading = recorder(message)
        release.wait(DEADLINE)  # the first message holds the engine until released
        return reading

    registry = CollectorRegistry()
    often = kafka.model_copy(update={"statistics_interval_ms": 500})
    started.append(stream(often, topics, handler, app_id, registry))
    started[0].start()
    wait_for(lambda: recorder.count() == 1)
    stuck = recorder.seen[0]
    topic = topics.physical(LEDGER_BLOCKS)

    def lag(partition: int) -> float | None:
        labels = {"consumer": "billing_engine", "topic": topic, "partition": str(partition)}
        return registry.get_sample_value(LAG, labels)

    wait_for(lambda: (lag(stuck.partition) or 0) > 0)
    behind = lag(stuck.partition)
    release.set()
    wait_for(lambda: recorder.count() == 30)
    wait_for(lambda: all(lag(partition) == 0 for partition in range(PARTITIONS)))
    # Stuck on its first message, the whole of that partition was behind.
    assert behind == len(per_partition(recorder.seen)[stuck.partition]) - stuck.offset


class Verdicts(Recorder):
    """A recorder that answers chosen verdicts for chosen (offset, time seen) pairs."""

    def __init__(self, answers: dict[tuple[int, int], Reading]) -> None:
        super().__init__()
        self._answers = answers
        self._times: dict[int, int] = {}

    def __call__(self, message: StreamMessage) -> Reading:
        super().__call__(message)
        n = self._times[message.offset] = self._times.get(message.offset, 0) + 1
        return self._answers.get((message.offset, n), Reading(Verdict.APPLIED))

    def offsets(self) -> list[int]:
        with self._lock:
            return [m.offset for m in self.seen]


def test_a_rewind_reads_the_topic_again_from_its_start(
    kafka: KafkaSettings,
    topics: TopicNames,
    app_id: str,
    started: list[BlockStream],
) -> None:
    produce(kafka, topics, 40)
    handler = Verdicts({(25, 1): Reading(Verdict.REWIND)})
    started.append(stream(kafka, topics, handler, app_id))
    started[0].start()
    wait_for(lambda: handler.count() >= 26 + 40, timeout=30)
    # Messages produced after the rewind come next, once each.
    produce(kafka, topics, 5, start=40)
    wait_for(lambda: handler.count() >= 26 + 45, timeout=30)
    time.sleep(0.3)
    # Up to the rewind, then everything again from offset 0, then on: what faust had
    # fetched past the rewind is handed over once, after the re-read, in order.
    assert handler.offsets() == [*range(26), *range(45)]
    with handler._lock:
        reread = handler.seen[26:52]
    # The re-read hands over the same records: key, value and headers.
    assert [(m.key, m.value, m.headers) for m in reread] == [
        (f"k{i % 7}".encode(), f"{i}".encode(), (("ce_type", b"test"),)) for i in range(26)
    ]
    assert {m.topic for m in reread} == {topics.physical(LEDGER_BLOCKS)}


def test_a_fault_met_while_reading_again_stops_the_stream(
    kafka: KafkaSettings,
    topics: TopicNames,
    app_id: str,
    started: list[BlockStream],
) -> None:
    produce(kafka, topics, 20)
    handler = Verdicts(
        {(12, 1): Reading(Verdict.REWIND), (4, 2): Reading(Verdict.FAULT, "forged at 4")}
    )
    engine = stream(kafka, topics, handler, app_id)
    started.append(engine)
    engine.start()
    wait_for(lambda: handler.count() >= 13 + 5)
    time.sleep(0.5)
    # The re-read stops at the fault: nothing after it is handed over.
    assert handler.offsets() == [*range(13), *range(5)]
    with pytest.raises(NotReadyError, match="forged at 4"):
        engine.check()


def test_a_handler_failing_while_reading_again_is_retried(
    kafka: KafkaSettings,
    topics: TopicNames,
    app_id: str,
    started: list[BlockStream],
) -> None:
    produce(kafka, topics, 10)
    failed = threading.Event()

    class FailsOnceInReread(Verdicts):
        def __call__(self, message: StreamMessage) -> Reading:
            if message.offset == 3 and self._times.get(3) == 1 and not failed.is_set():
                failed.set()
                raise RuntimeError("database down")
            return super().__call__(message)

    handler = FailsOnceInReread({(6, 1): Reading(Verdict.REWIND)})
    registry = CollectorRegistry()
    started.append(stream(kafka, topics, handler, app_id, registry))
    started[0].start()
    wait_for(lambda: handler.count() >= 7 + 3 + 10)
    time.sleep(0.3)
    # First pass 0..6, a re-read that failed at 3 (0..2 handled), retried from the start.
    assert handler.offsets() == [*range(7), *range(3), *range(10)]
    assert failed.is_set()
    assert (
        registry.get_sample_value(
            "careledger_billing_stream_handler_failures_total", {"partition": "0"}
        )
        == 1.0
    )


def test_a_fault_stops_the_stream_for_good_with_the_reason(
    kafka: KafkaSettings,
    topics: TopicNames,
    app_id: str,
    started: list[BlockStream],
) -> None:
    produce(kafka, topics, 20)
    handler = Verdicts({(7, 1): Reading(Verdict.FAULT, "following stopped: forged")})
    engine = stream(kafka, topics, handler, app_id)
    started.append(engine)
    engine.start()
    wait_for(lambda: handler.count() >= 8)
    time.sleep(0.5)
    assert handler.offsets() == list(range(8))
    with pytest.raises(NotReadyError, match="following stopped: forged"):
        engine.check()
    began = time.monotonic()
    engine.stop()
    assert time.monotonic() - began < 5.0
    with pytest.raises(NotReadyError, match="forged"):
        engine.check()  # still failed, not "stopped"
