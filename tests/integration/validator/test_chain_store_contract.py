"""The validator's ChainStore contract, run against memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from services.validator.adapters.memory import DuplicateBlockError, MemoryChainStore
from services.validator.adapters.sql import (
    SqlChainStore,
    events_table,
    leaves_table,
    metadata,
    migrate_chain_store,
    nodes_table,
)
from services.validator.adapters.witness_store import witnessed_table
from services.validator.ports import ATTESTATIONS_CURSOR, BLOCKS_CURSOR, Refusal
from shared.attestation import Attestation, sign_attestation
from shared.block import block_to_json
from shared.chain import ChainVerifier, VerifiedBlock
from shared.merkle import (
    consistency_proof,
    consistency_proof_at,
    inclusion_proof,
    inclusion_proof_at,
    root,
    root_at,
    verify_consistency,
    verify_inclusion,
)
from tests.integration.store.backends import BACKENDS, reopen, sql_database
from tests.unit.core.chainfactory import ChainFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

Store = SqlChainStore | MemoryChainStore

PARAMS = [
    pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else [], id=kind)
    for kind in BACKENDS
]
#: The back-ends that survive a restart (memory is not durable by design).
DURABLE_PARAMS = [param for param in PARAMS if param.values[0] != "memory"]


@pytest.fixture(params=PARAMS)
def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Store, dict[str, object]]]:
    if request.param == "memory":
        yield MemoryChainStore(), {}
        return
    with sql_database(request.param, tmp_path) as (database, args):
        migrate_chain_store(database)
        migrate_chain_store(database)  # idempotent
        yield SqlChainStore(database=database), args


def _verified_chain(factory: ChainFactory) -> list[VerifiedBlock]:
    verifier = ChainVerifier(trusted_genesis=factory.genesis_event)
    return [verifier.verify_block(block) for block in factory.blocks]


def _fill(store: Store, factory: ChainFactory) -> list[VerifiedBlock]:
    verified = _verified_chain(factory)
    for offset, item in enumerate(verified):
        store.append(item, raw=block_to_json(item.block), offset=offset)
    return verified


def test_an_empty_store_has_no_head_state_or_cursor(
    backend: tuple[Store, dict[str, object]],
) -> None:
    store, _ = backend
    assert store.head() is None
    assert store.state() is None
    assert store.block_at(0) is None
    assert store.cursor(BLOCKS_CURSOR) is None
    assert store.final_height() is None
    assert list(store.blocks(0, 10)) == []


def test_appended_blocks_are_read_back_with_state_locations_and_cursor(
    backend: tuple[Store, dict[str, object]],
) -> None:
    store, _ = backend
    factory = ChainFactory()
    factory.seal_many(4, 7)
    verified = _fill(store, factory)
    head = store.head()
    assert head is not None
    assert head.height == 4
    assert head.block_hash == factory.blocks[-1].block_hash
    assert head.tree_size == 29
    assert head.sealed_at == factory.blocks[-1].header.sealed_at
    stored = store.block_at(4)
    assert stored is not None
    assert stored.raw == block_to_json(factory.blocks[-1])
    state = store.state()
    assert state is not None
    assert state.head_hash == factory.state.head_hash
    assert [b.height for b in store.blocks(1, 3)] == [1, 2, 3]
    assert store.cursor(BLOCKS_CURSOR) == 4
    event = factory.blocks[2].events[3]
    location = store.locate(event["source"], event["id"])
    assert location is not None
    assert (location.height, location.leaf_index) == (2, 1 + 7 + 3)
    assert store.locate("urn:nowhere", "nothing") is None
    keys = {(event["source"], event["id"]), ("urn:nowhere", "nothing")}
    assert store.sealed_among(keys) == {(event["source"], event["id"])}
    assert verified[-1].state.head.tree_size == 29


def test_proofs_from_stored_subtrees_verify(
    backend: tuple[Store, dict[str, object]],
) -> None:
    store, _ = backend
    factory = ChainFactory()
    factory.seal_many(5, 6)
    verified = _fill(store, factory)
    leaves = [leaf for item in verified for leaf in item.leaf_hashes]
    size = len(leaves)
    root = root_at(store, size)
    assert root.hex() == factory.blocks[-1].header.log_root
    for index in (0, 5, 17, size - 1):
        verify_inclusion(leaves[index], index, size, inclusion_proof_at(store, index, size), root)
    first = factory.blocks[2].header.tree_size
    proof = consistency_proof_at(store, first, size)
    verify_consistency(first, size, root_at(store, first), root, proof)
    with pytest.raises(KeyError):
        store.subtree_hashes([(0, size + 5)])


def test_proofs_over_stored_levels_equal_the_proofs_from_every_leaf(
    backend: tuple[Store, dict[str, object]],
) -> None:
    """Enough leaves (601) for nodes at and above the stored level, and sizes that cut the
    right edge inside a run of recomputed leaves, on a block boundary, and on a power of 2."""
    store, _ = backend
    factory = ChainFactory()
    factory.seal_many(5, 120)
    verified = _fill(store, factory)
    leaves = [leaf for item in verified for leaf in item.leaf_hashes]
    for size in (1, 2, 121, 255, 256, 257, 361, 511, 512, 513, 600, 601):
        assert root_at(store, size) == root(leaves[:size])
        for index in {0, size // 3, size // 2, size - 1}:
            assert inclusion_proof_at(store, index, size) == inclusion_proof(leaves[:size], index)
        for first in {1, size // 2 or 1, 241, 256}:
            if first <= size:
                expected = consistency_proof(leaves[:size], first)
                assert consistency_proof_at(store, first, size) == expected
    assert store.subtree_hashes([(0, 600), (9, 0), (3, 70)]) == [
        leaves[600],
        root(leaves[:512]),
        root(leaves[560:568]),
    ]
    with pytest.raises(KeyError):
        store.subtree_hashes([(8, 2)])  # leaves 512..767: not all sealed yet


def test_a_block_already_stored_cannot_be_appended_twice(
    backend: tuple[Store, dict[str, object]],
) -> None:
    store, _ = backend
    factory = ChainFactory()
    factory.seal_many(1, 3)
    verified = _fill(store, factory)
    with pytest.raises((IntegrityError, DuplicateBlockError)):
        store.append(verified[1], raw=block_to_json(verified[1].block), offset=9)
    assert store.cursor(BLOCKS_CURSOR) == 1  # the failed append left nothing behind


def test_our_attestation_is_stored_with_its_block(
    backend: tuple[Store, dict[str, object]],
) -> None:
    store, _ = backend
    factory = ChainFactory()
    factory.seal_many(1, 3)
    verified = _verified_chain(factory)
    ours = [sign_attestation(item.block.header, factory.keys["validator-1"]) for item in verified]
    store.append(verified[0], raw=block_to_json(verified[0].block), offset=0)
    store.append(verified[1], raw=block_to_json(verified[1].block), offset=1, attestation=ours[1])
    assert store.attestations_at(1) == [ours[1]]
    assert store.attestations_at(0) == []
    assert not store.add_attestation(ours[1], offset=None)
    with pytest.raises((IntegrityError, DuplicateBlockError)):
        store.append(
            verified[0], raw=block_to_json(verified[0].block), offset=2, attestation=ours[0]
        )
    assert store.attestations_at(0) == []  # the failed append stored nothing


def _filled_with_two_attestations_of(
    store: Store, *, height: int
) -> tuple[ChainFactory, Attestation, Attestation]:
    """A store holding a chain of 3 blocks, and two validators' attestations of `height`."""
    factory = ChainFactory()
    factory.seal_many(2, 2)
    _fill(store, factory)
    header = factory.blocks[height].header
    one = sign_attestation(header, factory.keys["validator-1"])
    two = sign_attestation(header, factory.keys["validator-2"])
    return factory, one, two


