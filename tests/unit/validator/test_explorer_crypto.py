"""The explorer's browser crypto (`adapters/explorer/static/*.js`) against the Python core.

The modules run in Node.js (WebCrypto SHA-256 and Ed25519, the same API Chromium gives the
page) on cases the Python implementation made: RFC 8785 bytes must match
`shared.canonical.canonicalize` exactly, every RFC 9162 inclusion and consistency proof of
`shared.merkle` must verify and every tampered one must be refused, and real signed events,
blocks and attestations from the chain factory must verify while altered ones must not.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from services.validator.adapters.explorer import STATIC
from shared.attestation import sign_attestation
from shared.block import block_to_json
from shared.canonical import canonicalize
from shared.merkle import consistency_proof, inclusion_proof, leaf_hash, root
from tests.unit.core.chainfactory import ChainFactory

NODE = shutil.which("node")

#: Reads a JSON list of checks on stdin, prints one answer per check: "ok", the JCS hex, or
#: "error: <name>: <message>".
DRIVER = """
import { canonicalize } from "STATIC/jcs.js";
import { bytesToHex, hexToBytes } from "STATIC/codec.js";
import { verifyInclusion, verifyConsistency } from "STATIC/merkle.js";
import {
  verifyEventSignature, verifyGenesis, verifyBlockHash, verifySealerSignature, verifyFinality,
} from "STATIC/verify.js";

