"""Every authenticated API service as wiring builds it (SQLite, dev keys), in process.

The apps are not started (no lifespan: no broker is needed); their routes authenticate
exactly as in production, against the replay table in their own database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from careledger.devchain import ensure_dev_chain
from services.billing.config import BillingSettings
from services.billing.wiring import build as build_billing
from services.identity.config import IdentitySettings
from services.identity.wiring import build as build_identity
from services.records.config import RecordsSettings
from services.records.wiring import build as build_records
from services.sealer.config import SealerSettings
from services.sealer.wiring import build as build_sealer
from tests.e2e.conftest import system  # noqa: F401 - the fixture of the real-process tests
from tests.security.auth.tokens import CALLER


@dataclass(frozen=True)
class Face:
    """One authenticated route of one service: how to call it."""

    audience: str
    method: str
    path: str
    settings: Callable[..., Any]
    build: Callable[[Any], FastAPI]
    body: bytes | None = None


FACES = {
    "identity": Face("identity", "GET", f"/v1/dids/{CALLER.did}", IdentitySettings, build_identity),
    "records": Face("records", "GET", "/v1/consents", RecordsSettings, build_records),
    # The FHIR face: the same authenticator, errors as OperationOutcome (docs/fhir.md).
    "records-fhir": Face("records", "GET", "/fhir/Observation", RecordsSettings, build_records),
    "billing": Face("billing", "GET", "/v1/invoices", BillingSettings, build_billing),
    "sealer": Face("sealer", "POST", "/v1/events", SealerSettings, build_sealer, b"{}"),
}


def build_app(face: Face, data_dir: Path, **settings: Any) -> FastAPI:
    extra = {"sealer_verify_workers": 1} if face.audience == "sealer" else {}
    return face.build(face.settings(data_dir=data_dir, log_format="text", **extra, **settings))


@pytest.fixture(scope="session")
def dev_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("auth-chain")
    ensure_dev_chain(data)
    return data


@pytest.fixture(scope="session")
def clients(dev_chain: Path) -> dict[str, TestClient]:
    """One client per service, over the same dev chain (each its own database; the FHIR
    face is the records app's)."""
    built = {name: TestClient(build_app(face, dev_chain)) for name, face in FACES.items()}
    built["records-fhir"] = built["records"]
    return built


def reason_of(response: Any) -> str:
    """The refusal's reason code: `reason` in the one error shape, or the coding of an
    OperationOutcome's first issue (the FHIR face)."""
    body = response.json()
    if body.get("resourceType") == "OperationOutcome":
        return str(body["issue"][0]["details"]["coding"][0]["code"])
    return str(body["reason"])


def call(client: TestClient, face: Face, authorization: str | None) -> Any:
    headers = {} if authorization is None else {"Authorization": authorization}
    if face.body is not None:
        headers["Content-Type"] = "application/cloudevents+json"
    return client.request(face.method, face.path, headers=headers, content=face.body)
