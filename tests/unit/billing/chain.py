"""A chain with billing on it, for replay tests: the real billing engine and service, on
memory adapters and a fake clock, whose signed events are sealed as the sealer would seal them.

`BillingWorld` wraps a `ChainFactory`: identity and consultation events are signed by their
publishers and sealed; `follow()` hands every block sealed since to the billing engine (which
bills the consultations in them), the billing decisions and payments come out of the
service's outbox, and `forge(...)` signs anything with the billing service's own key (a
service gone wrong).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from services.billing.adapters.memory import MemoryBillingStore
from services.billing.core.events import sign_billing_event
from services.billing.core.replay import BillingReplay, ReplayReport
from services.billing.core.settlement import Party
from services.billing.engine import BillingEngine
from services.billing.following import Directory
from services.billing.ledger import BillingLedger
from services.billing.service import BillingService
from shared.block import Block
from shared.envelope import uuid7
from shared.events import EventData, identity
from shared.events.billing import CONSULTATION_COMPLETED
from shared.follower import BlockFollower
from shared.outbox import MemoryOutbox
from shared.store import MemoryDatabase
from tests.unit.billing.examples import CONTRACT_DOCUMENT
from tests.unit.core.chainfactory import ChainFactory

PATIENT = "ab" * 32
OTHER_PATIENT = "cd" * 32
CREDENTIAL = "ef" * 32
BILLING_START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


class _Metrics:
    def consultation(self, outcome: str, reason: str) -> None:
        pass

    def payment(self, party: str, outcome: str) -> None:
        pass

    def follower_height(self, height: int) -> None:
        pass

    def follower_fault(self) -> None:
        pass


@dataclass
class _Clock:
    now: datetime = BILLING_START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class BillingWorld:
    """A growing chain and the billing service that follows it."""

    factory: ChainFactory = field(default_factory=ChainFactory)
    clock: _Clock = field(default_factory=_Clock)
    consultations: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: int = 0

    def __post_init__(self) -> None:
        database = MemoryDatabase()
        self.outbox = MemoryOutbox(database=database)
        self.book = MemoryBillingStore(database=database)
        self.directory = Directory(self.factory.state.registry, 0)
        self.follower = BlockFollower(genesis_event=self.factory.genesis_event)
        self.followed = 0  # blocks of the factory handed to the engine
        self.ledger = BillingLedger(
            outbox=self.outbox,
            key=self.factory.keys["billing"],
            genesis=self.factory.config,
            clock=self.clock,
            new_event_id=self._event_id,
            new_id=self.new_id,
        )
        common: dict[str, Any] = {
            "uow": database,
            "book": self.book,
            "ledger": self.ledger,
            "metrics": _Metrics(),
            "notify": lambda: None,
        }
        self.engine = BillingEngine(directory=self.directory, chain=self.book, **common)
        self.service = BillingService(
            genesis=self.factory.config, pseudonym=lambda _did: PATIENT, **common
        )

    # --- ids and time -------------------------------------------------------------------

    def new_id(self) -> str:
        self._ids += 1
        return str(uuid.UUID(int=self._ids))

    def _event_id(self, now: datetime) -> str:
        self._ids += 1
        return uuid7(int(now.timestamp() * 1000), self._ids.to_bytes(10, "big"))

    @property
    def height(self) -> int:
        return self.factory.state.head.height

    # --- the chain ----------------------------------------------------------------------

    def seal(self, events: Sequence[Mapping[str, Any]]) -> Block:
        """Seal the events as the next block (billing reads it at the next `follow`)."""
        return self.factory.seal(events)

    def follow(self) -> None:
        """Hand every block sealed since the last call to the billing engine, in order."""
        for block in self.factory.blocks[self.followed :]:
            followed = self.follower.follow(block)
            assert followed is not None
            assert self.follower.state is not None
            self.engine.bill_block(followed, self.follower.state)
        self.followed = len(self.factory.blocks)

    def seal_billing(self) -> Block:
        """Seal everything the billing service emitted since last time."""
        entries = self.outbox.pending(10_000)
        self.outbox.mark_sent([entry.seq for entry in entries])
        return self.seal([json.loads(entry.message.value) for entry in entries])

    def register_practitioner(self, **changes: Any) -> dict[str, Any]:
        data = {
            "did": self.factory.did("practitioner"),
            "issuer": self.factory.did("authority"),
            "credential": CREDENTIAL,
            "role": "physician",
            "valid_from": "2026-01-01T00:00:00Z",
            **changes,
        }
        return self.factory.identity_event(
            identity.PRACTITIONER_REGISTERED, identity.PractitionerRegistered.model_validate(data)
        )

    def consultation(self, encounter: str, **changes: Any) -> dict[str, Any]:
        """A signed consultation event by the demo publisher (not sealed yet)."""
        data = {
            "encounter_id": encounter,
            "practitioner": self.factory.did("practitioner"),
            "patient": PATIENT,
            "plan_id": "copay-only",
            "service_code": "98005",
            "modifiers": [],
            "place_of_service": "10",
            "start": "2026-02-03T09:00:00Z",
            "end": "2026-02-03T09:25:00Z",
            **changes,
        }
        event = self.factory.event("publisher", CONSULTATION_COMPLETED, data)
        self.consultations[encounter] = event
        return event

    def pay(self, invoice_id: str, party: Party, amount: int) -> None:
        self.service.pay(
            self.factory.config.admin,
            invoice_id,
            party=party,
            amount=amount,
            currency="USD",
            reference=f"ref-{self.new_id()[-4:]}",
            idempotency_key=self.new_id(),
        )

    def invoice_of(self, encounter: str) -> str:
        found = self.book.invoice_for_encounter(encounter)
        assert found is not None
        return found.invoice_id

    def forge(
        self, data: EventData, *, subject: str = "forged", at: datetime | None = None
    ) -> dict[str, Any]:
        """A billing event signed with the billing service's own key (not sealed yet)."""
        signed = sign_billing_event(
            data,
            subject=subject,
            key=self.factory.keys["billing"],
            chain_id=self.factory.chain_id,
            event_id=self._event_id(at or self.clock()),
            time=at or self.clock.now,
        )
        return signed.event

    def replay(self, blocks: Sequence[Block] | None = None) -> ReplayReport:
        replay = BillingReplay(self.factory.config)
        for block in self.factory.blocks if blocks is None else blocks:
            replay.add_block(block.header.height, block.events)
        return replay.finish()


