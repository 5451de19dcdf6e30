"""Repeat rules of timeline files: the part of RFC 5545 RRULE that every part of Tracker expands quickly.

Pure: text and a first date in, a canonical rule or the reasons it is refused out.

The planner, the feeds and the pages expand a rule with dateutil, which walks period by
period from the first date and stops only at an occurrence past the window it is asked
for (or at year 9999). So a rule is accepted only when it repeats at most daily, ends
within bounds when it is daily, yields its first date, and every number in it is in range.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from itertools import takewhile

from dateutil.rrule import rrulestr

from tracker.timelines.dates import LAST_YEAR, shorten
from tracker.timelines.views import DAY_PARTS, REPEAT_STEPS, between, explicit_rule
from tracker.timelines.zones import clock_change, fold_text, gap_reading, gap_text, in_change, is_gap

MAX_RULE_LENGTH = 200
MAX_COUNT = 1000
MAX_INTERVAL = 1000
MAX_UNTIL_YEARS = 50
FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
PARTS = ("FREQ", "INTERVAL", "COUNT", "UNTIL", "BYMONTH", "BYMONTHDAY", "BYDAY", "BYYEARDAY", "BYWEEKNO", "BYSETPOS",
         "WKST")  # fmt: skip
_BY_PARTS = ("BYMONTH", "BYMONTHDAY", "BYDAY", "BYYEARDAY", "BYWEEKNO")
# RFC 5545 (3.3.10) leaves these out for some frequencies; DAILY and WEEKLY take only plain filters,
# so that a rule of theirs that never matches is caught by the checks below, not by walking days.
_ALLOWED_WITH = {
    "BYMONTHDAY": ("MONTHLY", "YEARLY"),
    "BYYEARDAY": ("YEARLY",),
    "BYWEEKNO": ("YEARLY",),
    "BYSETPOS": ("MONTHLY", "YEARLY"),
}
_SETPOS_RANGE = {"MONTHLY": 31, "YEARLY": 366}
_SAME_TIME = "a repeating milestone keeps the time of its first date"
_NOT_SUPPORTED = {
    "BYHOUR": f"BYHOUR is not supported: {_SAME_TIME}",
    "BYMINUTE": f"BYMINUTE is not supported: {_SAME_TIME}",
    "BYSECOND": f"BYSECOND is not supported: {_SAME_TIME}",
    "DTSTART": "DTSTART must not be set: the milestone's own date is the first occurrence",
}


class RepeatError(ValueError):
    """A repeat rule Tracker does not accept; the message says why and how to fix it."""


@dataclass(frozen=True)
class Repeat:
    """A checked rule: its canonical text and what the date checks need of it."""

    text: str
    freq: str
    interval: int = 1
    count: int | None = None
    until: datetime | None = None  # naive, in the timeline's zone, as dateutil reads it
    until_text: str = ""


@lru_cache(maxsize=4096)
def read_repeat(text: str) -> Repeat:
    """Check a rule written in a timeline file; raise RepeatError with every problem, one per line."""
    text = text.strip().removeprefix("RRULE:")
    if len(text) > MAX_RULE_LENGTH:
        raise RepeatError(f"the rule is {len(text)} characters long; write it in at most {MAX_RULE_LENGTH}")
    parts, problems = split_parts(text)
    problems += [*check_values(parts), *check_combinations(parts)]
    if problems:
        raise RepeatError("\n".join(problems))
    return Repeat(
        text=";".join(f"{name}={canonical_value(name, value)}" for name, value in parts.items()),
        freq=parts["FREQ"],
        interval=int(parts.get("INTERVAL", "1")),
        count=int(parts["COUNT"]) if "COUNT" in parts else None,
        until=parse_until(parts["UNTIL"]) if "UNTIL" in parts else None,
        until_text=parts.get("UNTIL", ""),
    )


def split_parts(text: str) -> tuple[dict[str, str], list[str]]:
    """Return NAME=VALUE parts in the order written (names and values upper-cased) and what is wrong with them."""
    parts: dict[str, str] = {}
    problems: list[str] = []
    for part in (p.strip() for p in text.split(";")):
        name, equals, value = part.partition("=")
        name, value = name.strip().upper(), ",".join(item.strip() for item in value.upper().split(","))
        if not part:
            continue
        if not equals or not name:
            problems.append(f"{shorten(part)!r} is not NAME=VALUE, e.g. FREQ=YEARLY;COUNT=5")
        elif name in _NOT_SUPPORTED:
            problems.append(_NOT_SUPPORTED[name])
        elif name not in PARTS:
            problems.append(f"unknown part {shorten(name)!r}: use {', '.join(PARTS[:-1])} or {PARTS[-1]}")
        elif name in parts:
            problems.append(f"{name} is given twice")
        else:
            parts[name] = value
    if "FREQ" not in parts:
        problems.append("FREQ is missing: e.g. FREQ=YEARLY;COUNT=5")
    return parts, problems


def check_values(parts: dict[str, str]) -> Iterator[str]:
    """Yield a problem for each value that is not of its kind or out of its range."""
    freq = parts.get("FREQ")
    if freq is not None and freq not in FREQUENCIES:
        too_often = freq in ("SECONDLY", "MINUTELY", "HOURLY")
        what = "is too frequent" if too_often else "is not a frequency"
        yield f"FREQ={shorten(freq)} {what}: repeat DAILY, WEEKLY, MONTHLY or YEARLY"
    for name, value in parts.items():
        if name == "UNTIL":
            yield from check_until(value)
        elif name == "WKST" and value not in WEEKDAYS:
            yield f"WKST={shorten(value)} is not a weekday: use {', '.join(WEEKDAYS)}"
        elif name == "BYDAY":
            yield from (message for item in value.split(",") if (message := weekday_problem(item, parts)))
        elif name in _NUMBERS:
            yield from (message for item in value.split(",") if (message := number_problem(name, item, freq)))


_NUMBERS = {  # name: (lowest, highest, negative values allowed, what the range means)
    "INTERVAL": (1, MAX_INTERVAL, False, f"repeat every 1 to {MAX_INTERVAL} periods"),
    "COUNT": (1, MAX_COUNT, False, f"count from 1 to {MAX_COUNT} occurrences"),
    "BYMONTH": (1, 12, False, "months are 1 to 12"),
    "BYMONTHDAY": (1, 31, True, "days of the month are 1 to 31 (or -1 to -31)"),
    "BYYEARDAY": (1, 366, True, "days of the year are 1 to 366 (or -1 to -366)"),
    "BYWEEKNO": (1, 53, True, "weeks of the year are 1 to 53 (or -1 to -53)"),
    "BYSETPOS": (1, 366, True, "positions are 1 to 366 (or -1 to -366)"),
}


def number_problem(name: str, item: str, freq: str | None) -> str | None:
    """Say what is wrong with one number of a rule part, or return None."""
    low, high, signed, meaning = _NUMBERS[name]
    if name == "BYSETPOS" and freq in _SETPOS_RANGE:
        high = _SETPOS_RANGE[freq]
        meaning = f"positions in a {freq.lower()} set are 1 to {high} (or -1 to -{high})"
    number = read_int(item, signed)
    if number is None:
        return f"{name}={shorten(item)} is not a {'whole ' if signed else ''}number"
    if not low <= abs(number) <= high:
        return f"{name}={shorten(item)} is out of range: {meaning}"
    return None


def read_int(item: str, signed: bool) -> int | None:
    """Read a small whole number ('+3', '-1', '12'); None for anything else, however long."""
    digits = item[1:] if signed and item[:1] in ("+", "-") else item
    if not digits or len(digits) > 12 or not digits.isascii() or not digits.isdigit():
        return None
    return -int(digits) if item.startswith("-") else int(digits)


def weekday_problem(item: str, parts: dict[str, str]) -> str | None:
    """Say what is wrong with one BYDAY item ('MO', '2TU', '-1FR'), or return None."""
    day, number = item[-2:], item[:-2]
    if day not in WEEKDAYS:
        return f"BYDAY={shorten(item)} is not a weekday: use {', '.join(WEEKDAYS)}, maybe numbered (2TU, -1FR)"
    if not number:
        return None
    freq = parts.get("FREQ")
    if freq in ("DAILY", "WEEKLY"):
        return f"BYDAY={shorten(item)}: a {freq.lower()} rule takes plain weekdays (MO, TU, ...), not numbered ones"
    if "BYWEEKNO" in parts:
        return f"BYDAY={shorten(item)}: with BYWEEKNO, name plain weekdays (MO, TU, ...), not numbered ones"
    within_month = freq == "MONTHLY" or "BYMONTH" in parts
    high, within = (5, "a month") if within_month else (53, "a year")
    ordinal = read_int(number, signed=True)
    if ordinal is None:
        return f"BYDAY={shorten(item)} is not a weekday: use {', '.join(WEEKDAYS)}, maybe numbered (2TU, -1FR)"
    if not 1 <= abs(ordinal) <= high:
        span = f"1 to {high} (or -1 to -{high} from the end) within {within}"
        return f"BYDAY={shorten(item)} is out of range: number a weekday from {span}"
    return None


def check_until(value: str) -> Iterator[str]:
    if value.endswith("Z"):
        yield (f"UNTIL={shorten(value)}: write UNTIL as YYYYMMDD or YYYYMMDDTHHMMSS in the timeline's zone, without Z")
    elif parse_until(value) is None:
        yield f"UNTIL={shorten(value)} is not a date: write YYYYMMDD or YYYYMMDDTHHMMSS"


def parse_until(value: str) -> datetime | None:
    """Read UNTIL as dateutil does (a date is its midnight), or None when it is not a date."""
    day, has_time, clock = value.partition("T")
    if len(day) != 8 or not day.isascii() or not day.isdigit() or (has_time and len(clock) != 6):
        return None
    if has_time and not (clock.isascii() and clock.isdigit()):
        return None
    try:
        found = date(int(day[:4]), int(day[4:6]), int(day[6:]))
        at = time(int(clock[:2]), int(clock[2:4]), int(clock[4:])) if has_time else time(0)
    except ValueError:
        return None
    return datetime.combine(found, at)


def check_combinations(parts: dict[str, str]) -> Iterator[str]:
    """Yield a problem for each part the frequency does not take, or that needs another."""
    freq = parts.get("FREQ")
    if freq not in FREQUENCIES:
        return
    for name, frequencies in _ALLOWED_WITH.items():
        if name in parts and freq not in frequencies:
            choices = f"{', '.join(frequencies[:-1])} or {frequencies[-1]}" if len(frequencies) > 1 else frequencies[0]
            yield f"{name} needs FREQ={choices}"
    if "BYSETPOS" in parts and not any(name in parts for name in _BY_PARTS):
        yield "BYSETPOS needs another BY part to pick from, e.g. BYDAY=MO,TU,WE,TH,FR"
    if "COUNT" in parts and "UNTIL" in parts:
        yield "give COUNT or UNTIL, not both"
    if "BYSETPOS" in parts and "BYMONTHDAY" in parts:
        yield ("BYSETPOS with BYMONTHDAY: Thunderbird (ical.js) ignores BYSETPOS there and lists every "
               "BYMONTHDAY; name one day (BYMONTHDAY=-1 is the last day of the month), or pick by BYDAY")  # fmt: skip


def canonical_value(name: str, value: str) -> str:
    """Write a checked value back the one way: numbers without '+' or leading zeros."""
    if name in ("FREQ", "UNTIL", "WKST"):
        return value
    if name == "BYDAY":
        return ",".join(f"{int(item[:-2]) if item[:-2] else ''}{item[-2:]}" for item in value.split(","))
    return ",".join(str(int(item)) for item in value.split(","))


def check_first_date(repeat: Repeat, first: datetime) -> list[str]:
    """Check the rule against the milestone's first date (naive, local): it must be the first occurrence."""
    problems = []
    if repeat.freq == "DAILY" and repeat.count is None and repeat.until is None:
        problems.append("a daily rule needs an end (COUNT or UNTIL), e.g. FREQ=DAILY;COUNT=30")
    if repeat.until is not None:
        problems.extend(until_problems(repeat, first))
    if problems:
        return problems
    if never_on_its_weekday(repeat, first.date()):
        return [f"{repeat.text} yields no date at all: every step lands on {first:%A}, which its BYDAY leaves out"]
    found = first_occurrence(repeat, first.date())
    if found == first.date():
        return missing_day_problems(repeat, found) or reach_problems(repeat, first)
    after = f" (its first date after that is {found})" if found is not None else ""
    return [f"{first.date()} is not a date of {repeat.text}{after}: start the milestone on a date the rule yields"]


