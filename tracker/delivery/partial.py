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
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, String, and_, or_
from sqlalchemy import cast as sql_cast
from sqlmodel import Session, select

from tracker import __version__
from tracker.delivery.ahead import coming_in, digest_zones, probe_reader
from tracker.delivery.outbox import (
    BATCH_SUBSCRIBERS,
    EVERYONE,
    PENDING,
    PLANNING,
    REPLANNABLE_COLUMNS,
    Batches,
    Context,
    Replan,
    Span,
    Unchecked,
    channel_rows,
    chosen_offsets,
    insert_new,
    load_readers,
    new_row,
    reconcile,
    replan,
    stored_json,
    subscriber_spans,
    within,
)
from tracker.delivery.planning import Escalation, Followed, Planner, plan_digests, plan_each
from tracker.delivery.scope import Scope, linked_timelines, waiting_on
from tracker.store.models import Cursor, Delivery, Subscriber
from tracker.store.quarantine import keep_quarantine
from tracker.subscribers.readers import Reader, read_reader
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
    result, planned = Replan(), False
    if not part.empty:
        result.add(plan_milestones(session, part, views, milestone_problems, now, horizon, reminder_hour, escalation,
                                   probe))  # fmt: skip
        planned = True
    if scope.subscribers:
        result.add(plan_subscribers(session, scope.subscribers, views, now, horizon, reminder_hour, escalation))
        planned = True
    result.added += plan_new_digests(session, before, now, horizon, reminder_hour)
    return result if planned or result.added else None


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
    horizon: timedelta, reminder_hour: int, escalation: Escalation, probe: Reader,
) -> Replan:  # fmt: skip
    """Re-plan the rows of *part*'s milestones, for every subscriber: a span of subscribers at a time."""
    reminders = part.reminders | {(v.timeline_id, v.key) for v in views if v.timeline_id in part.whole_timelines}
    kinds = kinds_of(session, reminders, part.late, part.whole_timelines)
    problems = milestone_problems  # the planning of these milestones adds what it cannot plan
    planners = [Planner(views, ("reminders",), now, horizon, reminder_hour, escalation, only=reminders),
                Planner(views, ("late",), now, horizon, reminder_hour, escalation, only=part.late)]  # fmt: skip
    unreadable = dict(problems)  # known up front, as outbox.replan does: the same reasons in every batch
    subscriber_problems: Problems = {}
    whole = Context(views, [])
    result, unchecked = Replan(), Unchecked()
    batches = Batches(planners, probe, unreadable)
    ids = concerned(session, [v for v in views if (v.timeline_id, v.key) in kinds], kinds)
    spans = batches(session, subscriber_problems) if ids is None else batches.of(session, ids, subscriber_problems)
    for span, readers in spans:
        wanted = [item for planner in planners for item in planner.plan(readers, problems)]
        context = whole.batch(readers, unreadable | problems, subscriber_problems)
        result.add(reconcile(session, wanted, rows_of_milestones(session, kinds, now, span), context, now, unchecked))
    # Every subscriber was read, but of the milestones only these were planned: only their entries may go.
    looked_at = {f"{tl}/{key}" for tl, key in reminders | part.late}
    entries = {("milestone", key): reason for key, reason in milestone_problems.items()}
    entries |= {("subscriber", key): reason for key, reason in subscriber_problems.items()}
    read = None if ids is None else {str(id_) for id_ in ids}  # the subscribers read: every one, or these

    def releasable(entry: tuple[str, str]) -> bool:
        return entry[1] in looked_at if entry[0] != "subscriber" else read is None or entry[1] in read

    keep_quarantine(session, entries, now, releasable)
    unchecked.mark(session, now)
    return result


