"""The delivery log's retention: finished outbox rows older than TRACKER_DELIVERY_LOG_DAYS are deleted.

Only finished rows go (sent, bounced, failed, skipped, cancelled): nothing planned, held, in flight or set
aside. They are found through ix_deliveries_done (state, updated_at) a batch at a time, so a pass
with nothing to delete costs one indexed look, and one with a year's backlog holds no long lock.
`/metrics`' tracker_deliveries gauge counts the rows held, so it drops with them; the counters of
what was sent are the instance's own and are not affected (docs/console.md, "Personal data").

Bounce reports received before the same cutoff go too: what a server said names the person. A
retention shorter than TRACKER_BOUNCE_SUSPEND's window shortens the window in effect.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlmodel import Session

from tracker.store.models import BounceReport, Delivery

FINISHED = ("sent", "bounced", "failed", "skipped", "cancelled")
PRUNE_BATCH = 1000  # rows deleted by one statement
PRUNE_BATCHES = 20  # statements one pass runs at most; the rest waits for the next pass


def prune_log(session: Session, *, before: datetime, limit: int = PRUNE_BATCH) -> int:
    """Delete at most *limit* finished rows last changed before *before*; return how many."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    # A row is the only record that its message went: a reminder sent a year ago for a deadline
    # still ahead (an offset longer than the retention) would be planned and sent again once
    # deleted. So a row goes only when the deadline it served is older than the retention too.
    served = table.c.deadline_at.is_(None) | (table.c.deadline_at < before)
    old = select(table.c.id).where(table.c.state.in_(FINISHED), table.c.updated_at < before, served).limit(limit)
    result = session.execute(delete(table).where(table.c.id.in_(old.scalar_subquery())))
    return int(result.rowcount)  # type: ignore[attr-defined]


def prune_bounces(session: Session, *, before: datetime, limit: int = PRUNE_BATCH) -> int:
    """Delete at most *limit* bounce reports received before *before* (ix_bounce_reports_received); return how many."""
    table = BounceReport.__table__  # type: ignore[attr-defined]
    old = select(table.c.id).where(table.c.received_at < before).limit(limit)
    result = session.execute(delete(table).where(table.c.id.in_(old.scalar_subquery())))
    return int(result.rowcount)  # type: ignore[attr-defined]
