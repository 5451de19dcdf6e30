"""The outbox as the console reads and steers it: search the log, one row, retry, hold, release (docs/console.md).

Every action is one conditional update on the row's state: two people pressing at once, or a
dispatcher claiming meanwhile, change it once; the loser is told the row is no longer in that state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import update
from sqlmodel import Session, col, select

from tracker.channels import channel_of, recipient_of
from tracker.delivery.outbox import HELD_BY_HAND, changed
from tracker.store.audit import console_actor
from tracker.store.models import Channel, Delivery, Erasure, Event, SignInLink, Subscriber, User

STATES = ("planned", "held", "claimed", "sent", "bounced", "failed", "skipped", "cancelled", "quarantined")
KINDS = ("reminder", "digest", "opened", "changed", "cancelled", "correction", "overdue", "delayed", "confirm",
         "sign-in")  # fmt: skip
PAGE = 50

Action = Literal["retry", "hold", "release"]
DONE_WORDS: dict[Action, str] = {"retry": "retried", "hold": "held", "release": "released"}


@dataclass(frozen=True)
class LogQuery:
    """What the outbox page asks for; empty fields ask for everything."""

    address: str = ""  # lower-cased: a subscriber's or a console user's address
    timeline: str = ""
    milestone: str = ""
    kind: str = ""
    state: str = ""
    since_at: datetime | None = None  # send_at from
    until_at: datetime | None = None  # send_at before
    before_id: int | None = None  # the page after the row of this id


@dataclass(frozen=True)
class LogRow:
    row: Delivery
    email: str  # '' when the recipient is gone


def search(session: Session, query: LogQuery, limit: int = PAGE) -> tuple[list[LogRow], bool]:
    """Rows matching *query*, newest planned first (by id: the primary key bounds the walk); whether there is more."""
    statement = select(Delivery)
    if query.address:
        ids = recipient_ids(session, query.address)
        if not ids:
            return [], False
        statement = statement.where(col(Delivery.subscriber_id).in_(ids))
    if query.timeline:
        statement = statement.where(Delivery.timeline_id == query.timeline)
        if query.milestone:
            statement = statement.where(Delivery.milestone_key == query.milestone)
    for column, value in ((Delivery.kind, query.kind), (Delivery.state, query.state)):
        if value:
            statement = statement.where(column == value)
    if query.since_at is not None:
        statement = statement.where(col(Delivery.send_at) >= query.since_at)
    if query.until_at is not None:
        statement = statement.where(col(Delivery.send_at) < query.until_at)
    if query.before_id is not None:
        statement = statement.where(col(Delivery.id) < query.before_id)
    rows = list(session.exec(statement.order_by(col(Delivery.id).desc()).limit(limit + 1)))
    emails = addresses(session, rows[:limit])
    return [LogRow(row, emails.get(row.subscriber_id, "")) for row in rows[:limit]], len(rows) > limit


def recipient_ids(session: Session, address: str) -> list[int]:
    """The outbox ids of an address: the subscriber's, the sign-in links of a console user (negated), or
    a channel's, given as channel:NAME."""
    key = address.strip().lower()
    if key.startswith("channel:"):
        found = session.exec(select(Channel.id).where(Channel.name == key.removeprefix("channel:").strip()))
        return [recipient_of(id_) for id_ in found if id_ is not None]
    ids = list(session.exec(select(Subscriber.id).where(Subscriber.email_key == key)))
    links = select(SignInLink.id).join(User, col(User.id) == SignInLink.user_id).where(User.email_key == key)
    return [i for i in ids if i is not None] + [-i for i in session.exec(links) if i is not None]


def addresses(session: Session, rows: list[Delivery]) -> dict[int, str]:
    """The address of each row's recipient, by the id the row names."""
    people = {row.subscriber_id for row in rows if row.subscriber_id > 0}
    channels = {id_ for row in rows if (id_ := channel_of(row.subscriber_id)) is not None}
    links = {-row.subscriber_id for row in rows if row.subscriber_id < 0 and channel_of(row.subscriber_id) is None}
    found: dict[int, str] = {}
    if people:
        named = select(Subscriber.id, Subscriber.email).where(col(Subscriber.id).in_(people))
        found |= {id_: email for id_, email in session.exec(named) if id_ is not None}
        if gone := people - found.keys():  # erased on request: shown by their one-way reference
            erased = select(Erasure.subscriber_id, Erasure.ref).where(col(Erasure.subscriber_id).in_(gone))
            found |= {id_: f"erased:{ref}" for id_, ref in session.exec(erased)}
    if channels:
        named_channels = select(Channel.id, Channel.name, Channel.kind).where(col(Channel.id).in_(channels))
        found |= {recipient_of(id_): f"channel:{name} ({kind})" for id_, name, kind in session.exec(named_channels)
                  if id_ is not None}  # fmt: skip
    if links:
        users = select(SignInLink.id, User.email).join(User, col(User.id) == SignInLink.user_id)
        found |= {-link: email for link, email in session.exec(users.where(col(SignInLink.id).in_(links))) if link}
    return found


def find_row(session: Session, row_id: int) -> LogRow | None:
    row = session.get(Delivery, row_id)
    return None if row is None else LogRow(row, addresses(session, [row]).get(row.subscriber_id, ""))


def may(action: Action, row: Delivery, now: datetime) -> bool:
    """Whether *action* applies to *row* as it is: a failed row with time left, a planned one, one held by hand."""
    if action == "retry":
        return row.state == "failed" and (row.deadline_at is None or row.deadline_at > now)
    if action == "hold":
        return row.state == "planned"
    return row.state == "held" and row.reason.startswith(HELD_BY_HAND)


def act(session: Session, action: Action, row_id: int, by: str, now: datetime) -> bool:
    """Do *action* to the row if its state still allows it; record who did; False when it did not apply."""
    row = session.get(Delivery, row_id)
    if row is None or not may(action, row, now):
        return False
    table = Delivery.__table__  # type: ignore[attr-defined]
    statement = update(table).where(table.c.id == row_id, table.c.state == row.state, table.c.reason == row.reason)
    if changed(session.execute(statement.values(**values_of(action, row, by, now)))) != 1:
        return False
    detail: dict[str, Any] = {"delivery": row_id, "kind": row.kind, "by": by}
    # Not a delivery_* event: those plan nothing, and a released row may wait for a step, which the
    # re-planning this event brings (before the next claim) says by holding it again.
    session.add(Event(at=now, kind=f"outbox_{DONE_WORDS[action]}", timeline_id=row.timeline_id,
                      milestone_key=row.milestone_key or None, detail=detail, actor=console_actor(by)))  # fmt: skip
    return True


def values_of(action: Action, row: Delivery, by: str, now: datetime) -> dict[str, Any]:
    if action == "retry":  # tried again at once; its count of attempts goes on, so backoff stays sane
        return {"state": "planned", "attempt_at": now, "reason": f"retried in the console by {by}", "updated_at": now}
    if action == "hold":
        return {"state": "held", "reason": f"{HELD_BY_HAND} by {by}", "updated_at": now}
    # Released: due at once if its time has come; re-planning holds it again if it waits for a step.
    return {"state": "planned", "reason": "", "updated_at": now}
