"""wire_authenticator on a real database: its migrations, and a request authenticated by it."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from shared.auth import SEEN_TOKENS_VERSION_TABLE, migrate_seen_tokens
from shared.auth.sql import metadata
from shared.crypto import SigningKey
from shared.runtime.app import create_app
from shared.runtime.auth import CurrentCaller, bearer_headers, wire_authenticator
from shared.runtime.metrics import ServiceMetrics
from shared.runtime.settings import ServiceSettings
from shared.store import current_revision, open_database
from tests.integration.store.backends import SQL_BACKENDS, sql_database

SQL = [
    pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else [])
    for kind in SQL_BACKENDS
]


class RecordsSettings(ServiceSettings):
    service_name: ClassVar[str] = "records"
    default_port: ClassVar[int] = 8121


@pytest.mark.parametrize("kind", SQL)
def test_the_migration_is_idempotent_and_matches_the_adapter(kind: str, tmp_path: Path) -> None:
    with sql_database(kind, tmp_path) as (database, _):
        assert migrate_seen_tokens(database) == "seen_tokens_0001"
        assert migrate_seen_tokens(database) == "seen_tokens_0001"
        assert current_revision(database, version_table=SEEN_TOKENS_VERSION_TABLE) == (
            "seen_tokens_0001"
        )
        with database.read() as connection:
            assert set(inspect(connection).get_table_names()) == {
                "careledger_seen_tokens",
                SEEN_TOKENS_VERSION_TABLE,
            }
            context = MigrationContext.configure(connection, opts={"include_name": _ours})
            assert compare_metadata(context, metadata) == []


def test_a_wired_service_authenticates_and_refuses_replays(tmp_path: Path) -> None:
    settings = RecordsSettings(data_dir=tmp_path)
    metrics = ServiceMetrics(service="records", instance="records", version="0.0.1")
    key = SigningKey(bytes(range(32)))
    with open_database(settings.resolved_database_url) as database:
        auth = wire_authenticator(settings, database, metrics)
        assert auth.audience == "records"
        router = APIRouter()

        @router.get("/v1/me")
        def me(caller: CurrentCaller) -> dict[str, str]:
            # The module-level alias works under postponed annotations (this module's).
            return {"did": caller.did}

        app = create_app(
            service="records", version="0.0.1", components=[], metrics=metrics, routers=[router]
        )
        auth.install(app)
        client = TestClient(app)
        headers = bearer_headers(key, "records")
        assert client.get("/v1/me", headers=headers).json() == {"did": key.did}
        replay = client.get("/v1/me", headers=headers)
        assert replay.status_code == 401
        assert replay.json()["reason"] == "replayed"
        wrong = client.get("/v1/me", headers=bearer_headers(key, "billing"))
        assert wrong.json()["reason"] == "wrong_audience"


def _ours(name: object, *_: object) -> bool:
    return name != SEEN_TOKENS_VERSION_TABLE
