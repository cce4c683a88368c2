"""The validator service as wiring builds it (dev keys and genesis in a test data dir)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer
from fastapi.testclient import TestClient

from careledger.devchain import ensure_dev_chain, key_path
from services.validator.config import ValidatorSettings
from services.validator.wiring import build
from shared.block import block_to_json, build_genesis_block
from shared.kafka import KafkaSettings, ensure_topics
from shared.keystore import read_genesis_file, read_key_file
from shared.topics import LEDGER_BLOCKS, TopicNames

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.05)


def test_the_service_verifies_genesis_reports_ready_and_serves_its_head(
    kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_dev_chain(tmp_path)
    prefix = f"w{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka, TopicNames(prefix).specs(input_partitions=1))
    event, _ = read_genesis_file(tmp_path / "genesis.json")
    sealer = read_key_file(key_path(tmp_path, "sealer"))
    genesis = build_genesis_block(event, sealer, datetime.now(UTC))
    producer = Producer(kafka.producer_config())
    producer.produce(f"{prefix}{LEDGER_BLOCKS}", key=b"0", value=block_to_json(genesis))
    assert producer.flush(10) == 0
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    settings = ValidatorSettings(
        data_dir=tmp_path, topic_prefix=prefix, log_format="text", validator_name="validator-2"
    )
    with TestClient(build(settings)) as client:
        _wait(lambda: client.get("/v1/head").status_code == 200)
        head = client.get("/v1/head").json()
        assert head["height"] == 0
        assert head["block_hash"] == genesis.block_hash
        assert [a["validator"] for a in head["attestations"]] == [
            read_key_file(key_path(tmp_path, "validator-2")).did
        ]
        ready = client.get("/readyz").json()
        assert ready["checks"]["validation"] == "ok"
        metrics = client.get("/metrics").text
        assert "careledger_validator_height 0.0" in metrics
        assert 'careledger_validator_blocks_refused_total{reason="' not in metrics
