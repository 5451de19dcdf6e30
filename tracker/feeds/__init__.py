"""Calendar feeds (RFC 5545, RFC 7986): the only package that imports icalendar.

`builder` turns milestone views into feed bytes; `attachments` makes the .ics an email carries;
`timezones` writes the VTIMEZONEs (icalendar's own are wrong for zones with summer time: see
docs/decisions.md).
`atom` writes the Atom feeds of what changed (RFC 4287) from the events table, with the
standard library's XML writer: no icalendar there.

The names below are loaded from their modules on first use, not when the package is imported, so
that a command that builds no feed imports no icalendar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tracker.lazy import loader

if TYPE_CHECKING:
    from tracker.feeds.attachments import build_item_calendar, build_items_calendar
    from tracker.feeds.builder import (
        CalendarInfo,
        FeedCache,
        FeedKind,
        ItemWords,
        build_feed,
        feed_items,
        is_shown,
        item_uid,
        select_views,
    )
    from tracker.feeds.timezones import make_vtimezone, vtimezone_bytes

_BUILDER = ("CalendarInfo", "FeedCache", "FeedKind", "ItemWords", "build_feed", "feed_items", "is_shown", "item_uid",
            "select_views")  # fmt: skip
_ATTACHMENTS = ("build_item_calendar", "build_items_calendar")
_HOMES = {
    **dict.fromkeys(_BUILDER, "builder"),
    **dict.fromkeys(_ATTACHMENTS, "attachments"),
    **dict.fromkeys(("make_vtimezone", "vtimezone_bytes"), "timezones"),
}

__all__ = [
    "CalendarInfo",
    "FeedCache",
    "FeedKind",
    "ItemWords",
    "build_feed",
    "build_item_calendar",
    "build_items_calendar",
    "feed_items",
    "is_shown",
    "item_uid",
    "make_vtimezone",
    "select_views",
    "vtimezone_bytes",
]


__getattr__ = loader(__name__, _HOMES)
