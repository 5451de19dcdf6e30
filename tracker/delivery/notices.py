"""Notices as handlers of domain events: a deadline moved, was cancelled, or a step opened.

Each event is handled once: a cursor row remembers the last one read, and it moves in the
same transaction as the notices it caused. Notices go to the subscribers the milestone
concerns, through the outbox like every other message.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, Table, bindparam, union_all, update
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, func, select

from tracker.delivery import outbox
from tracker.delivery.changes import OFF, Line, fold, in_date_order, stored_lines
from tracker.delivery.changes import Change as LineChange
from tracker.delivery.outbox import Span, insert_new, load_readers, subscriber_spans, within
from tracker.delivery.partial import concerned
from tracker.delivery.planning import waiting_for
from tracker.delivery.scope import Scope, scope_of
from tracker.store.models import Cursor, Delivery, Event
from tracker.subscribers.readers import Reader
from tracker.text import describe_error
from tracker.timelines.diff import Change
from tracker.timelines.screening import screen_views
from tracker.timelines.states import Process
from tracker.timelines.stored import load_views
from tracker.timelines.views import UNREADABLE, MilestoneView, expand, follows, reference

log = logging.getLogger("tracker.delivery.notices")
LINE_EVENTS = ("rescheduled", "cancelled", "removed", "restored")  # what a changed message lists
CURSOR = "notices"
BATCH = 2000  # events read per pass: a huge first sync is handled over a few passes


@dataclass
class Handled:
    """What reading the new events did."""

    events: int = 0
    notices: int = 0
    replan: bool = False  # something changed that reminders depend on
    scope: Scope = field(default_factory=Scope)  # what: the milestones and subscribers to re-plan


@dataclass
class Snapshot:
    """Milestones and confirmed subscribers, loaded once per pass and only if needed."""

    session: Session
    _views: list[MilestoneView] | None = None
    _readers: list[Reader] | None = None
    _by_key: dict[tuple[str, str], MilestoneView] = field(default_factory=dict)
    _process: Process | None = None
    _routing: Routing | None = None

    @property
    def views(self) -> list[MilestoneView]:
        if self._views is None:
            self._views = screen_views(load_views(self.session))  # the planner reports what is left out
            self._by_key = {(v.timeline_id, v.key): v for v in self._views}
        return self._views

    def view(self, timeline_id: str, key: str | None) -> MilestoneView | None:
        _ = self.views
        return self._by_key.get((timeline_id, key or ""))

    @property
    def readers(self) -> list[Reader]:
        if self._readers is None:
            self._readers = load_readers(self.session)
        return self._readers

    def waiting(self, view: MilestoneView, now: datetime) -> bool:
        """Whether *view* (its next occurrence) waits for an earlier step that is not done."""
        if self._process is None or self._process.now != now:
            self._process = Process(self.views, now=now)
        coming = expand(view, now, now + timedelta(days=400))
        return bool(coming) and self._process.is_waiting(coming[0])

    def routed(self, view: MilestoneView) -> list[Reader]:
        """The confirmed readers *view* concerns."""
        if self._routing is None:
            self._routing = Routing(self.readers)
        return self._routing.routed(view)


class Routing:
    """Readers by their choice of timelines and audiences: which of them a milestone concerns is asked once a choice.

    Thousands of subscribers make a few such choices; a change set of 50 lines would otherwise
    ask each subscriber 50 times.
    """

    def __init__(self, readers: Iterable[Reader]) -> None:
        self.groups: dict[tuple[tuple[str, ...] | None, tuple[str, ...]], list[Reader]] = {}
        for reader in readers:
            self.groups.setdefault((reader.timelines, reader.audiences), []).append(reader)

    def routed(self, view: MilestoneView) -> list[Reader]:
        """The readers *view* concerns."""
        return [
            reader
            for (timelines, audiences), group in self.groups.items()
            if follows(view, timelines, audiences)
            for reader in group
        ]


def handle_events(session: Session, now: datetime, snapshot: Snapshot | None = None) -> Handled:
    """Turn the events since the last pass into notices; call inside a write transaction."""
    snapshot = snapshot or Snapshot(session)
    cursor = session.get(Cursor, CURSOR)
    if cursor is None:
        # First start: what happened before the engine ran is history, not news.
        newest = session.exec(select(func.max(Event.id))).one() or 0
        session.add(Cursor(name=CURSOR, event_id=newest, updated_at=now))
        return Handled(replan=True, scope=Scope(everything=True))
    events = read_events(session, cursor.event_id)
    handled = Handled(events=len(events))
    # Completions first: a step done early moves its dependents in the same breath, and
    # the 'opened' notice then stands for the 'changed' line (it states the new date).
    for event in events:
        if event.kind == "completed":
            handled.notices += guarded(lambda e: notice_opened(session, e, snapshot, now), event)
        elif event.kind == "reopened":
            handled.notices += guarded(lambda e: notice_reopened(session, e, snapshot, now), event)
    handled.notices += plan_changed(session, [e for e in events if e.kind in LINE_EVENTS], snapshot, now)
    # A delivery's outcome or a console sign-in changes no milestone nor subscriber: nothing to re-plan.
    handled.scope = scope_of(events)
    handled.replan = not handled.scope.empty
    if events:
        cursor.event_id, cursor.updated_at = events[-1].id or cursor.event_id, now
        session.add(cursor)
    return handled


def read_events(session: Session, after: int) -> list[Event]:
    """The next BATCH events, and the rest of the last one's change set: one change set, one message."""
    events = list(session.exec(select(Event).where(col(Event.id) > after).order_by(col(Event.id)).limit(BATCH)))
    last = events[-1] if len(events) == BATCH else None
    if last is None or last.change_set is None:
        return events
    end = session.exec(select(func.max(Event.id)).where(Event.change_set == last.change_set)).one() or 0
    rest = select(Event).where(col(Event.id) > (last.id or 0), col(Event.id) <= end).order_by(col(Event.id))
    return events + list(session.exec(rest))


