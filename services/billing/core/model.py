"""What the billing service keeps: contracts, consultation outcomes, invoices, payments, refunds,
disputes, plan states, journal entries, and what it learned from the chain.

Plain frozen values; the ports store them and the core decides with them. The patient is only
ever a pseudonym; payment references are tokens, never free text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.billing.core.pricing import Charges
from services.billing.core.settlement import Invoice, Party
from services.billing.core.tariff import TariffContract
from shared.events.billing import DisputeReason, VoidReason

__all__ = [
    "ConsultationOutcome",
    "DeployedContract",
    "InvoiceStatus",
    "OutcomeKind",
    "PlanKey",
    "StoredDispute",
    "StoredInvoice",
    "StoredPayment",
    "StoredRefund",
]


@dataclass(frozen=True, slots=True)
class DeployedContract:
    """A deployed tariff contract version, when it was deployed (the billing clock) and the
    id of its `ContractDeployed` event."""

    contract: TariffContract
    content_hash: str
    deployed_at: datetime
    event_id: str


class OutcomeKind(StrEnum):
    INVOICED = "invoiced"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ConsultationOutcome:
    """What became of one consultation event `(source, event_id)`: the de-duplication record
    (a redelivered event finds it and changes nothing)."""

    source: str
    event_id: str
    kind: OutcomeKind
    encounter_id: str | None
    invoice_id: str | None  # invoiced, or rejected as a duplicate of this invoice
    reason: str | None  # rejected: the `InvoiceRejected` reason
    billing_event_id: str  # the id of the InvoiceIssued / InvoiceRejected event
    at: datetime


class InvoiceStatus(StrEnum):
    """Issued: shares owed. Settled: all paid. Disputed: a party disputes it (payments still
    count). Voided: cancelled by an admin before anything was paid."""

    ISSUED = "issued"
    SETTLED = "settled"
    DISPUTED = "disputed"
    VOIDED = "voided"


@dataclass(frozen=True, slots=True)
class PlanKey:
    """Whose deductible: a patient (pseudonym) in a plan, in a plan year, in a currency."""

    patient: str
    plan_id: str
    plan_year: int
    currency: str


@dataclass(frozen=True, slots=True)
class StoredInvoice:
    """An issued invoice with what it was issued from."""

    invoice_id: str
    encounter_id: str
    consultation_source: str
    consultation_id: str
    practitioner: str  # did:key
    patient: str  # pseudonym
    plan_year: int
    consultation_start: str  # RFC 3339, as the consultation event wrote it
    consultation_end: str
    modifiers: tuple[str, ...]
    place_of_service: str
    charges: Charges
    deductible_met_before: int
    registry_height: int
    issued_at: datetime
    status: InvoiceStatus
    event_id: str  # InvoiceIssued
    claim_id: str | None  # ClaimSubmitted (only when the payer owes something)
    claim_event_id: str | None
    void_reason: VoidReason | None = None

    def invoice(self) -> Invoice:
        """The core's view: id and charges."""
        return Invoice(invoice_id=self.invoice_id, charges=self.charges)


@dataclass(frozen=True, slots=True)
class StoredPayment:
    """A counted payment (one per idempotency key and invoice)."""

    payment_id: str
    invoice_id: str
    party: Party
    amount: int
    currency: str
    reference: str
    idempotency_key: str
    applied: int
    excess: int
    received_at: datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class StoredRefund:
    refund_id: str
    invoice_id: str
    party: Party
    amount: int
    currency: str
    issued_at: datetime
    event_id: str


@dataclass(frozen=True, slots=True)
class StoredDispute:
    dispute_id: str
    invoice_id: str
    party: Party
    reason: DisputeReason
    opened_at: datetime
    event_id: str
