"""Records as real processes: the consent story sealed and final, no plaintext leaking anywhere,
client-side decryption of an envelope, crypto-shredding, and bad input refused.

One `careledger up` serves the module; a practitioner, a second practitioner and a patient are
registered through the identity service once (fixture `clinic`), and every test writes its own
records. Canary strings put into records, break-glass reasons and refused resources are
collected in `CANARIES`; the last test looks for every one of them in every place a leak
could land (Kafka, logs, metrics, the chain, the data directory's files).
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from careledger.client import Receipt, fetch_receipt
from careledger.devchain import generate_key
from careledger.topology import default_services
from services.records.core.envelope import (
    Envelope,
    associated_data,
    ciphertext_hash,
    record_commitment,
    verify_envelope,
)
from shared.auth import bearer_headers
from shared.crypto import SigningKey, aead_decrypt, b64url_decode, open_sealed
from shared.errors import CareLedgerError
from shared.events.records import (
    CONSENT_GRANTED,
    CONSENT_REVOKED,
    RECORD_ACCESSED,
    RECORD_CREATED,
    RECORD_ERASED,
)
from shared.genesis import GenesisConfig
from shared.keystore import read_genesis_file
from tests.e2e.conftest import CARELEDGER, RunningSystem
from tests.e2e.test_identity import call, eventually, issue, kafka_of, key
from tests.e2e.test_pipeline import validator_urls

pytestmark = pytest.mark.e2e

#: Secrets that must never leave the records service in clear; the last test searches for them.
CANARIES: set[str] = set()
#: Sealing, then finality at quorum, takes seconds; allow for a loaded machine.
SEALED_WITHIN = 90.0


def canary(kind: str) -> str:
    value = f"CANARY-{kind}-{uuid.uuid4().hex}"
    CANARIES.add(value)
    return value


def observation(text: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": text},
        "valueQuantity": {"value": 72, "unit": "beats/minute"},
    }


def records_url(system: RunningSystem) -> str:
    (spec,) = [s for s in default_services(port_offset=system.offset) if s.name == "records"]
    return spec.url()


@dataclass
class Clinic:
    """The running system and the people registered on it."""

    system: RunningSystem
    genesis: GenesisConfig
    author: SigningKey
    second: SigningKey
    patient: SigningKey

    def request(
        self, method: str, caller: SigningKey | None, path: str, body: Any = None
    ) -> httpx.Response:
        headers = {} if caller is None else bearer_headers(caller, "records")
        return httpx.request(
            method, f"{records_url(self.system)}/v1{path}", json=body, headers=headers, timeout=10
        )

    def write(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The author writes a record for the patient, once records knows them both: until
        the patient's registration is sealed and followed, the answer is 404."""

        def attempt() -> dict[str, Any] | None:
            answer = self.request(
                "POST",
                self.author,
                "/records",
                {
                    "patient": self.patient.did,
                    "resource": resource,
                },
            )
            if answer.status_code == 404:  # the fixture waited for the author already
                return None
            assert answer.status_code == 201, answer.text
            written: dict[str, Any] = answer.json()
            return written

        return eventually(attempt, timeout=SEALED_WITHIN, what="records accepting the patient")

    def read(self, caller: SigningKey, record: str) -> httpx.Response:
        return self.request("GET", caller, f"/records/{record}")

    def receipt(self, event: dict[str, str]) -> Receipt:
        """A verified inclusion proof of `event` against a final block (quorum-attested)."""
        url = validator_urls(self.system)[0]

        def probe() -> Receipt | None:
            with httpx.Client(timeout=10) as client:
                try:
                    return fetch_receipt(
                        url, event["source"], event["id"], genesis=self.genesis, client=client
                    )
                except CareLedgerError:  # not sealed, or its block not final yet
                    return None

        found = eventually(probe, timeout=SEALED_WITHIN, what=f"event {event['id']} final")
        assert len(found.attested_by) >= self.genesis.quorum
        return found

    def sealed_event(self, event: dict[str, str]) -> dict[str, Any]:
        """The event as the chain holds it (after `receipt` showed it final)."""
        answer = httpx.get(
            f"{validator_urls(self.system)[1]}/v1/proofs/inclusion",
            params={"source": event["source"], "id": event["id"]},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        sealed: dict[str, Any] = answer.json()["event"]
        return sealed

    def disclosures(self) -> list[dict[str, Any]]:
        answer = self.request("GET", self.patient, f"/patients/{self.patient.did}/disclosures")
        assert answer.status_code == 200, answer.text
        listed: list[dict[str, Any]] = answer.json()["disclosures"]
        return listed


def wait_until_practitioner(clinic: Clinic, practitioner: SigningKey) -> None:
    """Records knows a practitioner once writing for an unknown patient is 404, not 403."""
    nobody = SigningKey.from_seed(uuid.uuid4().bytes * 2).did

    def probe() -> bool | None:
        answer = clinic.request(
            "POST",
            practitioner,
            "/records",
            {
                "patient": nobody,
                "resource": observation("probe"),
            },
        )
        if answer.status_code == 403:
            return None
        assert (answer.status_code, answer.json()["reason"]) == (404, "not_found"), answer.text
        return True

    eventually(probe, timeout=SEALED_WITHIN, what=f"records knowing {practitioner.did}")


@pytest.fixture(scope="module")
def clinic(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Clinic:
    """Two practitioners (credentials from the CLI) and a patient, registered via identity."""
    keys = tmp_path_factory.mktemp("records-people")
    author, second = generate_key(keys, "author"), generate_key(keys, "second")
    for practitioner in (author, second):
        credential = issue(system, keys, practitioner.did)
        answer = call(system, practitioner, "/v1/practitioners", {"credential": credential})
        assert answer.status_code == 201, answer.text
    patient = generate_key(keys, "patient")
    answer = call(system, patient, "/v1/patients", {})
    assert answer.status_code == 201, answer.text
    _, genesis = read_genesis_file(system.data_dir / "genesis.json")
    found = Clinic(system, genesis, author, second, patient)
    for practitioner in (author, second):
        wait_until_practitioner(found, practitioner)
    return found


def test_the_consent_story_is_audited_sealed_and_final(clinic: Clinic) -> None:
    text = canary("story")
    written = clinic.write(observation(text))
    record = written["record"]
    assert written["event"]["type"] == RECORD_CREATED

    mine = clinic.read(clinic.patient, record)
    assert mine.status_code == 200, mine.text
    assert mine.json()["resource"]["code"]["text"] == text
    assert mine.json()["event"] == written["event"]
    refused = clinic.read(clinic.second, record)
    assert (refused.status_code, refused.json()["reason"]) == (403, "consent_required")

    expires = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    granted = clinic.request(
        "POST",
        clinic.patient,
        "/consents",
        {
            "grantee": clinic.second.did,
            "resource_types": ["Observation"],
            "purpose": "TREAT",
            "expires": expires,
        },
    )
    assert granted.status_code == 201, granted.text
    consent = granted.json()["consent"]["consent"]
    assert granted.json()["event"]["type"] == CONSENT_GRANTED
    theirs = clinic.read(clinic.second, record)
    assert theirs.status_code == 200, theirs.text
    assert theirs.json()["resource"]["code"]["text"] == text
    assert theirs.json()["access"]["role"] == "grantee"
    assert theirs.json()["access"]["consent"] == consent

    revoked = clinic.request("DELETE", clinic.patient, f"/consents/{consent}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["event"]["type"] == CONSENT_REVOKED
    again = clinic.read(clinic.second, record)
    assert (again.status_code, again.json()["reason"]) == (403, "consent_required")

    # The patient's accounting lists every access, refused ones too; the 403 answers name no
    # event, so the disclosures are where the denied reads' events are found.
    story = [d for d in clinic.disclosures() if d["record"] == record or d["consent"] == consent]
    assert [(d["action"], d["outcome"], d["role"]) for d in story] == [
        ("read", "allowed", "patient"),
        ("read", "denied", "practitioner"),
        ("consent_granted", "allowed", "patient"),
        ("read", "allowed", "grantee"),
        ("consent_revoked", "allowed", "patient"),
        ("read", "denied", "practitioner"),
    ]
    assert [d["actor"] for d in story if d["role"] != "patient"] == [clinic.second.did] * 3
    accesses = {d["event"]["id"] for d in story}
    assert {mine.json()["access"]["event"]["id"], theirs.json()["access"]["event"]["id"]} <= (
        accesses
    )

    heights: dict[str, int] = {}
    for event in [written["event"], granted.json()["event"], revoked.json()["event"]] + [
        d["event"] for d in story
    ]:
        heights[event["id"]] = clinic.receipt(event).height
    denied = [clinic.sealed_event(d["event"]) for d in story if d["outcome"] == "denied"]
    assert [(e["type"], e["data"]["outcome"]) for e in denied] == [(RECORD_ACCESSED, "denied")] * 2
    assert clinic.sealed_event(written["event"])["type"] == RECORD_CREATED

    def all_marked() -> list[dict[str, Any]] | None:
        listed = [d for d in clinic.disclosures() if d["event"]["id"] in accesses]
        return listed if all(d["sealed_height"] is not None for d in listed) else None

    marked = eventually(all_marked, timeout=SEALED_WITHIN, what="disclosures marked sealed")
    assert all(d["sealed_height"] == heights[d["event"]["id"]] for d in marked)

    def checked_against_chain() -> dict[str, Any] | None:
        integrity: dict[str, Any] = clinic.read(clinic.patient, record).json()["integrity"]
        return integrity if integrity["checked_against"] == "chain" else None

    integrity = eventually(checked_against_chain, timeout=SEALED_WITHIN, what="a chain check")
    assert integrity["sealed_height"] == heights[written["event"]["id"]]
    assert integrity["commitment"] == written["commitment"]


def test_the_patient_decrypts_the_envelope_client_side(clinic: Clinic) -> None:
    text = canary("envelope")
    written = clinic.write(observation(text))
    record, version = written["record"], written["version"]
    answer = clinic.request("GET", clinic.patient, f"/records/{record}/envelope")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    document = body["envelope"]

    data_key = open_sealed(clinic.patient, b64url_decode(body["wrapped_key"]))
    ciphertext = b64url_decode(body["ciphertext"])
    plaintext = aead_decrypt(
        data_key,
        b64url_decode(document["nonce"]),
        ciphertext,
        associated_data(record, version),
    )
    assert json.loads(plaintext)["code"]["text"] == text
    clinic.receipt(written["event"])
    announced = clinic.sealed_event(written["event"])["data"]
    assert record_commitment(b64url_decode(body["salt"]), plaintext) == announced["commitment"]
    assert ciphertext_hash(ciphertext) == announced["ciphertext"] == document["ciphertext"]

    assert document["signer"] == key(clinic.system, "records").did
    envelope = Envelope.from_document(document)
    verify_envelope(envelope, b64url_decode(document["signature"]), document["signer"])
    assert (envelope.record_id, envelope.author) == (record, clinic.author.did)

    refused = clinic.request("GET", clinic.second, f"/records/{record}/envelope")
    assert (refused.status_code, refused.json()["reason"]) == (403, "consent_required")


def test_an_erased_record_is_gone_and_the_chain_still_verifies(clinic: Clinic) -> None:
    written = clinic.write(observation(canary("erased")))
    record = written["record"]
    erased = clinic.request("POST", clinic.patient, f"/records/{record}/erase")
    assert erased.status_code == 200, erased.text
    assert erased.json()["event"]["type"] == RECORD_ERASED
    for caller in (clinic.patient, clinic.author):
        gone = clinic.read(caller, record)
        assert (gone.status_code, gone.json()["reason"]) == (410, "erased")
    envelope = clinic.request("GET", clinic.patient, f"/records/{record}/envelope")
    assert envelope.status_code == 410, envelope.text

    clinic.receipt(erased.json()["event"])
    assert clinic.sealed_event(erased.json()["event"])["data"]["record"] == record
    verified = subprocess.run(
        [
            *CARELEDGER,
            "verify",
            "--from",
            validator_urls(clinic.system)[2],
            "--genesis",
            str(clinic.system.data_dir / "genesis.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["verified"] is True


def test_bad_input_is_refused_without_echoing_it(clinic: Clinic) -> None:
    secret = canary("invalid")
    # Wrong types where the submitted text would show up in a naive pydantic error's input.
    invalid = {
        **observation("x"),
        "valueQuantity": {"value": secret, "unit": "beats/minute"},
        "effectiveDateTime": secret,
    }
    answer = clinic.request(
        "POST",
        clinic.author,
        "/records",
        {
            "patient": clinic.patient.did,
            "resource": invalid,
        },
    )
    assert (answer.status_code, answer.json()["reason"]) == (422, "invalid_resource"), answer.text
    errors = answer.json()["errors"]
    assert errors
    assert all(error["loc"] for error in errors)
    assert secret not in json.dumps(errors)
    assert secret not in answer.text

    unsupported = clinic.request(
        "POST",
        clinic.author,
        "/records",
        {
            "patient": clinic.patient.did,
            "resource": {"resourceType": "Bundle", "type": "collection"},
        },
    )
    assert unsupported.status_code == 422, unsupported.text
    assert unsupported.json()["reason"] == "invalid_resource"

    unknown = clinic.read(clinic.patient, str(uuid.uuid4()))
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "not_found")

    anonymous = clinic.request("GET", None, f"/records/{uuid.uuid4()}")
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["WWW-Authenticate"].startswith('Bearer realm="records"')


def test_a_code_outside_a_required_binding_is_refused(clinic: Clinic) -> None:
    answer = clinic.request(
        "POST",
        clinic.author,
        "/records",
        {"patient": clinic.patient.did, "resource": {**observation("x"), "status": "bogus"}},
    )
    assert (answer.status_code, answer.json().get("reason")) == (422, "invalid_resource")


def kafka_values(system: RunningSystem) -> list[bytes]:
    """Every message (key, value and headers) of every partition of every topic."""
    consumer = Consumer(kafka_of(system).consumer_config("e2e-records-canary"))
    try:
        topics = consumer.list_topics(timeout=10).topics
        consumer.assign(
            [
                TopicPartition(name, partition, OFFSET_BEGINNING)
                for name, topic in topics.items()
                for partition in topic.partitions
            ]
        )
        found: list[bytes] = []
        # Not bounded by high watermarks (the embedded broker reports 1 for any non-empty
        # partition): read until nothing has arrived for a while.
        last = time.monotonic()
        while time.monotonic() - last < 3.0:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            last = time.monotonic()
            parts: list[object] = [message.key(), message.value()]
            parts += [header[1] for header in message.headers() or [] if len(header) == 2]
            found.append(b"\0".join(part for part in parts if isinstance(part, bytes)))
        return found
    finally:
        consumer.close()


def test_no_canary_leaves_the_service_in_clear(clinic: Clinic) -> None:
    text, reason = canary("record"), canary("glass")
    written = clinic.write(observation(text))
    record = written["record"]
    glass = clinic.request(
        "POST",
        clinic.second,
        f"/records/{record}/break-glass",
        {"reason": f"unconscious in the ER {reason}"},
    )
    assert glass.status_code == 200, glass.text
    assert glass.json()["access"]["break_glass"] is True
    # Everything the accesses caused has passed through Kafka, the sealer and the validators.
    clinic.receipt(glass.json()["access"]["event"])

    # The canaries were stored: the patient reads the record and sees the reason.
    mine = clinic.read(clinic.patient, record)
    assert mine.json()["resource"]["code"]["text"] == text
    reasons = [d["reason"] for d in clinic.disclosures() if d["break_glass"]]
    assert f"unconscious in the ER {reason}" in reasons

    system = clinic.system
    places: dict[str, bytes] = {"the output of `careledger up`": system.log.read_bytes()}
    messages = kafka_values(system)
    assert len(messages) > 10, "the topics were read"
    places["kafka"] = b"\n".join(messages)
    for spec in default_services(port_offset=system.offset):
        places[f"{spec.name} /metrics"] = httpx.get(f"{spec.url()}/metrics", timeout=10).content
    chain = httpx.get(f"{validator_urls(system)[0]}/v1/chain", timeout=30)
    assert chain.status_code == 200
    places["the chain"] = chain.content
    files = [path for path in system.data_dir.rglob("*") if path.is_file()]
    assert any(path.name.endswith(".db") for path in files)
    for path in files:
        places[str(path.relative_to(system.data_dir))] = read_quietly(path)

    # The search sees real content: the record's id is in its events, the chain and the store.
    seen = {where for where, content in places.items() if record.encode() in content}
    assert {"kafka", "the chain"} <= seen, seen
    assert any(where.endswith((".db", ".db-wal")) for where in seen), seen
    # Canaries are ASCII, so their JSON escape is the same bytes.
    leaks = sorted(
        (where, secret)
        for where, content in places.items()
        for secret in CANARIES
        if secret.encode() in content
    )
    assert not leaks, leaks


def read_quietly(path: Path) -> bytes:
    """A file's bytes; a SQLite -wal or -shm file may vanish between listing and reading."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