def missing_day_problems(repeat: Repeat, first: date) -> list[str]:
    """Refuse a rule that takes its day from a first date some of its months lack (29 February, the 31st).

    RFC 5545 skips such a month, but calendars differ: ical.js (Thunderbird) moves 29 February to
    1 March. The rule must say which it means, in a form every calendar reads alike (BYSETPOS over
    BYMONTHDAY is not one: ical.js ignores it).
    """
    parts = dict(part.split("=", 1) for part in repeat.text.split(";"))
    if repeat.freq not in ("MONTHLY", "YEARLY") or any(name in parts for name in DAY_PARTS):
        return []
    lacking = [month for month in visited_months(repeat, parts, first.month) if first.day > _SHORTEST[month - 1]]
    if not lacking:
        return []
    once_a_year = visited_months(repeat, parts, first.month) == [first.month]
    what, lack = lacking_words(first, lacking, once_a_year)
    return [f"{repeat.text} from {what}: {lack}, and calendars differ there (some skip the date, others move it); "
            f"say which: {day_choices(repeat, parts, first, once_a_year)}"]  # fmt: skip


_SHORTEST = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # days in each month, in any year


def lacking_words(first: date, lacking: list[int], once_a_year: bool) -> tuple[str, str]:
    """Name the first date's day and the periods that lack it: ('the 31st', 'April has no 31st')."""
    if once_a_year and (first.month, first.day) == (2, 29):
        return "29 February", "common years have no 29 February"
    day = ordinal(first.day)
    common = " in common years" if first.day == 29 else ""
    return f"the {day}", f"{month_names(lacking)} {'has' if len(lacking) == 1 else 'have'} no {day}{common}"


