"""libical (the calendar library of Evolution) through ctypes on Debian's libical3, no Python binding needed.

Its RFC 5546 (iTIP) restriction check, and its expansion of a series.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from datetime import UTC, date, datetime


def load_libical() -> ctypes.CDLL | None:
    """Return libical, or None when it is not installed (apt-get install libical3)."""
    name = ctypes.util.find_library("ical") or "libical.so.3"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.icalparser_parse_string.restype = ctypes.c_void_p
    lib.icalparser_parse_string.argtypes = [ctypes.c_char_p]
    lib.icalrestriction_check.argtypes = [ctypes.c_void_p]
    lib.icalrestriction_check.restype = ctypes.c_int
    lib.icalcomponent_as_ical_string.argtypes = [ctypes.c_void_p]
    lib.icalcomponent_as_ical_string.restype = ctypes.c_char_p
    lib.icalcomponent_free.argtypes = [ctypes.c_void_p]
    return lib


def restriction_errors(lib: ctypes.CDLL, data: bytes) -> list[str]:
    """Return the X-LIC-ERROR lines icalrestriction_check leaves in *data*; one more when it fails without any."""
    component = lib.icalparser_parse_string(data)
    assert component, "libical could not parse the calendar"
    try:
        passed = lib.icalrestriction_check(component)
        text = lib.icalcomponent_as_ical_string(component).decode("utf-8")
    finally:
        lib.icalcomponent_free(component)
    errors = [line for line in text.split("\r\n") if line.startswith("X-LIC-ERROR")]
    return errors or ([] if passed else ["icalrestriction_check failed"])


class _Time(ctypes.Structure):
    """libical 3's struct icaltimetype, passed by value."""

    _fields_ = [
        *((name, ctypes.c_int) for name in ("year", "month", "day", "hour", "minute", "second", "is_date")),
        ("is_daylight", ctypes.c_int),
        ("zone", ctypes.c_void_p),
    ]


class _Span(ctypes.Structure):
    """struct icaltime_span: an occurrence's start and end as seconds since 1970, UTC."""

    _fields_ = [("start", ctypes.c_int64), ("end", ctypes.c_int64), ("is_busy", ctypes.c_int)]


_SEEN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(_Span), ctypes.c_void_p)
_VEVENT = 4  # ICAL_VEVENT_COMPONENT


def occurrence_starts(lib: ctypes.CDLL, data: bytes, since: date, until: date) -> list[datetime]:
    """Return the start (UTC) of every occurrence of the calendar's first VEVENT from *since* to before *until*.

    icalcomponent_foreach_recurrence is how Evolution expands a series; an all-day start comes
    back as its date's midnight UTC.
    """
    lib.icalcomponent_get_first_component.restype = ctypes.c_void_p
    lib.icalcomponent_get_first_component.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.icalcomponent_foreach_recurrence.argtypes = [ctypes.c_void_p, _Time, _Time, _SEEN, ctypes.c_void_p]
    found: list[datetime] = []
    seen = _SEEN(lambda _component, span, _data: found.append(datetime.fromtimestamp(span.contents.start, UTC)))
    calendar = lib.icalparser_parse_string(data)
    assert calendar, "libical could not parse the calendar"
    try:
        event = lib.icalcomponent_get_first_component(calendar, _VEVENT)
        window = [_Time(day.year, day.month, day.day, 0, 0, 0, 0, 0, None) for day in (since, until)]
        lib.icalcomponent_foreach_recurrence(event, *window, seen, None)
    finally:
        lib.icalcomponent_free(calendar)
    return found
