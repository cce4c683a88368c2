"""The sealer with a pool of verify workers seals and rejects exactly what it does in process.

Real worker processes, memory store and fake topics (no broker): the same mixed input — valid,
forged, duplicate, unknown-signer and malformed events, and an identity event that changes who
may sign mid-stream — through a sealer with 1 worker (in process) and with 2 (ADR 0010) must
give byte-identical blocks and the same rejections in the same order, also when the lease is
lost while a batch is being checked.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from services.sealer.adapters.component import SealingComponent
from shared.chain import verify_chain
from shared.envelope import encode_event
from shared.events import identity
from shared.runtime.component import NotReadyError
from shared.runtime.signature_pool import SignaturePool, SignaturePoolError
from shared.topics import CLINICAL_EVENTS, IDENTITY_EVENTS
from tests.unit.sealer.test_service import Rig

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

BATCH = 4  # small batches: many are read ahead, across block boundaries


@pytest.fixture(scope="module")
def pool() -> Iterator[SignaturePool]:
    with SignaturePool(2) as running:
        yield running


def _mixed_input(rig: Rig) -> int:
    """Publish the mixed stream on two partitions and the identity topic; its message count."""
    f = rig.factory
    count = 0

    def put(value: bytes, *, topic: str = CLINICAL_EVENTS, partition: int = 0) -> None:
        nonlocal count
        rig.topics.append(topic, value, partition)
        count += 1

    twice = f.event()
    for n in range(30):
        event = f.event()
        if n % 5 == 1:
            event = {**event, "data": {"n": -n}}  # forged: changed after signing
        put(encode_event(event), partition=n % 2)
        if n % 9 == 0:
            put(encode_event(f.event("stranger")))  # unknown signer
        if n % 11 == 4:
            put(b'{"specversion": "1.0"')  # malformed
        if n in (3, 17):
            put(encode_event(twice), partition=1)  # sealed, then a duplicate in a later block
        if n == 12:
            put(encode_event(f.event("publisher-2")))  # not registered yet
            grant = identity.PublisherRegistered(
                did=f.did("publisher-2"),
                name="p2",
                topic=CLINICAL_EVENTS,
                types=("org.careledger.clinical.*",),
            )
            put(
                encode_event(f.identity_event(identity.PUBLISHER_REGISTERED, grant)),
                topic=IDENTITY_EVENTS,
            )
    return count


def _registered_by_now(rig: Rig) -> None:
    """Events of the publisher the identity event of `_mixed_input` registered."""
    for n in range(7):
        rig.topics.append(CLINICAL_EVENTS, encode_event(rig.factory.event("publisher-2")), n % 2)


def _seal_stepwise(rig: Rig, signatures: SignaturePool | None, *, later: bool = False) -> None:
    sealer, _ = rig.sealer(signatures=signatures, batch_size=BATCH)
    sealer.recover()
    for _ in range(100):
        sealer.step()
    if later:
        _registered_by_now(rig)
        for _ in range(100):
            sealer.step()
    rig.clock.now += 1
    sealer.step()  # the last, partial block: cut by time


def _outcome(rig: Rig) -> tuple[list[bytes], list[tuple[str, str, str, int, int]]]:
    rig.publisher.flush(timeout=1)
    records = [json.loads(value) for value in rig.publisher.rejections]
    rejections = [
        (r["reason"], r["detail"], r["topic"], r["partition"], r["offset"]) for r in records
    ]
    return rig.chain(), rejections


def test_two_workers_seal_and_reject_exactly_what_one_does(pool: SignaturePool) -> None:
    in_process, pooled = Rig(max_events=3), Rig(max_events=3)
    assert _mixed_input(in_process) == _mixed_input(pooled)  # the same deterministic stream
    _seal_stepwise(in_process, None, later=True)
    _seal_stepwise(pooled, pool, later=True)
    chain, rejections = _outcome(pooled)
    assert (chain, rejections) == _outcome(in_process)
    assert {r[0] for r in rejections} == {
        "bad_signature",
        "unknown_signer",
        "malformed",
        "duplicate",
    }
    verify_chain(chain, trusted_genesis=pooled.factory.genesis_event)
    signers = {event["signer"] for raw in chain[1:] for event in json.loads(raw)["events"]}
    assert pooled.factory.did("publisher-2") in signers  # the registry changed mid-stream


class FlakyLease:
    """A `WriterLease` that is lost once (at the `lose_at`-th renewal), then taken back."""

    def __init__(self, lose_at: int) -> None:
        self.calls = 0
        self.lose_at = lose_at

    def acquire(self) -> bool:
        self.calls += 1
        return self.calls != self.lose_at

    def release(self) -> None:
        pass


def test_a_lease_lost_with_a_batch_in_flight_drops_it_and_reads_it_again(
    pool: SignaturePool,
) -> None:
    in_process, pooled = Rig(max_events=3), Rig(max_events=3)
    _mixed_input(in_process)
    _mixed_input(pooled)
    _seal_stepwise(in_process, None)
    expected_chain, expected_rejections = _outcome(in_process)
    lease = FlakyLease(lose_at=6)  # mid-stream, with a batch read ahead and being checked
    sealer, _ = pooled.sealer(signatures=pool, batch_size=BATCH, lease=lease)
    runner = threading.Thread(target=sealer.run)
    runner.start()
    try:
        last = len(expected_chain) - 1
        _wait_for_height(pooled, last - 1)  # every block cut by count is stored
        time.sleep(0.3)  # the last messages are read into the open block ...
        pooled.clock.now += 1  # ... which is then cut by time
        _wait_for_height(pooled, last)
    finally:
        sealer.stop()
        runner.join(timeout=10)
    assert lease.calls > lease.lose_at  # the lease was lost and taken back
    chain, rejections = _outcome(pooled)
    assert chain == expected_chain
    # Rejections read after the last cut before the loss are read (and recorded) again:
    # at-least-once on ledger.rejected, in order, nothing missing.
    assert list(dict.fromkeys(rejections)) == expected_rejections


def _wait_for_height(rig: Rig, height: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        head = rig.store.head()
        if head is not None and head.height >= height:
            return
        assert time.monotonic() < deadline, f"no block {height} within 30 s"
        time.sleep(0.01)


def test_a_dead_worker_stops_the_loop_which_reports_it_and_closes_the_pool() -> None:
    rig = Rig(max_events=3)
    rig.publish(5)
    signatures = SignaturePool(2)
    signatures.start()
    pids = signatures.worker_pids
    os.kill(pids[1], signal.SIGKILL)
    sealer, source = rig.sealer(signatures=signatures)
    failures: list[str] = []
    component = SealingComponent(
        sealer=sealer,
        source=source,
        publisher=rig.publisher,
        signatures=signatures,
        on_failure=failures.append,
    )
    component.start()
    deadline = time.monotonic() + 20
    while not failures and time.monotonic() < deadline:
        time.sleep(0.01)
    component.stop()
    assert failures == ["the sealer stopped: SignaturePoolError"]
    with pytest.raises(NotReadyError, match="sealer stopped: SignaturePoolError"):
        component.check()
    assert rig.sealed_ids() == []  # nothing admitted without its verdict
    assert source.closed
    with pytest.raises(SignaturePoolError, match="closed"):
        signatures.submit([])  # closed by the component, with its workers


def test_a_read_ahead_that_finds_the_broker_away_only_waits_for_the_next_step(
    pool: SignaturePool,
) -> None:
    rig = Rig(max_events=3)
    ids = rig.publish(10)
    sealer, source = rig.sealer(signatures=pool, batch_size=BATCH)
    sealer.recover()
    sealer.step()  # admits 0-3, reads 4-7 ahead
    source.fail_polls = 1
    sealer.step()  # admits 4-7; the read-ahead fails and is not retried here
    assert source.fail_polls == 0
    assert len(rig.sealed_ids()) == 6
    sealer.step()  # reads 8-9 itself
    rig.clock.now += 1
    sealer.step()
    assert rig.sealed_ids() == ids
    assert sealer.trouble is None