def guarded(handle: Callable[[Event], int], event: Event) -> int:
    """Handle one event; one whose milestone does not read (the planner quarantines it) gives no notice."""
    try:
        return handle(event)
    except UNREADABLE as exc:
        unreadable(event, exc)
        return 0


def unreadable(event: Changed, exc: Exception) -> None:
    log.warning("event %s (%s of %s/%s) gave no notice: %s", getattr(event, "id", "-"), event.kind, event.timeline_id,
                event.milestone_key, describe_error(exc))  # fmt: skip


# --- changed: one message per change set and subscriber --------------------------------------


def plan_changed(session: Session, events: list[Event], snapshot: Snapshot, now: datetime) -> int:
    """Plan one 'changed' message per change set and subscriber, folding into unsent ones; return rows touched."""
    if not events:
        return 0
    sets: dict[str, list[Event]] = {}
    for event in events:  # events written before change sets existed are each their own
        sets.setdefault(event.change_set or str(event.id), []).append(event)
    told = [((change_set, group[0].id), set_lines(group, snapshot, now)) for change_set, group in sets.items()]
    told = [(change_set, lines) for change_set, lines in told if lines]
    if not told:
        return 0
    milestones = sorted({line.milestone for _, lines in told for line, _ in lines})
    # A span of subscribers at a time: a change set told to 100,000 is held a span's readers and
    # their unsent messages at a time, not all of them. Each subscriber's messages depend on their
    # own alone, so the lines go through every span in the same order as they would all at once.
    touched = 0
    for span, readers in told_spans(session, [view for _, lines in told for _, view in lines], milestones):
        routing, pending = Routing(readers), Pending.load(session, span, milestones)
        opening = opened_notices(session, milestones, span) if milestones else {}
        for change_set, lines in told:
            for line, view in lines:
                tell(session, pending, change_set, line, view, routing, now, opening)
        touched += pending.write(session, now)
    return touched


def told_spans(
    session: Session, views: list[MilestoneView], milestones: Collection[tuple[str, str]]
) -> Iterator[tuple[Span, list[Reader]]]:
    """Spans of the readers a change set may touch, each with its confirmed readers: those the lines' milestones
    concern and those holding an unsent message (a line may fold into it) or an unsent 'opened' notice about
    one of them (a cancelled line withdraws it), found by their choices and
    through the outbox's index (partial.concerned); every subscriber, a span at a time, when (nearly)
    everyone's choices follow the milestones."""
    ids = concerned(session, views, {})
    if ids is None:
        for span in subscriber_spans(session, outbox.BATCH_SUBSCRIBERS):
            yield span, load_readers(session, span=span)
        return
    table = Delivery.__table__  # type: ignore[attr-defined]
    unsent = (table.c.kind == "changed", table.c.state == "planned")
    opened = (table.c.kind == "opened", table.c.state == "planned")  # a cancelled line withdraws them all
    holders = union_all(
        *about(table, [("", ""), *milestones], [table.c.subscriber_id], unsent),
        *about(table, milestones, [table.c.subscriber_id], opened),
    )
    ids.update(session.execute(holders).scalars())
    ordered, after = sorted(ids), None
    for start in range(0, len(ordered), outbox.BATCH_SUBSCRIBERS):
        chunk = ordered[start : start + outbox.BATCH_SUBSCRIBERS]
        yield (after, chunk[-1]), load_readers(session, ids=chunk)
        after = chunk[-1]


