"""The single-writer lease: one row naming the sealer that may append, and until when.

Revision ID: sealer_0002
Revises: sealer_0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sealer_0002"
down_revision = "sealer_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sealer_lease",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),  # microseconds since epoch
    )


def downgrade() -> None:
    op.drop_table("sealer_lease")
