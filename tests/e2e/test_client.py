"""The publisher SDK and the HTTP ingest against a real chain (`careledger up --only sealer,
validator-1..3` on the embedded broker): published events come back as verified receipts,
every bad input is refused with its reason and leaves nothing on the topic, and a receipt a
validator tampered with raises. The video-consultation example runs here too, so it cannot
rot."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from careledger.client import (
    EventBuildError,
    IngestClient,
    IngestError,
    Publisher,
    ReceiptClient,
    ReceiptError,
    genesis_fingerprint,
    signed_event,
)
from careledger.topology import BROKER_PORT, default_services
from shared.auth import issue_token
from shared.crypto import SigningKey
from shared.envelope import CONTENT_TYPE, MAX_EVENT_BYTES, encode_event
from shared.kafka import KafkaSettings
from shared.keystore import read_genesis_file, read_key_file
from tests.e2e.conftest import RunningSystem, free_offset, start_system

pytestmark = pytest.mark.e2e

LEDGER = "sealer,validator-1,validator-2,validator-3"
NOTE = "org.careledger.clinical.note.signed.v1"
SOURCE = "https://videoconsult.example/app"
FINAL_WITHIN = 60.0
EXAMPLE = Path(__file__).parents[2] / "examples" / "video_consultation" / "consultation.py"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """The ledger alone: sealer (with the ingest) and three validators."""
    directory = tmp_path_factory.mktemp("careledger-client")
    running = start_system(
        directory / "data", directory / "up.log", free_offset(), "--only", LEDGER
    )
    try:
        running.wait_for_output("all services ready", timeout=120)
        yield running
    finally:
        if running.process.poll() is None:
            running.interrupt(timeout=20)


def url_of(system: RunningSystem, name: str) -> str:
    return next(s.url() for s in default_services(port_offset=system.offset) if s.name == name)


def bootstrap(system: RunningSystem) -> str:
    return f"127.0.0.1:{BROKER_PORT + system.offset}"


def key(system: RunningSystem, name: str) -> SigningKey:
    return read_key_file(system.data_dir / "keys" / f"{name}.json")


def receipts(
    system: RunningSystem, validator: str = "validator-1", **options: Any
) -> ReceiptClient:
    genesis, _ = read_genesis_file(system.data_dir / "genesis.json")
    return ReceiptClient(
        url_of(system, validator), genesis_sha256=genesis_fingerprint(genesis), **options
    )


def publisher(system: RunningSystem) -> Publisher:
    return Publisher.from_key_file(
        system.data_dir / "keys" / "publisher-demo.json",
        source=SOURCE,
        bootstrap_servers=bootstrap(system),
    )


def on_topic(system: RunningSystem, topic: str = "clinical.events") -> list[dict[str, Any]]:
    """Every event on the topic now (all partitions, from the beginning)."""
    consumer = Consumer(
        KafkaSettings(bootstrap_servers=bootstrap(system)).consumer_config(
            f"test-{uuid.uuid4().hex}", **{"enable.partition.eof": True}
        )
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found, ended, deadline = [], set(), time.monotonic() + 20
        while len(ended) < len(partitions) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                ended.add(message.partition())
                continue
            found.append(json.loads(message.value()))
        return found
    finally:
        consumer.close()


def keys_on_topic(system: RunningSystem) -> list[tuple[str, str]]:
    return [(event["source"], event["id"]) for event in on_topic(system)]


def post(
    system: RunningSystem,
    body: bytes,
    *,
    caller: SigningKey,
    content_type: str = CONTENT_TYPE,
    token: str | None = None,
) -> httpx.Response:
    if token is None:
        token = issue_token(
            caller, audience="sealer", issued_at=datetime.now(UTC), jti=uuid.uuid4().hex
        )
    return httpx.post(
        f"{url_of(system, 'sealer')}/v1/events",
        content=body,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_sdk_publish_comes_back_as_a_verified_receipt(ledger: RunningSystem) -> None:
    with publisher(ledger) as client:
        delivery = client.publish(type=NOTE, data={"encounter": "enc-sdk"}, subject="enc-sdk")
    assert delivery.topic == "clinical.events"
    with receipts(ledger) as verified:
        receipt = verified.wait_for(delivery.source, delivery.id, timeout=FINAL_WITHIN)
    assert (receipt.source, receipt.id) == (delivery.source, delivery.id)
    assert len(receipt.attested_by) >= 2
    assert receipt.final_height >= receipt.height >= 1
    # `careledger proof` is the same SDK call behind the command line.
    done = subprocess.run(
        [
            sys.executable, "-m", "careledger", "proof", delivery.source, delivery.id,
            "--validator", url_of(ledger, "validator-2"),
            "--genesis", str(ledger.data_dir / "genesis.json"),
        ],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verified"] is True


def test_http_ingest_answers_202_once_queued_and_the_receipt_verifies(
    ledger: RunningSystem,
) -> None:
    signer = key(ledger, "publisher-demo")
    with publisher(ledger) as client:
        event = client.event(type=NOTE, data={"encounter": "enc-http"}, subject="enc-http")
    answer = post(ledger, encode_event(event), caller=signer)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["topic"] == "clinical.events"
    assert body["replayed"] is False
    location = answer.headers["Location"]
    assert location == body["receipt"]
    assert location.startswith(f"{url_of(ledger, 'validator-1')}/v1/proofs/inclusion?")

    again = post(ledger, encode_event(event), caller=signer)  # a retried post
    assert again.status_code == 202
    assert again.json()["replayed"] is True
    assert again.headers["Location"] == location

    with receipts(ledger, "validator-3") as verified:
        receipt = verified.wait_for(event["source"], str(event["id"]), timeout=FINAL_WITHIN)
    assert receipt.id == event["id"]
    proof = httpx.get(location, timeout=10)
    assert proof.status_code == 200
    assert proof.json()["event"] == event
    assert keys_on_topic(ledger).count((event["source"], event["id"])) == 1


def test_the_ingest_client_posts_and_refuses_with_the_reason(ledger: RunningSystem) -> None:
    signer = key(ledger, "publisher-demo")
    with publisher(ledger) as client:
        event = client.event(type=NOTE, data={"encounter": "enc-ingest-client"})
    with IngestClient(signer, url=url_of(ledger, "sealer")) as ingest:
        accepted = ingest.post(event)
        assert (accepted.source, accepted.id) == (event["source"], event["id"])
        with pytest.raises(IngestError) as refused:
            ingest.post({**event, "id": str(uuid.uuid4())})  # signature no longer matches
    assert (refused.value.status, refused.value.reason) == (400, "bad_signature")


def expired_token(signer: SigningKey) -> str:
    return issue_token(
        signer,
        audience="sealer",
        issued_at=datetime.now(UTC) - timedelta(minutes=10),
        jti=uuid.uuid4().hex,
        lifetime=60,
    )


BAD_INPUTS = [
    ("bad_signature", 400, "bad_signature"),
    ("oversized", 413, "too_large"),
    ("not_a_cloudevent", 400, "malformed"),
    ("wrong_content_type", 415, "unsupported_media_type"),
    ("caller_not_signer", 403, "not_signer"),
    ("expired_token", 401, "expired"),
    ("wrong_audience", 401, "wrong_audience"),
    ("unknown_signer", 403, "unknown_signer"),
    ("no_input_topic", 422, "unknown_topic"),
]


def bad_request(system: RunningSystem, case: str, event: dict[str, Any]) -> httpx.Response:
    """Post `event` broken in the way `case` names."""
    signer = key(system, "publisher-demo")
    body = encode_event(event)
    caller, content_type, token = signer, CONTENT_TYPE, None
    if case == "bad_signature":
        body = encode_event({**event, "data": {"encounter": "forged"}})
    elif case == "oversized":
        body += b" " * (MAX_EVENT_BYTES + 1 - len(body))
    elif case == "not_a_cloudevent":
        body = json.dumps({"id": event["id"], "hello": 1}).encode()
    elif case == "wrong_content_type":
        content_type = "application/json"
    elif case == "caller_not_signer":
        caller = key(system, "authority-demo")
    elif case == "expired_token":
        token = expired_token(signer)
    elif case == "wrong_audience":
        token = issue_token(
            signer, audience="identity", issued_at=datetime.now(UTC), jti=uuid.uuid4().hex
        )
    elif case == "unknown_signer":
        caller = SigningKey.from_seed(uuid.uuid4().bytes * 2)
        forged = signed_event(
            caller,
            type=NOTE,
            data={},
            source=SOURCE,
            id=str(event["id"]),
            now=datetime.now(UTC),
            entropy=bytes(10),
        )
        body = encode_event(forged)
    elif case == "no_input_topic":
        with publisher(system) as client:
            other = client.event(type="org.careledger.video.call.ended.v1", data={}, id=event["id"])
        body = encode_event(other)
    return post(system, body, caller=caller, content_type=content_type, token=token)


def test_bad_inputs_are_refused_with_the_reason_and_nothing_is_published(
    ledger: RunningSystem,
) -> None:
    ids = []
    with publisher(ledger) as client:
        for case, status, reason in BAD_INPUTS:
            event = client.event(type=NOTE, data={"encounter": f"enc-{case}"})
            ids.append(event["id"])
            answer = bad_request(ledger, case, event)
            assert answer.status_code == status, (case, answer.text)
            assert answer.json()["reason"] == reason, (case, answer.text)
            assert answer.json()["detail"]
        with pytest.raises(EventBuildError):  # the SDK refuses before anything is sent
            client.publish(type=NOTE, data={"blob": "x" * MAX_EVENT_BYTES})
    # Give a wrongly queued event time to reach the topic, then look: none of them did.
    time.sleep(2)
    published = {event_id for _, event_id in keys_on_topic(ledger)}
    assert published.isdisjoint(ids)


class Tampering(httpx.BaseTransport):
    """Forwards to the real validator and alters its answers on the way back."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._real.handle_request(request)
        response.read()
        response.close()
        path = request.url.path
        body = response.json() if response.status_code == 200 else None
        if self._what == "audit_path" and path == "/v1/proofs/inclusion" and body:
            body["audit_path"] = ["00" * 32, *body["audit_path"][1:]]
        elif self._what == "quorum" and path.startswith("/v1/blocks/") and body:
            body["attestations"] = body["attestations"][:1]
        elif self._what == "event" and path == "/v1/proofs/inclusion" and body:
            body["event"]["data"] = {"encounter": "altered"}
        else:
            return response
        return httpx.Response(200, json=body)

    def close(self) -> None:
        self._real.close()