def opened_notices(
    session: Session, milestones: Collection[tuple[str, str]], span: Span
) -> dict[tuple[str, str], dict[int, int]]:
    """The 'opened' notices about *milestones* not sent yet to the subscribers in *span*: by milestone, each
    subscriber's row id (one statement a span: a query for each line and span was 2,500 for 50 lines
    told to 100,000 subscribers)."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    columns = [table.c.timeline_id, table.c.milestone_key, table.c.subscriber_id, table.c.id]
    unsent = (table.c.kind == "opened", table.c.state == "planned", within(table.c.subscriber_id, span))
    found: dict[tuple[str, str], dict[int, int]] = {}
    for timeline_id, key, subscriber_id, row_id in session.execute(
        union_all(*about(table, milestones, columns, unsent))
    ):
        found.setdefault((timeline_id, key), {})[subscriber_id] = row_id
    return found


def about(
    table: Table, milestones: Collection[tuple[str, str]], columns: list[Any], where: Iterable[ColumnElement[bool]]
) -> list[Select[Any]]:
    """A statement for each milestone's rows (*where*), each through `ix_deliveries_milestone`, to join in a
    UNION ALL: one OR of the milestones had the planners walk every planned row."""
    where = tuple(where)
    return [
        select_columns(*columns).where(table.c.timeline_id == timeline_id, table.c.milestone_key == key, *where)
        for timeline_id, key in milestones
    ]


class Changed(Protocol):
    """A stored event or a planned change: what a line is made of."""

    @property
    def kind(self) -> str: ...
    @property
    def timeline_id(self) -> str: ...
    @property
    def milestone_key(self) -> str | None: ...
    @property
    def old_at(self) -> datetime | None: ...
    @property
    def new_at(self) -> datetime | None: ...


def set_lines(events: Iterable[Changed], snapshot: Snapshot, now: datetime) -> list[tuple[Line, MilestoneView]]:
    """The line each milestone of one change set gets (a restore and a move of one edit make one line)."""
    found: dict[tuple[str, str], tuple[Line, MilestoneView]] = {}
    for event in events:
        if event.kind not in LINE_EVENTS:
            continue
        view = snapshot.view(event.timeline_id, event.milestone_key)
        revision = getattr(event, "revision", None)
        try:
            line = None if view is None else line_of(view, event.kind, event.old_at, event.new_at, now, revision)
        except UNREADABLE as exc:
            unreadable(event, exc)
            continue
        if line is None or view is None:
            continue
        if line.change in ("moved", "restored") and snapshot.waiting(view, now):
            continue  # a step still waiting for an earlier one: its 'opened' notice will give its dates
        earlier = found.pop(line.milestone, None)
        folded = line if earlier is None else fold(earlier[0], line)[0]
        if folded is not None:
            found[line.milestone] = (folded, view)
    return list(found.values())


def line_of(
    view: MilestoneView, kind: str, old_at: datetime | None, new_at: datetime | None, now: datetime,
    revision: int | None = None,
) -> Line | None:  # fmt: skip
    """The line a change of *view* gives in a changed message, or None when members need not hear of it."""
    if kind in OFF:
        # A date already past that is called off changes nothing for anyone.
        off: LineChange = "cancelled" if kind == "cancelled" else "removed"
        if old_at is None or old_at <= now:
            return None
        return Line(view.timeline_id, view.key, off, old_at, None, revision)
    if view.status != "active":
        return None
    moved = coming_move(view, old_at, new_at, now)
    if moved is None:
        return None
    change: LineChange = "moved" if kind == "rescheduled" else "restored"
    return Line(view.timeline_id, view.key, change, moved[0], moved[1], revision)


def tell(
    session: Session,
    pending: Pending,
    change_set: tuple[str, int | None],
    line: Line,
    view: MilestoneView,
    routing: Routing,
    now: datetime,
    opened: dict[tuple[str, str], dict[int, int]],
) -> None:
    """Put *line* in the messages of the readers it concerns: folded into an unsent one, else in its set's.

    *routing* and *pending* hold a span of subscribers; *opened*, their unsent 'opened' notices.
    """
    opening = opened.get(line.milestone, {})  # an 'opened' notice states the new date itself
    if line.change in OFF:
        for row_id in opening.values():
            set_state(session, row_id, "cancelled", now, reason=f"milestone {line.change}")
        opening = opened[line.milestone] = {}
    holding = pending.holding(line.milestone)
    for message in list(holding.values()):
        pending.fold(message, line)
    pending.add(
        [reader.id for reader in routing.routed(view) if reader.id not in holding and reader.id not in opening],
        change_set,
        line,
    )


@dataclass
class Message:
    """A changed message to one subscriber about one change set: stored (row_id) or to be planned."""

    subscriber_id: int
    change_set: str
    event_id: int | None
    lines: dict[tuple[str, str], Line]
    row_id: int | None = None
    touched: bool = False
    reason: str = ""  # why its last line went, should none be left

    def row(self, now: datetime) -> dict[str, Any]:
        lines, deadline_at = stored_form(frozenset(self.lines.values()))
        return {
            "subscriber_id": self.subscriber_id, "timeline_id": "", "milestone_key": "", "occurrence": "",
            "kind": "changed", "slot": self.change_set, "state": "planned", "send_at": now, "attempt_at": now,
            "deadline_at": deadline_at, "attempts": 0, "old_at": None, "new_at": None, "event_id": self.event_id,
            "lines": lines, "last_error": "", "reply": "", "reason": "",
            "created_at": now, "updated_at": now,
        }  # fmt: skip


@lru_cache(maxsize=1024)
def stored_form(lines: frozenset[Line]) -> tuple[list[list[Any]], datetime]:
    """Lines as stored, in date order, and the last date they tell of: made once for all who get the same lines."""
    ordered = in_date_order(list(lines))
    return [line.to_json() for line in ordered], ordered[-1].at


@dataclass
class Pending:
    """The changed messages not sent yet, by subscriber and change set, and who holds a line of which milestone."""

    messages: dict[tuple[int, str], Message] = field(default_factory=dict)
    by_line: dict[tuple[str, str], dict[int, Message]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, span: Span, milestones: Collection[tuple[str, str]]) -> Pending:
        """The unsent changed messages of the subscribers in *span* that a change about *milestones* can touch.

        Every message planned since change sets lists its lines and names no milestone of its own:
        all of them (a new line may fold into any), through `ix_deliveries_milestone` with the span's
        range. A message planned before tells of its one milestone: those about *milestones*. Read by
        kind and state alone, each span walked every planned row of the outbox (70 s for a re-plan
        at 100,000 subscribers).
        """
        table = Delivery.__table__  # type: ignore[attr-defined]
        names = ("id", "subscriber_id", "slot", "event_id", "lines", "timeline_id", "milestone_key", "old_at", "new_at")
        unsent = (table.c.kind == "changed", table.c.state == "planned", within(table.c.subscriber_id, span))
        query = union_all(*about(table, [("", ""), *milestones], [table.c[n] for n in names], unsent))
        pending = cls()
        for row in session.execute(query):
            try:
                lines = stored_lines(row.lines, row.timeline_id, row.milestone_key, row.old_at, row.new_at)
            except (ValueError, TypeError) as exc:  # compose quarantines it; nothing folds into it meanwhile
                log.warning("changed notice %s does not read: %s", row.id, describe_error(exc))
                continue
            message = Message(row.subscriber_id, row.slot, row.event_id, {}, row.id)
            pending.messages[(row.subscriber_id, row.slot)] = message
            for line in lines:
                pending.put(message, line)
        return pending

    def holding(self, milestone: tuple[str, str]) -> dict[int, Message]:
        return dict(self.by_line.get(milestone, {}))

    def put(self, message: Message, line: Line) -> None:
        message.lines[line.milestone] = line
        self.by_line.setdefault(line.milestone, {})[message.subscriber_id] = message

    def fold(self, message: Message, line: Line) -> None:
        """Change *message*'s line about *line*'s milestone to tell both; drop it if nothing is left to tell."""
        folded, reason = fold(message.lines[line.milestone], line)
        message.touched = True
        if folded is None:
            del message.lines[line.milestone]
            del self.by_line[line.milestone][message.subscriber_id]
            message.reason = reason
        else:
            message.lines[line.milestone] = folded

    def add(self, subscriber_ids: list[int], change_set: tuple[str, int | None], line: Line) -> None:
        """Put *line* in each subscriber's message of *change_set* (a loop run for every reader of every line)."""
        key, (set_id, event_id) = line.milestone, change_set
        holders, messages = self.by_line.setdefault(key, {}), self.messages
        for subscriber_id in subscriber_ids:
            message = messages.get((subscriber_id, set_id))
            if message is None:
                message = messages[(subscriber_id, set_id)] = Message(subscriber_id, set_id, event_id, {})
            message.lines[key] = line
            holders[subscriber_id] = message

    def write(self, session: Session, now: datetime) -> int:
        """Insert the new messages, update the folded ones, cancel those left with no line; return how many."""
        table = Delivery.__table__  # type: ignore[attr-defined]
        new = [m.row(now) for m in self.messages.values() if m.row_id is None and m.lines]
        folded = [m for m in self.messages.values() if m.row_id is not None and m.touched]
        kept = [{"row": m.row_id, "lines_": (r := m.row(now))["lines"], "deadline": r["deadline_at"]}
                for m in folded if m.lines]  # fmt: skip
        emptied = [{"row": m.row_id, "why": f"nothing left to tell: {m.reason}"} for m in folded if not m.lines]
        planned = (table.c.id == bindparam("row"), table.c.state == "planned")
        if kept:
            values = {"lines": bindparam("lines_"), "deadline_at": bindparam("deadline"), "updated_at": now}
            session.execute(update(table).where(*planned).values(values), kept)
        if emptied:
            values = {"state": "cancelled", "reason": bindparam("why"), "updated_at": now}
            session.execute(update(table).where(*planned).values(values), emptied)
        return insert_new(session, new) + len(kept) + len(emptied)


