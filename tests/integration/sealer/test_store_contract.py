"""The sealer's ChainStore contract, on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from services.sealer.adapters.memory import MemoryChainStore
from services.sealer.adapters.sql import (
    SEALER_MIGRATIONS,
    SEALER_VERSION_TABLE,
    SqlChainStore,
    metadata,
    migrate_sealer,
    seen_table,
)
from services.sealer.errors import ChainConflictError
from shared.block import block_from_json, block_to_json
from shared.chain import ChainState, ChainVerifier
from shared.store import Database, current_revision, downgrade, migrate
from shared.store.bulk import insert_rows
from tests.integration.store.backends import BACKENDS, reopen, sql_database
from tests.unit.core.chainfactory import ChainFactory

pytestmark = pytest.mark.integration

PARAMS = [
    pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else [], id=kind)
    for kind in BACKENDS
]


class Backend:
    def __init__(self, store: Any, reopen: Any) -> None:
        self.store = store
        self.reopen = reopen


@pytest.fixture(params=PARAMS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    kind = request.param
    if kind == "memory":
        yield Backend(MemoryChainStore(), None)
        return
    opened: list[Database] = []
    with sql_database(kind, tmp_path) as (database, args):
        migrate_sealer(database)

        def again() -> SqlChainStore:
            fresh = reopen(args)
            opened.append(fresh)
            return SqlChainStore(database=fresh)

        yield Backend(SqlChainStore(database=database), again)
        for extra in opened:
            extra.close()


def _genesis_state(factory: ChainFactory) -> ChainState:
    state = ChainVerifier().verify_block(factory.blocks[0]).state
    assert state is not None
    return state


def test_empty_store_has_no_head(backend: Backend) -> None:
    assert backend.store.head() is None
    assert backend.store.block(0) is None
    assert not backend.store.contains(("s", "i"))


def test_genesis_then_blocks_are_stored_with_state_keys_and_positions(backend: Backend) -> None:
    factory = ChainFactory()
    store = backend.store
    genesis = factory.blocks[0]
    genesis_key = (str(genesis.events[0]["source"]), str(genesis.events[0]["id"]))
    store.append(genesis, _genesis_state(factory), [genesis_key], {})
    events = [factory.event() for _ in range(3)]
    block = factory.seal(events)
    keys = [(e["source"], e["id"]) for e in events]
    store.append(block, factory.state, keys, {("clinical.events", 0): 5})

    for current in [store, *([backend.reopen()] if backend.reopen else [])]:
        head = current.head()
        assert head is not None
        assert head.height == 1
        assert head.state.head_hash == block.block_hash
        assert head.state.to_json() == factory.state.to_json()
        assert head.read_positions == {("clinical.events", 0): 5}
        assert block_from_json(head.block) == block
        assert current.block(0) == block_to_json(genesis)
        assert all(current.contains(key) for key in [genesis_key, *keys])
        assert not current.contains(("urn:other", keys[0][1]))
        probe = [keys[0], ("urn:other", keys[0][1]), ("s", "never"), genesis_key]
        assert current.sealed_among(probe) == {keys[0], genesis_key}
        assert current.sealed_among([]) == set()


def test_a_block_that_does_not_extend_the_head_is_refused_and_changes_nothing(
    backend: Backend,
) -> None:
    factory = ChainFactory()
    store = backend.store
    store.append(factory.blocks[0], _genesis_state(factory), [], {})
    with pytest.raises(ChainConflictError):
        store.append(factory.blocks[0], _genesis_state(factory), [], {})  # genesis twice
    first = factory.seal([factory.event()])
    after_first = factory.state
    second_events = [factory.event()]
    second = factory.seal(second_events)
    key = (second_events[0]["source"], second_events[0]["id"])
    with pytest.raises(ChainConflictError):
        store.append(second, factory.state, [key], {})  # skips height 1
    assert store.head().height == 0
    assert not store.contains(key)
    store.append(first, after_first, [], {})
    with pytest.raises(ChainConflictError):
        store.append(first, after_first, [], {})  # the same height twice
    assert store.head().height == 1


def test_a_key_sealed_twice_rolls_the_whole_block_back(backend: Backend) -> None:
    factory = ChainFactory()
    store = backend.store
    store.append(factory.blocks[0], _genesis_state(factory), [("s", "1")], {})
    block = factory.seal([factory.event()])
    with pytest.raises(ChainConflictError):
        store.append(block, factory.state, [("s", "2"), ("s", "1")], {})
    assert store.head().height == 0
    assert store.block(1) is None
    assert not store.contains(("s", "2"))


@pytest.mark.parametrize("kind", [p for p in PARAMS if p.values[0] != "memory"])
def test_migrations_match_the_tables_and_are_idempotent(kind: str, tmp_path: Path) -> None:
    with sql_database(kind, tmp_path) as (database, _):
        first = migrate_sealer(database)
        assert migrate_sealer(database) == first == "sealer_0003"
        assert current_revision(database, version_table=SEALER_VERSION_TABLE) == first
        tables = set(inspect(database.engine).get_table_names())
        assert set(metadata.tables) <= tables
        for table in metadata.tables.values():
            columns = {c["name"] for c in inspect(database.engine).get_columns(table.name)}
            assert columns == {c.name for c in table.columns}


@pytest.mark.parametrize("kind", [p for p in PARAMS if p.values[0] != "memory"])
def test_sealer_0003_keeps_every_sealed_key_and_goes_back(kind: str, tmp_path: Path) -> None:
    keys = [(f"urn:source:{n % 3}", f"id-{n}") for n in range(40)]
    with sql_database(kind, tmp_path) as (database, _):
        location, table = SEALER_MIGRATIONS, SEALER_VERSION_TABLE
        migrate(database, location, version_table=table, revision="sealer_0002")
        with database.transaction() as tx:
            insert_rows(tx, seen_table, ("source", "event_id", "height"), [(*k, 1) for k in keys])
        assert migrate_sealer(database) == "sealer_0003"
        store = SqlChainStore(database=database)
        assert store.sealed_among([*keys, ("urn:source:0", "id-1")]) == set(keys)
        if kind == "sqlite":
            with database.read() as tx:
                ddl = tx.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE name = 'sealer_seen'"
                ).scalar_one()
            assert "WITHOUT ROWID" in ddl
        assert downgrade(database, location, version_table=table, revision="sealer_0002")
        assert store.sealed_among(keys) == set(keys)
