"""`careledger witness` logic (`careledger.witness.witness_round`) against a real validator app
over in-memory stores (FastAPI's TestClient is an httpx client): pinning, advancing, refusing,
and every way its state directory or the validator can be wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tlog_scales.signing import Vkey
from tlog_scales.tlog import Checkpoint as TheirCheckpoint

from careledger.witness import (
    WitnessFetchError,
    WitnessStateError,
    held_checkpoint,
    witness_round,
)
from services.validator.adapters.http import checkpoint_router, validator_router
from services.validator.adapters.memory import MemoryChainStore
from services.validator.adapters.witness_store import MemoryWitnessStore
from services.validator.queries import ChainQueries
from services.validator.service import Validator
from services.validator.witness import CheckpointWitness, WitnessedLog
from shared.attestation import sign_attestation
from shared.block import block_to_json
from shared.checkpoint import QuorumError
from shared.crypto import public_key_from_did
from shared.keystore import write_genesis_file
from shared.runtime.errors import install_error_handlers
from shared.witness import BadConsistencyProofError, ForkError, RollbackError
from tests.unit.core.chainfactory import ChainFactory
from tests.unit.validator.conftest import RecordingPublisher

URL = "http://testserver"
ORIGIN = "careledger/careledger-test"
NOW = datetime.now(UTC)


@dataclass
class Chain:
    factory: ChainFactory
    validator: Validator
    client: TestClient

    def grow(self, blocks: int) -> None:
        state = self.validator.state
        start = 0 if state is None else state.head.height + 1
        self.factory.seal_many(blocks, 2)
        for block in self.factory.blocks[start:]:
            self.validator.receive_block(block_to_json(block))
            other = sign_attestation(
                block.header, self.factory.keys["validator-2"], checkpoint_origin=ORIGIN
            )
            self.validator.receive_attestation(other.model_dump_json().encode())

    def round(self, state: Path, **options: object) -> dict[str, object]:
        done = witness_round(URL, state_dir=state, now=NOW, client=self.client, **options)  # type: ignore[arg-type]
        return {"old": done.old_size, "size": done.tree_size, "note": done.checkpoint}


@pytest.fixture
def chain() -> Iterator[Chain]:
    factory = ChainFactory()
    store = MemoryChainStore()
    validator = Validator(
        store=store,
        key=factory.keys["validator-1"],
        genesis=factory.config,
        genesis_event=factory.genesis_event,
        publisher=RecordingPublisher(),
        checkpoint_origin=ORIGIN,
    )
    validator.restore()
    queries = ChainQueries(store=store, validator=validator)
    witness = CheckpointWitness(
        store=MemoryWitnessStore(),
        key=factory.keys["validator-1"],
        logs={ORIGIN: WitnessedLog.of(factory.config)},
    )
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(validator_router(queries))
    app.include_router(checkpoint_router(queries, witness))
    with TestClient(app) as client:
        made = Chain(factory, validator, client)
        made.grow(2)
        yield made


def test_rounds_pin_genesis_advance_and_persist(chain: Chain, tmp_path: Path) -> None:
    state = tmp_path / "w"
    first = chain.round(state)
    assert first["old"] == 0
    pinned = json.loads((state / "genesis.json").read_text())
    assert pinned == chain.factory.genesis_event
    chain.grow(3)
    second = chain.round(state)
    assert second["old"] == first["size"]
    assert isinstance(second["size"], int)
    assert isinstance(first["size"], int)
    assert second["size"] > first["size"]
    held = held_checkpoint(state, ORIGIN)
    assert held is not None
    assert held.size == second["size"]
    key = json.loads((state / "witness-key.json").read_text())["did"]
    theirs = TheirCheckpoint.from_text((state / "checkpoint").read_text())
    theirs.verify(Vkey(key, None, 4, public_key_from_did(key)))
    # Nothing new: the same checkpoint is cosigned again from the size held.
    assert chain.round(state)["old"] == second["size"]


def test_a_genesis_file_is_pinned_and_must_stay_the_same(chain: Chain, tmp_path: Path) -> None:
    mine = tmp_path / "genesis.json"
    write_genesis_file(mine, chain.factory.genesis_event)
    state = tmp_path / "w"
    chain.round(state, genesis_file=mine)
    chain.round(state, genesis_file=mine)
    other = ChainFactory(chain_id="careledger-other")
    write_genesis_file(mine, other.genesis_event)
    with pytest.raises(WitnessStateError, match="not the genesis pinned"):
        chain.round(state, genesis_file=mine)


def test_another_genesis_finds_no_quorum(chain: Chain, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    write_genesis_file(other, ChainFactory(chain_id="careledger-other").genesis_event)
    with pytest.raises(QuorumError):
        chain.round(tmp_path / "w", genesis_file=other, origin=ORIGIN)


def _tamper(state: Path, **changes: object) -> None:
    path = state / "state.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_rollback_fork_and_bad_proof_are_refused_and_keep_the_state(
    chain: Chain, tmp_path: Path
) -> None:
    state = tmp_path / "w"
    size = chain.round(state)["size"]
    assert isinstance(size, int)
    _tamper(state, tree_size=size + 10)
    with pytest.raises(RollbackError):
        chain.round(state)
    _tamper(state, tree_size=size, root_hash="00" * 32)
    with pytest.raises(ForkError):
        chain.round(state)
    _tamper(state, tree_size=2, root_hash="11" * 32)
    with pytest.raises(BadConsistencyProofError):
        chain.round(state)
    assert json.loads((state / "state.json").read_text())["root_hash"] == "11" * 32


def test_a_broken_state_directory_is_named(chain: Chain, tmp_path: Path) -> None:
    state = tmp_path / "w"
    chain.round(state)
    (state / "state.json").write_text("{")
    with pytest.raises(WitnessStateError, match="not a witness state"):
        chain.round(state)
    (state / "state.json").write_text(
        json.dumps({"origin": "careledger/x", "tree_size": 1, "root_hash": "00" * 32})
    )
    with pytest.raises(WitnessStateError, match="holds the log careledger/x"):
        chain.round(state)


def test_a_validator_that_answers_badly_is_named(chain: Chain, tmp_path: Path) -> None:
    with pytest.raises(WitnessFetchError, match="HTTP 404"):
        witness_round(f"{URL}/nowhere", state_dir=tmp_path / "a", now=NOW, client=chain.client)
    with pytest.raises(WitnessFetchError, match="did not answer JSON"):
        witness_round(
            f"{URL}/v1/checkpoint#", state_dir=tmp_path / "b", now=NOW, client=chain.client
        )
