"""Plan only what changed or what time brought in, not the whole outbox (issue 18, docs/architecture.md §3).

A pass re-planned every planned row in memory: seconds and hundreds of MB for thousands of
subscribers, whether anything had changed or not. Now the store keeps a mark, the cursor row
'planning': when the outbox was last planned (its `updated_at`) and under which settings (its
`basis`). A pass then re-plans

* the milestones and subscribers its new events name (scope.py): the notices cursor
  (notices.py) moves in the same transaction, so each event is planned from exactly once;
* the milestones time alone brings something new to since the mark (ahead.py): a reminder come
  inside the horizon, a step now late, a new week's digest;

and nothing else: with neither, it reads no per-subscriber row. The rows of what it re-plans are
found through ix_deliveries_milestone (timeline, milestone) and the unique key (subscriber).
No mark, other settings, a clock gone back, or more events than a part can hold: everything, as
before. Passes plan one at a time (the planning transaction is exclusive), so the mark needs no
more care than the cursor; two passes planning the same rows are kept apart by the unique key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, String, cast
from sqlmodel import Session, select

from tracker import __version__
from tracker.delivery.ahead import coming_in, digest_zones, probe_reader
from tracker.delivery.outbox import (
    PENDING,
    PLANNING,
    REPLANNABLE_COLUMNS,
    Context,
    Replan,
    insert_new,
    load_readers,
    new_row,
    reconcile,
    replan,
)
from tracker.delivery.planning import Escalation, plan_digests, plan_each
from tracker.delivery.scope import Scope, linked_timelines, waiting_on
from tracker.store.models import Channel, Cursor, Delivery, Subscriber
from tracker.store.quarantine import keep_quarantine
from tracker.timelines.pipeline import zone_data_version
from tracker.timelines.screening import screen_views
from tracker.timelines.stored import load_views
from tracker.timelines.views import MilestoneView, Problems

LATE_KINDS = ("overdue", "delayed")
Pair = tuple[str, str]  # a milestone: its timeline and key


def plan_outbox(
    session: Session, scope: Scope, *, now: datetime, horizon: timedelta, reminder_hour: int,
    escalation: Escalation | None = None, whole: bool = False,
) -> Replan | None:  # fmt: skip
    """Re-plan what *scope* names and what time brought in since the last planning; None: nothing to."""
    escalation = escalation or Escalation()
    basis = basis_of(horizon, reminder_hour, escalation)
    mark = session.get(Cursor, PLANNING)
    before = mark.updated_at if mark is not None and mark.basis == basis else None
    if whole or scope.everything or before is None or before > now:
        result: Replan | None = replan(session, now=now, horizon=horizon, reminder_hour=reminder_hour,
                                       escalation=escalation)  # fmt: skip
    else:
        result = plan_part(session, scope, before, now, horizon, reminder_hour, escalation)
    mark = mark or Cursor(name=PLANNING)
    mark.updated_at, mark.basis = now, basis
    session.add(mark)
    return result


def forget_planning(session: Session) -> None:
    """Have the next pass plan everything (rows came back that a part would not look at)."""
    mark = session.get(Cursor, PLANNING)
    if mark is not None:
        session.delete(mark)


def basis_of(horizon: timedelta, reminder_hour: int, escalation: Escalation) -> str:
    """What planning depends on besides events, as a short text: a mark of another basis plans everything again.

    The settings; Tracker's version, whose rules may plan otherwise; the zone data, which may move a
    local reminder hour or make a quarantined subscriber's zone read: no event names those."""
    settings = [horizon.total_seconds(), reminder_hour, list(escalation.overdue), escalation.late_days,
                __version__, zone_data_version()]  # fmt: skip
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:32]