def coming_move(
    view: MilestoneView, old_at: datetime | None, new_at: datetime | None, now: datetime
) -> tuple[datetime, datetime] | None:
    """The move as members will live it: for a repeating milestone, its next occurrence shifted.

    Events carry a repeating milestone's first occurrence, often years back; what members
    need to hear is that the next one moved.
    """
    if old_at is None or new_at is None:
        return None
    if new_at > now:
        return old_at, new_at
    if view.repeat is None:
        return None
    coming = expand(view, now, now + timedelta(days=400))
    if not coming:
        return None
    return coming[0].at - (new_at - old_at), coming[0].at


def notice_opened(session: Session, event: Event, snapshot: Snapshot, now: datetime) -> int:
    """A step was completed: tell the audience of each milestone that was waiting for it."""
    done = snapshot.view(event.timeline_id, event.milestone_key)
    if done is None:
        return 0
    rows = [
        notice_row(r, view, "opened", event, now) for view, readers in to_open(done, snapshot, now) for r in readers
    ]
    return insert_new(session, rows)


def to_open(done: MilestoneView, snapshot: Snapshot, now: datetime) -> list[tuple[MilestoneView, list[Reader]]]:
    """The steps *done* opens, each with who is told: still ahead and not done themselves."""
    return [
        (view, snapshot.routed(view))
        for view in waiting_for(done, snapshot.views)
        if view.main_at > now and "" not in view.completions
    ]


