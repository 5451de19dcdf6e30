"""Words and dates in the reader's language: Babel formats of days, times and places, item descriptions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from babel.dates import format_date, format_interval, format_skeleton, format_time, get_timezone_location
from babel.lists import format_list

from tracker.i18n.languages import N_, Language
from tracker.links import timeline_page
from tracker.timelines.dates import Offset, get_zone
from tracker.timelines.views import MilestoneView, Occurrence, timeline_title_in, title_in

if TYPE_CHECKING:
    pass


# Audience names that have words in the catalog; other audiences show their id, capitalised.
AUDIENCES = {
    "membership": N_("Membership"),
    "secretariat": N_("Secretariat"),
    "member-states": N_("Member States"),
    "sector-members": N_("Sector Members"),
    "chair": N_("Chair"),
}

# The states of the process model (timelines/states.py), as every surface words them.
STATE_WORDS = {
    "late": N_("late"),
    "due_today": N_("due today"),
    "open": N_("open"),
    "waiting": N_("waiting"),
    "upcoming": N_("upcoming"),
    "missed": N_("missed"),
    "done": N_("done"),
    "cancelled": N_("cancelled"),
}


def state_text(state: str, language: Language) -> str:
    """Return a step's state ('late') in *language*."""
    return language.translations.gettext(STATE_WORDS[state])


@dataclass(frozen=True)
class ItemText:
    """One occurrence as a message shows it, every value already in the reader's words."""

    title: str
    timeline: str
    when: str
    acts: str  # who must act, when the milestone has an owner
    audience: str  # whom it concerns, when it has none
    location: str
    summary: str
    url: str
    page: str
    span: bool
    done: bool
    removed: bool


@dataclass(frozen=True)
class PreviousText:
    title: str
    done_on: str
    note: str
    link: str


@dataclass(frozen=True)
class WeekText:
    heading: str
    entries: tuple[ItemText, ...]


# --- the renderer -------------------------------------------------------------------------


# --- words --------------------------------------------------------------------------------


def describe_item(item: Occurrence, language: Language, reader: str, base_url: str) -> ItemText:
    view = item.milestone
    return ItemText(
        title=title_in(view, language.code),
        timeline=timeline_title_in(view, language.code),
        when=when_text(item, language, reader),
        acts=audience_text(view.owner, language) if view.owner else "",
        audience=audiences_text(view.audiences, language),
        location=view.location,
        summary="\n".join(text for text in (moved_text(view, language), view.summary) if text),
        url=safe_link(view.url),
        page=timeline_page(view, base_url),
        span=item.due_at is None,
        done=item.done_at is not None,
        removed=view.status == "removed",
    )


def describe_previous(view: MilestoneView | None, language: Language) -> PreviousText | None:
    """Return the step whose completion opened this one, with its latest completion's note and link."""
    if view is None:
        return None
    done = max(view.completions.values(), key=lambda c: c.done_at, default=None)
    title = title_in(view, language.code)
    if done is None:
        return PreviousText(title, "", "", "")
    return PreviousText(title, day_text(done.done_at, view.zone, language), done.note, safe_link(done.link))


def moved_text(view: MilestoneView, language: Language) -> str:
    """Return 'Moved from Saturday, 23 August 2025, a non-working day.' when `roll` moved the date, else ''."""
    if view.rolled_from is None:
        return ""
    day = format_date(view.rolled_from, "full", locale=language.locale)
    return language.gettext("Moved from {day}, a non-working day.", day=day)


def safe_link(url: str) -> str:
    """Return *url* if it is a web or mail address: a javascript: or data: link is dropped, not escaped."""
    return url if urlsplit(url.strip()).scheme.lower() in ("http", "https", "mailto") else ""


def audience_text(audience: str, language: Language) -> str:
    msgid = AUDIENCES.get(audience)
    return language.gettext(msgid) if msgid else audience.replace("-", " ").replace("_", " ").capitalize()


def audiences_text(audiences: Sequence[str], language: Language) -> str:
    if not audiences:
        return language.gettext("Everyone")
    return format_list([audience_text(a, language) for a in audiences], locale=language.locale)


