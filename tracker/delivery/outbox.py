"""The outbox in the store: plan rows, claim them, record what happened (docs/architecture.md §3).

Every message exists here before it is sent. Rows move planned → claimed → sent, or back to
planned (a temporary failure, an expired lease), or end as failed, skipped or cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Engine,
    Exists,
    Integer,
    Result,
    Row,
    Select,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    true,
    type_coerce,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.elements import BindParameter
from sqlmodel import Session, col, func, select

from tracker.channels import channel_of, recipient_of
from tracker.delivery.ahead import probe_reader
from tracker.delivery.planning import Choice, DeliveryKey, Escalation, Key, Planner, Wanted, plan_digests
from tracker.store.bulk import copy_rows, insert_rows
from tracker.store.models import Channel, Cursor, Delivery, Milestone, Subscriber, UTCDateTime
from tracker.store.quarantine import keep_quarantine
from tracker.subscribers.readers import Reader, read_reader
from tracker.timelines.screening import screen_views
from tracker.timelines.stored import load_views
from tracker.timelines.views import MilestoneView, Problems, follows

if TYPE_CHECKING:
    from psycopg import AsyncConnection

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


def queue_confirms(session: Session, pending: Sequence[tuple[int, int]], now: datetime) -> int:
    """Plan the confirmation emails of many pending subscribers (id, confirm version) at once; return how many.

    The rule of `queue_confirm`, in two statements for a chunk of an import instead of three per address.
    """
    if not pending:
        return 0
    table = Delivery.__table__  # type: ignore[attr-defined]
    latest = type_coerce(func.max(table.c.created_at), UTCDateTime())
    mine = table.c.subscriber_id.in_([id_ for id_, _ in pending])
    today = table.c.created_at > now - timedelta(days=1)
    recent = select(table.c.subscriber_id, func.count(), latest).where(mine, table.c.kind == "confirm", today)
    recent = recent.group_by(table.c.subscriber_id)
    held = {id_ for id_, count, latest in session.execute(recent)
            if count >= CONFIRM_PER_DAY or (latest is not None and latest > now - CONFIRM_INTERVAL)}  # fmt: skip
    rows = [confirm_row(id_, version, now) for id_, version in pending if id_ not in held]
    insert_rows(session, table, rows)
    return len(rows)


def confirm_row(subscriber_id: int, version: int, now: datetime) -> dict[str, Any]:
    return {"subscriber_id": subscriber_id, "kind": "confirm", "slot": f"{version}@{now:%Y%m%dT%H%M%S}",
            "timeline_id": "", "milestone_key": "", "occurrence": "", "send_at": now, "attempt_at": now,
            "deadline_at": now + CONFIRM_VALID, "created_at": now, "updated_at": now, "state": "planned",
            "attempts": 0, "last_error": "", "reply": "", "reason": ""}  # fmt: skip


# --- planning: make the outbox match what should be sent ---------------------------------

# Planned from the milestones and the time; the other notices come from events and are never re-planned.
REPLANNED_KINDS = ("reminder", "digest", "overdue", "delayed")
PLANNING = "planning"  # the cursor row that marks when and how the outbox was last planned (partial.py)
PENDING = ("planned", "held")  # not sent yet, and re-planning may still change them
HELD_BY_HAND = "held in the console"  # a reason so: held by a person, kept held until released (outbox_log.py)
COPY_FROM = 500  # rows: from here on PostgreSQL inserts through COPY (a temporary table each time)
_KEY = ("subscriber_id", "timeline_id", "milestone_key", "occurrence", "kind", "slot")


@dataclass
class Replan:
    """What a re-planning changed."""

    added: int = 0
    moved: int = 0
    revived: int = 0
    cancelled: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.moved or self.revived or self.cancelled)

    def add(self, other: Replan) -> None:
        self.added += other.added
        self.moved += other.moved
        self.revived += other.revived
        self.cancelled += other.cancelled


# Planning goes a batch of subscribers at a time, so that its memory is that of a batch, not of
# every subscriber's every message (BENCHMARKS.md: the first plan of 800,000 rows at once, 677 MB).
BATCH_SUBSCRIBERS = 2_000  # at most
BATCH_MESSAGES = 50_000  # at most: tens of MB of messages and rows; fewer subscribers if each has many
Span = tuple[int | None, int | None]  # subscriber ids after the first, up to the second (None: unbounded)
EVERYONE: Span = (None, None)


def subscriber_spans(session: Session, size: int) -> Iterator[Span]:
    """Spans of *size* subscribers (of any state) in the order of their ids; the last is open-ended.

    Every id falls in exactly one span, that of a subscriber deleted or not yet seen too, so the
    rows of all spans are every row. Each span's end is one look-up in the primary key.
    """
    table = Subscriber.__table__  # type: ignore[attr-defined]
    after: int | None = None
    while True:
        statement = select(table.c.id).where(within(table.c.id, (after, None)))
        upto = session.execute(statement.order_by(table.c.id).offset(size - 1).limit(1)).scalar()
        yield after, upto
        if upto is None:
            return
        after = upto


class Batches:
    """The confirmed subscribers a batch at a time, with the span of ids each batch covers.

    Spans of BATCH_SUBSCRIBERS subscribers, each cut where its readers' messages would pass
    BATCH_MESSAGES: a reader may be sent at most what a probe reader (every offset in use) is
    sent by the milestones it follows, and a digest.
    """

    def __init__(self, planners: Sequence[Planner], probe: Reader, unreadable: Problems) -> None:
        self.planners = planners
        self.counts = [Counter((item.timeline_id, item.milestone_key) for item in planner.plan([], unreadable,
                       probe=probe)) for planner in planners]  # fmt: skip
        self.weights: dict[Choice, int] = {}

    def weight(self, reader: Reader) -> int:
        """The most messages *reader* may be sent."""
        choice = (reader.timelines, reader.audiences)
        if choice not in self.weights:
            pairs = zip(self.planners, self.counts, strict=True)
            most = sum(counts[key] for planner, counts in pairs for key in planner.concerning(choice))
            self.weights[choice] = most + 1  # and a digest
        return self.weights[choice]

    def __call__(self, session: Session, set_aside: Problems) -> Iterator[tuple[Span, list[Reader]]]:
        """Each batch's span and readers; *set_aside* learns whose stored choices do not read."""
        for span in subscriber_spans(session, BATCH_SUBSCRIBERS):
            yield from cut(span, load_readers(session, set_aside, span=span), self.weight, BATCH_MESSAGES)

    def of(self, session: Session, ids: Collection[int], set_aside: Problems) -> Iterator[tuple[Span, list[Reader]]]:
        """The same for these subscribers and channels only (*ids*): spans of them in the order of their ids,
        each up to its last id. A span's rows are its readers' only if every recipient of the rows to be
        reconciled is among *ids* (partial.concerned)."""
        ordered = sorted(ids)
        after: int | None = None
        for start in range(0, len(ordered), BATCH_SUBSCRIBERS):
            chunk = ordered[start : start + BATCH_SUBSCRIBERS]
            span = (after, chunk[-1])
            yield from cut(span, load_readers(session, set_aside, ids=chunk), self.weight, BATCH_MESSAGES)
            after = chunk[-1]


