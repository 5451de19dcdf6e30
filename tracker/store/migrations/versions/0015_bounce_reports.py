"""bounce reports: each bounce that came to the VERP bounce address, once (docs/bounces.md)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bounce_reports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=False, unique=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("diagnostic", sa.String(length=300), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_bounce_reports_subscriber", "bounce_reports", ["subscriber_id", "received_at"])
    op.create_index("ix_bounce_reports_received", "bounce_reports", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_bounce_reports_received", table_name="bounce_reports")
    op.drop_index("ix_bounce_reports_subscriber", table_name="bounce_reports")
    op.drop_table("bounce_reports")
