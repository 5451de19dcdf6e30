"""personal data: erasures (a one-way reference per erased subscriber), subscriber numbers never reused,
and an index for the delivery log's retention

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("subscriber_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("ref", sa.String(length=32), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_erasures_ref", "erasures", ["ref"])
    op.create_index("ix_deliveries_done", "deliveries", ["state", "updated_at"])
    if op.get_bind().dialect.name == "sqlite":
        # SQLite gives the highest number again once its row is deleted, unless the table says AUTOINCREMENT;
        # PostgreSQL's sequence never does.
        with op.batch_alter_table("subscribers", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass


def downgrade() -> None:
    op.drop_index("ix_deliveries_done", table_name="deliveries")
    op.drop_index("ix_erasures_ref", table_name="erasures")
    op.drop_table("erasures")
