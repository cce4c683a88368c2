"""Index the final blocks by height: `/v1/head` asks for the highest final height each time.

Revision ID: validator_0002
Revises: validator_0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "validator_0002"
down_revision = "validator_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_validator_blocks_final",
        "validator_blocks",
        ["height"],
        sqlite_where=sa.text("final = 1"),
        postgresql_where=sa.text("final"),
    )


def downgrade() -> None:
    op.drop_index("ix_validator_blocks_final", table_name="validator_blocks")
