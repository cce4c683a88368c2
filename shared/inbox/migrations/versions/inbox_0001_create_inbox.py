"""Create the inbox table: the (source, id) of every event a consumer has applied.

Revision ID: inbox_0001
Revises:
Create Date: 2025-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "inbox_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "careledger_inbox",
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "source", "event_id", name="pk_careledger_inbox"),
    )


def downgrade() -> None:
    op.drop_table("careledger_inbox")
