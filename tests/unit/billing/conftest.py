"""The billing service built on memory adapters, a fake clock and deterministic ids.

`World` holds the engine (consultations in), the service (tariffs, payments, disputes, voids),
and a directory whose registry, taken from genesis, has one practitioner in good standing.
Consultation events are signed by the genesis publisher (`publisher-demo`) of a `ChainFactory`.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.billing.adapters.memory import MemoryBillingStore
from services.billing.core.journal import Account, balances
from services.billing.core.settlement import Party
from services.billing.engine import BillingEngine
from services.billing.following import Directory
from services.billing.ledger import BillingLedger
from services.billing.service import BillingService, PaymentOutcome
from shared.admission import Role, Standing, registry_from_genesis
from shared.crypto import SigningKey
from shared.envelope import encode_event, uuid7
from shared.events.billing import CONSULTATION_COMPLETED
from shared.outbox import MemoryOutbox
from shared.pseudonym import patient_pseudonym
from shared.store import MemoryDatabase, MemoryTransaction
from shared.topics import CLINICAL_EVENTS
from tests.unit.billing.examples import CONTRACT_DOCUMENT
from tests.unit.core.chainfactory import ChainFactory

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PSEUDONYM_KEY = bytes(range(32))
CREDENTIAL = "ef" * 32
#: The demo contract as the first deployed version.
CONTRACT_V1 = {**CONTRACT_DOCUMENT, "version": 1}


@dataclass
class FakeClock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class CountingMetrics:
    """`BillingMetrics` that remembers every count."""

    consultations: Counter[tuple[str, str]] = field(default_factory=Counter)
    payments: Counter[tuple[str, str]] = field(default_factory=Counter)

    def consultation(self, outcome: str, reason: str) -> None:
        self.consultations[(outcome, str(reason))] += 1

    def payment(self, party: str, outcome: str) -> None:
        self.payments[(party, outcome)] += 1


@dataclass
class World:
    """Everything a use-case test needs; `chain` supplies the keys and the genesis."""

    chain: ChainFactory
    clock: FakeClock
    database: MemoryDatabase
    store: MemoryBillingStore
    outbox: MemoryOutbox
    ledger: BillingLedger[MemoryTransaction]
    directory: Directory
    metrics: CountingMetrics
    engine: BillingEngine[MemoryTransaction]
    service: BillingService[MemoryTransaction]
    notified: list[int]
    extra_keys: dict[str, SigningKey] = field(default_factory=dict)

    @property
    def admin(self) -> str:
        return self.chain.config.admin

    def key(self, name: str) -> SigningKey:
        if name in self.chain.keys:
            return self.chain.keys[name]
        return self.extra_keys.setdefault(name, SigningKey.from_seed(name.encode().ljust(32, b"#")))

    def did(self, name: str) -> str:
        return self.key(name).did

    def pseudonym(self, name: str) -> str:
        return patient_pseudonym(PSEUDONYM_KEY, self.did(name))

    # --- input --------------------------------------------------------------------------

    def consultation_data(self, encounter: str = "enc-1", **changes: Any) -> dict[str, Any]:
        return {
            "encounter_id": encounter,
            "practitioner": self.did("practitioner"),
            "patient": self.pseudonym("patient"),
            "plan_id": "copay-only",
            "service_code": "98005",
            "modifiers": [],
            "place_of_service": "10",
            "start": "2026-05-04T09:00:00Z",
            "end": "2026-05-04T09:25:00Z",
            **changes,
        }

    def consultation(
        self,
        encounter: str = "enc-1",
        *,
        signer: str = "publisher",
        event_type: str = CONSULTATION_COMPLETED,
        data: Any = None,
        **changes: Any,
    ) -> bytes:
        """A consultation event signed by `signer` (the genesis publisher), as Kafka bytes."""
        payload = self.consultation_data(encounter, **changes) if data is None else data
        event = self.chain.event(signer, event_type, payload)
        return encode_event(event)

    def bill(self, encounter: str = "enc-1", **changes: Any) -> str:
        """Hand one fresh consultation event to the engine; what became of it."""
        return self.engine.handle(self.consultation(encounter, **changes))

    def deploy(self, document: dict[str, Any] | None = None) -> None:
        """Deploy a contract as the admin, then let a second pass (billing is strictly after)."""
        self.service.deploy_contract(self.admin, CONTRACT_V1 if document is None else document)
        self.clock.advance(seconds=1)

    def invoice_id(self, encounter: str = "enc-1") -> str:
        found = self.store.invoice_for_encounter(encounter)
        assert found is not None, f"no invoice for {encounter}"
        return found.invoice_id

    def pay(
        self, invoice_id: str, party: Party, amount: int, *, key: str, as_: str | None = None
    ) -> PaymentOutcome:
        return self.service.pay(
            self.admin if as_ is None else self.did(as_),
            invoice_id,
            party=party,
            amount=amount,
            currency="USD",
            reference=f"ref-{key}",
            idempotency_key=key,
        )

    # --- output -------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """Every event the service put into the outbox, in order."""
        return [json.loads(entry.message.value) for entry in self.outbox.pending(10_000)]

    def types(self) -> list[str]:
        """The short types (`invoice.issued`, ...) of the events in the outbox, in order."""
        return [
            event["type"].removeprefix("org.careledger.billing.").removesuffix(".v1")
            for event in self.events()
        ]

    def balances(self) -> dict[Account, int]:
        """The balances of the whole journal; asserts that they sum to 0."""
        totals = balances(self.store.entries())
        assert sum(totals.values()) == 0, totals
        return totals

    def revoke_practitioner(self) -> None:
        registry, height = self.directory.current()
        standing = registry.roles_of(self.did("practitioner"))[Role.PRACTITIONER]
        revoked = standing.model_copy(update={"revoked_at": height + 1})
        self.directory.replace(
            registry.with_standing(self.did("practitioner"), revoked), height + 1
        )


def build_world() -> World:
    chain = ChainFactory()
    clock = FakeClock()
    database = MemoryDatabase()
    store = MemoryBillingStore(database=database)
    outbox = MemoryOutbox(database=database)
    ids = (str(uuid.UUID(int=n, version=4)) for n in itertools.count(1))
    event_ids = itertools.count(1)
    ledger: BillingLedger[MemoryTransaction] = BillingLedger(
        outbox=outbox,
        key=chain.keys["billing"],
        genesis=chain.config,
        clock=clock,
        new_event_id=lambda now: uuid7(
            int(now.timestamp() * 1000), next(event_ids).to_bytes(10, "big")
        ),
        new_id=lambda: next(ids),
    )
    standing = Standing(
        role=Role.PRACTITIONER,
        name="physician",
        since=1,
        topic=CLINICAL_EVENTS,
        types=("org.careledger.clinical.*",),
        issuer=chain.did("authority"),
        credential=CREDENTIAL,
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    registry = registry_from_genesis(chain.config).with_standing(
        chain.did("practitioner"), standing
    )
    directory = Directory(registry, 1)
    metrics = CountingMetrics()
    notified: list[int] = []
    common: dict[str, Any] = {
        "uow": database,
        "book": store,
        "ledger": ledger,
        "metrics": metrics,
        "notify": lambda: notified.append(1),
    }
    return World(
        chain=chain,
        clock=clock,
        database=database,
        store=store,
        outbox=outbox,
        ledger=ledger,
        directory=directory,
        metrics=metrics,
        engine=BillingEngine(directory=directory, **common),
        service=BillingService(
            genesis=chain.config,
            pseudonym=lambda did: patient_pseudonym(PSEUDONYM_KEY, did),
            **common,
        ),
        notified=notified,
    )


@pytest.fixture
def world() -> World:
    return build_world()


@pytest.fixture
def deployed(world: World) -> World:
    """A world with the demo contract deployed as version 1."""
    world.deploy()
    return world


@pytest.fixture
def issued(deployed: World) -> tuple[World, str]:
    """A copay-only 98005 invoice (payer 9500, patient 2500) for enc-1; the outbox emptied."""
    assert deployed.bill("enc-1") == "invoiced"
    return deployed, deployed.invoice_id("enc-1")


def clear_outbox(world: World) -> None:
    world.outbox.mark_sent([entry.seq for entry in world.outbox.pending(10_000)])
