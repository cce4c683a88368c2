"""Identity as real processes: credentials → practitioners sealed and final; revocation reaches
admission; a new publisher is admitted; bearer tokens for another audience are refused."""

from __future__ import annotations

import copy
import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from careledger.client import complete_event, fetch_receipt, produce_event
from careledger.devchain import generate_key
from careledger.topology import BROKER_PORT, default_services
from shared.auth import bearer_headers
from shared.credentials import add_proof
from shared.crypto import SigningKey
from shared.errors import CareLedgerError
from shared.kafka import KafkaSettings
from shared.keystore import read_genesis_file, read_key_file
from tests.e2e.conftest import CARELEDGER, RunningSystem, eventually
from tests.e2e.test_pipeline import rejection_for, validator_urls

pytestmark = pytest.mark.e2e

CLINICAL_TYPE = "org.careledger.clinical.consultation.completed.v1"


def identity_url(system: RunningSystem) -> str:
    (spec,) = [s for s in default_services(port_offset=system.offset) if s.name == "identity"]
    return spec.url()


def key(system: RunningSystem, name: str) -> SigningKey:
    return read_key_file(system.data_dir / "keys" / f"{name}.json")


def call(system: RunningSystem, caller: SigningKey, path: str, body: Any = None) -> httpx.Response:
    headers = bearer_headers(caller, "identity")
    url = f"{identity_url(system)}{path}"
    if body is None and path.startswith("/v1/dids/"):
        return httpx.get(url, headers=headers, timeout=10)
    return httpx.post(url, json=body, headers=headers, timeout=10)


