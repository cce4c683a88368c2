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


def test_the_service_witnesses_another_chain_named_in_its_settings(
    kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.checkpoint import (
        Checkpoint,
        note_signature,
        parse_note,
        verify_cosignature,
    )

    ensure_dev_chain(tmp_path / "ours")
    ensure_dev_chain(tmp_path / "theirs", chain_id="clinic-b")
    prefix = f"x{uuid.uuid4().hex[:10]}."
    ensure_topics(kafka, TopicNames(prefix).specs(input_partitions=1))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap_servers)
    settings = ValidatorSettings(
        data_dir=tmp_path / "ours",
        topic_prefix=prefix,
        log_format="text",
        validator_name="validator-1",
        checkpoint_origin="ledger.example/ours",
        witness_chains={"careledger/clinic-b": tmp_path / "theirs" / "genesis.json"},
    )
    head = Checkpoint("careledger/clinic-b", 3, bytes(range(32)))
    signers = [read_key_file(key_path(tmp_path / "theirs", f"validator-{n}")) for n in (1, 2)]
    note = (
        head.body().decode()
        + "\n"
        + "".join(note_signature(head.body(), key).line() for key in signers)
    )
    with TestClient(build(settings)) as client:
        assert client.get("/v1/checkpoint").status_code == 503  # nothing final here yet
        answer = client.post("/v1/add-checkpoint", content=f"old 0\n\n{note}")
        assert answer.status_code == 200, answer.text
        me = read_key_file(key_path(tmp_path / "ours", "validator-1")).did
        line = parse_note(note + answer.text).signatures[-1]
        assert verify_cosignature(line, head, name=me, did=me) > 0
        unknown = note.replace("careledger/clinic-b", "careledger/clinic-c", 1)
        assert client.post("/v1/add-checkpoint", content=f"old 0\n\n{unknown}").status_code == 404
        ours = Checkpoint("ledger.example/ours", 3, bytes(32))
        lone = ours.body().decode() + "\n" + note_signature(ours.body(), signers[0]).line()
        refused = client.post("/v1/add-checkpoint", content=f"old 0\n\n{lone}")
        assert refused.status_code == 403  # our origin is known; their keys are not ours
