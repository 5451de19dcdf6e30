"""Build feeds: milestone views in, iCalendar bytes out (RFC 5545 and RFC 7986).

Pure: the time is passed in; nothing is read from the store, the clock or the network.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from icalendar import (
    Alarm,
    Calendar,
    Component,
    Event,
    vDDDTypes,
    vDuration,
    vRecur,
    vText,
)

from tracker.display import CLI_LOCALE, cldr_locale, format_at
from tracker.feeds.timezones import make_vtimezone, vtimezone_bytes
from tracker.links import timeline_page
from tracker.text import describe_error
from tracker.timelines.dates import Offset, get_zone, parse_offset
from tracker.timelines.triggers import Trigger, reminder_trigger
from tracker.timelines.views import (
    UNREADABLE,
    CompletionView,
    MilestoneView,
    Occurrence,
    Problems,
    concerns,
    explicit_rule,
    find_occurrence,
    reference,
    timeline_title_in,
    title_in,
)

FeedKind = Literal["all", "timeline", "audience"]
PRODID = "-//Tracker//Tracker calendar feeds//EN"
_END = b"END:VCALENDAR\r\n"
# In a calendar's UTF-8: C0 but tab and the line ends icalendar writes, DEL, C1, U+2028 and U+2029.
# RFC 5545 3.3.11 allows none of them in text (a client may end a line at one); icalendar
# escapes CR and LF in values already, and writes the rest as they are.
_CONTROLS = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")
_FREQUENCIES = {"YEARLY": "year", "MONTHLY": "month", "WEEKLY": "week", "DAILY": "day"}


@dataclass(frozen=True)
class ItemWords:
    """The language of a feed's SUMMARYs and their words around the titles: English, or a personal feed's."""

    language: str = "en"  # the titles shown are in this language where they have a translation
    acting: str = "%(who)s: %(title)s"  # a deadline's owner and title
    cancelled: str = "Cancelled: %(title)s"
    audiences: tuple[tuple[str, str], ...] = ()  # (audience, its name); others show their id, capitalised
    locale: str = CLI_LOCALE  # the CLDR locale of the DESCRIPTION's dates
    lines: tuple[tuple[str, str], ...] = ()  # (a DESCRIPTION line of LINES, as the language says it)
    # An alarm's 'Due in 7 days' in the language (plural forms need its catalog); None: English's 'due in 7 days'.
    # Not compared: it follows from `language`, and the item cache compares words (FeedCache._item).
    alarm: Callable[[MilestoneView, Offset], str] | None = field(default=None, compare=False)
    # 'Repeats every 2 weeks' from (FREQ, INTERVAL), likewise; None: English's 'Repeats: every 2 weeks'.
    repeats: Callable[[str, int], str] | None = field(default=None, compare=False)

    def audience(self, audience: str) -> str:
        return next((name for key, name in self.audiences if key == audience), None) or audience_name(audience)

    def line(self, english: str, **values: str) -> str:
        """Return the DESCRIPTION line *english* (one of LINES) in the feed's language, filled with *values*."""
        return next((said for key, said in self.lines if key == english), english) % values


ENGLISH = ItemWords()  # what public feeds say


def N_(message: str) -> str:  # noqa: N802 (the mark Babel's extractor looks for: babel.cfg reads this module)
    """Mark *message* for the catalog; tracker/feeds/words.py translates it for personal feeds."""
    return message


# The DESCRIPTION's lines, as public feeds say them; tracker/feeds/words.py has them in the six languages.
LINES = (
    N_("Cancelled: this no longer takes place."),
    N_("Removed from the timeline: treat it as cancelled."),
    N_("Done on %(day)s."),
    N_("Moved from %(day)s, a non-working day."),
    N_("Who acts: %(who)s"),
    N_("For: %(audiences)s"),
    N_("everyone"),
    N_("Due: by the end of %(day)s, %(zone)s time"),
    N_("Due: %(when)s (%(zone)s; %(utc)s UTC)"),
    N_("When: %(span)s, %(zone)s time"),
    N_("%(when)s (the first time)"),
    N_("Where: %(place)s"),
    N_("Opens after: %(step)s"),
    N_("Timeline: %(title)s (%(kind)s)"),
    N_("Source: %(source)s"),
    N_("Link: %(url)s"),
    N_("Timeline link: %(url)s"),
    N_("Timeline page: %(url)s"),
)


