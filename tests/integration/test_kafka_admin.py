"""Topic creation and the broker probe against the real embedded broker."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from careledger.broker import BrokerStartError, EmbeddedBroker
from shared.kafka import BrokerUnavailableError, KafkaSettings, ensure_topics, probe_broker
from shared.topics import ALL_TOPICS, LEDGER_MAX_MESSAGE_BYTES, TopicNames

pytestmark = pytest.mark.integration


def test_ensure_topics_creates_the_brief_topics_once(kafka: KafkaSettings) -> None:
    names = TopicNames(f"t{uuid.uuid4().hex[:8]}.")
    specs = names.specs(input_partitions=4)
    assert sorted(ensure_topics(kafka, specs)) == sorted(names.physical(t) for t in ALL_TOPICS)
    assert ensure_topics(kafka, specs) == []
    admin = AdminClient(kafka.client_config())
    metadata = admin.list_topics(timeout=5)
    assert len(metadata.topics[names.physical("clinical.events")].partitions) == 4
    assert len(metadata.topics[names.physical("ledger.blocks")].partitions) == 1
    blocks = ConfigResource(ConfigResource.Type.TOPIC, names.physical("ledger.blocks"))
    config = admin.describe_configs([blocks])[blocks].result(10)
    assert config["max.message.bytes"].value == str(LEDGER_MAX_MESSAGE_BYTES)


def test_probe_sees_a_paused_broker_as_unavailable(fresh_broker: EmbeddedBroker) -> None:
    settings = KafkaSettings(bootstrap_servers=fresh_broker.bootstrap_servers)
    assert probe_broker(settings) == 1
    fresh_broker.pause()
    try:
        with pytest.raises(BrokerUnavailableError, match=fresh_broker.bootstrap_servers):
            probe_broker(settings, timeout=1.0)
    finally:
        fresh_broker.resume()
    assert probe_broker(settings, timeout=5.0) == 1


def test_a_second_broker_on_a_taken_port_refuses_to_start(broker: EmbeddedBroker) -> None:
    with pytest.raises(BrokerStartError, match="already in use"):
        EmbeddedBroker(port=broker.port).start()


def test_probe_of_nothing_listening_fails_fast() -> None:
    with pytest.raises(BrokerUnavailableError):
        probe_broker(KafkaSettings(bootstrap_servers="127.0.0.1:1"), timeout=0.5)
