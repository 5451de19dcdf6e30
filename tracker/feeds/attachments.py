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
from datetime import datetime

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
from tracker.timelines.views import MilestoneView, Occurrence, timeline_title_in

# Properties a brief item leaves out: its other properties, the email and the feed say them.
# A client that replaces a whole event on an update (Apple, Thunderbird) keeps the brief item in
# place of the full one a reminder brought: only what no other property or line repeats is left out.
_LEFT_OUT = ("LAST-MODIFIED",)

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
    # STATUS stays (RFC 5545 gives it no default: a restored item must say CONFIRMED over the
    # CANCELLED a merging client holds), and DTEND too (some clients read a date without an end
    # as an instant).
    for name in _LEFT_OUT:
        event.pop(name, None)
    event.pop("DESCRIPTION")
    event.add("description", brief_description(item, info.base_url, info.words))


def brief_description(item: Occurrence, base_url: str, words: ItemWords) -> str:
    """Return a brief item's DESCRIPTION: its state, its own text and links, in the feed's language.

    Left to the other properties: the dates (DTSTART), the place (LOCATION), who acts on a
    deadline (SUMMARY), the timeline (SUMMARY of a deadline, CATEGORIES and the line below).
    """
    view, line = item.milestone, words.line
    head = [status_line(view, words), done_line(view, item, words), moved_line(view, words), view.summary]
    lines = [who_line(view, words)] * (view.kind != "deadline" or view.owner is None)
    lines += [line("Opens after: %(step)s", step=view.opens_after or "")] * bool(view.opens_after)
    lines += [line("Timeline: %(title)s (%(kind)s)", title=timeline_title_in(view, words.language),
                   kind=view.timeline_kind)] * (view.kind != "deadline")  # fmt: skip
    lines += [line("Source: %(source)s", source=view.timeline_source)] * bool(view.timeline_source)
    lines += [line("Link: %(url)s", url=view.url)] * bool(view.url)
    lines += [line("Timeline link: %(url)s", url=view.timeline_url)] * bool(view.timeline_url != view.url and
                                                                            view.timeline_url)  # fmt: skip
    # The page alone, not "Timeline page: …": in Arabic or Russian the label, quoted-printable,
    # was a hundred bytes an item.
    lines.append(timeline_page(view, base_url))
    return "\n\n".join(["\n".join(text for text in head if text), "\n".join(lines)]).strip()
