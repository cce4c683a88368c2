"""FHIR R4 validation of submitted resources: what is stored, what is refused, and that no
error ever repeats a submitted value."""

from __future__ import annotations

import copy
import json
import traceback
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.records.core.fhir import SUPPORTED_TYPES, patient_bundle, validate_resource
from services.records.errors import InvalidResourceError

RECORD_ID = "0b6a8f4e-3c1d-4f57-9a2e-5d8c7b1e2f30"
CANARY = "CANARY-7f3a"

PATIENT: dict[str, Any] = {
    "resourceType": "Patient",
    "active": True,
    "name": [{"family": "Doe", "given": ["Jane"]}],
    "gender": "female",
    "birthDate": "1980-02-03",
    "telecom": [{"system": "email", "value": "jane@example.org"}],
}
OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "meta": {"lastUpdated": "2024-05-01T10:00:00Z", "tag": [{"code": "telemed"}]},
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2024-05-01T09:58:00+02:00",
    "valueQuantity": {"value": 72.5, "unit": "/min", "system": "http://unitsofmeasure.org"},
}
ENCOUNTER: dict[str, Any] = {
    "resourceType": "Encounter",
    "status": "finished",
    "class": {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": "VR",
        "display": "virtual",
    },
    "subject": {"reference": "Patient/p1"},
    "period": {"start": "2024-05-01T09:30:00Z", "end": "2024-05-01T09:50:00Z"},
}
DOCUMENT_REFERENCE: dict[str, Any] = {
    "resourceType": "DocumentReference",
    "status": "current",
    "subject": {"reference": "Patient/p1"},
    "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8gd29ybGQ="}}],
}
CONDITION: dict[str, Any] = {
    "resourceType": "Condition",
    "clinicalStatus": {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                "code": "active",
            }
        ]
    },
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
    "subject": {"reference": "Patient/p1"},
}
MEDICATION_REQUEST: dict[str, Any] = {
    "resourceType": "MedicationRequest",
    "status": "active",
    "intent": "order",
    "medicationCodeableConcept": {"text": "amoxicillin 500 mg"},
    "subject": {"reference": "Patient/p1"},
    "dosageInstruction": [{"text": "1 capsule three times a day"}],
}
ALLERGY_INTOLERANCE: dict[str, Any] = {
    "resourceType": "AllergyIntolerance",
    "patient": {"reference": "Patient/p1"},
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005"}]},
    "criticality": "high",
}
EXAMPLES = [
    PATIENT,
    OBSERVATION,
    ENCOUNTER,
    DOCUMENT_REFERENCE,
    CONDITION,
    MEDICATION_REQUEST,
    ALLERGY_INTOLERANCE,
]


def _refusal(resource: Any) -> InvalidResourceError:
    with pytest.raises(InvalidResourceError) as caught:
        validate_resource(resource, record_id=RECORD_ID, version=1)
    return caught.value


def _shown(exc: InvalidResourceError) -> str:
    return "\n".join([str(exc), exc.detail, json.dumps(exc.errors)])


def _assert_errors_well_formed(exc: InvalidResourceError) -> None:
    assert exc.errors
    assert len(exc.errors) <= 20
    for error in exc.errors:
        assert set(error) == {"loc", "type", "msg"}
        assert all(isinstance(error[key], str) for key in error)


def test_supported_types_are_the_clinical_ones() -> None:
    assert {"Patient", "Observation", "Encounter", "ServiceRequest"} <= SUPPORTED_TYPES
    assert not SUPPORTED_TYPES & {"Consent", "Bundle"}


@pytest.mark.parametrize("resource", EXAMPLES, ids=lambda r: r["resourceType"])
def test_valid_resource_comes_back_unchanged_but_for_id_and_version(
    resource: dict[str, Any],
) -> None:
    submitted = copy.deepcopy(resource)
    stored = validate_resource(resource, record_id=RECORD_ID, version=3)
    assert resource == submitted  # the caller's value is not touched
    meta = {**resource.get("meta", {}), "versionId": "3"}
    assert stored == {**resource, "id": RECORD_ID, "meta": meta}


def test_stored_value_is_a_deep_copy() -> None:
    stored = validate_resource(OBSERVATION, record_id=RECORD_ID, version=1)
    stored["code"]["coding"][0]["code"] = "0000-0"
    stored["meta"]["tag"].clear()
    assert OBSERVATION["code"]["coding"][0]["code"] == "8867-4"
    assert OBSERVATION["meta"]["tag"] == [{"code": "telemed"}]


