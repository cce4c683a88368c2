"""Hostile events from outside: sent to the real broker, read by a real sealer (its Kafka
adapters, SQLite store) and followed by a real validator loop on `ledger.blocks`.

Each attack must land in `ledger.rejected` with its reason, and the pipeline must go on: the
good events around the attacks are sealed, the validator verifies every block the sealer
cut (no refusal, no fault), and a restarted sealer still refuses replays.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.block import block_from_json
from shared.envelope import MAX_EVENT_BYTES, encode_event
from shared.events.identity import PUBLISHER_REGISTERED, PUBLISHER_REVOKED
from shared.kafka import KafkaSettings
from shared.topics import (
    CLINICAL_EVENTS,
    IDENTITY_EVENTS,
    LEDGER_REJECTED,
    RECORDS_EVENTS,
)
from tests.integration.outbox.downstream import read_topic
from tests.integration.sealer.rig import SealerRig, json_records
from tests.security.events.mutations import signed
from tests.security.events.validator_rig import following_validator
from tests.unit.core.chainfactory import ChainFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
def rig(kafka: KafkaSettings, tmp_path: Path) -> Iterator[SealerRig]:
    made = SealerRig(kafka, tmp_path, partitions=2)
    try:
        yield made
    finally:
        made.close()


class Sender:
    """Sends values and remembers where each landed (topic, partition, offset)."""

    def __init__(self, rig: SealerRig) -> None:
        self.rig = rig
        self.offsets: dict[tuple[str, int], int] = {}

    def send(
        self, value: bytes, *, topic: str = CLINICAL_EVENTS, partition: int = 0
    ) -> tuple[str, int, int]:
        offset = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = offset + 1
        self.rig.send(value, topic=topic, partition=partition)
        return (topic, partition, offset)


def _wait(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _attacks(f: ChainFactory, sealed_before: dict[str, Any]) -> list[tuple[bytes, str, int, str]]:
    """(value, topic, partition, reason) of each attack, after `sealed_before` was sealed."""
    good = f.event()
    tampered = {**good, "data": {"n": -1}}  # the signature is over other data
    reattributed = {**f.event(), "signer": f.did("publisher-2")}  # someone else's signature
    by_validator = f.event("validator-1")  # a genesis key with no right to publish
    by_sealer_on_identity = f.event(
        "sealer", "org.careledger.identity.patient.registered.v1", {"pseudonym": "ab" * 32}
    )
    revoked = f.event("publisher-2")
    big_value = encode_event({**f.event(), "data": {"pad": "x" * (200 * 1024)}})
    just_over = encode_event(f.event()) + b" " * (MAX_EVENT_BYTES + 1)
    text = encode_event(f.event()).decode()
    count = (MAX_EVENT_BYTES - len(text) - 10) // 6  # 1e300 is 1e+300 in RFC 8785
    grows = text.replace('"data":{', '"data":{"f":[' + ",".join(["1e300"] * count) + "],", 1)
    unsafe_float = signed(f, {**f.event(), "data": {"x": 1e20}}, f.keys["publisher"])
    assert unsafe_float is not None
    repeated = encode_event(f.event()).replace(b'"data":{', b'"data":{"n":0,', 1)
    return [
        (encode_event(tampered), CLINICAL_EVENTS, 0, "bad_signature"),
        (encode_event(reattributed), CLINICAL_EVENTS, 0, "bad_signature"),
        (encode_event(by_validator), CLINICAL_EVENTS, 0, "unauthorized_type"),
        (encode_event(by_sealer_on_identity), IDENTITY_EVENTS, 0, "unauthorized_type"),
        (encode_event(f.event()), RECORDS_EVENTS, 0, "unauthorized_type"),
        (encode_event(f.event("stranger")), CLINICAL_EVENTS, 0, "unknown_signer"),
        (encode_event(revoked), CLINICAL_EVENTS, 0, "revoked_signer"),
        (encode_event(sealed_before), CLINICAL_EVENTS, 0, "duplicate"),  # in an earlier block
        (json.dumps(sealed_before, indent=2).encode(), CLINICAL_EVENTS, 1, "duplicate"),
        (big_value, CLINICAL_EVENTS, 0, "too_large"),
        (just_over, CLINICAL_EVENTS, 1, "too_large"),
        (grows.encode(), CLINICAL_EVENTS, 0, "too_large"),  # only its canonical form is over
        (json.dumps(unsafe_float).encode(), CLINICAL_EVENTS, 0, "malformed"),  # finding 1
        (repeated, CLINICAL_EVENTS, 1, "malformed"),
        (encode_event(f.genesis_event), CLINICAL_EVENTS, 0, "unauthorized_type"),
    ]


def test_hostile_events_are_rejected_with_their_reasons_and_the_chain_goes_on(
    rig: SealerRig, tmp_path: Path
) -> None:
    f = rig.factory
    sender = Sender(rig)
    with following_validator(rig.factory, rig.kafka, rig.topics, tmp_path) as validator:
        rig.start(max_events=5, max_wait=0.05)
        # Block 1: the identity service registers publisher-2 and revokes it again.
        grant = {
            "did": f.did("publisher-2"),
            "name": "p2",
            "topic": CLINICAL_EVENTS,
            "types": ["org.careledger.clinical.*"],
        }
        sender.send(
            encode_event(f.identity_event(PUBLISHER_REGISTERED, grant)), topic=IDENTITY_EVENTS
        )
        sender.send(
            encode_event(f.identity_event(PUBLISHER_REVOKED, {"did": f.did("publisher-2")})),
            topic=IDENTITY_EVENTS,
        )
        first = f.event()
        sender.send(encode_event(first))
        rig.flush()
        rig.wait_for_tree_size(4)
        attacks = _attacks(f, first)
        expected = {}
        goods = []
        # Attacks interleaved with good events, whose times go backwards: the envelope has no
        # sequence; sealing order is read order, whatever `time` says.
        for index, (value, topic, partition, reason) in enumerate(attacks):
            expected[sender.send(value, topic=topic, partition=partition)] = reason
            good = f.event()
            good["time"] = f"2025-12-{31 - index % 28:02d}T00:00:00Z"
            good = signed(f, good, f.keys["publisher"])
            assert good is not None
            goods.append(good)
            sender.send(encode_event(good), partition=index % 2)
        rig.flush()
        started = time.monotonic()
        rig.wait_for_tree_size(4 + len(goods), timeout=30)
        sealing_seconds = time.monotonic() - started
        records = json_records(
            [
                r.value
                for r in read_topic(
                    rig.kafka,
                    rig.topics.physical(LEDGER_REJECTED),
                    at_least=len(attacks),
                    quiet=0.3,
                )
            ]
        )
        found = {(r["topic"], r["partition"], r["offset"]): r["reason"] for r in records}
        assert found == expected
        sealed_ids = [event_id for *_, event_id in rig.sealed()]
        assert sorted(sealed_ids[3:]) == sorted(str(g["id"]) for g in goods)
        for partition in (0, 1):  # each partition's good events in the order they were sent
            order = [i for t, p, _, i in rig.sealed()[3:] if p == partition]
            sent = [str(g["id"]) for n, g in enumerate(goods) if n % 2 == partition]
            assert order == sent
        assert sealing_seconds < 20  # oversized values never stall the sealer
        # The validator verified every block the sealer cut: nothing was refused.
        head = rig.store.head()
        assert head is not None
        _wait(lambda: validator.height() == head.height, "the validator at the sealer's head")
        assert validator.store.refusals() == []
        assert validator.faults() == 0
        assert block_from_json(rig.stored_blocks()[-1]).header.height == head.height

        # A restarted sealer still knows what it sealed: replays are duplicates.
        rig.stop()
        rig.start()
        replayed = sender.send(encode_event(goods[0]), partition=1)
        fresh = f.event()
        sender.send(encode_event(fresh))
        rig.flush()
        rig.wait_for_tree_size(4 + len(goods) + 1)
        records = json_records(
            [
                r.value
                for r in read_topic(
                    rig.kafka,
                    rig.topics.physical(LEDGER_REJECTED),
                    at_least=len(attacks) + 1,
                    quiet=0.3,
                )
            ]
        )
        again = {(r["topic"], r["partition"], r["offset"]): r["reason"] for r in records}
        assert again[replayed] == "duplicate"
        _wait(lambda: validator.height() == rig.store.head().height, "the validator at the head")
        assert validator.store.refusals() == []
