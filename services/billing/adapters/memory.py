"""The billing store in memory: staged in the unit of work, applied at commit.

Unlike the records store, a read given a transaction sees that transaction's own staged
writes: the billing service reads back what it just wrote (a payment, then the payments to
settle) inside one unit of work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

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
from shared.store import MemoryDatabase, MemoryTransaction


@dataclass
class _State:
    """Everything stored; values are frozen, so copying the containers copies the state."""

    contracts: dict[int, DeployedContract] = field(default_factory=dict)
    outcomes: dict[tuple[str, str], ConsultationOutcome] = field(default_factory=dict)
    invoices: dict[str, StoredInvoice] = field(default_factory=dict)
    plan_states: dict[PlanKey, int] = field(default_factory=dict)
    payments: list[StoredPayment] = field(default_factory=list)
    refunds: list[StoredRefund] = field(default_factory=list)
    disputes: list[StoredDispute] = field(default_factory=list)
    journal: list[tuple[JournalEntry, datetime]] = field(default_factory=list)
    position: dict[str, Any] | None = None
    height: int | None = None
    registry: dict[str, Any] | None = None

    def copy(self) -> _State:
        return replace(
            self,
            contracts=dict(self.contracts),
            outcomes=dict(self.outcomes),
            invoices=dict(self.invoices),
            plan_states=dict(self.plan_states),
            payments=list(self.payments),
            refunds=list(self.refunds),
            disputes=list(self.disputes),
            journal=list(self.journal),
        )


class MemoryBillingStore:
    """`BillingBook` and `ChainView` of `MemoryTransaction`, for unit tests and the contract
    suite. Uniqueness violations raise `ValueError`, as the SQL adapter does."""

    def __init__(self, *, database: MemoryDatabase) -> None:
        self._database = database
        self._state = _State()

    def lock(self, tx: MemoryTransaction) -> None:
        self._database.check(tx)  # the memory database runs one transaction at a time

    # --- contracts -------------------------------------------------------------------

    def add_contract(self, tx: MemoryTransaction, deployed: DeployedContract) -> None:
        staged = self._staged(tx)
        version = deployed.contract.version
        if version in staged.contracts:
            raise ValueError(f"contract version {version} is already deployed")
        staged.contracts[version] = deployed

    def contracts(self, tx: MemoryTransaction | None = None) -> Sequence[DeployedContract]:
        with self._database.read():
            state = self._seen(tx)
            return [state.contracts[version] for version in sorted(state.contracts)]

    # --- consultation outcomes -------------------------------------------------------

    def outcome(
        self, source: str, event_id: str, tx: MemoryTransaction | None = None
    ) -> ConsultationOutcome | None:
        with self._database.read():
            return self._seen(tx).outcomes.get((source, event_id))

    def add_outcome(self, tx: MemoryTransaction, outcome: ConsultationOutcome) -> None:
        staged = self._staged(tx)
        key = (outcome.source, outcome.event_id)
        if key in staged.outcomes:
            raise ValueError(f"outcome of {outcome.source}/{outcome.event_id} exists")
        staged.outcomes[key] = outcome

    # --- invoices --------------------------------------------------------------------

    def add_invoice(self, tx: MemoryTransaction, invoice: StoredInvoice) -> None:
        staged = self._staged(tx)
        if invoice.invoice_id in staged.invoices:
            raise ValueError(f"invoice {invoice.invoice_id} exists")
        if _by_encounter(staged, invoice.encounter_id) is not None:
            raise ValueError(f"encounter {invoice.encounter_id} is already invoiced")
        staged.invoices[invoice.invoice_id] = invoice

    def invoice(self, invoice_id: str, tx: MemoryTransaction | None = None) -> StoredInvoice | None:
        with self._database.read():
            return self._seen(tx).invoices.get(invoice_id)

    def invoice_for_encounter(
        self, encounter_id: str, tx: MemoryTransaction | None = None
    ) -> StoredInvoice | None:
        with self._database.read():
            return _by_encounter(self._seen(tx), encounter_id)

    def invoices_of(
        self, patient: str, tx: MemoryTransaction | None = None
    ) -> Sequence[StoredInvoice]:
        with self._database.read():
            found = [i for i in self._seen(tx).invoices.values() if i.patient == patient]
        # The SQL adapter's order: issue time, then id (issue times come from one locked clock).
        return sorted(found, key=lambda invoice: (invoice.issued_at, invoice.invoice_id))

    def set_status(
        self,
        tx: MemoryTransaction,
        invoice_id: str,
        status: InvoiceStatus,
        *,
        void_reason: VoidReason | None = None,
    ) -> None:
        staged = self._staged(tx)
        stored = staged.invoices.get(invoice_id)
        if stored is None:
            raise ValueError(f"no invoice {invoice_id} to change")
        staged.invoices[invoice_id] = replace(stored, status=status, void_reason=void_reason)

    # --- plan states -----------------------------------------------------------------

    def deductible_met(self, key: PlanKey, tx: MemoryTransaction | None = None) -> int:
        with self._database.read():
            return self._seen(tx).plan_states.get(key, 0)

    def set_deductible_met(self, tx: MemoryTransaction, key: PlanKey, amount: int) -> None:
        self._staged(tx).plan_states[key] = amount

    # --- payments, refunds, disputes -------------------------------------------------

    def add_payment(self, tx: MemoryTransaction, payment: StoredPayment) -> None:
        staged = self._staged(tx)
        for stored in staged.payments:
            if stored.payment_id == payment.payment_id:
                raise ValueError(f"payment {payment.payment_id} exists")
            if (stored.invoice_id, stored.idempotency_key) == (
                payment.invoice_id,
                payment.idempotency_key,
            ):
                raise ValueError(f"invoice {payment.invoice_id} has a payment with that key")
        staged.payments.append(payment)

    def payments(
        self, invoice_id: str, tx: MemoryTransaction | None = None
    ) -> Sequence[StoredPayment]:
        with self._database.read():
            return [p for p in self._seen(tx).payments if p.invoice_id == invoice_id]

    def add_refund(self, tx: MemoryTransaction, refund: StoredRefund) -> None:
        staged = self._staged(tx)
        if any(stored.refund_id == refund.refund_id for stored in staged.refunds):
            raise ValueError(f"refund {refund.refund_id} exists")
        staged.refunds.append(refund)

    def refunds(
        self, invoice_id: str, tx: MemoryTransaction | None = None
    ) -> Sequence[StoredRefund]:
        with self._database.read():
            found = [r for r in self._seen(tx).refunds if r.invoice_id == invoice_id]
        return sorted(found, key=lambda refund: (refund.issued_at, refund.refund_id))

    def add_dispute(self, tx: MemoryTransaction, dispute: StoredDispute) -> None:
        staged = self._staged(tx)
        if any(stored.dispute_id == dispute.dispute_id for stored in staged.disputes):
            raise ValueError(f"dispute {dispute.dispute_id} exists")
        staged.disputes.append(dispute)

    def disputes(
        self, invoice_id: str, tx: MemoryTransaction | None = None
    ) -> Sequence[StoredDispute]:
        with self._database.read():
            found = [d for d in self._seen(tx).disputes if d.invoice_id == invoice_id]
        return sorted(found, key=lambda dispute: (dispute.opened_at, dispute.dispute_id))

    # --- journal ---------------------------------------------------------------------

    def add_entry(self, tx: MemoryTransaction, entry: JournalEntry, at: datetime) -> None:
        self._staged(tx).journal.append((entry, at))

    def entries(self, invoice_id: str | None = None) -> Sequence[JournalEntry]:
        with self._database.read():
            journal = self._state.journal
            return [e for e, _ in journal if invoice_id is None or e.invoice_id == invoice_id]

    # --- ChainView -------------------------------------------------------------------

    def registry(self, tx: MemoryTransaction | None = None) -> tuple[Mapping[str, Any], int] | None:
        with self._database.read():
            state = self._seen(tx)
            if state.registry is None or state.height is None:
                return None
            return state.registry, state.height

    def save_position(
        self,
        tx: MemoryTransaction,
        *,
        position: Mapping[str, Any],
        height: int,
        registry: Mapping[str, Any] | None,
    ) -> None:
        staged = self._staged(tx)
        staged.position = dict(position)
        staged.height = height
        if registry is not None:
            staged.registry = dict(registry)

    def position(self) -> Mapping[str, Any] | None:
        with self._database.read():
            return self._state.position

    # --- the unit of work ------------------------------------------------------------

    def _seen(self, tx: MemoryTransaction | None) -> _State:
        """What a read sees: the transaction's staged state, or committed state without one."""
        return self._state if tx is None else self._staged(tx)

    def _staged(self, tx: MemoryTransaction) -> _State:
        # Writes go to a copy of the committed state, made at the transaction's first use and
        # swapped in at commit: checks and reads see the transaction's own earlier writes, and
        # a rollback just drops the copy. The swap cannot fail, so commit is all-or-nothing.
        self._database.check(tx)
        return tx.scratch(self, lambda: self._stage(tx))

    def _stage(self, tx: MemoryTransaction) -> _State:
        staged = self._state.copy()
        tx.on_commit(lambda: setattr(self, "_state", staged))
        return staged


def _by_encounter(state: _State, encounter_id: str) -> StoredInvoice | None:
    return next((i for i in state.invoices.values() if i.encounter_id == encounter_id), None)
