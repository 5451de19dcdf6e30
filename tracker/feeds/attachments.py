"""The .ics an email attaches: the feed's items as a VCALENDAR of METHOD:PUBLISH (RFC 5546).

A file about one milestone carries its feed item as the feed has it. A file listing many (a
changed message of a whole timeline shifted) carries each in brief: the same UID, SEQUENCE,
DTSTAMP, dates, SUMMARY, LOCATION, STATUS when cancelled, alarms and ORGANIZER, without what
the item repeats or what its other properties already say (the dates, the place and the
timeline in words, CATEGORIES, URL, LAST-MODIFIED, the DTEND of a one-day item). Fifty full
items were two fifths of such a message (BENCHMARKS.md, "Change messages").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from icalendar import Calendar, Event, vCalAddress, vText

from tracker.feeds.builder import (
    PRODID,
    CalendarInfo,
    ItemWords,
    done_line,
    ical_bytes,
    item_occurrences,
    make_event,
    moved_line,
    status_line,
    who_line,
    zones_used,
)
from tracker.feeds.timezones import make_vtimezone
from tracker.links import timeline_page
from tracker.timelines.views import MilestoneView, Occurrence

# Properties a brief item leaves out: its other properties, the email and the feed say them.
_LEFT_OUT = ("LAST-MODIFIED", "CATEGORIES", "URL")

Item = tuple[MilestoneView, Occurrence, CalendarInfo]


def build_item_calendar(view: MilestoneView, occurrence: Occurrence, info: CalendarInfo, *, now: datetime) -> bytes:
    """Return the feed item of *view* as its own VCALENDAR (METHOD:PUBLISH), as an email about it attaches it.

    UID, SEQUENCE and DTSTAMP are the feed's: a client that imports the file and shows the feed
    sees one item, in one version. A repeating milestone comes whole (series and done occurrences),
    as in the feed: an occurrence alone, a RECURRENCE-ID without its series, does not import well.
    """
    return build_items_calendar([(view, occurrence, info)], now=now)


def build_items_calendar(items: Sequence[Item], *, now: datetime, brief: bool = False) -> bytes:
    """Return the feed items of several milestones in one VCALENDAR, as a changed message attaches them.

    RFC 5546 lets one PUBLISH object carry components with different UIDs: calendars import them
    all at once, and the zones they share are written once. *brief*: each item in brief (see above).
    """
    calendar = Calendar()
    for name, value in (("prodid", PRODID), ("version", "2.0"), ("calscale", "GREGORIAN"), ("method", "PUBLISH")):
        calendar.add(name, value)
    for view, occurrence, _ in items:
        if (occurrence.milestone.timeline_id, occurrence.milestone.key) != (view.timeline_id, view.key):
            raise ValueError(f"occurrence of {occurrence.milestone.key!r} given for {view.key!r}")
    for zone, since in zones_used([view for view, _, _ in items]):
        calendar.add_component(make_vtimezone(zone, since))
    for view, _, info in items:
        for occurrence in item_occurrences(view):
            event = make_event(view, occurrence, info, now=now)
            if brief:
                shorten(event, occurrence, info)
            add_organizer(event, info.organizer)
            calendar.add_component(event)
    return ical_bytes(calendar)


def add_organizer(event: Event, organizer: tuple[str, str]) -> None:
    """Add ORGANIZER, which METHOD:PUBLISH requires: a mailto: address and its name as CN."""
    name, address = organizer
    if not address:
        return
    value = vCalAddress(f"mailto:{address}")
    if name:
        value.params["CN"] = vText(name)
    event.add("organizer", value)


def shorten(event: Event, item: Occurrence, info: CalendarInfo) -> None:
    """Make a feed item brief: drop what repeats, keep what identifies it and what only its text says."""
    for name in _LEFT_OUT:
        event.pop(name, None)
    if event.get("STATUS") == "CONFIRMED":  # the default; CANCELLED must stay
        event.pop("STATUS")
    if one_day(event):  # a date with no end lasts that day (RFC 5545 3.6.1)
        event.pop("DTEND")
    event.pop("DESCRIPTION")
    event.add("description", brief_description(item, info.base_url, info.words))


def one_day(event: Event) -> bool:
    """Whether *event* is all-day and ends the day after it starts."""
    start, end = event.get("DTSTART"), event.get("DTEND")
    if start is None or end is None or isinstance(start.dt, datetime) or isinstance(end.dt, datetime):
        return False
    return bool(end.dt - start.dt == timedelta(days=1))


def brief_description(item: Occurrence, base_url: str, words: ItemWords) -> str:
    """Return a brief item's DESCRIPTION: its state, its own text and links, in the feed's language.

    Left to the other properties: the dates (DTSTART), the place (LOCATION), the timeline's
    title and who acts on a deadline (SUMMARY).
    """
    view, line = item.milestone, words.line
    head = [status_line(view, words), done_line(view, item, words), moved_line(view, words), view.summary]
    lines = [who_line(view, words)] * (view.kind != "deadline" or view.owner is None)
    lines += [line("Opens after: %(step)s", step=view.opens_after or "")] * bool(view.opens_after)
    lines += [line("Link: %(url)s", url=view.url)] * bool(view.url)
    # The page alone, not "Timeline page: …": in Arabic or Russian the label, quoted-printable,
    # was a hundred bytes an item.
    lines.append(timeline_page(view, base_url))
    return "\n\n".join(["\n".join(text for text in head if text), "\n".join(lines)]).strip()