def cut(
    span: Span, readers: list[Reader], weight: Callable[[Reader], int], limit: int
) -> Iterator[tuple[Span, list[Reader]]]:  # fmt: skip
    """*span* cut after the reader whose messages would pass *limit* (*readers* in the order of their ids)."""
    after, upto = span
    batch: list[Reader] = []
    total = 0
    for reader in readers:
        if batch and total + weight(reader) > limit:
            yield (after, batch[-1].id), batch
            after, batch, total = batch[-1].id, [], 0
        batch.append(reader)
        total += weight(reader)
    yield (after, upto), batch


def within(column: Any, span: Span) -> ColumnElement[bool]:
    """*column* (a subscriber id) inside *span*."""
    after, upto = span
    bounds = [*([column > after] if after is not None else []), *([column <= upto] if upto is not None else [])]
    return and_(true(), *bounds)


def load_readers(
    session: Session,
    set_aside: Problems | None = None,
    *,
    ids: Collection[int] | None = None,
    weekly: bool = False,
    span: Span = EVERYONE,
) -> list[Reader]:
    """Every confirmed subscriber and active channel (of *ids*; or the subscribers who chose a *weekly* digest;
    in *span*), in the order of their ids, as planning needs them; *set_aside* learns whose stored choices do
    not read. Channels' ids (channels.recipient_of) are below every subscriber's: they come first, in the
    first span."""
    # Columns, not ORM objects: a fan-out to 10,000 subscribers built as many objects only to drop them.
    # The JSON columns as stored text, each distinct choice read once: decoding every row's was
    # most of reading 20,000 subscribers, who mostly made the same few choices.
    table = Subscriber.__table__  # type: ignore[attr-defined]
    choices = [sql_cast(table.c[name], String) for name in ("audiences", "timelines", "reminders")]
    columns: list[Any] = [table.c.id, *choices, table.c.timezone, table.c.digest]
    statement = select(*columns).where(table.c.state == "confirmed")
    if ids is not None:
        statement = statement.where(table.c.id.in_(sorted(ids)))
    if weekly:
        statement = statement.where(table.c.digest == "weekly")
    if span != EVERYONE:
        statement = statement.where(within(table.c.id, span))
    read: dict[tuple[Any, ...], tuple[Reader | None, str]] = {}
    readers = []
    if not weekly and span[0] is None:  # a channel gets no digest
        for row in channel_rows(session, ids):
            reader, problem = read_reader(*row)
            if reader is not None:
                readers.append(reader)
            if problem and set_aside is not None:
                set_aside[str(row[0])] = problem
    subscribers: Iterable[Any] = []
    if ids is None or any(id_ > 0 for id_ in ids):
        subscribers = session.execute(statement.order_by(table.c.id))
    for id_, *chosen in subscribers:
        key = tuple(chosen)
        if key not in read:
            read[key] = read_reader(0, *map(stored_json, chosen[:3]), *chosen[3:])
        found, problem = read[key]
        if found is not None:
            readers.append(Reader(id_, found.audiences, found.timelines, found.reminders, found.timezone, found.digest))
        if problem and set_aside is not None:
            set_aside[str(id_)] = problem
    return readers


def channel_rows(session: Session, ids: Collection[int] | None) -> list[tuple[Any, ...]]:
    """The active channels (of *ids*, as their rows name them) as read_reader reads a subscriber: they follow
    audiences and timelines as a subscriber does, and are planned with them (docs/channels.md)."""
    table = Channel.__table__  # type: ignore[attr-defined]
    names = ("id", "audiences", "timelines", "reminders", "timezone")
    statement = select(*(table.c[name] for name in names)).where(table.c.state == "active")
    if ids is not None:
        wanted = sorted(found for id_ in ids if (found := channel_of(id_)) is not None)
        if not wanted:
            return []
        statement = statement.where(table.c.id.in_(wanted))
    # A channel with no zone of its own reads each timeline's: for planning (digests only) that is UTC.
    # Highest channel id first: its recipient id is the lowest (the readers go in the order of their ids).
    rows = session.execute(statement.order_by(table.c.id.desc()))
    return [(recipient_of(id_), audiences, timelines, reminders, zone or "UTC", "off")
            for id_, audiences, timelines, reminders, zone in rows]  # fmt: skip