def month_names(months: list[int]) -> str:
    names = [calendar.month_name[month] for month in months]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def visited_months(repeat: Repeat, parts: dict[str, str], first_month: int) -> list[int]:
    """Return the months a monthly or yearly rule without a day part lands in, in calendar order."""
    chosen = {int(month) for month in parts["BYMONTH"].split(",")} if "BYMONTH" in parts else set(range(1, 13))
    if repeat.freq == "YEARLY":
        return sorted(chosen if "BYMONTH" in parts else {first_month})
    stepped = {(first_month - 1 + step * repeat.interval) % 12 + 1 for step in range(12)}
    return sorted(stepped & chosen)


def day_choices(repeat: Repeat, parts: dict[str, str], first: date, once_a_year: bool) -> str:
    """Say how to write each choice for a missing day: skip it, take the month's last day, or roll on.

    Each choice is a rule validate accepts, and says what it does in the rule's own periods: a rule
    landing in February alone (yearly, or monthly by twelve) lacks a day in some years, not months.
    """
    month = "" if repeat.freq == "MONTHLY" or "BYMONTH" in parts else f";BYMONTH={first.month}"
    skip = f"{repeat.text}{month};BYMONTHDAY={first.day} skips {'those years' if once_a_year else 'those months'}"
    last_rule = f"{repeat.text}{month};BYMONTHDAY=-1"
    if not once_a_year:
        months = visited_months(repeat, parts, first.month)
        which = "every month" if len(months) == 12 else month_names(months)
        start = "" if first.day == calendar.monthrange(first.year, first.month)[1] else ", from a month's last day,"
        return f"{skip}; {last_rule}{start} takes the last day of {which}"
    last = f"{last_rule} takes 28 February in common years"
    day_60 = f"{yearly_rule(repeat, parts)};BYYEARDAY=60 takes 1 March in common years (the year's 60th day)"
    return f"{skip}; {last}; {day_60}"


