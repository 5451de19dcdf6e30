"""Milestones as every reader gets them from the store, and their occurrences in time.

Pure: no store, no clock, no I/O here; callers load the views and pass the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from dateutil.rrule import rrulestr

from tracker.text import describe_error
from tracker.timelines.dates import END_OF_DAY, Offset, get_zone, local_to_utc

Problems = dict[str, str]  # what was set aside ("timeline/milestone", or a subscriber id) → why
# What a stored value no part of Tracker can read makes date code raise (out of range, a rule
# dateutil refuses, a hand-edited JSON of the wrong shape, a milestone without a date).
UNREADABLE = (ValueError, ArithmeticError, TypeError, LookupError, AssertionError)


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
    overdue: tuple[str, ...] | None = None  # escalation offsets if late; None: TRACKER_OVERDUE, (): never chased
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
    titles: Mapping[str, str] = field(default_factory=dict)  # translations of `title` by language code
    timeline_titles: Mapping[str, str] = field(default_factory=dict)  # translations of `timeline_title`
    due_expr: str | None = None  # the expression the due date came from, e.g. "meeting - 30d"
    rolled_from: date | None = None  # the date as written, when `roll` moved it off a non-working day

    @property
    def main_at(self) -> datetime:
        at = self.due_at or self.starts_at
        assert at is not None
        return at


def title_in(view: MilestoneView, language: str) -> str:
    """Return the milestone's title in *language* ('fr'), the English one where it has no translation."""
    return view.titles.get(language) or view.title


def timeline_title_in(view: MilestoneView, language: str) -> str:
    """Return the timeline's title in *language* ('fr'), the English one where it has no translation."""
    return view.timeline_titles.get(language) or view.timeline_title


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
    problem = repeat_problem(milestone.repeat)
    if problem is not None:
        raise RepeatError(problem)
    first = milestone.main_at.astimezone(get_zone(milestone.zone)).replace(tzinfo=None)
    text = explicit_rule(milestone.repeat, first.date())  # the rule the feeds carry, to the letter
    if not (milestone.all_day and milestone.due_at is not None):
        return between(rrulestr(text, dtstart=first), lower, upper)
    # An all-day deadline repeats on dates: expanding from midnight lets UNTIL=<date> include
    # its own day, as RFC 5545 (and so every calendar showing the feed) reads it.
    rule = rrulestr(text, dtstart=datetime.combine(first.date(), time(0, 0)))
    # A day that started before *lower* still ends after it: look from the day's start.
    since = datetime.combine(lower.date(), time(0, 0))
    return [datetime.combine(day.date(), END_OF_DAY) for day in between(rule, since, upper)]


# --- repeating rules as stored: read within bounds, whatever an older version let through ---------

# dateutil walks a rule from its first occurrence, so a rule denser than daily (or with
# INTERVAL=0, on which it never advances) holds a core for good. Within these bounds a daily
# rule reaches more than a century past its start; validation allows far less (issue 13).
REPEAT_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
REPEAT_STEPS = 40_000  # occurrences walked by one expansion at most
_RFC_INTEGER = 2**31 - 1  # RFC 5545 integers: larger ones no calendar reads (icalendar refuses them)


class RepeatError(ValueError):
    """A stored repeating rule that cannot be expanded within bounds."""


@lru_cache(maxsize=1024)
def repeat_problem(text: str) -> str | None:
    """Return why a stored RRULE cannot be expanded within bounds, or None when it can."""
    parts = {}
    for part in text.strip().upper().removeprefix("RRULE:").split(";"):
        name, _, value = part.partition("=")
        parts[name.strip()] = value.strip()
    if parts.get("FREQ") not in REPEAT_FREQUENCIES:
        return f"repeat {text[:80]!r}: FREQ must be one of {', '.join(REPEAT_FREQUENCIES)}"
    for name in ("INTERVAL", "COUNT"):
        value = parts.get(name, "1")
        if not value.isdigit() or not 1 <= int(value) <= _RFC_INTEGER:
            return f"repeat {text[:80]!r}: {name} must be a whole number from 1 to {_RFC_INTEGER}"
    try:
        rrulestr(text, dtstart=datetime(2000, 1, 1))
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        return f"repeat {text[:80]!r}: {exc}"
    return None


