"""The relay's state machine, on the memory outbox with a fake producer (no sockets)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared.kafka import KafkaSettings
from shared.outbox import Backoff, MemoryOutbox, OutboxRelay, message_for_event
from shared.store import MemoryDatabase
from shared.topics import TopicNames
from tests.unit.outbox.fakes import FakeProducers, FlakyMarking, RecordingMetrics, wait_until

PHI = "diagnosis-that-must-never-be-logged"


@pytest.fixture
def memory() -> MemoryDatabase:
    return MemoryDatabase()


@pytest.fixture
def outbox(memory: MemoryDatabase) -> MemoryOutbox:
    return MemoryOutbox(database=memory)


@pytest.fixture
def producers() -> FakeProducers:
    return FakeProducers()


@pytest.fixture
def metrics() -> RecordingMetrics:
    return RecordingMetrics()


def _relay(
    store: object, producers: FakeProducers, metrics: RecordingMetrics, **options: object
) -> OutboxRelay:
    settings: dict[str, object] = {
        "poll_interval": 0.02,
        "backoff": Backoff(initial=0.05, maximum=0.2),
        "gauge_interval": 0.0,
        **options,
    }
    return OutboxRelay(
        store=store,  # type: ignore[arg-type]
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        topics=TopicNames("t1."),
        metrics=metrics,
        producer_factory=producers,
        **settings,  # type: ignore[arg-type]
    )


@pytest.fixture
def relay(
    outbox: MemoryOutbox, producers: FakeProducers, metrics: RecordingMetrics
) -> Iterator[OutboxRelay]:
    relay = _relay(outbox, producers, metrics)
    yield relay
    relay.stop(drain_timeout=0.2)


def _add(memory: MemoryDatabase, outbox: MemoryOutbox, *numbers: int) -> None:
    with memory.transaction() as tx:
        outbox.add(
            tx,
            [
                message_for_event(
                    {"source": "urn:s", "id": f"e{n}", "data": {"secret": PHI}},
                    topic="records.events",
                )
                for n in numbers
            ],
        )


def _ids(values: list[bytes]) -> list[str]:
    return [v.split(b'"id":"')[1].split(b'"')[0].decode() for v in values]


def test_publishes_in_seq_order_and_marks_sent(
    memory: MemoryDatabase,
    outbox: MemoryOutbox,
    relay: OutboxRelay,
    producers: FakeProducers,
    metrics: RecordingMetrics,
) -> None:
    _add(memory, outbox, 1, 2, 3)
    _add(memory, outbox, 4)
    relay.start()
    relay.notify()
    wait_until(lambda: outbox.pending_count() == 0)
    produced = producers.current.produced
    assert _ids([p.value for p in produced]) == ["e1", "e2", "e3", "e4"]
    assert {p.topic for p in produced} == {"t1.records.events"}
    assert produced[0].key == b"e1"
    assert produced[0].headers == [("content-type", b"application/cloudevents+json")]
    wait_until(lambda: metrics.published_total["t1.records.events"] == 4)
    assert len(metrics.latencies) == 4
    wait_until(lambda: metrics.pending_seen[-1:] == [0])


def test_the_producer_config_is_idempotent_and_logs_to_python(
    relay: OutboxRelay, producers: FakeProducers
) -> None:
    relay.start()
    config = producers.current.config
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert isinstance(config["logger"], logging.Logger)
    assert callable(config["error_cb"])


def test_an_entry_in_flight_is_never_produced_again(
    memory: MemoryDatabase, outbox: MemoryOutbox, relay: OutboxRelay, producers: FakeProducers
) -> None:
    relay.start()
    producers.current.hold = True  # the broker takes its time
    _add(memory, outbox, 1, 2)
    relay.notify()
    wait_until(lambda: len(producers.current.produced) == 2)
    for _ in range(5):  # many poll intervals and notifies later...
        relay.notify()
        time.sleep(0.03)
    assert len(producers.current.produced) == 2
    assert outbox.pending_count() == 2
    producers.current.hold = False
    wait_until(lambda: outbox.pending_count() == 0)
    assert len(producers.current.produced) == 2


def test_failed_deliveries_stay_pending_and_are_retried_after_backoff(
    memory: MemoryDatabase,
    outbox: MemoryOutbox,
    relay: OutboxRelay,
    producers: FakeProducers,
    metrics: RecordingMetrics,
) -> None:
    relay.start()
    producers.current.fail_next = 2
    _add(memory, outbox, 1, 2, 3)
    relay.notify()
    wait_until(lambda: outbox.pending_count() == 0)
    values = _ids(producers.current.values())
    # e1 and e2 failed, e3 was delivered and marked; the two came back after the back-off.
    assert values == ["e1", "e2", "e3", "e1", "e2"]
    assert metrics.failed_total["t1.records.events"] == 2
    wait_until(lambda: metrics.published_total["t1.records.events"] == 3)


def test_notify_wakes_the_relay_at_once(
    memory: MemoryDatabase,
    outbox: MemoryOutbox,
    producers: FakeProducers,
    metrics: RecordingMetrics,
) -> None:
    relay = _relay(outbox, producers, metrics, poll_interval=30.0)
    relay.start()
    try:
        time.sleep(0.05)  # past its first look
        _add(memory, outbox, 1)
        started = time.monotonic()
        relay.notify()
        wait_until(lambda: outbox.pending_count() == 0, timeout=5)
        assert time.monotonic() - started < 5.0  # far below the 30 s poll interval
    finally:
        relay.stop(drain_timeout=0.2)


def test_without_notify_the_relay_polls(
    memory: MemoryDatabase, outbox: MemoryOutbox, relay: OutboxRelay
) -> None:
    relay.start()
    _add(memory, outbox, 1)  # committed by "another process": nobody calls notify()
    wait_until(lambda: outbox.pending_count() == 0, timeout=2)


def test_delivered_but_unmarked_entries_are_not_produced_again(
    memory: MemoryDatabase,
    outbox: MemoryOutbox,
    producers: FakeProducers,
    metrics: RecordingMetrics,
) -> None:
    flaky = FlakyMarking(outbox)
    relay = _relay(flaky, producers, metrics)
    relay.start()
    try:
        _add(memory, outbox, 1, 2)
        relay.notify()
        wait_until(lambda: flaky.attempts >= 3)
        assert _ids(producers.current.values()) == ["e1", "e2"]
        assert outbox.pending_count() == 2
        flaky.broken = False
        wait_until(lambda: outbox.pending_count() == 0)
        assert _ids(producers.current.values()) == ["e1", "e2"]
    finally:
        relay.stop(drain_timeout=0.2)


def test_a_store_that_cannot_be_read_does_not_kill_the_relay(
    memory: MemoryDatabase,
    outbox: MemoryOutbox,
    producers: FakeProducers,
    metrics: RecordingMetrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Unreadable(FlakyMarking):
        def pending(self, limit: int):  # type: ignore[no-untyped-def]
            if self.broken:
                raise ConnectionError("database went away")
            return super().pending(limit)

    store = Unreadable(outbox)
    relay = _relay(store, producers, metrics)
    relay.start()
    try:
        _add(memory, outbox, 1)
        wait_until(lambda: "database went away" in caplog.text)
        time.sleep(0.1)
        assert relay.running
        store.broken = False
        wait_until(lambda: outbox.pending_count() == 0)
    finally:
        relay.stop(drain_timeout=0.2)


def test_stop_drains_what_is_pending(
    memory: MemoryDatabase, outbox: MemoryOutbox, producers: FakeProducers
) -> None:
    relay = _relay(outbox, producers, RecordingMetrics(), poll_interval=30.0)
    relay.start()
    _add(memory, outbox, *range(50))  # committed, but nobody notified the relay
    assert relay.stop(drain_timeout=2.0) is True
    assert outbox.pending_count() == 0
    assert producers.current.closed
    assert not relay.running


class CountedFetches:
    """The outbox, counting the relay's fetches of pending entries."""

    def __init__(self, outbox: MemoryOutbox) -> None:
        self._outbox = outbox
        self.fetches = 0

    def pending(self, limit: int) -> Any:
        self.fetches += 1
        return self._outbox.pending(limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._outbox, name)


