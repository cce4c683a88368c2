"""Forget the chain follower's position once: billing now bills consultations out of the blocks
it follows, so it reads the chain again from genesis (docs/adr/0011).

Before this revision the follower's position said which blocks had changed the registry, not
which consultations were billed: the engine read `clinical.events` on its own and could lag
behind the follower. Resuming after that position would skip the consultations sealed in
blocks the follower had applied but the engine had not billed yet. Read again from genesis,
every consultation billed before is found by its `(source, id)` outcome and decided nothing
twice; the registry is rebuilt by the same rules, so it ends as it was.

Revision ID: billing_0002
Revises: billing_0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "billing_0002"
down_revision = "billing_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM billing_follower"))


def downgrade() -> None:
    # Nothing to restore: the older engine starts its follower from genesis without a row.
    pass