def yearly_rule(repeat: Repeat, parts: dict[str, str]) -> str:
    """Write a rule landing in one month a year as a yearly one without BYMONTH, as BYYEARDAY needs (RFC 5545)."""
    step = repeat.interval if repeat.freq == "YEARLY" else math.lcm(repeat.interval, 12) // 12
    rest = [f"{name}={value}" for name, value in parts.items() if name not in ("FREQ", "INTERVAL", "BYMONTH")]
    return ";".join(["FREQ=YEARLY", *([f"INTERVAL={step}"] if step > 1 else []), *rest])


def ordinal(day: int) -> str:
    """Name a day that some months lack: only the 29th, 30th and 31st are."""
    return f"{day}{'st' if day == 31 else 'th'}"


def reach_problems(repeat: Repeat, first: datetime) -> list[str]:
    """Check how far a rule reaches: its last date by LAST_YEAR, and no more dates than planning walks.

    The planner counts a rule's dates from its first one (REPEAT_STEPS at most, to bound a page
    or a feed); an endless rule with many dates a year would pass that bound one day and drop out.
    """
    rule = rrulestr(repeat.text, dtstart=first)
    if repeat.count is not None:
        beyond = next((at for at in rule if at.year > LAST_YEAR), None)
        if beyond is None:
            return []
        return [f"{repeat.text} runs past {LAST_YEAR} (to {beyond:%Y-%m-%d} and on): lower COUNT or INTERVAL"]
    if repeat.until is not None:
        return []  # until_problems bounds it
    year_later = years_after(first, 1)
    per_year = sum(1 for _ in takewhile(lambda at: at < year_later, rule))
    if per_year * (LAST_YEAR - first.year + 1) <= REPEAT_STEPS:
        return []
    return [f"{repeat.text} gives {per_year} dates a year with no end, more than the {REPEAT_STEPS:,} a rule may "
            f"give by {LAST_YEAR}: give it an end (COUNT, at most {MAX_COUNT}, or UNTIL)"]  # fmt: skip


