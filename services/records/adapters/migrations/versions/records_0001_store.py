"""Create the records store: encrypted record versions and their heads, wrapped data keys,
consents, the audit trail, what the chain follower learned (practitioners, authorities,
patients, the service's sealed events), and its position.

Revision ID: records_0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "records_0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MOMENT = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Custody key and salt are NULL once the record is crypto-shredded.
    op.create_table(
        "records_heads",
        sa.Column("record_id", sa.String(64), primary_key=True),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("author", sa.String(256), nullable=False),
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("custody_key", sa.LargeBinary(), nullable=True),
        sa.Column("salt", sa.LargeBinary(), nullable=True),
        sa.Column("erased_at", MOMENT, nullable=True),
        sa.Column("erased_by", sa.String(32), nullable=True),
        sa.Column("erase_event_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_records_heads_patient", "records_heads", ["patient"])
    # Versions are never overwritten; erasure only nulls nonce and ciphertext.
    op.create_table(
        "records_versions",
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(256), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=True),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("ciphertext_hash", sa.String(64), nullable=False),
        sa.Column("commitment", sa.String(64), nullable=False),
        sa.Column("envelope_signature", sa.Text(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.PrimaryKeyConstraint("record_id", "version", name="pk_records_versions"),
    )
    op.create_table(
        "records_wraps",
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(256), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
        sa.Column("consent_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("record_id", "recipient", name="pk_records_wraps"),
    )
    # A revoked consent's wraps are dropped by consent id.
    op.create_index("ix_records_wraps_consent_id", "records_wraps", ["consent_id"])
    op.create_table(
        "records_consents",
        sa.Column("consent_id", sa.String(64), primary_key=True),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("grantee", sa.String(256), nullable=False),
        sa.Column("resource_types", sa.Text(), nullable=False),  # a JSON list
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("expires", MOMENT, nullable=False),
        sa.Column("granted_at", MOMENT, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("revoked_at", MOMENT, nullable=True),
        sa.Column("revoke_event_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_records_consents_patient", "records_consents", ["patient"])
    op.create_index("ix_records_consents_grantee", "records_consents", ["grantee"])
    op.create_table(
        "records_accesses",
        sa.Column("seq", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("at", MOMENT, nullable=False),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(256), nullable=True),
        sa.Column("record_id", sa.String(64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("consent_id", sa.String(64), nullable=True),
        sa.Column("reason_sealed", sa.LargeBinary(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_records_accesses_patient", "records_accesses", ["patient"])
    # `since` and `revoked` are block heights; `credential` is the licence's digest.
    op.create_table(
        "records_practitioners",
        sa.Column("did", sa.String(256), primary_key=True),
        sa.Column("since", sa.BigInteger(), nullable=False),
        sa.Column("issuer", sa.String(256), nullable=False),
        sa.Column("credential", sa.String(64), nullable=False),
        sa.Column("valid_from", MOMENT, nullable=False),
        sa.Column("valid_until", MOMENT, nullable=True),
        sa.Column("revoked", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "records_authorities",
        sa.Column("did", sa.String(256), primary_key=True),
        sa.Column("since", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "records_patients",
        sa.Column("pseudonym", sa.String(64), primary_key=True),
        sa.Column("since", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "records_sealed",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.Column("commitment", sa.String(64), nullable=True),
    )
    op.create_table(
        "records_follower",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("position", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "records_follower",
        "records_sealed",
        "records_patients",
        "records_authorities",
        "records_practitioners",
        "records_accesses",
        "records_consents",
        "records_wraps",
        "records_versions",
        "records_heads",
    ):
        op.drop_table(table)