def stored_json(text: str | None) -> Any:
    """A JSON column's stored text, decoded; text that does not decode is given as it is (read_reader says why)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # nested deeper than the decoder goes: unreadable too
        return text


PERSON_COLUMNS = ("id", "email", "name", "language", "timezone", "state", "audiences", "timelines",
                  "manage_version", "feed_version", "confirm_version")  # fmt: skip


def load_recipients(session: Session, ids: Collection[int]) -> Sequence[Row[Any]]:
    """The subscribers of claimed rows, as columns named as in PERSON_COLUMNS."""
    statement = recipients_statement(session.get_bind().dialect.name == "postgresql")
    return session.execute(statement, {"ids": list(ids)}).all()


@cache
def recipients_statement(array: bool) -> Select[Any]:
    table = Subscriber.__table__  # type: ignore[attr-defined]
    # A bound list: no coercion of each id on every call, as in_(ids) would do. On PostgreSQL one
    # array parameter: the same statement text whatever the count, compiled and prepared once.
    if array:
        ids: BindParameter[Any] = bindparam("ids", type_=ARRAY(Integer))
        match = table.c.id == any_(ids)
    else:
        match = table.c.id.in_(bindparam("ids", expanding=True))
    statement: Select[Any] = select(*(table.c[name] for name in PERSON_COLUMNS)).where(match)
    return statement


def replan(
    session: Session, *, now: datetime, horizon: timedelta, reminder_hour: int, escalation: Escalation | None = None
) -> Replan:
    """Bring the planned reminders and digests in line with the milestones and subscribers.

    Only planned rows change: a claimed row is being sent, a sent one stays sent. A row no
    longer wanted is cancelled with the reason; wanted again (a subscriber back, a date
    back inside the horizon), it is planned again. A reminder sent for a deadline that has
    moved since is planned again for the new one, if its time is still ahead (§3).

    A batch of subscribers at a time (Batches): their readers, what they should be sent, their
    rows; the views are read once. All in the caller's transaction, as before: a crash plans
    nothing, and the next pass all of it.
    """
    milestones: Problems = {}  # set aside, by timeline/milestone
    views = screen_views(load_views(session), milestones)
    # Reminders, overdue and delayed notices planned in one go: one reading of the process's state.
    planner = Planner(views, ("reminders", "late"), now, horizon, reminder_hour, escalation)
    # The milestones that cannot be planned are known before the first batch (the probe follows
    # everything): the reason a row is no longer wanted does not depend on which batch found it.
    unreadable = dict(milestones)
    batches = Batches([planner], probe_reader(views, chosen_offsets(session)), unreadable)
    subscribers: Problems = {}  # by id
    whole = Context(views, [])
    result, unchecked = Replan(), Unchecked()
    for span, readers in batches(session, subscribers):
        wanted = planner.plan(readers, milestones)
        wanted += plan_digests(readers, now=now, horizon=horizon, reminder_hour=reminder_hour)
        context = whole.batch(readers, unreadable | milestones, subscribers)
        result.add(reconcile(session, wanted, load_replannable(session, now, span), context, now, unchecked))
    found = {("milestone", key): reason for key, reason in milestones.items()}
    keep_quarantine(session, found | {("subscriber", key): reason for key, reason in subscribers.items()}, now)
    unchecked.mark(session, now)
    return result


def chosen_offsets(session: Session) -> list[list[str]]:
    """The reminder offsets subscribers and channels chose, each choice once (a few for thousands of subscribers)."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    found = list(session.execute(
        select(sql_cast(table.c.reminders, String)).where(table.c.state == "confirmed", table.c.reminders.is_not(None))
        .distinct()
    ))  # fmt: skip
    channels = Channel.__table__  # type: ignore[attr-defined]
    found += session.execute(
        select(sql_cast(channels.c.reminders, String)).where(channels.c.state == "active",
                                                             channels.c.reminders.is_not(None)).distinct()
    )  # fmt: skip
    chosen = []
    for (text,) in found:
        try:
            value: Any = json.loads(text) if text else None
        except (ValueError, RecursionError):  # unreadable: that subscriber is quarantined, planned nothing
            continue
        if isinstance(value, list):
            chosen.append([item for item in value if isinstance(item, str)])
    return chosen


def reconcile(
    session: Session,
    wanted: list[Wanted],
    rows: Sequence[Row[Any]],
    context: Context,
    now: datetime,
    unchecked: Unchecked | None = None,
) -> Replan:
    """Make *rows* (every replannable row of some scope) what *wanted* (every message of that scope) says.

    A row of the scope not wanted is cancelled with the reason: the scope must be whole, all
    the rows of the milestones or subscribers it names and all that they should send (partial.py).
    Given *unchecked*, the revisions of rows found right are left to the caller to write once
    (they are written for the whole milestone), after its last batch.
    """
    outbox = Outbox(rows, context.revisions, now)
    result, new_rows = Replan(), []
    for item in wanted:
        row, slot = outbox.match(item)
        if row is None:
            if slot is not None:
                new_rows.append(new_row(item, now, slot=slot, revision=outbox.revision_of(item)))
        else:
            outbox.update(session, row, item, slot, result)
    outbox.write(session, result)
    result.added = insert_new(session, new_rows)
    if result.added < len(new_rows):
        result.added += plan_again_past(session, new_rows, now)
    for row in outbox.rows:
        if row.state in PENDING and row.id not in outbox.used:
            result.cancelled += cancel(session, row.id, context.why_not(tuple(row[:6])), now)
    if unchecked is None:
        Unchecked(outbox.unchecked).mark(session, now)
    else:
        unchecked.update(outbox.unchecked)
    return result


REPLANNABLE_COLUMNS = (*_KEY, "id", "state", "send_at", "deadline_at", "attempts", "reason", "revision")


def load_replannable(session: Session, now: datetime, span: Span = EVERYONE) -> Sequence[Row[Any]]:
    """The reminders and digests planning may change or must know of: planned, or for a deadline ahead;
    of the subscribers in *span*, through the unique key (it begins with the subscriber)."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    return session.execute(
        select(*(table.c[name] for name in REPLANNABLE_COLUMNS))
        .where(within(table.c.subscriber_id, span), table.c.kind.in_(REPLANNED_KINDS))
        .where(table.c.state.in_(PENDING) | (table.c.deadline_at > now))
    ).all()


def reminder_slot(offset: str, deadline_at: datetime | None) -> str:
    """The slot of a reminder planned again for a moved deadline: the offset and the deadline it is for."""
    return f"{offset}@{deadline_at:%Y%m%dT%H%M%SZ}" if deadline_at is not None else offset


def slot_offset(slot: str) -> str:
    """The offset a reminder's slot names ('7d' of '7d' and of '7d@20170224T110000Z')."""
    return slot.partition("@")[0]


Family = tuple[int, str, str, str, str]  # a reminder's key without its slot, plus its offset


def family(key: Key) -> Family:
    subscriber_id, timeline_id, milestone_key, occurrence, _, slot = key
    return (subscriber_id, timeline_id, milestone_key, occurrence, slot_offset(slot))


