"""Create the billing store: deployed tariff contracts, consultation outcomes, invoices, plan
states, payments, refunds, disputes, the double-entry journal, and what the chain follower
learned (the signer registry at a height) with its position.

Revision ID: billing_0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "billing_0001"
down_revision = None
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MOMENT = sa.DateTime(timezone=True)
KEY = 256


def upgrade() -> None:
    # The contract is its JSON document (TariffContract.model_dump(mode="json")).
    op.create_table(
        "billing_contracts",
        sa.Column("version", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("contract", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("deployed_at", MOMENT, nullable=False),
        sa.Column("event_id", sa.String(KEY), nullable=False),
    )
    # The de-duplication record of consultation events.
    op.create_table(
        "billing_outcomes",
        sa.Column("source", sa.String(KEY), nullable=False),
        sa.Column("event_id", sa.String(KEY), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("encounter_id", sa.String(KEY), nullable=True),
        sa.Column("invoice_id", sa.String(KEY), nullable=True),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("billing_event_id", sa.String(KEY), nullable=False),
        sa.Column("at", MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("source", "event_id", name="pk_billing_outcomes"),
    )
    # One invoice per encounter; charges are the Charges JSON, modifiers a JSON list.
    op.create_table(
        "billing_invoices",
        sa.Column("invoice_id", sa.String(KEY), primary_key=True),
        sa.Column("encounter_id", sa.String(KEY), nullable=False, unique=True),
        sa.Column("consultation_source", sa.String(KEY), nullable=False),
        sa.Column("consultation_id", sa.String(KEY), nullable=False),
        sa.Column("practitioner", sa.String(KEY), nullable=False),
        sa.Column("patient", sa.String(KEY), nullable=False),
        sa.Column("plan_year", sa.Integer(), nullable=False),
        sa.Column("consultation_start", sa.String(64), nullable=False),
        sa.Column("consultation_end", sa.String(64), nullable=False),
        sa.Column("modifiers", sa.Text(), nullable=False),
        sa.Column("place_of_service", sa.String(16), nullable=False),
        sa.Column("charges", sa.Text(), nullable=False),
        sa.Column("deductible_met_before", sa.BigInteger(), nullable=False),
        sa.Column("registry_height", sa.BigInteger(), nullable=False),
        sa.Column("issued_at", MOMENT, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(KEY), nullable=False),
        sa.Column("claim_id", sa.String(KEY), nullable=True),
        sa.Column("claim_event_id", sa.String(KEY), nullable=True),
        sa.Column("void_reason", sa.String(32), nullable=True),
    )
    op.create_index("ix_billing_invoices_patient", "billing_invoices", ["patient"])
    op.create_table(
        "billing_plan_states",
        sa.Column("patient", sa.String(KEY), nullable=False),
        sa.Column("plan_id", sa.String(KEY), nullable=False),
        sa.Column("plan_year", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("deductible_met", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "patient", "plan_id", "plan_year", "currency", name="pk_billing_plans"
        ),
    )
    # `seq` keeps the order payments were received in.
    op.create_table(
        "billing_payments",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("payment_id", sa.String(KEY), nullable=False, unique=True),
        sa.Column("invoice_id", sa.String(KEY), nullable=False),
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reference", sa.String(KEY), nullable=False),
        sa.Column("idempotency_key", sa.String(KEY), nullable=False),
        sa.Column("applied", sa.BigInteger(), nullable=False),
        sa.Column("excess", sa.BigInteger(), nullable=False),
        sa.Column("received_at", MOMENT, nullable=False),
        sa.Column("event_id", sa.String(KEY), nullable=False),
        sa.UniqueConstraint("invoice_id", "idempotency_key", name="uq_billing_payments_key"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "billing_refunds",
        sa.Column("refund_id", sa.String(KEY), primary_key=True),
        sa.Column("invoice_id", sa.String(KEY), nullable=False),
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("issued_at", MOMENT, nullable=False),
        sa.Column("event_id", sa.String(KEY), nullable=False),
    )
    op.create_index("ix_billing_refunds_invoice_id", "billing_refunds", ["invoice_id"])
    op.create_table(
        "billing_disputes",
        sa.Column("dispute_id", sa.String(KEY), primary_key=True),
        sa.Column("invoice_id", sa.String(KEY), nullable=False),
        sa.Column("party", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("opened_at", MOMENT, nullable=False),
        sa.Column("event_id", sa.String(KEY), nullable=False),
    )
    op.create_index("ix_billing_disputes_invoice_id", "billing_disputes", ["invoice_id"])
    # Append-only; postings are a JSON list of {account, side, amount}.
    op.create_table(
        "billing_journal",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("invoice_id", sa.String(KEY), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(KEY), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("postings", sa.Text(), nullable=False),
        sa.Column("at", MOMENT, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_billing_journal_invoice_id", "billing_journal", ["invoice_id"])
    # One row: the follower's position, the height it is at, and the registry (JSON).
    op.create_table(
        "billing_follower",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("position", sa.Text(), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.Column("registry", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    for table in (
        "billing_follower",
        "billing_journal",
        "billing_disputes",
        "billing_refunds",
        "billing_payments",
        "billing_plan_states",
        "billing_invoices",
        "billing_outcomes",
        "billing_contracts",
    ):
        op.drop_table(table)
