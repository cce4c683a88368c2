"""Create the replay table: the (issuer, jti) of every accepted bearer token until it expires.

Revision ID: seen_tokens_0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "seen_tokens_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "careledger_seen_tokens",
        sa.Column("issuer", sa.String(200), nullable=False),
        sa.Column("jti", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "jti", name="pk_careledger_seen_tokens"),
    )
    op.create_index(
        "ix_careledger_seen_tokens_expires_at", "careledger_seen_tokens", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_careledger_seen_tokens_expires_at", "careledger_seen_tokens")
    op.drop_table("careledger_seen_tokens")
