"""the outbox (deliveries), event cursors, and translated titles

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def at(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("timeline_id", sa.String(length=100), nullable=False),
        sa.Column("milestone_key", sa.String(length=100), nullable=False),
        sa.Column("occurrence", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("slot", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        at("send_at", False),
        at("attempt_at", False),
        at("deadline_at"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        at("lease_until"),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        at("old_at"),
        at("new_at"),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=False),
        sa.Column("reply", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        at("sent_at"),
        at("created_at", False),
        at("updated_at", False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "subscriber_id", "timeline_id", "milestone_key", "occurrence", "kind", "slot", name="uq_delivery"
        ),
    )
    op.create_index("ix_deliveries_subscriber_id", "deliveries", ["subscriber_id"])
    op.create_index("ix_deliveries_claim", "deliveries", ["state", "attempt_at"])
    op.create_index("ix_deliveries_milestone", "deliveries", ["timeline_id", "milestone_key", "subscriber_id"])
    op.create_table(
        "cursors",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        at("updated_at"),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("timelines", schema=None) as batch_op:
        batch_op.add_column(sa.Column("titles", sa.JSON(), nullable=True))
    with op.batch_alter_table("milestones", schema=None) as batch_op:
        batch_op.add_column(sa.Column("titles", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("milestones", schema=None) as batch_op:
        batch_op.drop_column("titles")
    with op.batch_alter_table("timelines", schema=None) as batch_op:
        batch_op.drop_column("titles")
    op.drop_table("cursors")
    op.drop_index("ix_deliveries_milestone", table_name="deliveries")
    op.drop_index("ix_deliveries_claim", table_name="deliveries")
    op.drop_index("ix_deliveries_subscriber_id", table_name="deliveries")
    op.drop_table("deliveries")
