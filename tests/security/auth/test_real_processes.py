"""Authentication and authorisation attacks against the real processes of one `careledger up`.

A representative subset of the token attacks (the whole table runs in process,
test_token_attacks.py) against identity, records, billing and the sealer's ingest over real
HTTP (uvicorn), oversized headers included; then the authorisation story: a practitioner
without consent, another patient, a grantee after withdrawal and a practitioner whose
credential the authority revoked, each refused with 403 and each refusal sealed on the chain
as a `RecordAccessed` with outcome `denied`, in a final block, carrying no PHI.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.client import complete_event
from careledger.devchain import generate_key
from careledger.topology import default_services
from shared.auth import bearer_headers
from shared.crypto import SigningKey
from shared.envelope import CONTENT_TYPE, encode_event
from shared.events.records import RECORD_ACCESSED
from shared.keystore import read_genesis_file, read_pseudonym_key_file
from shared.pseudonym import patient_pseudonym
from tests.e2e.conftest import RunningSystem
from tests.e2e.test_identity import call, eventually, issue, key, sealed_role
from tests.e2e.test_records import Clinic, observation, wait_until_practitioner
from tests.security.auth.tokens import (
    CALLER,
    duplicate_audience,
    hs256_with_public_key,
    signed,
    unsigned,
    valid,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SEALED_WITHIN = 120.0
#: The practitioners' credentials, by DID (to present a revoked one again).
CREDENTIALS: dict[str, dict[str, Any]] = {}
NAME_CANARY = f"Zebedee-Quint-{uuid.uuid4().hex[:8]}"  # a patient's name in a record


def url_of(system: RunningSystem, name: str) -> str:
    (spec,) = [s for s in default_services(port_offset=system.offset) if s.name == name]
    return spec.url()


ROUTES = {
    "identity": ("GET", f"/v1/dids/{CALLER.did}"),
    "records": ("GET", "/v1/consents"),
    "billing": ("GET", "/v1/invoices"),
    "sealer": ("POST", "/v1/events"),
}


def attempt(system: RunningSystem, service: str, authorization: str | None) -> httpx.Response:
    method, path = ROUTES[service]
    headers = {"Content-Type": CONTENT_TYPE}
    if authorization is not None:
        headers["Authorization"] = authorization
    return httpx.request(
        method, f"{url_of(system, service)}{path}", headers=headers, content=b"{}", timeout=10
    )


def now() -> datetime:
    return datetime.now(UTC)


SUBSET = {
    "expired": (lambda a: signed(a, now(), iat=_t(-100), exp=_t(-10)), "expired"),
    "nbf in the future": (lambda a: signed(a, now(), nbf=_t(60)), "not_yet_valid"),
    "iat in the future": (lambda a: signed(a, now(), iat=_t(60), exp=_t(90)), "not_yet_valid"),
    "wrong audience": (lambda a: signed(a, now(), aud="elsewhere"), "wrong_audience"),
    "alg none": (lambda a: unsigned(a, now(), {"alg": "none"}), "unsupported_algorithm"),
    "HS256 confusion": (lambda a: hs256_with_public_key(a, now()), "unsupported_algorithm"),
    "another signer": (
        lambda a: signed(a, now(), key=SigningKey.from_seed(bytes(32)), header={"alg": "EdDSA"}),
        "bad_signature",
    ),
    "kid not iss": (
        lambda a: signed(a, now(), header={"alg": "EdDSA", "kid": "did:key:z6Mkother"}),
        "invalid_issuer",
    ),
    "duplicate member": (lambda a: duplicate_audience(a, now()), "malformed"),
    "huge integer": (lambda a: signed(a, now(), exp=10**40), "invalid_claim"),
    "8 KiB token": (lambda _audience: "e" * 8 * 1024, "malformed"),
}


def _t(seconds: int) -> int:
    return int(now().timestamp()) + seconds


@pytest.mark.parametrize("service", sorted(ROUTES))
def test_representative_attacks_are_refused_by_the_real_service(
    system: RunningSystem, service: str
) -> None:
    audience = service
    for name, (build, reason) in SUBSET.items():
        answer = attempt(system, service, f"Bearer {build(audience)}")
        assert answer.status_code == 401, (name, answer.text)
        assert answer.json()["reason"] == reason, name
        assert f'error_description="{reason}"' in answer.headers["WWW-Authenticate"], name
    token = f"Bearer {valid(audience, now())}"
    first = attempt(system, service, token)
    assert first.status_code != 401, first.text
    replayed = attempt(system, service, token)
    assert (replayed.status_code, replayed.json()["reason"]) == (401, "replayed")


def test_a_16_kib_token_is_refused_by_the_app_with_401(system: RunningSystem) -> None:
    for service in sorted(ROUTES):
        started = time.perf_counter()
        answer = attempt(system, service, "Bearer " + "a" * 16 * 1024)
        assert time.perf_counter() - started < 2.0
        assert (answer.status_code, answer.json()["reason"]) == (401, "malformed"), service
        assert answer.headers["WWW-Authenticate"].startswith(f'Bearer realm="{service}"')


def test_a_1_mib_header_is_cut_off_by_the_server_fast_and_the_service_lives_on(
    system: RunningSystem,
) -> None:
    """uvicorn (h11) refuses a request head over its limit before the app sees it, by
    closing the connection ("Invalid HTTP request received." in its log): no 5xx, no work,
    and the service answers the next request normally."""
    for service in sorted(ROUTES):
        started = time.perf_counter()
        try:
            answer = attempt(system, service, "Bearer " + "a" * 1024 * 1024)
        except httpx.HTTPError:
            status = None  # the server closed the connection on the oversized head
        else:
            status = answer.status_code
        assert status is None or 400 <= status < 500, (service, status)
        assert time.perf_counter() - started < 2.0, service
        assert httpx.get(f"{url_of(system, service)}/healthz", timeout=10).status_code == 200
        fine = attempt(system, service, f"Bearer {valid(service, now())}")
        assert fine.status_code != 401, fine.text


# --- authorisation ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clinic(system: RunningSystem, tmp_path_factory: pytest.TempPathFactory) -> Clinic:
    """Two practitioners and a patient registered through identity, as the records e2e does."""
    keys = tmp_path_factory.mktemp("authz-people")
    author, second = generate_key(keys, "author"), generate_key(keys, "second")
    for practitioner in (author, second):
        credential = CREDENTIALS[practitioner.did] = issue(system, keys, practitioner.did)
        answer = call(system, practitioner, "/v1/practitioners", {"credential": credential})
        assert answer.status_code == 201, answer.text
    patient = generate_key(keys, "patient")
    assert call(system, patient, "/v1/patients", {}).status_code == 201
    _, genesis = read_genesis_file(system.data_dir / "genesis.json")
    found = Clinic(system, genesis, author, second, patient)
    for practitioner in (author, second):
        wait_until_practitioner(found, practitioner)
    return found


def test_every_refused_access_is_403_and_sealed_as_denied(
    clinic: Clinic, system: RunningSystem, tmp_path: Path
) -> None:
    other_patient = generate_key(tmp_path, "other-patient")
    assert call(system, other_patient, "/v1/patients", {}).status_code == 201
    written = clinic.write(observation(NAME_CANARY))
    record = written["record"]

    # A practitioner without consent.
    refused = clinic.read(clinic.second, record)
    assert (refused.status_code, refused.json()["reason"]) == (403, "consent_required")
    # Another patient: reading the record, and exporting the patient's records.
    theirs = clinic.read(other_patient, record)
    assert (theirs.status_code, theirs.json()["reason"]) == (403, "consent_required")
    export = clinic.request("GET", other_patient, f"/patients/{clinic.patient.did}/export")
    assert (export.status_code, export.json()["reason"]) == (403, "forbidden")
    # A grantee after the consent was withdrawn.
    expires = (now() + timedelta(days=30)).isoformat()
    grant = {"grantee": clinic.second.did, "purpose": "TREAT", "expires": expires}
    granted = clinic.request("POST", clinic.patient, "/consents", grant)
    assert granted.status_code == 201, granted.text
    consent = granted.json()["consent"]["consent"]
    assert clinic.read(clinic.second, record).status_code == 200
    assert clinic.request("DELETE", clinic.patient, f"/consents/{consent}").status_code == 200
    withdrawn = clinic.read(clinic.second, record)
    assert (withdrawn.status_code, withdrawn.json()["reason"]) == (403, "consent_required")

    # A practitioner whose credential the authority revoked: no longer the author, no
    # break-glass, and its revoked credential cannot be registered again.
    author_did = clinic.author.did
    digest = sealed_role(system, author_did, "practitioner", "since_height")["credential"]
    authority = key(system, "authority-demo")
    revoked = call(system, authority, "/v1/credentials/revoke", {"credential": digest})
    assert revoked.status_code == 201, revoked.text
    sealed_role(system, author_did, "practitioner", "until")

    def author_refused() -> httpx.Response | None:
        answer = clinic.read(clinic.author, record)
        return answer if answer.status_code == 403 else None

    as_author = eventually(author_refused, timeout=SEALED_WITHIN, what="records seeing it")
    assert as_author.json()["reason"] == "forbidden"
    assert "revoked" in as_author.json()["detail"]
    glass = clinic.request(
        "POST", clinic.author, f"/records/{record}/break-glass", {"reason": "emergency"}
    )
    assert (glass.status_code, glass.json()["reason"]) == (403, "forbidden")
    write = clinic.request(
        "POST",
        clinic.author,
        "/records",
        {"patient": clinic.patient.did, "resource": observation("after revocation")},
    )
    assert write.status_code == 403

    # The patient's accounting lists every refusal; each is sealed in a final block.
    listed = clinic.disclosures()
    denied = [d for d in listed if d["outcome"] == "denied"]
    seen = [(d["action"], d["role"], d["actor"]) for d in denied]
    second, other, author = clinic.second.did, other_patient.did, author_did
    for expected in [
        ("read", "practitioner", second),
        ("read", "other", other),
        ("export", "other", other),
        ("read", "practitioner", second),  # after the withdrawal
        ("read", "practitioner", author),  # revoked: not as the author
        ("break_glass", "practitioner", author),
    ]:
        assert expected in seen, (expected, seen)
    pseudonym = patient_pseudonym(
        read_pseudonym_key_file(system.data_dir / "keys" / "pseudonym.key"), clinic.patient.did
    )
    for entry in denied:
        clinic.receipt(entry["event"])  # final at quorum, or this raises
        sealed = clinic.sealed_event(entry["event"])
        assert sealed["type"] == RECORD_ACCESSED
        assert sealed["data"]["outcome"] == "denied"
        assert sealed["data"]["patient"] == pseudonym
        text = json.dumps(sealed)
        assert clinic.patient.did not in text  # the patient is a pseudonym only
        assert NAME_CANARY not in text

    again = call(system, clinic.author, "/v1/practitioners", {"credential": CREDENTIALS[author]})
    assert (again.status_code, again.json()["reason"]) == (422, "revoked")


def test_a_revoked_publisher_is_refused_by_the_ingest(
    system: RunningSystem, tmp_path: Path
) -> None:
    admin = key(system, "admin")
    platform = generate_key(tmp_path, "ingest-platform")
    grant = {
        "did": platform.did,
        "name": "Ingest Platform",
        "topic": "clinical.events",
        "types": ["org.careledger.clinical.*"],
    }
    assert call(system, admin, "/v1/publishers", grant).status_code == 201
    sealed_role(system, platform.did, "publisher", "since_height")

    def post(n: int) -> httpx.Response:
        event = complete_event(
            {"type": "org.careledger.clinical.note.signed.v1", "data": {"n": n}},
            key=platform,
            default_source="https://ingest.example/",
        )
        headers = {**bearer_headers(platform, "sealer"), "Content-Type": CONTENT_TYPE}
        return httpx.post(
            f"{url_of(system, 'sealer')}/v1/events",
            content=encode_event(event),
            headers=headers,
            timeout=10,
        )

    def accepted() -> httpx.Response | None:
        answer = post(0)
        return answer if answer.status_code == 202 else None

    eventually(accepted, timeout=SEALED_WITHIN, what="the sealer admitting the publisher")
    assert call(system, admin, f"/v1/publishers/{platform.did}/revoke").status_code == 201
    sealed_role(system, platform.did, "publisher", "until")

    def refused() -> httpx.Response | None:
        answer = post(1)
        return answer if answer.status_code == 403 else None

    answer = eventually(refused, timeout=SEALED_WITHIN, what="the ingest refusing it")
    assert answer.json()["reason"] == "revoked_signer"


def test_a_failed_authentication_flood_gets_429_with_retry_after(system: RunningSystem) -> None:
    """Last in the module: it empties this address's bucket at the identity service (the
    defaults: 400 at once, 200 per second)."""
    url = f"{url_of(system, 'identity')}/v1/dids/{CALLER.did}"
    answers = []
    with httpx.Client(timeout=10) as client:
        for _ in range(5000):
            answers.append(client.get(url, headers={"Authorization": "Bearer x.y.z"}))
            if answers[-1].status_code == 429:
                break
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {401, 429}
    assert statuses[-1] == 429, f"no 429 in {len(statuses)} refused requests"
    assert statuses.count(401) >= 400
    limited = answers[-1]
    assert limited.json()["reason"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    time.sleep(3)  # refilled: a valid caller from the same address is served
    fine = httpx.get(url, headers=bearer_headers(CALLER, "identity"), timeout=10)
    assert fine.status_code in {200, 404}
