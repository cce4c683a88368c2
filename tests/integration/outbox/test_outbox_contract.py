"""The OutboxWriter + OutboxStore contract, run against memory, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from shared.outbox import DuplicateEventError, OutboxMessage, message_for_event
from tests.integration.outbox.conftest import OutboxBackend

pytestmark = pytest.mark.integration


def _event(n: int, *, source: str = "urn:test", subject: str | None = None) -> OutboxMessage:
    event: dict[str, object] = {"specversion": "1.0", "id": f"ev-{n}", "source": source}
    if subject is not None:
        event["subject"] = subject
    event["data"] = {"n": n, "note": "naïve"}
    return message_for_event(event, topic="records.events")


def _write(backend: OutboxBackend, note_id: str, *messages: OutboxMessage) -> None:
    """A use case: the state change and its events in one transaction."""
    with backend.uow.transaction() as tx:
        backend.notes.put(tx, note_id, f"body of {note_id}")
        backend.outbox.add(tx, messages)


def test_committed_messages_are_pending_in_seq_order(outbox_backend: OutboxBackend) -> None:
    _write(outbox_backend, "a", _event(1), _event(2))
    _write(outbox_backend, "b", _event(3, subject="patient-7"))
    _write(outbox_backend, "c", _event(4))

    pending = outbox_backend.outbox.pending(10)
    assert [e.message.dedup_key[1] for e in pending] == ["ev-1", "ev-2", "ev-3", "ev-4"]
    seqs = [e.seq for e in pending]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 4
    assert pending[2].message == _event(3, subject="patient-7")
    assert all(e.created_at.tzinfo is not None for e in pending)
    assert outbox_backend.outbox.pending_count() == 4


def test_messages_round_trip_byte_for_byte(outbox_backend: OutboxBackend) -> None:
    odd = OutboxMessage(
        topic="billing.events",
        key=None,
        value=b"\x00\xff{not json}\n",
        headers=(("content-type", b"application/cloudevents+json"), ("trace", b"\x00\x01")),
        dedup_key=("urn:odd", "1"),
    )
    _write(outbox_backend, "odd", odd)
    assert outbox_backend.outbox.pending(1)[0].message == odd


def test_pending_honours_the_limit(outbox_backend: OutboxBackend) -> None:
    _write(outbox_backend, "a", *[_event(n) for n in range(7)])
    assert [e.message.dedup_key[1] for e in outbox_backend.outbox.pending(3)] == [
        "ev-0",
        "ev-1",
        "ev-2",
    ]
    assert outbox_backend.outbox.pending(0) == []


def test_mark_sent_retires_exactly_those_entries(outbox_backend: OutboxBackend) -> None:
    _write(outbox_backend, "a", *[_event(n) for n in range(5)])
    first, second, third, *_ = outbox_backend.outbox.pending(5)
    outbox_backend.outbox.mark_sent([first.seq, third.seq])
    outbox_backend.outbox.mark_sent([first.seq, 999_999])  # idempotent; unknown seqs ignored
    outbox_backend.outbox.mark_sent([])
    remaining = outbox_backend.outbox.pending(10)
    assert [e.message.dedup_key[1] for e in remaining] == ["ev-1", "ev-3", "ev-4"]
    assert remaining[0].seq == second.seq
    assert outbox_backend.outbox.pending_count() == 3


def test_a_rolled_back_transaction_leaves_neither_state_nor_message(
    outbox_backend: OutboxBackend,
) -> None:
    def fail_after_writing() -> None:
        with outbox_backend.uow.transaction() as tx:
            outbox_backend.notes.put(tx, "lost", "never")
            outbox_backend.outbox.add(tx, [_event(1)])
            raise RuntimeError("the use case failed after writing")

    with pytest.raises(RuntimeError):
        fail_after_writing()
    assert outbox_backend.notes.get("lost") is None
    assert outbox_backend.outbox.pending(10) == []
    assert outbox_backend.outbox.pending_count() == 0
    _write(outbox_backend, "lost", _event(1))  # nothing of it was kept, not even the key
    assert outbox_backend.notes.get("lost") == "body of lost"
    assert outbox_backend.outbox.pending_count() == 1


def test_uncommitted_messages_are_invisible_to_the_relay(outbox_backend: OutboxBackend) -> None:
    with outbox_backend.uow.transaction() as tx:
        outbox_backend.outbox.add(tx, [_event(1)])
        assert outbox_backend.outbox.pending(10) == []
        assert outbox_backend.outbox.pending_count() == 0
    assert outbox_backend.outbox.pending_count() == 1


def test_the_same_event_twice_is_an_error(outbox_backend: OutboxBackend) -> None:
    _write(outbox_backend, "a", _event(1))
    with pytest.raises(DuplicateEventError) as raised:
        _write(outbox_backend, "b", _event(2), _event(1))
    assert ("urn:test", "ev-1") in raised.value.dedup_keys
    assert outbox_backend.notes.get("b") is None  # the whole transaction rolled back
    with pytest.raises(DuplicateEventError):
        _write(outbox_backend, "c", _event(3), _event(3))
    # Still refused after it was sent: (source, id) names one event forever.
    outbox_backend.outbox.mark_sent([e.seq for e in outbox_backend.outbox.pending(10)])
    with pytest.raises(DuplicateEventError):
        _write(outbox_backend, "d", _event(1))
    # Same id from another source is another event.
    _write(outbox_backend, "e", _event(1, source="urn:other"))
    assert outbox_backend.outbox.pending_count() == 1


def test_an_empty_add_writes_nothing(outbox_backend: OutboxBackend) -> None:
    _write(outbox_backend, "quiet")
    assert outbox_backend.notes.get("quiet") is not None
    assert outbox_backend.outbox.pending_count() == 0


def test_concurrent_writers_all_commit(outbox_backend: OutboxBackend) -> None:
    workers, rounds = 6, 20
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(rounds):
                _write(outbox_backend, f"w{worker}-{i}", _event(i, source=f"urn:w{worker}"))
        except BaseException as exc:  # asserted on the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    pending = outbox_backend.outbox.pending(workers * rounds + 1)
    assert len(pending) == workers * rounds == outbox_backend.outbox.pending_count()
    assert len({e.seq for e in pending}) == workers * rounds
    # Each writer's own events are in its commit order.
    for worker in range(workers):
        mine = [e.message.dedup_key for e in pending if e.message.dedup_key[0] == f"urn:w{worker}"]
        assert mine == [(f"urn:w{worker}", f"ev-{i}") for i in range(rounds)]


def test_reopening_keeps_pending_entries(durable_outbox_backend: OutboxBackend) -> None:
    assert durable_outbox_backend.reopen is not None
    _write(durable_outbox_backend, "a", _event(1), _event(2), _event(3))
    durable_outbox_backend.outbox.mark_sent([durable_outbox_backend.outbox.pending(1)[0].seq])
    before = durable_outbox_backend.outbox.pending(10)

    again = durable_outbox_backend.reopen()  # closes the first database, migrates again
    assert again.outbox.pending(10) == before
    assert again.notes.get("a") == "body of a"
    _write(again, "b", _event(4))
    assert again.outbox.pending(10)[-1].seq > before[-1].seq
    with pytest.raises(DuplicateEventError):
        _write(again, "c", _event(1))


def test_created_at_comes_from_the_clock_in_utc(outbox_backend: OutboxBackend) -> None:
    moment = datetime(2025, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)
    outbox = type(outbox_backend.outbox)(database=outbox_backend.uow, clock=lambda: moment)
    with outbox_backend.uow.transaction() as tx:
        outbox.add(tx, [_event(1)])
    (entry,) = outbox.pending(1)
    assert entry.created_at == moment
