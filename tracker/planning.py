"""What is due when: pure functions over milestones, with `now` passed in.

No store, no clock, no I/O here; callers load the views and pass the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache

from dateutil.rrule import rrulestr

from tracker.dates import END_OF_DAY, DateError, Offset, get_zone, local_to_utc, parse_offset, parse_reminder

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
    if not (milestone.all_day and milestone.due_at is not None):
        return between(rrulestr(milestone.repeat, dtstart=first), lower, upper)
    # An all-day deadline repeats on dates: expanding from midnight lets UNTIL=<date> include
    # its own day, as RFC 5545 (and so every calendar showing the feed) reads it.
    rule = rrulestr(milestone.repeat, dtstart=datetime.combine(first.date(), time(0, 0)))
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


@dataclass(frozen=True)
class Reader:
    """A confirmed subscriber, as planning needs them."""

    id: int
    audiences: tuple[str, ...]
    timelines: tuple[str, ...] | None  # None: every timeline
    reminders: tuple[str, ...] | None  # None: each milestone's own offsets
    timezone: str = "UTC"
    digest: str = "off"


@dataclass(frozen=True)
class Wanted:
    """A message that should exist in the outbox; the first six fields are its unique key."""

    subscriber_id: int
    timeline_id: str
    milestone_key: str
    occurrence: str
    kind: str
    slot: str
    send_at: datetime
    deadline_at: datetime | None

    @property
    def key(self) -> tuple[int, str, str, str, str, str]:
        return (self.subscriber_id, self.timeline_id, self.milestone_key, self.occurrence, self.kind, self.slot)


def reminder_at(item: Occurrence, offset: Offset, reminder_hour: int) -> datetime:
    """When the reminder *offset* before *item* goes out; the same instant as the feed's alarm.

    Day offsets go out at the reminder hour, local time of the timeline, N calendar days
    before (so across a DST change 09:00 stays 09:00); hour and minute offsets are exact,
    counted from the end of an all-day deadline's day and from the start of anything else.
    """
    view, zone = item.milestone, item.milestone.zone
    local = item.at.astimezone(get_zone(zone))
    if offset.is_calendar:
        return local_to_utc(local.date() - timedelta(days=offset.days), time(reminder_hour), zone)
    edge = item.at
    if view.all_day and item.due_at is not None:
        edge = local_to_utc(local.date() + timedelta(days=1), time(0), zone)
    elif view.all_day:
        edge = local_to_utc(local.date(), time(0), zone)
    return edge - timedelta(minutes=offset.minutes)


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


# --- stored values that do not read: set aside with the reason, the rest goes on ---------------

MAX_REASON = 300  # characters of a reason kept: an exception's text can quote a whole value


def reference(view: MilestoneView) -> str:
    return f"{view.timeline_id}/{view.key}"


def describe_error(exc: BaseException) -> str:
    """What went wrong, as describe_text makes it."""
    return describe_text(f"{type(exc).__name__}: {exc}")


def readable_offsets(stored: object) -> tuple[tuple[str, ...], str]:
    """The reminder offsets of a stored list that read back within bounds, and what was wrong ('' if nothing)."""
    if not isinstance(stored, list | tuple) or not all(isinstance(o, str) for o in stored):
        return (), describe_value("reminders", stored, "is not a list of offsets")
    return read_offsets(tuple(stored))


@lru_cache(maxsize=4096)  # thousands of subscribers share a few lists of offsets
def read_offsets(stored: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    kept, wrong = [], []
    for offset in stored:
        try:
            parse_reminder(offset)
        except DateError:
            wrong.append(offset)
        else:
            kept.append(offset)
    if not wrong:
        return tuple(kept), ""
    return tuple(kept), describe_value("reminders", wrong, "cannot be used (from 1h to 366d)")


def describe_value(field: str, value: object, problem: str) -> str:
    text = f"{field} {value!r}"
    text = text if len(text) <= 100 else text[:99] + "…"
    return describe_text(f"{text} {problem}")


def describe_text(text: str) -> str:
    """One bounded printable line, safe for a log line, a stored row and a terminal."""
    text = "".join(c if c.isprintable() else "?" for c in " ".join(text.split()))
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def view_problem(view: MilestoneView) -> str | None:
    """Return why a stored milestone cannot be planned or shown at all, or None when it can."""
    if view.due_at is None and view.starts_at is None:
        return "it has no date"
    try:
        get_zone(view.zone)
    except DateError as exc:
        return describe_text(str(exc))
    if view.repeat is not None:
        return repeat_problem(view.repeat)
    return None


def screen_views(views: Iterable[MilestoneView], set_aside: Problems | None = None) -> list[MilestoneView]:
    """The views every part of Tracker can use: unreadable ones left out, unreadable offsets dropped.

    *set_aside* learns what was left out or changed, and why.
    """
    usable = []
    for view in views:
        problem = view_problem(view)
        if problem is None:
            offsets, wrong = readable_offsets(list(view.reminders))
            usable.append(replace(view, reminders=offsets) if wrong else view)
            problem = wrong and f"{wrong}: left out"
        if problem and set_aside is not None:
            set_aside[reference(view)] = problem
    return usable


@lru_cache(maxsize=512)
def readable_zone(name: str) -> str:
    """*name* if it is a zone this machine knows, else UTC: a message in UTC is better than none."""
    try:
        get_zone(name)
    except DateError:
        return "UTC"
    return name


def read_names(stored: object) -> tuple[str, ...] | None:
    """A stored list of names (audiences, timelines; None: every one); raise ValueError if it is not one."""
    if stored is None:
        return None
    if not isinstance(stored, list | tuple) or not all(isinstance(name, str) for name in stored):
        raise ValueError(describe_value("", stored, "is not a list of names").strip())
    return tuple(stored)


def read_reader(
    id_: int, audiences: object, timelines: object, reminders: object, timezone: object, digest: object
) -> tuple[Reader | None, str]:
    """A stored subscriber as planning needs them, and what in it did not read ('' if nothing).

    Unreadable offsets are left out (all of them: the milestones' own are used); an unreadable
    zone becomes UTC. Unreadable audiences or timelines leave no reader: nobody can tell what
    they asked to follow, and guessing could send mail they never wanted.
    """
    try:
        followed = read_names(audiences) or (), read_names(timelines)
    except ValueError as exc:
        return None, describe_text(f"audiences or timelines: {exc}")
    problems = []
    offsets: tuple[str, ...] | None = None
    if reminders is not None:
        offsets, wrong = readable_offsets(reminders)
        if wrong and not offsets:  # none left: the milestones' own, not a silence nobody chose
            offsets, wrong = None, f"{wrong}: the milestones' own offsets are used instead"
        elif wrong:
            wrong = f"{wrong}: left out"
        if wrong:
            problems.append(wrong)
    zone = timezone if isinstance(timezone, str) else "UTC"
    try:
        get_zone(zone)
    except DateError as exc:
        problems.append(str(exc))
        zone = "UTC"
    reader = Reader(id_, followed[0], followed[1], offsets, zone, digest if isinstance(digest, str) else "off")
    return reader, describe_text("; ".join(problems))
