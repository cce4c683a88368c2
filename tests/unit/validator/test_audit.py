"""A validator re-verifies its own store at start: an altered store is detected."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from sqlalchemy import update

from services.validator.adapters.kafka import KafkaAttestationPublisher, ValidationLoop
from services.validator.adapters.memory import MemoryChainStore
from services.validator.adapters.sql import SqlChainStore, blocks_table
from services.validator.errors import StoreIntegrityError
from shared.block import block_to_json
from shared.kafka import KafkaSettings
from shared.runtime.component import NotReadyError
from tests.unit.validator.conftest import Rig


def _feed(rig: Rig) -> None:
    rig.factory.seal_many(3, 4)
    for offset, block in enumerate(rig.factory.blocks):
        rig.validator.receive_block(block_to_json(block), offset=offset)


def _tamper(rig: Rig, height: int, raw: bytes) -> None:
    store = rig.store
    if isinstance(store, SqlChainStore):
        with store._database.transaction() as tx:
            tx.execute(update(blocks_table).where(blocks_table.c.height == height).values(raw=raw))
    else:
        assert isinstance(store, MemoryChainStore)
        store._blocks[height] = replace(store._blocks[height], raw=raw)


def test_an_untouched_store_passes_its_audit(rig: Rig) -> None:
    _feed(rig)
    rig.restarted().audit()


def test_a_block_altered_in_the_store_fails_the_audit(rig: Rig) -> None:
    _feed(rig)
    value = json.loads(block_to_json(rig.factory.blocks[2]))
    value["events"][0]["data"]["n"] = 12345
    _tamper(rig, 2, json.dumps(value).encode())
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
    _tamper(rig, 1, other)
    validator = rig.restarted()
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1")  # never contacted
    loop = ValidationLoop(
        validator=validator,
        store=rig.store,
        publisher=KafkaAttestationPublisher(kafka=kafka, topic="unused"),
        kafka=kafka,
        blocks_topic="unused",
        attestations_topic="unused",
        client_name="validator-1",
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


def _not_ready(loop: ValidationLoop) -> str:
    try:
        loop.check()
    except NotReadyError as exc:
        return str(exc)
    return ""
