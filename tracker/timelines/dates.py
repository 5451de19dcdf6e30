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
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tracker.timelines.workdays import DEFAULT_CALENDAR, MAX_WORKDAYS, WorkCalendar, add_workdays
from tracker.timelines.zones import gap_problem, zone_hint

Edge = Literal["start", "end"]
Anchor = Literal["start", "end", "done"]

END_OF_DAY = time(23, 59, 59)
# Every date a timeline yields stays in these years: far enough for any working group, and far
# from year 1 and 9999, where a zone conversion or an offset would leave what datetime holds.
FIRST_YEAR, LAST_YEAR = 1900, 2200
_UNITS = {"d": "day", "w": "week", "h": "hour", "m": "minute", "wd": "working day"}
_OFFSET = re.compile(r"(\d{1,6})\s*([dwhm])")
_ABSOLUTE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")
_SLUG = r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?"
_LOOKS_ABSOLUTE = re.compile(r"\d{4}-\d")
SLUG = re.compile(_SLUG)
# Limits on what a secretariat writes, so reading a date stays quick whatever the file holds.
MAX_EXPRESSION_LENGTH = 200
MAX_TERMS = 10
MAX_EXPRESSION_OFFSET = timedelta(days=36525)  # 100 years
_MAX_DIGITS = 9  # more digits than any offset up to 100 years has, in any unit
_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_ALPHANUMERIC = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_DIGITS = frozenset("0123456789")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyz")
_ANCHORS = ("start", "end", "done")


class DateError(ValueError):
    """A date, offset or expression that cannot be understood."""


@dataclass(frozen=True, order=True)
class Offset:
    """A signed amount of calendar days, exact minutes or working days (in relative dates only)."""

    days: int = 0
    minutes: int = 0
    workdays: int = 0

    @property
    def is_calendar(self) -> bool:
        return self.minutes == 0

    def exact(self) -> timedelta:
        return timedelta(days=self.days, minutes=self.minutes)

    def __neg__(self) -> Offset:
        return Offset(-self.days, -self.minutes, -self.workdays)

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


# Files of the tz database that are no zone of a place: 'localtime' is whatever the host is set to,
# 'Factory' a placeholder, 'posixrules' and the posix/ and right/ trees copies for other software
# (right/ counts leap seconds, so it disagrees with every calendar by half a minute).
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@lru_cache(maxsize=512)
def get_zone(name: str) -> ZoneInfo:
    """Return the IANA zone *name*; raise DateError naming near matches."""
    if name != name.strip() or not name or name.startswith(("/", ".")) or ".." in name:
        raise DateError(f"unknown time zone {shorten(name)!r}")
    if name in _NOT_ZONES or name.startswith(("posix/", "right/")):
        raise DateError(f"{name!r} is no place's time zone: write one such as Europe/Zurich or America/New_York")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # Cities, countries and abbreviations are what people write first: name the zones they mean.
        raise DateError(f"unknown time zone {shorten(name)!r}{zone_hint(name)}") from None