def test_attestations_finality_and_refusals(
    backend: tuple[Store, dict[str, object]],
) -> None:
    store, _ = backend
    _, one, two = _filled_with_two_attestations_of(store, height=1)
    assert store.add_attestation(one, offset=0)
    assert not store.add_attestation(one, offset=1)
    assert store.add_attestation(two, offset=None)
    assert store.attestations_at(1) == sorted([one, two], key=lambda a: a.validator)
    assert store.attestations_at(2) == []
    assert store.cursor(ATTESTATIONS_CURSOR) == 1
    store.mark_final(0)
    store.mark_final(1)
    assert store.final_height() == 1
    assert store.block_at(1) is not None
    refusal = Refusal(reason="BlockSignatureError", height=3, raw=b"{bad", evidence={"a": 1})
    store.add_refusal(refusal, offset=7)
    equivocation = Refusal(
        reason="equivocation", height=1, raw=b"{x}", evidence={"b": [1]}, conflicting=b"{y}"
    )
    store.add_refusal(equivocation, offset=8)
    assert store.refusals() == [equivocation, refusal]
    assert store.cursor(BLOCKS_CURSOR) == 8


def test_an_attestation_completing_the_quorum_marks_its_height_final_with_it(
    backend: tuple[Store, dict[str, object]],
) -> None:
    store, _ = backend
    factory, one, two = _filled_with_two_attestations_of(store, height=2)
    header = factory.blocks[2].header
    assert store.add_attestation(one, offset=4)
    assert store.final_height() is None
    assert store.add_attestation(two, offset=5, final=True)
    assert store.final_height() == 2
    assert store.attestations_at(2) == sorted([one, two], key=lambda a: a.validator)
    assert store.cursor(ATTESTATIONS_CURSOR) == 5
    # A copy marked final again changes nothing and is not stored twice.
    assert not store.add_attestation(two, offset=6, final=True)
    assert store.final_height() == 2
    assert len(store.attestations_at(2)) == 2
    assert store.cursor(ATTESTATIONS_CURSOR) == 6
    # An attestation of a height without a stored block marks nothing final.
    early = sign_attestation(header.model_copy(update={"height": 9}), factory.keys["validator-3"])
    assert store.add_attestation(early, offset=7, final=True)
    assert store.final_height() == 2


