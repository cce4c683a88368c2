"""The billing store's tables as its queries see them (the migrations create them), and how
the stored values become rows and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Row

from services.billing.core.journal import JournalEntry
from services.billing.core.model import (
    ConsultationOutcome,
    DeployedContract,
    InvoiceStatus,
    OutcomeKind,
    StoredDispute,
    StoredInvoice,
    StoredPayment,
    StoredRefund,
)
from services.billing.core.pricing import Charges
from services.billing.core.settlement import Party
from services.billing.core.tariff import TariffContract
from shared.events.billing import DisputeReason, VoidReason

__all__ = [
    "contract_row",
    "contracts_table",
    "dispute_row",
    "disputes_table",
    "entry_row",
    "follower_table",
    "invoice_row",
    "invoices_table",
    "journal_table",
    "metadata",
    "outcome_row",
    "outcomes_table",
    "payment_row",
    "payments_table",
    "plan_states_table",
    "read_contract",
    "read_dispute",
    "read_entry",
    "read_invoice",
    "read_outcome",
    "read_payment",
    "read_refund",
    "refund_row",
    "refunds_table",
    "stored_moment",
]

_SEQ = BigInteger().with_variant(Integer(), "sqlite")
_KEY = 256  # identifiers: the core allows 200 characters, DIDs and sources a little more


def _moment(name: str, *, nullable: bool = False) -> Column[object]:
    # Aware on PostgreSQL; SQLite keeps the wall time only, so the adapter writes UTC.
    return Column(name, DateTime(timezone=True), nullable=nullable)


metadata = MetaData()
#: Mirror the migrations; queries use these, migrations do not.
contracts_table = Table(
    "billing_contracts",
    metadata,
    Column("version", BigInteger(), primary_key=True, autoincrement=False),
    Column("contract", Text(), nullable=False),
    Column("content_hash", String(64), nullable=False),
    _moment("deployed_at"),
    Column("event_id", String(_KEY), nullable=False),
)
outcomes_table = Table(
    "billing_outcomes",
    metadata,
    Column("source", String(_KEY), nullable=False),
    Column("event_id", String(_KEY), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("encounter_id", String(_KEY), nullable=True),
    Column("invoice_id", String(_KEY), nullable=True),
    Column("reason", String(64), nullable=True),
    Column("billing_event_id", String(_KEY), nullable=False),
    _moment("at"),
    PrimaryKeyConstraint("source", "event_id", name="pk_billing_outcomes"),
)
invoices_table = Table(
    "billing_invoices",
    metadata,
    Column("invoice_id", String(_KEY), primary_key=True),
    Column("encounter_id", String(_KEY), nullable=False, unique=True),
    Column("consultation_source", String(_KEY), nullable=False),
    Column("consultation_id", String(_KEY), nullable=False),
    Column("practitioner", String(_KEY), nullable=False),
    Column("patient", String(_KEY), nullable=False),
    Column("plan_year", Integer(), nullable=False),
    Column("consultation_start", String(64), nullable=False),
    Column("consultation_end", String(64), nullable=False),
    Column("modifiers", Text(), nullable=False),
    Column("place_of_service", String(16), nullable=False),
    Column("charges", Text(), nullable=False),
    Column("deductible_met_before", BigInteger(), nullable=False),
    Column("registry_height", BigInteger(), nullable=False),
    _moment("issued_at"),
    Column("status", String(16), nullable=False),
    Column("event_id", String(_KEY), nullable=False),
    Column("claim_id", String(_KEY), nullable=True),
    Column("claim_event_id", String(_KEY), nullable=True),
    Column("void_reason", String(32), nullable=True),
    Index("ix_billing_invoices_patient", "patient"),
)
plan_states_table = Table(
    "billing_plan_states",
    metadata,
    Column("patient", String(_KEY), nullable=False),
    Column("plan_id", String(_KEY), nullable=False),
    Column("plan_year", Integer(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("deductible_met", BigInteger(), nullable=False),
    PrimaryKeyConstraint("patient", "plan_id", "plan_year", "currency", name="pk_billing_plans"),
)
payments_table = Table(
    "billing_payments",
    metadata,
    # The order payments were received in; SQLite autoincrements only an integer primary key.
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("payment_id", String(_KEY), nullable=False, unique=True),
    Column("invoice_id", String(_KEY), nullable=False),
    Column("party", String(16), nullable=False),
    Column("amount", BigInteger(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reference", String(_KEY), nullable=False),
    Column("idempotency_key", String(_KEY), nullable=False),
    Column("applied", BigInteger(), nullable=False),
    Column("excess", BigInteger(), nullable=False),
    _moment("received_at"),
    Column("event_id", String(_KEY), nullable=False),
    UniqueConstraint("invoice_id", "idempotency_key", name="uq_billing_payments_key"),
    sqlite_autoincrement=True,
)
refunds_table = Table(
    "billing_refunds",
    metadata,
    Column("refund_id", String(_KEY), primary_key=True),
    Column("invoice_id", String(_KEY), nullable=False),
    Column("party", String(16), nullable=False),
    Column("amount", BigInteger(), nullable=False),
    Column("currency", String(3), nullable=False),
    _moment("issued_at"),
    Column("event_id", String(_KEY), nullable=False),
    Index("ix_billing_refunds_invoice_id", "invoice_id"),
)
disputes_table = Table(
    "billing_disputes",
    metadata,
    Column("dispute_id", String(_KEY), primary_key=True),
    Column("invoice_id", String(_KEY), nullable=False),
    Column("party", String(16), nullable=False),
    Column("reason", String(32), nullable=False),
    _moment("opened_at"),
    Column("event_id", String(_KEY), nullable=False),
    Index("ix_billing_disputes_invoice_id", "invoice_id"),
)
journal_table = Table(
    "billing_journal",
    metadata,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("invoice_id", String(_KEY), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("reference", String(_KEY), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("postings", Text(), nullable=False),
    _moment("at"),
    Index("ix_billing_journal_invoice_id", "invoice_id"),
    sqlite_autoincrement=True,
)
follower_table = Table(
    "billing_follower",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("position", Text(), nullable=False),
    Column("height", BigInteger(), nullable=False),
    Column("registry", Text(), nullable=True),
)


def stored_moment(moment: datetime) -> datetime:
    # SQLite stores the wall time without its offset: write UTC so reading back is exact.
    if moment.tzinfo is None:
        raise ValueError("the billing store keeps aware datetimes only")
    return moment.astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; they were written in UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def contract_row(deployed: DeployedContract) -> dict[str, object]:
    return {
        "version": deployed.contract.version,
        "contract": _json(deployed.contract.model_dump(mode="json")),
        "content_hash": deployed.content_hash,
        "deployed_at": stored_moment(deployed.deployed_at),
        "event_id": deployed.event_id,
    }


def read_contract(row: Row[Any]) -> DeployedContract:
    values = row._mapping
    return DeployedContract(
        contract=TariffContract.model_validate(json.loads(values["contract"])),
        content_hash=values["content_hash"],
        deployed_at=_aware(values["deployed_at"]),
        event_id=values["event_id"],
    )


def outcome_row(outcome: ConsultationOutcome) -> dict[str, object]:
    return {
        "source": outcome.source,
        "event_id": outcome.event_id,
        "kind": outcome.kind.value,
        "encounter_id": outcome.encounter_id,
        "invoice_id": outcome.invoice_id,
        "reason": outcome.reason,
        "billing_event_id": outcome.billing_event_id,
        "at": stored_moment(outcome.at),
    }


def read_outcome(row: Row[Any]) -> ConsultationOutcome:
    values = row._mapping
    return ConsultationOutcome(
        source=values["source"],
        event_id=values["event_id"],
        kind=OutcomeKind(values["kind"]),
        encounter_id=values["encounter_id"],
        invoice_id=values["invoice_id"],
        reason=values["reason"],
        billing_event_id=values["billing_event_id"],
        at=_aware(values["at"]),
    )


def invoice_row(invoice: StoredInvoice) -> dict[str, object]:
    return {
        "invoice_id": invoice.invoice_id,
        "encounter_id": invoice.encounter_id,
        "consultation_source": invoice.consultation_source,
        "consultation_id": invoice.consultation_id,
        "practitioner": invoice.practitioner,
        "patient": invoice.patient,
        "plan_year": invoice.plan_year,
        "consultation_start": invoice.consultation_start,
        "consultation_end": invoice.consultation_end,
        "modifiers": _json(list(invoice.modifiers)),
        "place_of_service": invoice.place_of_service,
        "charges": _json(invoice.charges.model_dump(mode="json")),
        "deductible_met_before": invoice.deductible_met_before,
        "registry_height": invoice.registry_height,
        "issued_at": stored_moment(invoice.issued_at),
        "status": invoice.status.value,
        "event_id": invoice.event_id,
        "claim_id": invoice.claim_id,
        "claim_event_id": invoice.claim_event_id,
        "void_reason": None if invoice.void_reason is None else invoice.void_reason.value,
    }


def read_invoice(row: Row[Any]) -> StoredInvoice:
    values = row._mapping
    void_reason = values["void_reason"]
    return StoredInvoice(
        invoice_id=values["invoice_id"],
        encounter_id=values["encounter_id"],
        consultation_source=values["consultation_source"],
        consultation_id=values["consultation_id"],
        practitioner=values["practitioner"],
        patient=values["patient"],
        plan_year=int(values["plan_year"]),
        consultation_start=values["consultation_start"],
        consultation_end=values["consultation_end"],
        modifiers=tuple(json.loads(values["modifiers"])),
        place_of_service=values["place_of_service"],
        charges=Charges.model_validate(json.loads(values["charges"])),
        deductible_met_before=int(values["deductible_met_before"]),
        registry_height=int(values["registry_height"]),
        issued_at=_aware(values["issued_at"]),
        status=InvoiceStatus(values["status"]),
        event_id=values["event_id"],
        claim_id=values["claim_id"],
        claim_event_id=values["claim_event_id"],
        void_reason=None if void_reason is None else VoidReason(void_reason),
    )


def payment_row(payment: StoredPayment) -> dict[str, object]:
    return {
        "payment_id": payment.payment_id,
        "invoice_id": payment.invoice_id,
        "party": payment.party.value,
        "amount": payment.amount,
        "currency": payment.currency,
        "reference": payment.reference,
        "idempotency_key": payment.idempotency_key,
        "applied": payment.applied,
        "excess": payment.excess,
        "received_at": stored_moment(payment.received_at),
        "event_id": payment.event_id,
    }


def read_payment(row: Row[Any]) -> StoredPayment:
    values = row._mapping
    return StoredPayment(
        payment_id=values["payment_id"],
        invoice_id=values["invoice_id"],
        party=Party(values["party"]),
        amount=int(values["amount"]),
        currency=values["currency"],
        reference=values["reference"],
        idempotency_key=values["idempotency_key"],
        applied=int(values["applied"]),
        excess=int(values["excess"]),
        received_at=_aware(values["received_at"]),
        event_id=values["event_id"],
    )


def refund_row(refund: StoredRefund) -> dict[str, object]:
    return {
        "refund_id": refund.refund_id,
        "invoice_id": refund.invoice_id,
        "party": refund.party.value,
        "amount": refund.amount,
        "currency": refund.currency,
        "issued_at": stored_moment(refund.issued_at),
        "event_id": refund.event_id,
    }


def read_refund(row: Row[Any]) -> StoredRefund:
    values = row._mapping
    return StoredRefund(
        refund_id=values["refund_id"],
        invoice_id=values["invoice_id"],
        party=Party(values["party"]),
        amount=int(values["amount"]),
        currency=values["currency"],
        issued_at=_aware(values["issued_at"]),
        event_id=values["event_id"],
    )


def dispute_row(dispute: StoredDispute) -> dict[str, object]:
    return {
        "dispute_id": dispute.dispute_id,
        "invoice_id": dispute.invoice_id,
        "party": dispute.party.value,
        "reason": dispute.reason.value,
        "opened_at": stored_moment(dispute.opened_at),
        "event_id": dispute.event_id,
    }


def read_dispute(row: Row[Any]) -> StoredDispute:
    values = row._mapping
    return StoredDispute(
        dispute_id=values["dispute_id"],
        invoice_id=values["invoice_id"],
        party=Party(values["party"]),
        reason=DisputeReason(values["reason"]),
        opened_at=_aware(values["opened_at"]),
        event_id=values["event_id"],
    )


def entry_row(entry: JournalEntry, at: datetime) -> dict[str, object]:
    return {
        "invoice_id": entry.invoice_id,
        "kind": entry.kind.value,
        "reference": entry.reference,
        "currency": entry.currency,
        "postings": _json([posting.model_dump(mode="json") for posting in entry.postings]),
        "at": stored_moment(at),
    }


def read_entry(row: Row[Any]) -> JournalEntry:
    values = row._mapping
    # Validation re-checks the balance: a tampered row cannot come back as an entry.
    return JournalEntry.model_validate(
        {
            "kind": values["kind"],
            "invoice_id": values["invoice_id"],
            "reference": values["reference"],
            "currency": values["currency"],
            "postings": json.loads(values["postings"]),
        }
    )
