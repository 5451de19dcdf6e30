"""change sets: events carry the change set that wrote them; a changed message lists its lines

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default) on both databases: no copy of the events or the outbox.
    op.add_column("events", sa.Column("change_set", sa.String(length=32), nullable=True))
    op.add_column("deliveries", sa.Column("lines", sa.JSON(), nullable=True))


def downgrade() -> None:
    # The older code knows one 'changed' row per milestone: messages listing several are not sent.
    op.execute(
        "UPDATE deliveries SET state = 'cancelled', reason = 'downgraded' "
        "WHERE kind = 'changed' AND lines IS NOT NULL AND state = 'planned'"
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("lines")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("change_set")
