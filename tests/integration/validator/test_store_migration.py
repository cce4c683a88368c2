"""validator_0003 converts a store written in the old layout (every node, events with their
height) without losing anything, and its downgrade gives the old rows back."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import column, func, insert, select, table, text

from services.validator.adapters.sql import (
    VALIDATOR_MIGRATIONS,
    VALIDATOR_VERSION_TABLE,
    SqlChainStore,
    leaves_table,
    migrate_chain_store,
    nodes_table,
)
from services.validator.ports import BLOCKS_CURSOR
from services.validator.service import Validator
from shared.block import block_to_json
from shared.chain import ChainVerifier, VerifiedBlock
from shared.merkle import (
    consistency_proof,
    consistency_proof_at,
    inclusion_proof,
    inclusion_proof_at,
    root,
    root_at,
)
from shared.merkle.leaf_backed import STORED_LEVEL
from shared.store import Database, downgrade, migrate
from tests.integration.store.backends import SQL_BACKENDS, sql_database
from tests.unit.core.chainfactory import ChainFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SQL = [
    pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else [], id=kind)
    for kind in SQL_BACKENDS
]

# The old layout, as validator_0002 left it and the old append wrote it.
_old_blocks = table(
    "validator_blocks",
    *(column(name) for name in ("height", "block_hash", "prev_hash", "tree_size")),
    *(column(name) for name in ("log_root", "event_count", "sealed_at", "raw", "final")),
)
_old_nodes = table("validator_nodes", column("level"), column("idx"), column("hash"))
_old_events = table(
    "validator_events", column("source"), column("event_id"), column("leaf_index"), column("height")
)
_state = table("validator_state", column("id"), column("height"), column("state"))
_cursors = table("validator_cursors", column("topic"), column("last_offset"))


class _Publisher:
    def publish(self, attestation: object) -> None:
        pass


def _write_old_layout(
    database: Database, chain: list[VerifiedBlock], *, lose_leaves_of: int | None = None
) -> None:
    with database.transaction() as tx:
        for item in chain:
            header = item.block.header
            first = header.tree_size - header.event_count
            tx.execute(
                insert(_old_blocks).values(
                    height=header.height,
                    block_hash=item.block.block_hash,
                    prev_hash=header.prev_hash,
                    tree_size=header.tree_size,
                    log_root=header.log_root,
                    event_count=header.event_count,
                    sealed_at=header.sealed_at,
                    raw=block_to_json(item.block),
                    final=header.height <= 3,
                )
            )
            nodes = [
                {"level": lv, "idx": ix, "hash": h}
                for lv, ix, h in item.nodes
                if not (lv == 0 and header.height == lose_leaves_of)
            ]
            tx.execute(insert(_old_nodes), nodes)
            tx.execute(
                insert(_old_events),
                [
                    {"source": s, "event_id": e, "leaf_index": first + n, "height": header.height}
                    for n, (s, e) in enumerate(item.dedup_keys)
                ],
            )
        tx.execute(
            insert(_state).values(
                id=1, height=chain[-1].block.header.height, state=chain[-1].state.to_json()
            )
        )
        tx.execute(insert(_cursors).values(topic=BLOCKS_CURSOR, last_offset=len(chain) - 1))


def _old_rows(database: Database) -> tuple[set[tuple[int, int, bytes]], set[tuple[str, ...]]]:
    with database.read() as tx:
        nodes = {(int(a), int(b), bytes(c)) for a, b, c in tx.execute(select(_old_nodes))}
        events = {tuple(map(str, row)) for row in tx.execute(select(_old_events))}
    return nodes, events


@pytest.mark.parametrize("lose_leaves_of", [None, 2])
@pytest.mark.parametrize("kind", SQL)
def test_an_old_layout_store_is_converted_and_converted_back(
    kind: str, lose_leaves_of: int | None, tmp_path: Path
) -> None:
    factory = ChainFactory()
    factory.seal_many(5, 120)  # 601 leaves: nodes up to level 9
    verifier = ChainVerifier(trusted_genesis=factory.genesis_event)
    chain = [verifier.verify_block(block) for block in factory.blocks]
    leaves = [leaf for item in chain for leaf in item.leaf_hashes]
    with sql_database(kind, tmp_path) as (database, _):
        location = VALIDATOR_MIGRATIONS
        migrate(
            database, location, version_table=VALIDATOR_VERSION_TABLE, revision="validator_0002"
        )
        _write_old_layout(database, chain, lose_leaves_of=lose_leaves_of)
        old_nodes, old_events = _old_rows(database)

        assert migrate_chain_store(database) == "validator_0004"  # validator_0004 only adds a table
        store = SqlChainStore(database=database)
        with database.read() as tx:
            assert tx.execute(select(func.count()).select_from(leaves_table)).scalar_one() == 6
            kept = {
                (int(a), int(b))
                for a, b in tx.execute(select(nodes_table.c.level, nodes_table.c.idx))
            }
        assert kept == {(8, 0), (8, 1), (9, 0)}
        assert all(level >= STORED_LEVEL for level, _ in kept)
        for size in (1, 121, 256, 300, 512, 601):
            assert store.subtree_hashes([(0, size - 1)]) == [leaves[size - 1]]
        for index, size in ((0, 601), (130, 601), (255, 256), (400, 513), (600, 601)):
            path = inclusion_proof(leaves[:size], index)
            assert inclusion_proof_at(store, index, size) == path
            assert root_at(store, size) == root(leaves[:size])
        assert consistency_proof_at(store, 241, 601) == consistency_proof(leaves[:601], 241)
        event = factory.blocks[4].events[7]
        found = store.locate(event["source"], event["id"])
        assert found is not None
        assert (found.height, found.leaf_index) == (4, 1 + 3 * 120 + 7)
        assert store.cursor(BLOCKS_CURSOR) == 5
        assert store.final_height() == 3
        assert [b.final for b in store.blocks(0, 5)] == [True] * 4 + [False] * 2
        validator = Validator(
            store=store,
            key=factory.keys["validator-1"],
            genesis=factory.config,
            genesis_event=factory.genesis_event,
            publisher=_Publisher(),
        )
        validator.restore()
        validator.audit()  # the converted store re-verifies, subtree by subtree

        location_back = downgrade(
            database, location, version_table=VALIDATOR_VERSION_TABLE, revision="validator_0002"
        )
        assert location_back == "validator_0002"
        nodes, events = _old_rows(database)
        everything = {(lv, ix, h) for item in chain for lv, ix, h in item.nodes}
        assert nodes == everything  # the lost leaves too: they came back from the blocks
        assert events == old_events
        if lose_leaves_of is None:
            assert nodes == old_nodes
        with database.read() as tx:
            finals = tx.execute(select(_old_blocks.c.height).where(_old_blocks.c.final)).all()
        assert sorted(int(h) for (h,) in finals) == [0, 1, 2, 3]
        with database.read() as tx:
            tables = {
                name
                for (name,) in tx.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'table'")
                    if kind == "sqlite"
                    else text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
                )
            }
        assert not {"validator_leaves", "validator_finals"} & tables
