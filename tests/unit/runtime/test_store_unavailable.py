"""Storage failures answer 503 `store_unavailable` with Retry-After (shared.runtime.unavailable);
other database errors stay 500; a store whose writes fail is not ready, and ready again once a
write succeeds (Database.write_problem through CheckedResource)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.runtime.app import create_app
from shared.runtime.component import CheckedResource
from shared.runtime.metrics import ServiceMetrics
from shared.runtime.unavailable import STORE_RETRY_AFTER_SECONDS
from shared.store import open_database


def _full() -> OperationalError:
    original = sqlite3.OperationalError("database or disk is full")
    original.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    return OperationalError("INSERT INTO t VALUES (?)", None, original)


def make_client(tmp_path: Path, fail: list[Exception]) -> TestClient:
    database = open_database(f"sqlite:///{tmp_path / 'demo.db'}")
    router = APIRouter()

    @router.post("/v1/things")
    def write() -> dict[str, str]:
        with database.transaction() as tx:
            tx.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (v TEXT)")
            if fail:
                raise fail.pop()
        return {"status": "written"}

    app = create_app(
        service="demo",
        version="0.0.1",
        components=[
            CheckedResource(
                name="store",
                ping=database.ping,
                close=database.close,
                problem=database.write_problem,
            )
        ],
        metrics=ServiceMetrics(service="demo", instance="demo", version="0.0.1"),
        routers=[router],
    )
    return TestClient(app, raise_server_exceptions=False)


def test_a_full_store_is_503_in_the_error_shape_and_readiness_says_so(tmp_path: Path) -> None:
    with make_client(tmp_path, [_full()]) as client:
        answer = client.post("/v1/things")
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == str(STORE_RETRY_AFTER_SECONDS)
        body = answer.json()
        assert body == {
            "reason": "store_unavailable",
            "detail": "the service's store cannot be used now (full); retry later",
            "store": "full",
        }
        assert "INSERT" not in answer.text
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["store"].startswith("store: writes failing (full)")
        assert client.post("/v1/things").status_code == 200
        assert client.get("/readyz").status_code == 200


def test_a_database_error_that_is_a_bug_stays_a_500(tmp_path: Path) -> None:
    bug = IntegrityError("INSERT", None, sqlite3.IntegrityError("UNIQUE constraint failed"))
    with make_client(tmp_path, [bug]) as client:
        assert client.post("/v1/things").status_code == 500
        assert client.get("/readyz").status_code == 200
