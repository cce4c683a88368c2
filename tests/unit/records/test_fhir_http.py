"""The FHIR face through starlette's TestClient: every answer is FHIR, every error an
OperationOutcome with the right 4xx, and consent and audit are the native API's own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from httpx import Response

from shared.block import format_timestamp
from tests.unit.records.conftest import CANARY, World, build_world, observation
from tests.unit.records.test_http import Api, serving

DID = "urn:ietf:rfc:3986"
FHIR = "application/fhir+json"
UNKNOWN = "00000000-0000-4000-8000-0000000000ff"


class Fhir:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.world = api.world

    def send(self, method: str, path: str, as_: str, body: Any = None, **kw: Any) -> Response:
        headers = {**self.api.headers(as_), "Content-Type": FHIR}
        content = None if body is None else json.dumps(body)
        return self.api.client.request(
            method, f"/fhir{path}", content=content, headers=headers, **kw
        )

    def create(self, resource: dict[str, Any] | None = None, as_: str = "practitioner") -> str:
        answer = self.send("POST", "/Observation", as_, resource or subject_of(self.world))
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def grant(self, **provision: Any) -> str:
        answer = self.send("POST", "/Consent", "patient", consent(self.world, **provision))
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


@pytest.fixture
def fhir() -> Iterator[Fhir]:
    with serving(build_world()) as api:
        yield Fhir(api)


def subject_of(world: World, name: str = "patient", **changes: Any) -> dict[str, Any]:
    return {
        **observation(),
        "subject": {"identifier": {"system": DID, "value": world.did(name)}},
        **changes,
    }


def consent(world: World, **provision: Any) -> dict[str, Any]:
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
                    "role": {"text": "recipient"},
                    "reference": {"identifier": {"system": DID, "value": world.did("second")}},
                }
            ],
            "purpose": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}
            ],
            "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}],
            **provision,
        },
    }


def outcome(answer: Response, status: int, reason: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(FHIR)
    body: dict[str, Any] = answer.json()
    OperationOutcome.model_validate(body)
    if reason is not None:
        assert body["issue"][0]["details"]["coding"][0]["code"] == reason
    return body


def accesses(world: World) -> list[tuple[str, str, str | None]]:
    """(action, outcome, actor) of every audited access of the patient, oldest first."""
    entries = world.store.disclosures(world.pseudonym("patient"))
    return [(str(e.action), str(e.outcome), e.actor) for e in entries]


# --- authentication and bodies --------------------------------------------------------------


def test_every_fhir_route_needs_a_token_and_answers_401_as_an_operation_outcome(
    fhir: Fhir,
) -> None:
    for method, path in [
        ("GET", "/fhir/metadata"),
        ("POST", "/fhir"),
        ("GET", "/fhir/Observation?_id=x"),
        ("POST", "/fhir/Observation"),
        ("GET", f"/fhir/Observation/{UNKNOWN}"),
        ("GET", f"/fhir/Observation/{UNKNOWN}/_history/1"),
    ]:
        answer = fhir.api.client.request(method, path)
        body = outcome(answer, 401)
        assert body["issue"][0]["code"] == "login"
        assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_body_must_be_fhir_json(fhir: Fhir) -> None:
    headers = fhir.api.headers("practitioner")
    plain = fhir.api.client.post(
        "/fhir/Observation", content=b"{}", headers={**headers, "Content-Type": "text/plain"}
    )
    outcome(plain, 415, "unsupported_media_type")
    not_json = fhir.api.client.post(
        "/fhir/Observation",
        content=b"\xff{",
        headers={**fhir.api.headers("practitioner"), "Content-Type": "application/json"},
    )
    outcome(not_json, 400, "invalid_request")
    deep: Any = "x"
    for _ in range(64):  # the text nests 64 levels, as deep as any API takes; the value 65
        deep = [deep]
    outcome(fhir.send("POST", "/Observation", "practitioner", deep), 400, "invalid_request")
    # Deeper text is refused by the shared middleware before the face, in the native shape.
    deeper = fhir.send("POST", "/Observation", "practitioner", [deep])
    assert deeper.status_code == 400, deeper.text
    assert deeper.json()["reason"] == "too_deep"
    nested = fhir.send("POST", "/Observation", "practitioner", {**observation(), "x": {"y": []}})
    outcome(nested, 422, "invalid_resource")


def test_the_capability_statement_lists_every_record_type(fhir: Fhir) -> None:
    answer = fhir.send("GET", "/metadata", "patient")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(FHIR)
    types = [resource["type"] for resource in answer.json()["rest"][0]["resource"]]
    assert "Observation" in types
    assert types[-2:] == ["Consent", "AuditEvent"]


# --- create, read, vread -------------------------------------------------------------------


def test_a_created_record_answers_201_with_location_and_etag_and_ignores_a_client_id(
    fhir: Fhir,
) -> None:
    answer = fhir.send(
        "POST", "/Observation", "practitioner", {**subject_of(fhir.world), "id": "x"}
    )
    assert answer.status_code == 201
    body = answer.json()
    assert body["id"] != "x"
    assert body["meta"]["versionId"] == "1"
    assert answer.headers["location"].endswith(f"/fhir/Observation/{body['id']}/_history/1")
    assert answer.headers["etag"] == 'W/"1"'
    assert answer.headers["content-type"].startswith(FHIR)
    read = fhir.send("GET", f"/Observation/{body['id']}", "patient")
    assert read.json() == body
    assert read.headers["etag"] == 'W/"1"'
    assert fhir.send("GET", f"/Observation/{body['id']}/_history/1", "patient").json() == body


@pytest.mark.parametrize(
    ("path", "resource", "status", "reason"),
    [
        ("/Observation", {"resourceType": "Condition"}, 422, "invalid_request"),
        ("/Observation", [], 422, "invalid_request"),
        ("/Nothing", {"resourceType": "Nothing"}, 404, "not_found"),
        ("/Observation", observation(), 422, "invalid_resource"),  # no subject DID
    ],
    ids=["type-mismatch", "not-an-object", "unknown-type", "no-patient-did"],
)
def test_a_create_that_cannot_be_made_is_refused(
    fhir: Fhir, path: str, resource: Any, status: int, reason: str
) -> None:
    body = outcome(fhir.send("POST", path, "practitioner", resource), status, reason)
    assert CANARY not in json.dumps(body)


def test_a_create_is_the_native_one_practitioners_only_registered_patients_only(
    fhir: Fhir,
) -> None:
    outcome(fhir.send("POST", "/Observation", "patient", subject_of(fhir.world)), 403, "forbidden")
    stranger = subject_of(fhir.world, "nobody")
    outcome(fhir.send("POST", "/Observation", "practitioner", stranger), 404, "not_found")


def test_a_did_that_is_not_a_did_key_is_422(fhir: Fhir) -> None:
    grant = consent(fhir.world)
    grant["provision"]["actor"][0]["reference"]["identifier"]["value"] = "did:key:nope"
    outcome(fhir.send("POST", "/Consent", "patient", grant), 422, "invalid_request")
    bad = subject_of(fhir.world)
    bad["subject"]["identifier"]["value"] = "did:key:zzz"
    outcome(fhir.send("POST", "/Observation", "practitioner", bad), 422, "invalid_request")
    bundle = transaction(fhir.world, entry(bad))
    outcome(fhir.send("POST", "", "practitioner", bundle), 422, "invalid_request")
    assert fhir.world.events() == []


def test_a_patient_resource_names_its_did_in_one_identifier(fhir: Fhir) -> None:
    patient = {"resourceType": "Patient", "identifier": [{"system": DID, "value": "nope"}]}
    outcome(fhir.send("POST", "/Patient", "practitioner", patient), 422, "invalid_resource")
    patient["identifier"] = [{"system": DID, "value": fhir.world.did("patient")}]
    assert fhir.send("POST", "/Patient", "practitioner", patient).status_code == 201


def test_reads_of_unknown_records_versions_and_types_are_404_and_erased_410(fhir: Fhir) -> None:
    record = fhir.create()
    outcome(fhir.send("GET", f"/Observation/{UNKNOWN}", "patient"), 404, "not_found")
    outcome(fhir.send("GET", f"/Condition/{record}", "patient"), 404, "not_found")
    outcome(fhir.send("GET", f"/AuditEvent/{record}", "patient"), 404, "not_found")
    outcome(fhir.send("GET", "/Observation/not-an-id", "patient"), 404, "not_found")
    for version in ("2", "0", "x", "9" * 19):
        answer = fhir.send("GET", f"/Observation/{record}/_history/{version}", "patient")
        outcome(answer, 404, "not_found")
    assert fhir.api.request("POST", f"/v1/records/{record}/erase", "patient").status_code == 200
    body = outcome(fhir.send("GET", f"/Observation/{record}", "patient"), 410, "erased")
    assert body["issue"][0]["code"] == "deleted"


def test_a_refused_read_is_403_and_audited_like_a_native_one(fhir: Fhir) -> None:
    record = fhir.create()
    body = outcome(fhir.send("GET", f"/Observation/{record}", "second"), 403, "consent_required")
    assert body["issue"][0]["code"] == "forbidden"
    fhir.grant()
    assert fhir.send("GET", f"/Observation/{record}", "second").status_code == 200
    assert accesses(fhir.world) == [
        ("read", "denied", fhir.world.did("second")),
        ("consent_granted", "allowed", None),
        ("read", "allowed", fhir.world.did("second")),
    ]
    # What was sealed is the native RecordAccessed event: metadata, never content.
    assert CANARY not in json.dumps(fhir.world.events())


# --- search --------------------------------------------------------------------------------


def test_search_by_patient_audits_each_match_and_pages_with_next_links(fhir: Fhir) -> None:
    patient = fhir.send(
        "POST",
        "/Patient",
        "practitioner",
        {
            "resourceType": "Patient",
            "identifier": [{"system": DID, "value": fhir.world.did("patient")}],
        },
    ).json()["id"]
    records = [fhir.create() for _ in range(3)]
    fhir.grant()
    answer = fhir.send("GET", f"/Observation?patient=Patient/{patient}&_count=2", "second")
    assert answer.status_code == 200
    bundle = answer.json()
    assert bundle["type"] == "searchset"
    assert [entry["resource"]["id"] for entry in bundle["entry"]] == records[:2]
    (link,) = bundle["link"]
    assert link["relation"] == "next"
    rest = fhir.api.client.get(link["url"], headers=fhir.api.headers("second")).json()
    assert [entry["resource"]["id"] for entry in rest["entry"]] == records[2:]
    assert "link" not in rest
    reads = [a for a in accesses(fhir.world) if a[0] == "read"]
    assert reads == [("read", "allowed", fhir.world.did("second"))] * 3
    # The Patient record itself is not covered by the consent: searched, refused, audited.
    did = f"{DID}|{fhir.world.did('patient')}"
    assert "entry" not in fhir.send("GET", "/Patient", "second", params={"identifier": did}).json()
    assert accesses(fhir.world)[-1] == ("read", "denied", fhir.world.did("second"))
    mine = fhir.send("GET", "/Patient", "patient", params={"identifier": did}).json()
    assert [entry["resource"]["id"] for entry in mine["entry"]] == [patient]
    again = {
        "resourceType": "Patient",
        "identifier": [{"system": DID, "value": fhir.world.did("patient")}],
    }
    assert fhir.send("POST", "/Patient", "practitioner", again).status_code == 201
    page = fhir.send("GET", "/Patient", "patient", params={"identifier": did, "_count": 1}).json()
    assert "identifier=urn%3Aietf%3Arfc%3A3986%7Cdid%3Akey%3A" in page["link"][0]["url"]


def test_search_by_id_and_by_an_unknown_patient(fhir: Fhir) -> None:
    first, second = fhir.create(), fhir.create()
    ids = fhir.send("GET", "/Observation", "patient", params={"_id": f"{second},{UNKNOWN}"})
    assert [entry["resource"]["id"] for entry in ids.json()["entry"]] == [second]
    both = fhir.send(
        "GET",
        "/Observation",
        "patient",
        params={"_id": first, "patient:identifier": f"{DID}|{fhir.world.did('patient')}"},
    )
    assert [entry["resource"]["id"] for entry in both.json()["entry"]] == [first]
    nobody = fhir.send("GET", "/Observation", "patient", params={"subject": first})
    assert "entry" not in nobody.json()  # not a Patient record: nobody's records
    malformed = fhir.send("GET", "/Observation", "patient", params={"subject": "Patient/x"})
    assert "entry" not in malformed.json()
    assert "entry" not in fhir.send("GET", "/Observation?_id=x", "patient").json()
    paged = fhir.send(
        "GET", "/Observation", "patient", params={"_id": f"{first},{second}", "_count": 1}
    )
    assert "_id=" in paged.json()["link"][0]["url"]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "_count=5",
        "_id=",
        "_id=a&_id=b",
        "name=x&_id=a",
        "_count=0&_id=a",
        "_count=101&_id=a",
        "_count=x&_id=a",
        "_offset=-1&_id=a",
        "_offset=99999999999999999999&_id=a",
        "patient=Patient/a/b",
        "patient=",
        "patient:identifier=did:key:z6Mk",
        "patient:identifier=urn:ietf:rfc:3986|nope",
        "patient=a&subject=b",
        "identifier=x",
    ],
)
def test_a_bad_search_is_400(fhir: Fhir, query: str) -> None:
    outcome(fhir.send("GET", f"/Observation?{query}", "patient"), 400, "invalid_request")


def test_a_patient_search_takes_the_identifier_only(fhir: Fhir) -> None:
    outcome(fhir.send("GET", "/Patient?patient=a", "patient"), 400, "invalid_request")
    outcome(fhir.send("GET", "/Patient?identifier=a|b", "patient"), 400, "invalid_request")


# --- transactions --------------------------------------------------------------------------


def transaction(world: World, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def entry(resource: dict[str, Any], full_url: str | None = None) -> dict[str, Any]:
    posted: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }
    if full_url is not None:
        posted["fullUrl"] = full_url
    return posted


PATIENT_URL = "urn:uuid:6a0f3c1e-0000-4000-8000-000000000001"


def patient_entry(world: World, name: str = "patient") -> dict[str, Any]:
    resource = {
        "resourceType": "Patient",
        "identifier": [{"system": DID, "value": world.did(name)}],
    }
    return entry(resource, PATIENT_URL)


def test_a_transaction_resolves_references_and_answers_201_per_entry(fhir: Fhir) -> None:
    world = fhir.world
    linked = {**observation(), "subject": {"reference": PATIENT_URL}}
    direct = subject_of(world)
    answer = fhir.send(
        "POST",
        "",
        "practitioner",
        transaction(world, patient_entry(world), entry(linked), entry(direct)),
    )
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    assert bundle["type"] == "transaction-response"
    locations = [e["response"]["location"] for e in bundle["entry"]]
    patient_id = locations[0].split("/")[1]
    read = fhir.send("GET", f"/{locations[1].removesuffix('/_history/1')}", "patient").json()
    assert read["subject"] == {"reference": f"Patient/{patient_id}"}
    assert [e["response"]["etag"] for e in bundle["entry"]] == ['W/"1"'] * 3


@pytest.mark.parametrize(
    "change",
    [
        "batch",
        "empty",
        "put",
        "unsupported",
        "dangling",
        "twice",
        "no-patient",
        "two-patients",
        "not-a-bundle",
    ],
)
def test_a_transaction_that_cannot_be_made_writes_nothing(fhir: Fhir, change: str) -> None:
    world = fhir.world
    linked = entry({**observation(), "subject": {"reference": PATIENT_URL}})
    bundle = transaction(world, patient_entry(world), linked)
    if change == "batch":
        bundle["type"] = "batch"
    elif change == "empty":
        bundle["entry"] = []
    elif change == "put":
        linked["request"]["method"] = "PUT"
    elif change == "unsupported":
        bundle["entry"].append(
            entry({"resourceType": "Basic", "code": {"text": "x"}}),
        )
    elif change == "dangling":
        linked["resource"]["subject"] = {
            "reference": "urn:uuid:6a0f3c1e-0000-4000-8000-0000000000ff"
        }
    elif change == "twice":
        bundle["entry"].append(patient_entry(world))
    elif change == "no-patient":
        linked["resource"]["subject"] = {"display": "someone"}
    elif change == "two-patients":
        linked["resource"]["subject"]["identifier"] = {"system": DID, "value": world.did("second")}
    else:
        bundle["resourceType"] = "Parameters"
    before = len(world.events())
    outcome(fhir.send("POST", "", "practitioner", bundle), 422)
    assert len(world.events()) == before


def test_a_transaction_of_a_non_practitioner_or_for_an_unknown_patient_writes_nothing(
    fhir: Fhir,
) -> None:
    world = fhir.world
    bundle = transaction(world, entry(subject_of(world)), entry(subject_of(world, "nobody")))
    outcome(fhir.send("POST", "/", "practitioner", bundle), 404, "not_found")
    outcome(fhir.send("POST", "/", "patient", transaction(world, entry(subject_of(world)))), 403)
    assert world.events() == []


# --- consent and audit ----------------------------------------------------------------------


def test_a_consent_is_created_read_listed_and_shown_inactive_once_revoked(fhir: Fhir) -> None:
    consent_id = fhir.grant()
    read = fhir.send("GET", f"/Consent/{consent_id}", "patient").json()
    assert read["status"] == "active"
    assert read["provision"]["actor"][0]["reference"]["identifier"]["value"] == (
        fhir.world.did("second")
    )
    assert read["provision"]["class"] == [
        {"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}
    ]
    outcome(fhir.send("GET", f"/Consent/{UNKNOWN}", "patient"), 404, "not_found")
    outcome(fhir.send("GET", f"/Consent/{consent_id}", "second"), 404, "not_found")
    everything = fhir.grant(**{"class": []})
    listed = fhir.send("GET", "/Consent", "patient").json()
    assert [e["resource"]["id"] for e in listed["entry"]] == [consent_id, everything]
    assert "class" not in listed["entry"][1]["resource"]["provision"]
    one = fhir.send("GET", "/Consent", "patient", params={"_id": everything, "_count": 1}).json()
    assert [e["resource"]["id"] for e in one["entry"]] == [everything]
    assert fhir.api.request("DELETE", f"/v1/consents/{consent_id}", "patient").status_code == 200
    assert fhir.send("GET", f"/Consent/{consent_id}", "patient").json()["status"] == "inactive"
    fhir.world.clock.advance(days=31)
    assert fhir.send("GET", f"/Consent/{everything}", "patient").json()["status"] == "inactive"
    paged = fhir.send("GET", "/Consent", "patient", params={"_count": 1}).json()
    assert paged["link"][0]["url"].endswith("_count=1&_offset=1")


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"status": "draft"}, 422),
        ({"sourceReference": {"reference": "Contract/1"}}, 422),
        ({"scope": {"coding": [{"system": "x", "code": "research"}]}}, 422),
        ({"patient": {"identifier": {"system": DID, "value": "did:key:z6Mkother"}}}, 403),
        ({"patient": {"reference": "Patient/1"}}, 403),
        ({"provision": {"type": "deny"}}, 422),
        (
            {"provision": {"data": [{"meaning": "instance", "reference": {"reference": "a/b"}}]}},
            422,
        ),
        ({"provision": {"actor": []}}, 422),
        ({"provision": {"purpose": [{"system": "x", "code": "TREAT"}]}}, 422),
        (
            {
                "provision": {
                    "purpose": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                            "code": "NOPE",
                        }
                    ]
                }
            },
            422,
        ),
        (
            {
                "provision": {
                    "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Basic"}]
                }
            },
            422,
        ),
        ({"provision": {"class": [{"system": "x", "code": "Observation"}]}}, 422),
        ({"provision": {"period": {}}}, 422),
        ({"provision": {"period": {"end": "2099-01-01"}}}, 422),
        ({"provision": {"period": {"end": "2099-01-01T00:00:00"}}}, 422),
        ({"provision": {"period": {"end": "2099-13-01T00:00:00Z"}}}, 422),
        (
            {
                "provision": {
                    "purpose": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                            "code": "ETREAT",
                        }
                    ]
                }
            },
            422,
        ),
        ({"resourceType": "Observation"}, 422),
    ],
)
def test_a_consent_the_native_model_cannot_hold_is_refused(
    fhir: Fhir, change: dict[str, Any], status: int
) -> None:
    resource = consent(fhir.world)
    provision = change.pop("provision", {})
    resource.update(change)
    resource["provision"].update(provision)
    outcome(fhir.send("POST", "/Consent", "patient", resource), status)
    assert fhir.world.events() == []


def test_the_audit_trail_is_the_patients_as_audit_events(fhir: Fhir) -> None:
    record = fhir.create()
    fhir.grant()
    fhir.send("GET", f"/Observation/{record}", "second")
    reason = {"reason": f"unconscious {CANARY}"}
    assert fhir.api.request("POST", f"/v1/records/{record}/break-glass", "practitioner", reason)
    assert fhir.api.request("GET", f"/v1/patients/{fhir.world.did('patient')}/export", "patient")
    fhir.world.seal_everything(height=3)
    assert fhir.api.request("POST", f"/v1/records/{record}/erase", "patient").status_code == 200
    bundle = fhir.send("GET", "/AuditEvent", "patient").json()
    events = [e["resource"] for e in bundle["entry"]]
    assert [(e["subtype"][0]["code"], e["action"]) for e in events] == [
        ("consent_granted", "C"),
        ("read", "R"),
        ("break_glass", "R"),
        ("export", "R"),
        ("erase", "D"),
    ]
    assert events[2]["entity"][0]["description"] == reason["reason"]  # the patient's to see
    assert events[2]["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    sealed = [e["entity"][-1].get("detail") for e in events]
    assert sealed == [[{"type": "sealed_height", "valueString": "3"}]] * 4 + [None]
    consent_entity = events[0]["entity"][0]["what"]["identifier"]
    assert consent_entity["system"] == "urn:careledger:records:consent"
    assert len(events[3]["entity"]) == 1  # an export names no record, only its sealed event
    one = fhir.send("GET", "/AuditEvent", "patient", params={"_id": events[1]["id"]}).json()
    assert [e["resource"]["id"] for e in one["entry"]] == [events[1]["id"]]
    own = {"patient:identifier": f"{DID}|{fhir.world.did('patient')}"}
    assert len(fhir.send("GET", "/AuditEvent", "patient", params=own).json()["entry"]) == 5
    outcome(fhir.send("GET", "/AuditEvent", "second", params=own), 403, "forbidden")
    assert fhir.send("GET", f"/AuditEvent/{events[4]['id']}", "patient").json() == events[4]
    outcome(fhir.send("GET", f"/AuditEvent/{events[4]['id']}", "second"), 404, "not_found")
    refused = fhir.send("POST", "/AuditEvent", "patient", events[4])
    outcome(refused, 405, "method_not_allowed")
    outcome(fhir.send("GET", "/Consent", "second", params=own), 403, "forbidden")
    assert "entry" not in fhir.send("GET", "/AuditEvent", "second").json()


MALFORMED: list[Any] = [
    None,
    1,
    "x",
    [],
    {},
    {"resourceType": 5},
    {"resourceType": "Bundle"},
    {"resourceType": "Bundle", "type": "transaction", "entry": "x"},
    {"resourceType": "Bundle", "type": "transaction", "entry": [{"request": "x"}]},
    {"resourceType": "Consent", "status": "active", "scope": {}, "category": [{}]},
    {"resourceType": "Observation", "status": "final", "code": {"text": "a"}, "subject": "x"},
    {"resourceType": "Observation", "contained": [{"resourceType": "Nope"}]},
    {"resourceType": "Patient", "identifier": "x"},
    {"resourceType": "Patient", "identifier": [1, 2]},
]


@pytest.mark.parametrize("path", ["", "/Observation", "/Patient", "/Consent", "/AuditEvent", "/x"])
def test_no_malformed_body_is_answered_5xx(fhir: Fhir, path: str) -> None:
    for body in MALFORMED:
        for who in ("practitioner", "patient"):
            answer = fhir.send("POST", path, who, body)
            assert 400 <= answer.status_code < 500, (body, answer.text)
            OperationOutcome.model_validate(answer.json())
