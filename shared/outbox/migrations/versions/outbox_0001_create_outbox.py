"""Create the outbox table: one row per event to publish, unsent while sent_at is NULL.

Revision ID: outbox_0001
Revises:
Create Date: 2025-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "outbox_0001"
down_revision = None
branch_labels = None
depends_on = None

# INTEGER PRIMARY KEY on SQLite is the rowid; AUTOINCREMENT forbids reusing the seq of a
# pruned row, so seq order stays the order in which entries were written.
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "careledger_outbox",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(249), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("message_key", sa.LargeBinary(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("source", "event_id", name="uq_careledger_outbox_event"),
        sqlite_autoincrement=True,
    )
    # The relay's query: unsent rows in seq order. Partial, so it stays as small as the backlog.
    op.create_index(
        "ix_careledger_outbox_pending",
        "careledger_outbox",
        ["seq"],
        sqlite_where=sa.text("sent_at IS NULL"),
        postgresql_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_careledger_outbox_pending", table_name="careledger_outbox")
    op.drop_table("careledger_outbox")
