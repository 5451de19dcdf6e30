"""event actor: who did what ('cli:USER', 'console:EMAIL', 'api', 'sync', 'mailer'), for the audit log

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 13:30:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

COMPLETIONS = ("completed", "amended", "reopened")


def upgrade() -> None:
    op.add_column("events", sa.Column("actor", sa.String(length=120), nullable=False, server_default=""))
    op.create_index("ix_events_actor", "events", ["actor"])
    backfill(op.get_bind())


def backfill(connection: sa.Connection) -> None:
    """Name who did the past events where the log says it: a completion wrote its author in its detail
    (and its change set is its cascade); every other milestone event came from a sync; delivery events
    from the mailer. Subscriber events stay unattributed ('')."""
    events = sa.table("events", sa.column("id"), sa.column("kind"), sa.column("timeline_id"),
                      sa.column("detail"), sa.column("change_set"), sa.column("actor"))  # fmt: skip
    found = connection.execute(
        sa.select(events.c.change_set, events.c.detail).where(events.c.kind.in_(COMPLETIONS))
    ).all()
    for change_set, detail in found:
        who = str(read(detail).get("who") or "")[:120]
        if who and change_set:
            connection.execute(sa.update(events).where(events.c.change_set == change_set).values(actor=who))
    # The console's outbox and subscriber actions wrote the user's address as `by`.
    by_hand = events.c.kind.like("outbox_%") | events.c.kind.in_(("subscriber_suspended", "subscriber_unsuspended"))
    for event_id, detail in connection.execute(sa.select(events.c.id, events.c.detail).where(by_hand)).all():
        by = str(read(detail).get("by") or "")
        if by:
            connection.execute(sa.update(events).where(events.c.id == event_id).values(actor=f"console:{by}"[:120]))
    connection.execute(
        sa.update(events).where(events.c.actor == "", events.c.timeline_id != "", ~events.c.kind.like("delivery_%"),
                                ~events.c.kind.like("outbox_%"))
        .values(actor="sync")
    )  # fmt: skip
    connection.execute(
        sa.update(events)
        .where(events.c.actor == "", events.c.kind.like("delivery_%") | (events.c.kind == "subscriber_suspended"))
        .values(actor="mailer")
    )


def read(detail: object) -> dict[str, object]:
    """An event's detail as a dict: JSON text on SQLite, already a dict on PostgreSQL."""
    data = json.loads(detail) if isinstance(detail, str) else detail
    return data if isinstance(data, dict) else {}


def downgrade() -> None:
    op.drop_index("ix_events_actor", table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("actor")
