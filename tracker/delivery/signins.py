"""Sign-in emails in the outbox: a console user's one-time link, sent like every other message (docs/console.md)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from tracker.store.models import Delivery, SignInLink


def queue_sign_in(session: Session, link: SignInLink, now: datetime) -> Delivery:
    """Plan the email of a sign-in link, to go at once; pointless once the link has expired.

    Its recipient is a console user, not a subscriber: the row names its link as a negative
    subscriber id (no subscriber has one), so the outbox's unique key, claims and log serve it as they are.
    """
    assert link.id is not None
    row = Delivery(subscriber_id=sign_in_recipient(link.id), kind="sign-in", send_at=now, attempt_at=now,
                   deadline_at=link.expires_at, created_at=now, updated_at=now)  # fmt: skip
    session.add(row)
    session.flush()
    return row


def sign_in_recipient(link_id: int) -> int:
    """The subscriber id a sign-in email's row carries: its link's, negated."""
    return -link_id