def issue(
    system: RunningSystem,
    tmp_path: Path,
    subject: str,
    *,
    authority: Path | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A credential from `careledger credential issue`, as an authority would make it."""
    output = tmp_path / f"credential-{time.monotonic_ns()}.json"
    expires = (datetime.now(UTC) + timedelta(days=300)).date().isoformat()
    options = {
        "--key": str(authority or system.data_dir / "keys" / "authority-demo.json"),
        "--subject": subject,
        "--npi": "1234567893",
        "--license-number": "CA-A12345",
        "--jurisdiction": "US-CA",
        "--license-expires": expires,
        "--role": "physician",
        "--specialty": "207R00000X",
        "--output": str(output),
        **(extra or {}),
    }
    done = subprocess.run(
        [*CARELEDGER, "credential", "issue", *[p for pair in options.items() for p in pair]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    credential: dict[str, Any] = json.loads(output.read_text())
    return credential


def role(system: RunningSystem, did: str, name: str) -> dict[str, Any] | None:
    answer = call(system, key(system, "admin"), f"/v1/dids/{did}")
    if answer.status_code != 200:
        return None
    return next((r for r in answer.json()["roles"] if r["role"] == name), None)


def sealed_role(system: RunningSystem, did: str, name: str, field: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        found = role(system, did, name)
        return found if found is not None and found[field] is not None else None

    return eventually(probe, timeout=60, what=f"{name} {field} of {did}")


def test_a_cli_issued_credential_registers_a_practitioner_sealed_and_final(
    system: RunningSystem, tmp_path: Path
) -> None:
    practitioner = generate_key(tmp_path, "practitioner")
    credential = issue(system, tmp_path, practitioner.did)
    answer = call(system, practitioner, "/v1/practitioners", {"credential": credential})
    assert answer.status_code == 201, answer.text
    event = answer.json()["event"]
    assert call(system, practitioner, "/v1/practitioners", {"credential": credential}).json() == (
        answer.json()
    )
    view = sealed_role(system, practitioner.did, "practitioner", "since_height")
    assert view["status"] == "active"
    assert view["since_height"] >= 1
    _, genesis = read_genesis_file(system.data_dir / "genesis.json")
    url = validator_urls(system)[0]

    def receipt() -> Any:
        with httpx.Client(timeout=10) as client:
            try:
                return fetch_receipt(
                    url, event["source"], event["id"], genesis=genesis, client=client
                )
            except CareLedgerError:  # not final (or not included) yet: ask again
                return None

    final = eventually(receipt, timeout=60, what="a final inclusion proof")
    assert len(final.attested_by) >= genesis.quorum
    assert final.height == view["since_height"]


def resign(system: RunningSystem, credential: dict[str, Any]) -> dict[str, Any]:
    unsigned = {name: value for name, value in credential.items() if name != "proof"}
    created = credential["proof"]["created"]
    return add_proof(unsigned, key=key(system, "authority-demo"), created=created)


def test_bad_credentials_get_422_with_the_matching_reason(
    system: RunningSystem, tmp_path: Path
) -> None:
    practitioner = generate_key(tmp_path, "practitioner")
    admin = key(system, "admin")
    tampered = issue(system, tmp_path, practitioner.did)
    tampered["credentialSubject"]["specialty"] = "208D00000X"
    past = datetime.now(UTC) - timedelta(days=30)
    expired = issue(
        system,
        tmp_path,
        practitioner.did,
        extra={
            "--valid-from": (past - timedelta(days=300)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "--valid-until": past.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    stranger = generate_key(tmp_path, "self-made-board")
    wrong_issuer = issue(
        system, tmp_path, practitioner.did, authority=tmp_path / "keys" / "self-made-board.json"
    )
    assert wrong_issuer["issuer"] == stranger.did
    bad_npi = copy.deepcopy(issue(system, tmp_path, practitioner.did))
    bad_npi["credentialSubject"]["npi"] = "1234567890"
    cases = {
        "bad_proof": tampered,
        "expired": expired,
        "untrusted_issuer": wrong_issuer,
        "bad_npi": resign(system, bad_npi),
    }
    for reason, credential in cases.items():
        answer = call(system, admin, "/v1/practitioners", {"credential": credential})
        assert answer.status_code == 422, (reason, answer.text)
        assert answer.json()["reason"] == reason, answer.text

    revoked = issue(system, tmp_path, practitioner.did, extra={"--license-number": "CA-R1"})
    assert (
        call(system, practitioner, "/v1/practitioners", {"credential": revoked}).status_code == 201
    )
    revocation = call(
        system, key(system, "authority-demo"), "/v1/credentials/revoke", {"credential": revoked}
    )
    assert revocation.status_code == 201, revocation.text
    again = call(system, practitioner, "/v1/practitioners", {"credential": revoked})
    assert (again.status_code, again.json()["reason"]) == (422, "revoked")
    view = sealed_role(system, practitioner.did, "practitioner", "until")
    assert view["status"] == "revoked"


def kafka_of(system: RunningSystem) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=f"127.0.0.1:{BROKER_PORT + system.offset}")


def publish(system: RunningSystem, signer: SigningKey, source: str) -> Any:
    event = complete_event(
        {"type": CLINICAL_TYPE, "data": {"encounter": "enc-e2e"}},
        key=signer,
        default_source=source,
    )
    return produce_event(kafka_of(system), "clinical.events", event)


def test_a_revoked_publisher_is_rejected_and_a_new_one_sealed(
    system: RunningSystem, tmp_path: Path
) -> None:
    admin, demo = key(system, "admin"), key(system, "publisher-demo")
    revoked = call(system, admin, f"/v1/publishers/{demo.did}/revoke")
    assert revoked.status_code == 201, revoked.text
    sealed_role(system, demo.did, "publisher", "until")
    delivery = publish(system, demo, "https://videoconsult.example/app")
    assert rejection_for(kafka_of(system), "clinical.events", delivery.offset)["reason"] == (
        "revoked_signer"
    )

    platform = generate_key(tmp_path, "pharmacy")
    grant = {
        "did": platform.did,
        "name": "Example Pharmacy",
        "topic": "clinical.events",
        "types": ["org.careledger.clinical.*"],
    }
    assert call(system, admin, "/v1/publishers", grant).status_code == 201
    assert sealed_role(system, platform.did, "publisher", "since_height")["status"] == "active"
    accepted = publish(system, platform, "https://pharmacy.example/")
    url = validator_urls(system)[1]

    def included() -> dict[str, Any] | None:
        answer = httpx.get(
            f"{url}/v1/proofs/inclusion",
            params={"source": accepted.source, "id": accepted.id},
            timeout=10,
        )
        return answer.json() if answer.status_code == 200 else None

    proof = eventually(included, timeout=60, what="the new publisher's event sealed")
    assert proof["event"]["signer"] == platform.did


def test_a_token_for_another_audience_is_refused(system: RunningSystem) -> None:
    admin = key(system, "admin")
    answer = httpx.get(
        f"{identity_url(system)}/v1/dids/{admin.did}",
        headers=bearer_headers(admin, "records"),
        timeout=10,
    )
    assert answer.status_code == 401
    assert answer.json()["reason"]
    assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="identity"')
