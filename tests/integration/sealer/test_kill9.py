"""`kill -9` of the sealer process during a stream, restarted each time: exactly-once sealing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from careledger.broker import free_port
from careledger.devchain import ensure_dev_chain, key_path
from services.sealer.adapters.sql import SqlChainStore
from services.sealer.errors import TransientError
from shared.block import block_from_json
from shared.chain import verify_chain
from shared.envelope import build_event, encode_event, sign_event, uuid7
from shared.kafka import KafkaSettings, ensure_topics
from shared.keystore import read_genesis_file, read_key_file
from shared.store import open_database
from shared.topics import CLINICAL_EVENTS, TopicNames

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

EVENTS = 600
PARTITIONS = 3


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.sealer"], env=env, stdout=out, stderr=out
        )


def test_kill_9_during_a_stream_seals_every_event_exactly_once(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    ensure_dev_chain(tmp_path)
    prefix = f"k{uuid.uuid4().hex[:10]}."
    topic = TopicNames(prefix).physical(CLINICAL_EVENTS)
    ensure_topics(kafka, TopicNames(prefix).specs(input_partitions=PARTITIONS))
    env = {
        **os.environ,
        "CARELEDGER_DATA_DIR": str(tmp_path),
        "CARELEDGER_TOPIC_PREFIX": prefix,
        "CARELEDGER_PORT": str(free_port()),
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CARELEDGER_SEALER_LEASE_SECONDS": "1",
        "CARELEDGER_BLOCK_MAX_EVENTS": "20",
        "CARELEDGER_BLOCK_MAX_WAIT_SECONDS": "0.05",
        "CARELEDGER_LOG_LEVEL": "WARNING",
    }
    publisher = read_key_file(key_path(tmp_path, "publisher-demo"))
    sent: list[tuple[int, str]] = []

    def stream() -> None:
        producer = Producer(kafka.producer_config())
        for n in range(EVENTS):
            event = sign_event(
                build_event(
                    source="https://video-consult.example/",
                    type="org.careledger.clinical.consultation.completed.v1",
                    id=uuid7(n, n.to_bytes(10, "big")),
                    time="2026-11-24T11:00:00Z",
                    data={"n": n},
                ),
                publisher,
            )
            producer.produce(topic, value=encode_event(event), partition=n % PARTITIONS)
            sent.append((n % PARTITIONS, str(event["id"])))
            if n % 50 == 49:
                producer.flush(5)
                time.sleep(0.5)
        assert producer.flush(10) == 0

    streaming = threading.Thread(target=stream)
    streaming.start()
    log = tmp_path / "sealer.log"
    rng = random.Random(4)
    database = open_database(f"sqlite:///{tmp_path / 'sealer.db'}")
    store = SqlChainStore(database=database)

    def sealed_size() -> int:
        try:
            head = store.head()
        except TransientError:  # the process has not created its tables yet
            return 0
        return 0 if head is None else head.state.head.tree_size

    def wait_until_sealed(size: int, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 20
        while sealed_size() < size:
            assert process.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, f"sealed {sealed_size()}, not {size}"
            time.sleep(0.02)

    process = None
    killed_at: list[int] = []
    try:
        for _ in range(2):
            process = _start(env, log)
            wait_until_sealed(sealed_size() + 1, process)  # killed while it is sealing
            time.sleep(rng.uniform(0.0, 0.4))
            process.send_signal(signal.SIGKILL)
            process.wait(5)
            killed_at.append(sealed_size())
        streaming.join(30)
        assert killed_at[0] < EVENTS + 1  # the first kill came in the middle of the stream
        process = _start(env, log)
        wait_until_sealed(EVENTS + 1, process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0, log.read_text()[-2000:]  # a clean stop, pool and all
        head = store.head()
        assert head is not None
        blocks = [store.block(h) for h in range(head.height + 1)]
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(5)
        database.close()

    genesis_event, _ = read_genesis_file(tmp_path / "genesis.json")
    assert verify_chain([b for b in blocks if b], trusted_genesis=genesis_event).tree_size == (
        EVENTS + 1
    )
    sealed: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    for raw in blocks[1:]:
        assert raw is not None
        block = block_from_json(raw)
        partitions = [r.partition for r in block.header.sources for _ in range(r.size)]
        for partition, event in zip(partitions, block.events, strict=True):
            sealed[partition].append(str(event["id"]))
    for partition in range(PARTITIONS):
        assert sealed[partition] == [i for p, i in sent if p == partition]  # once each, in order