DAY_PARTS = ("BYMONTHDAY", "BYDAY", "BYYEARDAY", "BYWEEKNO")  # a rule with none takes its day from DTSTART


@lru_cache(maxsize=1024)
def explicit_rule(text: str, first: date) -> str:
    """Return a monthly or yearly rule with the day (and a yearly one's month) of *first* written in.

    RFC 5545 takes them from DTSTART when a rule leaves them out, and calendars disagree where
    that day is missing: from 29 February ical.js (Thunderbird) goes on 1 March where libical
    (Evolution) skips the year (issue 16 saw node-ical take 28 February). Written out, every
    calendar skips such a month, as RFC 5545 (and dateutil, for `tracker upcoming`) reads it;
    elsewhere the dates do not change.
    """
    parts = [part.strip() for part in text.strip().removeprefix("RRULE:").split(";") if part.strip()]
    names = {part.partition("=")[0].strip().upper(): part.partition("=")[2].strip().upper() for part in parts}
    if names.get("FREQ") not in ("MONTHLY", "YEARLY") or any(name in names for name in DAY_PARTS):
        return text
    month = [f"BYMONTH={first.month}"] if names["FREQ"] == "YEARLY" and "BYMONTH" not in names else []
    return ";".join([*parts, *month, f"BYMONTHDAY={first.day}"])


def between(rule: Iterable[datetime], lower: datetime, upper: datetime) -> list[datetime]:
    """rule.between(lower, upper, inc=True), refusing to walk more than REPEAT_STEPS occurrences."""
    found = []
    for step, at in enumerate(rule):
        if at > upper:
            break
        if step >= REPEAT_STEPS:
            raise RepeatError(f"repeat gives more than {REPEAT_STEPS} occurrences before {upper:%Y-%m-%d}")
        if at >= lower:
            found.append(at)
    return found


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
    set_aside: Problems | None = None,
) -> list[Occurrence]:
    """Occurrences due (or under way) between *now* and *now + window*, earliest first.

    A milestone that cannot be expanded is left out; *set_aside* learns which and why.
    """
    found: list[Occurrence] = []
    for milestone in milestones:
        if milestone.status != "active":
            continue
        if timeline is not None and milestone.timeline_id != timeline:
            continue
        if audience is not None and not concerns(milestone, audience):
            continue
        try:
            found.extend(expand(milestone, now, now + window))
        except UNREADABLE as exc:  # one unreadable milestone is left out, not every other one
            if set_aside is not None:
                set_aside[reference(milestone)] = describe_error(exc)
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


# --- deliveries: who is sent what, when -------------------------------------------------------


# --- stored values that do not read: set aside with the reason, the rest goes on ---------------


def find_occurrence(view: MilestoneView, key: str) -> Occurrence | None:
    """Return the occurrence of *view* whose key (its local date) is *key*."""
    noon = local_to_utc(date.fromisoformat(key), time(12), view.zone)
    window = timedelta(days=2)
    return next((o for o in expand(view, noon - window, noon + window) if o.occurrence == key), None)


def reference(view: MilestoneView) -> str:
    return f"{view.timeline_id}/{view.key}"


def time_left(view: MilestoneView, at: datetime, now: datetime) -> Offset:
    """What is left until *at*, as people count it: whole calendar days in the timeline's zone when
    at least one, else whole hours, else minutes (at least one)."""
    zone = get_zone(view.zone)
    days = (at.astimezone(zone).date() - now.astimezone(zone).date()).days
    if days >= 1:
        return Offset(days=days)
    minutes = max(1, int((at - now).total_seconds() // 60))
    return Offset(minutes=minutes - minutes % 60 if minutes >= 60 else minutes)


def occurrence_of(view: MilestoneView, at: datetime | None) -> Occurrence:
    """Return the occurrence of *view* at *at* (its first when None); spans keep their local length."""
    at = at or view.main_at
    zone = get_zone(view.zone)
    key = at.astimezone(zone).date().isoformat() if view.repeat else ""
    if view.due_at is not None:
        return Occurrence(view, key, at, None, None)
    end = (at.astimezone(zone).replace(tzinfo=None) + span_length(view)).replace(tzinfo=zone)
    return Occurrence(view, key, None, at, end.astimezone(UTC))