def plan_part(
    session: Session, scope: Scope, before: datetime, now: datetime, horizon: timedelta, reminder_hour: int,
    escalation: Escalation,
) -> Replan | None:  # fmt: skip
    milestone_problems: Problems = {}
    views = screen_views(load_views(session), milestone_problems)
    probe = probe_reader(views, chosen_offsets(session))
    timely = coming_in(views, probe, before=before, now=now, horizon=horizon, reminder_hour=reminder_hour,
                       escalation=escalation)  # fmt: skip
    part = Part(scope, views, *timely)
    results = []
    if not part.empty:
        results.append(plan_milestones(session, part, views, milestone_problems, now, horizon, reminder_hour,
                                       escalation))  # fmt: skip
    if scope.subscribers:
        results.append(plan_subscribers(session, scope.subscribers, views, now, horizon, reminder_hour, escalation))
    digests = plan_new_digests(session, before, now, horizon, reminder_hour)
    if not results and not digests:
        return None
    return Replan(added=sum(r.added for r in results) + digests, moved=sum(r.moved for r in results),
                  revived=sum(r.revived for r in results), cancelled=sum(r.cancelled for r in results))  # fmt: skip


class Part:
    """The milestones to re-plan: their reminders (and those waiting for them), their timelines' late notices."""

    def __init__(
        self, scope: Scope, views: list[MilestoneView], reminders: set[Pair], late: set[Pair]
    ) -> None:  # fmt: skip
        whole = {(v.timeline_id, v.key) for v in views if v.timeline_id in scope.timelines}
        changed = scope.milestones | whole
        self.timelines = linked_timelines({tl for tl, _ in changed} | scope.timelines, views)
        self.reminders = waiting_on(changed, views) | reminders  # removed ones too: their rows are cancelled
        self.late = {(v.timeline_id, v.key) for v in views if v.timeline_id in self.timelines} | changed | late
        self.whole_timelines = scope.timelines  # rows found by timeline: a removed timeline's too

    @property
    def empty(self) -> bool:
        return not (self.reminders or self.late or self.whole_timelines)


def plan_milestones(
    session: Session, part: Part, views: list[MilestoneView], milestone_problems: Problems, now: datetime,
    horizon: timedelta, reminder_hour: int, escalation: Escalation,
) -> Replan:  # fmt: skip
    """Re-plan the rows of *part*'s milestones, for every subscriber."""
    subscriber_problems: Problems = {}
    readers = load_readers(session, subscriber_problems)
    reminders = part.reminders | {(v.timeline_id, v.key) for v in views if v.timeline_id in part.whole_timelines}
    problems = milestone_problems  # the planning of these milestones adds what it cannot plan
    wanted = plan_each(views, readers, ("reminders",), now, horizon, reminder_hour, escalation, problems,
                       only=reminders)  # fmt: skip
    wanted += plan_each(views, readers, ("late",), now, horizon, reminder_hour, escalation, problems, only=part.late)
    # Every subscriber was read, but of the milestones only these were planned: only their entries may go.
    looked_at = {f"{tl}/{key}" for tl, key in reminders | part.late}
    found = {("milestone", key): reason for key, reason in milestone_problems.items()}
    found |= {("subscriber", key): reason for key, reason in subscriber_problems.items()}
    keep_quarantine(session, found, now, lambda entry: entry[0] == "subscriber" or entry[1] in looked_at)
    rows = rows_of_milestones(session, reminders, ("reminder",), now)
    rows |= rows_of_milestones(session, part.late, LATE_KINDS, now)
    rows |= rows_of_timelines(session, part.whole_timelines, now)
    context = Context(views, readers, milestone_problems, subscriber_problems)
    return reconcile(session, wanted, list(rows.values()), context, now)


def plan_subscribers(
    session: Session, ids: set[int], views: list[MilestoneView], now: datetime, horizon: timedelta,
    reminder_hour: int, escalation: Escalation,
) -> Replan:  # fmt: skip
    """Re-plan every row of these subscribers (new, changed, gone)."""
    problems: Problems = {}
    readers = load_readers(session, problems, ids=ids)
    wanted = plan_each(views, readers, ("reminders", "late"), now, horizon, reminder_hour, escalation, {})
    wanted += plan_digests(readers, now=now, horizon=horizon, reminder_hour=reminder_hour)
    mine = {str(id_) for id_ in ids}
    found = {("subscriber", key): reason for key, reason in problems.items()}
    keep_quarantine(session, found, now, lambda entry: entry[0] == "subscriber" and entry[1] in mine)
    context = Context(views, readers, None, problems)
    return reconcile(session, wanted, rows_of_subscribers(session, ids, now), context, now)


