"""A PHI canary through every API of a real `careledger up`, then a byte scan of everything the
run left behind; and crypto-shredding of the canary patient's records.

The canary is a patient name, a birth date and a clinical note made unique per run. It goes in
through identity (patient registration), records (native API, new versions, consent,
break-glass, and the FHIR face), billing (payments, disputes, voids) and the sealer's HTTP
ingest. At the end every Kafka topic, every log line, every /metrics, every validator's
blocks and every file of the data directory (SQLite byte-wise with -wal/-shm, and every
column of every table) are scanned for it in every encoding (`canary.py`). The records store
may hold it only encrypted.

Erasure: before erasing, the test opens the patient's records with what the store holds (the
custody key under the records service's key) to show the attempt can succeed; after, the
same attempt with everything left fails, the key material is in no store, the API answers
410 `erased`, `careledger verify` passes from genesis, and every audited access is still on
the chain and listed in the patient's disclosures.

The tests of this module share one system and run in file order.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.client import complete_event
from careledger.client.ingest import INGEST_AUDIENCE
from careledger.devchain import generate_key
from careledger.topology import default_services
from services.records.core.envelope import associated_data
from shared.auth import bearer_headers
from shared.crypto import SigningKey, aead_decrypt, b64url_decode, open_sealed
from shared.envelope import CONTENT_TYPE, encode_event
from shared.errors import CareLedgerError
from shared.keystore import read_genesis_file
from tests.e2e.conftest import CARELEDGER, RunningSystem, free_offset, start_system
from tests.e2e.test_identity import call, issue, kafka_of, key
from tests.e2e.test_pipeline import validator_urls
from tests.e2e.test_records import Clinic, records_url, wait_until_practitioner
from tests.security.privacy.canary import Canary, find_leaks
from tests.security.privacy.places import (
    data_files,
    kafka_topics,
    service_metrics,
    sqlite_values,
    validator_blocks,
)

pytestmark = pytest.mark.e2e

TOKEN = os.urandom(6).hex()
NAME = f"Zoë Canary{TOKEN} Hågensen"
BIRTH_DATE = (date(1920, 1, 1) + timedelta(days=random.randrange(80 * 365))).isoformat()
NOTE = f"Patient reports canary-{TOKEN} crushing chest pain since Tuesday"
REASON = f"unconscious in the ER, brought by canary-{TOKEN}-spouse"
#: What the patient's own platform publishes in an event's data: the sealer cannot tell it
#: from an opaque id, so it is sealed as published (the publisher's duty, BRIEF principle 1).
PUBLISHED = f"published-canary-{TOKEN}-free-text"

PHI = [
    Canary.text("name", NAME),
    Canary.text("birth_date", BIRTH_DATE),
    Canary.text("note", NOTE),
    Canary.text("break_glass_reason", REASON),
]


def service_url(system: RunningSystem, name: str) -> str:
    (spec,) = [s for s in default_services(port_offset=system.offset) if s.name == name]
    return spec.url()


def patient_resource(patient: SigningKey) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": patient.did}],
        "name": [{"text": NAME, "family": NAME.rsplit(maxsplit=1)[-1], "given": NAME.split()[:2]}],
        "birthDate": BIRTH_DATE,
        "gender": "female",
    }


def observation(patient: SigningKey, text: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": text},
        "subject": {"identifier": {"system": "urn:ietf:rfc:3986", "value": patient.did}},
        "note": [{"text": text}],
        "valueQuantity": {"value": 72, "unit": "beats/minute"},
    }


@dataclass
class Hospital:
    """The running system, its people, and what the tests learned on the way."""

    clinic: Clinic
    records: list[str] = field(default_factory=list)
    #: Every event the canary's requests caused, to be found sealed and final.
    events: list[dict[str, str]] = field(default_factory=list)
    #: Access events of the canary's records (reads, break-glass), still on chain after erasure.
    accesses: list[dict[str, str]] = field(default_factory=list)
    #: Key material and ciphertexts captured before erasure (scanned for after it).
    material: list[Canary] = field(default_factory=list)
    #: (record, version, ciphertext, nonce) captured before erasure.
    sealed_versions: list[tuple[str, int, bytes, bytes]] = field(default_factory=list)
    published: dict[str, str] = field(default_factory=dict)

    @property
    def system(self) -> RunningSystem:
        return self.clinic.system

    def fhir(self, method: str, caller: SigningKey, path: str, body: Any = None) -> httpx.Response:
        return httpx.request(
            method,
            f"{records_url(self.system)}/fhir{path}",
            json=body,
            headers={**bearer_headers(caller, "records"), "Accept": "application/fhir+json"},
            timeout=10,
        )

    def billing(self, caller: SigningKey, path: str, body: Any) -> httpx.Response:
        return httpx.post(
            f"{service_url(self.system, 'billing')}/v1{path}",
            json=body,
            headers=bearer_headers(caller, "billing"),
            timeout=10,
        )


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    directory = tmp_path_factory.mktemp("privacy")
    system = start_system(directory / "data", directory / "up.log", free_offset())
    try:
        system.wait_for_output("all services ready", timeout=180)
        keys = directory / "people"
        keys.mkdir()
        author, second = generate_key(keys, "author"), generate_key(keys, "second")
        for practitioner in (author, second):
            answer = call(
                system,
                practitioner,
                "/v1/practitioners",
                {"credential": issue(system, keys, practitioner.did)},
            )
            assert answer.status_code == 201, answer.text
        patient = generate_key(keys, "patient")
        _, genesis = read_genesis_file(system.data_dir / "genesis.json")
        clinic = Clinic(system, genesis, author, second, patient)
        yield Hospital(clinic)
    finally:
        stop(system)


def stop(system: RunningSystem) -> None:
    if system.process.poll() is None:
        system.process.send_signal(signal.SIGINT)
        try:
            system.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            system.process.kill()
            system.process.wait(timeout=10)


def no_canary_in(answer: httpx.Response) -> None:
    leaks = find_leaks({"the answer": answer.content}, PHI)
    assert not leaks, (leaks, answer.text)


@pytest.mark.timeout(600)
def test_identity_takes_no_phi_and_registers_the_patient(hospital: Hospital) -> None:
    system, patient = hospital.system, hospital.clinic.patient
    refused = call(system, patient, "/v1/patients", {"name": NAME, "birthDate": BIRTH_DATE})
    assert (refused.status_code, refused.json()["reason"]) == (422, "invalid_request"), refused.text
    no_canary_in(refused)
    answer = call(system, patient, "/v1/patients", {})
    assert answer.status_code == 201, answer.text
    hospital.events.append(answer.json()["event"])
    for practitioner in (hospital.clinic.author, hospital.clinic.second):
        wait_until_practitioner(hospital.clinic, practitioner)


@pytest.mark.timeout(600)
def test_records_native_api_takes_the_canary(hospital: Hospital) -> None:
    clinic = hospital.clinic
    written = clinic.write(patient_resource(clinic.patient))
    hospital.records.append(written["record"])
    hospital.events.append(written["event"])
    note = clinic.write(observation(clinic.patient, "baseline"))
    hospital.records.append(note["record"])
    updated = clinic.request(
        "POST",
        clinic.author,
        f"/records/{note['record']}/versions",
        {"resource": observation(clinic.patient, NOTE), "base_version": 1},
    )
    assert updated.status_code == 201, updated.text
    hospital.events.append(updated.json()["event"])

    # Free text where the contract has none is refused without being repeated.
    for body in (
        {"grantee": clinic.second.did, "purpose": "TREAT", "expires": _in_days(30), "note": NOTE},
        {"grantee": NAME, "purpose": "TREAT", "expires": _in_days(30)},
    ):
        refused = clinic.request("POST", clinic.patient, "/consents", body)
        assert refused.status_code == 422, refused.text
        no_canary_in(refused)
    invalid = clinic.request(
        "POST",
        clinic.author,
        "/records",
        {
            "patient": clinic.patient.did,
            "resource": {**patient_resource(clinic.patient), "birthDate": NAME},
        },
    )
    assert (invalid.status_code, invalid.json()["reason"]) == (422, "invalid_resource")
    no_canary_in(invalid)

    granted = clinic.request(
        "POST",
        clinic.patient,
        "/consents",
        {"grantee": clinic.second.did, "purpose": "TREAT", "expires": _in_days(30)},
    )
    assert granted.status_code == 201, granted.text
    hospital.events.append(granted.json()["event"])
    for record in hospital.records:
        read = clinic.read(clinic.second, record)
        assert read.status_code == 200, read.text
        hospital.accesses.append(read.json()["access"]["event"])
    assert read.json()["resource"]["note"][0]["text"] == NOTE
    glass = clinic.request(
        "POST", clinic.second, f"/records/{hospital.records[0]}/break-glass", {"reason": REASON}
    )
    assert glass.status_code == 200, glass.text
    hospital.accesses.append(glass.json()["access"]["event"])
    exported = clinic.request("GET", clinic.patient, f"/patients/{clinic.patient.did}/export")
    assert exported.status_code == 200, exported.text
    assert NAME in exported.text  # the patient's own copy carries it: the canary was stored
    hospital.events.append(exported.json()["event"])


@pytest.mark.timeout(300)
def test_the_fhir_face_takes_the_canary(hospital: Hospital) -> None:
    clinic = hospital.clinic
    created = hospital.fhir("POST", clinic.author, "/Patient", patient_resource(clinic.patient))
    assert created.status_code == 201, created.text
    assert created.json()["birthDate"] == BIRTH_DATE
    hospital.records.append(created.json()["id"])
    noted = hospital.fhir("POST", clinic.author, "/Observation", observation(clinic.patient, NOTE))
    assert noted.status_code == 201, noted.text
    hospital.records.append(noted.json()["id"])
    read = hospital.fhir("GET", clinic.patient, f"/Observation/{noted.json()['id']}")
    assert (read.status_code, read.json()["note"][0]["text"]) == (200, NOTE)
    # Search criteria are PHI too: an unknown one is refused, never repeated or logged.
    for query in (f"name={NAME}", f"birthdate={BIRTH_DATE}", f"_content={NOTE}"):
        searched = hospital.fhir("GET", clinic.patient, f"/Patient?{query}")
        assert searched.status_code == 400, searched.text
        no_canary_in(searched)
    invalid = hospital.fhir(
        "POST", clinic.author, "/Patient", {**patient_resource(clinic.patient), "gender": NAME}
    )
    assert invalid.status_code == 422, invalid.text
    no_canary_in(invalid)


@pytest.mark.timeout(120)
def test_billing_takes_no_free_text(hospital: Hospital) -> None:
    """Billing's inputs are codes, amounts and tokens: free text is refused unrepeated."""
    clinic, admin = hospital.clinic, key(hospital.system, "admin")
    invoice = str(uuid.uuid4())
    attempts = [
        (
            clinic.patient,
            f"/invoices/{invoice}/payments",
            {
                "party": "patient",
                "amount": 100,
                "currency": "USD",
                "reference": NAME,
                "idempotency_key": "pay-1",
            },
        ),
        (clinic.patient, f"/invoices/{invoice}/disputes", {"party": "patient", "reason": NOTE}),
        (admin, f"/invoices/{invoice}/void", {"reason": NOTE}),
        (admin, "/tariffs", {"contract_id": "t", "version": 1, "note": NOTE}),
    ]
    for caller, path, body in attempts:
        answer = hospital.billing(caller, path, body)
        assert answer.status_code == 422, (path, answer.text)
        no_canary_in(answer)


