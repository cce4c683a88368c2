"""Two complete chains side by side on ONE broker, by topic prefix, never mix (docs/chains.md).

Each chain is a real `careledger up` (every service as a process) with its own data
directory, keys, genesis (another chain id), prefix and HTTP ports, both on one embedded
broker that the test runs. Events go into both; once both are final at quorum the test
reads everything back: the chains verify from their own genesis only, hold only their own
events, their blocks, attestations and rejections are on their own prefixed topics only,
their consumer groups are their own, and a validator of one refuses a block of the other.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from careledger.broker import EmbeddedBroker, free_port, port_open
from careledger.client import Delivery, complete_event, produce_event
from careledger.devchain import generate_key
from careledger.topology import BROKER_PORT, default_services
from shared.attestation import Attestation, verify_attestation
from shared.block import Block, read_block, verify_block_signature
from shared.genesis import GenesisConfig, genesis_source
from shared.kafka import KafkaSettings
from shared.keystore import read_genesis_file, read_key_file
from shared.topics import (
    ALL_TOPICS,
    CLINICAL_EVENTS,
    LEDGER_ATTESTATIONS,
    LEDGER_BLOCKS,
    LEDGER_REJECTED,
    TopicNames,
)
from tests.e2e.conftest import (
    CARELEDGER,
    RunningSystem,
    clinical_note,
    free_offset,
    start_system,
    wait_until_final,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

EVENTS = 12  # per chain
#: Generous: two whole systems (14 service processes) start on two shared cores.
READY_TIMEOUT = 180.0
FINAL_TIMEOUT = 120.0
POLL_TIMEOUT = 60.0

T = TypeVar("T")
DedupKey = tuple[str, str]


@dataclass
class Chain:
    """One running chain and what the test knows about it."""

    name: str
    system: RunningSystem
    topics: TopicNames
    genesis: GenesisConfig
    genesis_file: Path
    published: list[Delivery]
    stranger: Delivery | None = None

    @property
    def validators(self) -> list[str]:
        return [
            spec.url()
            for spec in default_services(port_offset=self.system.offset)
            if spec.name.startswith("validator-")
        ]

    @property
    def sealed_keys(self) -> set[DedupKey]:
        return {(d.source, d.id) for d in self.published}


def poll(what: str, attempt: Callable[[], T | None], *, timeout: float = POLL_TIMEOUT) -> T:
    """`attempt()` until it returns something other than None (a condition, not a sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = attempt()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.3)