@pytest.mark.parametrize(
    ("what", "message"),
    [("audit_path", "root|proof"), ("quorum", "not final"), ("event", "signature")],
)
def test_a_tampered_receipt_raises(ledger: RunningSystem, what: str, message: str) -> None:
    with publisher(ledger) as client:
        delivery = client.publish(type=NOTE, data={"encounter": f"enc-tamper-{what}"})
    with receipts(ledger) as honest:
        honest.wait_for(delivery.source, delivery.id, timeout=FINAL_WITHIN)
    with (
        httpx.Client(transport=Tampering(what), timeout=10) as http,
        receipts(ledger, http=http) as lying,
        pytest.raises(ReceiptError, match=message),
    ):
        lying.wait_for(delivery.source, delivery.id, timeout=FINAL_WITHIN)


@pytest.mark.parametrize("via", ["kafka", "http"])
def test_the_video_consultation_example_runs(ledger: RunningSystem, via: str) -> None:
    done = subprocess.run(
        [
            sys.executable, str(EXAMPLE),
            "--data-dir", str(ledger.data_dir),
            "--bootstrap", bootstrap(ledger),
            "--validator", url_of(ledger, "validator-2"),
            "--sealer", url_of(ledger, "sealer"),
            "--via", via,
        ],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    receipt = json.loads(done.stdout)
    assert receipt["verified"] is True
    assert receipt["via"] == via
    assert receipt["source"] == "https://videoconsult.example/app"
    assert len(receipt["attested_by"]) >= 2
    sealed = httpx.get(
        f"{url_of(ledger, 'validator-1')}/v1/proofs/inclusion",
        params={"source": receipt["source"], "id": receipt["id"]},
        timeout=10,
    ).json()["event"]
    assert sealed["type"] == "org.careledger.clinical.consultation.completed.v1"
    assert sealed["signer"] == key(ledger, "publisher-demo").did
