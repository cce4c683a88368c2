"""Validators in-process against the real broker: blocks from `ledger.blocks` are verified,
stored and attested; bad ones refused; restarts catch up; three validators reach finality."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from services.validator.adapters.kafka import KafkaAttestationPublisher, ValidationLoop
from services.validator.adapters.metrics import PrometheusValidatorMetrics
from services.validator.adapters.sql import SqlChainStore, migrate_chain_store
from services.validator.queries import ChainQueries
from services.validator.service import Validator
from shared.block import Block, block_to_json
from shared.canonical import canonicalize
from shared.chain import ChainVerifier
from shared.crypto import b64url_encode
from shared.kafka import KafkaSettings, ensure_topics
from shared.merkle import leaf_hash, verify_consistency, verify_inclusion
from shared.store import open_database
from shared.topics import LEDGER_ATTESTATIONS, LEDGER_BLOCKS, TopicNames
from tests.unit.core.chainfactory import ChainFactory, key_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DEADLINE = 15.0


@pytest.fixture
def topics(kafka: KafkaSettings) -> TopicNames:
    names = TopicNames(prefix=f"v{uuid.uuid4().hex[:10]}.")
    ensure_topics(kafka, names.specs(input_partitions=1))
    return names


@pytest.fixture
def send(kafka: KafkaSettings, topics: TopicNames) -> Iterator[Callable[[bytes, int], None]]:
    producer = Producer(kafka.producer_config())

    def send(value: bytes, height: int) -> None:
        producer.produce(topics.physical(LEDGER_BLOCKS), key=str(height).encode(), value=value)
        producer.flush(10)

    yield send
    producer.flush(10)


@contextmanager
def running_validator(
    name: str, factory: ChainFactory, kafka: KafkaSettings, topics: TopicNames, data: Path
) -> Iterator[tuple[SqlChainStore, Validator]]:
    """A validator as wiring builds it, minus HTTP: its own SQLite store, key and loop."""
    with open_database(f"sqlite:///{name}.db", data_dir=data) as database:
        migrate_chain_store(database)
        store = SqlChainStore(database=database)
        publisher = KafkaAttestationPublisher(
            kafka=kafka, topic=topics.physical(LEDGER_ATTESTATIONS)
        )
        validator = Validator(
            store=store,
            key=factory.keys[name],
            genesis=factory.config,
            genesis_event=factory.genesis_event,
            publisher=publisher,
            metrics=PrometheusValidatorMetrics(CollectorRegistry()),
        )
        loop = ValidationLoop(
            validator=validator,
            store=store,
            publisher=publisher,
            kafka=kafka,
            blocks_topic=topics.physical(LEDGER_BLOCKS),
            attestations_topic=topics.physical(LEDGER_ATTESTATIONS),
            group_id=topics.client_name(name),
        )
        loop.start()
        try:
            yield store, validator
        finally:
            loop.stop()


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def head_height(store: SqlChainStore) -> int:
    head = store.head()
    return -1 if head is None else head.height


def publish(send: Callable[[bytes, int], None], blocks: list[Block]) -> None:
    for block in blocks:
        send(block_to_json(block), block.header.height)


def test_a_chain_is_verified_stored_attested_and_proven(
    kafka: KafkaSettings, topics: TopicNames, send: Callable[[bytes, int], None], tmp_path: Path
) -> None:
    factory = ChainFactory()
    factory.seal_many(6, 20)
    with running_validator("validator-1", factory, kafka, topics, tmp_path) as (store, validator):
        publish(send, factory.blocks)
        wait_for(lambda: head_height(store) == 6, "height 6")
        wait_for(lambda: len(store.attestations_at(6)) == 1, "own attestation of 6")
        assert all(len(store.attestations_at(h)) == 1 for h in range(7))
        assert store.refusals() == []
        queries = ChainQueries(store=store, validator=validator)
        head = queries.head()
        for block in factory.blocks[1:]:
            event = block.events[-1]
            proof = queries.inclusion(event["source"], event["id"], None)
            verify_inclusion(
                leaf_hash(canonicalize(event)),
                proof["leaf_index"],
                proof["tree_size"],
                [bytes.fromhex(node) for node in proof["audit_path"]],
                bytes.fromhex(head["log_root"]),
            )
            first = block.header
            consistency = queries.consistency(first.tree_size, head["tree_size"])
            verify_consistency(
                first.tree_size,
                head["tree_size"],
                bytes.fromhex(first.log_root),
                bytes.fromhex(head["log_root"]),
                [bytes.fromhex(node) for node in consistency["proof"]],
            )


def test_tampered_and_forged_blocks_are_refused_and_the_head_stays(
    kafka: KafkaSettings, topics: TopicNames, send: Callable[[bytes, int], None], tmp_path: Path
) -> None:
    factory = ChainFactory()
    factory.seal_many(2, 5)
    good = list(factory.blocks)
    factory.seal_many(1, 5)
    nxt = factory.blocks[-1]
    tampered = factory.resign(nxt, log_root="ab" * 32)
    forged = nxt.model_copy(update={"signature": b64url_encode(key_for("stranger").sign(b"x"))})
    with running_validator("validator-1", factory, kafka, topics, tmp_path) as (store, validator):
        publish(send, good)
        send(block_to_json(tampered), 3)
        send(block_to_json(forged), 3)
        wait_for(lambda: len(store.refusals()) == 2, "two refusals")
        assert [r.reason for r in store.refusals()] == ["BlockSignatureError", "LogRootError"]
        assert head_height(store) == 2
        fault = ChainQueries(store=store, validator=validator).head()["fault"]
        assert fault["reason"] == "BlockSignatureError"
        send(block_to_json(nxt), 3)
        wait_for(lambda: head_height(store) == 3, "the real block 3")


def test_a_restarted_validator_catches_up(
    kafka: KafkaSettings, topics: TopicNames, send: Callable[[bytes, int], None], tmp_path: Path
) -> None:
    factory = ChainFactory()
    factory.seal_many(3, 5)
    with running_validator("validator-1", factory, kafka, topics, tmp_path) as (store, _):
        publish(send, factory.blocks)
        wait_for(lambda: head_height(store) == 3, "height 3")
    factory.seal_many(3, 5)
    publish(send, factory.blocks[4:])
    with running_validator("validator-1", factory, kafka, topics, tmp_path) as (store, _):
        wait_for(lambda: head_height(store) == 6, "catching up to 6")
        # Its own attestation of a block is stored just after the block: wait for it too.
        wait_for(
            lambda: all(len(store.attestations_at(h)) == 1 for h in range(7)),
            "an attestation of every block",
        )
        assert store.refusals() == []


def test_three_validators_reach_finality_at_quorum_two(
    kafka: KafkaSettings, topics: TopicNames, send: Callable[[bytes, int], None], tmp_path: Path
) -> None:
    factory = ChainFactory()
    factory.seal_many(5, 10)
    with ExitStack() as stack:
        stores = [
            stack.enter_context(running_validator(name, factory, kafka, topics, tmp_path))[0]
            for name in ("validator-1", "validator-2", "validator-3")
        ]
        publish(send, factory.blocks)
        for store in stores:
            wait_for(lambda store=store: store.final_height() == 5, "finality of 5")
            wait_for(lambda store=store: len(store.attestations_at(5)) == 3, "3 attestations")
            head = store.head()
            assert head is not None
            assert head.block_hash == factory.blocks[-1].block_hash
            assert all(block.final for block in store.blocks(0, 5))


def test_a_cursor_past_missing_blocks_reads_the_topic_again(
    kafka: KafkaSettings, topics: TopicNames, send: Callable[[bytes, int], None], tmp_path: Path
) -> None:
    """As after a broker that lost its topics: the stored offset points past blocks the
    validator does not have, so it reads `ledger.blocks` again from the start."""
    factory = ChainFactory()
    factory.seal_many(5, 3)
    publish(send, factory.blocks)
    verifier = ChainVerifier(trusted_genesis=factory.genesis_event)
    with open_database("sqlite:///validator-1.db", data_dir=tmp_path) as database:
        migrate_chain_store(database)
        store = SqlChainStore(database=database)
        for block in factory.blocks[:3]:
            store.append(verifier.verify_block(block), raw=block_to_json(block), offset=4)
    with running_validator("validator-1", factory, kafka, topics, tmp_path) as (store, _):
        wait_for(lambda: head_height(store) == 5, "height 5 after the re-read")
        assert store.refusals() == []
