"""What every billing use case shares: signing its events into the outbox, with new ids and
one clock reading per change.

One `BillingLedger` is built per service and handed to the engine (consultations in) and the
service (tariffs, payments, disputes), so an event is made one way only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Generic

from services.billing.core.events import BillingEvent, billing_source, sign_billing_event
from services.billing.ports import TxT
from shared.crypto import SigningKey
from shared.events import EventData
from shared.genesis import GenesisConfig
from shared.outbox import OutboxWriter, message_for_event
from shared.topics import BILLING_EVENTS

__all__ = ["BillingLedger"]


class BillingLedger(Generic[TxT]):
    """Signs the service's events into the outbox."""

    def __init__(
        self,
        *,
        outbox: OutboxWriter[TxT],
        key: SigningKey,
        genesis: GenesisConfig,
        clock: Callable[[], datetime],
        new_event_id: Callable[[datetime], str],
        new_id: Callable[[], str],
    ) -> None:
        self._outbox = outbox
        self._key = key
        self._genesis = genesis
        self._clock = clock
        self._new_event_id = new_event_id
        self._new_id = new_id
        self.source = billing_source(genesis.chain_id)

    def now(self) -> datetime:
        """The time a change happens at; read once per change, inside its locked
        transaction, and written as the `time` of every event the change emits."""
        return self._clock()

    def new_id(self) -> str:
        """A fresh invoice, claim, payment, refund or dispute id (a random UUID)."""
        return self._new_id()

    def emit(self, tx: TxT, data: EventData, *, subject: str, now: datetime) -> BillingEvent:
        """Sign `data` as the service and add the event to the outbox in `tx`."""
        event = sign_billing_event(
            data,
            subject=subject,
            key=self._key,
            chain_id=self._genesis.chain_id,
            event_id=self._new_event_id(now),
            time=now,
        )
        self._outbox.add(tx, [message_for_event(event.event, topic=BILLING_EVENTS)])
        return event