class Outbox:
    """The rows planning found, and which of them each wanted message is (docs/architecture.md §3).

    A reminder is one per offset *per deadline*: the first of an offset is keyed by the offset
    alone ('7d'), whatever its deadline; planned and not sent, it moves with the deadline. Once
    sent, a moved deadline gets a row of its own, keyed by the offset and that deadline, if its
    time is still ahead; the unique key keeps each exactly once, whichever instance plans it.
    """

    def __init__(self, rows: Sequence[Row[Any]], revisions: dict[tuple[str, str], int], now: datetime) -> None:
        self.rows, self.revisions, self.now = rows, revisions, now
        self.by_key = {tuple(row[:6]): row for row in rows}
        self.families: dict[Family, list[Row[Any]]] = {}
        for row in rows:
            if row.kind == "reminder":
                self.families.setdefault(family(tuple(row[:6])), []).append(row)
        self.used: set[int] = set()
        self.unchecked: dict[tuple[str, str], int] = {}  # milestones with pending rows of an older revision
        self.moves: list[dict[str, Any]] = []  # pending rows to move (update_many), written by write()
        self.revivals: list[dict[str, Any]] = []  # cancelled or set-aside rows wanted again

    def revision_of(self, item: Wanted) -> int | None:
        return self.revisions.get((item.timeline_id, item.milestone_key)) if item.kind == "reminder" else None

    def match(self, item: Wanted) -> tuple[Row[Any] | None, str | None]:
        """The row that is *item*, and the slot it has or gets; no row and no slot: not planned (again)."""
        if item.kind != "reminder":
            return self.by_key.get(item.key), item.slot
        rows = self.families.get(family(item.key), [])
        for row in rows:
            if row.deadline_at == item.deadline_at:
                return row, row.slot
        movable = [row for row in rows if row.state in PENDING] or [row for row in rows if revivable(row)]
        if movable:
            row = movable[0]
            return row, row.slot if row.slot == item.slot else reminder_slot(item.slot, item.deadline_at)
        if not rows:
            return None, item.slot
        # Sent (or given up) for another deadline: the new one is reminded of too, unless its time has passed.
        return None, reminder_slot(item.slot, item.deadline_at) if item.send_at > self.now else None

    def update(self, session: Session, row: Row[Any], item: Wanted, slot: str | None, result: Replan) -> None:
        """Make *row* what *item* wants, if it may change (planned, or cancelled or set aside for a passing reason)."""
        self.used.add(row.id)
        revision = self.revision_of(item)
        slot = slot or row.slot
        if row.state in PENDING:
            by_hand = row.state == "held" and row.reason.startswith(HELD_BY_HAND)  # stays held until released
            wanted = (item.send_at, item.deadline_at, slot, "held" if item.held or by_hand else "planned")
            if (row.send_at, row.deadline_at, row.slot, row.state) != wanted:  # moved, held, or let go
                held = row.reason if by_hand else item.held
                self.moves.append(move_of(row.id, item, self.now, state=row.state, slot=slot, revision=revision,
                                          held=held))  # fmt: skip
            elif row.revision != revision and revision is not None:
                self.unchecked[(item.timeline_id, item.milestone_key)] = revision
        elif revivable(row):
            self.revivals.append(move_of(row.id, item, self.now, state=row.state, slot=slot, revision=revision))

    def write(self, session: Session, result: Replan) -> None:
        """Write the moves and revivals found, each kind in one batch (a statement per row cost seconds)."""
        result.moved += update_many(session, self.moves)
        result.revived += update_many(session, self.revivals)
        self.moves, self.revivals = [], []


class Unchecked(dict[tuple[str, str], int]):
    """Milestones whose pending reminders were found right for a newer revision, with that revision."""

    def mark(self, session: Session, now: datetime) -> None:
        """The pending reminders of these milestones carry their revision now (one statement a milestone)."""
        table = Delivery.__table__  # type: ignore[attr-defined]
        for (timeline_id, milestone_key), revision in sorted(self.items()):
            session.execute(
                update(table)
                .where(table.c.kind == "reminder", table.c.state.in_(PENDING), table.c.timeline_id == timeline_id,
                       table.c.milestone_key == milestone_key)
                .where(table.c.revision.is_(None) | (table.c.revision != revision))
                # Not a row changed since this planning began (returned from an expired lease meanwhile, on
                # PostgreSQL, where claims do not wait for planning): it was not found right, and is re-planned.
                .where(table.c.updated_at <= now)
                .values(revision=revision, updated_at=now)
            )  # fmt: skip


def revivable(row: Row[Any]) -> bool:
    """A row cancelled or set aside for a reason that can pass: planned again when wanted again."""
    if row.state == "cancelled":
        return row.reason in REVIVABLE
    # Set aside with its milestone or subscriber, which read again (it is wanted): planned again.
    return bool(row.state == "quarantined" and row.reason.startswith(REVIVABLE_QUARANTINE))


def plan_again_past(session: Session, tried: list[dict[str, Any]], now: datetime) -> int:
    """Plan again the reminders whose first key a row for a deadline now past holds (the deadline moved after it).

    Rare (a deadline moved after it had passed), so looked for only when an insert found its key taken.
    """
    table = Delivery.__table__  # type: ignore[attr-defined]
    firsts = [row for row in tried if row["kind"] == "reminder" and "@" not in row["slot"] and row["send_at"] > now]
    if not firsts:
        return 0
    found = session.execute(
        select(*(table.c[name] for name in _KEY)).where(
            table.c.kind == "reminder",
            table.c.deadline_at <= now,
            table.c.timeline_id.in_({row["timeline_id"] for row in firsts}),
            table.c.milestone_key.in_({row["milestone_key"] for row in firsts}),
        )
    )
    taken = {tuple(row) for row in found}
    again = [{**row, "slot": reminder_slot(row["slot"], row["deadline_at"])} for row in firsts
             if tuple(row[name] for name in _KEY) in taken]  # fmt: skip
    return insert_new(session, again)


def new_row(item: Wanted, now: datetime, *, slot: str, revision: int | None) -> dict[str, Any]:
    return {
        "subscriber_id": item.subscriber_id, "timeline_id": item.timeline_id, "milestone_key": item.milestone_key,
        "occurrence": item.occurrence, "kind": item.kind, "slot": slot,
        "state": "held" if item.held else "planned", "send_at": item.send_at, "attempt_at": item.send_at,
        "deadline_at": item.deadline_at, "attempts": 0, "last_error": "", "reply": "", "reason": item.held,
        "revision": revision, "created_at": now, "updated_at": now,
    }  # fmt: skip