@dataclass(frozen=True)
class CalendarInfo:
    """What a feed says about itself: name, description, addresses, refresh interval, colour."""

    name: str
    description: str
    url: str  # the feed's web page
    base_url: str  # TRACKER_BASE_URL: links and UIDs
    refresh: timedelta = timedelta(hours=1)
    color: str = "steelblue"  # a CSS3 colour name, as RFC 7986 COLOR wants
    source: str = ""  # the feed's own .ics address (RFC 7986 SOURCE), when known
    reminder_hour: int = 9  # TRACKER_REMINDER_HOUR: when day-offset alarms of all-day items fire
    words: ItemWords = ENGLISH
    organizer: tuple[str, str] = ("", "")  # (name, address) an emailed item is PUBLISHed by (RFC 5546 3.2.1)


def select_views(views: Iterable[MilestoneView], kind: FeedKind, key: str | None = None) -> list[MilestoneView]:
    """Return the views a feed shows: all of them, one timeline's, or those concerning one audience."""
    if kind == "all":
        return list(views)
    if key is None:
        raise ValueError(f"a {kind} feed needs a {kind} name")
    if kind == "timeline":
        return [v for v in views if v.timeline_id == key]
    return [v for v in views if concerns(v, key)]


def build_feed(
    views: Sequence[MilestoneView], info: CalendarInfo, *, now: datetime, cancelled_grace: timedelta
) -> bytes:
    """Build the whole feed with icalendar, serialising every item afresh."""
    items = feed_items(views, now=now, cancelled_grace=cancelled_grace)
    calendar = make_calendar(info, items)
    for zone, since in zones_used(items):
        calendar.add_component(make_vtimezone(zone, since))
    for view in items:
        try:
            components = make_components(view, info, now=now)
        except UNREADABLE:  # left out, as FeedCache does: one item must not take the feed down
            continue
        for component in components:
            calendar.add_component(component)
    return ical_bytes(calendar)


def ical_bytes(component: Component) -> bytes:
    """Return *component* serialised, without the control characters icalendar leaves in text."""
    return _CONTROLS.sub(b"", bytes(component.to_ical()))


class FeedCache:
    """Serialised items kept between builds, so a rebuild serialises only the milestones that changed.

    An item's bytes do not depend on the feed it appears in, so one cache can serve every feed.
    """

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], tuple[tuple[object, ...], bytes]] = {}
        self.serialised = 0  # items serialised so far: what tests count
        self.left_out: Problems = {}  # items that could not be serialised ("timeline/key") → why

    def render(
        self, views: Sequence[MilestoneView], info: CalendarInfo, *, now: datetime, cancelled_grace: timedelta
    ) -> bytes:
        """Return exactly what build_feed returns, from cached items where they are unchanged."""
        items = feed_items(views, now=now, cancelled_grace=cancelled_grace)
        head = ical_bytes(make_calendar(info, items)).removesuffix(_END)
        zones = b"".join(vtimezone_bytes(zone, since) for zone, since in zones_used(items))
        return head + zones + b"".join(self._item(view, info, now) for view in items) + _END

    def _item(self, view: MilestoneView, info: CalendarInfo, now: datetime) -> bytes:
        # The whole view is compared, not only its revision: a timeline's title or a
        # completion changes the bytes without a new milestone revision.
        state = (view, info.base_url, info.reminder_hour, info.words, now if view.updated_at is None else None)
        cached = self._items.get((view.timeline_id, view.key))
        if cached is not None and cached[0] == state:
            return cached[1]
        try:
            data = b"".join(ical_bytes(c) for c in make_components(view, info, now=now))
            self.left_out.pop(reference(view), None)
        except UNREADABLE as exc:  # a stored value no calendar can take: the item is left out, the feed served
            data = b""
            self.left_out[reference(view)] = describe_error(exc)
        self._items[(view.timeline_id, view.key)] = (state, data)
        self.serialised += 1
        return data


def feed_items(views: Iterable[MilestoneView], *, now: datetime, cancelled_grace: timedelta) -> list[MilestoneView]:
    """Return the views still shown, by first start, then timeline and key."""
    shown = [v for v in views if is_shown(v, now, cancelled_grace)]
    return sorted(shown, key=lambda v: (v.main_at, v.timeline_id, v.key))


