"""Working days: a timeline's working week and holidays, and the arithmetic on them.

Pure code: a calendar is a value (weekend days, a country's public holidays from the `holidays`
package, the organisation's own closures); no clock, no I/O. `meeting - 10wd` counts working days
back from the meeting's day, and `roll` moves a date that falls on a day off to a working day.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal, TypeVar

T = TypeVar("T")
Roll = Literal["previous", "next"]
ROLLS: tuple[Roll, ...] = ("previous", "next")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_WEEKEND = frozenset({5, 6})
MAX_CLOSED_DATES = 500  # an organisation's own closures over a few years
MAX_WORKDAYS = 1000  # working days in one term of an expression: about four years
# No calendar a file may declare has this many days off in a row (at most six weekend days a
# week, 500 closures); reaching it means the calendar has no working day left, said as an error.
_LONGEST_CLOSURE = 4000


class WorkdayError(ValueError):
    """A calendar with no working day near a date."""


@dataclass(frozen=True)
class WorkCalendar:
    """Which days are working days: not a weekend day, not a public holiday, not a closure."""

    weekend: frozenset[int] = DEFAULT_WEEKEND  # date.weekday() numbers: 5 Saturday, 6 Sunday
    country: str | None = None  # ISO 3166 code known to the `holidays` package, e.g. CH
    subdivision: str | None = None  # e.g. GE (canton of Geneva)
    closed: frozenset[date] = frozenset()

    def is_working(self, day: date) -> bool:
        if day.weekday() in self.weekend or day in self.closed:
            return False
        return self.country is None or day not in public_holidays(self.country, self.subdivision, day.year)

    def describe(self) -> dict[str, object] | None:
        """Return the calendar as the store keeps it (JSON); None for the default one."""
        if self == DEFAULT_CALENDAR:
            return None
        return {
            "weekend": [WEEKDAYS[d] for d in sorted(self.weekend)],
            "country": self.country,
            "subdivision": self.subdivision,
            "closed": [d.isoformat() for d in sorted(self.closed)],
        }


DEFAULT_CALENDAR = WorkCalendar()


def calendar_from_column(value: dict[str, object] | None) -> WorkCalendar:
    """Rebuild a calendar written by WorkCalendar.describe."""
    if not value:
        return DEFAULT_CALENDAR
    weekend, closed = value.get("weekend"), value.get("closed")
    country, subdivision = value.get("country"), value.get("subdivision")
    return WorkCalendar(
        frozenset(WEEKDAYS.index(d) for d in weekend if d in WEEKDAYS)
        if isinstance(weekend, list)
        else DEFAULT_WEEKEND,
        str(country) if country else None,
        str(subdivision) if subdivision else None,
        frozenset(date.fromisoformat(str(d)) for d in closed) if isinstance(closed, list) else frozenset(),
    )


@lru_cache(maxsize=1024)  # a sync asks for the same few years of the same few places
def public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    """Return the public holidays of *country* (and *subdivision*) in *year*."""
    import holidays  # here, not at the top: it loads every country's rules, which most commands never need

    try:
        return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=year).keys())
    except NotImplementedError:  # a place a later release of the library dropped: said, not a crash
        raise WorkdayError(f"the holidays library no longer knows {country} {subdivision or ''}".strip()) from None


@lru_cache(maxsize=1)
def supported_places() -> dict[str, tuple[str, ...]]:
    """Return each country code the `holidays` package knows, with its subdivision codes."""
    import holidays

    return {code: tuple(subdivisions) for code, subdivisions in holidays.list_supported_countries().items()}


def step(calendar: WorkCalendar, day: date, direction: int) -> date:
    """Return the nearest working day strictly before (-1) or after (+1) *day*."""
    for distance in range(1, _LONGEST_CLOSURE + 1):
        found = day + timedelta(days=direction * distance)
        if calendar.is_working(found):
            return found
    where = "before" if direction < 0 else "after"
    raise WorkdayError(f"no working day within {_LONGEST_CLOSURE} days {where} {day.isoformat()}: check the weekend")


@lru_cache(maxsize=65536)  # calendars are frozen; many milestones count the same days from the same meeting
def add_workdays(calendar: WorkCalendar, day: date, count: int) -> date:
    """Move *count* working days from *day* (back when negative): the result is always a working day.

    Counting starts from the day itself whether or not it is a working day: `- 1wd` from a
    Monday is the Friday before, and from a Sunday too.
    """
    if count == 0:
        return day
    direction = 1 if count > 0 else -1
    for _ in range(abs(count)):
        day = step(calendar, day, direction)
    return day


def roll_day(calendar: WorkCalendar, day: date, roll: Roll) -> date:
    """Return *day* if it is a working day, else the previous or next one."""
    if calendar.is_working(day):
        return day
    return step(calendar, day, -1 if roll == "previous" else 1)


def read_calendar(weekend: str, holidays: str, closures: str) -> WorkCalendar:
    """Build the default calendar from settings text ('sat,sun', 'CH-GE', '2026-12-24,2026-12-31').

    Raise WorkdayError saying which setting is wrong and what to write; the same bounds as in a timeline file.
    """
    country, subdivision = _labelled("holidays", read_holidays, holidays)
    return WorkCalendar(_labelled("weekend", read_weekend, weekend), country, subdivision,
                        _labelled("closures", read_closures, closures))  # fmt: skip


def _labelled(name: str, read: Callable[[str], T], text: str) -> T:
    try:
        return read(text)
    except WorkdayError as exc:
        raise WorkdayError(f"{name}: {exc}") from None


def read_weekend(text: str) -> frozenset[int]:
    """Read the weekend setting ('sat,sun'); each setting is read apart so that its own name labels its error."""
    days = [part.strip().lower() for part in text.split(",") if part.strip()]
    if any(day not in WEEKDAYS for day in days) or len(set(days)) > len(WEEKDAYS) - 1:
        raise WorkdayError(f"write at most six of {', '.join(WEEKDAYS)}, comma-separated, e.g. sat,sun")
    return frozenset(WEEKDAYS.index(day) for day in days)


def read_holidays(text: str) -> tuple[str | None, str | None]:
    """Read the holidays setting ('CH', 'CH-GE', or nothing) as a country and subdivision known to the library."""
    country, _, subdivision = text.strip().partition("-")
    if not country:
        return None, None
    places = supported_places()
    if country not in places:
        raise WorkdayError(f"{text.strip()[:40]!r} is no country known to the holidays library: write an ISO 3166 "
                           "code (CH, FR, US), or country-subdivision (CH-GE)")  # fmt: skip
    known = places[country]
    if subdivision and subdivision not in known:
        listed = ", ".join(known[:30]) + (", …" if len(known) > 30 else "") if known else "none"
        raise WorkdayError(f"{country} has no subdivision {subdivision[:20]!r}; it has: {listed}")
    return country, subdivision or None


def read_closures(text: str) -> frozenset[date]:
    """Read the closures setting: YYYY-MM-DD dates, comma-separated, at most MAX_CLOSED_DATES."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if len(parts) > MAX_CLOSED_DATES:
        raise WorkdayError(f"at most {MAX_CLOSED_DATES} dates")
    try:
        return frozenset(date.fromisoformat(part) for part in parts)
    except ValueError:
        raise WorkdayError("write dates as YYYY-MM-DD, comma-separated") from None
