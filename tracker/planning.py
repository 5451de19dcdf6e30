"""What is due when: pure functions over milestones, with `now` passed in.

No store, no clock, no I/O here; callers load the views and pass the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from dateutil.rrule import rrulestr

from tracker.dates import END_OF_DAY, get_zone


@dataclass(frozen=True)
class CompletionView:
    done_at: datetime
    note: str = ""
    link: str = ""


@dataclass(frozen=True)
class MilestoneView:
    """A stored milestone with what planning, feeds and pages need of it and its timeline."""

    timeline_id: str
    timeline_title: str
    key: str
    title: str
    kind: str  # deadline | span
    all_day: bool
    zone: str
    owner: str | None = None
    due_at: datetime | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    repeat: str | None = None
    status: str = "active"
    audiences: tuple[str, ...] = ()
    location: str = ""
    reminders: tuple[str, ...] = ()
    completions: Mapping[str, CompletionView] = field(default_factory=dict)  # by occurrence, "" if single
    summary: str = ""
    url: str = ""
    revision: int = 0
    updated_at: datetime | None = None
    timeline_kind: str = "other"
    timeline_summary: str = ""
    timeline_source: str = ""
    timeline_url: str = ""
    opens_after: str | None = None

    @property
    def main_at(self) -> datetime:
        at = self.due_at or self.starts_at
        assert at is not None
        return at


@dataclass(frozen=True)
class Occurrence:
    """One dated instance of a milestone (the only one unless it repeats)."""

    milestone: MilestoneView
    occurrence: str  # '' or the local date of this occurrence
    due_at: datetime | None
    starts_at: datetime | None
    ends_at: datetime | None

    @property
    def at(self) -> datetime:
        at = self.due_at or self.starts_at
        assert at is not None
        return at

    @property
    def done_at(self) -> datetime | None:
        completion = self.milestone.completions.get(self.occurrence)
        return completion.done_at if completion else None


def concerns(milestone: MilestoneView, audience: str) -> bool:
    """Whether *audience* must act on, or attend, *milestone*."""
    if milestone.owner is not None:
        return milestone.owner == audience
    return not milestone.audiences or audience in milestone.audiences


def follows(milestone: MilestoneView, timelines: Sequence[str] | None, audiences: Sequence[str]) -> bool:
    """Whether a subscriber following *timelines* (None: all) as *audiences* is concerned by *milestone*."""
    if timelines is not None and milestone.timeline_id not in timelines:
        return False
    return any(concerns(milestone, audience) for audience in audiences)


def expand(milestone: MilestoneView, start_at: datetime, end_at: datetime) -> list[Occurrence]:
    """Return the occurrences whose time (or span) meets [start_at, end_at]."""
    if milestone.repeat is None:
        single = Occurrence(milestone, "", milestone.due_at, milestone.starts_at, milestone.ends_at)
        return [single] if overlaps(single, start_at, end_at) else []
    zone = get_zone(milestone.zone)
    length = span_length(milestone)
    lower = (start_at.astimezone(zone) - length).replace(tzinfo=None)
    upper = (end_at.astimezone(zone) + timedelta(days=1)).replace(tzinfo=None)
    found = []
    # Occurrences repeat the local wall-clock time, so 09:00 stays 09:00 across DST.
    for local in local_occurrences(milestone, lower, upper):
        at = local.replace(tzinfo=zone).astimezone(UTC)
        if milestone.due_at is not None:
            item = Occurrence(milestone, local.date().isoformat(), at, None, None)
        else:
            ends = (local + length).replace(tzinfo=zone).astimezone(UTC)
            item = Occurrence(milestone, local.date().isoformat(), None, at, ends)
        if overlaps(item, start_at, end_at):
            found.append(item)
    return found


def local_occurrences(milestone: MilestoneView, lower: datetime, upper: datetime) -> list[datetime]:
    """Naive local times of the occurrences starting between *lower* and *upper*."""
    assert milestone.repeat is not None
    first = milestone.main_at.astimezone(get_zone(milestone.zone)).replace(tzinfo=None)
    if not (milestone.all_day and milestone.due_at is not None):
        return list(rrulestr(milestone.repeat, dtstart=first).between(lower, upper, inc=True))
    # An all-day deadline repeats on dates: expanding from midnight lets UNTIL=<date> include
    # its own day, as RFC 5545 (and so every calendar showing the feed) reads it.
    rule = rrulestr(milestone.repeat, dtstart=datetime.combine(first.date(), time(0, 0)))
    return [datetime.combine(day.date(), END_OF_DAY) for day in rule.between(lower, upper, inc=True)]


def span_length(milestone: MilestoneView) -> timedelta:
    """Local wall-clock length of a span (zero for deadlines)."""
    if milestone.starts_at is None or milestone.ends_at is None:
        return timedelta(0)
    zone = get_zone(milestone.zone)
    return milestone.ends_at.astimezone(zone).replace(tzinfo=None) - milestone.starts_at.astimezone(zone).replace(
        tzinfo=None
    )


def overlaps(item: Occurrence, start_at: datetime, end_at: datetime) -> bool:
    if item.due_at is not None:
        return start_at <= item.due_at <= end_at
    assert item.starts_at is not None and item.ends_at is not None
    return item.starts_at <= end_at and item.ends_at >= start_at


def list_upcoming(
    milestones: Iterable[MilestoneView],
    *,
    now: datetime,
    window: timedelta,
    timeline: str | None = None,
    audience: str | None = None,
) -> list[Occurrence]:
    """Occurrences due (or under way) between *now* and *now + window*, earliest first."""
    found: list[Occurrence] = []
    for milestone in milestones:
        if milestone.status != "active":
            continue
        if timeline is not None and milestone.timeline_id != timeline:
            continue
        if audience is not None and not concerns(milestone, audience):
            continue
        found.extend(expand(milestone, now, now + window))
    return sorted(found, key=lambda o: (o.at, o.milestone.timeline_id, o.milestone.key))


def nearest_occurrence(milestone: MilestoneView, at: datetime) -> str:
    """Return the occurrence key closest to *at* (where a completion at *at* belongs)."""
    if milestone.repeat is None:
        return ""
    year = timedelta(days=400)
    candidates = expand(milestone, at - year, at + year) or expand(milestone, milestone.main_at, milestone.main_at)
    if not candidates:
        return ""
    return min(candidates, key=lambda o: abs(o.at - at)).occurrence