def due_text(view: MilestoneView, offset: Offset, language: Language) -> str:
    """Return 'Due in 7 days', 'Starts tomorrow', 'Due in 4 hours'."""
    if view.kind == "span":
        return starts_text(offset, language)
    days, minutes = offset.days, offset.minutes
    if offset.is_calendar and days <= 1:
        return language.gettext("Due tomorrow") if days else language.gettext("Due today")
    if offset.is_calendar:
        return language.ngettext("Due in {num} day", "Due in {num} days", days)
    if minutes % 60 == 0:
        return language.ngettext("Due in {num} hour", "Due in {num} hours", minutes // 60)
    return language.ngettext("Due in {num} minute", "Due in {num} minutes", minutes)


def late_text(view: MilestoneView, due_at: datetime, now: datetime, language: Language) -> str:
    """Return 'Overdue by 3 days' (whole days in the timeline's zone; hours under a day)."""
    zone = get_zone(view.zone)
    days = (now.astimezone(zone).date() - due_at.astimezone(zone).date()).days
    if days >= 1:
        return language.ngettext("Overdue by {num} day", "Overdue by {num} days", days)
    hours = max(1, int((now - due_at).total_seconds() // 3600))
    return language.ngettext("Overdue by {num} hour", "Overdue by {num} hours", hours)


def starts_text(offset: Offset, language: Language) -> str:
    days, minutes = offset.days, offset.minutes
    if offset.is_calendar and days <= 1:
        return language.gettext("Starts tomorrow") if days else language.gettext("Starts today")
    if offset.is_calendar:
        return language.ngettext("Starts in {num} day", "Starts in {num} days", days)
    if minutes % 60 == 0:
        return language.ngettext("Starts in {num} hour", "Starts in {num} hours", minutes // 60)
    return language.ngettext("Starts in {num} minute", "Starts in {num} minutes", minutes)


def group_weeks(items: Sequence[Occurrence], language: Language, reader: str, base_url: str) -> list[WeekText]:
    """Group occurrences by the week of their local date; weeks start on the locale's first day."""
    weeks: dict[date, list[ItemText]] = {}
    first = language.locale.first_week_day
    for item in sorted(items, key=lambda o: (o.at, o.milestone.timeline_id, o.milestone.key)):
        day = item.at.astimezone(get_zone(item.milestone.zone)).date()
        start = day - timedelta(days=(day.weekday() - first) % 7)
        weeks.setdefault(start, []).append(describe_item(item, language, reader, base_url))
    return [WeekText(week_text(start, language), tuple(entries)) for start, entries in weeks.items()]


def week_text(start: date, language: Language) -> str:
    return format_interval(start, start + timedelta(days=6), "yMMMd", locale=language.locale)


# --- the personal feed --------------------------------------------------------------------

# A subscriber's own calendar feed speaks their language too; the public feeds stay English.
FEED_NAME = N_("Tracker: your deadlines")
FEED_DESCRIPTION = N_("The deadlines and meetings you follow.")


# --- dates --------------------------------------------------------------------------------


def when_text(item: Occurrence, language: Language, reader: str) -> str:
    """Return 'Friday, 10 March 2017, end of day, Zurich time (your time: …)' in *language*."""
    view = item.milestone
    if item.due_at is not None:
        return deadline_text(item.due_at, view, language, reader)
    assert item.starts_at is not None
    return span_text(item.starts_at, item.ends_at or item.starts_at, view, language, reader)


def deadline_text(at: datetime, view: MilestoneView, language: Language, reader: str) -> str:
    zone, city = view.zone, city_text(view.zone, language)
    if view.all_day:
        text = language.gettext("{day}, end of day, {city} time", day=day_text(at, zone, language), city=city)
    else:
        day, clock = day_text(at, zone, language), time_text(at, zone, language)
        text = language.gettext("{day}, {time}, {city} time", day=day, time=clock, city=city)
    if same_clock(at, zone, reader):
        return text
    day, clock = day_text(at, reader, language), time_text(at, reader, language)
    return language.gettext("{when} (your time: {day}, {time})", when=text, day=day, time=clock)


def span_text(start: datetime, end: datetime, view: MilestoneView, language: Language, reader: str) -> str:
    """Return the days of an all-day span (the same everywhere), or its times here and the reader's."""
    zone = view.zone
    if view.all_day:
        first, last = (at.astimezone(get_zone(zone)).date() for at in (start, end))
        return format_interval(first, last, "yMMMMEEEEd", locale=language.locale)
    local = clock_range(start, end, zone, language)
    text = language.gettext("{range}, {city} time", range=local, city=city_text(zone, language))
    if same_clock(start, zone, reader):
        return text
    theirs = clock_range(start, end, reader, language)
    return language.gettext("{when} (your time: {range})", when=text, range=theirs)


def clock_range(start: datetime, end: datetime, zone: str, language: Language) -> str:
    first, last = (day_text(at, zone, language) for at in (start, end))
    start_time, end_time = (time_text(at, zone, language) for at in (start, end))
    if first == last:
        return language.gettext("{day}, {start}–{end}", day=first, start=start_time, end=end_time)
    return language.gettext(
        "{first_day}, {first_time} – {last_day}, {last_time}",
        first_day=first,
        first_time=start_time,
        last_day=last,
        last_time=end_time,
    )


def brief_when(item: Occurrence, language: Language, reader: str) -> str:
    """Return 'Fri, 12 Feb 2027' (or '…, 14:00' on the reader's clock): a line of a long list of changes."""
    view, first = item.milestone, item.due_at or item.starts_at
    assert first is not None
    if not view.all_day:
        day = format_skeleton("yMMMEd", first.astimezone(get_zone(reader)), locale=language.locale)
        return language.gettext("{day}, {time}", day=day, time=time_text(first, reader, language))
    last = item.ends_at or first
    days = [at.astimezone(get_zone(view.zone)).date() for at in (first, last)]
    if days[0] == days[1]:
        return format_skeleton("yMMMEd", days[0], locale=language.locale)
    return format_interval(days[0], days[1], "yMMMEd", locale=language.locale)


def day_text(at: datetime, zone: str, language: Language) -> str:
    return format_date(at.astimezone(get_zone(zone)).date(), "full", locale=language.locale)


def time_text(at: datetime, zone: str, language: Language) -> str:
    return format_time(at.astimezone(get_zone(zone)), "short", locale=language.locale)


def city_text(zone: str, language: Language) -> str:
    # CLDR lacks a few cities; Babel then spells the zone id ("Argentina/Buenos Aires").
    city = get_timezone_location(zone, locale=language.locale, return_city=True)
    return city.rsplit("/", 1)[-1]


def same_clock(at: datetime, zone: str, other: str) -> bool:
    """Whether the two zones read the same wall-clock time at *at* (Paris and Geneva do)."""
    return at.astimezone(get_zone(zone)).replace(tzinfo=None) == at.astimezone(get_zone(other)).replace(tzinfo=None)
