"""validator-1 on the real broker, as the suite's from-outside tests run it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from services.validator.adapters.kafka import KafkaAttestationPublisher, ValidationLoop
from services.validator.adapters.metrics import PrometheusValidatorMetrics
from services.validator.adapters.sql import SqlChainStore, migrate_chain_store
from services.validator.service import Validator
from shared.kafka import KafkaSettings
from shared.store import open_database
from shared.topics import LEDGER_ATTESTATIONS, LEDGER_BLOCKS, TopicNames
from tests.unit.core.chainfactory import ChainFactory


@dataclass
class Follower:
    """validator-1 following the rig's `ledger.blocks`, with its metrics."""

    store: SqlChainStore
    registry: CollectorRegistry
    validator: Validator

    def height(self) -> int:
        head = self.store.head()
        return -1 if head is None else head.height

    def faults(self) -> float:
        """All of `careledger_validator_faults_total`, every reason."""
        total = 0.0
        for metric in self.registry.collect():
            if metric.name == "careledger_validator_faults":
                total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
        return total

    def metric(self, name: str, labels: dict[str, str]) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@contextmanager
def following_validator(
    factory: ChainFactory, kafka: KafkaSettings, topics: TopicNames, data: Path
) -> Iterator[Follower]:
    """validator-1 as wiring builds it (minus HTTP): its SQLite store, key and Kafka loop."""
    with open_database("sqlite:///validator-1.db", data_dir=data) as database:
        migrate_chain_store(database)
        store = SqlChainStore(database=database)
        topic = topics.physical(LEDGER_ATTESTATIONS)
        publisher = KafkaAttestationPublisher(kafka=kafka, topic=topic)
        registry = CollectorRegistry()
        validator = Validator(
            store=store,
            key=factory.keys["validator-1"],
            genesis=factory.config,
            genesis_event=factory.genesis_event,
            publisher=publisher,
            metrics=PrometheusValidatorMetrics(registry),
        )
        loop = ValidationLoop(
            validator=validator,
            store=store,
            publisher=publisher,
            kafka=kafka,
            blocks_topic=topics.physical(LEDGER_BLOCKS),
            attestations_topic=topic,
            group_id=topics.client_name("validator-1"),
        )
        loop.start()
        try:
            yield Follower(store, registry, validator)
        finally:
            loop.stop()
