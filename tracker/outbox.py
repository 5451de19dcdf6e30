"""The outbox in the store: plan rows, claim them, record what happened (SPEC §7).

Every message exists here before it is sent. Rows move planned → claimed → sent, or back to
planned (a temporary failure, an expired lease), or end as failed, skipped or cancelled.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import type_coerce
from sqlmodel import Session, col, func, select

from tracker.models import Delivery, Subscriber, UTCDateTime

CONFIRM_INTERVAL = timedelta(minutes=5)  # no second confirmation email to one address sooner
CONFIRM_PER_DAY = 3
CONFIRM_VALID = timedelta(days=7)  # an unsent confirmation email is pointless after this


def queue_confirm(session: Session, subscriber: Subscriber, now: datetime) -> Delivery | None:
    """Plan the confirmation email of a pending subscriber; None when that address had enough of them.

    The limit is per address, whoever asks: a stranger cannot flood a mailbox by resubmitting a form.
    """
    assert subscriber.id is not None
    if subscriber.state != "pending":
        return None
    # type_coerce: an aggregate would bypass the column type and come back as text on SQLite.
    recent = select(func.count(), type_coerce(func.max(Delivery.created_at), UTCDateTime())).where(
        Delivery.subscriber_id == subscriber.id,
        Delivery.kind == "confirm",
        col(Delivery.created_at) > now - timedelta(days=1),
    )
    count, latest = session.exec(recent).one()
    if count >= CONFIRM_PER_DAY or (latest is not None and latest > now - CONFIRM_INTERVAL):
        return None
    row = Delivery(
        subscriber_id=subscriber.id,
        kind="confirm",
        slot=f"{subscriber.confirm_version}@{now:%Y%m%dT%H%M%S}",
        send_at=now,
        attempt_at=now,
        deadline_at=now + CONFIRM_VALID,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row