def plan_new_digests(session: Session, before: datetime, now: datetime, horizon: timedelta, reminder_hour: int) -> int:
    """Plan the digests of a week that began since *before*, in the zones where it did."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    weekly = (table.c.state == "confirmed") & (table.c.digest == "weekly")
    zones = [zone for (zone,) in session.execute(select(table.c.timezone).where(weekly).distinct())]
    new = digest_zones(zones, before=before, now=now, horizon=horizon, reminder_hour=reminder_hour)
    if not new:
        return 0
    readers = [r for r in load_readers(session, weekly=True) if r.timezone in new]
    wanted = plan_digests(readers, now=now, horizon=horizon, reminder_hour=reminder_hour)
    # A digest's key names its week: a row there already is this week's, left as it is.
    return insert_new(session, [new_row(item, now, slot=item.slot, revision=None) for item in wanted])


def chosen_offsets(session: Session) -> list[list[str]]:
    """The reminder offsets subscribers and channels chose, each choice once (a few for thousands of subscribers)."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    found = list(session.execute(
        select(cast(table.c.reminders, String)).where(table.c.state == "confirmed", table.c.reminders.is_not(None))
        .distinct()
    ))  # fmt: skip
    channels = Channel.__table__  # type: ignore[attr-defined]
    found += session.execute(
        select(cast(channels.c.reminders, String)).where(channels.c.state == "active",
                                                         channels.c.reminders.is_not(None)).distinct()
    )  # fmt: skip
    chosen = []
    for (text,) in found:
        try:
            value: Any = json.loads(text) if text else None
        except ValueError:  # unreadable: that subscriber is quarantined, planned nothing
            continue
        if isinstance(value, list):
            chosen.append([item for item in value if isinstance(item, str)])
    return chosen


def replannable(now: datetime) -> Any:
    table = Delivery.__table__  # type: ignore[attr-defined]
    return select(*(table.c[name] for name in REPLANNABLE_COLUMNS)).where(
        table.c.state.in_(PENDING) | (table.c.deadline_at > now)
    )


def rows_of_milestones(
    session: Session, pairs: Iterable[Pair], kinds: Collection[str], now: datetime
) -> dict[int, Row[Any]]:
    """The replannable rows of *kinds* of these milestones, one query each through ix_deliveries_milestone."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    found: dict[int, Row[Any]] = {}
    for timeline_id, key in sorted(pairs):
        statement = replannable(now).where(table.c.timeline_id == timeline_id, table.c.milestone_key == key,
                                           table.c.kind.in_(kinds))  # fmt: skip
        found.update((row.id, row) for row in session.execute(statement))
    return found


def rows_of_timelines(session: Session, timelines: Iterable[str], now: datetime) -> dict[int, Row[Any]]:
    """Every replannable row of these timelines' milestones (those removed with the timeline too)."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    found: dict[int, Row[Any]] = {}
    for timeline_id in sorted(timelines):
        statement = replannable(now).where(table.c.timeline_id == timeline_id,
                                           table.c.kind.in_(("reminder", *LATE_KINDS)))  # fmt: skip
        found.update((row.id, row) for row in session.execute(statement))
    return found


def rows_of_subscribers(session: Session, ids: Collection[int], now: datetime) -> list[Row[Any]]:
    """Every replannable row of these subscribers, through the unique key (it begins with the subscriber)."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    kinds = ("reminder", "digest", *LATE_KINDS)
    ordered = sorted(ids)
    rows: list[Row[Any]] = []
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        statement = replannable(now).where(table.c.subscriber_id.in_(chunk), table.c.kind.in_(kinds))
        rows += session.execute(statement).all()
    return rows