def suggest(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the nearest choice, or ''."""
    import difflib

    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {found[0]!r}?)" if found else ""


@lru_cache(maxsize=4096)  # results are frozen; timeline files repeat the same few offsets
def parse_offset(text: str) -> Offset:
    """Parse '14d', '2w', '4h' or '30m' into an Offset."""
    stripped = text.strip()
    match = _OFFSET.fullmatch(stripped) if len(stripped) <= 20 else None
    if match is None:
        raise DateError(
            f"bad offset {shorten(text)!r}: write a number and a unit, d (days), w (weeks), h (hours) or m (minutes), "
            "e.g. 14d"
        )
    return _make_offset(int(match.group(1)), match.group(2))


def shorten(text: str, limit: int = 40) -> str:
    """Return *text* cut to *limit* characters with '…', so a message quoting it stays a line."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def parse_escalation(text: str) -> Offset:
    """Parse an overdue offset ('3d', '12h') after a due day; raise DateError unless it is from 1 hour to 1 year."""
    offset = parse_offset(text)
    if not SHORTEST_REMINDER <= offset.exact() <= LONGEST_REMINDER:
        raise DateError(f"{text.strip()!r} is out of range: chase from 1h to 366d (about a year) after the due day")
    return offset


def _make_offset(amount: int, unit: str) -> Offset:
    if unit == "wd":
        return Offset(workdays=amount)
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
    if offset.workdays:
        return f"{abs(offset.workdays)}wd"
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
    """Parse an absolute date or a relative one such as 'meeting - 30d', as written in a timeline file."""
    text = text.strip()
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise DateError(
            f"the date is {len(text)} characters long; write it in at most {MAX_EXPRESSION_LENGTH} "
            "(e.g. 'meeting - 30d')"
        )
    if _LOOKS_ABSOLUTE.match(text):
        return parse_absolute(text)
    expr = _Tokens(text).relative()
    if len(expr.offsets) > MAX_TERMS:
        raise DateError(f"{len(expr.offsets)} offsets; a relative date adds at most {MAX_TERMS} (e.g. 'meeting - 30d')")
    return expr


@lru_cache(maxsize=65536)
def parse_stored_expr(text: str) -> Expr:
    """Parse an expression the store holds (written by us, maybe before today's limits) without the limits."""
    text = text.strip()
    return parse_absolute(text) if _LOOKS_ABSOLUTE.match(text) else _Tokens(text, limited=False).relative()


class _Tokens:
    """Read `[timeline/]milestone[.anchor] (± amount unit)*` left to right, once: linear in the text."""

    def __init__(self, text: str, *, limited: bool = True) -> None:
        self.text = text
        self.at = 0
        self.limited = limited

    def relative(self) -> Relative:
        first = self.name()
        timeline, milestone = (first, self.name()) if self.take("/") else (None, first)
        anchor = self.word() if self.take(".") else None
        if anchor is not None and anchor not in _ANCHORS:
            raise self.bad()
        offsets = []
        while self.skip_spaces() < len(self.text):
            offsets.append(self.term())
        return Relative(milestone, timeline, cast("Anchor | None", anchor), tuple(offsets))

    def bad(self) -> DateError:
        return DateError(
            f"bad date {shorten(self.text, 60)!r}: write YYYY-MM-DD, YYYY-MM-DD HH:MM, "
            "or a relative date such as 'meeting - 30d', 'draft.done + 2w', 'other-timeline/meeting - 7d'"
        )

    def run(self, allowed: frozenset[str]) -> str:
        start = self.at
        while self.at < len(self.text) and self.text[self.at] in allowed:
            self.at += 1
        return self.text[start : self.at]

    def take(self, character: str) -> bool:
        if self.text.startswith(character, self.at):
            self.at += 1
            return True
        return False

    def skip_spaces(self) -> int:
        while self.at < len(self.text) and self.text[self.at].isspace():
            self.at += 1
        return self.at

    def name(self) -> str:
        """Read a slug; a trailing '-' is given back, as it may be the sign of an offset ('meeting- 30d')."""
        start = self.at
        found = self.run(_NAME_CHARACTERS).rstrip("-_")
        self.at = start + len(found)
        if not found or found[0] not in _ALPHANUMERIC:
            raise self.bad()
        return found

    def word(self) -> str:
        return self.run(_LETTERS)

    def term(self) -> Offset:
        sign = self.text[self.at]
        if sign not in "+-":
            raise self.bad()
        self.at += 1
        self.skip_spaces()
        amount = self.run(_DIGITS)
        self.skip_spaces()
        unit = self.word()
        if not amount or not unit:
            raise self.bad()
        if unit not in _UNITS:
            raise DateError(f"bad unit {shorten(unit, 20)!r} in {shorten(self.text, 60)!r}: use d, w, h, m or wd")
        offset = self.offset(amount, unit)
        return -offset if sign == "-" else offset

    def offset(self, amount: str, unit: str) -> Offset:
        too_far = DateError(
            f"the offset {shorten(amount + unit, 13)!r} is more than 100 years (at most 36525d, 5217w, 876600h)"
        )
        # Checked before int(): Python refuses to read a number of more than 4,300 digits.
        if len(amount) > (_MAX_DIGITS if self.limited else 4000):
            raise too_far
        if unit == "wd" and int(amount) > MAX_WORKDAYS:
            # Counted a day at a time: bounded so that a file's dates stay quick to work out.
            raise DateError(f"the offset {shorten(amount + unit, 13)!r} is too far: at most {MAX_WORKDAYS}wd")
        offset = _make_offset(int(amount), unit)
        # Compared as whole seconds: a timedelta of a billion weeks would overflow first.
        if self.limited and offset.days * 86400 + offset.minutes * 60 > MAX_EXPRESSION_OFFSET.total_seconds():
            raise too_far
        return offset


def shift(point: LocalPoint, offsets: tuple[Offset, ...], calendar: WorkCalendar = DEFAULT_CALENDAR) -> LocalPoint:
    """Move *point* by calendar days, working days of *calendar* and exact minutes, in its own zone."""
    for offset in offsets:
        if offset.workdays:
            point = LocalPoint(add_workdays(calendar, point.day, offset.workdays), point.clock, point.zone, point.edge)
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


def skipped_time(text: str, zone: str) -> str | None:
    """Say why a --at wall time names no instant (the clocks skip it in *zone*), or None; bad text: parse_when's."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if parsed.tzinfo is not None or len(text.strip()) == 10 or not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        return None
    get_zone(zone)  # an unknown zone is parse_when's DateError
    return gap_problem(parsed.date(), parsed.time(), zone)
