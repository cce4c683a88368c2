"""Create the sealer's chain store: blocks, the state after the head, sealed (source, id).

Revision ID: sealer_0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sealer_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sealer_blocks",
        sa.Column("height", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("block_hash", sa.String(64), nullable=False),
        sa.Column("block", sa.LargeBinary(), nullable=False),
    )
    # One row: the state after the head block and where to resume reading. `height` names
    # the head; updating it with a guard on the old value makes a concurrent writer fail.
    op.create_table(
        "sealer_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("read_positions", sa.Text(), nullable=False),
    )
    op.create_table(
        "sealer_seen",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "event_id", name="pk_sealer_seen"),
    )


def downgrade() -> None:
    op.drop_table("sealer_seen")
    op.drop_table("sealer_head")
    op.drop_table("sealer_blocks")