def never_on_its_weekday(repeat: Repeat, first: date) -> bool:
    """Whether a daily rule stepping whole weeks can only land on a weekday its BYDAY leaves out.

    Caught here, as the probe would walk hundreds of years of days to find nothing.
    """
    parts = dict(part.split("=", 1) for part in repeat.text.split(";"))
    if repeat.freq != "DAILY" or "BYDAY" not in parts or int(parts.get("INTERVAL", "1")) % 7:
        return False
    return WEEKDAYS[first.weekday()] not in parts["BYDAY"].split(",")


def until_problems(repeat: Repeat, first: datetime) -> list[str]:
    assert repeat.until is not None
    shown = first.strftime("%Y-%m-%d %H:%M") if first.time() != time(0) else first.date().isoformat()
    if repeat.until < first:
        return [f"UNTIL={repeat.until_text} is before the first date, {shown}: the rule yields no date"]
    if repeat.until.year > LAST_YEAR:
        return [f"UNTIL={repeat.until_text} is after {LAST_YEAR}: end the rule by {LAST_YEAR}1231"]
    if repeat.until > years_after(first, MAX_UNTIL_YEARS):
        return [f"UNTIL={repeat.until_text} is more than {MAX_UNTIL_YEARS} years after the first date, {shown}"]
    periods = (repeat.until - first) // _PERIODS[repeat.freq] // repeat.interval
    if periods >= MAX_COUNT:
        unit = _PERIODS[repeat.freq].days
        most = timedelta(days=unit * repeat.interval * MAX_COUNT)
        return [f"UNTIL={repeat.until_text} lets a {repeat.freq.lower()} rule run {periods + 1} times; "
                f"end it within {most.days} days of the first date, or write COUNT"]  # fmt: skip
    return []


# How long a period lasts at least: dateutil walks one period per step, and a rule with UNTIL
# may take at most MAX_COUNT steps, as one with COUNT takes (months and years: 50 years come first).
_PERIODS = {"DAILY": timedelta(days=1), "WEEKLY": timedelta(days=7), "MONTHLY": timedelta(days=28),
            "YEARLY": timedelta(days=365)}  # fmt: skip


