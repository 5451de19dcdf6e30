"""Notices as handlers of domain events: a deadline moved, was cancelled, or a step opened.

Each event is handled once: a cursor row remembers the last one read, and it moves in the
same transaction as the notices it caused. Notices go to the subscribers the milestone
concerns, through the outbox like every other message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from tracker.delivery.outbox import insert_new, load_readers
from tracker.delivery.planning import waiting_for
from tracker.store.models import Cursor, Delivery, Event
from tracker.subscribers.readers import Reader
from tracker.text import describe_error
from tracker.timelines.diff import Change
from tracker.timelines.screening import screen_views
from tracker.timelines.states import Process
from tracker.timelines.stored import load_views
from tracker.timelines.views import UNREADABLE, MilestoneView, expand, follows, reference

log = logging.getLogger("tracker.delivery.notices")
CURSOR = "notices"
BATCH = 2000  # events read per pass: a huge first sync is handled over a few passes


@dataclass
class Handled:
    """What reading the new events did."""

    events: int = 0
    notices: int = 0
    replan: bool = False  # something changed that reminders depend on


@dataclass
class Snapshot:
    """Milestones and confirmed subscribers, loaded once per pass and only if needed."""

    session: Session
    _views: list[MilestoneView] | None = None
    _readers: list[Reader] | None = None
    _by_key: dict[tuple[str, str], MilestoneView] = field(default_factory=dict)
    _process: Process | None = None

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
        return [r for r in self.readers if follows(view, r.timelines, r.audiences)]


def handle_events(session: Session, now: datetime, snapshot: Snapshot | None = None) -> Handled:
    """Turn the events since the last pass into notices; call inside a write transaction."""
    snapshot = snapshot or Snapshot(session)
    cursor = session.get(Cursor, CURSOR)
    if cursor is None:
        # First start: what happened before the engine ran is history, not news.
        newest = session.exec(select(func.max(Event.id))).one() or 0
        session.add(Cursor(name=CURSOR, event_id=newest, updated_at=now))
        return Handled(replan=True)
    events = list(
        session.exec(select(Event).where(col(Event.id) > cursor.event_id).order_by(col(Event.id)).limit(BATCH))
    )
    handled = Handled(events=len(events))
    # Completions first: a step done early moves its dependents in the same breath, and
    # the 'opened' notice then stands for the 'changed' one (it states the new date).
    for event in sorted(events, key=lambda e: (e.kind != "completed", e.id)):
        try:
            handled.notices += handle(session, event, snapshot, now)
        except UNREADABLE as exc:  # its milestone does not read (the planner quarantines it): the rest go on
            log.warning("event %s (%s of %s/%s) gave no notice: %s", event.id, event.kind, event.timeline_id,
                        event.milestone_key, describe_error(exc))  # fmt: skip
        handled.replan = handled.replan or not event.kind.startswith("delivery_")
    if events:
        cursor.event_id, cursor.updated_at = events[-1].id or cursor.event_id, now
        session.add(cursor)
    return handled


def handle(session: Session, event: Event, snapshot: Snapshot, now: datetime) -> int:
    """Plan the notices one event calls for; return how many."""
    if event.kind == "rescheduled":
        return notice_changed(session, event, snapshot, now)
    if event.kind in ("cancelled", "removed"):
        return notice_cancelled(session, event, snapshot, now)
    if event.kind == "completed":
        return notice_opened(session, event, snapshot, now)
    if event.kind == "reopened":
        return notice_reopened(session, event, snapshot, now)
    return 0


def notice_changed(session: Session, event: Event, snapshot: Snapshot, now: datetime) -> int:
    """One 'changed' notice per change; a second move before it went out updates it (old → newest).

    A step still waiting for an earlier one is not news when it moves: its 'opened' notice will give its dates.
    """
    view = snapshot.view(event.timeline_id, event.milestone_key)
    if view is not None and snapshot.waiting(view, now):
        return 0
    moved = None if view is None or view.status != "active" else coming_move(view, event.old_at, event.new_at, now)
    if view is None or moved is None:
        return 0
    old_at, new_at = moved
    pending = planned_notices(session, view, "changed")
    opening = planned_notices(session, view, "opened")  # an 'opened' notice states the new date itself
    rows, count = [], 0
    for reader in snapshot.routed(view):
        if reader.id in opening:
            continue
        row = pending.get(reader.id)
        if row is None:
            rows.append(notice_row(reader, view, "changed", event, now, old_at=old_at, new_at=new_at))
        elif row.old_at == new_at:
            count += set_state(session, row.id, "cancelled", now, reason="moved back to its earlier date")
        else:
            session.execute(
                update(Delivery.__table__)  # type: ignore[attr-defined]
                .where(col(Delivery.id) == row.id, col(Delivery.state) == "planned")
                .values(new_at=new_at, deadline_at=new_at, event_id=event.id, updated_at=now)
            )
            count += 1
    return count + insert_new(session, rows)


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


def notice_cancelled(session: Session, event: Event, snapshot: Snapshot, now: datetime) -> int:
    """Tell who waited for it that a future deadline is off; drop the notices that no longer matter."""
    view = snapshot.view(event.timeline_id, event.milestone_key)
    if view is None or event.old_at is None or event.old_at <= now:
        return 0
    for kind in ("changed", "opened"):
        for row in planned_notices(session, view, kind).values():
            set_state(session, row.id, "cancelled", now, reason=f"milestone {event.kind}")
    rows = [notice_row(r, view, "cancelled", event, now, old_at=event.old_at) for r in snapshot.routed(view)]
    return insert_new(session, rows)


def notice_opened(session: Session, event: Event, snapshot: Snapshot, now: datetime) -> int:
    """A step was completed: tell the audience of each milestone that was waiting for it."""
    done = snapshot.view(event.timeline_id, event.milestone_key)
    if done is None:
        return 0
    rows = []
    for view in waiting_for(done, snapshot.views):
        if view.main_at > now and "" not in view.completions:
            rows += [notice_row(r, view, "opened", event, now) for r in snapshot.routed(view)]
    return insert_new(session, rows)


def notice_reopened(session: Session, event: Event, snapshot: Snapshot, now: datetime) -> int:
    """A completion was removed: 'opened' notices not sent yet are cancelled, and whoever was told a
    waiting step had opened gets one 'correction' (docs/architecture.md §6)."""
    reopened = snapshot.view(event.timeline_id, event.milestone_key)
    if reopened is None:
        return 0
    rows = []
    for view in waiting_for(reopened, snapshot.views):
        for row in planned_notices(session, view, "opened").values():
            set_state(session, row.id, "cancelled", now, reason=f"{reference(reopened)} was reopened")
        told = told_opened(session, view)
        rows += [notice_row(r, view, "correction", event, now) for r in snapshot.routed(view) if r.id in told]
    return insert_new(session, rows)


def told_opened(session: Session, view: MilestoneView) -> set[int]:
    """Subscribers whose latest word about *view* is an 'opened' notice sent (not corrected since)."""
    latest: dict[str, Any] = {}
    for kind in ("opened", "correction"):
        query = (
            select(Delivery.subscriber_id, func.max(Delivery.event_id))
            .where(Delivery.timeline_id == view.timeline_id, Delivery.milestone_key == view.key)
            .where(Delivery.kind == kind, col(Delivery.state).in_(("sent", "claimed") if kind == "opened" else
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


def preview(session: Session, changes: Iterable[Change], now: datetime) -> dict[tuple[str, str], tuple[str, int]]:
    """The notice each change would send and to how many subscribers, for `tracker plan`.

    Read-only and approximate in one way: routing uses the stored milestone (an owner
    changed in the same edit is seen as it was).
    """
    snapshot = Snapshot(session)
    found: dict[tuple[str, str], tuple[str, int]] = {}
    for change in changes:
        key = (change.timeline_id, change.milestone_key or "")
        view = snapshot.view(*key)
        if view is None:
            continue
        if change.kind == "rescheduled" and coming_move(view, change.old_at, change.new_at, now) is not None:
            found[key] = ("changed", len(snapshot.routed(view)))
        elif change.kind in ("cancelled", "removed") and change.old_at is not None and change.old_at > now:
            found[key] = ("cancelled", len(snapshot.routed(view)))
        elif change.kind == "completed":
            waiting = [v for v in waiting_for(view, snapshot.views) if v.main_at > now]
            found[key] = ("opened", sum(len(snapshot.routed(v)) for v in waiting))
    return found
