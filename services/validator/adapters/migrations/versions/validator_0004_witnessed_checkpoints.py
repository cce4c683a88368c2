"""The checkpoints this validator cosigned as a witness (`POST /v1/add-checkpoint`, ADR 0015):
the latest one per origin.

Revision ID: validator_0004
Revises: validator_0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "validator_0004"
down_revision = "validator_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "validator_witnessed",
        sa.Column("origin", sa.String(256), primary_key=True),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("validator_witnessed")
