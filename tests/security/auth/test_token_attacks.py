"""Authentication attacks against every authenticated API service, in process: each forged,
stale, replayed, confused or malformed token is refused with 401, its reason in the one error
shape, and an RFC 6750 challenge naming it; nothing is accepted that should not be."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.security.auth.conftest import FACES, build_app, call, reason_of
from tests.security.auth.tokens import ATTACKS, Attack, signed, valid

pytestmark = pytest.mark.timeout(120)


def now() -> datetime:
    return datetime.now(UTC)


def assert_refused(response: object, face_name: str, reason: str) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    headers = response.headers  # type: ignore[attr-defined]
    assert status == 401, (face_name, reason, status, body)
    assert reason_of(response) == reason
    if face_name != "records-fhir":
        assert set(body) == {"reason", "detail"}
        assert isinstance(body["detail"], str)
        assert body["detail"]
    challenge = headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="{FACES[face_name].audience}"')
    if reason == "missing_token":
        assert challenge == f'Bearer realm="{FACES[face_name].audience}"'
    else:
        assert f'error="invalid_token", error_description="{reason}"' in challenge


@pytest.mark.parametrize("face_name", sorted(FACES))
@pytest.mark.parametrize("attack", ATTACKS, ids=lambda attack: attack.name)
def test_each_attack_is_refused_with_its_reason(
    clients: dict[str, TestClient], face_name: str, attack: Attack
) -> None:
    face = FACES[face_name]
    authorization = attack.authorization(face.audience, now())
    started = time.perf_counter()
    response = call(clients[face_name], face, authorization)
    elapsed = time.perf_counter() - started
    assert_refused(response, face_name, attack.reason)
    # Oversized tokens are refused on their length, before any decoding: no quadratic work.
    assert elapsed < 1.0, f"{attack.name} took {elapsed:.3f} s"
    token = (authorization or "")[7:200]
    assert len(token) < 20 or token not in response.text  # the token is never echoed


@pytest.mark.parametrize("face_name", sorted(FACES))
def test_a_valid_token_passes_so_the_refusals_are_about_the_attack(
    clients: dict[str, TestClient], face_name: str
) -> None:
    face = FACES[face_name]
    response = call(clients[face_name], face, f"Bearer {valid(face.audience, now())}")
    assert response.status_code != 401, response.text
    assert response.status_code < 500 or face_name == "sealer"  # the unstarted sealer: 503
    if face_name == "sealer":
        assert (response.status_code, response.json()["reason"]) in {
            (503, "not_ready"),
            (400, "malformed"),
        }


@pytest.mark.parametrize("face_name", sorted(FACES))
def test_time_claims_within_the_leeway_pass(clients: dict[str, TestClient], face_name: str) -> None:
    """The 5 s leeway is for clock skew, both ways, and for nbf as for iat (RFC 7519 §4.1.5)."""
    face = FACES[face_name]
    moment = int(now().timestamp())
    for changes in (
        {"iat": moment + 3, "exp": moment + 60},
        {"nbf": moment + 3},
        {"iat": moment - 100, "exp": moment - 2},  # expired 2 s ago: still within the leeway
    ):
        token = signed(face.audience, now(), **changes)
        response = call(clients[face_name], face, f"Bearer {token}")
        assert response.status_code != 401, (changes, response.text)


@pytest.mark.parametrize("face_name", sorted(FACES))
def test_a_replayed_token_is_refused(clients: dict[str, TestClient], face_name: str) -> None:
    face = FACES[face_name]
    authorization = f"Bearer {valid(face.audience, now())}"
    assert call(clients[face_name], face, authorization).status_code != 401
    assert_refused(call(clients[face_name], face, authorization), face_name, "replayed")


@pytest.mark.parametrize("face_name", sorted(FACES))
def test_a_token_for_any_other_service_is_refused(
    clients: dict[str, TestClient], face_name: str
) -> None:
    face = FACES[face_name]
    for other in sorted({f.audience for f in FACES.values()} - {face.audience}):
        token = valid(other, now())
        response = call(clients[face_name], FACES[face_name], f"Bearer {token}")
        assert_refused(response, face_name, "wrong_audience")


def test_a_replay_on_another_replica_sharing_the_database_is_refused(tmp_path: Path) -> None:
    """Two records processes on one database (SQLite file here): the replay table's primary
    key decides, so a token accepted by one replica is refused by the other."""
    from careledger.devchain import ensure_dev_chain

    ensure_dev_chain(tmp_path)
    face = FACES["records"]
    first = TestClient(build_app(face, tmp_path))
    second = TestClient(build_app(face, tmp_path))
    authorization = f"Bearer {valid(face.audience, now())}"
    assert call(first, face, authorization).status_code == 200
    assert_refused(call(second, face, authorization), "records", "replayed")
    assert_refused(call(first, face, authorization), "records", "replayed")
    fresh = f"Bearer {valid(face.audience, now() + timedelta(seconds=1))}"
    assert call(second, face, fresh).status_code == 200


def _every_route(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every route in the service's OpenAPI document but the open ones,
    path parameters filled with a well-formed id."""
    from shared.runtime.app import OPEN_PATHS

    document = client.app.openapi()  # type: ignore[attr-defined]
    found = []
    for template, operations in document["paths"].items():
        if template in OPEN_PATHS:
            continue
        path = re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000001", template)
        found.extend((method.upper(), path) for method in sorted(operations))
    return found


@pytest.mark.parametrize("face_name", sorted(FACES))
def test_every_route_but_the_open_ones_needs_a_token(
    clients: dict[str, TestClient], face_name: str
) -> None:
    routes = _every_route(clients[face_name])
    assert len(routes) >= 1
    for method, path in routes:
        response = clients[face_name].request(method, path, json={})
        assert response.status_code == 401, (method, path, response.text)
        assert reason_of(response) == "missing_token", (method, path)


@pytest.mark.parametrize("face_name", sorted(FACES))
def test_the_openapi_document_declares_the_bearer_scheme_on_exactly_those_routes(
    clients: dict[str, TestClient], face_name: str
) -> None:
    from shared.runtime.app import OPEN_PATHS

    document = clients[face_name].app.openapi()  # type: ignore[attr-defined]
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert scheme == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": scheme["description"],
    }
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            declared = operation.get("security")
            wanted = None if template in OPEN_PATHS else [{"bearer": []}]
            assert declared == wanted, (method, template, declared)


@pytest.mark.parametrize("face_name", sorted(FACES))
def test_two_authorization_headers_are_refused_whichever_is_valid(
    clients: dict[str, TestClient], face_name: str
) -> None:
    face = FACES[face_name]
    for first, second in (("valid", "forged"), ("forged", "valid")):
        values = {"valid": f"Bearer {valid(face.audience, now())}", "forged": "Bearer e30.e30.e30"}
        headers = [("Authorization", values[first]), ("Authorization", values[second])]
        if face.body is not None:
            headers.append(("Content-Type", "application/cloudevents+json"))
        client = clients[face_name]
        response = client.request(face.method, face.path, headers=headers, content=face.body)
        assert_refused(response, face_name, "malformed")