def notice_reopened(session: Session, event: Event, snapshot: Snapshot, now: datetime) -> int:
    """A completion was removed: 'opened' notices not sent yet are cancelled, and whoever was told a
    waiting step had opened gets one 'correction' (docs/architecture.md §6)."""
    reopened = snapshot.view(event.timeline_id, event.milestone_key)
    if reopened is None:
        return 0
    rows = []
    for view, unsent, told in to_correct(session, reopened, snapshot):
        for row in unsent:
            set_state(session, row.id, "cancelled", now, reason=f"{reference(reopened)} was reopened")
        rows += [notice_row(r, view, "correction", event, now) for r in told]
    return insert_new(session, rows)


def to_correct(
    session: Session, reopened: MilestoneView, snapshot: Snapshot
) -> list[tuple[MilestoneView, list[Delivery], list[Reader]]]:
    """The steps *reopened* had opened, each with its 'opened' notices not sent yet (to withdraw) and
    the readers already told (to correct)."""
    found = []
    for view in waiting_for(reopened, snapshot.views):
        told = told_opened(session, view)
        readers = [r for r in snapshot.routed(view) if r.id in told]
        found.append((view, list(planned_notices(session, view, "opened").values()), readers))
    return found


def told_opened(session: Session, view: MilestoneView) -> set[int]:
    """Subscribers whose latest word about *view* is an 'opened' notice sent (not corrected since)."""
    latest: dict[str, Any] = {}
    for kind in ("opened", "correction"):
        query = (
            select(Delivery.subscriber_id, func.max(Delivery.event_id))
            .where(Delivery.timeline_id == view.timeline_id, Delivery.milestone_key == view.key)
            # Told: an 'opened' notice that went (one still going may yet fail); corrected: one planned or sent.
            .where(Delivery.kind == kind, col(Delivery.state).in_(("sent",) if kind == "opened" else
                                                                  ("planned", "claimed", "sent")))
            .group_by(col(Delivery.subscriber_id))
        )  # fmt: skip
        latest[kind] = dict(session.exec(query).all())
    corrected = latest["correction"]
    return {who for who, event_id in latest["opened"].items() if event_id > corrected.get(who, -1)}