@pytest.mark.parametrize("kind", DURABLE_PARAMS)
def test_everything_survives_a_reopen(kind: str, tmp_path: Path) -> None:
    factory = ChainFactory()
    factory.seal_many(2, 3)
    with sql_database(kind, tmp_path) as (database, args):
        migrate_chain_store(database)
        _fill(SqlChainStore(database=database), factory)
        database.close()
        with reopen(args) as again_database:
            again = SqlChainStore(database=again_database)
            state = again.state()
            assert state is not None
            assert state.head_hash == factory.blocks[-1].block_hash
            assert again.cursor(BLOCKS_CURSOR) == 2


@pytest.mark.parametrize("kind", DURABLE_PARAMS)
def test_the_migrations_create_the_tables_the_queries_use(kind: str, tmp_path: Path) -> None:
    with sql_database(kind, tmp_path) as (database, _):
        assert migrate_chain_store(database) == "validator_0004"
        inspector = inspect(database.engine)
        for table in [*metadata.sorted_tables, witnessed_table]:
            columns = {column["name"] for column in inspector.get_columns(table.name)}
            assert columns == {column.name for column in table.columns}, table.name
            indexes = {index["name"] for index in inspector.get_indexes(table.name)}
            assert indexes == {index.name for index in table.indexes}, table.name


@pytest.mark.parametrize("kind", DURABLE_PARAMS)
def test_a_block_adds_one_leaf_row_and_only_its_upper_nodes(kind: str, tmp_path: Path) -> None:
    factory = ChainFactory()
    factory.seal_many(2, 300)  # 601 leaves
    with sql_database(kind, tmp_path) as (database, _):
        migrate_chain_store(database)
        _fill(SqlChainStore(database=database), factory)
        with database.read() as tx:
            counts = {
                table.name: tx.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (leaves_table, nodes_table, events_table)
            }
            levels = sorted(tx.execute(select(nodes_table.c.level, nodes_table.c.idx)).all())
    assert counts == {"validator_leaves": 3, "validator_nodes": 3, "validator_events": 601}
    assert [tuple(row) for row in levels] == [(8, 0), (8, 1), (9, 0)]
