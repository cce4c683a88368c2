"""The identity service as wiring builds it: real broker, SQLite, dev keys; event via the outbox."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from fastapi.testclient import TestClient

from careledger.devchain import ensure_dev_chain, key_path, pseudonym_key_path
from services.identity.config import IdentitySettings
from services.identity.wiring import build
from shared.auth import bearer_headers
from shared.block import block_to_json, build_genesis_block
from shared.envelope import parse_and_verify
from shared.kafka import KafkaSettings, ensure_topics
from shared.keystore import read_genesis_file, read_key_file, read_pseudonym_key_file
from shared.pseudonym import patient_pseudonym
from shared.topics import IDENTITY_EVENTS, LEDGER_BLOCKS, TopicNames

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


def _wait(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.1)


def _identity_events(kafka: KafkaSettings, topic: str, partitions: int) -> list[bytes]:
    consumer = Consumer(kafka.consumer_config(f"t-{uuid.uuid4().hex[:8]}"))
    found: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + 15
        while not found and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                found.append(message.value() or b"")
    finally:
        consumer.close()
    return found


def test_a_patient_registration_reaches_identity_events_and_the_follower_is_ready(
    kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_dev_chain(tmp_path)
    prefix = f"i{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka, TopicNames(prefix).specs(input_partitions=1))
    event, _ = read_genesis_file(tmp_path / "genesis.json")
    genesis = build_genesis_block(
        event, read_key_file(key_path(tmp_path, "sealer")), datetime.now(UTC)
    )
    producer = Producer(kafka.producer_config())
    producer.produce(f"{prefix}{LEDGER_BLOCKS}", key=b"0", value=block_to_json(genesis))
    assert producer.flush(10) == 0
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    settings = IdentitySettings(data_dir=tmp_path, topic_prefix=prefix, log_format="text")
    patient = read_key_file(key_path(tmp_path, "records"))  # any key serves as a patient's
    with TestClient(build(settings)) as client:
        _wait(lambda: client.get("/readyz").status_code == 200)
        assert client.get("/readyz").json()["checks"]["chain-follower"] == "ok"
        answer = client.post("/v1/patients", json={}, headers=bearer_headers(patient, "identity"))
        assert answer.status_code == 201, answer.text
        pseudonym = patient_pseudonym(
            read_pseudonym_key_file(pseudonym_key_path(tmp_path)), patient.did
        )
        assert answer.json()["data"] == {"pseudonym": pseudonym}
        (value,) = _identity_events(kafka, f"{prefix}{IDENTITY_EVENTS}", 1)
        parsed = parse_and_verify(value)
        assert parsed.event["id"] == answer.json()["event"]["id"]
        assert parsed.signer == read_key_file(key_path(tmp_path, "identity")).did
        assert patient.did not in value.decode()
        metrics = client.get("/metrics").text
        assert 'careledger_identity_changes_total{kind="patient_registered"} 1.0' in metrics
        assert "careledger_follower_height 0.0" in metrics
        described = client.get(
            f"/v1/dids/{patient.did}", headers=bearer_headers(patient, "identity")
        ).json()
        roles = {role["role"]: role for role in described["roles"]}
        assert roles["patient"]["status"] == "pending"
    assert json.loads(value)["subject"] == pseudonym
