"""The ProcessedEvents contract (consumer-side de-duplication), on memory, SQLite, PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from tests.integration.outbox.conftest import InboxBackend

pytestmark = pytest.mark.integration

KEY = ("urn:records", "ev-1")


def _mark(backend: InboxBackend, key: tuple[str, str]) -> bool:
    with backend.uow.transaction() as tx:
        return bool(backend.processed.add_if_new(tx, key))


def test_a_key_is_new_once(inbox_backend: InboxBackend) -> None:
    assert _mark(inbox_backend, KEY)
    assert not _mark(inbox_backend, KEY)
    with inbox_backend.uow.transaction() as tx:
        assert inbox_backend.processed.add_if_new(tx, ("urn:records", "ev-2"))
        assert not inbox_backend.processed.add_if_new(tx, ("urn:records", "ev-2"))


def test_source_and_id_together_are_the_key(inbox_backend: InboxBackend) -> None:
    assert _mark(inbox_backend, ("urn:a", "1"))
    assert _mark(inbox_backend, ("urn:b", "1"))
    assert _mark(inbox_backend, ("urn:a", "2"))


def test_a_rolled_back_mark_is_forgotten(inbox_backend: InboxBackend) -> None:
    def apply_then_crash() -> None:
        with inbox_backend.uow.transaction() as tx:
            assert inbox_backend.processed.add_if_new(tx, KEY)
            raise RuntimeError("the effect failed")

    with pytest.raises(RuntimeError):
        apply_then_crash()
    assert _mark(inbox_backend, KEY)  # the redelivered event is applied this time


def test_each_consumer_deduplicates_on_its_own(inbox_backend: InboxBackend) -> None:
    assert _mark(inbox_backend, KEY)
    with inbox_backend.uow.transaction() as tx:
        assert inbox_backend.other_consumer.add_if_new(tx, KEY)
        assert not inbox_backend.other_consumer.add_if_new(tx, KEY)


def test_an_empty_key_is_refused(inbox_backend: InboxBackend) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        _mark(inbox_backend, ("", "1"))


def test_racing_consumers_apply_an_event_once(inbox_backend: InboxBackend) -> None:
    wins: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def race(key: tuple[str, str]) -> None:
        try:
            barrier.wait(10)
            wins.append(_mark(inbox_backend, key))
        except BaseException as exc:  # asserted on the main thread
            errors.append(exc)

    for n in range(5):
        barrier.reset()
        threads = [threading.Thread(target=race, args=(("urn:race", str(n)),)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert wins.count(True) == 5
    assert wins.count(False) == 25


def test_reopening_keeps_processed_keys(durable_inbox_backend: InboxBackend) -> None:
    assert durable_inbox_backend.reopen is not None
    assert _mark(durable_inbox_backend, KEY)
    again = durable_inbox_backend.reopen()
    assert not _mark(again, KEY)
    assert _mark(again, ("urn:records", "ev-9"))
