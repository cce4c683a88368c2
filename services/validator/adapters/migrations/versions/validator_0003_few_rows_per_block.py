"""Few rows per block (ADR 0012): each block's leaf hashes in one `validator_leaves` row,
subtree nodes kept only from level 8 up, event locations without their height (found from
`validator_leaves`) in a table WITHOUT ROWID on SQLite, and the final heights in
`validator_finals` instead of a column stored after each block's JSON.

Existing data is converted, not dropped: leaves come from the stored level-0 nodes (or, where
one is missing, are hashed again from the stored block's events), nodes at level 8 and up are
kept, event rows are copied. The downgrade rebuilds the lower nodes from the leaves.

Revision ID: validator_0003
Revises: validator_0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from shared.canonical import canonicalize
from shared.merkle import CompactRange, leaf_hash

revision = "validator_0003"
down_revision = "validator_0002"
branch_labels = None
depends_on = None

#: Frozen here: `shared.merkle.leaf_backed.STORED_LEVEL` when this revision was written.
STORED_LEVEL = 8
_HASH = 32

_blocks = sa.table(
    "validator_blocks",
    sa.column("height", sa.BigInteger()),
    sa.column("tree_size", sa.BigInteger()),
    sa.column("event_count", sa.Integer()),
    sa.column("raw", sa.LargeBinary()),
)
_nodes = sa.table(
    "validator_nodes",
    sa.column("level", sa.SmallInteger()),
    sa.column("idx", sa.BigInteger()),
    sa.column("hash", sa.LargeBinary()),
)
_leaves = sa.table(
    "validator_leaves",
    sa.column("first_leaf", sa.BigInteger()),
    sa.column("height", sa.BigInteger()),
    sa.column("hashes", sa.LargeBinary()),
)


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "validator_leaves",
        sa.Column(
            "first_leaf",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
    )
    blocks = bind.execute(
        sa.select(_blocks.c.height, _blocks.c.tree_size, _blocks.c.event_count).order_by(
            _blocks.c.height
        )
    ).all()
    for height, tree_size, event_count in blocks:
        first = tree_size - event_count
        rows = bind.execute(
            sa.select(_nodes.c.idx, _nodes.c.hash)
            .where(_nodes.c.level == 0, _nodes.c.idx >= first, _nodes.c.idx < tree_size)
            .order_by(_nodes.c.idx)
        ).all()
        hashes = [bytes(h) for _, h in rows]
        if [int(i) for i, _ in rows] != list(range(first, tree_size)) or any(
            len(h) != _HASH for h in hashes
        ):
            hashes = _leaves_of_block(bind, height)
        bind.execute(
            sa.insert(_leaves).values(first_leaf=first, height=height, hashes=b"".join(hashes))
        )
    bind.execute(sa.delete(_nodes).where(_nodes.c.level < STORED_LEVEL))

    op.create_table(
        "validator_events_new",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "event_id", name="pk_validator_events"),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT INTO validator_events_new (source, event_id, leaf_index) "
        "SELECT source, event_id, leaf_index FROM validator_events"
    )
    op.drop_table("validator_events")
    op.rename_table("validator_events_new", "validator_events")

    op.create_table(
        "validator_finals",
        sa.Column(
            "height",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
    )
    op.execute(
        "INSERT INTO validator_finals (height) SELECT height FROM validator_blocks WHERE final"
    )
    op.drop_index("ix_validator_blocks_final", table_name="validator_blocks")
    with op.batch_alter_table("validator_blocks") as batch:
        batch.drop_column("final")


def _leaves_of_block(bind: sa.Connection, height: int) -> list[bytes]:
    """The leaf hashes of a stored block, hashed again from its events (RFC 6962 leaves)."""
    raw = bind.execute(sa.select(_blocks.c.raw).where(_blocks.c.height == height)).scalar_one()
    return [leaf_hash(canonicalize(event)) for event in json.loads(bytes(raw))["events"]]


def downgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("validator_blocks") as batch:
        batch.add_column(
            sa.Column("final", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        "UPDATE validator_blocks SET final = TRUE "
        "WHERE height IN (SELECT height FROM validator_finals)"
    )
    op.create_index(
        "ix_validator_blocks_final",
        "validator_blocks",
        ["height"],
        sqlite_where=sa.text("final = 1"),
        postgresql_where=sa.text("final"),
    )
    op.drop_table("validator_finals")
    op.create_table(
        "validator_events_old",
        sa.Column("source", sa.Text(), primary_key=True),
        sa.Column("event_id", sa.Text(), primary_key=True),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
    )
    op.execute(
        "INSERT INTO validator_events_old (source, event_id, leaf_index, height) "
        "SELECT e.source, e.event_id, e.leaf_index, "
        "(SELECT l.height FROM validator_leaves l WHERE l.first_leaf <= e.leaf_index "
        "ORDER BY l.first_leaf DESC LIMIT 1) FROM validator_events e"
    )
    op.drop_table("validator_events")
    op.rename_table("validator_events_old", "validator_events")

    # Every node below STORED_LEVEL again, replayed from the leaves block by block.
    log = CompactRange()
    rows = bind.execute(sa.select(_leaves.c.hashes).order_by(_leaves.c.first_leaf))
    for (stored,) in rows.all():
        packed = bytes(stored)
        leaves = [packed[n : n + _HASH] for n in range(0, len(packed), _HASH)]
        lower = [node for node in log.extend(leaves) if node[0] < STORED_LEVEL]
        if lower:
            bind.execute(
                sa.insert(_nodes), [{"level": lv, "idx": ix, "hash": h} for lv, ix, h in lower]
            )
    op.drop_table("validator_leaves")
