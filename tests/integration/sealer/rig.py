"""A sealer on the real broker for integration tests: its own topic prefix and SQLite store."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from services.sealer.adapters.component import SealingComponent
from services.sealer.adapters.kafka import KafkaEventSource, KafkaLedgerPublisher
from services.sealer.adapters.sql import SqlChainStore, migrate_sealer
from services.sealer.core.cut import CutPolicy
from services.sealer.service import Sealer
from shared.block import block_from_json
from shared.envelope import encode_event, kafka_key
from shared.kafka import KafkaSettings, ensure_topics
from shared.store import Database, open_database
from shared.topics import CLINICAL_EVENTS, TopicNames
from tests.unit.core.chainfactory import ChainFactory


class SealerRig:
    """A chain (ChainFactory keys and genesis), topics on the broker, a store on disk."""

    def __init__(self, kafka: KafkaSettings, data_dir: Path, *, partitions: int = 3) -> None:
        self.kafka = kafka
        self.factory = ChainFactory()
        self.topics = TopicNames(f"s{uuid.uuid4().hex[:10]}.")
        ensure_topics(kafka, self.topics.specs(input_partitions=partitions))
        self.database: Database = open_database("sqlite:///sealer.db", data_dir=data_dir)
        migrate_sealer(self.database)
        self.store = SqlChainStore(database=self.database)
        self._producer = Producer(kafka.producer_config())
        self.component: SealingComponent | None = None

    def start(self, *, max_events: int = 50, max_wait: float = 0.05) -> SealingComponent:
        source = KafkaEventSource(kafka=self.kafka, topics=self.topics, group_id="sealer-test")
        publisher = KafkaLedgerPublisher(kafka=self.kafka, topics=self.topics)
        sealer = Sealer(
            store=self.store,
            source=source,
            publisher=publisher,
            key=self.factory.keys["sealer"],
            genesis_event=self.factory.genesis_event,
            policy=CutPolicy(max_events=max_events, max_wait=max_wait),
            idle_wait=0.05,
        )
        self.component = SealingComponent(sealer=sealer, source=source, publisher=publisher)
        self.component.start()
        return self.component

    def stop(self) -> None:
        if self.component is not None:
            self.component.stop()
            self.component = None

    def close(self) -> None:
        self.stop()
        self._producer.flush(5)
        self.database.close()

    def send(
        self, value: bytes, *, topic: str = CLINICAL_EVENTS, partition: int = 0, key: str = "k"
    ) -> None:
        self._producer.produce(
            self.topics.physical(topic), key=key.encode(), value=value, partition=partition
        )

    def send_event(
        self, event: Mapping[str, Any], *, topic: str = CLINICAL_EVENTS, partition: int = 0
    ) -> None:
        self.send(encode_event(event), topic=topic, partition=partition, key=kafka_key(event))

    def flush(self) -> None:
        assert self._producer.flush(10) == 0

    def tree_size(self) -> int:
        head = self.store.head()
        return 0 if head is None else head.state.head.tree_size

    def wait_for_tree_size(self, size: int, *, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.tree_size() < size:
            if time.monotonic() > deadline:
                raise AssertionError(f"tree size {self.tree_size()}, not {size}, in {timeout} s")
            time.sleep(0.01)

    def stored_blocks(self) -> list[bytes]:
        head = self.store.head()
        assert head is not None
        blocks = [self.store.block(height) for height in range(head.height + 1)]
        assert all(b is not None for b in blocks)
        return [b for b in blocks if b is not None]

    def sealed(self) -> list[tuple[str, int, int, str]]:
        """(topic, partition, offset, event id) of every sealed event, in leaf order."""
        out = []
        for raw in self.stored_blocks()[1:]:
            block = block_from_json(raw)
            positions = [
                (run.topic, run.partition, offset)
                for run in block.header.sources
                for offset in range(run.first_offset, run.last_offset + 1)
            ]
            for (topic, partition, offset), event in zip(positions, block.events, strict=True):
                out.append((topic, partition, offset, str(event["id"])))
        return out


def json_records(values: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(value) for value in values]
