"""The sealer service as wiring builds it (dev keys and genesis in a test data dir), in-process."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from fastapi.testclient import TestClient

from careledger.devchain import ensure_dev_chain, key_path
from services.sealer.config import SealerSettings
from services.sealer.wiring import build
from shared.envelope import build_event, encode_event, sign_event, uuid7
from shared.kafka import KafkaSettings, ensure_topics
from shared.keystore import read_key_file
from shared.topics import CLINICAL_EVENTS, TopicNames

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _wait(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.05)


def test_the_service_seals_reports_ready_and_counts(
    kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_dev_chain(tmp_path)
    prefix = f"a{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka, TopicNames(prefix).specs(input_partitions=2))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    settings = SealerSettings(data_dir=tmp_path, topic_prefix=prefix, log_format="text")
    publisher = read_key_file(key_path(tmp_path, "publisher-demo"))
    producer = Producer(kafka.producer_config())
    for n in range(5):
        event = build_event(
            source="https://video-consult.example/",
            type="org.careledger.clinical.consultation.completed.v1",
            id=uuid7(n, n.to_bytes(10, "big")),
            time="2026-11-24T11:00:00Z",
            data={"n": n},
        )
        value = encode_event(sign_event(event, publisher))
        producer.produce(f"{prefix}{CLINICAL_EVENTS}", value=value, partition=n % 2)
    producer.produce(f"{prefix}{CLINICAL_EVENTS}", value=b"not json", partition=0)
    assert producer.flush(10) == 0

    with TestClient(build(settings)) as client:

        def sealed() -> bool:
            text = client.get("/metrics").text
            return "careledger_sealer_events_sealed_total 5.0" in text

        _wait(sealed)
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["sealer"] == "ok"
        metrics = client.get("/metrics").text
        assert 'careledger_sealer_events_rejected_total{reason="malformed"} 1.0' in metrics
        height = re.search(r"^careledger_sealer_height (\S+)$", metrics, re.MULTILINE)
        assert height is not None
        assert 1 <= float(height.group(1)) <= 5
        assert "careledger_sealer_block_cut_seconds_count" in metrics
        assert "careledger_sealer_leader 1.0" in metrics
    # The store outlives the process: a second start resumes at the same head.
    with TestClient(build(settings)) as client:
        _wait(lambda: client.get("/readyz").status_code == 200)
        assert "careledger_sealer_events_sealed_total 0.0" in client.get("/metrics").text