def insert_new(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert planned rows, ignoring any another instance inserted meanwhile (the unique key decides)."""
    if not rows:
        return 0
    table = Delivery.__table__  # type: ignore[attr-defined]
    postgresql = session.get_bind().dialect.name == "postgresql"
    if postgresql and len(rows) >= COPY_FROM:
        return insert_copied(session, table, rows, _KEY)
    maker = postgresql_insert if postgresql else sqlite_insert
    insert = maker(table)
    if not postgresql and rows[0].get("lines") is not None:  # changed messages: their lines' JSON made once
        # for all who share them (PostgreSQL would need the text cast to JSON; it takes many rows by COPY anyway)
        rows = with_lines_text(rows)
        insert = insert.values(lines=bindparam("lines_text", type_=Text))
    added = 0
    for start in range(0, len(rows), 1000):
        # RETURNING counts what went in: a batched insert reports no rowcount on PostgreSQL.
        statement = insert.on_conflict_do_nothing(index_elements=list(_KEY)).returning(table.c.id)
        added += len(session.execute(statement, rows[start : start + 1000]).all())
    return added


def with_lines_text(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """*rows* with their `lines` as JSON text in `lines_text`, each list serialized once however many rows share it.

    A change set's fifty lines go to thousands of rows as one list (notices.stored_form): the
    JSON type serialized it again for each, a tenth of planning the messages of 10,000 readers.
    """
    texts: dict[int, str | None] = {}  # by id: the rows hold every list, so no id is reused meanwhile
    shared = []
    for row in rows:
        lines = row["lines"]
        if (text := texts.get(id(lines), "")) == "":
            text = texts[id(lines)] = None if lines is None else json.dumps(lines)
        shared.append({**{k: v for k, v in row.items() if k != "lines"}, "lines_text": text})
    return shared


def insert_copied(session: Session, table: Table, rows: list[dict[str, Any]], key: Sequence[str]) -> int:
    """PostgreSQL: insert *rows*, skipping those whose *key* exists; count the new ones.

    COPY into a temporary table, then one INSERT … ON CONFLICT from it. SQLAlchemy's batched
    insert wrote a placeholder per value into a statement psycopg then scanned (most of the
    time of planning a large reminder); arrays cost several times what COPY does, escaping each value.
    """
    columns = ", ".join(f'"{name}"' for name in rows[0])
    keys = ", ".join(f'"{name}"' for name in key)
    connection = session.connection()
    connection.exec_driver_sql(
        f'CREATE TEMPORARY TABLE new_rows ON COMMIT DROP AS SELECT {columns} FROM "{table.name}" WITH NO DATA'
    )
    copy_rows(session, table, rows, into="new_rows")
    inserted = connection.exec_driver_sql(
        f'INSERT INTO "{table.name}" ({columns}) SELECT {columns} FROM new_rows'
        f" ON CONFLICT ({keys}) DO NOTHING RETURNING id"
    )
    count = len(inserted.all())
    connection.exec_driver_sql("DROP TABLE new_rows")  # a second insert in this transaction makes it again
    return count


def move_of(
    row_id: int, item: Wanted, now: datetime, *, state: str, slot: str, revision: int | None, held: str | None = None
) -> dict[str, Any]:
    """The parameters of update_many moving row *row_id* (in *state*) to what *item* wants.

    A held row waits for its step, with the reason: *held*, when given, else the item's.
    """
    held = item.held if held is None else held
    return {"row_id": row_id, "old_state": state, "new_state": "held" if held else "planned", "new_slot": slot,
            "new_send_at": item.send_at, "new_deadline_at": item.deadline_at, "new_revision": revision,
            "new_reason": held, "new_updated_at": now}  # fmt: skip


@cache
def update_many_statement() -> Any:
    table = Delivery.__table__  # type: ignore[attr-defined]
    return (
        update(table)
        .where(table.c.id == bindparam("row_id"), table.c.state == bindparam("old_state"))
        .values(
            state=bindparam("new_state"),
            slot=bindparam("new_slot"),
            send_at=bindparam("new_send_at"),
            attempt_at=bindparam("new_send_at"),
            deadline_at=bindparam("new_deadline_at"),
            revision=bindparam("new_revision"),
            reason=bindparam("new_reason"),
            updated_at=bindparam("new_updated_at"),
        )
    )


def update_many(session: Session, moves: list[dict[str, Any]]) -> int:
    """Apply *moves* (move_of), a row each, in batches of one statement; return how many rows changed.

    A row another instance claimed meanwhile is left alone (its state no longer matches).
    """
    count = 0
    for start in range(0, len(moves), 1000):
        batch = moves[start : start + 1000]
        result = session.execute(update_many_statement(), batch)
        multi = session.get_bind().dialect.supports_sane_multi_rowcount
        count += changed(result) if multi else len(batch)
    return count


def changed(result: Result[Any]) -> int:
    """How many rows a statement changed (0 when the driver cannot tell)."""
    return max(cast("CursorResult[Any]", result).rowcount, 0)


def cancel(session: Session, row_id: int, reason: str, now: datetime) -> int:
    table = Delivery.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.id == row_id, table.c.state.in_(("planned", "held")))
        .values(state="cancelled", reason=reason, updated_at=now)
    )
    return changed(session.execute(statement))


# Cancelled for a reason that can pass: planned again when wanted again.
REVIVABLE = frozenset(
    {
        "subscriber is not confirmed",
        "no longer concerns the subscriber",
        "offset no longer used",
        "date moved",
        "digest turned off",
        "milestone cancelled",
        "milestone removed",
        "milestone quarantined",
        "subscriber quarantined",
        "milestone done",  # reopened: its reminders and overdue notices come back
        "no longer late",
        "the step it waits for is done or moved",
        "address suspended",  # unsuspended: a suspended subscriber is no reader, so only then wanted again
        "channel removed or quarantined",  # back in the channels file, or its table fixed
    }
)
CHANNEL_GONE = "channel removed or quarantined"


REVIVABLE_QUARANTINE = ("milestone quarantined", "subscriber quarantined")


class Context:
    """Enough of the store to say why a planned row is no longer wanted."""

    def __init__(
        self,
        views: list[MilestoneView],
        readers: list[Reader],
        milestones: Problems | None = None,
        subscribers: Problems | None = None,
    ) -> None:
        self.views = {(v.timeline_id, v.key): v for v in views}
        self.revisions = {key: view.revision for key, view in self.views.items()}
        self.readers = {r.id: r for r in readers}
        self.quarantined = {*(milestones or {}), *(subscribers or {})}

    def batch(self, readers: list[Reader], milestones: Problems, subscribers: Problems) -> Context:
        """The same views, for a batch of *readers* (the views are not gone over again)."""
        context = copy.copy(self)
        context.readers = {r.id: r for r in readers}
        context.quarantined = {*milestones, *subscribers}
        return context

    def why_not(self, key: Key) -> str:
        subscriber_id, timeline_id, milestone_key, occurrence, kind, slot = key
        reader = self.readers.get(subscriber_id)
        if reader is None and channel_of(subscriber_id) is not None:
            return CHANNEL_GONE
        if reader is None:
            return "subscriber quarantined" if str(subscriber_id) in self.quarantined else "subscriber is not confirmed"
        if f"{timeline_id}/{milestone_key}" in self.quarantined and kind == "reminder":
            return "milestone quarantined"
        if kind == "digest":
            return "digest turned off" if reader.digest != "weekly" else "digest week passed"
        view = self.views.get((timeline_id, milestone_key))
        if view is None or view.status != "active":
            return f"milestone {view.status if view else 'removed'}"
        if occurrence in view.completions:
            return "milestone done"
        if kind in ("overdue", "delayed"):
            return "no longer late" if kind == "overdue" else "the step it waits for is done or moved"
        if not follows(view, reader.timelines, reader.audiences):
            return "no longer concerns the subscriber"
        if slot_offset(slot) not in (view.reminders if reader.reminders is None else reader.reminders):
            return "offset no longer used"
        return "date moved"


# --- claiming, recording, sweeping ---------------------------------------------------------


@dataclass(frozen=True)
class Claimed(DeliveryKey):
    """A row this worker holds a lease on, with what sending it needs."""

    id: int
    send_at: datetime
    deadline_at: datetime | None
    attempts: int
    old_at: datetime | None
    new_at: datetime | None
    event_id: int | None
    lines: str | None  # changed: what it lists (notices.Message), the column's JSON text (changes.read_text)
    revision: int | None = None  # a reminder's: its milestone's revision when claimed (§3)


_CLAIMED_COLUMNS = list(Claimed.__dataclass_fields__)


def claim(session: Session, *, now: datetime, limit: int, lease: timedelta, worker: str) -> list[Claimed]:
    """Take up to *limit* due rows for this worker until now + lease, oldest first.

    PostgreSQL skips rows another instance has locked, so instances never wait on each
    other; SQLite serialises writers, so the conditional update alone is enough.
    """
    table = Delivery.__table__  # type: ignore[attr-defined]
    due = select(table.c.id).where(claimable(table, now), current(table), not_stale(table, now)).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        # In the claim index's order (state, attempt_at), so the scan stops at *limit* rows: a
        # tie-break on id made PostgreSQL sort every due row for each claim of 32.
        due = due.order_by(table.c.attempt_at)
        # A materialised CTE runs once: inside `IN (…)` PostgreSQL may run a LIMIT subquery
        # again for each row and claim far more than *limit* (one instance taking everything).
        chosen = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
        # The rows are locked as they still were planned (FOR UPDATE checks again), so the join
        # on id alone: with `state = 'planned'` too, a planner that has not seen the rows yet
        # (they were just planned) walks every planned row for each one claimed.
        picked = table.c.id == chosen.c.id
    else:
        due = due.order_by(table.c.attempt_at, table.c.id)  # the index ends with the rowid: no sort
        # One statement under the write lock: the rows the subquery picks are still planned. A
        # second `state = 'planned'` here would have SQLite walk every planned row of the
        # state index instead of looking up the few ids picked (a claim grows with everything due).
        picked = table.c.id.in_(due.scalar_subquery())
    statement = (
        update(table)
        .where(picked)
        .values(state="claimed", claimed_by=worker, lease_until=now + lease, updated_at=now)
        .returning(*(claimed_column(table, name) for name in _CLAIMED_COLUMNS))
    )
    texts: dict[str, str] = {}
    rows = [claimed(row, texts) for row in session.execute(statement)]
    return sorted(rows, key=lambda row: (row.send_at, row.id))


_LINES = _CLAIMED_COLUMNS.index("lines")


def claimed(values: Sequence[Any], texts: dict[str, str]) -> Claimed:
    """A claimed row; the rows of a claim that list the same lines share one text (*texts*, by value).

    A change set's thousands of readers hold the same few kilobytes: one string, the render helper
    gets it once a batch (pickle writes an object it has seen as a reference), not once a row.
    """
    text = values[_LINES]
    if text is not None:
        values = (*values[:_LINES], texts.setdefault(text, text), *values[_LINES + 1 :])
    return Claimed(*values)


def claimed_column(table: Table, name: str) -> ColumnElement[Any]:
    """A column as a claim returns it: the lines as their text, decoded by compose once per change set."""
    column = table.c[name]
    return sql_cast(column, Text).label(name) if name == "lines" else column


def current(table: Table) -> ColumnElement[bool]:
    """A row planned for its milestone's current revision (or not a reminder): it may be claimed.

    A reminder whose milestone changed since it was planned (a deadline moved) is left to the
    next re-planning, which moves it or plans it again (docs/architecture.md §3). One index
    lookup of the milestone per row claimed, in the claim itself.
    """
    milestones = Milestone.__table__  # type: ignore[attr-defined]
    now_at = (
        select(milestones.c.revision)
        .where(milestones.c.timeline_id == table.c.timeline_id, milestones.c.key == table.c.milestone_key)
        .scalar_subquery()
    )
    # A milestone row that is gone leaves its reminders to compose (which skips them as removed).
    revision = table.c.revision
    return (table.c.kind != "reminder") | revision.is_(None) | (func.coalesce(now_at, revision) == revision)


def count_due(session: Session, now: datetime, limit: int) -> int:
    """Count the rows due now, up to *limit* (the claim index stops the scan there)."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    due = select(table.c.id).where(table.c.state == "planned", table.c.attempt_at <= now).limit(limit).subquery()
    return int(session.execute(select(func.count()).select_from(due)).scalar_one())


def skip_stale(session: Session, now: datetime) -> int:
    """Skip what is no use sending any more; return how many rows.

    After downtime several reminders (or overdue notices) of one occurrence can be due at once:
    only the latest goes ("1 day left"), not a burst of "14 days", "7 days", "1 day". Past its
    deadline, nothing goes. A row that becomes due later in a pass (a retry) is not taken by
    the claim either (`not_stale`), and is skipped here at the next pass.
    """
    table = Delivery.__table__  # type: ignore[attr-defined]
    superseded = [
        update(table)
        .where(claimable(table, now), table.c.kind == kind, table.c.send_at <= now, newer_due(table, now))
        .values(state="skipped", reason=f"a later {words} was due at the same time", updated_at=now)
        for kind, words in (("reminder", "reminder"), ("overdue", "overdue notice"))
    ]
    told = (  # "X is open, due on …" just went out or is going: a reminder of X the same day is noise
        update(table)
        .where(claimable(table, now), table.c.kind == "reminder", table.c.send_at <= now, just_opened(table, now))
        .values(state="skipped", reason="the 'opened' notice gave the date", updated_at=now)
    )
    expired = (
        update(table)
        .where(claimable(table, now), table.c.deadline_at <= now)
        .values(state="skipped", reason="deadline passed before it could be sent", updated_at=now)
    )
    return sum(changed(session.execute(statement)) for statement in (*superseded, told, expired))


def newer_due(table: Table, now: datetime) -> Exists:
    """A later message of the row's kind about the same occurrence, for the same reader, is due or gone."""
    later = table.alias("later")
    return exists().where(
        *(later.c[name] == table.c[name] for name in ("subscriber_id", "timeline_id", "milestone_key", "occurrence")),
        later.c.kind == table.c.kind,  # an overdue step's escalations too: "late by 14 days", once
        later.c.send_at > table.c.send_at,
        later.c.send_at <= now,
        later.c.state.in_(("planned", "claimed", "sent")),
    )


def just_opened(table: Table, now: datetime) -> Exists:
    """The reader got (or is getting) the "now open" notice of the row's milestone in the last day."""
    opened = table.alias("opened")
    return exists().where(
        *(opened.c[name] == table.c[name] for name in ("subscriber_id", "timeline_id", "milestone_key")),
        opened.c.kind == "opened",
        opened.c.created_at > now - timedelta(days=1),
        opened.c.state.in_(("planned", "claimed", "sent")),
    )


def not_stale(table: Table, now: datetime) -> ColumnElement[bool]:
    """What `skip_stale` would skip now is not claimed: a pass claims with later clocks than it skipped with.

    A reminder whose retry falls due during a long pass (a relay outage, a large fan-out) was
    not looked at by the pass's first skip; without this, it went out after a later one had.
    One index lookup (the unique key, or ix_deliveries_milestone) per row claimed.
    """
    reminder, overdue = table.c.kind == "reminder", table.c.kind == "overdue"
    stale = ((reminder | overdue) & newer_due(table, now)) | (reminder & just_opened(table, now))
    return ~stale & ((table.c.deadline_at > now) | table.c.deadline_at.is_(None))


def claimable(table: Table, now: datetime) -> ColumnElement[bool]:
    """Planned and due to be tried: the rows a claim could take now, found by the claim index's range.

    With `state = 'planned'` alone, every pass walked every planned row (PostgreSQL read the
    whole table): a month of reminders to every subscriber, to find the few due. A row whose
    retry is later is looked at when it may be tried, which is soon enough: no claim takes it before.
    """
    return (table.c.state == "planned") & (table.c.attempt_at <= now)


def return_expired(session: Session, now: datetime) -> int:
    """Give back rows whose worker died or stalled: another worker will send them."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.state == "claimed", table.c.lease_until < now)
        .values(state="planned", claimed_by=None, lease_until=None, updated_at=now)
    )
    return changed(session.execute(statement))


def release(session: Session, ids: list[int], worker: str, now: datetime) -> int:
    """Give back rows this worker claimed but will not send (shutting down).

    While claimed, a row is left alone by a pass planning its milestone's move: back in the pool
    it may stand for the old date, so the planning mark goes and the next pass plans every row."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.id.in_(ids), table.c.state == "claimed", table.c.claimed_by == worker)
        .values(state="planned", claimed_by=None, lease_until=None, updated_at=now)
    )
    released = changed(session.execute(statement))
    if released:
        session.execute(delete(Cursor).where(Cursor.name == PLANNING))  # type: ignore[arg-type]
    return released


