"""The billing store on SQLite or PostgreSQL (its own Alembic migrations).

A write that a uniqueness rule refuses raises `ValueError`, as the memory adapter does, and
leaves the caller's transaction usable: each such insert runs in a savepoint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, insert, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Select

from services.billing.adapters.sql_tables import (
    contract_row,
    contracts_table,
    dispute_row,
    disputes_table,
    entry_row,
    follower_table,
    invoice_row,
    invoices_table,
    journal_table,
    outcome_row,
    outcomes_table,
    payment_row,
    payments_table,
    plan_states_table,
    read_contract,
    read_dispute,
    read_entry,
    read_invoice,
    read_outcome,
    read_payment,
    read_refund,
    refund_row,
    refunds_table,
)
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
from shared.store import Database, migrate

BILLING_MIGRATIONS = Path(__file__).parent / "migrations"
BILLING_VERSION_TABLE = "careledger_billing_version"
_FOLLOWER_ROW = 1
# One advisory lock serialises billing changes on PostgreSQL (SQLite has one writer anyway).
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"careledger-billing-book").digest()[:8], "big") >> 1


def migrate_billing_store(database: Database) -> str | None:
    """Create or upgrade the billing service's tables; call once at start-up."""
    return migrate(database, BILLING_MIGRATIONS, version_table=BILLING_VERSION_TABLE)


