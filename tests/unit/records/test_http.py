"""The records HTTP API through starlette's TestClient, authenticated with real EdDSA JWTs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from services.records.adapters.fhir_http import fhir_router
from services.records.adapters.http import records_router
from services.records.fhir_face import FhirFace
from shared.auth import MemorySeenTokens
from shared.block import format_timestamp
from shared.runtime.app import create_app
from shared.runtime.auth import Authenticator, bearer_headers
from shared.runtime.metrics import ServiceMetrics
from tests.unit.records.conftest import CANARY, World, build_world, observation

MAX_BYTES = 4096
UNKNOWN = "00000000-0000-4000-8000-0000000000ff"


class Api:
    def __init__(self, world: World, client: TestClient) -> None:
        self.world = world
        self.client = client

    def headers(self, as_: str) -> dict[str, str]:
        return bearer_headers(self.world.key(as_), "records")

    def request(self, method: str, path: str, as_: str, body: Any = None, **kw: Any) -> Response:
        return self.client.request(method, path, json=body, headers=self.headers(as_), **kw)

    def create(self, text: str = CANARY) -> str:
        answer = self.request(
            "POST",
            "/v1/records",
            "practitioner",
            {"patient": self.world.did("patient"), "resource": observation(text)},
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["record"])

    def grant(self) -> str:
        expires = format_timestamp(self.world.clock.now + timedelta(days=30))
        answer = self.request(
            "POST",
            "/v1/consents",
            "patient",
            {
                "grantee": self.world.did("second"),
                "resource_types": ["Observation"],
                "expires": expires,
            },
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["consent"]["consent"])


@pytest.fixture
def api() -> Iterator[Api]:
    with serving(build_world()) as running:
        yield running


@contextmanager
def serving(world: World) -> Iterator[Api]:
    """The HTTP API over `world`, with two practitioners and a patient registered."""
    with TestClient(records_app(world)) as client:
        yield Api(world, client)


def records_app(world: World, *, max_request_bytes: int = MAX_BYTES) -> FastAPI:
    """The records app as wiring builds it (native API and FHIR face) over `world`, with two
    practitioners and a patient registered."""
    world.register_practitioner("practitioner")
    world.register_practitioner("second")
    world.register_patient("patient")
    metrics = ServiceMetrics(service="records", instance="records", version="test")
    authenticator = Authenticator(audience="records", seen=MemorySeenTokens(), metrics=metrics)
    router = records_router(world.service, world.reader, authenticator)
    # The FHIR face, as wiring mounts it: its integers are in the same OpenAPI document.
    face = FhirFace(
        service=world.service,
        reader=world.reader,
        clock=world.clock,
        new_id=lambda: str(uuid.uuid4()),
        version="test",
    )
    return create_app(
        service="records",
        version="test",
        components=[],
        metrics=metrics,
        routers=[router, fhir_router(face, authenticator)],
        max_request_bytes=max_request_bytes,
    )


def refused(answer: Response, status: int, reason: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["reason"] == reason
    assert isinstance(body["detail"], str)
    return body


def test_a_record_is_created_with_201_and_read_by_its_patient(api: Api) -> None:
    record = api.create()
    answer = api.request("GET", f"/v1/records/{record}", "patient")
    assert answer.status_code == 200
    body = answer.json()
    assert body["resource"]["code"]["text"] == CANARY
    assert body["access"]["role"] == "patient"
    old = api.request("GET", f"/v1/records/{record}", "patient", params={"version": 1})
    assert old.json()["version"] == 1


def test_every_route_needs_a_bearer_token(api: Api) -> None:
    record = api.create()
    for method, path in [
        ("GET", f"/v1/records/{record}"),
        ("POST", "/v1/records"),
        ("GET", "/v1/consents"),
        ("DELETE", f"/v1/consents/{UNKNOWN}"),
    ]:
        assert api.client.request(method, path).status_code == 401
    wrong_audience = bearer_headers(api.world.key("patient"), "identity")
    assert api.client.get(f"/v1/records/{record}", headers=wrong_audience).status_code == 401


def test_a_read_without_consent_is_403_consent_required_and_a_grantee_reads(api: Api) -> None:
    record = api.create()
    refused(api.request("GET", f"/v1/records/{record}", "second"), 403, "consent_required")
    api.grant()
    answer = api.request("GET", f"/v1/records/{record}", "second")
    assert answer.status_code == 200
    assert answer.json()["access"]["role"] == "grantee"
    refused(
        api.request("GET", f"/v1/records/{record}", "second", params={"purpose": "HPAYMT"}),
        403,
        "consent_required",
    )


@pytest.mark.parametrize(
    "record",
    [UNKNOWN, "not-a-uuid", UNKNOWN.upper(), "00000000000040008000000000000001"],
    ids=["unknown", "malformed", "upper-case", "unhyphenated"],
)
def test_an_unknown_or_malformed_record_id_is_404(api: Api, record: str) -> None:
    refused(api.request("GET", f"/v1/records/{record}", "patient"), 404, "not_found")
    refused(api.request("GET", f"/v1/records/{record}/envelope", "patient"), 404, "not_found")
    refused(api.request("POST", f"/v1/records/{record}/erase", "patient"), 404, "not_found")
    refused(api.request("DELETE", f"/v1/consents/{record}", "patient"), 404, "not_found")


def test_an_erased_record_answers_410(api: Api) -> None:
    record = api.create()
    erased = api.request("POST", f"/v1/records/{record}/erase", "patient")
    assert erased.status_code == 200
    assert erased.json()["erased"] is True
    refused(api.request("GET", f"/v1/records/{record}", "patient"), 410, "erased")
    refused(api.request("POST", f"/v1/records/{record}/erase", "patient"), 410, "erased")
    body = {"resource": observation()}
    refused(
        api.request("POST", f"/v1/records/{record}/versions", "practitioner", body), 410, "erased"
    )


def test_a_version_on_an_old_base_is_409_and_on_the_latest_201(api: Api) -> None:
    record = api.create()
    path = f"/v1/records/{record}/versions"
    stale = {"resource": observation("v2"), "base_version": 2}
    refused(api.request("POST", path, "practitioner", stale), 409, "conflict")
    fresh = api.request(
        "POST", path, "practitioner", {"resource": observation("v2"), "base_version": 1}
    )
    assert fresh.status_code == 201
    assert fresh.json()["version"] == 2
    refused(api.request("POST", path, "second", {"resource": observation()}), 403, "forbidden")


def test_an_invalid_resource_is_422_with_errors_and_never_the_submitted_values(api: Api) -> None:
    resource = {**observation(), "status": CANARY, CANARY: CANARY}
    answer = api.request(
        "POST",
        "/v1/records",
        "practitioner",
        {"patient": api.world.did("patient"), "resource": resource},
    )
    body = refused(answer, 422, "invalid_resource")
    assert body["errors"]
    assert all(set(error) == {"loc", "type", "msg"} for error in body["errors"])
    assert CANARY not in answer.text


@pytest.mark.parametrize(
    "body",
    [
        {"patient": None, "resource": observation()},
        {"resource": observation()},
        {"patient": "PATIENT", "resource": CANARY},
        {"patient": "PATIENT", "resource": [CANARY]},
        pytest.param(
            {"patient": "did:key:" + CANARY, "resource": {}},
        ),
        pytest.param(
            {"patient": "PATIENT", "resource": observation(), CANARY: CANARY},
        ),
    ],
    ids=["null-did", "missing", "resource-string", "resource-list", "bad-did", "extra-member"],
)
def test_bad_request_members_are_422_invalid_request_without_echoing_them(
    api: Api, body: dict[str, Any]
) -> None:
    if body.get("patient") == "PATIENT":
        body = {**body, "patient": api.world.did("patient")}
    answer = api.request("POST", "/v1/records", "practitioner", body)
    refused(answer, 422, "invalid_request")
    assert api.world.events() == []
    assert CANARY not in answer.text


def test_a_body_that_is_not_json_is_422(api: Api) -> None:
    answer = api.client.post(
        "/v1/records",
        content=b'{"patient": "' + CANARY.encode(),
        headers={**api.headers("practitioner"), "content-type": "application/json"},
    )
    refused(answer, 422, "invalid_request")
    assert CANARY not in answer.text


def test_a_body_longer_than_the_limit_is_413(api: Api) -> None:
    resource = observation("x" * MAX_BYTES)
    answer = api.request(
        "POST",
        "/v1/records",
        "practitioner",
        {"patient": api.world.did("patient"), "resource": resource},
    )
    refused(answer, 413, "too_large")
    assert api.world.events() == []


def test_consents_are_granted_listed_and_revoked_idempotently(api: Api) -> None:
    consent = api.grant()
    listed = api.request("GET", "/v1/consents", "patient").json()["consents"]
    assert [c["consent"] for c in listed] == [consent]
    first = api.request("DELETE", f"/v1/consents/{consent}", "patient")
    second = api.request("DELETE", f"/v1/consents/{consent}", "patient")
    assert (first.status_code, second.status_code) == (200, 200)
    assert "event" in first.json()
    assert "event" not in second.json()
    assert second.json()["consent"] == first.json()["consent"]
    refused(api.request("DELETE", f"/v1/consents/{consent}", "second"), 404, "not_found")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"purpose": "ETREAT"}, "invalid_request"),
        ({"purpose": "NOPE"}, "invalid_request"),
        ({"resource_types": ["Spaceship"]}, "invalid_request"),
        ({"resource_types": ["not a type"]}, "invalid_request"),
        ({"expires": "2026-06-01T12:00:00"}, "invalid_request"),  # no offset
        ({"grantee": "did:key:nope"}, "invalid_request"),
    ],
)
def test_an_invalid_consent_is_422(api: Api, changes: dict[str, Any], reason: str) -> None:
    body = {
        "grantee": api.world.did("second"),
        "expires": format_timestamp(api.world.clock.now + timedelta(days=1)),
        **changes,
    }
    refused(api.request("POST", "/v1/consents", "patient", body), 422, reason)


def test_an_unregistered_patient_may_not_grant_consent(api: Api) -> None:
    body = {
        "grantee": api.world.did("second"),
        "expires": format_timestamp(api.world.clock.now + timedelta(days=1)),
    }
    refused(api.request("POST", "/v1/consents", "stranger", body), 403, "forbidden")


def test_break_glass_is_200_and_a_blank_or_long_reason_is_422(api: Api) -> None:
    record = api.create()
    path = f"/v1/records/{record}/break-glass"
    answer = api.request("POST", path, "second", {"reason": "unconscious in the ER"})
    assert answer.status_code == 200
    assert answer.json()["access"]["break_glass"] is True
    refused(api.request("POST", path, "second", {"reason": "   "}), 422, "invalid_request")
    refused(api.request("POST", path, "second", {"reason": ""}), 422, "invalid_request")
    refused(api.request("POST", path, "second", {"reason": "x" * 501}), 422, "invalid_request")
    refused(api.request("POST", path, "stranger", {"reason": "emergency"}), 403, "forbidden")


def test_the_envelope_is_for_holders_of_a_wrapped_key(api: Api) -> None:
    record = api.create()
    answer = api.request("GET", f"/v1/records/{record}/envelope", "patient")
    assert answer.status_code == 200
    assert set(answer.json()) >= {"envelope", "ciphertext", "wrapped_key", "salt"}
    refused(api.request("GET", f"/v1/records/{record}/envelope", "second"), 403, "consent_required")


def test_the_patients_views_are_theirs_only(api: Api) -> None:
    record = api.create()
    patient = api.world.did("patient")
    for view in ("records", "disclosures", "export"):
        mine = api.request("GET", f"/v1/patients/{patient}/{view}", "patient")
        assert mine.status_code == 200, mine.text
        refused(api.request("GET", f"/v1/patients/{patient}/{view}", "second"), 403, "forbidden")
        bad = api.request("GET", f"/v1/patients/not-a-did/{view}", "patient")
        refused(bad, 422, "invalid_request")
    listed = api.request("GET", f"/v1/patients/{patient}/records", "patient").json()
    assert [r["record"] for r in listed["records"]] == [record]
    export = api.request("GET", f"/v1/patients/{patient}/export", "patient").json()
    assert export["bundle"]["resourceType"] == "Bundle"


def test_the_admin_erases_but_may_not_read(api: Api) -> None:
    record = api.create()
    refused(api.request("GET", f"/v1/records/{record}", "admin"), 403, "consent_required")
    refused(api.request("POST", f"/v1/records/{record}/erase", "second"), 403, "forbidden")
    assert api.request("POST", f"/v1/records/{record}/erase", "admin").status_code == 200


def test_a_chunked_body_longer_than_the_limit_is_413_too(api: Api) -> None:
    body = {"patient": api.world.did("patient"), "resource": observation("x" * MAX_BYTES)}
    encoded = json.dumps(body).encode()
    answer = api.client.post(
        "/v1/records",
        content=iter([encoded]),  # sent with Transfer-Encoding: chunked
        headers={**api.headers("practitioner"), "content-type": "application/json"},
    )
    assert answer.request.headers.get("content-length") is None
    refused(answer, 413, "too_large")
    assert api.world.events() == []