def is_shown(view: MilestoneView, now: datetime, cancelled_grace: timedelta) -> bool:
    """Whether a feed still carries *view*: active, or cancelled/removed within the grace."""
    if view.status == "active":
        return True
    return view.updated_at is None or now - view.updated_at <= cancelled_grace


# --- the calendar ----------------------------------------------------------------------


def make_calendar(info: CalendarInfo, items: Sequence[MilestoneView]) -> Calendar:
    """Return the VCALENDAR with its properties and no components yet."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    # No METHOD: without one, DTSTAMP is the item's last revision (RFC 5545 3.8.7.2), so an
    # unchanged feed keeps its bytes, its ETag and its cached items from one build to the next.
    for name, text in (("name", info.name), ("x-wr-calname", info.name), ("x-wr-caldesc", info.description)):
        # icalendar writes X-WR-* properties unescaped; vText escapes commas, semicolons, newlines.
        calendar.add(name, vText(text))
    calendar.add("description", info.description)
    calendar.add("x-wr-timezone", vText(main_zone(items)))
    calendar.add("refresh-interval", vDuration(info.refresh), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(info.refresh))
    calendar.add("color", vText(info.color))
    calendar.add("url", info.url)
    if info.source:
        calendar.add("source", info.source)
    return calendar


def main_zone(items: Sequence[MilestoneView]) -> str:
    """Return the zone most items use (the first by name on a tie), or UTC for an empty feed."""
    counts = Counter(view.zone for view in items)
    return min(counts, key=lambda zone: (-counts[zone], zone)) if counts else "UTC"


def zones_used(items: Iterable[MilestoneView]) -> list[tuple[str, int]]:
    """Return each zone that needs a VTIMEZONE (timed items not in UTC) with the first year it must cover."""
    since: dict[str, int] = {}
    for view in items:
        if not view.all_day and tzid_of(view.zone):
            year = view.main_at.astimezone(get_zone(view.zone)).year
            since[view.zone] = min(year, since.get(view.zone, year))
    return sorted(since.items())


@lru_cache(maxsize=256)
def tzid_of(zone: str) -> str | None:
    """Return the TZID icalendar writes for *zone* (None when it writes UTC times with a Z)."""
    params = vDDDTypes(datetime(2000, 1, 1, tzinfo=get_zone(zone))).params
    tzid = params.get("TZID")
    return str(tzid) if tzid else None


# --- one milestone -----------------------------------------------------------------------


def make_components(view: MilestoneView, info: CalendarInfo, *, now: datetime) -> list[Event]:
    """Return the VEVENT of *view*, then one for each completed occurrence if it repeats."""
    return [make_event(view, item, info, now=now) for item in item_occurrences(view)]


def item_occurrences(view: MilestoneView) -> list[Occurrence]:
    """Return what a feed item is made of: the whole (a series, if it repeats), then its done occurrences.

    The done ones become overrides (RECURRENCE-ID) that mark them completed.
    """
    whole = Occurrence(view, "", view.due_at, view.starts_at, view.ends_at)
    if view.repeat is None or view.status != "active":
        return [whole]
    found = (find_occurrence(view, key) for key in sorted(view.completions) if key)
    return [whole, *(item for item in found if item is not None)]


def make_event(view: MilestoneView, item: Occurrence, info: CalendarInfo, *, now: datetime) -> Event:
    """Return the VEVENT of one occurrence (the whole series when item.occurrence is '')."""
    event = Event()
    summary = item_summary(view, item, info.words)
    event.add("summary", summary)
    add_dates(event, view, item)
    event.add("dtstamp", view.updated_at or now)
    event.add("uid", item_uid(view, info.base_url))
    event.add("sequence", view.revision)
    add_details(event, view, item, info.base_url, info.words)
    if view.status == "active" and completion_of(view, item) is None:
        for offset in view.reminders:
            event.add_component(make_alarm(view, parse_offset(offset), summary, info.reminder_hour, info.words))
    return event


def item_uid(view: MilestoneView, base_url: str) -> str:
    """Return the item's UID: timeline and milestone at the site's host, never a date."""
    host = urlsplit(base_url).hostname or "tracker.invalid"
    return f"{view.timeline_id}/{view.key}@{host}"


def add_dates(event: Event, view: MilestoneView, item: Occurrence) -> None:
    """Add DTSTART, DTEND, and RRULE (series) or RECURRENCE-ID (one occurrence)."""
    start, end = item_dates(view, item)
    event.add("dtstart", start)
    if end is not None:
        event.add("dtend", end)
    if item.occurrence:
        event.add("recurrence-id", start)
    elif view.repeat is not None:
        event.add("rrule", make_rrule(view))


def item_dates(view: MilestoneView, item: Occurrence) -> tuple[date | datetime, date | datetime | None]:
    """Return start and exclusive end: local dates for all-day items, zoned times otherwise."""
    zone = get_zone(view.zone)
    start = item.at.astimezone(zone)
    if view.all_day:
        # due_at is 23:59:59 local: its date in the milestone's zone, not in UTC, is the day.
        last = (item.ends_at or item.at).astimezone(zone).date()
        return start.date(), last + timedelta(days=1)
    end = item.ends_at.astimezone(zone) if item.ends_at is not None else None
    if view.repeat is None and (repeated_hour(start) or (end is not None and repeated_hour(end))):
        # The wall time happens twice that night; calendars disagree on which one a TZID time means
        # (RFC 5545 says the first, some take the second): UTC names the instant for all of them.
        start, end = start.astimezone(UTC), end.astimezone(UTC) if end is not None else None
    # A timed deadline is an instant: no DTEND means it ends when it starts (RFC 5545 3.6.1).
    return start, end if end is not None and end > start else None


def repeated_hour(local: datetime) -> bool:
    """Whether the wall time of *local* happens twice (the hour the clocks go back)."""
    return local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()


def make_rrule(view: MilestoneView) -> vRecur:
    """Return the milestone's RRULE, its day written out, with UNTIL in the form its DTSTART requires."""
    assert view.repeat is not None
    first = view.main_at.astimezone(get_zone(view.zone)).date()
    rule: vRecur = vRecur.from_ical(explicit_rule(view.repeat, first))
    if "UNTIL" in rule:
        rule["UNTIL"] = [until_value(until, view) for until in rule["UNTIL"]]
    return rule