@pytest.mark.timeout(300)
def test_the_sealer_ingest_seals_what_is_signed_and_stores_nothing_it_refuses(
    hospital: Hospital,
) -> None:
    publisher = key(hospital.system, "publisher-demo")
    url = f"{service_url(hospital.system, 'sealer')}/v1/events"

    def post(event: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            url,
            content=encode_event(event),
            headers={"Content-Type": CONTENT_TYPE, **bearer_headers(publisher, INGEST_AUDIENCE)},
            timeout=10,
        )

    def note(text: str) -> dict[str, Any]:
        return complete_event(
            {
                "type": "org.careledger.clinical.note.signed.v1",
                "subject": f"enc-{TOKEN}",
                "data": {"text": text},
            },
            key=publisher,
            default_source="https://videoconsult.example/app",
        )

    forged = {**note(NOTE), "data": {"text": NAME}}  # the signature covers other data
    refused = post(forged)
    assert (refused.status_code, refused.json()["reason"]) == (400, "bad_signature"), refused.text
    no_canary_in(refused)
    accepted = post(note(PUBLISHED))
    assert accepted.status_code == 202, accepted.text
    hospital.published = {"source": accepted.json()["source"], "id": accepted.json()["id"]}


@pytest.mark.timeout(600)
def test_erased_records_open_for_nobody_and_the_chain_and_audit_remain(hospital: Hospital) -> None:
    clinic, system = hospital.clinic, hospital.system
    custodian = key(system, "records")
    database = system.data_dir / "records.db"
    for record in hospital.records:
        answer = clinic.request("GET", clinic.patient, f"/records/{record}/envelope")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        version = body["envelope"]["version"]
        ciphertext, nonce = (
            b64url_decode(body["ciphertext"]),
            b64url_decode(body["envelope"]["nonce"]),
        )
        hospital.sealed_versions.append((record, version, ciphertext, nonce))
        hospital.material += [
            Canary(f"wrapped_key {record}", b64url_decode(body["wrapped_key"])),
            Canary(f"salt {record}", b64url_decode(body["salt"])),
            Canary(f"ciphertext {record}", ciphertext),
            Canary(f"nonce {record}", nonce),
        ]
    # The attempt an attacker with the store would make does succeed before erasure...
    opened = openable(sqlite_values(database), [custodian, clinic.patient, clinic.author], hospital)
    assert opened == set(hospital.records)
    hospital.material += [
        Canary(f"stored key {n}", value)
        for n, value in enumerate(stored_keys(database, hospital.records))
    ]

    for record in hospital.records:
        erased = clinic.request("POST", clinic.patient, f"/records/{record}/erase")
        assert erased.status_code == 200, erased.text
        hospital.events.append(erased.json()["event"])
        for caller in (clinic.patient, clinic.author, clinic.second):
            gone = clinic.read(caller, record)
            assert (gone.status_code, gone.json()["reason"]) == (410, "erased"), gone.text
        envelope = clinic.request("GET", clinic.patient, f"/records/{record}/envelope")
        assert (envelope.status_code, envelope.json()["reason"]) == (410, "erased")
        glass = clinic.request(
            "POST", clinic.second, f"/records/{record}/break-glass", {"reason": "x"}
        )
        assert glass.status_code == 410, glass.text
    fhir = hospital.fhir("GET", clinic.patient, f"/Observation/{hospital.records[-1]}")
    assert fhir.status_code == 410, fhir.text

    # ... and fails with everything the store still holds, for every key that could try.
    assert (
        openable(sqlite_values(database), [custodian, clinic.patient, clinic.author], hospital)
        == set()
    )
    assert stored_keys(database, hospital.records) == []

    for event in hospital.events + hospital.accesses:
        clinic.receipt(event)
    verified = subprocess.run(
        [
            *CARELEDGER,
            "verify",
            "--from",
            validator_urls(system)[2],
            "--genesis",
            str(system.data_dir / "genesis.json"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["verified"] is True
    # The audit trail survives the shredding: on the chain, and in the patient's accounting.
    listed = {d["event"]["id"]: d for d in clinic.disclosures()}
    for access in hospital.accesses:
        assert clinic.sealed_event(access)["data"]["record"] in hospital.records
        assert listed[access["id"]]["record"] in hospital.records
    assert [d["action"] for d in listed.values()].count("erase") == len(hospital.records)


def openable(values: list[bytes], keys: list[SigningKey], hospital: Hospital) -> set[str]:
    """The records whose captured ciphertext some stored value decrypts: every value of every
    column (and its base64url decoding, for text) opened as a sealed box with each key, and
    what opens tried as the data key of every captured version."""
    candidates = set(values)
    for value in values:
        try:
            candidates.add(b64url_decode(value.decode("ascii")))
        except (UnicodeDecodeError, CareLedgerError):
            continue
    data_keys = {value for value in candidates if len(value) == 32}
    for candidate in candidates:
        for private in keys:
            try:
                data_keys.add(open_sealed(private, candidate))
            except CareLedgerError:
                continue
    opened = set()
    for record, version, ciphertext, nonce in hospital.sealed_versions:
        for data_key in (k for k in data_keys if len(k) == 32):
            try:
                aead_decrypt(data_key, nonce, ciphertext, associated_data(record, version))
            except CareLedgerError:
                continue
            opened.add(record)
    return opened


def stored_keys(database: Path, records: list[str]) -> list[bytes]:
    """The custody keys, salts and wrapped keys the records store holds for `records`."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        marks = ",".join("?" * len(records))
        found = [
            value
            for row in connection.execute(
                f"select custody_key, salt from records_heads where record_id in ({marks})",  # noqa: S608
                records,
            )
            for value in row
            if value
        ]
        found += [
            row[0]
            for row in connection.execute(
                f"select sealed_key from records_wraps where record_id in ({marks})",  # noqa: S608
                records,
            )
        ]
        return found
    finally:
        connection.close()


@pytest.mark.timeout(600)
def test_no_canary_anywhere_at_the_end_of_the_run(hospital: Hospital) -> None:
    system = hospital.system
    assert hospital.records, "the earlier tests wrote the canary"
    hospital.clinic.receipt(hospital.published)
    services = default_services(port_offset=system.offset)
    live: dict[str, bytes] = {}
    live.update(kafka_topics(kafka_of(system)))
    live.update(service_metrics(services))
    for n, url in enumerate(validator_urls(system), start=1):
        live.update(validator_blocks(url, f"validator-{n}"))
    live.update(
        {f"{where} (live)": content for where, content in data_files(system.data_dir).items()}
    )
    stop(system)
    assert system.process.returncode == 0, system.output()[-3000:]
    after = {
        "the output of `careledger up` (every service's stdout and stderr)": system.log.read_bytes()
    }
    after.update(data_files(system.data_dir))
    places = {**live, **after}

    # The scan sees real content: the topics were read, the blocks hold the records' events.
    assert sum(len(v) for k, v in places.items() if k.startswith("kafka ")) > 10_000
    assert any(hospital.records[0].encode() in v for k, v in places.items() if "/v1/blocks" in k)
    assert any(k.endswith("records.db (every column)") for k in places)
    # What a publisher signs is sealed as published: the sealer cannot know it is free text.
    published = Canary.text("published", PUBLISHED)
    assert any(leak.where.endswith("/v1/chain") for leak in find_leaks(places, [published]))
    logs_and_metrics = {k: v for k, v in places.items() if k.endswith("/metrics") or "output" in k}
    assert not find_leaks(logs_and_metrics, [published])

    leaks = find_leaks(places, PHI + hospital.material)
    if leaks:
        pytest.fail(
            "\n".join(sorted({f"{leak.where}: {leak.kind} ({leak.encoding})" for leak in leaks}))
        )


def _in_days(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()
