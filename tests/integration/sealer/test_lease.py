"""The single-writer lease on SQLite and PostgreSQL: one sealer seals, a second stands by."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.sealer.adapters.sql import SqlChainStore, migrate_sealer
from services.sealer.core.cut import CutPolicy
from services.sealer.errors import LeaseLostError
from services.sealer.service import Sealer
from shared.block import block_from_json
from shared.chain import verify_chain
from shared.envelope import encode_event
from shared.store import Database
from shared.topics import CLINICAL_EVENTS
from tests.integration.store.backends import reopen, sql_database
from tests.unit.core.chainfactory import ChainFactory
from tests.unit.sealer.fakes import FakePublisher, FakeSource, FakeTopics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PARAMS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", marks=[pytest.mark.postgres], id="postgres"),
]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=PARAMS)
def two_databases(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Database, Database]]:
    with sql_database(request.param, tmp_path) as (database, args):
        migrate_sealer(database)
        other = reopen(args)
        try:
            yield database, other
        finally:
            other.close()


def test_one_holder_at_a_time_until_it_expires_or_is_released(
    two_databases: tuple[Database, Database],
) -> None:
    clock = Clock()
    first_db, second_db = two_databases
    a = SqlChainStore(database=first_db, holder="a", lease_seconds=10, clock=clock)
    b = SqlChainStore(database=second_db, holder="b", lease_seconds=10, clock=clock)
    assert a.acquire()
    assert not b.acquire()
    clock.now += 9
    assert a.acquire()  # renewed: b still waits
    clock.now += 9
    assert not b.acquire()
    clock.now += 11  # a stopped renewing
    assert b.acquire()
    assert not a.acquire()
    factory = ChainFactory()
    with pytest.raises(LeaseLostError):
        a.append(factory.blocks[0], factory.state, [], {})  # fenced in the transaction
    assert a.head() is None
    b.append(factory.blocks[0], factory.state, [], {})
    b.release()
    assert a.acquire()


def _sealer(store: SqlChainStore, topics: FakeTopics, factory: ChainFactory) -> Sealer:
    return Sealer(
        store=store,
        source=FakeSource(topics),
        publisher=FakePublisher(),
        key=factory.keys["sealer"],
        genesis_event=factory.genesis_event,
        policy=CutPolicy(max_events=5, max_wait=0.01),
        lease=store,
        lease_renew_every=0.05,
        standby_poll=0.02,
        idle_wait=0.01,
    )


def _wait(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not true in time"
        time.sleep(0.01)


def test_a_second_sealer_stands_by_and_takes_over_exactly(
    two_databases: tuple[Database, Database],
) -> None:
    first_db, second_db = two_databases
    factory = ChainFactory()
    topics = FakeTopics()
    ids = []

    def publish(n: int) -> None:
        for _ in range(n):
            event = factory.event()
            topics.append(CLINICAL_EVENTS, encode_event(event))
            ids.append(event["id"])

    reader = SqlChainStore(database=first_db)
    active = _sealer(SqlChainStore(database=first_db, holder="a", lease_seconds=2), topics, factory)
    standby = _sealer(
        SqlChainStore(database=second_db, holder="b", lease_seconds=2), topics, factory
    )
    publish(12)
    threads = [threading.Thread(target=s.run) for s in (active, standby)]
    threads[0].start()
    _wait(lambda: (head := reader.head()) is not None and head.state.head.tree_size == 13)
    threads[1].start()
    _wait(lambda: (standby.trouble or "").startswith("standby"))
    publish(7)
    _wait(lambda: (head := reader.head()) is not None and head.state.head.tree_size == 20)
    assert (standby.trouble or "").startswith("standby")
    active.stop()  # releases the lease: the standby takes over at once
    threads[0].join(5)
    _wait(lambda: standby.trouble is None)
    publish(6)
    _wait(lambda: (head := reader.head()) is not None and head.state.head.tree_size == 26)
    standby.stop()
    threads[1].join(5)

    head = reader.head()
    assert head is not None
    blocks = [reader.block(h) for h in range(head.height + 1)]
    verify_chain([b for b in blocks if b], trusted_genesis=factory.genesis_event)
    sealed = [e["id"] for b in blocks[1:] if b for e in block_from_json(b).events]
    assert sealed == ids
