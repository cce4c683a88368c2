"""Publisher: what it hands the producer (value, key, header, topic), and how a missing ack
or a refused event surfaces. A fake producer stands in for librdkafka; the real broker is
in tests/e2e/test_client.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from careledger.client import ClientConfigError, EventBuildError, Publisher, PublishError
from shared.envelope import encode_event, parse_and_verify
from shared.keystore import write_key_file
from tests.unit.core.chainfactory import key_for

TYPE = "org.careledger.clinical.note.signed.v1"


class FakeMessage:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return 41


class FakeProducer:
    """Acknowledges, fails, stays silent or refuses, as told."""

    def __init__(self, config: dict[str, Any], behaviour: str = "ack") -> None:
        self.config = config
        self.behaviour = behaviour
        self.produced: list[dict[str, Any]] = []
        self.pending: list[Any] = []
        self.flushes = 0

    def produce(self, topic: str, **record: Any) -> None:
        if self.behaviour == "full":
            raise BufferError("queue full")
        self.produced.append({"topic": topic, **record})
        self.pending.append((topic, record["on_delivery"]))

    def flush(self, timeout: float) -> int:
        self.flushes += 1
        for topic, report in self.pending:
            if self.behaviour == "ack":
                report(None, FakeMessage(topic))
            elif self.behaviour == "fail":
                report(FakeError(), None)
        self.pending = []
        return 0


class FakeError:
    def str(self) -> str:
        return "Broker: Not enough in-sync replicas"


def publisher(behaviour: str = "ack", **options: Any) -> tuple[Publisher, list[FakeProducer]]:
    made: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(config, behaviour))
        return made[-1]

    client = Publisher(
        key=key_for("publisher"),
        source="https://video.example/app",
        producer_factory=factory,
        clock=lambda: datetime.now(UTC),
        **options,
    )
    return client, made


def test_publish_produces_the_canonical_event_keyed_by_subject_and_waits_for_the_ack() -> None:
    client, made = publisher(topic_prefix="tenant-a.")
    delivery = client.publish(type=TYPE, data={"encounter": "enc-1"}, subject="enc-1")
    record = made[0].produced[0]
    event = parse_and_verify(record["value"]).event
    assert record["topic"] == "tenant-a.clinical.events"
    assert record["key"] == b"enc-1"
    assert record["headers"] == [("content-type", b"application/cloudevents+json")]
    assert record["value"] == encode_event(event)
    assert (delivery.topic, delivery.partition, delivery.offset) == (
        "tenant-a.clinical.events",
        2,
        41,
    )
    assert (delivery.source, delivery.id) == ("https://video.example/app", event["id"])
    assert made[0].config["enable.idempotence"] is True
    assert made[0].config["acks"] == "all"
    assert event["signer"] == client.did
    assert client.source == "https://video.example/app"


def test_an_event_without_subject_is_keyed_by_its_id() -> None:
    client, made = publisher()
    delivery = client.publish(type=TYPE, data={}, source="urn:other")
    assert made[0].produced[0]["key"] == delivery.id.encode()
    assert delivery.source == "urn:other"


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [("fail", "in-sync"), ("silent", "no delivery report"), ("full", "queue full")],
)
def test_no_ack_is_a_publish_error(behaviour: str, message: str) -> None:
    client, _ = publisher(behaviour)
    with pytest.raises(PublishError, match=message):
        client.publish(type=TYPE, data={})


def test_a_bad_event_is_refused_and_nothing_is_produced() -> None:
    client, made = publisher()
    with pytest.raises(EventBuildError):
        client.publish(type="not-a-type", data={})
    signed = client.event(type=TYPE, data={"n": 1})
    with pytest.raises(EventBuildError, match="bad_signature"):
        client.publish_event({**signed, "data": {"n": 2}})
    assert made[0].produced == []
    assert client.publish_event(signed).id == signed["id"]


def test_only_input_topics_can_be_published_to() -> None:
    with pytest.raises(EventBuildError, match="not an input topic"):
        publisher(topic="ledger.blocks")


def test_a_publisher_from_a_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "video-app.json"
    write_key_file(path, key_for("publisher"))
    with Publisher.from_key_file(path, bootstrap_servers="127.0.0.1:1") as client:
        assert client.did == key_for("publisher").did
        assert client.source == "urn:careledger:client:video-app"
    path.write_text(json.dumps({"did": "nope"}))
    with pytest.raises(ClientConfigError):
        Publisher.from_key_file(path)
