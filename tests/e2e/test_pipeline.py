"""publish → sealed → final at quorum → proofs: the whole system as real processes."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from careledger.client import complete_event, fetch_receipt, produce_event
from careledger.devchain import generate_key
from careledger.topology import BROKER_PORT, default_services
from shared.block import block_from_json
from shared.kafka import KafkaSettings
from shared.keystore import read_genesis_file, read_key_file
from shared.merkle import verify_consistency
from tests.e2e.conftest import CARELEDGER, RunningSystem, clinical_note, wait_until_final

pytestmark = pytest.mark.e2e

EVENTS = 60


def validator_urls(system: RunningSystem) -> list[str]:
    return [
        spec.url()
        for spec in default_services(port_offset=system.offset)
        if spec.name.startswith("validator-")
    ]


def test_published_events_become_final_with_verifying_proofs(system: RunningSystem) -> None:
    data_dir = system.data_dir
    key = read_key_file(data_dir / "keys" / "publisher-demo.json")
    _, genesis = read_genesis_file(data_dir / "genesis.json")
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{BROKER_PORT + system.offset}")
    published = []
    for n in range(EVENTS):
        event = clinical_note(key, n, f"enc-{n % 7}")
        published.append(produce_event(kafka, "clinical.events", event))
    urls = validator_urls(system)
    heads = [wait_until_final(url, EVENTS + 1, timeout=60) for url in urls]
    assert len({head["block_hash"] for head in heads}) == 1, "validators agree on the head"

    with httpx.Client(timeout=10) as client:
        for delivery in published:
            receipt = fetch_receipt(
                urls[delivery.offset % len(urls)],
                delivery.source,
                delivery.id,
                genesis=genesis,
                client=client,
            )
            assert len(receipt.attested_by) >= genesis.quorum

        blocks = [
            block_from_json(json.dumps({k: v for k, v in body.items() if k != "attestations"}))
            for body in (
                client.get(f"{urls[0]}/v1/blocks/{height}").json()
                for height in range(int(str(heads[0]["height"])) + 1)
            )
        ]
        sizes = [block.header.tree_size for block in blocks]
        for first, second in itertools.pairwise(blocks):
            answer = client.get(
                f"{urls[1]}/v1/proofs/consistency",
                params={"first": first.header.tree_size, "second": second.header.tree_size},
            ).json()
            verify_consistency(
                first.header.tree_size,
                second.header.tree_size,
                bytes.fromhex(first.header.log_root),
                bytes.fromhex(second.header.log_root),
                [bytes.fromhex(step) for step in answer["proof"]],
            )
    assert sizes[-1] == EVENTS + 1

    verified = subprocess.run(  # the whole chain, offline, from a validator's export
        [*CARELEDGER, "verify", "--from", urls[2], "--genesis", str(data_dir / "genesis.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["tree_size"] == EVENTS + 1

    one = published[0]
    proof = subprocess.run(
        [
            *CARELEDGER,
            "proof",
            one.source,
            one.id,
            "--validator",
            urls[0],
            "--genesis",
            str(data_dir / "genesis.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proof.returncode == 0, proof.stdout + proof.stderr
    assert json.loads(proof.stdout)["verified"] is True


def rejection_for(kafka: KafkaSettings, topic: str, offset: int) -> dict[str, object]:
    """The ledger.rejected record of one input offset (read from the start of the topic)."""
    consumer = Consumer(kafka.consumer_config("e2e-rejected"))
    try:
        consumer.assign([TopicPartition("ledger.rejected", 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            record = json.loads(message.value() or b"{}")
            if record.get("topic") == topic and record.get("offset") == offset:
                return dict(record)
    finally:
        consumer.close()
    raise AssertionError(f"no ledger.rejected record for {topic}@{offset}")


def test_an_event_from_an_unknown_signer_is_rejected_not_sealed(
    system: RunningSystem, tmp_path: Path
) -> None:
    stranger = generate_key(tmp_path, "stranger")
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{BROKER_PORT + system.offset}")
    event = complete_event(
        {"type": "org.careledger.clinical.note.v1", "data": {}},
        key=stranger,
        default_source="https://unknown.example/",
    )
    delivery = produce_event(kafka, "clinical.events", event)
    record = rejection_for(kafka, "clinical.events", delivery.offset)
    assert record["reason"] == "unknown_signer"
    assert record["partition"] == delivery.partition
    answer = httpx.get(
        f"{validator_urls(system)[0]}/v1/proofs/inclusion",
        params={"source": delivery.source, "id": delivery.id},
    )
    assert answer.status_code == 404