const checks = JSON.parse(await new Promise((done) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => done(text));
}));
const hex = (list) => list.map((item) => hexToBytes(item, 32));
const answers = [];
for (const c of checks) {
  try {
    if (c.kind === "jcs") { answers.push(bytesToHex(canonicalize(JSON.parse(c.text)))); continue; }
    if (c.kind === "inclusion") {
      await verifyInclusion(hexToBytes(c.leaf, 32), BigInt(c.index), BigInt(c.size), hex(c.proof),
        hexToBytes(c.root, 32));
    } else if (c.kind === "consistency") {
      await verifyConsistency(BigInt(c.first), BigInt(c.second), hexToBytes(c.first_root, 32),
        hexToBytes(c.second_root, 32), hex(c.proof));
    } else if (c.kind === "event") {
      await verifyEventSignature(c.event);
    } else if (c.kind === "block") {
      const genesis = await verifyGenesis(c.genesis);
      await verifyBlockHash(c.block);
      await verifySealerSignature(c.block, genesis);
      await verifyFinality(c.block, c.attestations, genesis);
    }
    answers.push("ok");
  } catch (error) {
    answers.push(`error: ${error.name}: ${error.message}`);
  }
}
process.stdout.write(JSON.stringify(answers));
"""


def run_js(checks: list[dict[str, Any]], tmp_path: Path) -> list[str]:
    if NODE is None:
        pytest.fail("Node.js (`node`, 18 or later) runs the explorer's modules: install it")
    driver = tmp_path / "driver.mjs"
    driver.write_text(DRIVER.replace("STATIC", STATIC.resolve().as_uri()), encoding="utf-8")
    done = subprocess.run(
        [NODE, str(driver)],
        input=json.dumps(checks),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answers: list[str] = json.loads(done.stdout)
    assert len(answers) == len(checks)
    return answers


TRICKY = [
    {"b": 1, "a": [True, None, False], "": "empty key"},
    [1e21, 1e-7, 5e-324, -0.0, 0.1, 123456789012345.6, 2**53 - 1, -(2**53 - 1)],
    {"\uffff": 1, "\U0001f600": 2, "\u00e9": 3, "Z": 4, "a": 5},
    ['\u0000\u001f\b\f\n\r\t"\\/', "\u2028\u2029", "\U0001f9ea", "ÿ"],
    {"nested": {"deeper": [{"x": [[], {}]}]}, "n": -1.5e-10},
]


def test_jcs_bytes_equal_the_python_encoder(tmp_path: Path) -> None:
    checks = [{"kind": "jcs", "text": json.dumps(value)} for value in TRICKY]
    expected = [canonicalize(value).hex() for value in TRICKY]
    assert run_js(checks, tmp_path) == expected


def test_a_lone_surrogate_has_no_canonical_form_in_the_browser_either(tmp_path: Path) -> None:
    [answer] = run_js([{"kind": "jcs", "text": '{"a": "\\ud800"}'}], tmp_path)
    assert answer.startswith("error: CanonicalizationError"), answer


def _leaves(count: int) -> list[bytes]:
    return [leaf_hash(f"leaf {n}".encode()) for n in range(count)]


def _flip(hex_hash: str) -> str:
    return f"{int(hex_hash[0], 16) ^ 1:x}{hex_hash[1:]}"


def test_every_inclusion_proof_verifies_and_every_tampered_one_is_refused(
    tmp_path: Path,
) -> None:
    checks: list[dict[str, Any]] = []
    tampered: list[dict[str, Any]] = []
    for size in range(1, 14):
        leaves = _leaves(size)
        tree_root = root(leaves).hex()
        for index in range(size):
            path = [node.hex() for node in inclusion_proof(leaves, index)]
            case = {
                "kind": "inclusion",
                "leaf": leaves[index].hex(),
                "index": index,
                "size": size,
                "proof": path,
                "root": tree_root,
            }
            checks.append(case)
            tampered.append({**case, "root": _flip(tree_root)})
            if path:
                tampered.append({**case, "proof": [_flip(path[0]), *path[1:]]})
                tampered.append({**case, "proof": path[:-1]})
            if size > 1:
                tampered.append({**case, "index": (index + 1) % size})
    answers = run_js(checks + tampered, tmp_path)
    assert answers[: len(checks)] == ["ok"] * len(checks)
    refused = answers[len(checks) :]
    assert all(answer.startswith("error: VerificationError") for answer in refused), [
        (case, answer) for case, answer in zip(tampered, refused, strict=True) if answer == "ok"
    ]


def test_every_consistency_proof_verifies_and_every_tampered_one_is_refused(
    tmp_path: Path,
) -> None:
    checks: list[dict[str, Any]] = []
    tampered: list[dict[str, Any]] = []
    leaves = _leaves(13)
    for second in range(1, 14):
        for first in range(1, second + 1):
            proof = [node.hex() for node in consistency_proof(leaves[:second], first)]
            case = {
                "kind": "consistency",
                "first": first,
                "second": second,
                "first_root": root(leaves[:first]).hex(),
                "second_root": root(leaves[:second]).hex(),
                "proof": proof,
            }
            checks.append(case)
            tampered.append({**case, "second_root": _flip(case["second_root"])})
            if proof:
                tampered.append({**case, "proof": [*proof[:-1], _flip(proof[-1])]})
            if first < second:
                tampered.append({**case, "first_root": _flip(case["first_root"])})
    answers = run_js(checks + tampered, tmp_path)
    assert answers[: len(checks)] == ["ok"] * len(checks)
    assert all(a.startswith("error: VerificationError") for a in answers[len(checks) :])


def test_signed_events_blocks_and_attestations_verify_and_altered_ones_do_not(
    tmp_path: Path,
) -> None:
    factory = ChainFactory()
    factory.seal_many(1, 2)
    block = json.loads(block_to_json(factory.blocks[1]))
    attestations = [
        sign_attestation(factory.blocks[1].header, factory.keys[name]).model_dump(mode="json")
        for name in ("validator-1", "validator-2")
    ]
    genesis = factory.genesis_event
    event = block["events"][0]
    sound = {"kind": "block", "block": block, "genesis": genesis, "attestations": attestations}
    forged = json.loads(json.dumps(block))
    forged["header"]["log_root"] = _flip(forged["header"]["log_root"])
    rehashed = json.loads(json.dumps(forged))
    rehashed["block_hash"] = canonicalize_hash(rehashed["header"])
    cases = [
        ({"kind": "event", "event": event}, "ok"),
        ({"kind": "event", "event": {**event, "subject": "someone-else"}}, "does not verify"),
        (sound, "ok"),
        ({**sound, "block": forged}, "block_hash is not SHA-256"),
        ({**sound, "block": rehashed}, "the sealer's signature over block_hash"),
        ({**sound, "attestations": attestations[:1]}, "too few validators attested"),
        ({**sound, "genesis": {**genesis, "time": "2000-01-01T00:00:00Z"}}, '"time"'),
    ]
    answers = run_js([check for check, _ in cases], tmp_path)
    for (_, expected), answer in zip(cases, answers, strict=True):
        if expected == "ok":
            assert answer == "ok"
        else:
            assert answer.startswith("error: VerificationError"), answer
            assert expected in answer, answer


def canonicalize_hash(header: dict[str, Any]) -> str:
    return hashlib.sha256(canonicalize(header)).hexdigest()
