"""quarantine: stored subscribers and milestones set aside with a reason; deliveries may be quarantined

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("what", sa.String(length=12), nullable=False),
        sa.Column("key", sa.String(length=210), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("what", "key"),
    )
    # 'quarantined' has 11 letters. SQLite does not enforce a length: copying the whole outbox
    # there (what a batch alteration does) would only cost time.
    if op.get_bind().dialect.name != "sqlite":
        resize("deliveries", "state", 10, 12)


def downgrade() -> None:
    # The older code knows no 'quarantined', which the narrower column cannot hold either.
    op.execute("UPDATE deliveries SET state = 'failed' WHERE state = 'quarantined'")
    if op.get_bind().dialect.name != "sqlite":
        resize("deliveries", "state", 12, 10)
    op.drop_table("quarantine")


def resize(table: str, column: str, old: int, new: int) -> None:
    op.alter_column(
        table, column, type_=sa.String(length=new), existing_type=sa.String(length=old), existing_nullable=False
    )
