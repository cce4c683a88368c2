"""The billing path on a real broker: sealed blocks on `ledger.blocks`, the faust block stream,
the chain reader and the engine (memory store). Each consultation is decided once, across
restarts of the stream, and a store that lost its position reads the chain again from genesis
while the consumer group's offsets say otherwise."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

from services.billing.adapters.memory import MemoryBillingStore
from services.billing.adapters.stream import BlockStream, StreamMessage
from services.billing.engine import BillingEngine
from services.billing.following import ChainReader, Directory, Reading
from services.billing.ledger import BillingLedger
from shared.admission import registry_from_genesis
from shared.block import block_to_json
from shared.kafka import KafkaSettings, ensure_topics
from shared.outbox import MemoryOutbox
from shared.sources import new_event_id, new_random_id
from shared.store import MemoryDatabase, MemoryTransaction
from shared.topics import LEDGER_BLOCKS, TopicNames, TopicSpec
from tests.integration.billing.test_stream import wait_for
from tests.unit.billing.conftest import CountingMetrics, World, build_world

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class Billing:
    """An engine on its own memory store, behind a chain reader and a block stream."""

    def __init__(self, world: World, kafka: KafkaSettings, topics: TopicNames, app_id: str):
        database = MemoryDatabase()
        self.store = MemoryBillingStore(database=database)
        self.outbox = MemoryOutbox(database=database)
        self.metrics = CountingMetrics()
        self.engine: BillingEngine[MemoryTransaction] = BillingEngine(
            uow=database,
            book=self.store,
            chain=self.store,
            ledger=BillingLedger(
                outbox=self.outbox,
                key=world.chain.keys["billing"],
                genesis=world.chain.config,
                clock=world.clock,
                new_event_id=new_event_id,
                new_id=new_random_id,
            ),
            directory=Directory(registry_from_genesis(world.chain.config), 0),
            metrics=self.metrics,
            notify=lambda: None,
        )
        # Contracts are the service's own state: the same deployed version as the world's.
        with database.transaction() as tx:
            for contract in world.store.contracts():
                self.store.add_contract(tx, contract)
        self._world, self._kafka, self._topics, self._app_id = world, kafka, topics, app_id
        self.stream: BlockStream | None = None

    def start(self) -> None:
        reader = ChainReader(
            genesis_event=self._world.chain.genesis_event,
            handler=self.engine,
            metrics=self.metrics,
            topic=self._topics.physical(LEDGER_BLOCKS),
        )

        def handle(message: StreamMessage) -> Reading:
            return reader.read(message.value, message.offset)

        self.stream = BlockStream(
            kafka=self._kafka,
            topics=self._topics,
            handler=handle,
            app_id=self._app_id,
            registry=None,
            initial_backoff=0.05,
            max_backoff=0.2,
            commit_interval=0.2,
            session_timeout=3.0,
        )
        self.stream.start()

    def stop(self) -> None:
        if self.stream is not None:
            self.stream.stop()
            self.stream = None

    def decided(self) -> dict[str, str]:
        """Per encounter, the kind of the one decision (asserts there is one only)."""
        found: dict[str, str] = {}
        for entry in self.outbox.pending(100_000):
            event: dict[str, Any] = json.loads(entry.message.value)
            kind = event["type"].split(".")[-2]
            if kind in {"issued", "rejected"}:
                encounter = event["data"]["encounter_id"]
                assert encounter not in found, f"{encounter} decided twice"
                found[encounter] = kind
        return found


@pytest.fixture
def topics(kafka: KafkaSettings) -> TopicNames:
    names = TopicNames(prefix=f"bb{uuid.uuid4().hex[:10]}.")
    ensure_topics(kafka, [TopicSpec(names.physical(LEDGER_BLOCKS), 1)])
    return names


@pytest.fixture
def world() -> World:
    world = build_world()
    world.deploy()
    return world


@pytest.fixture
def running() -> Iterator[list[Billing]]:
    started: list[Billing] = []
    yield started
    for billing in started:
        billing.stop()


def publish(world: World, kafka: KafkaSettings, topics: TopicNames, start: int) -> None:
    """Produce the world's blocks from height `start` on (offset n is block n)."""
    producer = Producer(kafka.producer_config())
    for block in world.chain.blocks[start:]:
        producer.produce(topics.physical(LEDGER_BLOCKS), value=block_to_json(block))
    assert producer.flush(10) == 0


def seal(world: World, first: int, count: int) -> None:
    """One block of 20 clinical events, every fifth a consultation (encounters first...)."""
    events = []
    for n in range(first, first + count):
        events.append(world.consultation(f"enc-{n}"))
        events.extend(
            world.consultation(f"note-{n}-{k}", event_type="org.careledger.clinical.note.v1")
            for k in range(4)
        )
    world.chain.seal(events)


def test_every_consultation_is_decided_once_across_restarts(
    kafka: KafkaSettings, topics: TopicNames, world: World, running: list[Billing]
) -> None:
    for first in range(0, 12, 4):
        seal(world, first, 4)
    publish(world, kafka, topics, 0)
    billing = Billing(world, kafka, topics, f"billing-test-{uuid.uuid4().hex[:8]}")
    running.append(billing)
    billing.start()
    wait_for(lambda: len(billing.decided()) == 12, timeout=40)
    billing.stop()
    published = len(world.chain.blocks)
    for first in range(12, 20, 4):
        seal(world, first, 4)
    publish(world, kafka, topics, published)
    billing.start()
    wait_for(lambda: len(billing.decided()) == 20, timeout=40)
    assert set(billing.decided().values()) == {"issued"}
    position = billing.engine.position()
    assert position is not None
    assert position.height == world.height
    assert position.offset == world.height
    assert billing.metrics.height == world.height


def test_a_store_without_its_position_reads_the_chain_again_from_genesis(
    kafka: KafkaSettings, topics: TopicNames, world: World, running: list[Billing]
) -> None:
    app_id = f"billing-test-{uuid.uuid4().hex[:8]}"
    seal(world, 0, 4)
    publish(world, kafka, topics, 0)
    first = Billing(world, kafka, topics, app_id)
    running.append(first)
    first.start()
    wait_for(lambda: len(first.decided()) == 4, timeout=40)
    first.stop()
    # A new store (restored from nothing) with the consumer group's offsets at the end: the
    # next block is not the genesis block, so the reader rewinds and reads the chain again.
    published = len(world.chain.blocks)
    seal(world, 4, 4)
    publish(world, kafka, topics, published)
    second = Billing(world, kafka, topics, app_id)
    running.append(second)
    second.start()
    wait_for(lambda: len(second.decided()) == 8, timeout=40)
    assert second.engine.position() is not None
    assert second.metrics.faults == 0
