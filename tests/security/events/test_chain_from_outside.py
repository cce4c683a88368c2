"""Hostile blocks and attestations from outside: written to `ledger.blocks` and
`ledger.attestations` on the real broker, read by validator-1's real Kafka loop and SQLite
store. Each is refused under its stable code (`careledger_validator_faults_total{reason}` or
`careledger_validator_attestations_refused_total{reason}`), or, when harmless, kept without
effect; and the validator goes on to accept the real next block."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from shared.attestation import Attestation, sign_attestation
from shared.block import Block, BlockHeader, block_to_json, seal_block
from shared.crypto import SigningKey, b64url_encode
from shared.kafka import KafkaSettings, ensure_topics
from shared.topics import CLINICAL_EVENTS, LEDGER_ATTESTATIONS, LEDGER_BLOCKS, TopicNames
from tests.security.events.validator_rig import following_validator
from tests.unit.core.chainfactory import ChainFactory, Submission, key_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

FAULTS = "careledger_validator_faults_total"
ATTESTATIONS_REFUSED = "careledger_validator_attestations_refused_total"


@pytest.fixture
def topics(kafka: KafkaSettings) -> TopicNames:
    names = TopicNames(prefix=f"x{uuid.uuid4().hex[:10]}.")
    ensure_topics(kafka, names.specs(input_partitions=1))
    return names


@pytest.fixture
def produce(kafka: KafkaSettings, topics: TopicNames) -> Iterator[Callable[[str, bytes], None]]:
    producer = Producer(kafka.producer_config())

    def produce(topic: str, value: bytes) -> None:
        producer.produce(topics.physical(topic), key=b"x", value=value)
        producer.flush(10)

    yield produce
    producer.flush(10)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _by_stranger_sealer(factory: ChainFactory, block: Block) -> Block:
    """`block`'s header naming the stranger as its sealer, hashed and signed by the stranger:
    self-consistent, but not the genesis sealer's."""
    stranger = key_for("stranger")
    header = BlockHeader.model_validate({**block.header.model_dump(), "sealer": stranger.did})
    return seal_block(header, block.events, stranger)


def _with_repeated_name(block: Block) -> bytes:
    """`block` written with its first event's `id` given twice (the last one the real id):
    read last-wins, the block is valid; read first-wins, it is another event (finding 2)."""
    text = block_to_json(block).decode()
    return text.replace('"events":[{', '"events":[{"id":"not-this-one",', 1).encode()


def test_replayed_forged_and_misspelt_blocks_are_refused_with_stable_codes(
    kafka: KafkaSettings,
    topics: TopicNames,
    produce: Callable[[str, bytes], None],
    tmp_path: Path,
) -> None:
    factory = ChainFactory()
    factory.seal_many(2, 3)
    two = factory.blocks[2]
    one = factory.blocks[1]
    # What a faulty sealer could publish as block 3 (every one sealer-signed unless named):
    attacks: list[tuple[bytes, str]] = [
        # block 2 again, relabelled height 3 without a new signature
        (
            block_to_json(
                two.model_copy(
                    update={
                        "header": two.header.model_copy(
                            update={"height": 3, "prev_hash": two.block_hash}
                        )
                    }
                )
            ),
            "bad_block_hash",
        ),
        # block 2 re-signed at height 3 after block 2: its offsets were sealed already
        (
            block_to_json(factory.resign(two, height=3, prev_hash=two.block_hash)),
            "bad_source_offsets",
        ),
        # block 2 re-signed at height 3, linked to block 1
        (block_to_json(factory.resign(two, height=3, prev_hash=one.block_hash)), "broken_link"),
        # block 2's events read again at new offsets (a replay on Kafka the sealer let by)
        (
            block_to_json(
                factory.assemble(
                    [
                        Submission(factory.submit(event).value, CLINICAL_EVENTS, 0, 100 + n)
                        for n, event in enumerate(two.events)
                    ]
                )
            ),
            "inadmissible_event",
        ),
        # a self-consistent block 3 by a sealer not in genesis
        (
            block_to_json(_by_stranger_sealer(factory, factory.assemble([factory.event()]))),
            "bad_header",
        ),
    ]
    real = factory.assemble([factory.event()])
    attacks.append((_with_repeated_name(real), "malformed_block"))
    # Integers beyond 2**53 - 1 (finding 3): no signature needed; they used to stop the loop.
    for field, value in (("tree_size", 2**64), ("height", 2**64)):
        unhashable = json.loads(block_to_json(real))
        unhashable["header"][field] = value
        attacks.append((json.dumps(unhashable).encode(), "malformed_block"))
    with following_validator(factory, kafka, topics, tmp_path) as follower:
        for block in factory.blocks:
            produce(LEDGER_BLOCKS, block_to_json(block))
        _wait(lambda: follower.height() == 2, "height 2")
        for value, _ in attacks:
            produce(LEDGER_BLOCKS, value)
        _wait(lambda: len(follower.store.refusals()) == len(attacks), "every refusal")
        assert follower.height() == 2
        for code in {code for _, code in attacks}:
            expected = sum(1 for _, c in attacks if c == code)
            assert follower.metric(FAULTS, {"reason": code}) == expected, code
        evidence = [r.evidence for r in follower.store.refusals()]
        assert any(e.get("reason") == "duplicate" for e in evidence)  # the replayed events
        # The pipeline goes on: the real block 3 is accepted and the fault cleared.
        produce(LEDGER_BLOCKS, block_to_json(real))
        _wait(lambda: follower.height() == 3, "the real block 3")
        assert follower.validator.fault is None


