"""The records service built on memory adapters, a fake clock and deterministic keys."""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.records.adapters.memory import MemoryRecordsStore
from services.records.adapters.sql import SqlRecordsStore, migrate_records_store
from services.records.cipher import RecordCipher
from services.records.core.model import Practitioner, SealedMark
from services.records.ledger import RecordsLedger
from services.records.reading import RecordReader
from services.records.service import RecordsService
from shared.crypto import SigningKey
from shared.envelope import uuid7
from shared.outbox import MemoryOutbox, SqlOutbox, migrate_outbox
from shared.pseudonym import patient_pseudonym
from shared.store import Database, MemoryDatabase
from tests.unit.core.chainfactory import ChainFactory

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PSEUDONYM_KEY = bytes(range(32))
CANARY = "CANARY-4b1d-records"


@dataclass
class FakeClock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def counting_random() -> Any:
    """Deterministic 'random' bytes: distinct for every call."""
    counter = itertools.count(1)

    def random_bytes(size: int) -> bytes:
        return next(counter).to_bytes(8, "big").rjust(size, b"\x5a")[:size]

    return random_bytes


@dataclass
class World:
    """Everything a use-case test needs; `chain` supplies the keys and the genesis."""

    chain: ChainFactory
    clock: FakeClock
    database: MemoryDatabase
    store: MemoryRecordsStore
    outbox: MemoryOutbox
    service: RecordsService[Any]
    reader: RecordReader[Any]
    extra_keys: dict[str, SigningKey] = field(default_factory=dict)

    def key(self, name: str) -> SigningKey:
        if name in self.chain.keys:
            return self.chain.keys[name]
        return self.extra_keys.setdefault(name, SigningKey.from_seed(name.encode().ljust(32, b"#")))

    def did(self, name: str) -> str:
        return self.key(name).did

    def pseudonym(self, name: str) -> str:
        return patient_pseudonym(PSEUDONYM_KEY, self.did(name))

    def events(self) -> list[dict[str, Any]]:
        """Every event the service put into the outbox, in order."""
        return [json.loads(entry.message.value) for entry in self.outbox.pending(10_000)]

    def register_practitioner(self, name: str, *, height: int = 1, **changes: Any) -> None:
        standing = {
            "did": self.did(name),
            "since": height,
            "issuer": self.chain.did("authority"),
            "credential": "ab" * 32,
            "valid_from": START - timedelta(days=30),
            "valid_until": START + timedelta(days=365),
            **changes,
        }
        self._apply(practitioners=[Practitioner(**standing)])

    def register_patient(self, name: str, *, height: int = 1) -> None:
        self._apply(patients={self.pseudonym(name): height})

    def seal_everything(self, height: int) -> None:
        """Pretend the chain sealed every event in the outbox at `height`."""
        marks = [
            SealedMark(event["id"], height, event["data"].get("commitment"))
            for event in self.events()
        ]
        self._apply(marks=marks)

    def _apply(self, **changes: Any) -> None:
        block = {"practitioners": [], "authorities": {}, "patients": {}, "marks": []}
        block.update(changes)
        with self.database.transaction() as tx:
            self.store.apply_block(tx, position={"height": 1}, **block)


def build_world(sql: Database | None = None) -> World:
    """The service on memory adapters, or on SQL ones over `sql` (migrated here)."""
    chain = ChainFactory()
    clock = FakeClock()
    database: Any
    if sql is None:
        database = MemoryDatabase()
        store: Any = MemoryRecordsStore(database=database)
        outbox: Any = MemoryOutbox(database=database)
    else:
        database = sql
        migrate_records_store(sql)
        migrate_outbox(sql)
        store = SqlRecordsStore(database=sql)
        outbox = SqlOutbox(database=sql)
    cipher = RecordCipher(key=chain.keys["records"], random_bytes=counting_random())
    ids = (str(uuid.UUID(int=n, version=4)) for n in itertools.count(1))
    event_ids = itertools.count(1)
    ledger = RecordsLedger(
        vault=store,
        chain=store,
        audit=store,
        outbox=outbox,
        cipher=cipher,
        key=chain.keys["records"],
        genesis=chain.config,
        pseudonym_key=PSEUDONYM_KEY,
        new_event_id=lambda now: uuid7(
            int(now.timestamp() * 1000), next(event_ids).to_bytes(10, "big")
        ),
    )
    common: dict[str, Any] = {
        "uow": database,
        "ledger": ledger,
        "vault": store,
        "consents": store,
        "chain": store,
        "cipher": cipher,
        "clock": clock,
        "new_id": lambda: next(ids),
    }
    return World(
        chain=chain,
        clock=clock,
        database=database,
        store=store,
        outbox=outbox,
        service=RecordsService(genesis=chain.config, **common),
        reader=RecordReader(audit=store, **common),
    )


@pytest.fixture
def world() -> World:
    return build_world()


def observation(text: str = CANARY) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": text},
        "valueQuantity": {"value": 72, "unit": "beats/minute"},
    }
