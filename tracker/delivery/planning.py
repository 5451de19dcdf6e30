"""Who is sent what, when: reminders and digests planned from milestone views and readers.

Pure: no store, no clock; callers pass the views, the readers and `now`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from tracker.subscribers.readers import Reader
from tracker.text import describe_error
from tracker.timelines.dates import Offset, get_zone, local_to_utc, parse_offset
from tracker.timelines.states import LATE_DAYS, Process
from tracker.timelines.triggers import fire_at, reminder_trigger
from tracker.timelines.views import (
    UNREADABLE,
    MilestoneView,
    Occurrence,
    Problems,
    expand,
    occurrence_of,
    reference,
)

Key = tuple[int, str, str, str, str, str]  # a DeliveryKey's fields, in order
MilestoneKey = tuple[str, str]  # a milestone's timeline and key


@dataclass(frozen=True)
class DeliveryKey:
    """What makes a message unique in the outbox: one row per key, whichever instance plans it."""

    subscriber_id: int
    timeline_id: str
    milestone_key: str
    occurrence: str
    kind: str
    slot: str

    @property
    def key(self) -> Key:
        return (self.subscriber_id, self.timeline_id, self.milestone_key, self.occurrence, self.kind, self.slot)

    @property
    def key_text(self) -> str:
        """The key as one line of text: the Message-ID is derived from it."""
        about = f"{self.timeline_id}/{self.milestone_key}" if self.timeline_id else "-"
        return f"{self.kind}:{self.subscriber_id}:{about}:{self.occurrence or '-'}:{self.slot}"


@dataclass(frozen=True)
class Wanted(DeliveryKey):
    """A message that should exist in the outbox, and when it goes."""

    send_at: datetime
    deadline_at: datetime | None
    held: str = ""  # why it may not go yet: its window waits for an earlier step (the row is 'held')


def reminder_at(item: Occurrence, offset: Offset, reminder_hour: int) -> datetime:
    """When the reminder *offset* before *item* goes out: the instant its calendar alarm fires.

    Both come from one rule (tracker/timelines/triggers.py): day offsets at the reminder hour,
    local time of the timeline, N calendar days before (so 09:00 stays 09:00 across DST), or
    at the item's own time of day if that is earlier; hour and minute offsets exact.
    """
    return fire_at(item, reminder_trigger(item.milestone, offset, reminder_hour))


Choice = tuple[tuple[str, ...] | None, tuple[str, ...]]  # a reader's timelines and audiences


def route(
    views: Iterable[MilestoneView], readers: Sequence[Reader], followed: Followed | None = None
) -> dict[MilestoneKey, list[Reader]]:
    """Return, for each milestone, the readers it concerns (readers with equal choices share the work);
    *followed* (of these views) keeps what each choice follows from one call to the next."""
    views = list(views)
    followed = followed or Followed(views)
    groups: dict[Choice, list[Reader]] = {}
    for reader in readers:
        groups.setdefault((reader.timelines, reader.audiences), []).append(reader)
    routes: dict[MilestoneKey, list[Reader]] = {(view.timeline_id, view.key): [] for view in views}
    for choice, members in groups.items():
        for key in followed(choice):
            routes[key].extend(members)
    return routes


class Followed:
    """What each choice of timelines and audiences follows of *views*, found through the audiences
    (as `follows` says), each choice once: a thousand choices asked every one of 20,000 milestones."""

    def __init__(self, views: Sequence[MilestoneView]) -> None:
        self.views = views
        self.open: set[int] = set()  # no owner, no audiences: everyone's
        self.by_audience: dict[str, set[int]] = {}
        for n, view in enumerate(views):
            named = [view.owner] if view.owner is not None else view.audiences
            if not named:
                self.open.add(n)
            for audience in named:
                self.by_audience.setdefault(audience, set()).add(n)
        self.found: dict[Choice, list[MilestoneKey]] = {}

    def __call__(self, choice: Choice) -> list[MilestoneKey]:
        if choice not in self.found:
            timelines, audiences = choice
            indexes = self.open.union(*(self.by_audience.get(a, ()) for a in audiences)) if audiences else set()
            views = (self.views[n] for n in sorted(indexes))
            self.found[choice] = [
                (v.timeline_id, v.key) for v in views if timelines is None or v.timeline_id in timelines
            ]
        return self.found[choice]


@dataclass(frozen=True)
class Escalation:
    """What late steps get: `overdue` notices at these offsets after the due day (TRACKER_OVERDUE)."""

    overdue: tuple[str, ...] = ("1d", "3d")
    late_days: int = LATE_DAYS  # TRACKER_LATE_DAYS: a step later than this is missed, no longer chased


def plan_reminders(
    views: Iterable[MilestoneView],
    readers: Sequence[Reader],
    *,
    now: datetime,
    horizon: timedelta,
    reminder_hour: int,
    set_aside: Problems | None = None,
    escalation: Escalation | None = None,
) -> list[Wanted]:
    """Reminders whose time is before *now + horizon* and whose deadline is still ahead.

    Reminders already due are included: after downtime the dispatcher sends the latest
    of them and skips the rest. Done occurrences need no reminder; those of a window still
    waiting for an earlier step are held (docs/architecture.md §6). Given *set_aside*, a
    milestone that cannot be planned is left out and recorded there; without, it raises.
    """
    return plan_each(views, readers, ("reminders",), now, horizon, reminder_hour, escalation, set_aside)


def plan_late(
    views: Iterable[MilestoneView],
    readers: Sequence[Reader],
    *,
    now: datetime,
    horizon: timedelta,
    reminder_hour: int,
    set_aside: Problems | None = None,
    escalation: Escalation | None = None,
) -> list[Wanted]:
    """`overdue` notices of steps not done, `delayed` ones of the windows waiting for them, before *now + horizon*."""
    return plan_each(views, readers, ("late",), now, horizon, reminder_hour, escalation, set_aside)


def plan_each(
    views: Iterable[MilestoneView],
    readers: Sequence[Reader],
    what: Sequence[str],
    now: datetime,
    horizon: timedelta,
    reminder_hour: int,
    escalation: Escalation | None,
    set_aside: Problems | None,
    *,
    only: Collection[tuple[str, str]] | None = None,
    probe: Reader | None = None,
) -> list[Wanted]:
    """What *what* ('reminders', 'late') of the milestones (*only* these, if given) send to *readers*;
    given a *probe*, to it alone, whoever the milestone concerns (ahead.py)."""
    planner = Planner(views, what, now, horizon, reminder_hour, escalation, only=only)
    return planner.plan(readers, set_aside, probe=probe)


class Planner:
    """What *what* of the milestones (*only* these, if given) send, for one pass: the process is read
    once and each batch of readers planned with it (outbox.replan plans a batch of subscribers at a time)."""

    def __init__(
        self,
        views: Iterable[MilestoneView],
        what: Sequence[str],
        now: datetime,
        horizon: timedelta,
        reminder_hour: int,
        escalation: Escalation | None,
        *,
        only: Collection[tuple[str, str]] | None = None,
    ) -> None:
        escalation = escalation or Escalation()
        active = [view for view in views if view.status == "active"]
        # The process reads every milestone (a step's state depends on the others); *only* are planned.
        self.planned = active if only is None else [view for view in active if (view.timeline_id, view.key) in only]
        process = Process(active, now=now, late_days=escalation.late_days, ahead=horizon)
        self.planning = Planning(process, now + horizon, reminder_hour, escalation.overdue)
        self.what = what
        self.concerning = Followed(self.planned)  # by choice: the same for every batch of readers

    def plan(
        self, readers: Sequence[Reader], set_aside: Problems | None, *, probe: Reader | None = None
    ) -> list[Wanted]:
        """What the milestones send to *readers* (given a *probe*, to it alone); *set_aside* learns what
        cannot be planned (without, it raises)."""
        planned, plan = self.planned, self.planning
        if probe is None:
            routes = route(planned, readers, self.concerning)
        else:
            routes = {(v.timeline_id, v.key): [probe] for v in planned}
        wanted: list[Wanted] = []
        for view in planned:
            members = routes[(view.timeline_id, view.key)]
            if not members:
                continue
            try:
                if "reminders" in self.what:
                    wanted.extend(plan.reminders(view, members))
                if "late" in self.what:
                    wanted.extend(plan.overdue(view, members) + plan.delayed(view, members))
            except UNREADABLE as exc:  # one milestone that cannot be planned must not stop everyone's reminders
                if set_aside is None:
                    raise
                set_aside[reference(view)] = describe_error(exc)
        return wanted


@dataclass(frozen=True)
class Planning:
    """One pass's planning of what milestones send: the process state, the horizon, the hours."""

    process: Process
    until: datetime
    reminder_hour: int
    overdue_offsets: tuple[str, ...]

    def reminders(self, view: MilestoneView, members: Sequence[Reader]) -> list[Wanted]:
        """The reminders of one milestone to the *members* it concerns; held while it waits for its step."""
        now = self.process.now
        longest = max((parse_offset(o).exact() for o in offsets_in_use(view, members)), default=timedelta(0))
        wanted = []
        for item in expand(view, now, self.until + longest + timedelta(days=1)):
            if item.at <= now or item.done_at is not None:
                continue
            held = f"waiting for {view.opens_after}" if self.process.is_waiting(item) else ""
            wanted.extend(reminders_of(item, members, self.until, self.reminder_hour, held))
        return wanted

    def overdue(self, view: MilestoneView, members: Sequence[Reader]) -> list[Wanted]:
        """`overdue` notices of a deadline not done: at the first reminder hour after it, then at each
        escalation offset, until it is missed (a done, moved or cancelled step is re-planned away)."""
        process = self.process
        offsets = view.overdue if view.overdue is not None else self.overdue_offsets  # the file's, else the setting
        if view.due_at is None or not offsets:
            return []  # `overdue: []` or TRACKER_OVERDUE= (empty): late steps are shown, never chased
        wanted = []
        for item in expand(view, process.now - process.late_after, self.until):
            if item.done_at is not None or process.is_waiting(item):
                continue  # a step still waiting for an earlier one is not its owner's delay
            missed_at = process.missed_at(item)
            if missed_at <= process.now:
                continue  # missed already: shown as such, no longer chased
            due_day = local_day(item)  # in the slot: a step moved and late again is chased again
            for offset, send_at in overdue_times(item, offsets, self.reminder_hour):
                slot = f"{offset}@{due_day}"
                if send_at <= self.until and send_at < missed_at:
                    wanted += [Wanted(r.id, view.timeline_id, view.key, item.occurrence, "overdue", slot, send_at,
                                      missed_at) for r in members]  # fmt: skip
        return wanted

    def delayed(self, view: MilestoneView, members: Sequence[Reader]) -> list[Wanted]:
        """One `delayed` notice to a waiting window's audience once the step it waits for is late."""
        step = self.process.step_before(view)
        if step is None or step.due_at is None or step.status != "active" or view.repeat or step.repeat:
            return []  # repeating chains: each occurrence opens on its own; not announced as delayed
        window, late = occurrence_of(view, None), occurrence_of(step, None)
        if not self.process.is_waiting(window):
            return []
        send_at = overdue_times(late, (), self.reminder_hour)[0][1]
        until = min(window.at, self.process.missed_at(late))
        if send_at > self.until or send_at >= until or until <= self.process.now:
            return []
        slot = local_day(late)  # a new due date, a new notice
        return [Wanted(r.id, view.timeline_id, view.key, "", "delayed", slot, send_at, until) for r in members]


