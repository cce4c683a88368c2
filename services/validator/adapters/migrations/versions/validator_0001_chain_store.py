"""Create the validator's chain store: blocks, subtree nodes, event locations, chain state,
attestations, refused blocks and consumer cursors.

Revision ID: validator_0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "validator_0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "validator_blocks",
        sa.Column("height", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("block_hash", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("log_root", sa.String(64), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("sealed_at", sa.String(40), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "validator_nodes",
        sa.Column("level", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "validator_events",
        sa.Column("source", sa.Text(), primary_key=True),
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "validator_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "validator_attestations",
        sa.Column("height", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("validator", sa.String(128), primary_key=True),
        sa.Column("block_hash", sa.String(64), primary_key=True),
        sa.Column("raw", sa.Text(), nullable=False),
    )
    op.create_table(
        "validator_refusals",
        sa.Column("seq", ID, primary_key=True, autoincrement=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("conflicting", sa.LargeBinary(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "validator_cursors",
        sa.Column("topic", sa.String(249), primary_key=True),
        sa.Column("last_offset", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "validator_cursors",
        "validator_refusals",
        "validator_attestations",
        "validator_state",
        "validator_events",
        "validator_nodes",
        "validator_blocks",
    ):
        op.drop_table(table)
