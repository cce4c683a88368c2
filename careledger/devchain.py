"""`careledger init`: the dev key files and the signed genesis under the data directory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared.crypto import SigningKey
from shared.envelope import uuid7
from shared.genesis import DEV_KEY_NAMES, build_genesis_event, dev_genesis_config
from shared.keystore import (
    KeyStoreError,
    read_genesis_file,
    read_key_file,
    read_pseudonym_key_file,
    write_genesis_file,
    write_key_file,
    write_pseudonym_key_file,
)
from shared.pseudonym import PSEUDONYM_KEY_BYTES
from shared.runtime.settings import PSEUDONYM_KEY_FILE

DEV_CHAIN_ID = "careledger-dev"


@dataclass(frozen=True, slots=True)
class DevChain:
    """What `init` found or wrote."""

    data_dir: Path
    dids: dict[str, str]
    created_keys: tuple[str, ...]
    created_genesis: bool
    chain_id: str
    created_pseudonym_key: bool = False


def key_path(data_dir: Path, name: str) -> Path:
    return data_dir / "keys" / f"{name}.json"


def generate_key(data_dir: Path, name: str, *, overwrite: bool = False) -> SigningKey:
    """A fresh Ed25519 key from the OS's CSPRNG, written as data/keys/<name>.json."""
    key = SigningKey.from_seed(os.urandom(32))
    write_key_file(key_path(data_dir, name), key, overwrite=overwrite)
    return key


def pseudonym_key_path(data_dir: Path) -> Path:
    """data/keys/pseudonym.key: the secret key of patient pseudonyms (identity, records)."""
    return data_dir / "keys" / PSEUDONYM_KEY_FILE


def ensure_pseudonym_key(data_dir: Path) -> bool:
    """Write a fresh pseudonym key if there is none; return whether one was written.

    An existing key is only read (to check it), never replaced: the pseudonyms already on
    the chain were computed with it.
    """
    path = pseudonym_key_path(data_dir)
    if path.exists():
        read_pseudonym_key_file(path)
        return False
    write_pseudonym_key_file(path, os.urandom(PSEUDONYM_KEY_BYTES))
    return True


def ensure_dev_chain(data_dir: Path, *, chain_id: str | None = None) -> DevChain:
    """Create the missing dev keys and, if absent, the genesis of `chain_id` (default
    `DEV_CHAIN_ID`); idempotent.

    An existing genesis must name the keys on disk: a genesis left over from other keys is an
    error (the chain would be unverifiable), not something to paper over. So is one of
    another chain than the `chain_id` asked for (two chains on one cluster are told apart
    by their ids, docs/chains.md).
    """
    created: list[str] = []
    keys: dict[str, SigningKey] = {}
    for name in DEV_KEY_NAMES:
        path = key_path(data_dir, name)
        if path.exists():
            keys[name] = read_key_file(path)
        else:
            keys[name] = generate_key(data_dir, name)
            created.append(name)
    dids = {name: key.did for name, key in keys.items()}
    pseudonym_created = ensure_pseudonym_key(data_dir)
    genesis_path = data_dir / "genesis.json"
    if genesis_path.exists():
        _, config = read_genesis_file(genesis_path)
        if chain_id is not None and config.chain_id != chain_id:
            raise KeyStoreError(
                f"{genesis_path} is the genesis of chain {config.chain_id!r}, not {chain_id!r}; "
                "use another data directory for another chain"
            )
        expected = dev_genesis_config(
            chain_id=config.chain_id, created_at=config.created_at, dids=dids
        )
        if config != expected:
            raise KeyStoreError(
                f"{genesis_path} does not match the keys in {data_dir / 'keys'}; "
                "remove the data directory (make clean-data) to start a new dev chain"
            )
        return DevChain(data_dir, dids, tuple(created), False, config.chain_id, pseudonym_created)
    now = datetime.now(UTC)
    chain_id = DEV_CHAIN_ID if chain_id is None else chain_id
    config = dev_genesis_config(
        chain_id=chain_id, created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"), dids=dids
    )
    event = build_genesis_event(
        config, keys["admin"], event_id=uuid7(int(now.timestamp() * 1000), os.urandom(10))
    )
    write_genesis_file(genesis_path, event)
    return DevChain(data_dir, dids, tuple(created), True, chain_id, pseudonym_created)


def archive_previous_run(data_dir: Path, *, now: datetime) -> Path | None:
    """Move the stores and genesis of an earlier run to `previous/<time>/`; return where.

    The embedded broker keeps topics in memory: a new broker starts every partition at
    offset 0 again, which the stored chain (offsets only ever grow) cannot continue. The
    keys stay; the next `ensure_dev_chain` writes a new genesis, so the new chain is a
    different chain, and the old one stays verifiable where it was moved.
    """
    stores = sorted(data_dir.glob("*.db*"))
    genesis = data_dir / "genesis.json"
    if not stores:
        return None
    target = data_dir / "previous" / now.strftime("%Y%m%dT%H%M%SZ")
    target.mkdir(parents=True, exist_ok=False)
    for path in [*stores, *([genesis] if genesis.exists() else [])]:
        path.rename(target / path.name)
    return target