def honest_world() -> BillingWorld:
    """A contract, a practitioner, consultations billed under every plan (two on the
    deductible plan), a rejected unknown code, a duplicate encounter, payments settling and
    over-paying (refunded), and consultations sealed in the last block, which billing has not
    followed yet (`unbilled-*`)."""
    world = BillingWorld()
    world.seal([world.register_practitioner()])
    world.service.deploy_contract(world.factory.config.admin, {**CONTRACT_DOCUMENT, "version": 1})
    world.seal_billing()
    consultations = [
        world.consultation("enc-copay"),
        world.consultation("enc-ded-1", plan_id="deductible"),
        world.consultation("enc-ded-2", plan_id="deductible", service_code="98008"),
        world.consultation("enc-coins", plan_id="coinsurance"),
        world.consultation("enc-half", plan_id="half"),
        world.consultation("enc-unknown", service_code="98001"),
        world.consultation("enc-copay"),  # the same encounter again: a duplicate
    ]
    world.consultations["enc-copay-again"] = consultations[-1]
    unbilled = [
        world.consultation("unbilled-copay"),
        world.consultation("unbilled-ded", plan_id="deductible", service_code="98008"),
        world.consultation("unbilled-deleted", service_code="99441"),
    ]
    world.seal(consultations)
    world.follow()
    world.seal_billing()
    copay = world.invoice_of("enc-copay")
    world.pay(copay, Party.PAYER, 9500)
    world.pay(copay, Party.PATIENT, 3000)  # 500 over: settled, and 500 refunded
    world.pay(world.invoice_of("enc-coins"), Party.PAYER, 8166)
    half = world.invoice_of("enc-half")
    world.pay(half, Party.PATIENT, 4667)
    world.pay(half, Party.PAYER, 4666)
    world.seal_billing()
    world.follow()
    world.seal(unbilled)
    return world
