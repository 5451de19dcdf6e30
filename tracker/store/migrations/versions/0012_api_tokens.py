"""personal API tokens: a public id for lookup and the hash of the token, never the token itself

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), nullable=False, index=True),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("public_id", sa.String(length=16), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    live = sa.text("revoked_at IS NULL")
    op.create_index("ux_api_tokens_live_name", "api_tokens", ["name"], unique=True, sqlite_where=live,
                    postgresql_where=live)  # fmt: skip


def downgrade() -> None:
    op.drop_index("ux_api_tokens_live_name", table_name="api_tokens")
    op.drop_table("api_tokens")