def test_equal_id_is_accepted_and_numbers_are_kept_as_given() -> None:
    resource = {**OBSERVATION, "id": RECORD_ID, "valueQuantity": {"value": 1.50, "unit": "mg"}}
    stored = validate_resource(resource, record_id=RECORD_ID, version=2)
    assert stored["id"] == RECORD_ID
    assert stored["valueQuantity"] == {"value": 1.5, "unit": "mg"}
    assert stored["meta"]["versionId"] == "2"


def test_other_id_is_refused() -> None:
    exc = _refusal({**PATIENT, "id": "someone-else"})
    assert exc.detail == "the resource id must be absent or equal the record id"
    assert exc.errors[0]["loc"] == "id"


@pytest.mark.parametrize("resource", [[PATIENT], "Patient", None, 42])
def test_non_object_is_refused(resource: Any) -> None:
    assert _refusal(resource).detail == "the resource must be a JSON object"


@pytest.mark.parametrize("resource_type", [None, 7, ["Patient"]])
def test_missing_or_non_string_resource_type_is_refused(resource_type: Any) -> None:
    resource = {key: value for key, value in PATIENT.items() if key != "resourceType"}
    if resource_type is not None:
        resource["resourceType"] = resource_type
    exc = _refusal(resource)
    assert exc.detail == "the resource must have a string resourceType"
    assert exc.errors[0]["loc"] == "resourceType"


@pytest.mark.parametrize("resource_type", ["Consent", "Bundle", "Foo", "patient"])
def test_unsupported_type_is_refused_naming_it(resource_type: str) -> None:
    exc = _refusal({**PATIENT, "resourceType": resource_type})
    assert exc.detail.startswith(f"resourceType {resource_type!r} is not one of ")
    assert "Observation" in exc.detail


def test_long_unsupported_type_is_cut_when_shown() -> None:
    exc = _refusal({"resourceType": "X" * 200})
    assert "X" * 64 in exc.detail
    assert "X" * 65 not in exc.detail


@pytest.mark.parametrize(
    ("resource", "loc", "error_type"),
    [
        ({**PATIENT, "active": "maybe"}, "active", "bool_parsing"),
        ({**PATIENT, "name": "Jane Doe"}, "name", "list_type"),
        ({**PATIENT, "nickname": "JD"}, "<redacted>", "extra_forbidden"),
        (
            {"resourceType": "Observation", "code": {"text": "x"}},
            "status",
            "model_field_validation.missing",
        ),
        ({"resourceType": "Observation", "status": "final"}, "code", "missing"),
        (
            {**OBSERVATION, "code": {"coding": [{"system": "http://loinc.org", "code": " x"}]}},
            "code.coding.0.code",
            "string_pattern_mismatch",
        ),
        ({**ENCOUNTER, "period": {"start": "2024-05-01T09:30:00"}}, "period.start", "value_error"),
    ],
)
def test_invalid_field_is_refused_with_where_and_what(
    resource: dict[str, Any], loc: str, error_type: str
) -> None:
    exc = _refusal(resource)
    assert exc.detail == f"the resource is not a valid FHIR R4 {resource['resourceType']}"
    _assert_errors_well_formed(exc)
    assert {"loc": loc, "type": error_type} in [
        {"loc": error["loc"], "type": error["type"]} for error in exc.errors
    ]


def test_errors_are_capped_at_twenty() -> None:
    unknown = {f"unknown{index}": 1 for index in range(30)}
    exc = _refusal({**PATIENT, **unknown})
    assert len(exc.errors) == 20


@pytest.mark.parametrize(
    "resource",
    [
        {**PATIENT, "birthDate": CANARY},
        {**PATIENT, "active": CANARY},
        {**PATIENT, CANARY: "x"},
        {**PATIENT, "name": [{"family": "Doe", CANARY: {"nested": CANARY}}]},
        {**PATIENT, "photo": [{"data": f"{CANARY}!!"}]},
        {**PATIENT, "meta": {"lastUpdated": CANARY}},
        {**PATIENT, "contained": [{"resourceType": CANARY}]},
        {**PATIENT, "contained": [CANARY]},
        {**PATIENT, "resourceType": "Observation", "status": CANARY, "note": [{"text": CANARY}]},
        {**OBSERVATION, "code": {"coding": [{"code": f"{CANARY}  two spaces"}]}},
        {**OBSERVATION, "valueQuantity": {"value": CANARY}},
        {**PATIENT, "id": CANARY},
    ],
)
def test_no_error_repeats_a_submitted_value(resource: dict[str, Any]) -> None:
    exc = _refusal(resource)
    assert CANARY not in _shown(exc)
    # The library's own exception quotes values at times; a logged traceback must not.
    assert CANARY not in "".join(traceback.format_exception(exc))


