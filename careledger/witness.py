"""`careledger witness`: an independent C2SP witness of a CareLedger chain, run against any
validator URL, keeping its own state in a directory (ADR 0015, docs/interop.md).

One round: read the pinned genesis (pinned from the validator's `/v1/genesis` on first use,
or from a file), fetch `/v1/checkpoint`, check a quorum of the genesis validators' note
signatures, fetch a consistency proof from the size last cosigned (`/v1/proofs/consistency`),
apply `shared.witness.advance` (which refuses a rollback or a fork), store the new state and
emit a tlog-cosignature (cosignature/v1) of the checkpoint. The state directory holds:
`genesis.json` (pinned), `witness-key.json` (the witness's Ed25519 key, made on first use),
`state.json` (origin, size, root hash of the last cosigned checkpoint) and `checkpoint`
(that checkpoint note with this witness's cosignature appended).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from shared.checkpoint import (
    COSIGNATURE_V1,
    Checkpoint,
    cosign,
    default_origin,
    verify_checkpoint_note,
    vkey,
)
from shared.crypto import SigningKey
from shared.errors import CareLedgerError
from shared.genesis import GenesisConfig, verify_genesis_event
from shared.keystore import (
    read_genesis_file,
    read_key_file,
    write_genesis_file,
    write_key_file,
    write_text_file,
)
from shared.witness import advance

GENESIS_FILE = "genesis.json"
KEY_FILE = "witness-key.json"
STATE_FILE = "state.json"
CHECKPOINT_FILE = "checkpoint"


class WitnessFetchError(CareLedgerError):
    """The validator did not answer as its API promises."""


class WitnessStateError(CareLedgerError):
    """The state directory does not hold what this witness wrote there."""


@dataclass(frozen=True, slots=True)
class WitnessRound:
    """What one round did: from the size held before to the size cosigned now."""

    origin: str
    old_size: int
    tree_size: int
    root_hash: str
    cosignature: str
    checkpoint: str
    witness_key: str


def pinned_genesis(
    state_dir: Path, *, validator: str, genesis_file: Path | None, client: httpx.Client
) -> GenesisConfig:
    """The genesis this witness trusts: the one pinned in `state_dir`; on first use the one
    in `genesis_file`, or else the validator's `/v1/genesis` (trust on first use)."""
    pinned = state_dir / GENESIS_FILE
    if pinned.exists():
        event, config = read_genesis_file(pinned)
        if genesis_file is not None and read_genesis_file(genesis_file)[0] != event:
            raise WitnessStateError(f"{genesis_file} is not the genesis pinned in {pinned}")
        return config
    if genesis_file is not None:
        event, config = read_genesis_file(genesis_file)
    else:
        event = _get_json(client, f"{validator}/v1/genesis")
        config = verify_genesis_event(event)
    write_genesis_file(pinned, event)
    return config


def witness_key(state_dir: Path) -> SigningKey:
    """The witness's own key, made on first use."""
    path = state_dir / KEY_FILE
    if not path.exists():
        write_key_file(path, SigningKey.from_seed(os.urandom(32)))
    return read_key_file(path)


def held_checkpoint(state_dir: Path, origin: str) -> Checkpoint | None:
    """The checkpoint last cosigned (None before the first round)."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        held = Checkpoint(state["origin"], state["tree_size"], bytes.fromhex(state["root_hash"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WitnessStateError(f"{path} is not a witness state: {exc}") from exc
    if held.origin != origin:
        raise WitnessStateError(f"{path} holds the log {held.origin}, not {origin}")
    return held


def witness_round(
    validator: str,
    *,
    state_dir: Path,
    now: datetime,
    client: httpx.Client,
    genesis_file: Path | None = None,
    origin: str | None = None,
    key_name: str | None = None,
) -> WitnessRound:
    """One round against `validator`; raises a `VerificationError` (bad note, too few
    signatures), a `WitnessRefusalError` (rollback, fork, bad proof) or a fetch error, and
    then leaves the state as it was."""
    base = validator.rstrip("/")
    config = pinned_genesis(state_dir, validator=base, genesis_file=genesis_file, client=client)
    origin = origin or default_origin(config.chain_id)
    key = witness_key(state_dir)
    name = key_name or key.did
    text = _get(client, f"{base}/v1/checkpoint").text
    checkpoint, note = verify_checkpoint_note(
        text, origin=origin, validators=config.validators, quorum=config.quorum
    )
    held = held_checkpoint(state_dir, origin)
    old_size = 0 if held is None else held.size
    proof: list[bytes] = []
    if 0 < old_size < checkpoint.size:
        answer = _get_json(
            client,
            f"{base}/v1/proofs/consistency",
            params={"first": old_size, "second": checkpoint.size},
        )
        try:
            proof = [bytes.fromhex(node) for node in answer["proof"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise WitnessFetchError(f"{base} answered a malformed consistency proof") from exc
    new = advance(held, checkpoint, old_size=old_size, proof=proof)
    cosignature = cosign(new, key, name=name, timestamp=int(now.timestamp()))
    cosigned = note.with_signatures([cosignature]).text()
    write_text_file(state_dir / CHECKPOINT_FILE, cosigned)
    state = {"origin": new.origin, "tree_size": new.size, "root_hash": new.root_hash.hex()}
    write_text_file(state_dir / STATE_FILE, json.dumps(state) + "\n")
    return WitnessRound(
        origin=new.origin,
        old_size=old_size,
        tree_size=new.size,
        root_hash=new.root_hash.hex(),
        cosignature=cosignature.line().rstrip("\n"),
        checkpoint=cosigned,
        witness_key=vkey(key.did, COSIGNATURE_V1, name=name),
    )


def _get(client: httpx.Client, url: str, **kwargs: Any) -> httpx.Response:
    try:
        response = client.get(url, **kwargs)
    except httpx.HTTPError as exc:
        raise WitnessFetchError(f"{url}: {exc}") from exc
    if response.status_code != 200:
        raise WitnessFetchError(f"{url} answered HTTP {response.status_code}: {response.text}")
    return response


def _get_json(client: httpx.Client, url: str, **kwargs: Any) -> dict[str, Any]:
    try:
        answer = _get(client, url, **kwargs).json()
    except ValueError as exc:
        raise WitnessFetchError(f"{url} did not answer JSON") from exc
    if not isinstance(answer, dict):
        raise WitnessFetchError(f"{url} did not answer a JSON object")
    return answer
