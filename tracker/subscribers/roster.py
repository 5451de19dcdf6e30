"""Subscribers as the console reads and changes them: search, suspend, unsuspend, import in two steps.

`save_rows` is also the step of `tracker subscribers import`, which prints its problems as it goes.

An import is checked first (`check_import`: every bad row as FILE:LINE: message, and how many
rows would be added, updated or left unchanged; nothing saved), then saved (`save_import`) a
chunk at a time by the same `save_many` as `tracker subscribers import`. See docs/console.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, col, or_, select

from tracker.store.audit import console_actor
from tracker.store.engine import transaction
from tracker.store.models import Delivery, Event, Subscriber
from tracker.subscribers.csvfiles import Lines, read_chunks
from tracker.subscribers.registry import Saved, SubscriberInput, known_names, merged, save_many, to_invite
from tracker.timelines.files import FileProblem

STATES = ("pending", "confirmed", "unsubscribed", "suspended")
PAGE = 50
SHOWN_PROBLEMS = 1000  # bad rows listed on the page; the count says how many there are in all


@dataclass(frozen=True)
class Found:
    subscribers: list[Subscriber]
    more: bool


def search(session: Session, text: str, state: str, after: str = "", limit: int = PAGE) -> Found:
    """Subscribers whose address or name holds *text* (any case), in address order after *after*."""
    statement = select(Subscriber)
    needle = text.strip().lower()
    if needle:
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(
            or_(col(Subscriber.email_key).like(pattern, escape="\\"),
                col(Subscriber.name).ilike(pattern, escape="\\"))
        )  # fmt: skip
    if state:
        statement = statement.where(Subscriber.state == state)
    if after:
        statement = statement.where(col(Subscriber.email_key) > after)
    rows = list(session.exec(statement.order_by(col(Subscriber.email_key)).limit(limit + 1)))
    return Found(rows[:limit], len(rows) > limit)


def recent_messages(session: Session, subscriber_id: int, limit: int = 20) -> list[Delivery]:
    """The subscriber's newest outbox rows."""
    statement = select(Delivery).where(Delivery.subscriber_id == subscriber_id)
    return list(session.exec(statement.order_by(col(Delivery.id).desc()).limit(limit)))


def set_suspended(
    session: Session, subscriber: Subscriber, suspended: bool, by: str, now: datetime, *, actor: str | None = None
) -> bool:
    """Suspend a confirmed subscriber (their planned messages are cancelled), or confirm a suspended one again.

    *actor* names who did it in the event log; by default the console user *by*.
    """
    before, after = ("confirmed", "suspended") if suspended else ("suspended", "confirmed")
    if subscriber.state != before:
        return False
    subscriber.state, subscriber.changed_at = after, now
    session.add(subscriber)
    kind = "subscriber_suspended" if suspended else "subscriber_unsuspended"
    session.add(Event(at=now, kind=kind, subscriber_id=subscriber.id, detail={"email": subscriber.email, "by": by},
                      actor=actor or console_actor(by)))  # fmt: skip
    if suspended:
        session.execute(
            update(Delivery.__table__)  # type: ignore[attr-defined]
            .where(col(Delivery.subscriber_id) == subscriber.id, col(Delivery.state).in_(("planned", "held")))
            .values(state="cancelled", reason="address suspended", updated_at=now)
        )
    return True


@dataclass
class ImportReport:
    """What an import did, or would do: counts, and the bad rows (the first SHOWN_PROBLEMS of them)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    queued: int = 0  # confirmation emails
    pending: int = 0  # rows saved whose address waits for its confirmation
    problems: list[FileProblem] = field(default_factory=list)

    def note(self, problems: list[FileProblem]) -> None:
        self.rejected += len(problems)
        self.problems += problems[: max(SHOWN_PROBLEMS - len(self.problems), 0)]


Saver = Callable[[Session, list[SubscriberInput]], None]


def check_import(
    engine: Engine, stream: Lines, name: str, *, zone: str, confirmed: bool, now: datetime
) -> ImportReport:
    """Read the whole file and say what saving it would do; nothing is saved."""
    report = ImportReport()

    def count(session: Session, rows: list[SubscriberInput]) -> None:
        for outcome in outcomes(session, rows, confirmed=confirmed, now=now):
            setattr(report, outcome, getattr(report, outcome) + 1)

    walk(engine, stream, name, zone, report, count, write=False)
    return report


Invite = Callable[[Session, list[tuple[int, int]], datetime], int]  # delivery.outbox.queue_confirms


def save_import(
    engine: Engine,
    stream: Lines,
    name: str,
    *,
    zone: str,
    confirmed: bool,
    now: datetime,
    invite: Invite,
    actor: str = "",
) -> ImportReport:
    """Save the good rows of the file a chunk at a time; *invite* the pending addresses (id, confirm version).
    *actor*: who saves, for the events."""
    report = ImportReport()

    def save(session: Session, rows: list[SubscriberInput]) -> None:
        save_rows(session, rows, report, confirmed=confirmed, now=now, invite=invite, actor=actor)

    walk(engine, stream, name, zone, report, save, write=True)
    return report


def save_rows(session: Session, rows: list[SubscriberInput], report: ImportReport, *, confirmed: bool,
              now: datetime, invite: Invite, actor: str = "") -> None:  # fmt: skip
    """Save one chunk's good rows, invite the addresses it adds, and count what happened into *report*."""
    saved: list[Saved] = save_many(session, rows, confirmed=confirmed, now=now, actor=actor)
    report.queued += invite(session, to_invite(saved), now)
    report.pending += sum(one.state == "pending" for one in saved)
    for one in saved:
        setattr(report, one.outcome, getattr(report, one.outcome) + 1)


def walk(engine: Engine, stream: Lines, name: str, zone: str, report: ImportReport, each: Saver, *,
         write: bool) -> None:  # fmt: skip
    """Check the file a chunk at a time, handing each chunk's good rows to *each* in a transaction of its own."""
    with transaction(engine) as session:
        known = known_names(session)
    try:
        for chunk in read_chunks(stream, name, zone=zone, known=known):
            report.note(chunk.problems)
            if chunk.rows:
                with transaction(engine, write=write) as session:
                    each(session, [data for _, data in chunk.rows])
    except UnicodeDecodeError as exc:
        report.note([FileProblem(name, 0, f"not UTF-8 text ({exc.reason}); save it as CSV UTF-8")])


def outcomes(session: Session, rows: list[SubscriberInput], *, confirmed: bool, now: datetime) -> list[str]:
    """What `save_many` would make of each row: added, updated or unchanged (the same rule, nothing written)."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    found = session.execute(select(table).where(table.c.email_key.in_([data.key for data in rows])))
    stored: dict[str, dict[str, Any]] = {row.email_key: row._asdict() for row in found}
    result = []
    for data in rows:
        before = stored.get(data.key)
        after = merged(before, data, confirmed=confirmed, now=now)
        result.append("added" if before is None else "updated" if after != before else "unchanged")
    return result
