"""The chain follower against the real broker: blocks followed in order into a handler,
resumed from the stored position, stopped promptly, halted by a forged block."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from shared.block import Block, block_to_json
from shared.follower import BlockFollower, FollowedBlock, FollowerState
from shared.follower.kafka import ChainFollower
from shared.kafka import KafkaSettings, ensure_topics
from shared.runtime.component import NotReadyError
from shared.topics import LEDGER_BLOCKS, TopicNames
from tests.unit.core.chainfactory import ChainFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DEADLINE = 15.0


class MemoryHandler:
    """A service's store, in memory: the applied blocks and the state, stored together."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.applied: list[FollowedBlock] = []
        self.saved: dict[str, Any] | None = None

    def position(self) -> FollowerState | None:
        with self._lock:
            return None if self.saved is None else FollowerState.from_json_value(self.saved)

    def apply(self, block: FollowedBlock, state: FollowerState) -> None:
        with self._lock:
            self.applied.append(block)
            self.saved = json.loads(json.dumps(state.to_json_value()))

    def heights(self) -> list[int]:
        with self._lock:
            return [block.height for block in self.applied]


@pytest.fixture
def topics(kafka: KafkaSettings) -> TopicNames:
    names = TopicNames(prefix=f"f{uuid.uuid4().hex[:10]}.")
    ensure_topics(kafka, names.specs(input_partitions=1))
    return names


@pytest.fixture
def publish(kafka: KafkaSettings, topics: TopicNames) -> Callable[[Block], None]:
    producer = Producer(kafka.producer_config())

    def publish(block: Block) -> None:
        key = str(block.header.height).encode()
        producer.produce(topics.physical(LEDGER_BLOCKS), key=key, value=block_to_json(block))
        assert producer.flush(10) == 0

    return publish


@contextmanager
def following(
    factory: ChainFactory,
    handler: MemoryHandler,
    kafka: KafkaSettings,
    topics: TopicNames,
    registry: CollectorRegistry,
) -> Iterator[ChainFollower]:
    follower = ChainFollower(
        genesis_event=factory.genesis_event,
        handler=handler,
        kafka=kafka,
        topics=topics,
        client_name="follower-test",
        registry=registry,
    )
    follower.start()
    try:
        yield follower
    finally:
        follower.stop()


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_blocks_are_followed_in_order_resumed_from_the_stored_position_and_stopped_promptly(
    kafka: KafkaSettings, topics: TopicNames, publish: Callable[[Block], None]
) -> None:
    factory = ChainFactory()
    factory.seal_many(blocks=3, events_per_block=2)
    for block in factory.blocks:
        publish(block)
    publish(factory.blocks[-1])  # a restarted sealer republishes its last block
    handler = MemoryHandler()
    registry = CollectorRegistry()

    with following(factory, handler, kafka, topics, registry) as follower:
        wait_for(lambda: handler.heights() == [0, 1, 2, 3])
        follower.check()
        assert registry.get_sample_value("careledger_follower_height") == 3
        started = time.monotonic()
        follower.stop()
        assert time.monotonic() - started < 1.0
        with pytest.raises(NotReadyError):
            follower.check()

    events = [event for block in handler.applied for event in block.events]
    assert [event.leaf_index for event in events] == list(range(7))
    assert handler.saved is not None
    assert handler.saved["offset"] == 3  # the first copy of block 3; the second was ignored

    factory.seal_many(blocks=2, events_per_block=2)
    for block in factory.blocks[4:]:
        publish(block)
    again = CollectorRegistry()
    with following(factory, handler, kafka, topics, again) as follower:
        wait_for(lambda: handler.heights() == [0, 1, 2, 3, 4, 5])
        follower.check()
        assert again.get_sample_value("careledger_follower_height") == 5
    assert handler.applied[-1].block_hash == factory.state.head_hash
    assert again.get_sample_value("careledger_follower_faults_total") == 0


def test_a_forged_block_halts_the_follower_and_makes_it_not_ready(
    kafka: KafkaSettings, topics: TopicNames, publish: Callable[[Block], None]
) -> None:
    factory = ChainFactory()
    factory.seal_many(blocks=3, events_per_block=2)
    forged = factory.resign(factory.blocks[3], log_root="00" * 32)
    for block in [*factory.blocks[:3], forged, factory.blocks[3]]:
        publish(block)
    handler = MemoryHandler()
    registry = CollectorRegistry()

    with following(factory, handler, kafka, topics, registry) as follower:
        wait_for(lambda: registry.get_sample_value("careledger_follower_faults_total") == 1)
        with pytest.raises(NotReadyError, match="log_root is not the root"):
            follower.check()
        time.sleep(0.5)  # the genuine block 3 is on the topic after the forgery
        assert handler.heights() == [0, 1, 2]
        assert registry.get_sample_value("careledger_follower_height") == 2
    assert handler.saved is not None
    assert FollowerState.from_json_value(handler.saved).head_hash == factory.blocks[2].block_hash


def test_a_stored_offset_past_missing_blocks_reads_the_topic_again_from_its_start(
    kafka: KafkaSettings, topics: TopicNames, publish: Callable[[Block], None]
) -> None:
    factory = ChainFactory()
    factory.seal_many(blocks=3, events_per_block=1)
    for block in factory.blocks:
        publish(block)
    handler = MemoryHandler()
    for block in factory.blocks[:2]:  # applied at height 1, but the offset stored is block 2's
        handler.applied.append(FollowedBlock(block.header.height, block.block_hash, ()))
    at_one = BlockFollower(genesis_event=factory.genesis_event)
    for block in factory.blocks[:2]:
        at_one.follow(block)
    assert at_one.state is not None
    handler.saved = {**at_one.state.to_json_value(), "offset": 2}
    registry = CollectorRegistry()

    with following(factory, handler, kafka, topics, registry) as follower:
        wait_for(lambda: handler.heights() == [0, 1, 2, 3])
        follower.check()
    assert registry.get_sample_value("careledger_follower_faults_total") == 0
