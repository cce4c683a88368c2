"""Crypto-shredding on SQLite leaves no destroyed key in the store's files: the write-ahead log
keeps the frames written before the deletion until a checkpoint, so the records store
checkpoints and truncates it after every shred (`forget_deleted`)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from services.records.adapters.sql import SqlRecordsStore, migrate_records_store
from services.records.core.model import Erasure, WrappedKey
from shared.events.records import ActorRole
from shared.store import Database, open_database
from tests.integration.records.test_store_contract import AUTHOR, C1, GRANTEE, R1, T0, head, version
from tests.security.privacy.canary import Canary, find_leaks

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def store_files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.glob("records.db*")}


def shredded_store(
    directory: Path, *, busy_timeout: float = 5.0
) -> tuple[SqlRecordsStore, Database, list[Canary]]:
    """A store with one record (custody key, salt, ciphertext, two wrapped keys), shredded."""
    database = open_database("sqlite:///records.db", data_dir=directory, busy_timeout=busy_timeout)
    migrate_records_store(database)
    store = SqlRecordsStore(database=database)
    secrets = {
        name: os.urandom(size)
        for name, size in [("custody", 80), ("salt", 32), ("ct", 1000), ("k1", 80), ("k2", 80)]
    }
    record = replace(head(), custody_key=secrets["custody"], salt=secrets["salt"])
    with database.transaction() as tx:
        store.lock(tx)
        store.add_record(tx, record, version(ciphertext=secrets["ct"]))
        store.add_wraps(
            tx, [WrappedKey(R1, AUTHOR, secrets["k1"]), WrappedKey(R1, GRANTEE, secrets["k2"], C1)]
        )
    with database.transaction() as tx:
        store.lock(tx)
        store.shred(
            tx, R1, Erasure(at=T0 + timedelta(days=1), by=ActorRole.PATIENT, event_id="ev-erase")
        )
    return store, database, [Canary(name, value) for name, value in secrets.items()]


def test_the_wal_keeps_shredded_keys_until_the_store_forgets_them(tmp_path: Path) -> None:
    store, database, secrets = shredded_store(tmp_path)
    try:
        # Without the purge, the shredded keys are still readable in the WAL (the attack).
        before = {leak.kind for leak in find_leaks(store_files(tmp_path), secrets)}
        assert before == {canary.kind for canary in secrets}, before
        assert store.forget_deleted() is True
        assert find_leaks(store_files(tmp_path), secrets) == []
        assert (tmp_path / "records.db-wal").stat().st_size == 0
        erased = store.head(R1)  # the store still works
        assert erased is not None
        assert erased.erased
    finally:
        database.close()


def test_a_reader_holding_the_wal_delays_the_purge_and_says_so(tmp_path: Path) -> None:
    store, database, secrets = shredded_store(tmp_path, busy_timeout=0.3)
    try:
        with database.read() as reader:
            store.head(R1, reader)
            assert store.forget_deleted() is False
        assert store.forget_deleted() is True
        assert find_leaks(store_files(tmp_path), secrets) == []
    finally:
        database.close()
