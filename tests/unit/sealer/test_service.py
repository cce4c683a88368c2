"""The sealing use case on memory adapters: blocks, rejections, restarts, retries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.sealer.adapters.component import SealingComponent
from services.sealer.adapters.memory import MemoryChainStore
from services.sealer.core.cut import CutPolicy
from services.sealer.errors import GenesisMismatchError, PartitionRewoundError
from services.sealer.ports import WriterLease
from services.sealer.service import Sealer
from shared.block import block_from_json
from shared.chain import verify_chain
from shared.envelope import encode_event
from shared.events import identity
from shared.runtime.component import NotReadyError
from shared.runtime.signature_pool import SignaturePool
from shared.topics import CLINICAL_EVENTS, IDENTITY_EVENTS, RECORDS_EVENTS
from tests.unit.core.chainfactory import ChainFactory
from tests.unit.sealer.fakes import FakePublisher, FakeSource, FakeTopics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.wall = datetime(2026, 3, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return self.wall + timedelta(seconds=self.now)


class Rig:
    """One chain (a factory for its keys), its topics and store, and sealers over them."""

    def __init__(self, *, max_events: int = 3, max_wait: float = 0.2) -> None:
        self.factory = ChainFactory()
        self.topics = FakeTopics()
        self.store = MemoryChainStore()
        self.publisher = FakePublisher()
        self.clock = Clock()
        self.policy = CutPolicy(max_events=max_events, max_bytes=1 << 20, max_wait=max_wait)

    def sealer(
        self,
        *,
        source: FakeSource | None = None,
        signatures: SignaturePool | None = None,
        batch_size: int = 500,
        lease: WriterLease | None = None,
    ) -> tuple[Sealer, FakeSource]:
        source = source or FakeSource(self.topics)
        sealer = Sealer(
            store=self.store,
            source=source,
            publisher=self.publisher,
            key=self.factory.keys["sealer"],
            genesis_event=self.factory.genesis_event,
            policy=self.policy,
            wall_clock=self.clock.utc,
            monotonic=self.clock.monotonic,
            max_backoff=0.01,
            signatures=signatures,
            batch_size=batch_size,
            lease=lease,
            lease_renew_every=0.0,  # with a lease: renewed at every step
            standby_poll=0.01,
        )
        return sealer, source

    def publish(self, n: int, *, topic: str = CLINICAL_EVENTS, partition: int = 0) -> list[str]:
        ids = []
        for _ in range(n):
            event = self.factory.event()
            self.topics.append(topic, encode_event(event), partition)
            ids.append(str(event["id"]))
        return ids

    def chain(self) -> list[bytes]:
        head = self.store.head()
        assert head is not None
        blocks = [self.store.block(h) for h in range(head.height + 1)]
        return [b for b in blocks if b is not None]

    def sealed_ids(self) -> list[str]:
        return [
            str(event["id"]) for raw in self.chain()[1:] for event in block_from_json(raw).events
        ]


def test_genesis_is_sealed_on_an_empty_store_and_republished_at_each_start() -> None:
    rig = Rig()
    sealer, source = rig.sealer()
    head = sealer.recover()
    assert head.height == 0
    assert rig.publisher.blocks == [(0, rig.store.block(0))]
    assert source.opened_at == {}
    sealer.recover()  # a restart re-publishes the same block
    assert rig.publisher.blocks == [(0, rig.store.block(0))] * 2
    verify_chain(rig.chain(), trusted_genesis=rig.factory.genesis_event)


def test_events_are_sealed_in_order_into_blocks_that_verify() -> None:
    rig = Rig(max_events=3)
    ids = rig.publish(7) + rig.publish(2, partition=1)
    sealer, source = rig.sealer()
    sealer.recover()
    sealer.step()  # 9 events: three full blocks of 3
    assert [h for h, _ in rig.publisher.blocks] == [0, 1, 2, 3]
    rig.clock.now += 1
    sealer.step()
    head = verify_chain(rig.chain(), trusted_genesis=rig.factory.genesis_event)
    assert head.tree_size == 10
    assert sorted(rig.sealed_ids()) == sorted(ids)
    partition0 = [i for i in rig.sealed_ids() if i in ids[:7]]
    assert partition0 == ids[:7]
    assert source.committed == {(CLINICAL_EVENTS, 0): 7, (CLINICAL_EVENTS, 1): 2}


def test_an_open_block_is_cut_after_max_wait_and_never_when_empty() -> None:
    rig = Rig(max_events=100, max_wait=0.2)
    sealer, _ = rig.sealer()
    sealer.recover()
    sealer.step()
    rig.clock.now += 10
    sealer.step()
    assert [h for h, _ in rig.publisher.blocks] == [0]  # nothing to seal: no block
    rig.publish(2)
    sealer.step()
    assert [h for h, _ in rig.publisher.blocks] == [0]
    rig.clock.now += 0.2
    sealer.step()
    assert [h for h, _ in rig.publisher.blocks] == [0, 1]


def test_each_bad_event_is_rejected_with_its_reason_and_none_is_sealed() -> None:
    rig = Rig(max_events=100)
    f = rig.factory
    good = f.event()
    forged = dict(f.event())
    forged["data"] = {"n": -1}
    cases = [
        (b"{not json", "malformed"),
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
        rig.topics.append(CLINICAL_EVENTS, value)
    rig.topics.append(RECORDS_EVENTS, encode_event(f.event()))  # publisher not allowed there
    sealer, _ = rig.sealer()
    sealer.recover()
    sealer.step()
    rig.clock.now += 1
    sealer.step()
    records = [json.loads(r) for r in rig.publisher.rejections]
    expected = [reason for _, reason in cases if reason] + ["unauthorized_type"]
    assert [r["reason"] for r in records] == expected
    assert [(r["topic"], r["offset"]) for r in records[:6]] == [
        (CLINICAL_EVENTS, o) for o in (0, 1, 2, 3, 4, 6)
    ]
    assert records[0]["raw"] == "{not json"
    assert rig.sealed_ids() == [good["id"]]
    verify_chain(rig.chain(), trusted_genesis=f.genesis_event)


def test_a_restart_resumes_exactly_where_the_store_says() -> None:
    rig = Rig(max_events=4)
    ids = rig.publish(6)
    rig.topics.append(CLINICAL_EVENTS, b"junk")  # offset 6: rejected before the cut
    ids += rig.publish(1)
    first, _ = rig.sealer()
    first.recover()
    first.step()  # one block of 4; events 4, 5, junk, 7 read into an open block, dropped
    first.stop()
    assert len(rig.sealed_ids()) == 4
    ids += rig.publish(3)
    second, source = rig.sealer()
    second.recover()
    assert source.opened_at == {(CLINICAL_EVENTS, 0): 4}
    second.step()
    rig.clock.now += 1
    second.step()
    assert rig.sealed_ids() == ids  # each once, in order, none skipped
    verify_chain(rig.chain(), trusted_genesis=rig.factory.genesis_event)


def test_rejections_before_a_cut_are_not_read_again() -> None:
    rig = Rig(max_events=1)
    rig.topics.append(CLINICAL_EVENTS, b"junk")
    rig.publish(1)
    first, _ = rig.sealer()
    first.recover()
    first.step()
    second, source = rig.sealer()
    second.recover()
    assert source.opened_at == {(CLINICAL_EVENTS, 0): 2}
    assert len(rig.publisher.rejections) == 1


def test_transient_failures_are_retried_without_loss_or_reordering() -> None:
    rig = Rig(max_events=2)
    ids = rig.publish(4)
    rig.publisher.fail_blocks = 3
    sealer, _ = rig.sealer(source=FakeSource(rig.topics, fail_polls=2))
    sealer.recover()
    sealer.step()
    assert [h for h, _ in rig.publisher.blocks] == [0, 1, 2]
    assert rig.sealed_ids() == ids
    assert sealer.trouble is None


def test_a_store_from_another_genesis_is_refused() -> None:
    rig = Rig()
    rig.sealer()[0].recover()
    other = ChainFactory(chain_id="other-chain")
    sealer = Sealer(
        store=rig.store,
        source=FakeSource(rig.topics),
        publisher=rig.publisher,
        key=other.keys["sealer"],
        genesis_event=other.genesis_event,
        policy=rig.policy,
    )
    with pytest.raises(GenesisMismatchError):
        sealer.recover()


def test_a_duplicate_read_in_the_same_batch_as_its_sealed_original_is_rejected() -> None:
    rig = Rig(max_events=1)  # the original is cut and stored mid-batch
    event = rig.factory.event()
    for _ in range(2):
        rig.topics.append(CLINICAL_EVENTS, encode_event(event))
    sealer, _ = rig.sealer()
    sealer.recover()
    sealer.step()
    assert rig.sealed_ids() == [event["id"]]
    rig.publisher.flush(timeout=1)
    assert [json.loads(r)["reason"] for r in rig.publisher.rejections] == ["duplicate"]


def test_a_rewound_partition_stops_the_sealer_instead_of_skipping_or_resealing() -> None:
    rig = Rig(max_events=2)
    rig.publish(2)
    sealer, _ = rig.sealer()
    sealer.recover()
    sealer.step()
    rig.topics.partitions.clear()  # the broker forgot the topic; new events restart at 0
    rig.publish(1)
    again, source = rig.sealer()
    again.recover()
    source.open({})  # what a consumer reset to the earliest offset reads
    with pytest.raises(PartitionRewoundError):
        again.step()
    assert len(rig.sealed_ids()) == 2
    assert rig.publisher.rejections == []


def test_the_registry_follows_sealed_identity_events_across_blocks_and_restarts() -> None:
    rig = Rig(max_events=2)
    f = rig.factory
    early = f.event("publisher-2")
    rig.topics.append(CLINICAL_EVENTS, encode_event(early))  # not registered yet: rejected
    grant = identity.PublisherRegistered(
        did=f.did("publisher-2"),
        name="p2",
        topic=CLINICAL_EVENTS,
        types=("org.careledger.clinical.*",),
    )
    rig.topics.append(
        IDENTITY_EVENTS, encode_event(f.identity_event(identity.PUBLISHER_REGISTERED, grant))
    )
    sealer, _ = rig.sealer()
    sealer.recover()
    sealer.step()
    rig.clock.now += 1
    sealer.step()
    later = f.event("publisher-2")
    rig.topics.append(CLINICAL_EVENTS, encode_event(later))
    restarted, _ = rig.sealer()  # the registry comes back with the stored state
    restarted.recover()
    restarted.step()
    rig.clock.now += 1
    restarted.step()
    assert later["id"] in rig.sealed_ids()
    assert early["id"] not in rig.sealed_ids()
    rig.publisher.flush(timeout=1)
    assert [json.loads(r)["reason"] for r in rig.publisher.rejections] == ["unknown_signer"]
    verify_chain(rig.chain(), trusted_genesis=f.genesis_event)


def test_blocks_never_exceed_max_bytes_unless_one_event_does() -> None:
    rig = Rig(max_events=100)
    rig.policy = CutPolicy(max_events=100, max_bytes=1000, max_wait=0.2)
    rig.publish(12)  # ~430 bytes each: two per block
    sealer, _ = rig.sealer()
    sealer.recover()
    sealer.step()
    rig.clock.now += 1
    sealer.step()
    sizes = [
        sum(len(encode_event(e)) for e in block_from_json(raw).events) for raw in rig.chain()[1:]
    ]
    assert len(rig.sealed_ids()) == 12
    assert all(size <= 1000 for size in sizes)
    assert len(sizes) == 6


class _FailingSealer:
    """Stands in for `Sealer` in `SealingComponent`: its loop dies of a bug."""

    trouble = None

    def run(self) -> None:
        raise RuntimeError("a bug")

    def stop(self) -> None:
        pass


class _ClosingEnd:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_a_failed_loop_closes_its_clients_reports_not_ready_and_asks_to_exit() -> None:
    failures: list[str] = []
    source, publisher = _ClosingEnd(), _ClosingEnd()
    component = SealingComponent(
        sealer=_FailingSealer(),  # type: ignore[arg-type]
        source=source,  # type: ignore[arg-type]
        publisher=publisher,  # type: ignore[arg-type]
        on_failure=failures.append,
    )
    component.start()
    component.stop()
    assert failures == ["the sealer stopped: RuntimeError"]
    assert source.closed
    assert publisher.closed
    with pytest.raises(NotReadyError, match="sealer stopped: RuntimeError"):
        component.check()
