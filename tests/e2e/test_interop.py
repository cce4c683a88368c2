"""Issue 18, verifiable-log interoperability, on a real chain (broker, sealer, three validators
as processes): checkpoints, proofs and cosignatures checked with tlog-scales, an
implementation of C2SP signed notes, checkpoints, cosignatures and RFC 9162 we did not write,
and with sigstore-python's checkpoint parser, keyring and inclusion chaining;
the `careledger witness` command advancing, persisting and refusing; `POST /v1/add-checkpoint`
refusing what the tlog-witness spec refuses."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785
from tlog_scales.signing import NoteSignature, Vkey, VkeySet
from tlog_scales.tlog import Checkpoint, ConsistencyProof, InclusionProof

from careledger.client import produce_event
from careledger.topology import BROKER_PORT, default_services
from shared.crypto import public_key_from_did
from shared.kafka import KafkaSettings
from shared.keystore import read_genesis_file, read_key_file
from tests.e2e.conftest import CARELEDGER, RunningSystem, clinical_note, free_offset, start_system
from tests.unit.core.sigstore_check import inclusion_root_by_sigstore, verify_with_sigstore

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

LEDGER = ["sealer", "validator-1", "validator-2", "validator-3"]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    directory = tmp_path_factory.mktemp("interop")
    running = start_system(
        directory / "data", directory / "up.log", free_offset(), "--only", ",".join(LEDGER)
    )
    try:
        running.wait_for_output("all services ready", timeout=120)
        yield running
    finally:
        if running.process.poll() is None:
            running.interrupt(timeout=15)


def urls(system: RunningSystem) -> dict[str, str]:
    return {
        spec.name: spec.url()
        for spec in default_services(port_offset=system.offset)
        if spec.name.startswith("validator-")
    }


_published: dict[int, int] = {}


def publish(system: RunningSystem, count: int) -> list[dict[str, Any]]:
    """`count` more signed clinical notes; returns them (they are the leaves after genesis)."""
    key = read_key_file(system.data_dir / "keys" / "publisher-demo.json")
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{BROKER_PORT + system.offset}")
    start = _published.get(system.offset, 0)
    events = [clinical_note(key, start + n, f"enc-{n % 3}") for n in range(count)]
    for event in events:
        produce_event(kafka, "clinical.events", event)
    _published[system.offset] = start + count
    return events


def checkpoint_at_least(url: str, size: int, *, timeout: float = 60) -> str:
    """The validator's `/v1/checkpoint` once it covers `size` leaves."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/v1/checkpoint")
        last = f"{response.status_code} {response.text}"
        if response.status_code == 200 and Checkpoint.from_text(response.text).size >= size:
            return response.text
        time.sleep(0.3)
    raise AssertionError(f"{url}: no checkpoint of size {size}: {last}")


def genesis_vkeys(system: RunningSystem) -> tuple[VkeySet, int]:
    """The genesis validators' note keys, their hashes computed by tlog-scales."""
    _, genesis = read_genesis_file(system.data_dir / "genesis.json")
    keys = [Vkey(did, None, 1, public_key_from_did(did)) for did in genesis.validators]
    return VkeySet(*keys), genesis.quorum


def leaf(event: dict[str, Any]) -> bytes:
    """RFC 6962 leaf hash of an event's RFC 8785 bytes, by the rfc8785 package directly."""
    return hashlib.sha256(b"\x00" + rfc8785.dumps(event)).digest()


def test_checkpoints_and_proofs_verify_with_an_independent_library(
    ledger: RunningSystem,
) -> None:
    events = publish(ledger, 9)
    first_text = checkpoint_at_least(urls(ledger)["validator-1"], 10)
    keys, quorum = genesis_vkeys(ledger)
    response = httpx.get(f"{urls(ledger)['validator-1']}/v1/checkpoint")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    first = Checkpoint.from_text(first_text)
    assert first.origin == "careledger/careledger-dev"
    assert len(keys.verify(first.signatures, first)) >= quorum
    # And with sigstore's note parser and keyring, key by key as genesis names them.
    _, genesis = read_genesis_file(ledger.data_dir / "genesis.json")
    by_sigstore = 0
    for did in genesis.validators:
        if did in first_text:
            parsed = verify_with_sigstore(first_text, did, public_key_from_did(did))
            assert (parsed.log_size, parsed.log_hash) == (first.size, first.root_hash.hex())
            by_sigstore += 1
    assert by_sigstore >= quorum

    # Every validator serves a checkpoint signed by a quorum.
    for url in urls(ledger).values():
        served = Checkpoint.from_text(checkpoint_at_least(url, first.size))
        assert len(keys.verify(served.signatures, served)) >= quorum

    # Inclusion of each event in the checkpointed tree.
    with httpx.Client(timeout=10) as client:
        for event in events:
            proof = client.get(
                f"{urls(ledger)['validator-2']}/v1/proofs/inclusion",
                params={"source": event["source"], "id": event["id"], "tree_size": first.size},
            ).json()
            path = [bytes.fromhex(n) for n in proof["audit_path"]]
            index = proof["leaf_index"]
            InclusionProof(index, first.size, path).check(leaf(event), first.root_hash)
            assert (
                inclusion_root_by_sigstore(leaf(event), index, first.size, path) == first.root_hash
            )

        # Consistency between two checkpoints.
        publish(ledger, 7)
        second = Checkpoint.from_text(checkpoint_at_least(urls(ledger)["validator-3"], 17))
        answer = client.get(
            f"{urls(ledger)['validator-3']}/v1/proofs/consistency",
            params={"first": first.size, "second": second.size},
        ).json()
        ConsistencyProof(
            first.size, second.size, [bytes.fromhex(n) for n in answer["proof"]]
        ).check(first.root_hash, second.root_hash)


