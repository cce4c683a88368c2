"""A validator re-verifies its own store at start: an altered store is detected."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from sqlalchemy import delete, select, update

from services.validator.adapters.kafka import KafkaAttestationPublisher, ValidationLoop
from services.validator.adapters.memory import MemoryChainStore
from services.validator.adapters.sql import (
    SqlChainStore,
    events_table,
    leaves_table,
    nodes_table,
)
from services.validator.errors import StoreIntegrityError
from services.validator.queries import ChainQueries
from shared.block import block_to_json
from shared.kafka import KafkaSettings
from shared.merkle.leaf_backed import STORED_LEVEL
from shared.runtime.component import NotReadyError
from tests.unit.validator.conftest import Rig


def _feed(rig: Rig) -> None:
    rig.factory.seal_many(3, 4)
    for offset, block in enumerate(rig.factory.blocks):
        rig.validator.receive_block(block_to_json(block), offset=offset)


def test_an_untouched_store_passes_its_audit(rig: Rig) -> None:
    _feed(rig)
    rig.restarted().audit()


def test_a_block_altered_in_the_store_fails_the_audit(rig: Rig) -> None:
    _feed(rig)
    value = json.loads(block_to_json(rig.factory.blocks[2]))
    value["events"][0]["data"]["n"] = 12345
    rig.set_stored_raw(2, json.dumps(value).encode())
    validator = rig.restarted()
    with pytest.raises(StoreIntegrityError) as caught:
        validator.audit()
    assert caught.value.context["height"] == 2
    fault = validator.fault
    assert fault is not None
    assert fault["reason"] == "store_tampered"
    assert fault["height"] == 2


def test_the_loop_serves_the_evidence_but_does_not_run_on_an_altered_store(rig: Rig) -> None:
    _feed(rig)
    other = block_to_json(
        rig.factory.resign(rig.factory.blocks[1], sealed_at="2026-01-01T00:00:01.500000Z")
    )
    rig.set_stored_raw(1, other)
    validator = rig.restarted()
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1")  # never contacted
    loop = ValidationLoop(
        validator=validator,
        store=rig.store,
        publisher=KafkaAttestationPublisher(kafka=kafka, topic="unused"),
        kafka=kafka,
        blocks_topic="unused",
        attestations_topic="unused",
        group_id="careledger-validator-1",
    )
    loop.start()
    try:
        deadline = time.monotonic() + 5
        while "fails its audit" not in _not_ready(loop):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        loop.stop()
    assert validator.fault is not None


def _feed_big(rig: Rig) -> None:
    """Enough leaves (301) that the store holds a node at its stored level."""
    rig.factory.seal_many(3, 100)
    for offset, block in enumerate(rig.factory.blocks):
        rig.validator.receive_block(block_to_json(block), offset=offset)


def _flip(value: bytes, at: int) -> bytes:
    return value[:at] + bytes([value[at] ^ 1]) + value[at + 1 :]


def _tamper_leaf(store: SqlChainStore | MemoryChainStore, first_leaf: int, at: int) -> None:
    if isinstance(store, SqlChainStore):
        with store._database.transaction() as tx:
            row = leaves_table.c.first_leaf == first_leaf
            packed = tx.execute(select(leaves_table.c.hashes).where(row)).scalar_one()
            tx.execute(update(leaves_table).where(row).values(hashes=_flip(bytes(packed), at)))
    else:
        rows = store._leaf_rows
        n = [first for first, _ in rows].index(first_leaf)
        rows[n] = (first_leaf, _flip(rows[n][1], at))


def _tamper_node(store: SqlChainStore | MemoryChainStore, level: int, index: int) -> None:
    if isinstance(store, SqlChainStore):
        key = (nodes_table.c.level == level) & (nodes_table.c.idx == index)
        with store._database.transaction() as tx:
            tx.execute(update(nodes_table).where(key).values(hash=b"\x00" * 32))
    else:
        store._upper[(level, index)] = b"\x00" * 32


def _forget_event(store: SqlChainStore | MemoryChainStore, key: tuple[str, str]) -> None:
    if isinstance(store, SqlChainStore):
        row = (events_table.c.source == key[0]) & (events_table.c.event_id == key[1])
        with store._database.transaction() as tx:
            tx.execute(delete(events_table).where(row))
    else:
        del store._events[key]


def _audit_fails_at(rig: Rig, height: int, message: str) -> None:
    validator = rig.restarted()
    with pytest.raises(StoreIntegrityError, match=message) as caught:
        validator.audit()
    assert caught.value.context["height"] == height
    fault = validator.fault
    assert fault is not None
    assert (fault["reason"], fault["height"]) == ("store_tampered", height)


def test_a_big_untouched_store_passes_its_audit(rig: Rig) -> None:
    _feed_big(rig)
    rig.restarted().audit()


@pytest.mark.parametrize("at", [0, 32 * 57 + 5, 32 * 100 - 1])
def test_a_stored_leaf_hash_altered_fails_the_audit(rig: Rig, at: int) -> None:
    _feed_big(rig)
    _tamper_leaf(rig.store, 101, at)  # block 2 holds leaves 101..200
    _audit_fails_at(rig, 2, "subtree hash is not the one")


def test_a_stored_upper_node_altered_fails_the_audit(rig: Rig) -> None:
    _feed_big(rig)
    _tamper_node(rig.store, STORED_LEVEL, 0)  # leaves 0..255: completed by block 3
    _audit_fails_at(rig, 3, "subtree hash is not the one")


def test_a_stored_leaf_row_cut_short_fails_the_audit(rig: Rig) -> None:
    _feed_big(rig)
    store = rig.store
    if isinstance(store, SqlChainStore):
        with store._database.transaction() as tx:
            tx.execute(
                update(leaves_table)
                .where(leaves_table.c.first_leaf == 201)
                .values(hashes=b"\x01" * 32)
            )
    else:
        store._leaf_rows[3] = (201, b"\x01" * 32)
    _audit_fails_at(rig, 3, "subtree hash is missing|is not the one")


def test_an_event_missing_from_the_event_index_fails_the_audit(rig: Rig) -> None:
    _feed(rig)
    event = rig.factory.blocks[2].events[1]
    _forget_event(rig.store, (event["source"], event["id"]))
    _audit_fails_at(rig, 2, "missing from the store's event index")


@pytest.mark.parametrize("leaf_index", [5, 2])  # another event of its block; another block
def test_an_event_index_pointing_elsewhere_serves_no_proof(rig: Rig, leaf_index: int) -> None:
    _feed(rig)
    event = rig.factory.blocks[2].events[1]
    store = rig.store
    if isinstance(store, SqlChainStore):
        row = (events_table.c.source == event["source"]) & (events_table.c.event_id == event["id"])
        with store._database.transaction() as tx:
            tx.execute(update(events_table).where(row).values(leaf_index=leaf_index))
    else:
        key = (event["source"], event["id"])
        store._events[key] = replace(store._events[key], leaf_index=leaf_index)
    queries = ChainQueries(store=store, validator=rig.validator)
    with pytest.raises(StoreIntegrityError, match="does not point at this event"):
        queries.inclusion(event["source"], event["id"], None)


def _not_ready(loop: ValidationLoop) -> str:
    try:
        loop.check()
    except NotReadyError as exc:
        return str(exc)
    return ""
