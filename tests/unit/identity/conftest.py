"""The identity service built on memory adapters, a fake clock and deterministic keys."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.identity.adapters.memory import MemoryIdentityJournal
from services.identity.ports import IdentityMetrics
from services.identity.service import IdentityService
from shared.credentials import License, PractitionerLicense, issue_practitioner_credential
from shared.envelope import uuid7
from shared.outbox import MemoryOutbox
from shared.store import MemoryDatabase
from tests.unit.core.chainfactory import ChainFactory

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PSEUDONYM_KEY = bytes(range(32))
VALID_NPI = "1234567893"  # the CMS example NPI: Luhn over 80840 + the first nine digits holds


@dataclass
class FakeClock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class World:
    """Everything a use-case test needs; `chain` supplies the keys and the genesis."""

    chain: ChainFactory
    clock: FakeClock
    database: MemoryDatabase
    journal: MemoryIdentityJournal
    outbox: MemoryOutbox
    service: IdentityService[Any]
    notified: list[int] = field(default_factory=list)

    def did(self, name: str) -> str:
        return self.chain.did(name)

    def events(self) -> list[dict[str, Any]]:
        """Every event the service put into the outbox, in order."""
        return [json.loads(entry.message.value) for entry in self.outbox.pending(1000)]

    def seal_everything(self, height: int) -> None:
        """Pretend the chain sealed every journal entry not sealed yet, at `height`."""
        ids = {event["id"]: height for event in self.events()}
        with self.database.transaction() as tx:
            self.journal.mark_sealed(tx, ids)

    def credential(
        self,
        subject: str = "practitioner",
        issuer: str = "authority",
        *,
        npi: str = VALID_NPI,
        valid_from: str = "2026-01-01T00:00:00Z",
        valid_until: str = "2027-01-01T00:00:00Z",
        number: str = "A12345",
    ) -> dict[str, Any]:
        license_subject = PractitionerLicense(
            id=self.did(subject),
            npi=npi,
            license=License(
                number=number, jurisdiction="US-CA", expires=datetime(2027, 6, 30).date()
            ),
            role="physician",  # type: ignore[arg-type]  # validated into PractitionerRole
            specialty="207R00000X",
        )
        return issue_practitioner_credential(
            self.chain.keys[issuer],
            subject=license_subject,
            valid_from=valid_from,
            valid_until=valid_until,
            credential_id=f"urn:uuid:{uuid7(1, number.encode().ljust(10, b'0')[:10])}",
            created="2026-01-01T00:00:00Z",
        )


def build_world(metrics: IdentityMetrics | None = None) -> World:
    chain = ChainFactory()
    clock = FakeClock()
    database = MemoryDatabase()
    journal = MemoryIdentityJournal(database=database)
    outbox = MemoryOutbox(database=database)
    counter = iter(range(1, 1_000_000))
    notified: list[int] = []

    def new_id(now: datetime) -> str:
        return uuid7(int(now.timestamp() * 1000), next(counter).to_bytes(10, "big"))

    service: IdentityService[Any] = IdentityService(
        uow=database,
        journal=journal,
        outbox=outbox,
        key=chain.keys["identity"],
        genesis=chain.config,
        pseudonym_key=PSEUDONYM_KEY,
        clock=clock,
        new_id=new_id,
        notify=lambda: notified.append(1),
        metrics=metrics,
    )
    return World(chain, clock, database, journal, outbox, service, notified)


@pytest.fixture
def world() -> World:
    return build_world()
