"""Consumer lag from librdkafka statistics: the pure parser on a real document, and the gauge
every consumer of a process feeds."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from services.sealer.config import SealerSettings
from shared.kafka import KafkaSettings
from shared.kafka.lag import PartitionLag, consumer_lags
from shared.runtime.metrics import ConsumerLagMetrics

#: Captured from librdkafka 2.16 (confluent-kafka) consuming topic `t.x` of the embedded
#: broker: 5 messages per partition, partition 0 stored up to 5 (`store_offsets`), partition
#: 1 committed up to 3, and librdkafka's internal partition -1.
REAL = (Path(__file__).parent / "consumer_statistics.json").read_text()
LAG = "careledger_kafka_consumer_lag_messages"


def document() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(REAL)
    return value


def partitions(doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = doc["topics"]["t.x"]["partitions"]
    return result


def test_the_real_statistics_give_the_stored_and_the_committed_lags() -> None:
    real = partitions(document())
    assert real["0"]["consumer_lag"] == -1  # nothing committed: the stored lag counts
    assert real["0"]["consumer_lag_stored"] == 0
    assert real["1"]["consumer_lag"] == 2  # committed 3 of 5
    assert real["-1"]["partition"] == -1
    assert consumer_lags(REAL) == [PartitionLag("t.x", 0, 0), PartitionLag("t.x", 1, 2)]
    assert consumer_lags(REAL.encode()) == consumer_lags(REAL)


def test_the_smaller_known_lag_counts_and_unknown_lags_give_no_sample() -> None:
    doc = document()
    parts = partitions(doc)
    parts["0"].update(consumer_lag=7, consumer_lag_stored=4)
    parts["1"].update(consumer_lag=-1, consumer_lag_stored=-1)  # position not known yet
    parts["-1"].update(consumer_lag=9, consumer_lag_stored=9)  # internal: never a sample
    other = copy.deepcopy(doc["topics"]["t.x"])
    other["topic"] = "a.y"
    other["partitions"] = {"2": {**parts["0"], "partition": 2, "consumer_lag": 11}}
    doc["topics"]["a.y"] = other
    assert consumer_lags(json.dumps(doc)) == [PartitionLag("a.y", 2, 4), PartitionLag("t.x", 0, 4)]


def test_a_producer_document_or_one_without_topics_has_no_lag() -> None:
    doc = document()
    doc["type"] = "producer"
    del doc["topics"]
    assert consumer_lags(json.dumps(doc)) == []
    doc["topics"] = {"t.x": {"partitions": {"0": {"partition": 0, "consumer_lag": True}}}}
    assert consumer_lags(json.dumps(doc)) == []  # a bool is not a count


@pytest.mark.parametrize(
    ("text", "why"),
    [("[]", "a JSON object"), ('{"topics": []}', "not an object"), ("{not json", "property name")],
)
def test_what_is_not_a_statistics_object_raises_value_error(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        consumer_lags(text)


def test_a_reporter_sets_one_series_per_partition_and_drops_gone_ones() -> None:
    registry = CollectorRegistry()
    report = ConsumerLagMetrics.of(registry).reporter("follower")
    report(REAL)
    assert (
        registry.get_sample_value(LAG, {"consumer": "follower", "topic": "t.x", "partition": "1"})
        == 2
    )
    assert (
        registry.get_sample_value(LAG, {"consumer": "follower", "topic": "t.x", "partition": "0"})
        == 0
    )
    doc = document()
    partitions(doc)["1"]["consumer_lag"] = -1  # unassigned since: its series goes
    partitions(doc)["0"]["consumer_lag_stored"] = 3
    report(json.dumps(doc))
    assert (
        registry.get_sample_value(LAG, {"consumer": "follower", "topic": "t.x", "partition": "1"})
        is None
    )
    assert (
        registry.get_sample_value(LAG, {"consumer": "follower", "topic": "t.x", "partition": "0"})
        == 3
    )
    report("{broken")  # logged, and the series stay as they were
    assert (
        registry.get_sample_value(LAG, {"consumer": "follower", "topic": "t.x", "partition": "0"})
        == 3
    )


def test_consumers_of_one_process_share_the_gauge_of_their_registry() -> None:
    registry = CollectorRegistry()
    lag = ConsumerLagMetrics.of(registry)
    assert ConsumerLagMetrics.of(registry) is lag
    assert ConsumerLagMetrics.of(CollectorRegistry()) is not lag
    lag.reporter("follower")(REAL)
    lag.reporter("billing_engine")(REAL)
    consumers = {
        sample.labels["consumer"]
        for family in registry.collect()
        for sample in family.samples
        if sample.name == LAG
    }
    assert consumers == {"follower", "billing_engine"}
    with pytest.raises(ValueError, match="unknown consumer"):
        lag.reporter("validator-1")  # names are kinds of consumer, never instances


def test_statistics_are_asked_for_only_with_a_callback_at_the_configured_interval() -> None:
    seen: list[str] = []
    kafka = KafkaSettings(statistics_interval_ms=2000)
    config = kafka.consumer_config("g", statistics=seen.append, **{"enable.partition.eof": False})
    assert config["statistics.interval.ms"] == 2000
    assert config["stats_cb"] == seen.append
    assert config["enable.partition.eof"] is False
    plain = kafka.consumer_config("g")
    assert "statistics.interval.ms" not in plain
    assert "stats_cb" not in plain
    assert KafkaSettings().statistics_interval_ms == 5000
    for wrong in (0, 499, 300_001):
        with pytest.raises(ValidationError):
            KafkaSettings(statistics_interval_ms=wrong)


def test_the_service_settings_carry_the_interval_to_every_client() -> None:
    settings = SealerSettings(kafka_statistics_interval_ms=2500)
    assert settings.kafka().statistics_interval_ms == 2500
    assert SealerSettings().kafka().statistics_interval_ms == 5000
    with pytest.raises(ValidationError):
        SealerSettings(kafka_statistics_interval_ms=100)
