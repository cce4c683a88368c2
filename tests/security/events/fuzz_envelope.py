"""Coverage-guided fuzzing (atheris, libFuzzer) of the sealer's and a validator's verdicts.

Two targets, one per run:

- ``envelope``: the first byte picks an input topic, the rest is a Kafka value. It goes
  through `pipeline.Pipeline.judge`: the real sealer admits or rejects it, the real validator
  follows (a block of an event the sealer rejected is refused for the same reason). Any
  exception, a disagreement included (`DifferentialMismatch`), is a finding.
- ``block``: the input is a `ledger.blocks` (or `ledger.attestations`) message for a
  validator at height 1; whatever it is, the validator accepts it or refuses it (a fault with
  a stable code, or a dropped attestation), and never raises.

Run as a script (`make fuzz`, or the bounded run of tests/security/events/test_fuzz.py):

    python tests/security/events/fuzz_envelope.py seed DIR            # write the seed corpus
    python tests/security/events/fuzz_envelope.py envelope CORPUS -max_total_time=60 ...

The libFuzzer flags follow the target's name; a crash leaves ``crash-<sha1>`` (the input)
where ``-artifact_prefix`` says and exits non-zero.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path

import atheris

# Only the code under test is instrumented: coverage is what guides the mutations.
with atheris.instrument_imports(include=["shared", "services"]):
    from services.validator.adapters.memory import MemoryChainStore as ValidatorStore
    from services.validator.core.faults import FAULT_CODES
    from services.validator.errors import MissingBlocksError
    from shared.attestation import sign_attestation
    from shared.block import BlockHeader, block_to_json, seal_block
    from shared.envelope import encode_event
    from shared.topics import BILLING_EVENTS, CLINICAL_EVENTS, IDENTITY_EVENTS, RECORDS_EVENTS
    from tests.security.events.pipeline import (
        DifferentialMismatch,
        Pipeline,
        RecordingMetrics,
        make_validator,
    )
    from tests.unit.core.chainfactory import ChainFactory

PATIENT = "org.careledger.identity.patient.registered.v1"
TOPICS = (CLINICAL_EVENTS, IDENTITY_EVENTS, RECORDS_EVENTS, BILLING_EVENTS)
#: JSON and envelope tokens the mutator splices in (libFuzzer's -dict format).
DICTIONARY = (
    '"specversion"',
    '"id"',
    '"source"',
    '"type"',
    '"time"',
    '"datacontenttype"',
    '"data"',
    '"subject"',
    '"dataschema"',
    '"signer"',
    '"signature"',
    '"application/json"',
    '"1.0"',
    '"org.careledger.clinical.x.v1"',
    '"org.careledger.identity.publisher.registered.v1"',
    '"2026-01-01T00:00:00Z"',
    '"2026-02-30T00:00:00Z"',
    '"did:key:z6Mk"',
    "1e20",
    "1e300",
    "9007199254740992",
    "18446744073709551616",
    "9223372036854775808",
    "-0",
    "NaN",
    "\\ud800",
    "\\u0000",
    "\ufeff",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    '"height"',
    '"prev_hash"',
    '"tree_size"',
    '"log_root"',
    '"event_count"',
    '"sources"',
    '"first_offset"',
    '"last_offset"',
    '"sealed_at"',
    '"block_hash"',
    '"events"',
)


def envelope_input(data: bytes) -> None:
    """One Kafka value on one topic: both sides judge it alike, and nothing raises."""
    topic = TOPICS[data[0] % len(TOPICS)] if data else CLINICAL_EVENTS
    Pipeline().judge(data[1:], topic=topic)


def block_chain() -> ChainFactory:
    """The chain a block input is judged against: genesis and one block (deterministic)."""
    factory = ChainFactory()
    factory.seal([factory.event()])
    return factory


def block_input(data: bytes) -> None:
    """One message for a validator at height 1: accepted, or refused and counted under a
    catalogued fault code; a gap asks for a re-read (`MissingBlocksError`). Never raises.

    The first byte chooses. Bit 2 set: the rest is a `ledger.attestations` message. Else a
    `ledger.blocks` message: bit 1 clear, as it is (the hash and signature checks stop nearly
    every mutation); bit 1 set, re-sealed first when its header is one (block_hash and
    signature recomputed by the genesis sealer, as `resign` does), so the checks behind the
    signature (links, sources, events, log) are explored too."""
    factory = block_chain()
    mode = data[0] if data else 0
    raw = data[1:]
    metrics = RecordingMetrics()
    validator = make_validator(factory, ValidatorStore(), metrics)
    for block in factory.blocks:
        validator.receive_block(block_to_json(block))
    if mode & 2:
        validator.receive_attestation(raw)
        return
    if mode & 1:
        raw = _resealed(factory, raw)
    try:
        validator.receive_block(raw)
    except MissingBlocksError:
        return
    unknown = set(metrics.faults) - FAULT_CODES
    if unknown:
        raise DifferentialMismatch(f"fault codes {unknown} are not catalogued")


def _resealed(factory: ChainFactory, raw: bytes) -> bytes:
    """`raw` with its block_hash and signature made right for its header, if it has one."""
    try:
        value = json.loads(raw)
        header = BlockHeader.model_validate(value["header"])
        sealed = seal_block(header, [], factory.keys["sealer"])
        value["block_hash"], value["signature"] = sealed.block_hash, sealed.signature
        return json.dumps(value).encode()
    except (ValueError, TypeError, KeyError, RecursionError):
        return raw


def planted_input(data: bytes) -> None:
    """The runner's own check (test_fuzz.py): a target with a known crash, found at once."""
    if data.startswith(b"CRASH"):
        raise RuntimeError("the planted finding")


