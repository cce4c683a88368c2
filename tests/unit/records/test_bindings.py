"""Required bindings: a top-level code outside its FHIR R4 value set is refused, unechoed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.records.core.bindings import REQUIRED_BINDINGS, binding_errors
from services.records.core.fhir import SUPPORTED_TYPES, validate_resource
from services.records.errors import InvalidResourceError

RECORD = "0b7c3a52-6f1e-4c1a-9d55-3f7e2a1b9c01"
CANARY = "CANARY-binding-77"


def minimal(resource_type: str) -> dict[str, Any]:
    """A structurally valid resource of each type with a bound element."""
    reference = {"reference": "Patient/p1"}
    concept = {"text": "something"}
    return {
        "AllergyIntolerance": {"patient": reference},
        "CarePlan": {"status": "active", "intent": "plan", "subject": reference},
        "DiagnosticReport": {"status": "final", "code": concept},
        "DocumentReference": {
            "status": "current",
            "content": [{"attachment": {"contentType": "text/plain", "data": "aGk="}}],
        },
        "Encounter": {
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "VR"},
        },
        "Immunization": {
            "status": "completed",
            "vaccineCode": concept,
            "patient": reference,
            "occurrenceDateTime": "2026-01-01",
        },
        "MedicationRequest": {
            "status": "active",
            "intent": "order",
            "subject": reference,
            "medicationCodeableConcept": concept,
        },
        "MedicationStatement": {
            "status": "active",
            "subject": reference,
            "medicationCodeableConcept": concept,
        },
        "Observation": {"status": "final", "code": concept},
        "Patient": {},
        "Procedure": {"status": "completed", "subject": reference},
        "ServiceRequest": {"status": "active", "intent": "order", "subject": reference},
    }[resource_type] | {"resourceType": resource_type}


BOUND = [
    (resource_type, element)
    for resource_type, elements in REQUIRED_BINDINGS.items()
    for element in elements
]


def test_every_bound_type_is_a_supported_type() -> None:
    assert set(REQUIRED_BINDINGS) <= SUPPORTED_TYPES


@pytest.mark.parametrize(("resource_type", "element"), BOUND)
def test_every_code_of_the_value_set_is_accepted(resource_type: str, element: str) -> None:
    _, codes = REQUIRED_BINDINGS[resource_type][element]
    for code in sorted(codes):
        value: Any = [code] if element == "category" else code
        stored = validate_resource(
            {**minimal(resource_type), element: value}, record_id=RECORD, version=1
        )
        assert stored[element] == value


@pytest.mark.parametrize(("resource_type", "element"), BOUND)
def test_a_code_outside_the_value_set_is_refused_without_echo(
    resource_type: str, element: str
) -> None:
    value_set, _ = REQUIRED_BINDINGS[resource_type][element]
    value: Any = ["food", CANARY] if element == "category" else CANARY
    with pytest.raises(InvalidResourceError) as raised:
        validate_resource({**minimal(resource_type), element: value}, record_id=RECORD, version=1)
    (error,) = raised.value.errors
    assert error == {
        "loc": f"{element}.1" if element == "category" else element,
        "type": "code_not_in_required_binding",
        "msg": f"not a code of the required value set {value_set}",
    }
    assert CANARY not in json.dumps(raised.value.errors) + raised.value.detail


def test_absent_elements_and_unbound_types_need_nothing() -> None:
    assert binding_errors({"resourceType": "Condition", "clinicalStatus": {"text": "x"}}) == []
    assert binding_errors({"resourceType": "Observation"}) == []
