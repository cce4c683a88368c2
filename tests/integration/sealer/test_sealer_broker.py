"""The sealer on the real embedded broker: blocks that verify, rejections, exact resumption."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.block import block_from_json
from shared.chain import verify_chain
from shared.envelope import encode_event
from shared.kafka import KafkaSettings
from shared.topics import CLINICAL_EVENTS, LEDGER_BLOCKS, LEDGER_REJECTED, RECORDS_EVENTS
from tests.integration.outbox.downstream import read_topic
from tests.integration.sealer.rig import SealerRig, json_records

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def rig(kafka: KafkaSettings, tmp_path: Path) -> Iterator[SealerRig]:
    made = SealerRig(kafka, tmp_path)
    try:
        yield made
    finally:
        made.close()


def _per_partition_in_order(sealed: list[tuple[str, int, int, str]]) -> None:
    last: dict[tuple[str, int], int] = {}
    for topic, partition, offset, _ in sealed:
        assert offset > last.get((topic, partition), -1)
        last[(topic, partition)] = offset


def test_events_are_sealed_into_published_blocks_that_verify(rig: SealerRig) -> None:
    sent = []
    for n in range(120):
        event = rig.factory.event()
        rig.send_event(event, partition=n % 3)
        sent.append((n % 3, str(event["id"])))
    rig.flush()
    component = rig.start(max_events=25)
    rig.wait_for_tree_size(121)
    component.check()  # ready
    # Read while the sealer runs: a stop between a block's commit and its publish leaves the
    # block to be published again by the next start (recover), which this test does not do.
    head = rig.store.head()
    assert head is not None
    published = read_topic(
        rig.kafka, rig.topics.physical(LEDGER_BLOCKS), at_least=head.height + 1, quiet=0.3
    )
    rig.stop()

    stored = rig.stored_blocks()
    head = verify_chain(stored, trusted_genesis=rig.factory.genesis_event)
    assert head.tree_size == 121
    sealed = rig.sealed()
    _per_partition_in_order(sealed)
    for partition in range(3):
        expected = [i for p, i in sent if p == partition]
        assert [i for _, p, _, i in sealed if p == partition] == expected
    assert all(block_from_json(b).header.event_count <= 25 for b in stored[1:])

    by_height = {int(r.key or b"-1"): r.value for r in published}
    assert [by_height[h] for h in range(len(stored))] == stored


def test_each_bad_event_lands_in_ledger_rejected_with_its_reason(rig: SealerRig) -> None:
    f = rig.factory
    good = f.event()
    forged = dict(f.event())
    forged["data"] = {"n": -1}
    cases = [
        (b"\xffnot json", "malformed"),
        (encode_event(f.event()) + b" " * (64 * 1024), "too_large"),
        (encode_event(forged), "bad_signature"),
        (encode_event(f.event("stranger")), "unknown_signer"),
        (
            # No data schema for this billing type, so authorization is what refuses it.
            encode_event(f.event("publisher", "org.careledger.billing.note.v1")),
            "unauthorized_type",
        ),
        (encode_event(good), None),
        (encode_event(good), "duplicate"),
    ]
    for value, _ in cases:
        rig.send(value)
    rig.send_event(f.event(), topic=RECORDS_EVENTS)  # the publisher may not publish there
    rig.flush()
    rig.start()
    rig.wait_for_tree_size(2)
    records = json_records(
        [
            r.value
            for r in read_topic(
                rig.kafka, rig.topics.physical(LEDGER_REJECTED), at_least=7, quiet=0.3
            )
        ]
    )
    rig.stop()
    by_place = {(r["topic"], r["offset"]): r["reason"] for r in records}
    by_place_raw = {(r["topic"], r["offset"]): r["raw"] for r in records}
    expected = {
        (CLINICAL_EVENTS, offset): reason
        for offset, (_, reason) in enumerate(cases)
        if reason is not None
    }
    expected[(RECORDS_EVENTS, 0)] = "unauthorized_type"
    assert by_place == expected
    assert len(records) == 7
    assert by_place_raw[(CLINICAL_EVENTS, 0)] == "\\xffnot json"
    assert [i for *_, i in rig.sealed()] == [good["id"]]
    verify_chain(rig.stored_blocks(), trusted_genesis=f.genesis_event)


def test_stop_and_restart_resume_exactly(rig: SealerRig) -> None:
    ids = []

    def publish(n: int) -> None:
        for k in range(n):
            event = rig.factory.event()
            rig.send_event(event, partition=k % 3)
            ids.append(str(event["id"]))
        rig.flush()

    publish(60)
    rig.start(max_events=7)
    rig.wait_for_tree_size(30)
    rig.stop()  # somewhere in the stream: the open block is dropped
    publish(40)
    rig.start(max_events=7)
    rig.wait_for_tree_size(101)
    rig.stop()
    rig.start(max_events=7)  # a restart with nothing new re-publishes, seals nothing
    publish(5)
    rig.wait_for_tree_size(106)
    rig.stop()

    sealed = rig.sealed()
    assert sorted(i for *_, i in sealed) == sorted(ids)
    assert len({i for *_, i in sealed}) == len(sealed)
    _per_partition_in_order(sealed)
    verify_chain(rig.stored_blocks(), trusted_genesis=rig.factory.genesis_event)
