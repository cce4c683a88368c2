"""Every name a chain shows the cluster carries its topic prefix: topics, consumer groups,
client ids, the billing faust app id. Two chains with two prefixes share none of them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from careledger.topology import cluster_settings
from services.billing.adapters.stream import BlockStream
from services.billing.config import BillingSettings
from services.identity.config import IdentitySettings
from services.records.config import RecordsSettings
from services.sealer.config import SealerSettings
from services.validator.config import ValidatorSettings
from shared.follower import FollowerState
from shared.follower.kafka import ChainFollower
from shared.kafka import KafkaSettings
from shared.runtime.settings import ServiceSettings
from shared.topics import (
    ALL_TOPICS,
    MAX_TOPIC_PREFIX_LENGTH,
    TopicNames,
    check_topic_prefix,
)
from tests.unit.core.chainfactory import ChainFactory

PREFIXES = ("chain-a.", "chain-b.")


@pytest.fixture(autouse=True)
def _no_prefix_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARELEDGER_TOPIC_PREFIX", raising=False)
    monkeypatch.delenv("CARELEDGER_VALIDATOR_NAME", raising=False)


def every_service_settings(prefix: str, data_dir: Path) -> list[ServiceSettings]:
    """The settings of each process `careledger up` runs, under one prefix."""
    common: dict[str, Any] = {"data_dir": data_dir, "topic_prefix": prefix}
    validators = [ValidatorSettings(**common, validator_name=f"validator-{n}") for n in (1, 2, 3)]
    return [
        IdentitySettings(**common),
        RecordsSettings(**common),
        BillingSettings(**common),
        SealerSettings(**common),
        *validators,
    ]


# --- TopicNames ----------------------------------------------------------------------


def test_physical_and_logical_topic_names_round_trip() -> None:
    names = TopicNames("chain-a.")
    for logical in ALL_TOPICS:
        assert names.physical(logical) == f"chain-a.{logical}"
        assert names.logical(names.physical(logical)) == logical
    with pytest.raises(ValueError, match=r"does not carry the prefix 'chain-a\.'"):
        names.logical("chain-b.ledger.blocks")


def test_a_client_name_is_the_prefix_then_careledger_and_the_name() -> None:
    assert TopicNames("chain-a.").client_name("sealer") == "chain-a.careledger-sealer"
    # Without a prefix the names are those of a single-chain deployment, unchanged.
    assert TopicNames().client_name("sealer") == "careledger-sealer"
    with pytest.raises(ValueError, match="must not be empty"):
        TopicNames("chain-a.").client_name("")


@pytest.mark.parametrize("prefix", ["", "eu1.", "tenant_7-", "A.b-c_d.", "x" * 200])
def test_a_prefix_of_topic_name_characters_is_accepted(prefix: str) -> None:
    assert check_topic_prefix(prefix) == prefix
    assert TopicNames(prefix).prefix == prefix


@pytest.mark.parametrize("prefix", ["a b.", "tenant/a.", "é.", "a:b.", "x" * 201])
def test_a_prefix_kafka_could_not_name_a_topic_with_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match=f"at most {MAX_TOPIC_PREFIX_LENGTH} of A-Z"):
        check_topic_prefix(prefix)
    with pytest.raises(ValueError, match="a topic prefix is"):
        TopicNames(prefix)


# --- the services' names -------------------------------------------------------------


def test_each_service_names_its_clients_under_the_prefix(tmp_path: Path) -> None:
    expected = [
        "identity",
        "records",
        "billing",
        "sealer",
        "validator-1",
        "validator-2",
        "validator-3",
    ]
    for prefix in ("", *PREFIXES):
        settings = every_service_settings(prefix, tmp_path)
        names = [f"{prefix}careledger-{name}" for name in expected]
        # client_name is the sealer's and validators' consumer group and billing's faust
        # app id (wiring); kafka().client_id is every producer's and consumer's client.id.
        assert [s.client_name for s in settings] == names
        assert [s.kafka().client_id for s in settings] == names
        assert all(s.topics == TopicNames(prefix) for s in settings)


def test_a_bad_prefix_stops_a_service_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="topic_prefix"):
        SealerSettings(data_dir=tmp_path, topic_prefix="tenant a.")
    with pytest.raises(ValidationError, match="topic_prefix"):
        SealerSettings(data_dir=tmp_path, topic_prefix="x" * (MAX_TOPIC_PREFIX_LENGTH + 1))


def test_the_cli_names_its_clients_under_the_prefix() -> None:
    names = TopicNames("chain-b.")
    for role in ("up", "topics", "publish"):
        settings = cluster_settings("127.0.0.1:9092", names, role)
        assert settings.bootstrap_servers == "127.0.0.1:9092"
        assert settings.client_id == f"chain-b.careledger-{role}"
        assert settings.client_config()["client.id"] == f"chain-b.careledger-{role}"


def test_two_prefixes_share_no_topic_group_or_client_id(tmp_path: Path) -> None:
    def names_of(prefix: str) -> set[str]:
        topics = TopicNames(prefix)
        settings = every_service_settings(prefix, tmp_path)
        followers = {topics.client_name(f"{name}-follower") for name in ("identity", "records")}
        return (
            {topics.physical(topic) for topic in ALL_TOPICS}
            | {s.client_name for s in settings}
            | {s.kafka().client_id for s in settings}
            | followers
            | {f"{s.client_name}.reread" for s in settings if s.instance_name == "billing"}
            | {cluster_settings("b", topics, role).client_id for role in ("up", "publish")}
        )

    first, second = (names_of(prefix) for prefix in PREFIXES)
    assert len(first) == len(second) == 7 + 7 + 2 + 1 + 2
    assert first.isdisjoint(second)
    assert all(name.startswith(PREFIXES[0]) for name in first)
    assert all(name.startswith(PREFIXES[1]) for name in second)


def test_the_billing_faust_app_and_its_group_are_named_under_the_prefix(
    tmp_path: Path,
) -> None:
    settings = BillingSettings(data_dir=tmp_path, topic_prefix="chain-a.")
    stream = BlockStream(
        kafka=settings.kafka(),
        topics=settings.topics,
        handler=lambda _message: pytest.fail("nothing is consumed here"),
        app_id=settings.client_name,
        registry=CollectorRegistry(),
    )
    app = stream._app(tmp_path)  # built, never started: no broker is contacted
    assert app.conf.id == "chain-a.careledger-billing"  # faust's consumer group id
    assert app.conf.broker_client_id == "chain-a.careledger-billing"


class _NothingToRead:
    """A consumer that is assigned its partition and never has a message."""

    def __init__(self) -> None:
        self.assigned: list[Any] = []
        self._idle = threading.Event()

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = partitions

    def poll(self, timeout: float) -> None:
        self._idle.wait(timeout)

    def close(self) -> None:
        pass


class _NoBlocksYet:
    def position(self) -> FollowerState | None:
        return None


def test_the_chain_follower_reads_its_prefixed_topic_under_a_prefixed_group() -> None:
    configs: list[dict[str, Any]] = []
    created = threading.Event()
    consumer = _NothingToRead()

    def factory(config: dict[str, Any]) -> _NothingToRead:
        configs.append(config)
        created.set()
        return consumer

    follower = ChainFollower(
        genesis_event=ChainFactory().genesis_event,
        handler=_NoBlocksYet(),  # type: ignore[arg-type]  # position() is all it asks here
        kafka=KafkaSettings(client_id="chain-b.careledger-records"),
        topics=TopicNames("chain-b."),
        client_name="records-follower",
        registry=CollectorRegistry(),
        consumer_factory=factory,
    )
    follower.start()
    try:
        assert created.wait(10), "the follower made no consumer"
    finally:
        follower.stop()
    (config,) = configs
    assert config["group.id"] == "chain-b.careledger-records-follower"
    assert config["client.id"] == "chain-b.careledger-records"
    assert [p.topic for p in consumer.assigned] == ["chain-b.ledger.blocks"]
