"""The FHIR face driven by a real FHIR client (fhirpy's sync client) over HTTP: the records
app served by uvicorn on a free port, on a SQLite store, with fresh EdDSA tokens per request.

An EHR imports a transaction Bundle, the patient consents, a consented practitioner reads and
searches, one without consent is refused and audited, and the patient's AuditEvents show it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError, ResourceNotFound
from fhirpy.base.exceptions import OperationOutcome as OutcomeError

from services.records.core.fhir import SUPPORTED_TYPES
from shared.block import format_timestamp
from shared.runtime.auth import bearer_headers
from tests.integration.store.backends import sql_database
from tests.unit.records.conftest import CANARY, World, build_world
from tests.unit.records.test_http import records_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DID = "urn:ietf:rfc:3986"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONTENT_LIMIT = 256 * 1024


@dataclass
class FreshToken:
    """A requests auth hook: every request gets a new token (a token's jti is single-use)."""

    world: World
    name: str

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(bearer_headers(self.world.key(self.name), "records"))
        return request


@dataclass
class Served:
    world: World
    url: str

    def client(self, name: str) -> SyncFHIRClient:
        auth = FreshToken(self.world, name)
        return SyncFHIRClient(self.url, requests_config={"auth": auth, "timeout": 30})

    def raw(self, name: str, method: str, path: str, body: Any = None) -> requests.Response:
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        return requests.request(
            method,
            f"{self.url}{path}",
            data=None if body is None else json.dumps(body),
            headers=headers,
            auth=FreshToken(self.world, name),
            timeout=30,
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with sql_database("sqlite", tmp_path) as (database, _):
        world = build_world(database)
        app = records_app(world, max_request_bytes=CONTENT_LIMIT)
        world.register_practitioner("third")  # a practitioner the patient never consented to
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        try:
            yield Served(world, f"http://127.0.0.1:{port}/fhir")
        finally:
            server.should_exit = True
            thread.join(timeout=20)


def ehr_bundle(world: World) -> dict[str, Any]:
    """What an EHR sends: the Patient and two records about them, linked by urn:uuid."""
    patient_url = "urn:uuid:0b5e7a52-8d5a-4c77-9a43-1f4d8c1f6a10"
    subject = {"reference": patient_url}
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_url,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": DID, "value": world.did("patient")}],
                    "name": [{"family": CANARY}],
                    "gender": "female",
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:7f0f8e0c-3f3c-4a59-8a49-6a1b1e2f9c21",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": subject,
                    "valueQuantity": {"value": 72, "unit": "beats/minute"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {
                    "resourceType": "Condition",
                    "code": {"text": CANARY},
                    "subject": subject,
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                "code": "active",
                            }
                        ]
                    },
                },
                "request": {"method": "POST", "url": "Condition"},
            },
        ],
    }


def consent(world: World, *, types: tuple[str, ...] = ("Observation", "Condition")) -> Any:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"identifier": {"system": DID, "value": world.did("patient")}},
        "policyRule": {"text": "opt in"},
        "provision": {
            "type": "permit",
            "period": {"end": format_timestamp(world.clock.now + timedelta(days=30))},
            "actor": [
                {
                    "role": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]},
                    "reference": {"identifier": {"system": DID, "value": world.did("second")}},
                }
            ],
            "purpose": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}
            ],
            "class": [{"system": "http://hl7.org/fhir/resource-types", "code": t} for t in types],
        },
    }


def imported(served: Served) -> dict[str, str]:
    """Import the EHR's Bundle as the practitioner; the created ids by type."""
    response = served.client("practitioner").execute(
        "", method="post", data=ehr_bundle(served.world)
    )
    checked = Bundle.model_validate(json.loads(json.dumps(response)))
    assert checked.type == "transaction-response"
    created: dict[str, str] = {}
    for entry in response["entry"]:
        assert entry["response"]["status"] == "201 Created"
        resource_type, record_id, _, version = entry["response"]["location"].split("/")
        assert version == "1"
        created[resource_type] = record_id
    assert sorted(created) == ["Condition", "Observation", "Patient"]
    return created


def test_metadata_is_a_capability_statement_the_client_and_fhir_resources_parse(
    served: Served,
) -> None:
    statement = served.client("second").execute("metadata", method="get")
    parsed = CapabilityStatement.model_validate(json.loads(json.dumps(statement)))
    assert parsed.fhirVersion == "4.0.1"
    (rest,) = parsed.rest or []
    types = {resource.type for resource in rest.resource or []}
    assert types == SUPPORTED_TYPES | {"Consent", "AuditEvent"}
    assert [interaction.code for interaction in rest.interaction or []] == ["transaction"]
    audit = next(resource for resource in rest.resource or [] if resource.type == "AuditEvent")
    assert [i.code for i in audit.interaction or []] == ["read", "search-type"]  # no create