def test_stop_drains_what_was_committed_after_the_relays_last_fetch(
    memory: MemoryDatabase, outbox: MemoryOutbox, producers: FakeProducers
) -> None:
    counted = CountedFetches(outbox)
    relay = _relay(counted, producers, RecordingMetrics(), poll_interval=30.0)
    relay.start()
    wait_until(lambda: counted.fetches >= 1)  # it found nothing, and waits 30 s
    _add(memory, outbox, *range(20))  # committed; the notify has not reached the relay
    assert relay.stop(drain_timeout=2.0) is True
    assert outbox.pending_count() == 0


def test_stop_gives_up_at_the_deadline_and_leaves_entries_pending(
    memory: MemoryDatabase, outbox: MemoryOutbox, relay: OutboxRelay, producers: FakeProducers
) -> None:
    relay.start()
    producers.current.hold = True
    _add(memory, outbox, 1, 2, 3)
    relay.notify()
    wait_until(lambda: relay.in_flight == 3)
    started = time.monotonic()
    assert relay.stop(drain_timeout=0.3) is False
    assert time.monotonic() - started < 2.0
    assert producers.current.purged == 3
    assert producers.current.closed
    assert outbox.pending_count() == 3  # the next relay publishes them


def test_a_relay_runs_once(relay: OutboxRelay) -> None:
    relay.start()
    with pytest.raises(RuntimeError):
        relay.start()
    relay.stop(drain_timeout=0.2)
    with pytest.raises(RuntimeError):
        relay.start()


def test_a_fatal_producer_error_replaces_the_producer(
    memory: MemoryDatabase, outbox: MemoryOutbox, relay: OutboxRelay, producers: FakeProducers
) -> None:
    relay.start()
    first = producers.current
    first.hold = True
    _add(memory, outbox, 1)
    relay.notify()
    wait_until(lambda: relay.in_flight == 1)
    first.raise_fatal()
    _add(memory, outbox, 2)
    relay.notify()
    wait_until(lambda: len(producers.built) == 2)
    wait_until(lambda: outbox.pending_count() == 0)
    assert first.closed
    assert _ids(producers.current.values()) == ["e1", "e2"]


def test_logs_never_carry_event_contents(
    memory: MemoryDatabase,
    outbox: MemoryOutbox,
    relay: OutboxRelay,
    producers: FakeProducers,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    relay.start()
    producers.current.fail_next = 3
    _add(memory, outbox, 1, 2, 3)
    relay.notify()
    wait_until(lambda: outbox.pending_count() == 0)
    relay.stop(drain_timeout=0.2)
    assert "failed" in caplog.text
    assert PHI not in caplog.text
    assert "urn:s" not in caplog.text
