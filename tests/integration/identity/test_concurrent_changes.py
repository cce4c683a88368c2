"""Racing identical changes on SQLite and PostgreSQL: one event, the same answer for all."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.identity.adapters.sql import SqlIdentityJournal, migrate_identity_store
from services.identity.service import IdentityService, Outcome
from shared.envelope import uuid7
from shared.outbox import SqlOutbox, migrate_outbox
from tests.integration.store.backends import SQL_BACKENDS, sql_database
from tests.unit.core.chainfactory import ChainFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PARAMS = [
    pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else [], id=kind)
    for kind in SQL_BACKENDS
]
CALLERS = 6


@pytest.mark.parametrize("kind", PARAMS)
def test_racing_registrations_write_one_event(kind: str, tmp_path: Path) -> None:
    chain = ChainFactory()
    counter = iter(range(1, 1000))
    lock = threading.Lock()

    def new_id(now: datetime) -> str:
        with lock:
            n = next(counter)
        return uuid7(int(now.timestamp() * 1000), n.to_bytes(10, "big"))

    with sql_database(kind, tmp_path) as (database, _):
        migrate_identity_store(database)
        migrate_outbox(database)
        outbox = SqlOutbox(database=database)
        service: IdentityService[Any] = IdentityService(
            uow=database,
            journal=SqlIdentityJournal(database=database),
            outbox=outbox,
            key=chain.keys["identity"],
            genesis=chain.config,
            pseudonym_key=bytes(32),
            clock=lambda: datetime.now(UTC),
            new_id=new_id,
        )
        start = threading.Barrier(CALLERS)
        outcomes: list[Outcome] = []

        def register() -> None:
            start.wait()
            outcome = service.register_patient(chain.did("stranger"))
            with lock:
                outcomes.append(outcome)

        threads = [threading.Thread(target=register) for _ in range(CALLERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(outcomes) == CALLERS
        assert sum(outcome.created for outcome in outcomes) == 1
        assert len({repr(outcome.body) for outcome in outcomes}) == 1
        assert outbox.pending_count() == 1
