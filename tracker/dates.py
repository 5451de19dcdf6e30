"""Date expressions of timeline files and the calendar arithmetic behind them.

Pure code: parsing and arithmetic only, no clock, no I/O.

A point is either *all-day* (a calendar date; a deadline on it ends with the
day) or *timed* (a wall-clock time in a zone). Days and weeks move along the
calendar in the timeline's zone, so "meeting - 30d" keeps its local time across
a DST change; hours and minutes are exact durations.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

Edge = Literal["start", "end"]
Anchor = Literal["start", "end", "done"]

END_OF_DAY = time(23, 59, 59)
FIRST_YEAR, LAST_YEAR = 1900, 2999
_UNITS = {"d": "day", "w": "week", "h": "hour", "m": "minute"}
_OFFSET = re.compile(r"(\d{1,6})\s*([dwhm])")
_ABSOLUTE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_SLUG = r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?"
_RELATIVE = re.compile(
    rf"(?:(?P<timeline>{_SLUG})/)?(?P<milestone>{_SLUG})(?:\.(?P<anchor>start|end|done))?"
    r"(?P<terms>(?:\s*[+-]\s*\d+\s*[a-z]+)*)"
)
_LOOKS_ABSOLUTE = re.compile(r"\d{4}-\d")
_TERM = re.compile(r"\s*([+-])\s*(\d+)\s*([a-z]+)")
SLUG = re.compile(_SLUG)


class DateError(ValueError):
    """A date, offset or expression that cannot be understood."""


@dataclass(frozen=True, order=True)
class Offset:
    """A signed amount of calendar days or exact minutes."""

    days: int = 0
    minutes: int = 0

    @property
    def is_calendar(self) -> bool:
        return self.minutes == 0

    def exact(self) -> timedelta:
        return timedelta(days=self.days, minutes=self.minutes)

    def __neg__(self) -> Offset:
        return Offset(-self.days, -self.minutes)

    def __str__(self) -> str:
        return format_offset(self)


@dataclass(frozen=True)
class LocalPoint:
    """A moment as a secretariat writes it: a date, maybe a time, in a zone.

    All-day points carry the edge of the day they stand for, because "X - 4h"
    counts from the end of a deadline's day but from the start of a meeting's.
    """

    day: date
    clock: time | None
    zone: str
    edge: Edge = "end"

    @property
    def all_day(self) -> bool:
        return self.clock is None

    def at(self) -> datetime:
        """Return the UTC instant: end of day (23:59:59) or start for all-day points."""
        if self.clock is None:
            clock = END_OF_DAY if self.edge == "end" else time(0, 0)
            return local_to_utc(self.day, clock, self.zone)
        return local_to_utc(self.day, self.clock, self.zone)

    def boundary_at(self) -> datetime:
        """Return the instant hour offsets count from (midnight after an end-of-day)."""
        if self.clock is not None:
            return self.at()
        day = self.day + timedelta(days=1) if self.edge == "end" else self.day
        return local_to_utc(day, time(0, 0), self.zone)

    def text(self) -> str:
        if self.clock is None:
            return self.day.isoformat()
        return f"{self.day.isoformat()} {self.clock.strftime('%H:%M')}"


@dataclass(frozen=True)
class Absolute:
    day: date
    clock: time | None

    def text(self) -> str:
        return self.day.isoformat() if self.clock is None else f"{self.day} {self.clock:%H:%M}"


@dataclass(frozen=True)
class Relative:
    milestone: str
    timeline: str | None = None
    anchor: Anchor | None = None
    offsets: tuple[Offset, ...] = ()


Expr = Absolute | Relative


@lru_cache(maxsize=65536)  # a sync converts each point several times, and many points share a day
def local_to_utc(day: date, clock: time, zone: str) -> datetime:
    return datetime.combine(day, clock, tzinfo=get_zone(zone)).astimezone(UTC)


@lru_cache(maxsize=512)
def get_zone(name: str) -> ZoneInfo:
    """Return the IANA zone *name*; raise DateError naming near matches."""
    if name != name.strip() or not name or name.startswith(("/", ".")) or ".." in name:
        raise DateError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise DateError(f"unknown time zone {name!r}{suggest(name, _zone_names())}") from None


@lru_cache(maxsize=1)
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def suggest(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the nearest choice, or ''."""
    import difflib

    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {found[0]!r}?)" if found else ""


@lru_cache(maxsize=4096)  # results are frozen; timeline files repeat the same few offsets
def parse_offset(text: str) -> Offset:
    """Parse '14d', '2w', '4h' or '30m' into an Offset."""
    match = _OFFSET.fullmatch(text.strip())
    if match is None:
        raise DateError(
            f"bad offset {text!r}: write a number and a unit, d (days), w (weeks), h (hours) or m (minutes), e.g. 14d"
        )
    return _make_offset(int(match.group(1)), match.group(2))


