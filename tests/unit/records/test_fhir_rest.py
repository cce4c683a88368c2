"""The FHIR face's pure core: transaction plans, search parameters, Consent from FHIR."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.records.core.fhir_mapping import consent_request
from services.records.core.fhir_rest import (
    DID_SYSTEM,
    MAX_TRANSACTION_ENTRIES,
    PatientRef,
    parse_search,
    patient_did,
    plan_transaction,
)
from services.records.errors import InvalidRequestError, InvalidResourceError
from shared.events.records import Purpose
from tests.unit.records.test_fhir_http import consent

PATIENT = "did:key:z6MkpatientAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


class Dids:
    """Just enough of a World for `consent()`: DIDs by name and a clock."""

    class _Clock:
        now = datetime.now(UTC)

    clock = _Clock()

    def did(self, name: str) -> str:
        return f"did:key:z6Mk{name}"


def observation(subject: Any = None) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
    }
    if subject is not None:
        resource["subject"] = subject
    return resource


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}}
            for r in resources
        ],
    }


def named(did: str = PATIENT) -> dict[str, Any]:
    return {"identifier": {"system": DID_SYSTEM, "value": did}}


def test_a_plan_names_each_entrys_patient_and_keeps_the_resources() -> None:
    allergy = {"resourceType": "AllergyIntolerance", "patient": named(), "id": "client-id"}
    planned = plan_transaction(bundle(observation(named()), allergy), ["r1", "r2"])
    assert [(p.record_id, p.patient) for p in planned] == [("r1", PATIENT), ("r2", PATIENT)]
    assert "id" not in planned[1].resource  # a create ignores the client's id
    assert patient_did(allergy) == PATIENT


def test_a_plan_refuses_too_many_entries_a_missing_resource_and_a_missing_patient() -> None:
    many = bundle(*[observation(named()) for _ in range(MAX_TRANSACTION_ENTRIES + 1)])
    with pytest.raises(InvalidRequestError, match="at most"):
        plan_transaction(many, ["r"] * (MAX_TRANSACTION_ENTRIES + 1))
    empty_entry = {"resourceType": "Bundle", "type": "transaction", "entry": [{"fullUrl": "x"}]}
    with pytest.raises(InvalidRequestError, match="no resource"):
        plan_transaction(empty_entry, ["r"])
    with pytest.raises(InvalidRequestError, match="must reference a Patient entry"):
        plan_transaction(bundle(observation()), ["r"])
    with pytest.raises(ValueError, match="one record id per entry"):
        plan_transaction(bundle(observation(named())), [])


def test_a_resource_without_its_patient_did_is_invalid() -> None:
    for resource in [
        observation(),
        observation({"reference": "Patient/1"}),
        observation({"identifier": {"system": "other", "value": PATIENT}}),
        observation({"identifier": {"system": DID_SYSTEM, "value": 7}}),
        {"resourceType": "Patient"},
        {"resourceType": "Patient", "identifier": [named()["identifier"]] * 2},
    ]:
        with pytest.raises(InvalidResourceError) as refused:
            patient_did(resource)
        assert refused.value.errors[0]["type"] == "patient_unnamed"


def test_search_parameters_parse_into_a_query() -> None:
    query = parse_search(
        "Observation", [("patient", "Patient/p1"), ("_id", "a,,b"), ("_count", "7")]
    )
    assert (query.patient, query.ids, query.count, query.offset) == (
        PatientRef(record_id="p1"),
        ("a", "b"),
        7,
        0,
    )
    assert parse_search("Patient", [("identifier", f"{DID_SYSTEM}|{PATIENT}")]).patient == (
        PatientRef(did=PATIENT)
    )
    # Consents and audit events are the caller's own: no criterion needed.
    assert parse_search("AuditEvent", [("_offset", "3")]).offset == 3
    with pytest.raises(InvalidRequestError, match="1 to 100"):
        parse_search("Observation", [("_id", ",".join(["a"] * 101))])


@pytest.mark.parametrize(
    "end",
    ["2099-01-01T23:59:60Z", "2099-01-01", "2099-01-01T00:00:00", None],
    ids=["leap-second", "date-only", "no-offset", "absent"],
)
def test_a_consent_expires_at_a_real_time_with_an_offset(end: str | None) -> None:
    resource = consent(Dids())  # type: ignore[arg-type]
    resource["provision"]["period"] = {} if end is None else {"end": end}
    with pytest.raises(InvalidRequestError):  # R4B refuses some (InvalidResourceError), we others
        consent_request(resource, caller="did:key:z6Mkpatient")


def test_a_consent_maps_to_the_native_grant() -> None:
    world = Dids()
    resource = consent(world)  # type: ignore[arg-type]
    resource["provision"]["period"]["end"] = "2099-01-01T00:00:00+02:00"
    request = consent_request(resource, caller="did:key:z6Mkpatient")
    assert request.grantee == "did:key:z6Mksecond"
    assert request.resource_types == ("Observation",)
    assert request.purpose is Purpose.TREATMENT
    assert request.expires == datetime(2099, 1, 1, tzinfo=UTC) - timedelta(hours=2)
