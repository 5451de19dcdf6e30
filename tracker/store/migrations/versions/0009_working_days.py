"""working days: a timeline's calendar (weekend, holidays), a milestone's roll and the date it was rolled from

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default) on both databases: existing timelines keep the default
    # Saturday-Sunday weekend, existing milestones have no roll, which is what their files said.
    op.add_column("timelines", sa.Column("calendar", sa.JSON(), nullable=True))
    op.add_column("milestones", sa.Column("roll", sa.String(length=10), nullable=True))
    op.add_column("milestones", sa.Column("rolled_from", sa.Date(), nullable=True))


def downgrade() -> None:
    # The older code reads no calendar: `wd` offsets and rolls are gone with these columns.
    with op.batch_alter_table("milestones", schema=None) as batch_op:
        batch_op.drop_column("rolled_from")
        batch_op.drop_column("roll")
    with op.batch_alter_table("timelines", schema=None) as batch_op:
        batch_op.drop_column("calendar")
