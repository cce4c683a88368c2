"""Create the identity journal (the service's signed changes and their sealed heights) and the
chain follower's position.

Revision ID: identity_0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "identity_0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "identity_journal",
        sa.Column("seq", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("credential", sa.String(64), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("sealed_height", sa.BigInteger(), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_identity_journal_subject", "identity_journal", ["subject"])
    op.create_index("ix_identity_journal_type", "identity_journal", ["type"])
    op.create_index("ix_identity_journal_credential", "identity_journal", ["credential"])
    op.create_table(
        "identity_follower",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("position", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("identity_follower")
    op.drop_table("identity_journal")