class SqlBillingStore:
    """`BillingBook` and `ChainView` of `Connection` on one SQL database."""

    def __init__(self, *, database: Database) -> None:
        self._database = database

    def lock(self, tx: Connection) -> None:
        if tx.dialect.name == "postgresql":
            tx.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})

    # --- contracts -------------------------------------------------------------------

    def add_contract(self, tx: Connection, deployed: DeployedContract) -> None:
        version = deployed.contract.version
        _insert_new(
            tx,
            contracts_table,
            contract_row(deployed),
            f"contract version {version} is already deployed",
        )

    def contracts(self, tx: Connection | None = None) -> Sequence[DeployedContract]:
        query = select(contracts_table).order_by(contracts_table.c.version)
        return [read_contract(row) for row in self._rows(query, tx)]

    # --- consultation outcomes -------------------------------------------------------

    def outcome(
        self, source: str, event_id: str, tx: Connection | None = None
    ) -> ConsultationOutcome | None:
        query = select(outcomes_table).where(
            outcomes_table.c.source == source, outcomes_table.c.event_id == event_id
        )
        return next((read_outcome(row) for row in self._rows(query, tx)), None)

    def add_outcome(self, tx: Connection, outcome: ConsultationOutcome) -> None:
        _insert_new(
            tx,
            outcomes_table,
            outcome_row(outcome),
            f"outcome of {outcome.source}/{outcome.event_id} exists",
        )

    # --- invoices --------------------------------------------------------------------

    def add_invoice(self, tx: Connection, invoice: StoredInvoice) -> None:
        _insert_new(
            tx,
            invoices_table,
            invoice_row(invoice),
            f"invoice {invoice.invoice_id} or one for encounter {invoice.encounter_id} exists",
        )

    def invoice(self, invoice_id: str, tx: Connection | None = None) -> StoredInvoice | None:
        query = select(invoices_table).where(invoices_table.c.invoice_id == invoice_id)
        return next((read_invoice(row) for row in self._rows(query, tx)), None)

    def invoice_for_encounter(
        self, encounter_id: str, tx: Connection | None = None
    ) -> StoredInvoice | None:
        query = select(invoices_table).where(invoices_table.c.encounter_id == encounter_id)
        return next((read_invoice(row) for row in self._rows(query, tx)), None)

    def invoices_of(self, patient: str, tx: Connection | None = None) -> Sequence[StoredInvoice]:
        query = (
            select(invoices_table)
            .where(invoices_table.c.patient == patient)
            .order_by(invoices_table.c.issued_at, invoices_table.c.invoice_id)
        )
        return [read_invoice(row) for row in self._rows(query, tx)]

    def set_status(
        self,
        tx: Connection,
        invoice_id: str,
        status: InvoiceStatus,
        *,
        void_reason: VoidReason | None = None,
    ) -> None:
        changed = tx.execute(
            update(invoices_table)
            .where(invoices_table.c.invoice_id == invoice_id)
            .values(
                status=status.value,
                void_reason=None if void_reason is None else void_reason.value,
            )
        ).rowcount
        if not changed:
            raise ValueError(f"no invoice {invoice_id} to change")

    # --- plan states -----------------------------------------------------------------

    def deductible_met(self, key: PlanKey, tx: Connection | None = None) -> int:
        query = select(plan_states_table.c.deductible_met).where(*_plan(key))
        return next((int(row[0]) for row in self._rows(query, tx)), 0)

    def set_deductible_met(self, tx: Connection, key: PlanKey, amount: int) -> None:
        # Update, else insert: the same on both dialects; the lock keeps it from racing.
        updated = tx.execute(
            update(plan_states_table).where(*_plan(key)).values(deductible_met=amount)
        ).rowcount
        if not updated:
            tx.execute(
                insert(plan_states_table).values(
                    patient=key.patient,
                    plan_id=key.plan_id,
                    plan_year=key.plan_year,
                    currency=key.currency,
                    deductible_met=amount,
                )
            )

    # --- payments, refunds, disputes -------------------------------------------------

    def add_payment(self, tx: Connection, payment: StoredPayment) -> None:
        _insert_new(
            tx,
            payments_table,
            payment_row(payment),
            f"payment {payment.payment_id} or invoice {payment.invoice_id}'s payment with "
            "that idempotency key exists",
        )

    def payments(self, invoice_id: str, tx: Connection | None = None) -> Sequence[StoredPayment]:
        query = (
            select(payments_table)
            .where(payments_table.c.invoice_id == invoice_id)
            .order_by(payments_table.c.seq)
        )
        return [read_payment(row) for row in self._rows(query, tx)]

    def add_refund(self, tx: Connection, refund: StoredRefund) -> None:
        _insert_new(tx, refunds_table, refund_row(refund), f"refund {refund.refund_id} exists")

    def refunds(self, invoice_id: str, tx: Connection | None = None) -> Sequence[StoredRefund]:
        query = (
            select(refunds_table)
            .where(refunds_table.c.invoice_id == invoice_id)
            .order_by(refunds_table.c.issued_at, refunds_table.c.refund_id)
        )
        return [read_refund(row) for row in self._rows(query, tx)]

    def add_dispute(self, tx: Connection, dispute: StoredDispute) -> None:
        _insert_new(
            tx, disputes_table, dispute_row(dispute), f"dispute {dispute.dispute_id} exists"
        )

    def disputes(self, invoice_id: str, tx: Connection | None = None) -> Sequence[StoredDispute]:
        query = (
            select(disputes_table)
            .where(disputes_table.c.invoice_id == invoice_id)
            .order_by(disputes_table.c.opened_at, disputes_table.c.dispute_id)
        )
        return [read_dispute(row) for row in self._rows(query, tx)]

    # --- journal ---------------------------------------------------------------------

    def add_entry(self, tx: Connection, entry: JournalEntry, at: datetime) -> None:
        tx.execute(insert(journal_table).values(entry_row(entry, at)))

    def entries(self, invoice_id: str | None = None) -> Sequence[JournalEntry]:
        query = select(journal_table).order_by(journal_table.c.seq)
        if invoice_id is not None:
            query = query.where(journal_table.c.invoice_id == invoice_id)
        return [read_entry(row) for row in self._rows(query, None)]

    # --- ChainView -------------------------------------------------------------------

    def registry(self, tx: Connection | None = None) -> tuple[Mapping[str, Any], int] | None:
        query = select(follower_table.c.registry, follower_table.c.height).where(
            follower_table.c.id == _FOLLOWER_ROW
        )
        row = next(iter(self._rows(query, tx)), None)
        if row is None or row.registry is None:
            return None
        stored: dict[str, Any] = json.loads(row.registry)
        return stored, int(row.height)

    def save_position(
        self,
        tx: Connection,
        *,
        position: Mapping[str, Any],
        height: int,
        registry: Mapping[str, Any] | None,
    ) -> None:
        values: dict[str, object] = {
            "position": json.dumps(dict(position), sort_keys=True),
            "height": height,
        }
        if registry is not None:  # None keeps the stored registry, now valid at `height`
            values["registry"] = json.dumps(dict(registry), sort_keys=True)
        updated = tx.execute(
            update(follower_table).where(follower_table.c.id == _FOLLOWER_ROW).values(values)
        ).rowcount
        if not updated:
            tx.execute(insert(follower_table).values(id=_FOLLOWER_ROW, **values))

    def position(self) -> Mapping[str, Any] | None:
        query = select(follower_table.c.position).where(follower_table.c.id == _FOLLOWER_ROW)
        with self._database.read() as connection:
            stored = connection.execute(query).scalar_one_or_none()
        if stored is None:
            return None
        value: dict[str, Any] = json.loads(stored)
        return value

    # --- helpers ---------------------------------------------------------------------

    def _rows(self, query: Select[Any], tx: Connection | None) -> list[Row[Any]]:
        if tx is not None:
            return list(tx.execute(query))
        with self._database.read() as connection:
            return list(connection.execute(query))


def _insert_new(tx: Connection, table: Table, row: Mapping[str, object], refusal: str) -> None:
    # A savepoint, so a refused insert leaves the caller's transaction usable (PostgreSQL
    # would abort it otherwise), as a refusal of the memory adapter does.
    try:
        with tx.begin_nested():
            tx.execute(insert(table).values(row))
    except IntegrityError as exc:
        raise ValueError(refusal) from exc


def _plan(key: PlanKey) -> tuple[Any, ...]:
    columns = plan_states_table.c
    return (
        columns.patient == key.patient,
        columns.plan_id == key.plan_id,
        columns.plan_year == key.plan_year,
        columns.currency == key.currency,
    )
