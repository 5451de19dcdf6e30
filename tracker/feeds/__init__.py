"""Calendar feeds (RFC 5545, RFC 7986): the only package that imports icalendar.

`builder` turns milestone views into feed bytes; `timezones` writes the VTIMEZONEs
(icalendar's own are wrong for zones with summer time: see docs/decisions.md).
"""

from tracker.feeds.builder import (
    CalendarInfo,
    FeedCache,
    FeedKind,
    ItemWords,
    build_feed,
    build_item_calendar,
    feed_items,
    is_shown,
    item_uid,
    select_views,
)
from tracker.feeds.timezones import make_vtimezone, vtimezone_bytes
from tracker.links import timeline_page

__all__ = [
    "CalendarInfo",
    "FeedCache",
    "FeedKind",
    "ItemWords",
    "build_feed",
    "build_item_calendar",
    "feed_items",
    "is_shown",
    "item_uid",
    "make_vtimezone",
    "select_views",
    "timeline_page",
    "vtimezone_bytes",
]
