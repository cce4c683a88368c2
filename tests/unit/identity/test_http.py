"""The identity HTTP API through starlette's TestClient, authenticated with real EdDSA JWTs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.identity.adapters.http import identity_router
from services.identity.adapters.metrics import PrometheusIdentityMetrics
from shared.auth import MemorySeenTokens
from shared.credentials import credential_digest
from shared.pseudonym import patient_pseudonym
from shared.runtime.app import create_app
from shared.runtime.auth import Authenticator, bearer_headers
from shared.runtime.metrics import ServiceMetrics
from tests.unit.identity.conftest import PSEUDONYM_KEY, World, build_world


class Api:
    def __init__(self, world: World, client: TestClient, metrics: ServiceMetrics) -> None:
        self.world = world
        self.client = client
        self.metrics = metrics

    def post(self, path: str, as_: str, body: Any = None) -> Any:
        headers = bearer_headers(self.world.chain.keys[as_], "identity")
        return self.client.post(path, json=body, headers=headers)

    def get(self, path: str, as_: str) -> Any:
        return self.client.get(path, headers=bearer_headers(self.world.chain.keys[as_], "identity"))


@pytest.fixture
def api() -> Iterator[Api]:
    with serving() as running:
        yield running


@contextmanager
def serving() -> Iterator[Api]:
    """The HTTP API over a world of memory adapters."""
    metrics = ServiceMetrics(service="identity", instance="identity", version="test")
    world = build_world(PrometheusIdentityMetrics(metrics.registry))
    authenticator = Authenticator(audience="identity", seen=MemorySeenTokens(), metrics=metrics)
    app = create_app(
        service="identity",
        version="test",
        components=[],
        metrics=metrics,
        routers=[identity_router(world.service, authenticator)],
    )
    with TestClient(app) as client:
        yield Api(world, client, metrics)


def counted(api: Api, kind: str) -> float:
    value = api.metrics.registry.get_sample_value(
        "careledger_identity_changes_total", {"kind": kind}
    )
    return value or 0.0


def test_a_practitioner_registers_with_201_then_200_and_is_described(api: Api) -> None:
    credential = api.world.credential()
    first = api.post("/v1/practitioners", "practitioner", {"credential": credential})
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["event"]["type"] == "org.careledger.identity.practitioner.registered.v1"
    assert body["data"]["credential"] == credential_digest(credential)
    again = api.post("/v1/practitioners", "authority", {"credential": credential})
    assert (again.status_code, again.json()) == (200, body)
    assert counted(api, "practitioner_registered") == 1
    did = api.world.did("practitioner")
    described = api.get(f"/v1/dids/{did}", "stranger")
    assert described.status_code == 200
    (role,) = described.json()["roles"]
    assert (role["role"], role["status"], role["since_height"]) == ("practitioner", "pending", None)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda c: c["credentialSubject"].update(npi="1234567890"), "bad_proof"),
        (
            lambda c: c.update(issuer="did:key:z6MkhSYJ6c8srwcaaK8i7TDyPT5QXNatgwzhG2HXPXfairbj"),
            "bad_proof",
        ),
        (lambda c: c.pop("proof"), "bad_proof"),
        (lambda c: c.pop("credentialSubject"), "malformed"),
    ],
)
def test_a_bad_credential_is_422_with_its_reason(api: Api, change: Any, reason: str) -> None:
    credential = api.world.credential()
    change(credential)
    answer = api.post("/v1/practitioners", "admin", {"credential": credential})
    assert answer.status_code == 422
    assert answer.json()["reason"] == reason
    assert answer.json()["detail"]
    assert api.world.events() == []


def test_an_untrusted_issuer_is_422_and_a_stranger_403(api: Api) -> None:
    untrusted = api.post(
        "/v1/practitioners", "admin", {"credential": api.world.credential(issuer="stranger")}
    )
    assert (untrusted.status_code, untrusted.json()["reason"]) == (422, "untrusted_issuer")
    refusals = api.metrics.registry.get_sample_value(
        "careledger_identity_credential_refusals_total", {"reason": "untrusted_issuer"}
    )
    assert refusals == 1
    forbidden = api.post("/v1/practitioners", "stranger", {"credential": api.world.credential()})
    assert (forbidden.status_code, forbidden.json()["reason"]) == (403, "forbidden")


def test_admin_routes_refuse_everyone_else(api: Api) -> None:
    board = {"did": api.world.did("stranger"), "name": "Board"}
    assert api.post("/v1/authorities", "authority", board).status_code == 403
    assert api.post("/v1/authorities", "admin", board).status_code == 201
    assert api.post("/v1/authorities", "admin", board).status_code == 200
    grant = {
        "did": api.world.did("publisher-2"),
        "name": "Clinic",
        "topic": "clinical.events",
        "types": ["org.careledger.clinical.*"],
    }
    assert api.post("/v1/publishers", "publisher", grant).status_code == 403
    assert api.post("/v1/publishers", "admin", grant).status_code == 201
    revoke = f"/v1/publishers/{grant['did']}/revoke"
    assert api.post(revoke, "publisher-2").status_code == 403
    assert api.post(revoke, "admin").status_code == 201
    assert api.post(revoke, "admin").status_code == 200
    again = api.post("/v1/publishers", "admin", grant)
    assert (again.status_code, again.json()["reason"]) == (409, "revoked_did")
    assert counted(api, "publisher_revoked") == 1
    assert counted(api, "authority_registered") == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/v1/publishers",
            {"did": "did:key:nope", "name": "X", "topic": "clinical.events", "types": ["a.*"]},
        ),
        (
            "/v1/publishers",
            {
                "did": "did:key:z6MkhSYJ6c8srwcaaK8i7TDyPT5QXNatgwzhG2HXPXfairbj",
                "name": "X",
                "topic": "ledger.blocks",
                "types": ["a.*"],
            },
        ),
        ("/v1/authorities", {"did": "did:key:z6MkhSYJ6c8srwcaaK8i7TDyPT5QXNatgwzhG2HXPXfairbj"}),
        ("/v1/practitioners", {"credential": "not an object"}),
        ("/v1/credentials/revoke", {"credential": "ABC"}),
        ("/v1/patients", {"name": "Jane"}),
    ],
)
def test_bad_requests_are_422_invalid_request(api: Api, path: str, body: Any) -> None:
    answer = api.post(path, "admin", body)
    assert answer.status_code == 422
    assert answer.json()["reason"] == "invalid_request"
    assert "Jane" not in answer.text


def test_bad_dids_in_paths_are_422_and_unknown_ones_404(api: Api) -> None:
    assert api.get("/v1/dids/did:key:nope", "admin").json()["reason"] == "invalid_request"
    assert api.post("/v1/publishers/not-a-did/revoke", "admin").status_code == 422
    unknown = api.get(f"/v1/dids/{api.world.did('stranger')}", "admin")
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "not_found")
    stranger = api.world.did("stranger")
    assert api.post(f"/v1/publishers/{stranger}/revoke", "admin").status_code == 404


def test_credential_revocation_by_digest_or_whole(api: Api) -> None:
    credential = api.world.credential()
    digest = credential_digest(credential)
    assert (
        api.post("/v1/credentials/revoke", "authority", {"credential": digest}).status_code == 404
    )
    api.post("/v1/practitioners", "practitioner", {"credential": credential})
    answer = api.post("/v1/credentials/revoke", "admin", {"credential": digest})
    assert (answer.status_code, answer.json()["reason"]) == (403, "forbidden")
    assert (
        api.post("/v1/credentials/revoke", "authority", {"credential": credential}).status_code
        == 201
    )
    assert (
        api.post("/v1/credentials/revoke", "authority", {"credential": digest}).status_code == 200
    )
    refused = api.post("/v1/practitioners", "practitioner", {"credential": credential})
    assert (refused.status_code, refused.json()["reason"]) == (422, "revoked")


def test_patients_register_themselves_with_or_without_a_body(api: Api) -> None:
    patient = api.world.did("stranger")
    first = api.post("/v1/patients", "stranger", {})
    again = api.client.post(
        "/v1/patients", headers=bearer_headers(api.world.chain.keys["stranger"], "identity")
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert first.json()["data"] == {"pseudonym": patient_pseudonym(PSEUDONYM_KEY, patient)}
    assert api.get(f"/v1/dids/{patient}", "stranger").status_code == 200
    assert api.get(f"/v1/dids/{patient}", "admin").status_code == 200
    assert api.get(f"/v1/dids/{patient}", "authority").status_code == 404


def test_verify_reports_even_a_failing_credential_with_200(api: Api) -> None:
    answer = api.post(
        "/v1/credentials/verify",
        "stranger",
        {"credential": api.world.credential(issuer="stranger")},
    )
    assert answer.status_code == 200
    assert answer.json()["verified"] is False
    assert answer.json()["reason"] == "untrusted_issuer"


def test_every_route_needs_a_token_for_this_audience(api: Api) -> None:
    routes = [
        ("post", "/v1/authorities"),
        ("post", "/v1/publishers"),
        ("post", f"/v1/publishers/{api.world.did('publisher')}/revoke"),
        ("post", "/v1/practitioners"),
        ("post", "/v1/credentials/revoke"),
        ("post", "/v1/credentials/verify"),
        ("post", "/v1/patients"),
        ("get", f"/v1/dids/{api.world.did('admin')}"),
    ]
    wrong = bearer_headers(api.world.chain.keys["admin"], "records")
    for method, path in routes:
        assert getattr(api.client, method)(path).status_code == 401, path
        answer = getattr(api.client, method)(path, headers=wrong)
        assert answer.status_code == 401, path
        assert answer.json()["reason"]
    headers = bearer_headers(api.world.chain.keys["admin"], "identity")
    assert api.client.get(f"/v1/dids/{api.world.did('admin')}", headers=headers).status_code == 200
    replayed = api.client.get(f"/v1/dids/{api.world.did('admin')}", headers=headers)
    assert replayed.status_code == 401
