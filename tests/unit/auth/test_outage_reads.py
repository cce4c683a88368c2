"""While the store refuses writes, reads still authenticate: their token ids are remembered in
the process (and refused there when replayed); writes get the store's 503; other store errors
are not mistaken for an outage."""

# No `from __future__ import annotations`: FastAPI must see the local `Depends(auth)`.

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.auth import MemorySeenTokens, issue_token
from shared.crypto import SigningKey
from shared.runtime.app import create_app
from shared.runtime.auth import Authenticator, Caller
from shared.runtime.metrics import ServiceMetrics

ALICE = SigningKey(bytes(range(32)))


def sqlite_error(name: str) -> OperationalError:
    original = sqlite3.OperationalError("database or disk is full")
    original.sqlite_errorname = name  # what sqlite3 sets on the errors it raises
    return OperationalError("INSERT INTO careledger_seen_tokens ...", {}, original)


class FlakyStore:
    """The SQL replay table's behaviour, with a switch that makes every write fail."""

    def __init__(self) -> None:
        self.inner = MemorySeenTokens()
        self.failure: Exception | None = None

    def remember(self, issuer: str, jti: str, expires_at: datetime, now: datetime) -> None:
        if self.failure is not None:
            raise self.failure
        self.inner.remember(issuer, jti, expires_at, now)


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> FlakyStore:
    return FlakyStore()


@pytest.fixture
def client(store: FlakyStore, clock: Clock) -> tuple[TestClient, ServiceMetrics]:
    metrics = ServiceMetrics(service="records", instance="records", version="0.0.1")
    auth = Authenticator(audience="records", seen=store, metrics=metrics, clock=clock)
    router = APIRouter()

    @router.get("/v1/me")
    def me(caller: Annotated[Caller, Depends(auth)]) -> dict[str, str]:
        return {"did": caller.did}

    @router.post("/v1/me")
    def change(caller: Annotated[Caller, Depends(auth)]) -> dict[str, str]:
        return {"did": caller.did}

    app = create_app(
        service="records", version="0.0.1", components=[], metrics=metrics, routers=[router]
    )
    return TestClient(app, raise_server_exceptions=False), metrics


def bearer(clock: Clock, jti: str) -> dict[str, str]:
    token = issue_token(ALICE, audience="records", issued_at=clock.now, jti=jti)
    return {"Authorization": f"Bearer {token}"}


def outage_reads(metrics: ServiceMetrics) -> float:
    value = metrics.registry.get_sample_value("careledger_auth_outage_reads_total")
    assert value is not None
    return value


def test_a_read_is_served_while_the_store_is_full_and_its_token_is_used_once(
    client: tuple[TestClient, ServiceMetrics], store: FlakyStore, clock: Clock
) -> None:
    http, metrics = client
    store.failure = sqlite_error("SQLITE_FULL")
    headers = bearer(clock, "during-outage")
    assert http.get("/v1/me", headers=headers).json() == {"did": ALICE.did}
    assert outage_reads(metrics) == 1
    again = http.get("/v1/me", headers=headers)
    assert again.status_code == 401
    assert again.json()["reason"] == "replayed"
    # The store is back: the token the process remembered is still refused here.
    store.failure = None
    assert http.get("/v1/me", headers=headers).json()["reason"] == "replayed"
    assert http.get("/v1/me", headers=bearer(clock, "after")).status_code == 200
    assert outage_reads(metrics) == 1


def test_a_write_while_the_store_is_full_gets_the_stores_503(
    client: tuple[TestClient, ServiceMetrics], store: FlakyStore, clock: Clock
) -> None:
    http, metrics = client
    store.failure = sqlite_error("SQLITE_READONLY")
    answer = http.post("/v1/me", headers=bearer(clock, "write"))
    assert answer.status_code == 503
    assert answer.json()["reason"] == "store_unavailable"
    assert answer.json()["store"] == "read_only"
    assert outage_reads(metrics) == 0


def test_a_store_error_that_is_not_an_outage_is_not_taken_for_one(
    client: tuple[TestClient, ServiceMetrics], store: FlakyStore, clock: Clock
) -> None:
    http, metrics = client
    store.failure = IntegrityError("INSERT", {}, sqlite3.IntegrityError("constraint"))
    assert http.get("/v1/me", headers=bearer(clock, "bug")).status_code == 500
    assert outage_reads(metrics) == 0


def test_ids_remembered_in_the_process_expire_with_their_tokens(
    client: tuple[TestClient, ServiceMetrics], store: FlakyStore, clock: Clock
) -> None:
    http, _ = client
    store.failure = sqlite_error("SQLITE_IOERR_WRITE")
    headers = bearer(clock, "expires")
    assert http.get("/v1/me", headers=headers).status_code == 200
    store.failure = None
    clock.now += timedelta(seconds=30)
    assert http.get("/v1/me", headers=headers).json()["reason"] == "replayed"
    clock.now += timedelta(minutes=10)  # past exp + leeway: the process forgot the id
    assert http.get("/v1/me", headers=headers).json()["reason"] == "expired"
    assert http.get("/v1/me", headers=bearer(clock, "expires")).status_code == 200
