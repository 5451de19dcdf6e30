"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 13:22:59.340245
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "completions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("timeline_id", sa.String(length=100), nullable=False),
        sa.Column("milestone_key", sa.String(length=100), nullable=False),
        sa.Column("occurrence", sa.String(length=40), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_day", sa.Date(), nullable=True),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("link", sa.String(), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("timeline_id", "milestone_key", "occurrence", name="uq_completion"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("timeline_id", sa.String(length=100), nullable=False),
        sa.Column("milestone_key", sa.String(length=100), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("old_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("new_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_milestone", ["timeline_id", "milestone_key"], unique=False)

    op.create_table(
        "timelines",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("summary", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("audiences", sa.JSON(), nullable=True),
        sa.Column("reminders", sa.JSON(), nullable=True),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "milestones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("timeline_id", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("summary", sa.String(), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=True),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("due_expr", sa.String(), nullable=True),
        sa.Column("starts_expr", sa.String(), nullable=True),
        sa.Column("ends_expr", sa.String(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("repeat", sa.String(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("opens_after", sa.String(), nullable=True),
        sa.Column("reminders", sa.JSON(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["timeline_id"],
            ["timelines.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("timeline_id", "key", name="uq_milestone_key"),
    )
    with op.batch_alter_table("milestones", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_milestones_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_milestones_timeline_id"), ["timeline_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("milestones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_milestones_timeline_id"))
        batch_op.drop_index(batch_op.f("ix_milestones_due_at"))

    op.drop_table("milestones")
    op.drop_table("timelines")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_milestone")

    op.drop_table("events")
    op.drop_table("completions")