def local_day(item: Occurrence) -> str:
    """The local date of *item*, as a slot names the due date it was planned for."""
    return item.at.astimezone(get_zone(item.milestone.zone)).date().isoformat()


def overdue_times(item: Occurrence, offsets: Sequence[str], reminder_hour: int) -> list[tuple[str, datetime]]:
    """When an overdue step is chased: the first reminder hour after it ('due'), then each offset after
    its due day, at the reminder hour (day offsets) or exactly (hours); one instant, one notice."""
    zone = item.milestone.zone
    local = item.at.astimezone(get_zone(zone))
    first = local_to_utc(local.date(), time(reminder_hour), zone)
    if first <= item.at:
        first = local_to_utc(local.date() + timedelta(days=1), time(reminder_hour), zone)
    found = [("due", first)]
    for text in offsets:
        offset = parse_offset(text)
        if offset.is_calendar:
            at = local_to_utc(local.date() + timedelta(days=offset.days), time(reminder_hour), zone)
        else:
            at = item.at + timedelta(minutes=offset.minutes)
        if all(at != seen for _, seen in found) and at > item.at:
            found.append((text, at))
    return found


def offsets_in_use(view: MilestoneView, readers: Iterable[Reader]) -> set[str]:
    found = set(view.reminders)
    for reader in readers:
        found.update(reader.reminders or ())
    return found


