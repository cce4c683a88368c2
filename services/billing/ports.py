"""Ports of the billing service: its ledger of contracts, invoices and money, and what it has
learned from the chain.

Reads take the caller's transaction when they decide a change (so the decision and the write
see the same state), or none for a plain query of committed state. Every changing method
takes the transaction it writes in; the outbox messages of the change go into the same one.
Adapters: `adapters.sql` (SQLite, PostgreSQL) and `adapters.memory` (tests); one contract
suite (tests/integration/billing/test_store_contract.py) runs on all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from services.billing.core.journal import JournalEntry
from services.billing.core.model import (
    ConsultationOutcome,
    DeployedContract,
    InvoiceStatus,
    PlanKey,
    StoredDispute,
    StoredInvoice,
    StoredPayment,
    StoredRefund,
)
from shared.events.billing import VoidReason

TxT = TypeVar("TxT")
TxT_contra = TypeVar("TxT_contra", contravariant=True)


class BillingBook(Protocol[TxT_contra]):
    """Contracts, consultation outcomes, invoices, payments, refunds, disputes, plan states
    and the journal."""

    def lock(self, tx: TxT_contra) -> None:
        """Serialise changes (and the clock readings they record): call first in every
        changing transaction."""
        ...

    # --- contracts ---------------------------------------------------------------------
    def add_contract(self, tx: TxT_contra, deployed: DeployedContract) -> None:
        """Store a deployed version; its version must not be stored yet (raises otherwise)."""
        ...

    def contracts(self, tx: TxT_contra | None = None) -> Sequence[DeployedContract]:
        """Every deployed version, by version ascending."""
        ...

    # --- consultation outcomes -----------------------------------------------------------
    def outcome(
        self, source: str, event_id: str, tx: TxT_contra | None = None
    ) -> ConsultationOutcome | None: ...

    def add_outcome(self, tx: TxT_contra, outcome: ConsultationOutcome) -> None:
        """Store an outcome; `(source, event_id)` must be new (raises otherwise)."""
        ...

    # --- invoices ----------------------------------------------------------------------
    def add_invoice(self, tx: TxT_contra, invoice: StoredInvoice) -> None:
        """Store an invoice; its id and its encounter id must be new (raises otherwise)."""
        ...

    def invoice(self, invoice_id: str, tx: TxT_contra | None = None) -> StoredInvoice | None: ...

    def invoice_for_encounter(
        self, encounter_id: str, tx: TxT_contra | None = None
    ) -> StoredInvoice | None: ...

    def invoices_of(self, patient: str, tx: TxT_contra | None = None) -> Sequence[StoredInvoice]:
        """A patient's invoices (by pseudonym), oldest first."""
        ...

    def set_status(
        self,
        tx: TxT_contra,
        invoice_id: str,
        status: InvoiceStatus,
        *,
        void_reason: VoidReason | None = None,
    ) -> None: ...

    # --- plan states -------------------------------------------------------------------
    def deductible_met(self, key: PlanKey, tx: TxT_contra | None = None) -> int:
        """What the patient has met of the plan's deductible in that year (0 if nothing)."""
        ...

    def set_deductible_met(self, tx: TxT_contra, key: PlanKey, amount: int) -> None: ...

    # --- payments, refunds, disputes -----------------------------------------------------
    def add_payment(self, tx: TxT_contra, payment: StoredPayment) -> None:
        """Store a payment; `(invoice_id, idempotency_key)` must be new (raises otherwise)."""
        ...

    def payments(self, invoice_id: str, tx: TxT_contra | None = None) -> Sequence[StoredPayment]:
        """The invoice's payments, in the order they were received."""
        ...

    def add_refund(self, tx: TxT_contra, refund: StoredRefund) -> None: ...

    def refunds(self, invoice_id: str, tx: TxT_contra | None = None) -> Sequence[StoredRefund]:
        """The invoice's refunds, oldest first."""
        ...

    def add_dispute(self, tx: TxT_contra, dispute: StoredDispute) -> None: ...

    def disputes(self, invoice_id: str, tx: TxT_contra | None = None) -> Sequence[StoredDispute]:
        """The invoice's disputes, oldest first."""
        ...

    # --- journal -----------------------------------------------------------------------
    def add_entry(self, tx: TxT_contra, entry: JournalEntry, at: datetime) -> None:
        """Append a (balanced) journal entry."""
        ...

    def entries(self, invoice_id: str | None = None) -> Sequence[JournalEntry]:
        """The journal (or one invoice's entries), in the order they were written."""
        ...


class ChainView(Protocol[TxT_contra]):
    """What the chain follower learned: the signer registry (admission's, from genesis and
    sealed identity events) at a height, and the follower's position."""

    def registry(self, tx: TxT_contra | None = None) -> tuple[Mapping[str, Any], int] | None:
        """The saved registry (`SignerRegistry.to_json_value()`) and the height it is at, or
        None before the first saved block."""
        ...

    def save_position(
        self,
        tx: TxT_contra,
        *,
        position: Mapping[str, Any],
        height: int,
        registry: Mapping[str, Any] | None,
    ) -> None:
        """Store the follower position after block `height`, and the registry when it
        changed (None: keep the stored one, now valid at `height`)."""
        ...

    def position(self) -> Mapping[str, Any] | None:
        """The follower position saved last, or None before the first block."""
        ...


class BillingMetrics(Protocol):
    """What the service counts; labels are outcomes, reasons and parties, never ids."""

    def consultation(self, outcome: str, reason: str) -> None: ...

    def payment(self, party: str, outcome: str) -> None: ...

    def follower_height(self, height: int) -> None:
        """The height of the last block billed (-1 before genesis)."""
        ...

    def follower_fault(self) -> None:
        """A block failed the follower's checks (following stops there)."""
        ...