def years_after(at: datetime, years: int) -> datetime:
    """Return the same day *years* later (28 February for 29 February in a common year)."""
    try:
        return at.replace(year=at.year + years)
    except ValueError:
        return at.replace(year=at.year + years, day=28)


def first_occurrence(repeat: Repeat, first: date) -> date | None:
    """Return the rule's first date on or after *first* if it falls in that year or the next; else None.

    dateutil stops only at an occurrence or at year 9999, so the probe runs in one of the last
    years before 9999 laid out as *first*'s (weekday of 1 January, leap days in it and around):
    there the first period (the one *first* is in) has the same dates, and the walk ends soon.
    """
    twin = twin_year(first.year)
    try:
        probe = rrulestr(endless(repeat), dtstart=datetime.combine(first.replace(year=twin), time(0)))
        found = next(iter(probe), None)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError):
        return None
    # Beyond the next year the layouts may part; week numbers of the next year depend on the one after.
    if found is None or found.year > twin + ("BYWEEKNO" not in repeat.text):
        return None
    return found.date().replace(year=found.year - twin + first.year)


def endless(repeat: Repeat) -> str:
    """The rule without COUNT or UNTIL (checked apart): they end a rule, and cannot move its first date."""
    return ";".join(part for part in repeat.text.split(";") if not part.startswith(("COUNT=", "UNTIL=")))


@lru_cache(maxsize=512)
def twin_year(year: int) -> int:
    """Return the latest year before 9999 laid out as *year* and its neighbours (one exists every 28 years)."""
    wanted = year_layout(year)
    return next(twin for twin in range(9998, 9900, -1) if year_layout(twin) == wanted)


def year_layout(year: int) -> tuple[int, bool, bool, bool]:
    return date(year, 1, 1).weekday(), calendar.isleap(year - 1), calendar.isleap(year), calendar.isleap(year + 1)


CLOCK_YEARS = 10  # how far a rule's dates are checked against the clocks: as far as calendars are compared


@lru_cache(maxsize=1024)  # pure, and a sync asks again for every unchanged rule
def clock_changes_text(text: str, first: datetime, zone: str) -> str | None:
    """Say which dates of a timed rule fall where the clocks change in its first ten years, or None.

    The first date is checked where it is written; the later ones keep its wall time, so a weekly
    02:30 on Sundays meets the night the clocks skip it and the one they repeat it every year.
    Calendars read the first forward and the second at its first instant (RFC 5545); the file
    should not leave that to them. Bounded: ten years of a daily rule are 3,653 dates at most.
    """
    try:
        # A rule refused for its first date may yield nothing: dateutil would walk to year 9999 (a second).
        if check_first_date(read_repeat(text), first):
            return None  # its own problem is told
        rule = rrulestr(explicit_rule(text, first.date()), dtstart=first)
        dates = between(rule, first + timedelta(seconds=1), years_after(first, CLOCK_YEARS))
    except (ValueError, TypeError, KeyError, IndexError, OverflowError):
        return None  # told by read_repeat or check_first_date
    hits = [at for at in dates if in_change(at, zone)]
    if not hits:
        return None
    clock, told = first.time(), []
    changes = [(at.date(), change) for at in hits if (change := clock_change(at.date(), clock, zone)) is not None]
    gap = next(((day, change) for day, change in changes if is_gap(change)), None)
    fold = next(((day, change) for day, change in changes if not is_gap(change)), None)
    if gap is not None:
        forward = gap_reading(gap[0], clock, gap[1])
        told.append(f"{gap_text(gap[0], clock, zone, gap[1])}, and calendars read it forward, as {forward}, "
                    "as RFC 5545 does")  # fmt: skip
    if fold is not None:
        told.append(f"{fold_text(fold[0], clock, zone, fold[1])}, and Tracker takes the first, as RFC 5545 does")
    many = f"{len(hits)} dates in the ten years from {first.date()} fall" if len(hits) > 1 else \
        f"1 date in the ten years from {first.date()} falls"  # fmt: skip
    return f"{many} where the clocks change: {'; '.join(told)}; write another time so that every date exists once"