# Reminders go out between an hour and a year before: a shorter one may never be sent in time
# (a pass runs at most every few minutes), a longer one is noise, and every offset in this
# range is written back by format_offset as text that parse_offset reads.
SHORTEST_REMINDER = timedelta(hours=1)
LONGEST_REMINDER = timedelta(days=366)


def parse_reminder(text: str) -> Offset:
    """Parse a reminder offset ('7d', '4h'); raise DateError unless it is from 1 hour to 1 year."""
    offset = parse_offset(text)
    if not SHORTEST_REMINDER <= offset.exact() <= LONGEST_REMINDER:
        raise DateError(f"reminder {text.strip()!r} is out of range: remind from 1h to 366d (about a year) before")
    return offset


def _make_offset(amount: int, unit: str) -> Offset:
    if unit == "d":
        return Offset(days=amount)
    if unit == "w":
        return Offset(days=7 * amount)
    if unit == "h":
        return Offset(minutes=60 * amount)
    return Offset(minutes=amount)


def format_offset(offset: Offset) -> str:
    """Return canonical text that parses back to *offset* (sign dropped): days as 'Nd', else hours or minutes."""
    days, minutes = abs(offset.days), abs(offset.minutes)
    if minutes == 0:
        return f"{days}d"
    total = days * 1440 + minutes
    return f"{total // 60}h" if total % 60 == 0 else f"{total}m"


def parse_absolute(text: str) -> Absolute:
    """Parse 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM[:SS]'."""
    match = _ABSOLUTE.fullmatch(text.strip())
    if match is None:
        raise DateError(f"bad date {text!r}: write YYYY-MM-DD or YYYY-MM-DD HH:MM")
    try:
        day = date.fromisoformat(match.group(1))
    except ValueError as exc:
        raise DateError(f"{match.group(1)} is not a date: {exc}") from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        # Near year 1 or 9999 a zone conversion or an offset leaves what datetime can hold.
        raise DateError(f"{match.group(1)} is out of range: write a year from {FIRST_YEAR} to {LAST_YEAR}")
    if match.group(2) is None:
        return Absolute(day, None)
    hour, minute, second = int(match.group(2)), int(match.group(3)), int(match.group(4) or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise DateError(f"{text.strip()!r} has no such time of day")
    return Absolute(day, time(hour, minute, second))


@lru_cache(maxsize=65536)  # results are frozen; a large sync parses the same expressions again
def parse_expr(text: str) -> Expr:
    """Parse an absolute date or a relative one such as 'meeting - 30d'."""
    text = text.strip()
    if _LOOKS_ABSOLUTE.match(text):
        return parse_absolute(text)
    match = _RELATIVE.fullmatch(text)
    if match is None:
        raise DateError(
            f"bad date {text!r}: write YYYY-MM-DD, YYYY-MM-DD HH:MM, "
            "or a relative date such as 'meeting - 30d', 'draft.done + 2w', 'other-timeline/meeting - 7d'"
        )
    offsets = []
    for sign, amount, unit in _TERM.findall(match.group("terms")):
        if unit not in _UNITS:
            raise DateError(f"bad unit {unit!r} in {text!r}: use d, w, h or m")
        offset = _make_offset(int(amount), unit)
        offsets.append(-offset if sign == "-" else offset)
    anchor = cast("Anchor | None", match.group("anchor"))
    return Relative(match.group("milestone"), match.group("timeline"), anchor, tuple(offsets))


def shift(point: LocalPoint, offsets: tuple[Offset, ...]) -> LocalPoint:
    """Move *point* by calendar days and exact minutes, in its own zone."""
    for offset in offsets:
        if offset.days:
            point = LocalPoint(point.day + timedelta(days=offset.days), point.clock, point.zone, point.edge)
        if offset.minutes:
            moved = point.boundary_at() + timedelta(minutes=offset.minutes)
            point = to_local(moved, point.zone)
    return point


def to_local(at: datetime, zone: str) -> LocalPoint:
    """Return the timed local point of the instant *at* in *zone*."""
    local = at.astimezone(get_zone(zone))
    return LocalPoint(local.date(), local.time().replace(tzinfo=None, microsecond=0), zone)


def move_to_zone(point: LocalPoint, zone: str) -> LocalPoint:
    """Express *point* in another zone: a date stays a date, a time keeps its instant."""
    if point.zone == zone:
        return point
    if point.clock is None:
        return LocalPoint(point.day, None, zone, point.edge)
    return to_local(point.at(), zone)


def parse_when(text: str, zone: str) -> datetime:
    """Parse a --now/--at value: a date (local start of day) or a date-time, as UTC."""
    text = text.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise DateError(f"bad date {text!r}: write YYYY-MM-DD or YYYY-MM-DDTHH:MM[+zone offset]") from None
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        # Near year 1 or 9999 the conversion to UTC, or any window counted from it, overflows.
        raise DateError(f"{text!r} is out of range: write a year from {FIRST_YEAR} to {LAST_YEAR}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=get_zone(zone))
    return parsed.astimezone(UTC)
