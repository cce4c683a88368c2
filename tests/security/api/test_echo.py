"""Each echo and shape finding of the fuzz run, pinned: the request carries a PHI-like canary
where the finding was, and the error answers its reason without repeating it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.envelope import build_event, encode_event, sign_event, uuid7
from tests.security.api.checks import echoed, error_fields
from tests.security.api.services import Api, serving
from tests.unit.records.conftest import observation

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

CANARY = "JaneCanaryDoe19700101"


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Api]:
    with serving("records", tmp_path) as api:
        yield api


def _refusal(answer: Any, status: int, reason: str) -> str:
    assert answer.status_code == status, answer.text
    found = error_fields(answer.status_code, answer.headers.get("content-type", ""), answer.text)
    assert found is not None, answer.text
    assert found[0] == reason, answer.text
    assert CANARY not in answer.text
    return str(answer.text)


def test_a_credentials_unknown_member_is_counted_not_named(tmp_path: Path) -> None:
    with serving("identity", tmp_path) as identity:
        answer = TestClient(identity.app).post(
            "/v1/practitioners",
            json={"credential": {CANARY: "x", "@context": []}},
            headers=identity.bearer("POST", "/v1/practitioners"),
        )
        assert "1 member(s)" in _refusal(answer, 422, "malformed")


def test_an_unsupported_fhir_type_and_search_parameter_are_not_named(records: Api) -> None:
    client = TestClient(records.app)
    answer = client.get(f"/fhir/{CANARY}", headers=records.bearer("GET", "/fhir/{resource_type}"))
    _refusal(answer, 404, "not_found")
    answer = client.get(
        "/fhir/Observation",
        params={CANARY: "1", "patient": CANARY},
        headers=records.bearer("GET", "/fhir/{resource_type}"),
    )
    assert "supported: " in _refusal(answer, 400, "invalid_request")


def test_a_resource_error_locates_as_a_list(records: Api) -> None:
    answer = TestClient(records.app).post(
        "/v1/records",
        json={
            "patient": records.keys["patient"].did,
            "resource": {**observation(CANARY), "status": "not-a-status"},
        },
        headers=records.bearer("POST", "/v1/records"),
    )
    _refusal(answer, 422, "invalid_resource")
    assert answer.json()["errors"][0]["loc"] == ["status"]


def test_the_ingest_does_not_repeat_a_posted_events_text(tmp_path: Path) -> None:
    with serving("sealer", tmp_path) as sealer:
        key = sealer.keys["publisher"]
        event = build_event(
            source="https://video-consult.example/",
            type="org.careledger.clinical.consultation.completed.v1",
            id=uuid7(1, bytes(10)),
            time="2026-11-24T11:00:00Z",
            data={"n": 1},
        )
        signed = {**sign_event(event, key), CANARY: "x"}
        client = TestClient(sealer.app)

        def post(**body: Any) -> Any:
            headers = {
                "content-type": "application/cloudevents+json",
                **sealer.bearer("POST", "/v1/events"),
            }
            return client.post("/v1/events", headers=headers, **body)

        assert "docs/envelope.md" in _refusal(post(json=signed), 400, "malformed")
        # A refusal that quotes nothing of the event keeps its own detail.
        unsigned = {**sign_event(event, key), "signature": 7}
        detail = _refusal(post(json=unsigned), 400, "malformed")
        assert "'signature' must be a string" in detail
        valid = post(content=encode_event(sign_event(event, key)))
        assert valid.status_code == 202, valid.text


def test_the_checks_catch_what_they_are_for() -> None:
    assert echoed(f"x{CANARY}x", f'{{"detail": "no {CANARY[3:12]} here"}}') == CANARY[3:11]
    assert echoed("consent_required", "contract_id: Field required") is None  # its own words
    assert echoed("short", "short") is None
    assert error_fields(404, "application/json", '{"reason": "not_found", "detail": "x"}')
    assert error_fields(404, "application/json", '{"reason": "Not Found", "detail": "x"}') is None
    assert error_fields(400, "application/json", '{"detail": "x"}') is None
    assert error_fields(400, "text/plain", "Bad Request") is None
    assert error_fields(409, "text/x.tlog.size", "12\n") == ("conflict", "12\n")