def test_message_quoting_a_submitted_member_name_is_redacted() -> None:
    # fhir.resources' choice-type check lists the member names of the choice in its message;
    # they are submitted names, so they are redacted like any other submitted string.
    resource = {**PATIENT, "deceasedBoolean": True, "deceasedDateTime": "2020-01-01"}
    exc = _refusal(resource)
    assert exc.errors[0]["type"] == "value_error"
    assert "deceasedBoolean" not in exc.errors[0]["msg"]  # a submitted member name
    assert "<redacted>" in exc.errors[0]["msg"]


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=2, max_size=24))
def test_no_submitted_text_is_ever_shown(text: str) -> None:
    secret = "Q" + text  # never a valid date, type name or boolean
    for resource in (
        {**PATIENT, "birthDate": secret},
        {**PATIENT, secret: 1},
        {**PATIENT, "active": secret},
        {**PATIENT, "contained": [{"resourceType": secret}]},
    ):
        assert secret not in _shown(_refusal(resource))


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused(number: float) -> None:
    exc = _refusal({**OBSERVATION, "valueQuantity": {"value": number}})
    assert exc.errors == [{"loc": "*.*", "type": "finite_number", "msg": "numbers must be finite"}]


@pytest.mark.parametrize("number", [2**53, -(2**53), 2**63, 10**29])
def test_integers_rfc_8785_cannot_encode_are_refused(number: int) -> None:
    exc = _refusal({**OBSERVATION, "valueQuantity": {"value": number}})
    assert exc.errors == [
        {
            "loc": "*.*",
            "type": "unsafe_integer",
            "msg": "integers are at most 2**53 - 1 in magnitude",
        }
    ]


@pytest.mark.parametrize("number", [2**53 - 1, -(2**53 - 1), 1e30])
def test_the_largest_safe_integers_and_large_decimals_are_kept(number: float) -> None:
    stored = validate_resource(
        {**OBSERVATION, "valueQuantity": {"value": number}}, record_id=RECORD_ID, version=1
    )
    assert stored["valueQuantity"]["value"] == number


def test_non_json_values_are_refused() -> None:
    assert _refusal({**PATIENT, "name": [{"given": {"Jane"}}]}).errors[0]["loc"] == "*.0.*"
    assert _refusal({**PATIENT, 1: "x"}).errors[0]["type"] == "dict_keys"


def test_meta_must_be_an_object() -> None:
    assert _refusal({**PATIENT, "meta": "v1"}).errors[0]["loc"] == "meta"


def _stored(resource: Mapping[str, Any], record_id: str) -> dict[str, Any]:
    return validate_resource(resource, record_id=record_id, version=1)


def test_bundle_holds_one_entry_per_resource() -> None:
    ids = [f"0b6a8f4e-3c1d-4f57-9a2e-5d8c7b1e2f{index:02d}" for index in range(len(EXAMPLES))]
    resources = [_stored(resource, id_) for resource, id_ in zip(EXAMPLES, ids, strict=True)]
    bundle = patient_bundle(resources, bundle_id="b1", timestamp="2024-05-01T10:00:00Z")
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    assert bundle["id"] == "b1"
    assert bundle["timestamp"] == "2024-05-01T10:00:00Z"
    assert bundle["entry"] == [
        {"fullUrl": f"urn:uuid:{id_}", "resource": resource}
        for id_, resource in zip(ids, resources, strict=True)
    ]


def test_empty_bundle_is_valid() -> None:
    bundle = patient_bundle([], bundle_id="b1", timestamp="2024-05-01T10:00:00Z")
    assert bundle["entry"] == []


def test_bundle_with_an_invalid_entry_is_refused() -> None:
    bad = {**_stored(PATIENT, RECORD_ID), "active": CANARY}
    with pytest.raises(InvalidResourceError) as caught:
        patient_bundle([bad], bundle_id="b1", timestamp="2024-05-01T10:00:00Z")
    assert caught.value.detail == "the resource is not a valid FHIR R4 Bundle"
    assert caught.value.errors[0]["loc"] == "entry.0.resource.active"
    assert CANARY not in _shown(caught.value)


def test_bundle_entry_without_id_is_refused() -> None:
    with pytest.raises(InvalidResourceError):
        patient_bundle([PATIENT], bundle_id="b1", timestamp="2024-05-01T10:00:00Z")


def test_bundle_timestamp_must_be_an_instant() -> None:
    with pytest.raises(InvalidResourceError):
        patient_bundle([], bundle_id="b1", timestamp="2024-05-01")
