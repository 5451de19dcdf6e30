"""milestone overdue: a timeline file's own escalation offsets for late steps (None: TRACKER_OVERDUE)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default) on both databases: existing rows keep TRACKER_OVERDUE.
    op.add_column("milestones", sa.Column("overdue", sa.JSON(), nullable=True))


def downgrade() -> None:
    # The older code chases every late step at TRACKER_OVERDUE: a file's own offsets are forgotten.
    with op.batch_alter_table("milestones", schema=None) as batch_op:
        batch_op.drop_column("overdue")
