"""When a reminder fires: one rule for the reminder email and the calendar alarm (docs/architecture.md §5).

An alarm's TRIGGER is relative to its item's start, and calendars add it on the wall clock
(libical, ical.js and Python all do) while RFC 5545 counts its hours as elapsed time. The two
readings agree as long as the elapsed part never spans a change of the clocks, so a day offset
is nominal days plus, at most, the daytime hours between the reminder hour and the item's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from tracker.timelines.dates import Offset, get_zone, local_to_utc
from tracker.timelines.views import MilestoneView, Occurrence


@dataclass(frozen=True)
class Trigger:
    """A reminder's time from its item's start: *days* nominal days, then *exact* elapsed time.

    An all-day item starts on a date with no zone (it floats), so its whole trigger counts on the
    local clock: `floating`. Otherwise both parts have one sign, as an RFC 5545 duration must.
    """

    days: int
    exact: timedelta
    floating: bool = False


def reminder_trigger(view: MilestoneView, offset: Offset, reminder_hour: int) -> Trigger:
    """Return when the reminder *offset* before *view* fires, relative to the start of each of its occurrences.

    Day offsets go at the reminder hour N days before, or at the item's own time of day when
    that is earlier. Hour and minute offsets are exact, counted from the end of an all-day
    deadline's day and from the start of anything else.
    """
    if view.all_day:
        if offset.is_calendar:
            return Trigger(-offset.days, timedelta(hours=reminder_hour), floating=True)
        edge = 1 if view.kind == "deadline" else 0
        return Trigger(edge, -timedelta(minutes=offset.minutes), floating=True)
    if not offset.is_calendar:
        return Trigger(0, -timedelta(minutes=offset.minutes))
    clock = view.main_at.astimezone(get_zone(view.zone))
    after_hour = clock - clock.replace(hour=reminder_hour, minute=0, second=0, microsecond=0)
    return Trigger(-offset.days, -max(after_hour, timedelta(0)))


def fire_at(item: Occurrence, trigger: Trigger) -> datetime:
    """Return the UTC instant *trigger* fires for *item*, as RFC 5545 computes it from the item's start."""
    view = item.milestone
    zone = get_zone(view.zone)
    day = item.at.astimezone(zone).date()
    if trigger.floating:
        fired = datetime.combine(day, time(0)) + timedelta(days=trigger.days) + trigger.exact
        return local_to_utc(fired.date(), fired.time(), view.zone)
    # The series' time of day, as DTSTART writes it: an occurrence pushed out of a skipped hour keeps it.
    clock = view.main_at.astimezone(zone).time()
    return (local_to_utc(day + timedelta(days=trigger.days), clock, view.zone) + trigger.exact).astimezone(UTC)
