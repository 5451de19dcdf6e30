"""VTIMEZONE components from the tz database, correct in every calendar client."""

from __future__ import annotations

import importlib.resources
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard, vRecur

from tracker.timelines.dates import get_zone

# icalendar's Timezone.from_tzid lists every change as an RDATE and writes a change to summer
# time an hour late (03:00 instead of 02:00 in the offset before it). Outlook is reported to
# misread RDATE-only VTIMEZONEs, so zones whose current rule is a yearly one (the tz database
# footer "CET-1CEST,M3.5.0,M10.5.0/3") are written as yearly RRULEs, like Google and
# Thunderbird do, from the first year the rule holds. Changes before that year, back to the
# feed's first timed item in the zone, are written as single onsets (no RDATE). A zone with no
# yearly rule today falls back to icalendar's list.

_DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")
_NAME, _HOURS = r"(<[^>]+>|[A-Za-z]{3,})", r"([+-]?\d{1,2}(?::\d{2}){0,2})"
_POSIX_HEAD = re.compile(rf"{_NAME}{_HOURS}(?:{_NAME}{_HOURS}?)?")
_POSIX_RULE = re.compile(r"M(\d{1,2})\.([1-5])\.([0-6])(?:/(\d{1,2}(?::\d{2}){0,2}))?")
_FIRST_YEAR, _LAST_YEAR = 1970, 2037


@dataclass(frozen=True)
class _Rule:
    """A yearly change: the *week*th (5: last) *weekday* (0: Sunday) of *month*, at local *clock*."""

    month: int
    week: int
    weekday: int
    clock: timedelta  # local time in the offset before the change

    def day(self, year: int) -> date:
        first = date(year, self.month, 1)
        day = first + timedelta(days=(self.weekday - first.isoweekday()) % 7 + 7 * (self.week - 1))
        while day.month != self.month:  # week 5 means the last one
            day -= timedelta(days=7)
        return day

    def onset(self, year: int) -> datetime:
        return datetime.combine(self.day(year), time(0)) + self.clock

    def byday(self) -> str:
        return f"{-1 if self.week == 5 else self.week}{_DAYS[self.weekday]}"


@dataclass(frozen=True)
class _Observance:
    name: str
    offset_from: timedelta
    offset_to: timedelta
    rule: _Rule | None  # None: the only observance, no changes

    def change_at(self, year: int) -> datetime:
        assert self.rule is not None
        return (self.rule.onset(year) - self.offset_from).replace(tzinfo=UTC)


def make_vtimezone(zone: str, since: int = _LAST_YEAR) -> Timezone:
    """Return the VTIMEZONE of *zone*, right from the year *since* on (shared: do not modify it)."""
    return _vtimezone(*_vtimezone_key(zone, since))


def vtimezone_bytes(zone: str, since: int = _LAST_YEAR) -> bytes:
    return _serialised(*_vtimezone_key(zone, since))


def _vtimezone_key(zone: str, since: int) -> tuple[str, int, bool]:
    """Return (zone, first year described, whether icalendar's list is used): one key per VTIMEZONE."""
    rules = zone_rules(zone)
    if rules is None:
        return zone, min(max(since, _FIRST_YEAR), _LAST_YEAR), True
    return zone, min(max(since, _FIRST_YEAR), rules[1] + 1), False


@lru_cache(maxsize=256)
def _vtimezone(zone: str, since: int, fallback: bool) -> Timezone:
    return Timezone.from_tzid(zone, first_date=date(since, 1, 1)) if fallback else _rule_vtimezone(zone, since)


@lru_cache(maxsize=256)
def _serialised(zone: str, since: int, fallback: bool) -> bytes:
    return bytes(_vtimezone(zone, since, fallback).to_ical())


def _rule_vtimezone(zone: str, since: int) -> Timezone:
    """Return the yearly rule alone, or when *since* comes before it, the exact changes up to it first."""
    rules = zone_rules(zone)
    assert rules is not None
    observances, year = rules
    timezone = Timezone()
    timezone.add("tzid", zone)
    if since <= year:
        # Clients disagree about times before a VTIMEZONE's first onset: the history starts
        # with the offset in force on 1 January, and the rule takes over the year after.
        for part in past_changes(get_zone(zone), since, year + 1):
            timezone.add_component(part)
        year += 1
    for observance in observances:
        timezone.add_component(make_observance(observance, year))
    return timezone


@lru_cache(maxsize=256)
def zone_rules(zone: str) -> tuple[tuple[_Observance, ...], int] | None:
    """Return the zone's yearly rule and the first year it holds, or None when it has none now."""
    observances = parse_posix_tz(tzif_footer(zone))
    year = first_rule_year(get_zone(zone), observances) if observances else None
    return None if observances is None or year is None else (observances, year)


def past_changes(zone: tzinfo, since: int, until: int) -> list[TimezoneStandard | TimezoneDaylight]:
    """Return the offset on 1 January *since*, then one single-onset part per change until *until*."""
    day = datetime(since, 1, 1, tzinfo=zone).astimezone(UTC)
    end = datetime(until, 1, 1, tzinfo=zone).astimezone(UTC)
    parts = [make_change(zone, day, first=True)]
    while day < end:
        following = day + timedelta(days=1)
        if utc_offset(zone, day) != utc_offset(zone, following):
            parts.append(make_change(zone, find_change(zone, day, following)))
        day = following
    return parts


def find_change(zone: tzinfo, before: datetime, after: datetime) -> datetime:
    """Return the first second of the new offset between *before* and *after* (bisection)."""
    while after - before > timedelta(seconds=1):
        middle = before + (after - before) / 2
        middle = middle.replace(microsecond=0)
        if utc_offset(zone, middle) == utc_offset(zone, before):
            before = middle
        else:
            after = middle
    return after