def until_value(until: date | datetime, view: MilestoneView) -> date | datetime:
    """Return UNTIL as a date for all-day items, else as UTC (a bare date counts from local midnight)."""
    if view.all_day:
        return until.date() if isinstance(until, datetime) else until
    if not isinstance(until, datetime):
        until = datetime.combine(until, time(0))
    if until.tzinfo is None:
        until = until.replace(tzinfo=get_zone(view.zone))
    return until.astimezone(UTC)


def add_details(event: Event, view: MilestoneView, item: Occurrence, base_url: str, words: ItemWords = ENGLISH) -> None:
    """Add what the item says and how it shows: text, links, categories, status."""
    if view.updated_at is not None:
        event.add("last-modified", view.updated_at)
    event.add("description", item_description(view, item, base_url, words))
    event.add("url", timeline_page(view, base_url))
    event.add("categories", categories(view))
    if view.location:
        event.add("location", view.location)
    event.add("status", "CONFIRMED" if view.status == "active" else "CANCELLED")
    # A deadline takes no time in the subscriber's day; a meeting does.
    busy = view.kind == "span" and view.status == "active"
    event.add("transp", "OPAQUE" if busy else "TRANSPARENT")


def categories(view: MilestoneView) -> list[str]:
    names = [view.timeline_kind, *((view.owner,) if view.owner else view.audiences)]
    return list(dict.fromkeys(names))


def completion_of(view: MilestoneView, item: Occurrence) -> CompletionView | None:
    """Return the completion of this occurrence (a series as a whole is never done)."""
    if view.repeat is not None and not item.occurrence:
        return None
    return view.completions.get(item.occurrence)


# --- words ---------------------------------------------------------------------------------


def audience_name(audience: str) -> str:
    return audience.replace("-", " ").replace("_", " ").capitalize()