def test_an_ehr_import_is_read_back_by_a_consented_practitioner_and_refused_to_another(
    served: Served,
) -> None:
    created = imported(served)
    patient = served.client("patient")
    granted = patient.resource("Consent", **consent(served.world))
    granted.save()
    assert granted["status"] == "active"
    Consent.model_validate(json.loads(json.dumps(granted.serialize())))

    second = served.client("second")
    observation = second.reference("Observation", created["Observation"]).to_resource()
    parsed = Observation.model_validate(json.loads(json.dumps(observation.serialize())))
    assert parsed.subject is not None
    assert parsed.subject.reference == f"Patient/{created['Patient']}"  # urn:uuid resolved
    assert observation["meta"]["versionId"] == "1"
    condition = second.reference("Condition", created["Condition"]).to_resource()
    assert condition["code"]["text"] == CANARY

    with pytest.raises(ForbiddenError) as refused:
        served.client("third").reference("Observation", created["Observation"]).to_resource()
    outcome = OperationOutcome.model_validate(json.loads(str(refused.value)))
    assert outcome.issue[0].code == "forbidden"
    # The patient consented to Observation and Condition only: their Patient record is not
    # shared, and a record read under the wrong type is simply not there.
    with pytest.raises(ForbiddenError):
        second.reference("Patient", created["Patient"]).to_resource()
    with pytest.raises(ResourceNotFound):
        second.reference("Condition", created["Observation"]).to_resource()


def test_search_by_patient_subject_and_id_returns_what_the_caller_may_read(
    served: Served,
) -> None:
    created = imported(served)
    served.client("patient").resource("Consent", **consent(served.world)).save()
    second = served.client("second")
    patient_ref = f"Patient/{created['Patient']}"

    found = second.resources("Observation").search(patient=patient_ref).fetch_all()
    assert [resource.id for resource in found] == [created["Observation"]]
    by_subject = second.resources("Condition").search(subject=patient_ref).fetch_all()
    assert [resource.id for resource in by_subject] == [created["Condition"]]
    by_id = second.resources("Observation").search(_id=created["Observation"]).fetch_all()
    assert [resource.id for resource in by_id] == [created["Observation"]]
    by_did = (
        second.resources("Observation")
        .search(**{"patient:identifier": f"{DID}|{served.world.did('patient')}"})
        .fetch_all()
    )
    assert [resource.id for resource in by_did] == [created["Observation"]]
    # Without consent: an empty searchset, and every record it matched audited as refused.
    assert served.client("third").resources("Observation").search(patient=patient_ref).fetch() == []

    # Paging: two more Observations, fetched one per page through the next links.
    for _ in range(2):
        served.client("practitioner").execute("", method="post", data=ehr_bundle(served.world))
    every = second.resources("Observation").search(
        **{"patient:identifier": f"{DID}|{served.world.did('patient')}"}
    )
    assert len(every.limit(1).fetch_all()) == 3
    assert len(every.limit(1).fetch()) == 1

    bad = served.raw("second", "GET", f"/Observation?patient={patient_ref}&name=x")
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/fhir+json")
    OperationOutcome.model_validate(bad.json())


def test_an_invalid_resource_is_refused_with_an_operation_outcome(served: Served) -> None:
    practitioner = served.client("practitioner")
    invalid = practitioner.resource(
        "Observation",
        status="final",  # no code: required
        subject={"identifier": {"system": DID, "value": served.world.did("patient")}},
        valueString=CANARY,
    )
    with pytest.raises(OutcomeError) as refused:
        invalid.save()
    outcome = refused.value.resource
    OperationOutcome.model_validate(dict(outcome))
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "invalid_resource"
    assert CANARY not in json.dumps(outcome)

    answer = served.raw("practitioner", "POST", "/Observation", {"resourceType": "Observation"})
    assert answer.status_code == 422
    not_json = requests.post(
        f"{served.url}/Observation",
        data=b"{not json",
        headers={"Content-Type": "application/fhir+json"},
        auth=FreshToken(served.world, "practitioner"),
        timeout=30,
    )
    assert not_json.status_code == 400
    assert not_json.json()["resourceType"] == "OperationOutcome"
    # A whole transaction fails if one entry does: nothing of it was written.
    bundle = ehr_bundle(served.world)
    bundle["entry"][2]["resource"]["verificationStatus"] = "bogus"  # not a CodeableConcept
    before = len(served.world.events())
    answer = served.raw("practitioner", "POST", "", bundle)
    assert answer.status_code == 422
    assert len(served.world.events()) == before


def test_the_patients_audit_trail_is_exported_as_audit_events(served: Served) -> None:
    created = imported(served)
    served.client("patient").resource("Consent", **consent(served.world)).save()
    served.client("second").reference("Observation", created["Observation"]).to_resource()
    with pytest.raises(ForbiddenError):
        served.client("third").reference("Observation", created["Observation"]).to_resource()
    served.world.seal_everything(height=7)

    events = served.client("patient").resources("AuditEvent").fetch_all()
    parsed = [AuditEvent.model_validate(json.loads(json.dumps(e.serialize()))) for e in events]
    seen = [
        (event.subtype[0].code, event.outcome, event.agent[0].who.identifier.value)  # type: ignore[index,union-attr]
        for event in parsed
    ]
    world = served.world
    assert seen == [
        ("consent_granted", "0", world.did("patient")),
        ("read", "0", world.did("second")),
        ("read", "4", world.did("third")),
    ]
    read = events[1]
    entities = {entity["what"]["identifier"]["system"]: entity for entity in read["entity"]}
    assert (
        entities["urn:careledger:records:record"]["what"]["identifier"]["value"]
        == (created["Observation"])
    )
    chain = next(e for e in read["entity"] if e["what"]["identifier"]["value"] == read["id"])
    assert chain["detail"] == [{"type": "sealed_height", "valueString": "7"}]

    # The trail is the patient's alone, as in the native API.
    refused = served.raw("second", "GET", f"/AuditEvent?patient=Patient/{created['Patient']}")
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"
