"""One contract for the witness's state (`WitnessStore`) on memory, SQLite and PostgreSQL: the
latest checkpoint per origin, replaced only by compare-and-set on the size held."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.validator.adapters.sql import migrate_chain_store
from services.validator.adapters.witness_store import MemoryWitnessStore, SqlWitnessStore
from shared.checkpoint import Checkpoint
from tests.integration.store.backends import BACKENDS, reopen, sql_database

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PARAMS = [
    pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else [], id=kind)
    for kind in BACKENDS
]
A = "careledger/chain-a"
B = "careledger/chain-b"


@pytest.fixture(params=PARAMS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    if request.param == "memory":
        yield MemoryWitnessStore()
        return
    with sql_database(request.param, tmp_path) as (database, _):
        migrate_chain_store(database)
        yield SqlWitnessStore(database=database)


def head(origin: str, size: int) -> Checkpoint:
    return Checkpoint(origin, size, bytes([size % 256]) * 32)


def test_the_latest_per_origin_by_compare_and_set(store: SqlWitnessStore) -> None:
    assert store.latest(A) is None
    assert store.replace(head(A, 5), note="n5", expected_size=0)
    assert not store.replace(head(A, 6), note="n6", expected_size=0), "already holds one"
    assert store.latest(A) == head(A, 5)
    assert store.latest(B) is None
    assert not store.replace(head(A, 9), note="n9", expected_size=4), "another size is held"
    assert store.replace(head(A, 9), note="n9", expected_size=5)
    assert store.latest(A) == head(A, 9)
    assert store.replace(head(B, 2), note="b2", expected_size=0)
    assert (store.latest(A), store.latest(B)) == (head(A, 9), head(B, 2))


@pytest.mark.parametrize("kind", [p for p in PARAMS if p.values[0] != "memory"])
def test_the_state_survives_a_reopen(kind: str, tmp_path: Path) -> None:
    with sql_database(kind, tmp_path) as (database, args):
        migrate_chain_store(database)
        assert SqlWitnessStore(database=database).replace(head(A, 3), note="n", expected_size=0)
        database.close()
        with reopen(args) as again:
            assert SqlWitnessStore(database=again).latest(A) == head(A, 3)
