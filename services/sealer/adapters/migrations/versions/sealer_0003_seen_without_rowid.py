"""On SQLite, `sealer_seen` becomes a WITHOUT ROWID table (ADR 0012): its rows live in the
primary-key B-tree itself, where a rowid table kept them twice (the table and the key's
index). One row per sealed event stays: admission must know every sealed `(source, id)`.
Rows are copied as they are. PostgreSQL has no such option; nothing changes there.

Revision ID: sealer_0003
Revises: sealer_0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "sealer_0003"
down_revision = "sealer_0002"
branch_labels = None
depends_on = None


def _rebuild(*, with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table(
        "sealer_seen_rebuilt",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "event_id", name="pk_sealer_seen"),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(
        "INSERT INTO sealer_seen_rebuilt (source, event_id, height) "
        "SELECT source, event_id, height FROM sealer_seen"
    )
    op.drop_table("sealer_seen")
    op.rename_table("sealer_seen_rebuilt", "sealer_seen")


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)