def concerned(session: Session, views: list[MilestoneView], kinds: dict[Pair, tuple[str, ...]]) -> set[int] | None:
    """The subscribers and channels whose rows of these milestones (*views*, *kinds*) a re-plan may change:
    those the milestones concern and those with rows of them; None: (nearly) everyone's choices do.

    Found without reading every subscriber: each distinct choice of audiences and timelines is read once
    (a few thousand for 100,000 subscribers), and the subscribers of the choices that follow one of the
    milestones, or whose choice does not read (planning quarantines them), are found by that choice; the
    rows' recipients through ix_deliveries_milestone (timeline, milestone, subscriber), which holds them.
    """
    table = Subscriber.__table__  # type: ignore[attr-defined]
    chosen = (sql_cast(table.c.audiences, String), sql_cast(table.c.timelines, String))
    confirmed = table.c.state == "confirmed"
    choices = list(session.execute(select(*chosen).where(confirmed).distinct()))
    followed = Followed(views)
    matching = []
    for audiences, timelines in choices:
        reader, _ = read_reader(0, stored_json(audiences), stored_json(timelines), None, "UTC", "off")
        if reader is None or followed((reader.timelines, reader.audiences)):
            matching.append((audiences, timelines))
    if len(matching) == len(choices) or len(matching) > MATCHING_CHOICES:
        return None  # every subscriber, a span at a time, as a whole planning reads them
    ids: set[int] = set()
    for start in range(0, len(matching), 100):
        alike = [and_(*(column.is_(None) if text is None else column == text for column, text in zip(chosen, pair,
                                                                                                     strict=True)))
                 for pair in matching[start : start + 100]]  # fmt: skip
        ids.update(session.execute(select(table.c.id).where(confirmed, or_(*alike))).scalars())
    ids.update(recipient for recipient, *_ in channel_rows(session, None))  # a few: every active channel
    rows = Delivery.__table__  # type: ignore[attr-defined]
    for timeline_id, key in sorted(kinds):
        of_milestone = (rows.c.timeline_id == timeline_id) & (rows.c.milestone_key == key)
        ids.update(session.execute(select(rows.c.subscriber_id).where(of_milestone).distinct()).scalars())
    return ids


MATCHING_CHOICES = 500  # distinct choices that follow the milestones: beyond, every subscriber is read


def kinds_of(
    session: Session, reminders: set[Pair], late: set[Pair], timelines: Collection[str]
) -> dict[Pair, tuple[str, ...]]:  # fmt: skip
    """The kinds of rows to re-plan of each milestone: its reminders, its late notices, or both; every
    milestone with rows of the *timelines* (those removed with it too) both."""
    kinds: dict[Pair, tuple[str, ...]] = {}
    for pair in reminders | late:
        kinds[pair] = ("reminder",) * (pair in reminders) + LATE_KINDS * (pair in late)
    table = Delivery.__table__  # type: ignore[attr-defined]
    for timeline_id in sorted(timelines):  # once a pass, through ix_deliveries_milestone
        keys = session.execute(select(table.c.milestone_key).where(table.c.timeline_id == timeline_id).distinct())
        kinds.update(((timeline_id, key), ("reminder", *LATE_KINDS)) for (key,) in keys if key)
    return kinds


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
    added = 0
    for span in subscriber_spans(session, BATCH_SUBSCRIBERS):
        readers = [r for r in load_readers(session, weekly=True, span=span) if r.timezone in new]
        wanted = plan_digests(readers, now=now, horizon=horizon, reminder_hour=reminder_hour)
        # A digest's key names its week: a row there already is this week's, left as it is.
        added += insert_new(session, [new_row(item, now, slot=item.slot, revision=None) for item in wanted])
    return added


def replannable(now: datetime) -> Any:
    table = Delivery.__table__  # type: ignore[attr-defined]
    return select(*(table.c[name] for name in REPLANNABLE_COLUMNS)).where(
        table.c.state.in_(PENDING) | (table.c.deadline_at > now)
    )


def rows_of_milestones(
    session: Session, kinds: dict[Pair, tuple[str, ...]], now: datetime, span: Span = EVERYONE
) -> list[Row[Any]]:  # fmt: skip
    """The replannable rows of these milestones, of their *kinds*, of the subscribers in *span*: one
    query a milestone through ix_deliveries_milestone (timeline, milestone, subscriber)."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    found: list[Row[Any]] = []
    for (timeline_id, key), chosen in sorted(kinds.items()):
        statement = replannable(now).where(table.c.timeline_id == timeline_id, table.c.milestone_key == key,
                                           within(table.c.subscriber_id, span), table.c.kind.in_(chosen))  # fmt: skip
        found += session.execute(statement).all()
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
