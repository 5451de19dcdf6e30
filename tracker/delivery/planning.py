"""Who is sent what, when: reminders and digests planned from milestone views and readers.

Pure: no store, no clock; callers pass the views, the readers and `now`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from tracker.subscribers.readers import Reader
from tracker.text import describe_error
from tracker.timelines.dates import Offset, get_zone, local_to_utc, parse_offset
from tracker.timelines.triggers import fire_at, reminder_trigger
from tracker.timelines.views import UNREADABLE, MilestoneView, Occurrence, Problems, expand, follows, reference

Key = tuple[int, str, str, str, str, str]  # a DeliveryKey's fields, in order


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


def reminder_at(item: Occurrence, offset: Offset, reminder_hour: int) -> datetime:
    """When the reminder *offset* before *item* goes out: the instant its calendar alarm fires.

    Both come from one rule (tracker/timelines/triggers.py): day offsets at the reminder hour,
    local time of the timeline, N calendar days before (so 09:00 stays 09:00 across DST), or
    at the item's own time of day if that is earlier; hour and minute offsets exact.
    """
    return fire_at(item, reminder_trigger(item.milestone, offset, reminder_hour))


def route(views: Iterable[MilestoneView], readers: Sequence[Reader]) -> dict[tuple[str, str], list[Reader]]:
    """Return, for each milestone, the readers it concerns (readers with equal choices share the work)."""
    groups: dict[tuple[tuple[str, ...] | None, tuple[str, ...]], list[Reader]] = {}
    for reader in readers:
        groups.setdefault((reader.timelines, reader.audiences), []).append(reader)
    routes: dict[tuple[str, str], list[Reader]] = {}
    for view in views:
        found = routes.setdefault((view.timeline_id, view.key), [])
        for (timelines, audiences), members in groups.items():
            if follows(view, timelines, audiences):
                found.extend(members)
    return routes


def plan_reminders(
    views: Iterable[MilestoneView],
    readers: Sequence[Reader],
    *,
    now: datetime,
    horizon: timedelta,
    reminder_hour: int,
    set_aside: Problems | None = None,
) -> list[Wanted]:
    """Reminders whose time is before *now + horizon* and whose deadline is still ahead.

    Reminders already due are included: after downtime the dispatcher sends the latest
    of them and skips the rest. Done occurrences need no reminder. Given *set_aside*, a
    milestone that cannot be planned is left out and recorded there; without, it raises.
    """
    active = [view for view in views if view.status == "active"]
    routes = route(active, readers)
    wanted: list[Wanted] = []
    until = now + horizon
    for view in active:
        members = routes[(view.timeline_id, view.key)]
        if not members:
            continue
        try:
            wanted.extend(plan_milestone(view, members, now=now, until=until, reminder_hour=reminder_hour))
        except UNREADABLE as exc:  # one milestone that cannot be planned must not stop everyone's reminders
            if set_aside is None:
                raise
            set_aside[reference(view)] = describe_error(exc)
    return wanted


def plan_milestone(
    view: MilestoneView, members: Sequence[Reader], *, now: datetime, until: datetime, reminder_hour: int
) -> list[Wanted]:
    """The reminders of one milestone to the *members* it concerns."""
    longest = max((parse_offset(o).exact() for o in offsets_in_use(view, members)), default=timedelta(0))
    wanted = []
    for item in expand(view, now, until + longest + timedelta(days=1)):
        if item.at <= now or item.done_at is not None:
            continue
        wanted.extend(reminders_of(item, members, until, reminder_hour))
    return wanted


def offsets_in_use(view: MilestoneView, readers: Iterable[Reader]) -> set[str]:
    found = set(view.reminders)
    for reader in readers:
        found.update(reader.reminders or ())
    return found


def reminders_of(item: Occurrence, readers: Iterable[Reader], until: datetime, reminder_hour: int) -> list[Wanted]:
    view = item.milestone
    times: dict[str, datetime] = {}  # many readers share an offset: compute each time once
    found = []
    for reader in readers:
        for offset in view.reminders if reader.reminders is None else reader.reminders:
            if offset not in times:
                times[offset] = reminder_at(item, parse_offset(offset), reminder_hour)
            send_at = times[offset]
            if send_at <= until:
                found.append(
                    Wanted(reader.id, view.timeline_id, view.key, item.occurrence, "reminder", offset, send_at, item.at)
                )
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