def notice_row(
    reader: Reader, view: MilestoneView, kind: str, event: Event, now: datetime, **dates: datetime | None
) -> dict[str, Any]:
    deadline = dates.get("new_at") or dates.get("old_at") or view.main_at
    return {
        "subscriber_id": reader.id, "timeline_id": view.timeline_id, "milestone_key": view.key,
        "occurrence": "", "kind": kind, "slot": str(event.id), "state": "planned", "send_at": now,
        "attempt_at": now, "deadline_at": deadline, "attempts": 0, "old_at": dates.get("old_at"),
        "new_at": dates.get("new_at"), "event_id": event.id, "last_error": "", "reply": "", "reason": "",
        "created_at": now, "updated_at": now,
    }  # fmt: skip


def planned_notices(session: Session, view: MilestoneView, kind: str) -> dict[int, Delivery]:
    """The notices of *kind* about *view* not sent yet, by subscriber."""
    rows = session.exec(
        select(Delivery).where(
            Delivery.timeline_id == view.timeline_id,
            Delivery.milestone_key == view.key,
            Delivery.kind == kind,
            Delivery.state == "planned",
        )
    )
    return {row.subscriber_id: row for row in rows}


def set_state(session: Session, row_id: int | None, state: str, now: datetime, *, reason: str) -> int:
    session.execute(
        update(Delivery.__table__)  # type: ignore[attr-defined]
        .where(col(Delivery.id) == row_id, col(Delivery.state) == "planned")
        .values(state=state, reason=reason, updated_at=now)
    )
    return 1


@dataclass(frozen=True)
class NoticePreview:
    """What `tracker plan` tells of the notices a sync would send."""

    by_change: dict[tuple[str, str], tuple[str, int]]  # (timeline, milestone) → the notice and to how many
    messages: list[tuple[int, int]]  # changed messages: (subscribers, the changes each lists), most changes first


def preview(session: Session, changes: Iterable[Change], now: datetime) -> NoticePreview:
    """The notices the changes would send and to how many subscribers, for `tracker plan`.

    Read-only and approximate in two ways: routing uses the stored milestone (an owner
    changed in the same edit is seen as it was), and unsent messages the lines would fold into
    are not looked at (each subscriber is counted as getting a new message).
    """
    snapshot = Snapshot(session)
    changes = list(changes)
    found: dict[tuple[str, str], tuple[str, int]] = {}
    listed: Counter[int] = Counter()  # subscriber → lines in their message
    for line, view in set_lines(changes, snapshot, now):
        readers = snapshot.routed(view)
        found[line.milestone] = ("changed", len(readers))
        listed.update(reader.id for reader in readers)
    for change in changes:
        done = snapshot.view(change.timeline_id, change.milestone_key)
        if change.kind == "completed" and done is not None:
            waiting = [v for v in waiting_for(done, snapshot.views) if v.main_at > now]
            found[(done.timeline_id, done.key)] = ("opened", sum(len(snapshot.routed(v)) for v in waiting))
    sizes = Counter(listed.values())
    return NoticePreview(found, [(sizes[size], size) for size in sorted(sizes, reverse=True)])