def item_summary(view: MilestoneView, item: Occurrence, words: ItemWords = ENGLISH) -> str:
    """Return the SUMMARY: who must act on what, marked when cancelled or done, in the feed's language."""
    language = words.language
    if language not in view.titles:
        words = ENGLISH  # an English title keeps English words around it: not "Membres : Membership comments"
    text = title_in(view, language) if view.kind == "span" else acting_title(view, words)
    timeline = timeline_title_in(view, language)
    if view.kind == "deadline" and timeline.lower() not in text.lower():
        text = f"{text} — {timeline}"
    if view.status != "active":
        # Several clients ignore STATUS:CANCELLED and show the item as usual.
        return words.cancelled % {"title": text}
    return f"✓ {text}" if completion_of(view, item) else text


def acting_title(view: MilestoneView, words: ItemWords = ENGLISH) -> str:
    """Return 'Membership: comments on the draft' from the owner and 'Membership comments on the draft'."""
    title = title_in(view, words.language)
    if view.owner is None:
        return title
    who = words.audience(view.owner)
    if title.lower().startswith(who.lower() + " "):
        title = title[len(who) + 1 :]
    return words.acting % {"who": who, "title": title}


def item_description(view: MilestoneView, item: Occurrence, base_url: str, words: ItemWords = ENGLISH) -> str:
    """Return the DESCRIPTION: state, summary, then one fact a line, in the feed's language and its CLDR dates."""
    head = [status_line(view, words), done_line(view, item, words), moved_line(view, words), view.summary]
    lines = facts(view, item, base_url, words)
    return "\n\n".join(["\n".join(line for line in head if line), "\n".join(lines)]).strip()


def moved_line(view: MilestoneView, words: ItemWords = ENGLISH) -> str:
    """Return why the date is not the one its rule gives (rolled off a non-working day), or ''."""
    if view.rolled_from is None:
        return ""
    from babel.dates import format_date

    day = format_date(view.rolled_from, "full", locale=cldr_locale(words.locale))
    return words.line("Moved from %(day)s, a non-working day.", day=day)


def status_line(view: MilestoneView, words: ItemWords = ENGLISH) -> str:
    if view.status == "cancelled":
        return words.line("Cancelled: this no longer takes place.")
    if view.status == "removed":
        return words.line("Removed from the timeline: treat it as cancelled.")
    return ""


def done_line(view: MilestoneView, item: Occurrence, words: ItemWords = ENGLISH) -> str:
    done = completion_of(view, item)
    if done is None:
        return ""
    day = words.line("Done on %(day)s.", day=format_at(done.done_at, view.zone, True, words.locale))
    return " ".join(part for part in (day, done.note, done.link) if part)


def facts(view: MilestoneView, item: Occurrence, base_url: str, words: ItemWords = ENGLISH) -> list[str]:
    """Return the labelled lines: who, when, where, the timeline and every link."""
    series, line = view.repeat is not None and not item.occurrence, words.line
    when = when_line(view, item, words)
    lines = [who_line(view, words), line("%(when)s (the first time)", when=when) if series else when]
    lines += [repeat_line(view.repeat, words)] * series
    lines += [line("Where: %(place)s", place=view.location)] * bool(view.location)
    lines += [line("Opens after: %(step)s", step=view.opens_after or "")] * bool(view.opens_after)
    lines.append(line("Timeline: %(title)s (%(kind)s)", title=timeline_title_in(view, words.language),
                      kind=view.timeline_kind))  # fmt: skip
    lines += [line("Source: %(source)s", source=view.timeline_source)] * bool(view.timeline_source)
    lines += [line("Link: %(url)s", url=view.url)] * bool(view.url)
    lines += [line("Timeline link: %(url)s", url=view.timeline_url)] * bool(view.timeline_url != view.url and
                                                                            view.timeline_url)  # fmt: skip
    lines.append(line("Timeline page: %(url)s", url=timeline_page(view, base_url)))
    return lines


def who_line(view: MilestoneView, words: ItemWords = ENGLISH) -> str:
    if view.owner is not None:
        return words.line("Who acts: %(who)s", who=words.audience(view.owner))
    names = ", ".join(words.audience(a) for a in view.audiences) or words.line("everyone")
    return words.line("For: %(audiences)s", audiences=names)


