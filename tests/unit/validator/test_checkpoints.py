"""`GET /v1/checkpoint` and `POST /v1/add-checkpoint` over a real store (memory and SQLite):
the served note verifies with tlog-scales, and the witness refuses what the spec refuses."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from tlog_scales.signing import Vkey
from tlog_scales.tlog import Checkpoint as TheirCheckpoint

from services.validator.adapters.http import checkpoint_router
from services.validator.adapters.memory import MemoryChainStore
from services.validator.adapters.metrics import PrometheusValidatorMetrics
from services.validator.adapters.sql import SqlChainStore, migrate_chain_store
from services.validator.adapters.witness_store import MemoryWitnessStore, SqlWitnessStore
from services.validator.queries import ChainQueries
from services.validator.service import Validator
from services.validator.witness import CheckpointWitness, WitnessedLog
from shared.attestation import sign_attestation
from shared.block import block_to_json
from shared.canonical import canonicalize
from shared.checkpoint import (
    COSIGNATURE_V1,
    Checkpoint,
    note_signature,
    parse_checkpoint,
    parse_note,
    verify_cosignature,
    vkey,
)
from shared.merkle import consistency_proof, leaf_hash
from shared.runtime.errors import install_error_handlers
from shared.store import open_database
from tests.unit.core.chainfactory import ChainFactory, key_for
from tests.unit.validator.conftest import RecordingPublisher

ORIGIN = "careledger/careledger-test"
NOW = datetime.now(UTC)


@dataclass
class Rig:
    factory: ChainFactory
    validator: Validator
    client: TestClient
    witness_did: str
    registry: CollectorRegistry

    def witnessed(self, outcome: str) -> float:
        name = "careledger_validator_checkpoints_witnessed_total"
        return self.registry.get_sample_value(name, {"outcome": outcome}) or 0.0

    def fill(self, blocks: int, *, cosigners: tuple[str, ...] = ("validator-2",)) -> None:
        """Seal `blocks` more blocks; feed them and the attestations of `cosigners`."""
        state = self.validator.state
        start = 0 if state is None else state.head.height + 1
        self.factory.seal_many(blocks, 3)
        for block in self.factory.blocks[start:]:
            self.validator.receive_block(block_to_json(block))
            for name in cosigners:
                other = sign_attestation(
                    block.header, self.factory.keys[name], checkpoint_origin=ORIGIN
                )
                self.validator.receive_attestation(other.model_dump_json().encode())


def _rig(chain: MemoryChainStore | SqlChainStore, witnessed: object) -> Iterator[Rig]:
    factory = ChainFactory()
    validator = Validator(
        store=chain,
        key=factory.keys["validator-1"],
        genesis=factory.config,
        genesis_event=factory.genesis_event,
        publisher=RecordingPublisher(),
        checkpoint_origin=ORIGIN,
    )
    validator.restore()
    queries = ChainQueries(store=chain, validator=validator)
    registry = CollectorRegistry()
    witness = CheckpointWitness(
        store=witnessed,  # type: ignore[arg-type]
        key=factory.keys["validator-1"],
        logs={ORIGIN: WitnessedLog.of(factory.config)},
        wall_clock=lambda: NOW,
        metrics=PrometheusValidatorMetrics(registry),
        own_origin=ORIGIN,
        own_root=queries.log_root_at,
    )
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(checkpoint_router(queries, witness))
    with TestClient(app) as client:
        yield Rig(factory, validator, client, factory.keys["validator-1"].did, registry)


@pytest.fixture(params=["memory", "sqlite"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    if request.param == "memory":
        yield from _rig(MemoryChainStore(), MemoryWitnessStore())
        return
    with open_database("sqlite:///validator.db", data_dir=tmp_path) as database:
        migrate_chain_store(database)
        yield from _rig(SqlChainStore(database=database), SqlWitnessStore(database=database))


def test_no_checkpoint_before_finality(rig: Rig) -> None:
    rig.fill(2, cosigners=())
    response = rig.client.get("/v1/checkpoint")
    assert response.status_code == 503
    assert response.json()["reason"] == "no_checkpoint"


def test_the_final_head_is_a_note_signed_by_the_quorum(rig: Rig) -> None:
    rig.fill(3, cosigners=("validator-2", "validator-3"))
    response = rig.client.get("/v1/checkpoint")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    last = rig.factory.blocks[-1].header
    theirs = TheirCheckpoint.from_text(response.text)
    assert (theirs.origin, theirs.size, theirs.root_hash.hex()) == (
        ORIGIN,
        last.tree_size,
        last.log_root,
    )
    for name in ("validator-1", "validator-2", "validator-3"):
        theirs.verify(Vkey.from_string(vkey(rig.factory.keys[name].did)))
    assert len(theirs.signatures) == 3


def test_old_attestations_count_for_finality_but_sign_no_note(rig: Rig) -> None:
    rig.fill(1, cosigners=())
    block = rig.factory.blocks[-1]
    old = sign_attestation(block.header, rig.factory.keys["validator-2"])
    assert rig.validator.receive_attestation(old.model_dump_json().encode())
    response = rig.client.get("/v1/checkpoint")
    assert response.status_code == 503
    assert "1 checkpoint signatures" in response.json()["detail"]


def test_a_bad_note_signature_is_left_out(rig: Rig) -> None:
    rig.fill(1, cosigners=())
    block = rig.factory.blocks[-1]
    other = sign_attestation(
        block.header, rig.factory.keys["validator-2"], checkpoint_origin="careledger/elsewhere"
    )
    rig.validator.receive_attestation(other.model_dump_json().encode())
    assert rig.client.get("/v1/checkpoint").status_code == 503  # final, one good signature
    broken = sign_attestation(block.header, rig.factory.keys["validator-3"])
    forged = broken.model_copy(update={"checkpoint_signature": "!!"})
    rig.validator._store.add_attestation(forged, offset=None)  # a store holding a bad one
    assert rig.client.get("/v1/checkpoint").status_code == 503


def _request(old: int, proof: list[bytes], note: str) -> str:
    lines = "".join(base64.b64encode(node).decode() + "\n" for node in proof)
    return f"old {old}\n{lines}\n{note}"


def _leaves(rig: Rig) -> list[bytes]:
    return [leaf_hash(canonicalize(e)) for block in rig.factory.blocks for e in block.events]


def test_add_checkpoint_cosigns_and_advances(rig: Rig) -> None:
    rig.fill(2)
    first = rig.client.get("/v1/checkpoint").text
    answer = rig.client.post("/v1/add-checkpoint", content=_request(0, [], first))
    assert answer.status_code == 200, answer.text
    head = parse_checkpoint(parse_note(first).body)
    line = parse_note(first + answer.text).signatures[-1]
    assert verify_cosignature(line, head, name=rig.witness_did, did=rig.witness_did) == int(
        NOW.timestamp()
    )
    theirs = TheirCheckpoint.from_text(first + answer.text)
    theirs.verify(Vkey.from_string(vkey(rig.witness_did, COSIGNATURE_V1)))

    rig.fill(2)
    second = rig.client.get("/v1/checkpoint").text
    new = parse_checkpoint(parse_note(second).body)
    proof = consistency_proof(_leaves(rig)[: new.size], head.size)
    answer = rig.client.post("/v1/add-checkpoint", content=_request(head.size, proof, second))
    assert answer.status_code == 200, answer.text
    # The same checkpoint again: an empty proof from the size now held.
    again = rig.client.post("/v1/add-checkpoint", content=_request(new.size, [], second))
    assert again.status_code == 200


def test_add_checkpoint_refusals(rig: Rig) -> None:
    rig.fill(2)
    first = rig.client.get("/v1/checkpoint").text
    head = parse_checkpoint(parse_note(first).body)
    assert rig.client.post("/v1/add-checkpoint", content=_request(0, [], first)).status_code == 200

    stale = rig.client.post("/v1/add-checkpoint", content=_request(1, [], first))
    assert stale.status_code == 409
    assert stale.headers["content-type"] == "text/x.tlog.size"
    assert stale.text == f"{head.size}\n"

    rig.fill(2)
    second = rig.client.get("/v1/checkpoint").text
    new = parse_checkpoint(parse_note(second).body)
    proof = consistency_proof(_leaves(rig)[: new.size], head.size)
    bad = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    tampered = rig.client.post("/v1/add-checkpoint", content=_request(head.size, bad, second))
    assert tampered.status_code == 422
    assert tampered.json()["reason"] == "bad_proof"

    # A checkpoint signed by one validator only: below the quorum.
    lone = note_signature(
        Checkpoint(ORIGIN, new.size, new.root_hash).body(), key_for("validator-1")
    )
    one = parse_note(second).body.decode() + "\n" + lone.line()
    refused = rig.client.post("/v1/add-checkpoint", content=_request(head.size, proof, one))
    assert refused.status_code == 403
    assert refused.json()["reason"] == "bad_signatures"

    # Rollback: the witness holds `new` after this; the older one comes back.
    assert (
        rig.client.post(
            "/v1/add-checkpoint", content=_request(head.size, proof, second)
        ).status_code
        == 200
    )
    rollback = rig.client.post("/v1/add-checkpoint", content=_request(new.size, [], first))
    assert rollback.status_code == 400
    assert rollback.json()["reason"] == "rollback"

    # Same size, another root: a fork; the spec answers 409 with the size held.
    other_root = Checkpoint(ORIGIN, new.size, bytes(32))
    signed = [
        note_signature(other_root.body(), rig.factory.keys[n])
        for n in ("validator-1", "validator-2")
    ]
    fork = other_root.body().decode() + "\n" + "".join(s.line() for s in signed)
    forked = rig.client.post("/v1/add-checkpoint", content=_request(new.size, [], fork))
    assert forked.status_code == 409
    assert forked.text == f"{new.size}\n"
    counts = {
        outcome: rig.witnessed(outcome)
        for outcome in ("cosigned", "stale_size", "bad_proof", "bad_signatures", "rollback", "fork")
    }
    assert counts == {
        "cosigned": 2,
        "stale_size": 1,
        "bad_proof": 1,
        "bad_signatures": 1,
        "rollback": 1,
        "fork": 1,
    }


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"\xff\xfe", 400, "malformed"),
        (b"old x\n\nnote", 400, "malformed"),
        (b"old 0\n\nnot a note", 400, "malformed"),
    ],
)
def test_add_checkpoint_malformed(rig: Rig, body: bytes, status: int, reason: str) -> None:
    answer = rig.client.post("/v1/add-checkpoint", content=body)
    assert (answer.status_code, answer.json()["reason"]) == (status, reason)
    assert rig.witnessed("malformed") == 1


def test_add_checkpoint_of_an_unknown_origin_is_404(rig: Rig) -> None:
    other = Checkpoint("careledger/unknown", 1, bytes(32))
    note = other.body().decode() + "\n" + note_signature(other.body(), key_for("x")).line()
    answer = rig.client.post("/v1/add-checkpoint", content=_request(0, [], note))
    assert (answer.status_code, answer.json()["reason"]) == (404, "unknown_origin")
    assert rig.witnessed("unknown_origin") == 1


@pytest.mark.parametrize("old", [-1, 2**63, 2**64, 10**29])
def test_an_old_size_out_of_range_is_malformed(rig: Rig, old: int) -> None:
    # ADR 0009's hostile integers, in the one integer of this text body.
    answer = rig.client.post("/v1/add-checkpoint", content=f"old {old}\n\nnote\n")
    assert (answer.status_code, answer.json()["reason"]) == (400, "malformed")


def test_a_checkpoint_of_our_own_chain_must_have_our_root(rig: Rig) -> None:
    rig.fill(2)
    assert rig.validator.state is not None
    size = rig.validator.state.head.tree_size - 1
    forged = Checkpoint(ORIGIN, size, bytes(32))
    lines = [
        note_signature(forged.body(), rig.factory.keys[n]) for n in ("validator-2", "validator-3")
    ]
    note = forged.body().decode() + "\n" + "".join(line.line() for line in lines)
    # A quorum signed it and the witness holds nothing: only our own log shows the fork.
    answer = rig.client.post("/v1/add-checkpoint", content=_request(0, [], note))
    assert (answer.status_code, answer.text) == (409, "0\n")
    assert rig.witnessed("fork") == 1
    # Beyond our head we cannot tell: the rule of the witness alone applies.
    ahead = Checkpoint(ORIGIN, size + 100, bytes(32))
    lines = [
        note_signature(ahead.body(), rig.factory.keys[n]) for n in ("validator-2", "validator-3")
    ]
    note = ahead.body().decode() + "\n" + "".join(line.line() for line in lines)
    assert rig.client.post("/v1/add-checkpoint", content=_request(0, [], note)).status_code == 200
