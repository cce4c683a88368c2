"""The relay against the real embedded broker: delivery, a paused broker, a crash before marking."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from careledger.broker import EmbeddedBroker
from shared.kafka import KafkaSettings, ensure_topics
from shared.outbox import Backoff, OutboxRelay, SqlOutbox, message_for_event, migrate_outbox
from shared.store import Database, open_database
from shared.topics import RECORDS_EVENTS, TopicNames, TopicSpec
from tests.integration.outbox.downstream import ApplyingConsumer, Record, read_topic
from tests.integration.store.backends import sql_database
from tests.unit.outbox.fakes import FlakyMarking, RecordingMetrics, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SOURCE = "https://records.test/"


@pytest.fixture
def topics(kafka: KafkaSettings) -> TopicNames:
    """A prefix per test: its own topics on the shared broker."""
    names = TopicNames(f"t{uuid.uuid4().hex[:10]}.")
    ensure_topics(kafka, [TopicSpec(names.physical(RECORDS_EVENTS), 3)])
    return names


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with open_database("sqlite:///service.db", data_dir=tmp_path) as db:
        migrate_outbox(db)
        yield db


@pytest.fixture
def downstream(tmp_path: Path) -> Iterator[ApplyingConsumer]:
    with open_database("sqlite:///downstream.db", data_dir=tmp_path) as db:
        yield ApplyingConsumer(database=db)


def _event(n: int) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": f"ev-{n:05d}",
        "source": SOURCE,
        "type": "org.careledger.records.record_created.v1",
        "subject": f"patient-{n % 7}",
        "data": {"n": n},
    }


def _write(database: Database, outbox: SqlOutbox, relay: OutboxRelay | None, *ns: int) -> None:
    """What a use case does after validating a request: commit, then nudge the relay."""
    with database.transaction() as tx:
        outbox.add(tx, [message_for_event(_event(n), topic=RECORDS_EVENTS) for n in ns])
    if relay is not None:
        relay.notify()


def _relay(
    outbox: object, kafka: KafkaSettings, topics: TopicNames, **options: object
) -> OutboxRelay:
    return OutboxRelay(
        store=outbox,  # type: ignore[arg-type]
        kafka=kafka,
        topics=topics,
        backoff=Backoff(initial=0.1, maximum=1.0),
        **options,  # type: ignore[arg-type]
    )


def _ids(records: list[Record]) -> Counter[str]:
    return Counter(record.dedup_key[1] for record in records)


@pytest.fixture(
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with sql_database(request.param, tmp_path) as (db, _):
        migrate_outbox(db)
        yield db


def test_every_event_is_delivered_once_with_key_value_and_header(
    kafka: KafkaSettings, topics: TopicNames, any_database: Database
) -> None:
    database = any_database
    outbox = SqlOutbox(database=database)
    metrics = RecordingMetrics()
    relay = _relay(outbox, kafka, topics, metrics=metrics)
    relay.start()
    try:
        for start in range(0, 300, 10):
            _write(database, outbox, relay, *range(start, start + 10))
        wait_until(lambda: outbox.pending_count() == 0, timeout=30)
    finally:
        assert relay.stop(drain_timeout=5)

    records = read_topic(kafka, topics.physical(RECORDS_EVENTS), at_least=300)
    assert _ids(records) == Counter({f"ev-{n:05d}": 1 for n in range(300)})
    expected = {
        f"ev-{n:05d}": message_for_event(_event(n), topic=RECORDS_EVENTS) for n in range(300)
    }
    for record in records:
        message = expected[record.dedup_key[1]]
        assert record.value == message.value  # byte for byte, never re-encoded
        assert record.key == message.key
        assert record.headers == (("content-type", b"application/cloudevents+json"),)
    # One subject, one partition, in the order the events were written.
    by_subject: dict[bytes | None, list[Record]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_subject.setdefault(record.key, []).append(record)
    for same in by_subject.values():
        assert len({r.partition for r in same}) == 1
        numbers = [int(r.dedup_key[1][3:]) for r in same]
        assert numbers == sorted(numbers)
    assert metrics.published_total[topics.physical(RECORDS_EVENTS)] == 300
    assert len(metrics.latencies) == 300


def test_a_short_pause_delays_delivery_without_duplicates(
    fresh_broker: EmbeddedBroker, database: Database
) -> None:
    kafka = KafkaSettings(bootstrap_servers=fresh_broker.bootstrap_servers)
    topics = TopicNames("short.")
    ensure_topics(kafka, [TopicSpec(topics.physical(RECORDS_EVENTS), 3)])
    outbox = SqlOutbox(database=database)
    relay = _relay(outbox, kafka, topics)  # production settings: 300 s message timeout
    relay.start()
    try:
        _write(database, outbox, relay, *range(20))
        wait_until(lambda: outbox.pending_count() == 0, timeout=20)
        fresh_broker.pause()
        for n in range(20, 120, 10):
            _write(database, outbox, relay, *range(n, n + 10))
        time.sleep(1.5)
        assert outbox.pending_count() == 100  # produced, in flight, not yet acknowledged
        fresh_broker.resume()
        wait_until(lambda: outbox.pending_count() == 0, timeout=30)
    finally:
        fresh_broker.resume()
        relay.stop(drain_timeout=5)
    records = read_topic(kafka, topics.physical(RECORDS_EVENTS), at_least=120)
    # The idempotent producer's retries are de-duplicated by the broker itself.
    assert _ids(records) == Counter({f"ev-{n:05d}": 1 for n in range(120)})


def test_writes_succeed_while_the_broker_is_paused_and_all_arrive_after(
    fresh_broker: EmbeddedBroker, database: Database, downstream: ApplyingConsumer
) -> None:
    kafka = KafkaSettings(bootstrap_servers=fresh_broker.bootstrap_servers)
    topics = TopicNames("paused.")
    ensure_topics(kafka, [TopicSpec(topics.physical(RECORDS_EVENTS), 3)])
    outbox = SqlOutbox(database=database)
    metrics = RecordingMetrics()
    # Short timeouts so the pause also makes in-flight deliveries fail and be retried,
    # the path on which duplicates can reach the topic.
    relay = _relay(
        outbox,
        kafka,
        topics,
        metrics=metrics,
        producer_overrides={"message.timeout.ms": 2000, "request.timeout.ms": 1000},
    )
    relay.start()
    try:
        _write(database, outbox, relay, *range(50))
        wait_until(lambda: outbox.pending_count() == 0, timeout=20)

        fresh_broker.pause()
        slowest = 0.0
        for n in range(50, 250, 5):
            started = time.monotonic()
            _write(database, outbox, relay, *range(n, n + 5))
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
        assert slowest < 1.0  # the API path never waits for Kafka
        time.sleep(3)  # longer than message.timeout.ms: deliveries time out and come back
        assert outbox.pending_count() > 0
        assert relay.running
        fresh_broker.resume()

        wait_until(lambda: outbox.pending_count() == 0, timeout=60)
    finally:
        fresh_broker.resume()
        relay.stop(drain_timeout=5)

    records = read_topic(kafka, topics.physical(RECORDS_EVENTS), at_least=250)
    for record in records:
        downstream.handle(record)
    everything = {(SOURCE, f"ev-{n:05d}") for n in range(250)}
    assert set(_ids(records)) == {event_id for _, event_id in everything}  # none missing
    assert sorted(downstream.applied()) == sorted(everything)  # each applied exactly once
    assert downstream.applied_count() == 250
    assert downstream.skipped == len(records) - 250
    assert sum(metrics.failed_total.values()) > 0  # the pause really failed deliveries


def test_a_crash_before_mark_sent_redelivers_and_downstream_dedupes(
    kafka: KafkaSettings, topics: TopicNames, database: Database, downstream: ApplyingConsumer
) -> None:
    outbox = SqlOutbox(database=database)
    crashing = FlakyMarking(outbox)  # delivers, then cannot record it
    metrics = RecordingMetrics()
    first = _relay(crashing, kafka, topics, metrics=metrics)
    first.start()
    try:
        _write(database, outbox, first, *range(40))
        wait_until(lambda: sum(metrics.published_total.values()) == 40, timeout=20)
    finally:
        assert first.stop(drain_timeout=1) is False  # "crashed" with 40 delivered, unmarked
    assert outbox.pending_count() == 40

    second = _relay(outbox, kafka, topics)
    second.start()
    try:
        wait_until(lambda: outbox.pending_count() == 0, timeout=20)
    finally:
        assert second.stop(drain_timeout=5)

    records = read_topic(kafka, topics.physical(RECORDS_EVENTS), at_least=80)
    assert _ids(records) == Counter({f"ev-{n:05d}": 2 for n in range(40)})  # at least once
    for record in records:
        downstream.handle(record)
    assert downstream.applied_count() == 40  # exactly once, after (source, id) dedupe
    assert downstream.skipped == 40