def reminders_of(
    item: Occurrence, readers: Iterable[Reader], until: datetime, reminder_hour: int, held: str = ""
) -> list[Wanted]:
    view = item.milestone
    times: dict[str, datetime] = {}  # many readers share an offset: compute each time once
    found = []
    for reader in readers:
        for offset in view.reminders if reader.reminders is None else reader.reminders:
            if offset not in times:
                times[offset] = reminder_at(item, parse_offset(offset), reminder_hour)
            send_at = times[offset]
            if send_at <= until:
                where = (view.timeline_id, view.key, item.occurrence)
                found.append(Wanted(reader.id, *where, "reminder", offset, send_at, item.at, held))
    return found


def plan_digests(readers: Iterable[Reader], *, now: datetime, horizon: timedelta, reminder_hour: int) -> list[Wanted]:
    """This week's (or next week's) Monday digest of each reader who chose one, at their reminder hour."""
    wanted = []
    for reader in readers:
        if reader.digest != "weekly":
            continue
        send_at, monday = next_digest(now, reader.timezone, reminder_hour)
        if send_at <= now + horizon:
            wanted.append(Wanted(reader.id, "", "", "", "digest", monday.isoformat(), send_at, send_at + DIGEST_VALID))
    return wanted


DIGEST_VALID = timedelta(hours=12)  # a digest that could not go out by then waits for next week's


def next_digest(now: datetime, zone: str, reminder_hour: int) -> tuple[datetime, date]:
    """Return the send time and the Monday of the digest still worth sending at *now*."""
    local = now.astimezone(get_zone(zone)).date()
    monday = local - timedelta(days=local.weekday())
    send_at = local_to_utc(monday, time(reminder_hour), zone)
    if send_at + DIGEST_VALID <= now:
        monday += timedelta(days=7)
        send_at = local_to_utc(monday, time(reminder_hour), zone)
    return send_at, monday


def waiting_for(done: MilestoneView, views: Iterable[MilestoneView]) -> list[MilestoneView]:
    """Milestones that open once *done* is completed (their `opens_after` names it)."""
    found = []
    for view in views:
        if view.opens_after is None or view.status != "active":
            continue
        timeline, _, key = view.opens_after.rpartition("/")
        if (timeline or view.timeline_id, key) == (done.timeline_id, done.key):
            found.append(view)
    return found