def extend(session: Session, ids: list[int], worker: str, until: datetime) -> int:
    """Keep the lease on rows still queued or being sent."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    statement = (
        update(table)
        .where(table.c.id.in_(ids), table.c.state == "claimed", table.c.claimed_by == worker)
        .values(lease_until=until)
    )
    return changed(session.execute(statement))


def milestone_revisions(session: Session, milestones: Collection[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The current revision of each of *milestones* (timeline, key) that is stored."""
    wanted = set(milestones)
    if not wanted:
        return {}
    table = Milestone.__table__  # type: ignore[attr-defined]
    found = session.execute(
        select(table.c.timeline_id, table.c.key, table.c.revision).where(
            table.c.timeline_id.in_({timeline for timeline, _ in wanted}), table.c.key.in_({key for _, key in wanted})
        )
    )
    return {(timeline, key): revision for timeline, key, revision in found if (timeline, key) in wanted}


def next_attempt(session: Session) -> datetime | None:
    """When the earliest planned row may be sent (None: nothing planned)."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    found = session.execute(
        select(type_coerce(func.min(table.c.attempt_at), UTCDateTime())).where(table.c.state == "planned")
    ).scalar()
    return cast("datetime | None", found)


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed row."""

    id: int
    state: str  # sent | planned (retry later) | failed | skipped | cancelled
    at: datetime
    reply: str = ""
    error: str = ""
    reason: str = ""
    retry_at: datetime | None = None
    tried: bool = True  # False: nothing went to the server (skipped or cancelled before sending)


