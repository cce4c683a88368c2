"""Back-ends for the SeenTokens contract suite: memory, SQLite file, PostgreSQL schema."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.auth import MemorySeenTokens, SeenTokens, SqlSeenTokens, migrate_seen_tokens
from shared.store import Database
from tests.integration.store.backends import BACKENDS, reopen, sql_database

PARAMS = [
    pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else [], id=kind)
    for kind in BACKENDS
]


@dataclass
class SeenBackend:
    kind: str
    seen: SeenTokens
    #: The table as a second process sees it (another replica of the service).
    other: SeenTokens
    database: Database | None


@pytest.fixture(params=PARAMS)
def seen_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SeenBackend]:
    kind = request.param
    if kind == "memory":
        memory = MemorySeenTokens()
        yield SeenBackend(kind=kind, seen=memory, other=memory, database=None)
        return
    with sql_database(kind, tmp_path) as (database, args):
        migrate_seen_tokens(database)
        other = reopen(args)
        try:
            yield SeenBackend(
                kind=kind,
                seen=SqlSeenTokens(database=database),
                other=SqlSeenTokens(database=other),
                database=database,
            )
        finally:
            other.close()
