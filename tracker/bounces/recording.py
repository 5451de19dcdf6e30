"""Record what a bounce says: the report once, a hard bounce on its delivery, a suspension when the policy says so.

The report's fingerprint is unique in the store: a report processed twice (a relay that
forwards it again, a listener that died before answering) is counted once. A suspension is
the one the console and synchronous refusals make (subscribers/roster.py): planned messages
are cancelled, the event log says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, func, insert, update
from sqlmodel import Session, col, select

from tracker.bounces.policy import SuspendPolicy
from tracker.bounces.reading import Bounce, Reading
from tracker.store.models import BounceReport, Delivery, Erasure, Event, Subscriber
from tracker.subscribers.roster import set_suspended

log = logging.getLogger(__name__)

Result = Literal["hard", "soft", "forged", "unmatched", "not-a-bounce", "duplicate", "unreadable", "stale"]
BY = "bounces"  # who suspends, in the event log
# Relays give up on a message within days (Postfix: 5); a report about one sent longer ago than
# this is ignored: it replays a VERP address someone has seen (a forwarded or leaked bounce).
STALE_AFTER = timedelta(days=14)


@dataclass(frozen=True)
class Recorded:
    """What recording one report did."""

    result: Result
    delivery_id: int | None = None
    suspended: bool = False


def record_reading(session: Session, reading: Reading, policy: SuspendPolicy, now: datetime) -> Recorded:
    """Store *reading*'s outcome in *session* (the caller commits), once per report."""
    if reading.forged:
        return Recorded("forged") if _remember(session, reading, "forged", None, now) else Recorded("duplicate")
    if reading.delivery_id is None:
        return Recorded("unmatched")  # not to a tagged address of ours: someone else's mail, ignored
    bounce = reading.bounce
    if bounce is None:
        return Recorded("not-a-bounce", reading.delivery_id)  # an auto-reply: nothing failed
    row = session.get(Delivery, reading.delivery_id)
    if row is not None and row.sent_at is not None and now - row.sent_at > STALE_AFTER:
        return Recorded("stale", reading.delivery_id)
    subscriber_id = row.subscriber_id if row is not None and row.subscriber_id > 0 else None
    if not _known(session, row):
        # The person was erased (or the row is gone): what their server said names them, and
        # nothing may write it back. The report counts, with its status code only.
        bounce = replace(bounce, diagnostic="")
        reading = replace(reading, bounce=bounce)
    if not _remember(session, reading, bounce.kind, subscriber_id, now):
        return Recorded("duplicate", reading.delivery_id)
    if row is not None and bounce.undelivered:
        _mark_bounced(session, row, bounce, now)
    suspended = subscriber_id is not None and suspend_if_bouncing(session, subscriber_id, policy, now)
    return Recorded(bounce.kind, reading.delivery_id, suspended)


def _known(session: Session, row: Delivery | None) -> bool:
    """Tell whether the row's addressee is still kept: a subscriber not erased, or a console user (< 0)."""
    if row is None:
        return False
    if row.subscriber_id < 0:
        return True
    return session.get(Subscriber, row.subscriber_id) is not None and session.get(Erasure, row.subscriber_id) is None


def _remember(session: Session, reading: Reading, kind: str, subscriber_id: int | None, now: datetime) -> bool:
    """Insert the report unless its fingerprint is stored already; tell whether it was new."""
    if session.exec(select(BounceReport.id).where(BounceReport.fingerprint == reading.fingerprint)).first():
        return False
    bounce = reading.bounce
    values = {
        "fingerprint": reading.fingerprint,
        "kind": kind,
        "delivery_id": reading.delivery_id if kind != "forged" else None,
        "subscriber_id": subscriber_id,
        "status": bounce.status[:16] if bounce else "",
        "diagnostic": bounce.diagnostic if bounce else "",
        "received_at": now,
    }
    # Two listeners taking the same report at once: the unique key refuses the second, whose
    # transaction then fails and is answered with a 451, and the report comes again and is a duplicate.
    session.execute(insert(BounceReport).values(**values))
    return True


def _mark_bounced(session: Session, row: Delivery, bounce: Bounce, now: datetime) -> None:
    """Mark a sent row bounced with the server's reason; the event only when a row changed."""
    reason = f"{bounce.status} {bounce.diagnostic}".strip()[:300]
    changed = session.execute(
        update(Delivery.__table__)  # type: ignore[attr-defined]
        .where(col(Delivery.id) == row.id, col(Delivery.state).in_(("sent", "bounced")))
        .values(state="bounced", last_error=reason, updated_at=now)
    )
    if not cast("CursorResult[Any]", changed).rowcount:
        return  # planned, failed or cancelled meanwhile: the bounce is counted, the row stays as it is
    session.add(Event(at=now, kind="delivery_bounced", timeline_id=row.timeline_id,
                      milestone_key=row.milestone_key or None, subscriber_id=row.subscriber_id,
                      detail={"delivery": row.id, "kind": row.kind, "error": reason}, actor=BY))  # fmt: skip


def bounces_within(session: Session, subscriber_id: int, since: datetime) -> tuple[int, int]:
    """The subscriber's messages that bounced hard, and soft, with reports received since *since*.

    Counted per message, not per report: a relay's several "still trying" notices about one
    message are one soft bounce. Only reports received after the subscriber's latest resume
    count: the bounces that caused a suspension must not bring it back at the next one.
    """
    resumed = session.exec(
        select(func.max(Event.at)).where(Event.subscriber_id == subscriber_id, Event.kind == "subscriber_unsuspended")
    ).one()
    counted = session.exec(
        select(BounceReport.kind, func.count(func.distinct(BounceReport.delivery_id)))
        .where(BounceReport.subscriber_id == subscriber_id, col(BounceReport.received_at) >= since)
        .where(col(BounceReport.received_at) > resumed if resumed is not None else True)
        .group_by(BounceReport.kind)
    ).all()
    found = dict(counted)
    return found.get("hard", 0), found.get("soft", 0)


def suspend_if_bouncing(session: Session, subscriber_id: int, policy: SuspendPolicy, now: datetime) -> bool:
    """Suspend a confirmed address whose bounces within the policy's window reach its counts."""
    hard, soft = bounces_within(session, subscriber_id, now - policy.window)
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or not policy.reached(hard, soft):
        return False
    if not set_suspended(session, subscriber, True, BY, now, actor=BY):
        return False
    log.warning("suspended subscriber %d after %d hard and %d soft bounces", subscriber_id, hard, soft)
    return True


def last_bounce(session: Session, subscriber_id: int) -> BounceReport | None:
    """The subscriber's latest hard or soft bounce, for the preferences page."""
    statement = (
        select(BounceReport)
        .where(BounceReport.subscriber_id == subscriber_id, col(BounceReport.kind).in_(("hard", "soft")))
        .order_by(col(BounceReport.received_at).desc(), col(BounceReport.id).desc())
    )
    return session.exec(statement.limit(1)).first()