def read_topic(bootstrap: str, topic: str) -> list[bytes]:
    """Every record of partition 0 of `topic`, from its start to its end at call time."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "e2e-chains-reader",  # assign() only, nothing committed
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.message.max.bytes": 8 * 1024 * 1024,
        }
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        if high <= low:
            return []
        consumer.assign([TopicPartition(topic, 0, low)])
        values: list[bytes] = []
        deadline = time.monotonic() + POLL_TIMEOUT
        while len(values) < high - low:
            assert time.monotonic() < deadline, f"{topic}: {len(values)} of {high - low} read"
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            values.append(message.value() or b"")
        return values
    finally:
        consumer.close()


def blocks_on(bootstrap: str, chain: Chain) -> list[Block]:
    return [
        read_block(raw)[0] for raw in read_topic(bootstrap, chain.topics.physical(LEDGER_BLOCKS))
    ]


def dedup_key(event: dict[str, Any]) -> DedupKey:
    return (str(event["source"]), str(event["id"]))


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CARELEDGER, *arguments], capture_output=True, text=True, check=False, timeout=120
    )


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(port=free_port()) as running:
        yield running


@pytest.fixture(scope="module")
def chains(
    broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Chain, Chain]]:
    """Chains `chain-a` and `chain-b` running on `broker`, both ready."""
    first = free_offset()
    second = first
    while second == first:
        second = free_offset()
    systems: list[RunningSystem] = []
    try:
        for name, offset in (("chain-a", first), ("chain-b", second)):
            directory = tmp_path_factory.mktemp(name)
            systems.append(
                start_system(
                    directory / "data",
                    directory / "up.log",
                    offset,
                    "--topic-prefix",
                    f"{name}.",
                    "--chain-id",
                    name,
                    bootstrap=broker.bootstrap_servers,
                )
            )
        for system in systems:  # started side by side; waited for one after the other
            system.wait_for_output("all services ready", timeout=READY_TIMEOUT)
        made = []
        for system, name in zip(systems, ("chain-a", "chain-b"), strict=True):
            genesis_file = system.data_dir / "genesis.json"
            made.append(
                Chain(
                    name=name,
                    system=system,
                    topics=TopicNames(f"{name}."),
                    genesis=read_genesis_file(genesis_file)[1],
                    genesis_file=genesis_file,
                    published=[],
                )
            )
        yield made[0], made[1]
    finally:
        for system in systems:
            if system.process.poll() is None:
                try:
                    system.interrupt(timeout=20)
                except subprocess.TimeoutExpired:
                    system.process.kill()


@pytest.fixture(scope="module")
def final(
    chains: tuple[Chain, Chain], broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Chain, Chain]:
    """Both chains with `EVENTS` events each (signed by each chain's own publisher, sent
    interleaved) and one event of a stranger each, final at quorum on every validator."""
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
    for chain in chains:
        stranger_key = generate_key(tmp_path_factory.mktemp(f"{chain.name}-stranger"), "stranger")
        unknown = complete_event(
            {"type": "org.careledger.clinical.note.signed.v1", "data": {"n": -1}},
            key=stranger_key,
            default_source=f"https://stranger.example/{chain.name}",
        )
        chain.stranger = produce_event(kafka, chain.topics.physical(CLINICAL_EVENTS), unknown)
    keys = {
        chain.name: read_key_file(chain.system.data_dir / "keys" / "publisher-demo.json")
        for chain in chains
    }
    for n in range(EVENTS):
        for chain in chains:
            event = clinical_note(keys[chain.name], n, f"{chain.name}-enc-{n % 3}")
            delivery = produce_event(kafka, chain.topics.physical(CLINICAL_EVENTS), event)
            assert delivery.topic == chain.topics.physical(CLINICAL_EVENTS)
            chain.published.append(delivery)
    for chain in chains:
        heads = [
            wait_until_final(url, EVENTS + 1, timeout=FINAL_TIMEOUT) for url in chain.validators
        ]
        assert len({head["block_hash"] for head in heads}) == 1, f"{chain.name}: validators agree"
    return chains


def test_each_chain_has_its_own_genesis_keys_and_ready_services(
    chains: tuple[Chain, Chain],
) -> None:
    a, b = chains
    assert (a.genesis.chain_id, b.genesis.chain_id) == ("chain-a", "chain-b")
    assert a.genesis.sealer != b.genesis.sealer, "each data directory has keys of its own"
    assert not set(a.genesis.validators) & set(b.genesis.validators)
    for chain in chains:
        status = run_cli("status", "--port-offset", str(chain.system.offset), "--json")
        assert status.returncode == 0, status.stdout + status.stderr


def test_each_chain_verifies_from_its_own_genesis_and_not_from_the_other(
    final: tuple[Chain, Chain],
) -> None:
    a, b = final
    for chain, other in ((a, b), (b, a)):
        own = run_cli("verify", "--from", chain.validators[0], "--genesis", str(chain.genesis_file))
        assert own.returncode == 0, own.stdout + own.stderr
        assert json.loads(own.stdout)["tree_size"] == EVENTS + 1
        foreign = run_cli(
            "verify", "--from", chain.validators[1], "--genesis", str(other.genesis_file)
        )
        assert foreign.returncode == 1, foreign.stdout + foreign.stderr
        assert json.loads(foreign.stdout)["verified"] is False


def test_each_chains_blocks_and_attestations_are_on_its_own_topics_only(
    final: tuple[Chain, Chain], broker: EmbeddedBroker
) -> None:
    a, b = final
    for chain, other in ((a, b), (b, a)):
        blocks = blocks_on(broker.bootstrap_servers, chain)
        assert blocks, f"no blocks on {chain.topics.physical(LEDGER_BLOCKS)}"
        sealed: set[DedupKey] = set()
        for block in blocks:
            assert block.header.chain_id == chain.name
            verify_block_signature(block, chain.genesis.sealer)  # raises if not its sealer's
            # Blocks record logical topic names: the prefix never reaches the chain.
            assert {s.topic for s in block.header.sources} <= set(ALL_TOPICS)
            sealed |= {dedup_key(event) for event in block.events}
        genesis_keys = {k for k in sealed if k[0] == genesis_source(chain.name)}
        assert len(genesis_keys) == 1
        assert sealed - genesis_keys == chain.sealed_keys, "exactly its own events"
        assert not sealed & other.sealed_keys

        topic = chain.topics.physical(LEDGER_ATTESTATIONS)
        attestations = [
            Attestation.model_validate_json(raw)
            for raw in read_topic(broker.bootstrap_servers, topic)
        ]
        assert attestations
        for attestation in attestations:
            verify_attestation(
                attestation, chain_id=chain.name, validators=chain.genesis.validators
            )
        assert {x.block_hash for x in attestations} <= {block.block_hash for block in blocks}


def test_each_chain_rejects_its_own_stranger_and_nothing_of_the_other(
    final: tuple[Chain, Chain], broker: EmbeddedBroker
) -> None:
    a, b = final
    for chain, other in ((a, b), (b, a)):
        assert chain.stranger is not None
        assert other.stranger is not None
        topic = chain.topics.physical(LEDGER_REJECTED)

        def rejections(topic: str = topic) -> list[dict[str, Any]] | None:
            records = [json.loads(raw) for raw in read_topic(broker.bootstrap_servers, topic)]
            return records or None

        # At least once: a rejection may be recorded twice, so compare as sets.
        records = poll(f"{chain.name} rejections", rejections)
        rejected = {dedup_key(json.loads(record["raw"])) for record in records}
        assert rejected == {(chain.stranger.source, chain.stranger.id)}
        assert {record["reason"] for record in records} == {"unknown_signer"}
        assert {record["topic"] for record in records} == {CLINICAL_EVENTS}
        others = other.sealed_keys | {(other.stranger.source, other.stranger.id)}
        assert not rejected & others


def test_every_topic_and_consumer_group_on_the_broker_belongs_to_one_chain(
    final: tuple[Chain, Chain], broker: EmbeddedBroker
) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    ours = {name for name in admin.list_topics(timeout=10).topics if not name.startswith("__")}
    every = set()
    for chain in final:
        expected = {chain.topics.physical(topic) for topic in ALL_TOPICS}
        assert {name for name in ours if name.startswith(f"{chain.name}.")} == expected
        every |= expected
    assert ours == every

    # The sealer commits its input offsets under its group, billing's faust app under its
    # own; validators and followers read with assign() and commit nothing, so the broker
    # never sees their (also prefixed, see the unit tests) group ids.
    wanted = {chain.topics.client_name(name) for chain in final for name in ("sealer", "billing")}

    seen: set[str] = set()

    def groups() -> set[str] | None:
        listed = admin.list_consumer_groups(request_timeout=10).result().valid
        seen.clear()
        seen.update(group.group_id for group in listed)
        return set(seen) if wanted <= seen else None

    try:
        found = poll("both chains' consumer groups", groups)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; wanted {sorted(wanted)}, listed {sorted(seen)}") from None
    for group in found - {"e2e-chains-reader"}:
        owners = [c.name for c in final if group.startswith(f"{c.name}.careledger-")]
        assert len(owners) == 1, f"consumer group {group!r} belongs to no single chain"


def test_a_validator_of_one_chain_refuses_a_block_of_the_other(
    final: tuple[Chain, Chain], broker: EmbeddedBroker
) -> None:
    """Chain B's block 1, put on chain A's `ledger.blocks` (a sealer pointed at the wrong
    prefix): every validator of A refuses it with evidence, and A's chain is unchanged."""
    a, b = final
    foreign = next(
        raw
        for raw in read_topic(broker.bootstrap_servers, b.topics.physical(LEDGER_BLOCKS))
        if read_block(raw)[0].header.height == 1
    )
    before = [httpx.get(f"{url}/v1/head").json() for url in a.validators]
    assert [head.get("fault") for head in before] == [None] * len(before)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    producer.produce(a.topics.physical(LEDGER_BLOCKS), key=b"1", value=foreign)
    assert producer.flush(30) == 0

    for url, earlier in zip(a.validators, before, strict=True):

        def refused(url: str = url) -> dict[str, Any] | None:
            head: dict[str, Any] = httpx.get(f"{url}/v1/head").json()
            return head if head.get("fault") else None

        head = poll(f"{url} refuses chain-b's block", refused)
        # Below A's head, so the validator checks the signature first: not A's sealer.
        assert head["fault"]["reason"] == "BlockSignatureError", head["fault"]
        assert head["fault"]["sealer"] == a.genesis.sealer
        assert head["fault"]["height"] == 1
        assert (head["height"], head["block_hash"]) == (earlier["height"], earlier["block_hash"])
    again = run_cli("verify", "--from", a.validators[2], "--genesis", str(a.genesis_file))
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["tree_size"] == EVENTS + 1


def test_up_refuses_a_kept_genesis_of_another_chain_and_leaves_no_broker(tmp_path: Path) -> None:
    """A data directory is one chain: `up --chain-id` of another one stops at once, with the
    reason, and takes its embedded broker down with it."""
    data_dir = tmp_path / "data"
    created = run_cli("init", "--data-dir", str(data_dir), "--chain-id", "chain-a")
    assert created.returncode == 0, created.stdout + created.stderr
    offset = free_offset()
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    refused = subprocess.run(
        [
            *CARELEDGER,
            "up",
            "--data-dir",
            str(data_dir),
            "--port-offset",
            str(offset),
            "--chain-id",
            "chain-b",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**env, "COLUMNS": "300"},
    )
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "is the genesis of chain 'chain-a', not 'chain-b'" in refused.stderr
    assert not port_open("127.0.0.1", BROKER_PORT + offset), "the embedded broker was left"
    assert read_genesis_file(data_dir / "genesis.json")[1].chain_id == "chain-a"