def when_line(view: MilestoneView, item: Occurrence, words: ItemWords = ENGLISH) -> str:
    """Return 'Due: …' or 'When: …' in the milestone's own zone (clients show their own)."""
    zone, at, locale = view.zone, item.at, words.locale
    if item.due_at is not None and view.all_day:
        return words.line("Due: by the end of %(day)s, %(zone)s time", day=format_at(at, zone, True, locale), zone=zone)
    if item.due_at is not None:
        from babel.dates import format_time

        utc = format_time(at.astimezone(UTC), "short", locale=cldr_locale(locale))
        return words.line("Due: %(when)s (%(zone)s; %(utc)s UTC)", when=format_at(at, zone, False, locale), zone=zone,
                          utc=utc)  # fmt: skip
    end = item.ends_at or at
    first, last = format_at(at, zone, view.all_day, locale), format_at(end, zone, view.all_day, locale)
    span = first if first == last else f"{first} – {last}"
    return words.line("When: %(span)s, %(zone)s time", span=span, zone=zone)


def repeat_words(rule: str | None) -> str:
    """Return 'every year' or 'every 2 weeks' for an RRULE (clients show the exact dates)."""
    freq, interval = repeat_parts(rule)
    unit = _FREQUENCIES.get(freq, "time")
    return f"every {unit}" if interval == 1 else f"every {interval} {unit}s"


def repeat_parts(rule: str | None) -> tuple[str, int]:
    """Return an RRULE's FREQ and INTERVAL: ('WEEKLY', 2)."""
    parts = dict(part.split("=", 1) for part in (rule or "").upper().split(";") if "=" in part)
    return parts.get("FREQ", ""), int(parts.get("INTERVAL", "1") or 1)


def repeat_line(rule: str | None, words: ItemWords = ENGLISH) -> str:
    freq, interval = repeat_parts(rule)
    if words.repeats is None or freq not in _FREQUENCIES:
        return f"Repeats: {repeat_words(rule)}"
    return words.repeats(freq, interval)


# --- alarms --------------------------------------------------------------------------------


def make_alarm(
    view: MilestoneView, offset: Offset, summary: str, reminder_hour: int, words: ItemWords = ENGLISH
) -> Alarm:
    """Return a display alarm *offset* before the item, as its reminder email is timed."""
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    said = words.alarm(view, offset) if words.alarm else alarm_words(view, offset)
    alarm.add("description", f"{summary} ({said})")
    alarm.add("trigger", alarm_trigger(view, offset, reminder_hour))
    return alarm


def alarm_trigger(view: MilestoneView, offset: Offset, reminder_hour: int) -> TriggerValue:
    """Return the TRIGGER, relative to DTSTART (the one relation every client supports).

    The rule is the reminder email's (tracker/timelines/triggers.py), so both fire at one instant.
    """
    return TriggerValue(reminder_trigger(view, offset, reminder_hour))


class TriggerValue(vDuration):
    """A TRIGGER written as its rule splits it: nominal days, then elapsed time.

    icalendar would write 36 hours as `-P1DT12H`, a nominal day that is 23 or 25 hours across DST.
    """

    def __init__(self, trigger: Trigger) -> None:
        super().__init__(timedelta(days=trigger.days) + trigger.exact)
        self.trigger = trigger

    def to_ical(self) -> bytes:
        days, exact = self.trigger.days, self.trigger.exact
        if self.trigger.floating:  # a date's start has no clock change: any split reads alike
            total = timedelta(days=days) + exact
            factor = -1 if total < timedelta(0) else 1
            days, exact = factor * abs(total).days, factor * timedelta(seconds=abs(total).seconds)
        sign = "-" if days < 0 or exact < timedelta(0) else ""
        seconds = int(abs(exact).total_seconds())
        hours, minutes = seconds // 3600, seconds % 3600 // 60
        clock = f"{hours}H" * bool(hours) + f"{minutes}M" * bool(minutes) + f"{seconds % 60}S" * bool(seconds % 60)
        text = f"{sign}P" + f"{abs(days)}D" * bool(days or not clock) + f"T{clock}" * bool(clock)
        return text.encode("ascii")


def alarm_words(view: MilestoneView, offset: Offset) -> str:
    verb = "due" if view.kind == "deadline" else "starts"
    if offset.is_calendar:
        days = offset.days
        when = "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"
    else:
        minutes = offset.minutes
        amount, unit = (minutes // 60, "hour") if minutes % 60 == 0 else (minutes, "minute")
        when = f"in {amount} {unit}{'s' * (amount != 1)}"
    return f"{verb} {when}"