def make_change(zone: tzinfo, at: datetime, *, first: bool = False) -> TimezoneStandard | TimezoneDaylight:
    """Return the part whose offset starts at *at* (the first one starts from its own offset)."""
    local = at.astimezone(zone)
    offset_to = local.utcoffset()
    offset_from = offset_to if first else utc_offset(zone, at - timedelta(seconds=1))
    assert offset_from is not None and offset_to is not None
    part = TimezoneDaylight() if local.dst() else TimezoneStandard()
    part.add("dtstart", (at + offset_from).replace(tzinfo=None))  # local time in the offset before
    part.add("tzname", local.tzname() or "")
    part.add("tzoffsetfrom", offset_from)
    part.add("tzoffsetto", offset_to)
    return part


def make_observance(observance: _Observance, year: int) -> TimezoneStandard | TimezoneDaylight:
    """Return a STANDARD or DAYLIGHT part that starts in *year* and repeats yearly."""
    rule = observance.rule
    part = TimezoneDaylight() if observance.offset_to > observance.offset_from else TimezoneStandard()
    part.add("dtstart", rule.onset(year) if rule else datetime(year, 1, 1))
    if rule is not None:
        part.add("rrule", vRecur({"FREQ": "YEARLY", "BYMONTH": rule.month, "BYDAY": rule.byday()}))
    part.add("tzname", observance.name.strip("<>"))
    part.add("tzoffsetfrom", observance.offset_from)
    part.add("tzoffsetto", observance.offset_to)
    return part


def tzif_footer(zone: str) -> str:
    """Return the POSIX TZ string at the end of *zone*'s TZif file, found as zoneinfo finds it."""
    data = read_tzif(zone)
    if len(data) < 5 or data[4] == 0:  # version 1 files have no footer
        return ""
    return data.rstrip(b"\n").rsplit(b"\n", 1)[-1].decode("ascii", "replace")


def read_tzif(zone: str) -> bytes:
    for folder in zoneinfo.TZPATH:
        path = Path(folder, zone)
        if path.is_file():
            return path.read_bytes()
    try:
        return importlib.resources.files("tzdata.zoneinfo").joinpath(*zone.split("/")).read_bytes()
    except (ModuleNotFoundError, OSError):
        return b""


def parse_posix_tz(text: str) -> tuple[_Observance, ...] | None:
    """Return the observances of a POSIX TZ string, or None for forms RRULEs cannot say."""
    head, *rules = text.split(",")
    match = _POSIX_HEAD.fullmatch(head)
    if match is None:
        return None
    std_name, std_text, dst_name, dst_text = match.groups()
    std = -posix_duration(std_text)  # POSIX counts hours west of Greenwich
    if dst_name is None:
        return None if rules else (_Observance(std_name, std, std, None),)
    dst = -posix_duration(dst_text) if dst_text else std + timedelta(hours=1)
    if len(rules) != 2:
        return None
    start, end = parse_posix_rule(rules[0]), parse_posix_rule(rules[1])
    if start is None or end is None:
        return None
    return (_Observance(dst_name, std, dst, start), _Observance(std_name, dst, std, end))


def posix_duration(text: str) -> timedelta:
    sign = -1 if text.startswith("-") else 1
    hours, minutes, seconds = ([int(part) for part in text.lstrip("+-").split(":")] + [0, 0])[:3]
    return sign * timedelta(hours=hours, minutes=minutes, seconds=seconds)


def parse_posix_rule(text: str) -> _Rule | None:
    """Parse 'M3.5.0/3'; None for Julian days and for times outside the day (no RRULE says those)."""
    match = _POSIX_RULE.fullmatch(text)
    if match is None:
        return None
    clock = posix_duration(match.group(4)) if match.group(4) else timedelta(hours=2)
    if clock >= timedelta(days=1):
        return None
    return _Rule(int(match.group(1)), int(match.group(2)), int(match.group(3)), clock)


def first_rule_year(zone: tzinfo, observances: tuple[_Observance, ...]) -> int | None:
    """Return the first year since which the rule matches the tz database, None if it does not now."""
    if not rule_holds(zone, observances, _LAST_YEAR):
        return None
    year = _LAST_YEAR
    while year > _FIRST_YEAR and rule_holds(zone, observances, year - 1):
        year -= 1
    return year


def rule_holds(zone: tzinfo, observances: tuple[_Observance, ...], year: int) -> bool:
    """Whether the rule gives the tz database's offset at every change of *year* and once a week."""
    second = timedelta(seconds=1)
    for o in observances:
        if o.rule is not None and not (
            utc_offset(zone, o.change_at(year) - second) == o.offset_from
            and utc_offset(zone, o.change_at(year)) == o.offset_to
        ):
            return False
    weeks = (datetime(year, 1, 1, tzinfo=UTC) + timedelta(weeks=n) for n in range(53))
    return all(utc_offset(zone, at) == rule_offset(observances, at) for at in weeks)


def rule_offset(observances: tuple[_Observance, ...], at: datetime) -> timedelta:
    """Return the offset the rule gives at the instant *at*."""
    changes = sorted((o.change_at(at.year), o.offset_to) for o in observances if o.rule is not None)
    if not changes:
        return observances[0].offset_to
    before = [offset for change, offset in changes if change <= at]
    return before[-1] if before else changes[-1][1]


def utc_offset(zone: tzinfo, at: datetime) -> timedelta | None:
    return at.astimezone(zone).utcoffset()
