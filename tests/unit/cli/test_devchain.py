"""`careledger init`: the dev keys and genesis are written once, kept, and checked."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from careledger.devchain import (
    DEV_CHAIN_ID,
    archive_previous_run,
    ensure_dev_chain,
    generate_key,
)
from shared.crypto import SigningKey
from shared.genesis import DEV_KEY_NAMES
from shared.keystore import (
    KeyStoreError,
    read_genesis_file,
    read_key_file,
    write_genesis_file,
    write_key_file,
)


def test_first_run_writes_every_key_and_a_verifying_genesis(tmp_path: Path) -> None:
    chain = ensure_dev_chain(tmp_path)
    assert chain.created_keys == DEV_KEY_NAMES
    assert chain.created_genesis
    assert chain.chain_id == DEV_CHAIN_ID
    event, config = read_genesis_file(tmp_path / "genesis.json")
    assert event["signer"] == chain.dids["admin"] == config.admin
    assert config.sealer == chain.dids["sealer"]
    for name in DEV_KEY_NAMES:
        path = tmp_path / "keys" / f"{name}.json"
        assert read_key_file(path).did == chain.dids[name]
        assert path.stat().st_mode & 0o777 == 0o600


def test_second_run_keeps_everything(tmp_path: Path) -> None:
    first = ensure_dev_chain(tmp_path)
    genesis = (tmp_path / "genesis.json").read_bytes()
    second = ensure_dev_chain(tmp_path)
    assert second.created_keys == ()
    assert not second.created_genesis
    assert second.dids == first.dids
    assert (tmp_path / "genesis.json").read_bytes() == genesis


def test_a_missing_key_is_recreated_but_then_genesis_no_longer_matches(tmp_path: Path) -> None:
    ensure_dev_chain(tmp_path)
    (tmp_path / "keys" / "validator-2.json").unlink()
    with pytest.raises(KeyStoreError, match="does not match the keys"):
        ensure_dev_chain(tmp_path)


def test_keygen_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    key = generate_key(tmp_path, "clinic-7")
    with pytest.raises(KeyStoreError, match="already exists"):
        generate_key(tmp_path, "clinic-7")
    replaced = generate_key(tmp_path, "clinic-7", overwrite=True)
    assert replaced.did != key.did
    assert read_key_file(tmp_path / "keys" / "clinic-7.json").did == replaced.did


def test_key_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(KeyStoreError, match=r"cannot read key file .*nope\.json"):
        read_key_file(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"did": "did:key:z6Mkx", "private_key": "AAAA"}')
    with pytest.raises(KeyStoreError, match=r"invalid key file .*broken\.json"):
        read_key_file(broken)


def test_genesis_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    with pytest.raises(KeyStoreError, match="cannot read genesis file"):
        read_genesis_file(path)
    path.write_text("{not json")
    with pytest.raises(KeyStoreError, match="is not JSON"):
        read_genesis_file(path)
    ensure_dev_chain(tmp_path / "chain")
    event, _ = read_genesis_file(tmp_path / "chain" / "genesis.json")
    event["data"]["quorum"] = 1
    write_genesis_file(path, event)
    with pytest.raises(KeyStoreError, match="does not verify"):
        read_genesis_file(path)


def test_written_key_files_have_exactly_the_brief_members(tmp_path: Path) -> None:
    key = SigningKey.from_seed(bytes(range(32)))
    write_key_file(tmp_path / "k.json", key)
    assert json.loads((tmp_path / "k.json").read_text()) == {
        "did": key.did,
        "private_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
    }


def test_archiving_moves_stores_and_genesis_but_keeps_keys(tmp_path: Path) -> None:
    first = ensure_dev_chain(tmp_path)
    genesis = (tmp_path / "genesis.json").read_text()
    (tmp_path / "sealer.db").write_bytes(b"chain")
    (tmp_path / "sealer.db-wal").write_bytes(b"wal")
    moment = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
    archive = archive_previous_run(tmp_path, now=moment)
    assert archive == tmp_path / "previous" / "20261124T100000Z"
    assert (archive / "sealer.db").read_bytes() == b"chain"
    assert (archive / "sealer.db-wal").exists()
    assert (archive / "genesis.json").read_text() == genesis
    assert not (tmp_path / "genesis.json").exists()
    second = ensure_dev_chain(tmp_path)
    assert second.created_genesis
    assert second.created_keys == ()
    assert second.dids == first.dids


def test_nothing_to_archive_on_a_first_run(tmp_path: Path) -> None:
    ensure_dev_chain(tmp_path)
    assert archive_previous_run(tmp_path, now=datetime.now(UTC)) is None
    assert (tmp_path / "genesis.json").exists()


def test_a_new_genesis_names_the_chain_id_asked_for(tmp_path: Path) -> None:
    chain = ensure_dev_chain(tmp_path, chain_id="tenant-a")
    assert chain.chain_id == "tenant-a"
    assert read_genesis_file(tmp_path / "genesis.json")[1].chain_id == "tenant-a"
    # Kept when asked again, and when no id is asked for.
    assert ensure_dev_chain(tmp_path, chain_id="tenant-a").chain_id == "tenant-a"
    assert ensure_dev_chain(tmp_path).chain_id == "tenant-a"


def test_a_kept_genesis_of_another_chain_is_refused(tmp_path: Path) -> None:
    ensure_dev_chain(tmp_path)
    genesis = (tmp_path / "genesis.json").read_bytes()
    with pytest.raises(KeyStoreError, match="genesis of chain 'careledger-dev', not 'tenant-b'"):
        ensure_dev_chain(tmp_path, chain_id="tenant-b")
    assert (tmp_path / "genesis.json").read_bytes() == genesis
