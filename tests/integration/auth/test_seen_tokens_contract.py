"""One contract for every SeenTokens: a jti is accepted once while its token lives."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from shared.auth import MemorySeenTokens, TokenError, TokenFailure
from shared.auth.sql import seen_tokens_table
from tests.integration.auth.conftest import SeenBackend

ALICE = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
BOB = "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH"
NOW = datetime(2025, 11, 25, 12, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=65)


def replayed(backend: SeenBackend, issuer: str, jti: str, now: datetime) -> bool:
    try:
        backend.seen.remember(issuer, jti, now + timedelta(seconds=65), now)
    except TokenError as exc:
        return exc.reason is TokenFailure.REPLAYED
    return False


def test_a_jti_is_accepted_once(seen_backend: SeenBackend) -> None:
    assert not replayed(seen_backend, ALICE, "j-1", NOW)
    assert replayed(seen_backend, ALICE, "j-1", NOW + timedelta(seconds=30))


def test_the_key_is_issuer_and_jti(seen_backend: SeenBackend) -> None:
    assert not replayed(seen_backend, ALICE, "j-1", NOW)
    assert not replayed(seen_backend, BOB, "j-1", NOW)
    assert not replayed(seen_backend, ALICE, "j-2", NOW)


def test_another_replica_sees_the_same_table(seen_backend: SeenBackend) -> None:
    seen_backend.seen.remember(ALICE, "j-1", LATER, NOW)
    with pytest.raises(TokenError) as caught:
        seen_backend.other.remember(ALICE, "j-1", LATER, NOW)
    assert caught.value.reason is TokenFailure.REPLAYED


def test_expired_entries_are_forgotten_and_purged(seen_backend: SeenBackend) -> None:
    for index in range(20):
        seen_backend.seen.remember(ALICE, f"old-{index}", LATER, NOW)
    # At LATER every old entry has expired: the jti may be used again, and the table shrinks.
    seen_backend.seen.remember(ALICE, "old-0", LATER + timedelta(seconds=60), LATER)
    assert _rows(seen_backend) == 1


def test_times_in_other_zones_compare_as_instants(seen_backend: SeenBackend) -> None:
    plus_two = timezone(timedelta(hours=2))
    seen_backend.seen.remember(ALICE, "tz", LATER.astimezone(plus_two), NOW.astimezone(plus_two))
    assert replayed(seen_backend, ALICE, "tz", NOW + timedelta(seconds=64))
    assert not replayed(seen_backend, ALICE, "tz", LATER)


def test_an_empty_issuer_or_jti_is_refused(seen_backend: SeenBackend) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        seen_backend.seen.remember("", "j", LATER, NOW)
    with pytest.raises(ValueError, match="non-empty"):
        seen_backend.seen.remember(ALICE, "", LATER, NOW)


def test_concurrent_uses_of_one_jti_succeed_exactly_once(seen_backend: SeenBackend) -> None:
    attempts = 8
    barrier = threading.Barrier(attempts)
    outcomes: list[str] = []
    lock = threading.Lock()

    def use(index: int) -> None:
        table = seen_backend.seen if index % 2 else seen_backend.other
        barrier.wait()
        try:
            table.remember(ALICE, "race", LATER, NOW)
            outcome = "accepted"
        except TokenError as exc:
            outcome = str(exc.reason)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=use, args=(index,)) for index in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["accepted"] + ["replayed"] * (attempts - 1)


def _rows(backend: SeenBackend) -> int:
    if isinstance(backend.seen, MemorySeenTokens):
        return len(backend.seen)
    assert backend.database is not None
    with backend.database.read() as connection:
        count = select(func.count()).select_from(seen_tokens_table)
        return int(connection.execute(count).scalar_one())