class RecordError(SQLAlchemyError):
    """Outcomes could not be written; the driver's error is the cause."""


# One outcome, as the driver runs it; a value given as NULL keeps the column as it was. A sent row is
# marked sent even if its lease ran out.
_RECORD_SQL = (
    "UPDATE deliveries SET state = ?, updated_at = ?, claimed_by = NULL, lease_until = NULL, reason = ?,"
    " attempts = attempts + ?, sent_at = coalesce(?, sent_at), reply = coalesce(?, reply),"
    " last_error = coalesce(?, last_error), attempt_at = coalesce(?, attempt_at)"
    " WHERE id = ? AND state IN ('claimed', 'planned')"
)

# PostgreSQL: the whole batch in one statement, one round trip (on the writer's own connection
# each statement commits by itself): a BEGIN, a statement per row and a COMMIT were four round
# trips for a typical batch of four, and the workers wait for them. A VALUES list, not arrays:
# psycopg dumps arrays element by element in Python, which took longer than the statement itself.
_RECORD_MANY_SQL = (
    "UPDATE deliveries AS d SET state = v.state, updated_at = v.at, claimed_by = NULL, lease_until = NULL,"
    " reason = v.reason, attempts = d.attempts + v.tried, sent_at = coalesce(v.sent_at, d.sent_at),"
    " reply = coalesce(v.reply, d.reply), last_error = coalesce(v.error, d.last_error),"
    " attempt_at = coalesce(v.retry_at, d.attempt_at)"
    " FROM (VALUES {rows}) AS v(state, at, reason, tried, sent_at, reply, error, retry_at, id)"
    " WHERE d.id = v.id AND d.state IN ('claimed', 'planned')"
)
_RECORD_ROW = (
    "(%s::text, %s::timestamptz, %s::text, %s::int, %s::timestamptz, %s::text, %s::text, %s::timestamptz, %s::int)"
)
WRITER_NAME = "tracker outcomes"
WRITE_TIMEOUT = 30.0  # seconds
# Rows in one statement at most (9 parameters a row, PostgreSQL takes 65,535): a batch is one
# statement, hence atomic, but for a backlog of thousands after an outage of the store.
_MANY = 5000