def witness(url: str, state: Path, *options: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [*CARELEDGER, "witness", url, "--state-dir", str(state), *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return done.returncode, json.loads(lines[-1])


def witness_vkey(state: Path) -> Vkey:
    key = read_key_file(state / "witness-key.json")
    return Vkey(key.did, None, 4, key.public_key)


def test_the_witness_command_advances_persists_and_refuses(
    ledger: RunningSystem, tmp_path: Path
) -> None:
    url = urls(ledger)["validator-1"]
    state = tmp_path / "witness"
    publish(ledger, 3)
    code, first = witness(url, state)
    assert code == 0, first
    assert first["witnessed"]
    assert first["old_size"] == 0
    assert json.loads((state / "state.json").read_text())["tree_size"] == first["tree_size"]
    # The pinned genesis is the chain's.
    assert json.loads((state / "genesis.json").read_text()) == json.loads(
        (ledger.data_dir / "genesis.json").read_text()
    )
    cosigned = Checkpoint.from_text((state / "checkpoint").read_text())
    cosigned.verify(witness_vkey(state))  # tlog-scales checks the cosignature/v1 line

    publish(ledger, 4)
    checkpoint_at_least(url, first["tree_size"] + 4)
    code, second = witness(url, state)
    assert code == 0, second
    assert second["old_size"] == first["tree_size"] < second["tree_size"]
    Checkpoint.from_text(second["checkpoint"]).verify(witness_vkey(state))
    held = (state / "state.json").read_text()

    # Tamper: a witness that cosigned a larger tree sees this one as a rollback.
    (state / "state.json").write_text(
        json.dumps({**json.loads(held), "tree_size": second["tree_size"] + 50})
    )
    code, refused = witness(url, state)
    assert (code, refused["witnessed"], refused["reason"]) == (1, False, "rollback")

    # Tamper: another root at the size it holds is a fork.
    fork = {**json.loads(held), "root_hash": "00" * 32}
    (state / "state.json").write_text(json.dumps(fork))
    code, refused = witness(url, state)
    assert refused["reason"] in {"fork", "bad_proof"}  # fork at the same size, else no proof
    assert code == 1
    assert json.loads((state / "state.json").read_text()) == fork, "a refusal keeps the state"

    # Tamper: a smaller size whose root is not this log's: the consistency proof fails.
    (state / "state.json").write_text(
        json.dumps({**json.loads(held), "tree_size": 2, "root_hash": "11" * 32})
    )
    code, refused = witness(url, state)
    assert (code, refused["reason"]) == (1, "bad_proof")

    # Back to the honest state: the witness goes on.
    (state / "state.json").write_text(held)
    code, again = witness(url, state)
    assert code == 0, again


def test_a_witness_pinned_to_another_genesis_refuses(ledger: RunningSystem, tmp_path: Path) -> None:
    other = tmp_path / "other"
    init = subprocess.run(
        [*CARELEDGER, "init", "--data-dir", str(other)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    code, refused = witness(
        urls(ledger)["validator-2"],
        tmp_path / "witness",
        "--genesis",
        str(other / "genesis.json"),
        "--origin",
        "careledger/careledger-dev",
    )
    assert (code, refused["witnessed"]) == (1, False)
    assert refused["fault"]["error"] == "QuorumError"


def _request(old: int, proof: list[bytes], note: str) -> str:
    lines = "".join(base64.b64encode(node).decode() + "\n" for node in proof)
    return f"old {old}\n{lines}\n{note}"


def test_add_checkpoint_on_a_validator(ledger: RunningSystem) -> None:
    url = urls(ledger)["validator-2"]
    publish(ledger, 2)
    first_text = checkpoint_at_least(url, 3)
    first = Checkpoint.from_text(first_text)
    with httpx.Client(timeout=10) as client:
        answer = client.post(f"{url}/v1/add-checkpoint", content=_request(0, [], first_text))
        assert answer.status_code == 200, answer.text
        _, genesis = read_genesis_file(ledger.data_dir / "genesis.json")
        cosigner = genesis.validators[1]
        line = NoteSignature.from_line(answer.text.strip())
        Vkey(cosigner, None, 4, public_key_from_did(cosigner)).get_verifier().verify_note(
            line, first
        )

        stale = client.post(f"{url}/v1/add-checkpoint", content=_request(1, [], first_text))
        assert (stale.status_code, stale.text) == (409, f"{first.size}\n")
        assert stale.headers["content-type"] == "text/x.tlog.size"

        publish(ledger, 5)
        second_text = checkpoint_at_least(url, first.size + 5)
        second = Checkpoint.from_text(second_text)
        proof = client.get(
            f"{url}/v1/proofs/consistency", params={"first": first.size, "second": second.size}
        ).json()["proof"]
        nodes = [bytes.fromhex(n) for n in proof]
        bad = [bytes([nodes[0][0] ^ 1]) + nodes[0][1:], *nodes[1:]]
        tampered = client.post(
            f"{url}/v1/add-checkpoint", content=_request(first.size, bad, second_text)
        )
        assert (tampered.status_code, tampered.json()["reason"]) == (422, "bad_proof")

        body, _, signatures = second_text.partition("\n\n")
        broken = "\n".join(
            s[:-6] + ("A" if s[-6] != "A" else "B") + s[-5:] for s in signatures.splitlines()
        )
        forged = client.post(
            f"{url}/v1/add-checkpoint",
            content=_request(first.size, nodes, f"{body}\n\n{broken}\n"),
        )
        assert (forged.status_code, forged.json()["reason"]) == (403, "bad_signatures")

        accepted = client.post(
            f"{url}/v1/add-checkpoint", content=_request(first.size, nodes, second_text)
        )
        assert accepted.status_code == 200, accepted.text