def _resigned(attestation: Attestation, key: SigningKey, **changes: object) -> Attestation:
    """`attestation` with `changes`, signed again by `key` (a valid signature over them)."""
    changed = attestation.model_copy(update=changes)
    return changed.model_copy(update={"signature": b64url_encode(key.sign(changed.signed_bytes()))})


def test_stale_replayed_and_foreign_attestations(
    kafka: KafkaSettings,
    topics: TopicNames,
    produce: Callable[[str, bytes], None],
    tmp_path: Path,
) -> None:
    factory = ChainFactory()
    factory.seal_many(3, 2)
    other = ChainFactory(chain_id="elsewhere")
    other.seal_many(3, 2)
    head = factory.blocks[3].header
    v2, v3 = factory.keys["validator-2"], factory.keys["validator-3"]
    rival = factory.resign(factory.blocks[3], log_root="ab" * 32)  # a superseded block 3
    misdescribed = sign_attestation(head, v2).model_copy(update={"tree_size": 1})
    refused = {
        # a key not in genesis
        sign_attestation(head, key_for("stranger")).model_dump_json(): "UnknownValidatorError",
        # validator-2's key attesting another chain's block 3 (a key serving two chains)
        sign_attestation(other.blocks[3].header, v2).model_dump_json(): "UnknownValidatorError",
        # a validator not in genesis of this chain: the other chain's own validator
        sign_attestation(other.blocks[3].header, other.keys["validator-2"]).model_dump_json(): (
            "UnknownValidatorError"
        ),
        # signed values changed afterwards
        misdescribed.model_dump_json(): "AttestationSignatureError",
        # a validly signed attestation of our block 3 with another tree size
        _resigned(
            sign_attestation(head, v2), v2, tree_size=1
        ).model_dump_json(): "AttestationMismatchError",
        "[]": "AttestationFormatError",
        # a genesis validator named (no key needed) with a height beyond 2**53 - 1 (finding 3)
        json.dumps(
            {**sign_attestation(head, v2).model_dump(), "height": 2**64}
        ): "AttestationFormatError",
    }
    with following_validator(factory, kafka, topics, tmp_path) as follower:
        for block in factory.blocks:
            produce(LEDGER_BLOCKS, block_to_json(block))
        _wait(lambda: follower.height() == 3, "height 3")
        for value in refused:
            produce(LEDGER_ATTESTATIONS, value.encode())
        # Stale but true: validator-2's attestation of block 1, twice (a replay).
        stale = sign_attestation(factory.blocks[1].header, v2).model_dump_json().encode()
        produce(LEDGER_ATTESTATIONS, stale)
        produce(LEDGER_ATTESTATIONS, stale)
        # validator-2 attests a superseded block 3: kept as evidence, never counted for ours.
        produce(LEDGER_ATTESTATIONS, sign_attestation(rival.header, v2).model_dump_json().encode())
        _wait(lambda: follower.store.final_height() == 1, "block 1 final (ours and v2's)")
        for reason in set(refused.values()):
            expected = sum(1 for r in refused.values() if r == reason)
            _wait(
                lambda reason=reason, expected=expected: (
                    follower.metric(ATTESTATIONS_REFUSED, {"reason": reason}) == expected
                ),
                f"{expected} {reason}",
            )
        assert len(follower.store.attestations_at(1)) == 2  # the replay counted once
        assert follower.store.final_height() == 1  # 3 is not final: v2 attested the rival
        assert follower.validator.fault is None
        assert follower.faults() == 0
        # validator-3 attests the rival too: a quorum on another block than ours is an alarm.
        produce(LEDGER_ATTESTATIONS, sign_attestation(rival.header, v3).model_dump_json().encode())
        _wait(lambda: follower.metric(FAULTS, {"reason": "finality_conflict"}) == 1, "the alarm")
        assert follower.store.final_height() == 1
        assert (follower.validator.fault or {}).get("reason") == "finality_conflict"
