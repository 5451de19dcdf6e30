"""What the console's dashboard shows: late steps, what is due this week, what goes out, what went wrong.

Read from the store at one instant; the states are the one state model's (timelines/states.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, func, select

from tracker.i18n.languages import Language
from tracker.store.models import Delivery, Subscriber
from tracker.text import describe_text
from tracker.timelines.screening import screen_views
from tracker.timelines.states import Process
from tracker.timelines.stored import load_views
from tracker.timelines.views import list_upcoming
from tracker.web.pages import Due, due_of

WEEK = timedelta(days=7)
LISTED = 20  # failures and suspended addresses shown; the counts say how many there are in all
PENDING = ("planned", "held")


@dataclass(frozen=True)
class Outgoing:
    """Messages of one kind planned for the next seven days."""

    kind: str
    messages: int
    recipients: int


@dataclass(frozen=True)
class Failure:
    at: datetime
    kind: str
    email: str
    about: str  # timeline/milestone, or ''
    error: str
    state: str = "failed"  # or 'bounced'


@dataclass(frozen=True)
class Suspended:
    email: str
    since: datetime | None


@dataclass(frozen=True)
class Dashboard:
    late: list[Due]
    week: list[Due]
    outgoing: list[Outgoing]
    failures: list[Failure]
    failed_total: int
    suspended: list[Suspended]
    suspended_total: int


def read_dashboard(session: Session, *, now: datetime, late_days: int, language: Language) -> Dashboard:
    """Everything the dashboard shows, as of *now*, worded in *language*."""
    views = screen_views(load_views(session))
    process = Process(views, now=now, late_days=late_days)
    failures, failed_total = recent_failures(session, now)
    suspended, suspended_total = suspended_addresses(session)
    return Dashboard(
        late=[due_of(item, process, language, None) for item in process.late()],
        week=[due_of(item, process, language, None) for item in list_upcoming(views, now=now, window=WEEK)],
        outgoing=outgoing(session, now),
        failures=failures,
        failed_total=failed_total,
        suspended=suspended,
        suspended_total=suspended_total,
    )


def outgoing(session: Session, now: datetime) -> list[Outgoing]:
    """Unsent messages due in the next seven days, by kind: how many, to how many recipients."""
    statement = (
        select(Delivery.kind, func.count(), func.count(func.distinct(Delivery.subscriber_id)))
        .where(col(Delivery.state).in_(PENDING), col(Delivery.send_at) < now + WEEK)
        .group_by(Delivery.kind)
        .order_by(Delivery.kind)
    )
    return [Outgoing(kind, messages, recipients) for kind, messages, recipients in session.exec(statement)]


def recent_failures(session: Session, now: datetime) -> tuple[list[Failure], int]:
    """Messages that failed or bounced in the last seven days, newest first, and how many in all.

    A bounced message failed too, after the relay had taken it: its reason is the bounce's.
    """
    recent = (col(Delivery.state).in_(("failed", "bounced")), col(Delivery.updated_at) >= now - WEEK)
    total = session.exec(select(func.count()).select_from(Delivery).where(*recent)).one()
    statement = (
        select(Delivery, Subscriber.email)
        .join(Subscriber, col(Subscriber.id) == Delivery.subscriber_id, isouter=True)
        .where(*recent)
        .order_by(col(Delivery.updated_at).desc())
        .limit(LISTED)
    )
    found = [
        Failure(row.updated_at, row.kind, email or "", about(row), describe_text(row.last_error), row.state)
        for row, email in session.exec(statement)
    ]
    return found, total


def about(row: Delivery) -> str:
    return f"{row.timeline_id}/{row.milestone_key}" if row.timeline_id else ""


def suspended_addresses(session: Session) -> tuple[list[Suspended], int]:
    where = col(Subscriber.state) == "suspended"
    total = session.exec(select(func.count()).select_from(Subscriber).where(where)).one()
    statement = select(Subscriber).where(where).order_by(col(Subscriber.changed_at).desc()).limit(LISTED)
    return [Suspended(s.email, s.changed_at) for s in session.exec(statement)], total
