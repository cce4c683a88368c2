"""The authentication dependency in a real app: 401 reasons and challenges, open routes, and
the uniform error shape (ApiError, HTTP errors, validation errors without the input)."""

# No `from __future__ import annotations`: FastAPI must see the local `Depends(auth)`.

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from pydantic import BaseModel

from shared.auth import MemorySeenTokens, issue_token
from shared.auth.jws import sign_jws
from shared.crypto import SigningKey, b64url_encode
from shared.runtime.app import create_app
from shared.runtime.auth import Authenticator, Caller, bearer_headers
from shared.runtime.errors import ApiError
from shared.runtime.metrics import ServiceMetrics

ALICE = SigningKey(bytes(range(32)))
MALLORY = SigningKey(bytes(range(1, 33)))
NOW = datetime(2025, 11, 25, 12, 0, 0, tzinfo=UTC)
ALICE_CLAIMS = {
    "iss": ALICE.did,
    "aud": "records",
    "iat": int(NOW.timestamp()),
    "exp": int(NOW.timestamp()) + 60,
    "jti": "j-2",
}


class Note(BaseModel):
    birth_date: str
    count: int


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def make_app(clock: Clock | None = None) -> tuple[TestClient, ServiceMetrics]:
    metrics = ServiceMetrics(service="records", instance="records", version="0.0.1")
    seen = MemorySeenTokens()
    auth = (
        Authenticator(audience="records", seen=seen, metrics=metrics)
        if clock is None
        else Authenticator(audience="records", seen=seen, metrics=metrics, clock=clock)
    )
    router = APIRouter()

    @router.get("/v1/me")
    def me(caller: Annotated[Caller, Depends(auth)]) -> dict[str, str]:
        return {"did": caller.did}

    @router.post("/v1/notes")
    def note(caller: Annotated[Caller, Depends(auth)], body: Note) -> dict[str, str]:
        return {"did": caller.did}

    @router.get("/v1/teapot")
    def teapot() -> None:
        raise ApiError(418, "teapot", "short and stout", {"spout": True})

    app = create_app(
        service="records", version="0.0.1", components=[], metrics=metrics, routers=[router]
    )
    return TestClient(app), metrics


def token(
    key: SigningKey = ALICE, *, audience: str = "records", jti: str = "j-1", shift: int = 0
) -> str:
    issued = NOW + timedelta(seconds=shift)
    return issue_token(key, audience=audience, issued_at=issued, jti=jti)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_a_valid_token_names_the_caller() -> None:
    client, _ = make_app(Clock())
    response = client.get("/v1/me", headers=bearer(token()))
    assert response.status_code == 200
    assert response.json() == {"did": ALICE.did}


def test_bearer_headers_work_against_the_real_clock() -> None:
    client, _ = make_app()
    first, second = bearer_headers(ALICE, "records"), bearer_headers(ALICE, "records")
    assert first != second  # a fresh jti each time
    assert client.get("/v1/me", headers=first).json() == {"did": ALICE.did}
    assert client.get("/v1/me", headers=second).status_code == 200


def _alg_only(header: bytes) -> str:
    claims = {"iss": ALICE.did, "aud": "records", "iat": 1, "exp": 2, "jti": "j"}
    return f"{b64url_encode(header)}.{b64url_encode(json.dumps(claims).encode())}."


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (token(audience="billing"), "wrong_audience"),
        (token(shift=-120), "expired"),
        (_alg_only(b'{"alg":"none"}'), "unsupported_algorithm"),
        (_alg_only(b'{"alg":"HS256","typ":"JWT"}') + "c2ln", "unsupported_algorithm"),
        ("not-a-jwt", "malformed"),
        (
            sign_jws(MALLORY, {"alg": "EdDSA"}, json.dumps(ALICE_CLAIMS).encode()),
            "bad_signature",  # signed by another key than iss names
        ),
    ],
)
def test_refused_tokens_get_401_with_their_reason(value: str, reason: str) -> None:
    client, metrics = make_app(Clock())
    response = client.get("/v1/me", headers=bearer(value))
    assert response.status_code == 401
    assert response.json()["reason"] == reason
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="records", error="invalid_token", error_description="{reason}"'
    )
    assert (
        metrics.registry.get_sample_value("careledger_auth_failures_total", {"reason": reason})
        == 1.0
    )


def test_a_replayed_token_is_refused_the_second_time() -> None:
    client, _ = make_app(Clock())
    once = bearer(token(jti="once"))
    assert client.get("/v1/me", headers=once).status_code == 200
    again = client.get("/v1/me", headers=once)
    assert again.status_code == 401
    assert again.json()["reason"] == "replayed"


def test_a_jti_may_come_back_once_its_token_expired() -> None:
    clock = Clock()
    client, _ = make_app(clock)
    assert client.get("/v1/me", headers=bearer(token(jti="reused"))).status_code == 200
    clock.now = NOW + timedelta(seconds=120)
    later = bearer(token(jti="reused", shift=120))
    assert client.get("/v1/me", headers=later).status_code == 200


def test_a_missing_header_gets_a_challenge_without_an_error_code() -> None:
    client, metrics = make_app(Clock())
    response = client.get("/v1/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="records"'
    assert response.json()["reason"] == "missing_token"
    assert (
        metrics.registry.get_sample_value(
            "careledger_auth_failures_total", {"reason": "missing_token"}
        )
        == 1.0
    )


def test_another_scheme_is_malformed() -> None:
    client, _ = make_app(Clock())
    response = client.get("/v1/me", headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})
    assert response.status_code == 401
    assert response.json()["reason"] == "malformed"


def test_operations_routes_stay_open() -> None:
    client, _ = make_app(Clock())
    with client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "careledger_build_info" in metrics.text


def test_authentication_comes_before_body_validation() -> None:
    client, _ = make_app(Clock())
    response = client.post("/v1/notes", json={"birth_date": "1970-01-01", "count": "many"})
    assert response.status_code == 401


def test_validation_errors_never_echo_the_input() -> None:
    client, _ = make_app(Clock())
    response = client.post(
        "/v1/notes",
        headers=bearer(token()),
        json={"birth_date": 19700101, "count": "Jane Doe"},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["reason"] == "invalid_request"
    assert {tuple(error["loc"]) for error in body["errors"]} == {
        ("body", "birth_date"),
        ("body", "count"),
    }
    assert all(set(error) == {"loc", "msg", "type"} for error in body["errors"])
    assert "Jane Doe" not in response.text
    assert "19700101" not in response.text


def test_api_errors_and_http_errors_share_the_shape() -> None:
    client, _ = make_app(Clock())
    teapot = client.get("/v1/teapot")
    assert teapot.status_code == 418
    assert teapot.json() == {"reason": "teapot", "detail": "short and stout", "spout": True}
    unknown = client.get("/v1/nowhere")
    assert unknown.status_code == 404
    assert unknown.json() == {"reason": "not_found", "detail": "Not Found"}
