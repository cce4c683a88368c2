"""The validator's start check (`services.validator.start_check`): each kind of damage to a
stored chain is found at start, with its height; an untouched chain passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete, update

from services.validator.adapters.memory import MemoryChainStore
from services.validator.adapters.sql import (
    SqlChainStore,
    attestations_table,
    blocks_table,
    check_store_file,
)
from services.validator.errors import StoreIntegrityError
from services.validator.start_check import check_stored_chain
from shared.attestation import Attestation, sign_attestation
from shared.block import block_to_json
from shared.store import open_database
from tests.unit.validator.conftest import Rig


def _feed(rig: Rig) -> None:
    rig.factory.seal_many(4, 3)
    for offset, block in enumerate(rig.factory.blocks):
        rig.validator.receive_block(block_to_json(block), offset=offset)


def _fails_at(
    rig: Rig, height: int, message: str, *, tail: int = 100, own: str | None = None
) -> None:
    with pytest.raises(StoreIntegrityError, match=message) as caught:
        check_stored_chain(rig.store, rig.factory.config, tail=tail, own=own)
    assert caught.value.context["height"] == height


def test_an_untouched_chain_passes_and_says_what_it_checked(rig: Rig) -> None:
    _feed(rig)
    done = check_stored_chain(rig.store, rig.factory.config)
    assert done.blocks == len(rig.factory.blocks)
    assert done.attestations == done.signatures_checked >= len(rig.factory.blocks) - 1
    assert check_stored_chain(rig.store, rig.factory.config, tail=1).signatures_checked <= 1


def test_an_empty_store_passes(rig: Rig) -> None:
    assert check_stored_chain(rig.store, rig.factory.config).blocks == 0


def test_a_header_altered_without_the_sealer_is_found(rig: Rig) -> None:
    _feed(rig)
    value = json.loads(block_to_json(rig.factory.blocks[2]))
    value["header"]["sealed_at"] = "2026-01-01T00:00:09.000000Z"
    rig.set_stored_raw(2, json.dumps(value).encode())
    _fails_at(rig, 2, "not the block the sealer signed")


def test_garbage_in_place_of_a_block_is_found(rig: Rig) -> None:
    _feed(rig)
    rig.set_stored_raw(1, b"{not json")
    _fails_at(rig, 1, "not the block the sealer signed")


def test_a_block_re_signed_with_other_content_breaks_the_next_link(rig: Rig) -> None:
    _feed(rig)
    other = rig.factory.resign(rig.factory.blocks[1], sealed_at="2026-01-01T00:00:01.500000Z")
    rig.set_stored_raw(1, block_to_json(other))
    _fails_at(rig, 1, "columns are not its header's")


def test_a_block_filed_under_another_height_is_found(rig: Rig) -> None:
    _feed(rig)
    rig.set_stored_raw(2, block_to_json(rig.factory.blocks[3]))
    _fails_at(rig, 2, "filed under another height")


def test_an_event_altered_in_a_tail_block_is_found(rig: Rig) -> None:
    _feed(rig)
    value = json.loads(block_to_json(rig.factory.blocks[3]))
    value["events"][1]["data"]["n"] = 999
    # The header (and so the hash and signature) is the sealer's; only an event changed.
    rig.set_stored_raw(3, json.dumps(value).encode())
    _fails_at(rig, 3, "not the leaf the store proves")


def test_a_block_deleted_in_the_middle_is_a_gap(rig: Rig) -> None:
    _feed(rig)
    store = rig.store
    if isinstance(store, SqlChainStore):
        with store._database.transaction() as tx:
            tx.execute(delete(blocks_table).where(blocks_table.c.height == 2))
    else:
        assert isinstance(store, MemoryChainStore)
        del store._blocks[2]
    _fails_at(rig, 2, "gap")


def test_an_altered_attestation_is_found(rig: Rig) -> None:
    _feed(rig)
    store = rig.store
    (attestation,) = store.attestations_at(2)[:1]
    forged = attestation.model_copy(update={"block_hash": "ab" * 32})
    _replace_attestation(store, attestation, forged)
    _fails_at(rig, 2, "attestation does not verify")  # in the tail: its signature, first
    own = rig.factory.keys["validator-1"].did
    _fails_at(rig, 2, "does not name the stored block", tail=0, own=own)
    check_stored_chain(store, rig.factory.config, tail=0)  # another's: a conflict's evidence


def test_another_validators_attestation_of_another_block_is_evidence_not_damage(
    rig: Rig,
) -> None:
    _feed(rig)
    other = rig.factory.resign(rig.factory.blocks[2], sealed_at="2026-01-01T00:00:02.500000Z")
    conflicting = sign_attestation(other.header, rig.factory.keys["validator-2"])
    rig.store.add_attestation(conflicting, offset=None)
    assert conflicting in rig.store.attestations_at(2)
    check_stored_chain(rig.store, rig.factory.config)
    own = sign_attestation(other.header, rig.factory.keys["validator-1"])
    rig.store.add_attestation(own, offset=None)
    _fails_at(rig, 2, "does not name the stored block", own=rig.factory.keys["validator-1"].did)


def test_an_attestation_with_another_signature_is_found_in_the_tail_only(rig: Rig) -> None:
    _feed(rig)
    store = rig.store
    (attestation,) = store.attestations_at(1)[:1]
    other = store.attestations_at(2)[0].signature
    _replace_attestation(store, attestation, attestation.model_copy(update={"signature": other}))
    _fails_at(rig, 1, "attestation does not verify")
    last = len(rig.factory.blocks) - 1
    check_stored_chain(store, rig.factory.config, tail=last - 1)  # height 1 outside the tail


def _replace_attestation(store: object, old: Attestation, new: Attestation) -> None:
    if isinstance(store, SqlChainStore):
        table = attestations_table
        key = (table.c.height == old.height) & (table.c.validator == old.validator)
        with store._database.transaction() as tx:
            tx.execute(update(table).where(key).values(raw=new.model_dump_json()))
    else:
        assert isinstance(store, MemoryChainStore)
        found = store._attestations[old.height]
        key = next(k for k, v in found.items() if v == old)
        found[key] = new


def test_a_damaged_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "validator.db"
    database = open_database(f"sqlite:///{path}")
    with database.transaction() as tx:
        tx.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        for n in range(2000):
            tx.exec_driver_sql("INSERT INTO t (v) VALUES (?)", (f"row {n} " * 10,))
    check_store_file(database)
    database.close()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (tmp_path / "validator.db-wal").unlink(missing_ok=True)
    damaged = open_database(f"sqlite:///{path}")
    with pytest.raises(StoreIntegrityError, match="the store file is damaged"):
        check_store_file(damaged)
    damaged.close()
    path.write_bytes(b"this is not a database at all" * 200)
    garbage = open_database(f"sqlite:///{path}")
    with pytest.raises(
        StoreIntegrityError, match="the store file is damaged: file is not a database"
    ):
        check_store_file(garbage)
    garbage.close()
