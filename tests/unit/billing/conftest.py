"""The billing service built on memory adapters, a fake clock and deterministic ids.

`World` holds the engine (sealed blocks in), the service (tariffs, payments, disputes, voids),
and a directory whose registry, taken from genesis, has one practitioner in good standing.
Consultation events are signed by the genesis publisher (`publisher-demo`) of a `ChainFactory`
and sealed there (admission included) in blocks that a `BlockFollower` follows, as the block
stream hands them to the engine.
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
from shared.admission import registry_from_genesis
from shared.block import Block
from shared.crypto import SigningKey
from shared.envelope import uuid7
from shared.events import identity
from shared.events.billing import CONSULTATION_COMPLETED
from shared.follower import BlockFollower, FollowedBlock, FollowerState
from shared.outbox import MemoryOutbox
from shared.pseudonym import patient_pseudonym
from shared.store import MemoryDatabase, MemoryTransaction
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
    height: int = -1
    faults: int = 0

    def consultation(self, outcome: str, reason: str) -> None:
        self.consultations[(outcome, str(reason))] += 1

    def payment(self, party: str, outcome: str) -> None:
        self.payments[(party, outcome)] += 1

    def follower_height(self, height: int) -> None:
        self.height = height

    def follower_fault(self) -> None:
        self.faults += 1


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
    follower: BlockFollower
    last: tuple[FollowedBlock, FollowerState] = field(init=False)
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
    ) -> dict[str, Any]:
        """A consultation event signed by `signer` (the genesis publisher), not sealed yet."""
        payload = self.consultation_data(encounter, **changes) if data is None else data
        return self.chain.event(signer, event_type, payload)

    def bill(self, encounter: str = "enc-1", **changes: Any) -> str:
        """Seal one fresh consultation event in a block and hand it to the engine; what
        became of it."""
        [outcome] = self.bill_events(self.consultation(encounter, **changes))
        return outcome

    def bill_events(self, *events: dict[str, Any]) -> list[str]:
        """Seal the events as the next block and hand it to the engine (the outcomes)."""
        return self.follow(self.chain.seal(events))

    def follow(self, block: Block) -> list[str]:
        """Hand a block to the engine as the stream does, through the follower."""
        followed = self.follower.follow(block)
        assert followed is not None
        assert self.follower.state is not None
        self.last = (followed, self.follower.state)
        return self.engine.bill_block(followed, self.follower.state)

    def redeliver(self) -> list[str]:
        """Hand the last block to the engine again (its handler contract: idempotent)."""
        return self.engine.bill_block(*self.last)

    @property
    def height(self) -> int:
        return self.chain.state.head.height

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
        """Seal the authority's revocation of the practitioner's credential."""
        revoked = identity.PractitionerRevoked(
            did=self.did("practitioner"), issuer=self.did("authority"), credential=CREDENTIAL
        )
        self.bill_events(self.chain.identity_event(identity.PRACTITIONER_REVOKED, revoked))


def practitioner_registered(chain: ChainFactory) -> dict[str, Any]:
    """The practitioner's registration (valid from 2026-01-01), signed by the identity service."""
    registered = identity.PractitionerRegistered(
        did=chain.did("practitioner"),
        issuer=chain.did("authority"),
        credential=CREDENTIAL,
        role="physician",
        valid_from="2026-01-01T00:00:00Z",
    )
    return chain.identity_event(identity.PRACTITIONER_REGISTERED, registered)


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
    directory = Directory(registry_from_genesis(chain.config), 0)
    metrics = CountingMetrics()
    notified: list[int] = []
    common: dict[str, Any] = {
        "uow": database,
        "book": store,
        "ledger": ledger,
        "metrics": metrics,
        "notify": lambda: notified.append(1),
    }
    world = World(
        chain=chain,
        clock=clock,
        database=database,
        store=store,
        outbox=outbox,
        ledger=ledger,
        directory=directory,
        metrics=metrics,
        engine=BillingEngine(directory=directory, chain=store, **common),
        service=BillingService(
            genesis=chain.config,
            pseudonym=lambda did: patient_pseudonym(PSEUDONYM_KEY, did),
            practitioner_revoked=directory.practitioner_revoked,
            **common,
        ),
        notified=notified,
        follower=BlockFollower(genesis_event=chain.genesis_event),
    )
    world.follow(chain.blocks[0])
    world.bill_events(practitioner_registered(chain))  # block 1: the practitioner's standing
    return world


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