TARGETS = {"envelope": envelope_input, "block": block_input, "planted": planted_input}


def write_seeds(directory: Path) -> int:
    """The seed corpora: valid events of every signer on every topic (the first byte picks
    it), and the blocks that sealed some of them; returns how many files were written."""
    factory = ChainFactory()
    envelope = directory / "envelope"
    block = directory / "block"
    envelope.mkdir(parents=True, exist_ok=True)
    block.mkdir(parents=True, exist_ok=True)
    seeds: list[tuple[Path, bytes]] = []
    for index in range(len(TOPICS)):
        for signer, event_type in (
            ("publisher", "org.careledger.clinical.consultation.completed.v1"),
            ("identity", "org.careledger.identity.patient.registered.v1"),
            ("records", "org.careledger.records.access.logged.v1"),
            ("stranger", "org.careledger.clinical.consultation.completed.v1"),
        ):
            data = {"pseudonym": "ab" * 32} if "patient" in event_type else {"n": index}
            event = factory.event(signer, event_type, data)
            seeds.append((envelope, bytes([index]) + encode_event(event)))
            seeds.append((envelope, bytes([index]) + json.dumps(event, indent=1).encode()))
    chain = block_chain()
    stranger = chain.event("stranger")
    next_blocks = [
        chain.blocks[-1],  # again: an identical duplicate
        chain.assemble([stranger]),  # a faulty sealer's block 2
        chain.seal([chain.event(), chain.event("identity", PATIENT, {"pseudonym": "ab" * 32})]),
    ]
    for item in next_blocks:
        raw = block_to_json(item)
        for mode in (b"\x00", b"\x01"):
            seeds.append((block, mode + raw))
            seeds.append((block, mode + json.dumps(json.loads(raw), indent=1).encode()))
    for name in ("validator-2", "validator-3"):
        attestation = sign_attestation(chain.blocks[1].header, chain.keys[name])
        seeds.append((block, b"\x02" + attestation.model_dump_json().encode()))
    for folder, value in seeds:
        (folder / hashlib.sha1(value).hexdigest()).write_bytes(value)  # noqa: S324 - a name
    dictionary = directory / "tokens.dict"
    dictionary.write_text("".join(f'"{_dict_escape(token)}"\n' for token in DICTIONARY))
    return len(seeds)


def _dict_escape(token: str) -> str:
    """A token as libFuzzer's dictionary format writes it: printable ASCII, else \\xNN."""
    out = []
    for byte in token.encode():
        char = chr(byte)
        if char in '\\"':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def main(argv: list[str]) -> None:
    logging.disable(logging.CRITICAL)  # every refusal logs; the fuzzer's output is enough
    if len(argv) >= 3 and argv[1] == "seed":
        print(f"{write_seeds(Path(argv[2]))} seeds written to {argv[2]}")
        return
    if len(argv) < 2 or argv[1] not in TARGETS:
        raise SystemExit(f"usage: {argv[0]} seed DIR | {{envelope,block,planted}} CORPUS [-flags]")
    target = TARGETS[argv[1]]
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