@lru_cache(maxsize=64)  # batches are mostly one row per worker; an odd size after an outage need not stay
def record_many_sql(count: int) -> str:
    return _RECORD_MANY_SQL.format(rows=", ".join([_RECORD_ROW] * count))


def statements(rows: Sequence[tuple[Any, ...]]) -> Iterator[tuple[str, list[Any]]]:
    """PostgreSQL: the statements that record *rows*, with their parameters."""
    for start in range(0, len(rows), _MANY):
        chunk = rows[start : start + _MANY]
        yield record_many_sql(len(chunk)), [value for row in chunk for value in row]


class OutcomeWriter:
    """Record outcomes through the driver, on one connection kept from one write to the next.

    An outcome is written every few messages (a worker's next message waits for its last
    one), so what surrounds the UPDATE counts: SQLAlchemy's execution and a pool checkout
    (with its ping on PostgreSQL) cost three times the statement. One write at a time.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        self.connection: PoolProxiedConnection | None = None
        self.waiting: AsyncConnection[Any] | None = None  # PostgreSQL, for record_async
        self._at = UTCDateTime()

    def record_in(self, connection: Connection, outcomes: Sequence[Outcome]) -> None:
        """Write *outcomes* as part of *connection*'s transaction (with the events of a failure)."""
        if not outcomes:
            return
        rows = [self.row(outcome) for outcome in outcomes]
        if self.sqlite:
            connection.exec_driver_sql(_RECORD_SQL, rows)
        else:
            for sql, values in statements(rows):
                connection.exec_driver_sql(sql, tuple(values))

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Write *outcomes* in one transaction; raise RecordError if they may not be written."""
        if not outcomes:
            return
        rows = [self.row(outcome) for outcome in outcomes]
        connection, self.connection = self.connection, None
        try:
            connection = connection or self.connect()
            cursor = connection.cursor()
            if self.sqlite:
                cursor.execute("BEGIN IMMEDIATE")  # the write lock up front, as store.transaction takes it
                cursor.executemany(_RECORD_SQL, rows)
                connection.commit()
            else:
                for sql, values in statements(rows):
                    cursor.execute(sql, values)
            cursor.close()
        except Exception as exc:
            if connection is not None:
                self.discard(connection)
            raise RecordError(f"could not record {len(rows)} outcome(s): {exc}") from exc
        self.connection = connection

    def discard(self, connection: PoolProxiedConnection) -> None:
        """Close a connection in an unknown state (SQLite: taken out of the pool)."""
        with contextlib.suppress(Exception):
            if self.sqlite:
                connection.invalidate()
            else:
                connection.close()  # detached: closing it closes the driver's connection

    async def record_async(self, outcomes: Sequence[Outcome]) -> None:
        """PostgreSQL: as record, on an asynchronous connection: the loop goes on sending meanwhile.

        (In a thread, the write waited for the loop to let go of the interpreter each time.)
        """
        if not outcomes:
            return
        rows = [self.row(outcome) for outcome in outcomes]
        connection, self.waiting = self.waiting, None
        try:
            # Bounded: the workers wait for this write, and a server that stopped answering
            # must turn into a failed write (retried through the pool), not a stalled pass.
            async with asyncio.timeout(WRITE_TIMEOUT):
                connection = connection or await self.connect_async()
                for sql, values in statements(rows):
                    await connection.execute(sql, values)
        except Exception as exc:
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()
            raise RecordError(f"could not record {len(outcomes)} outcome(s): {exc!r}") from exc
        self.waiting = connection

    async def connect_async(self) -> AsyncConnection[Any]:
        from psycopg import AsyncConnection

        args, options = self.engine.dialect.create_connect_args(self.engine.url)
        # Named, so that an operator can tell it in pg_stat_activity (and a test can cut it),
        # unless the store's URL names its connections already.
        options = {"application_name": WRITER_NAME, **options}
        connection = await AsyncConnection.connect(*args, **options, autocommit=True)
        try:
            await connection.execute("SET synchronous_commit TO OFF")
        except BaseException:
            await connection.close()
            raise
        return connection

    def row(self, outcome: Outcome) -> tuple[Any, ...]:
        sent = outcome.state == "sent"
        at = self.bind(outcome.at)
        return (
            outcome.state, at, outcome.reason, int(outcome.tried), at if sent else None,
            outcome.reply[:500] if sent else None, "" if sent else (outcome.error[:500] or None),
            self.bind(outcome.retry_at), outcome.id,
        )  # fmt: skip

    def bind(self, value: datetime | None) -> Any:
        return self._at.process_bind_param(value, self.engine.dialect)

    def connect(self) -> PoolProxiedConnection:
        """A pooled connection for SQLite; for PostgreSQL one of the writer's own, set up for it."""
        connection = self.engine.raw_connection()
        if self.sqlite:
            return connection
        # Its own, as its settings must not reach other users of the pool: it is closed, not given back.
        connection.detach()
        try:
            connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
            cursor = connection.cursor()
            # See dispatcher.relax_durability: an outcome need not wait for the server's disk flush.
            cursor.execute("SET synchronous_commit TO OFF")
            cursor.close()
        except BaseException:
            connection.close()
            raise
        return connection

    def close(self) -> None:
        """Give the connection back to the pool (PostgreSQL: close it)."""
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.close()

    async def aclose(self) -> None:
        """Close both connections."""
        self.close()
        waiting, self.waiting = self.waiting, None
        if waiting is not None:
            await waiting.close()
