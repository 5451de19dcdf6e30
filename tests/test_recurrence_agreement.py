"""Every calendar lists the dates `tracker upcoming` lists for a repeating milestone (issue 16, point 2).

For each rule of a table of edge cases (29 February, the 29th to the 31st, the last weekday,
BYSETPOS, weekly, a time of day across the changes of the clocks in Zurich), the feed is read
by recurring_ical_events (icalendar), ical.js (Thunderbird) under node and libical (Evolution),
and each must list, for ten years, exactly the occurrences Tracker itself expands. ical.js and
libical skip where they cannot be had, and fail instead under TRACKER_REQUIRE_BROWSER=1 (CI).

`tracker validate` refuses a rule that leaves a missing day to the calendar (29 February
yearly, the 29th to the 31st monthly): the calendars part there, so the rule must say which.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import factories
from tests.support.alarms import install_icaljs
from tests.support.browser import REQUIRED
from tests.support.expansions import icaljs_starts, libical_starts, library_starts, tracker_starts, write_icaljs_script
from tests.support.factories import REPO_SCHEDULES
from tests.support.libical import load_libical
from tracker.feeds import CalendarInfo, build_feed
from tracker.store.engine import open_store, transaction
from tracker.timelines.dates import END_OF_DAY, get_zone, local_to_utc
from tracker.timelines.pipeline import sync_folder
from tracker.timelines.repeats import check_first_date, read_repeat
from tracker.timelines.stored import load_views
from tracker.timelines.views import MilestoneView

ZONE = "Europe/Zurich"
YEARS = 10
NOW = datetime(2026, 12, 1, tzinfo=UTC)
BASE = "https://tracker.example.org"
INFO = CalendarInfo(name="All", description="All", url=f"{BASE}/", base_url=BASE, reminder_hour=9)

# (what it is, first date, time of day or None for an all-day deadline, rule, occurrences in ten years)
EDGE_CASES: list[tuple[str, date, time | None, str, int]] = [
    ("29 Feb yearly, leap years only", date(2028, 2, 29), None, "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", 3),
    ("29 Feb yearly, 28 Feb in common years", date(2028, 2, 29), None, "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1", 10),
    ("29 Feb yearly, 1 March in common years", date(2028, 2, 29), None, "FREQ=YEARLY;BYYEARDAY=60", 10),
    ("31st monthly, last day of each month", date(2027, 1, 31), None, "FREQ=MONTHLY;BYMONTHDAY=-1", 120),
    ("31st monthly, months without one skipped", date(2027, 1, 31), None, "FREQ=MONTHLY;BYMONTHDAY=31", 70),
    ("30th monthly, February skipped", date(2027, 1, 30), None, "FREQ=MONTHLY;BYMONTHDAY=30", 110),
    ("29th monthly, February skipped in common years", date(2027, 1, 29), None, "FREQ=MONTHLY;BYMONTHDAY=29", 113),
    ("last Friday of the month", date(2027, 1, 29), None, "FREQ=MONTHLY;BYDAY=-1FR", 120),
    ("last working day of the month", date(2027, 1, 29), None, "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", 120),
    ("third Monday of March", date(2027, 3, 15), None, "FREQ=YEARLY;BYMONTH=3;BYDAY=3MO", 10),
    ("10 March yearly, day from the first date", date(2027, 3, 10), None, "FREQ=YEARLY", 10),
    ("15th monthly, day from the first date", date(2027, 1, 15), None, "FREQ=MONTHLY", 120),
    ("weekly", date(2027, 1, 4), None, "FREQ=WEEKLY", 522),
    ("Monday and Thursday every other week", date(2027, 1, 4), None, "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH", 522),
    ("weekly at 10:00 across the clock changes", date(2027, 1, 4), time(10), "FREQ=WEEKLY", 522),
    ("last Sunday at 09:00, the clocks change twice", date(2027, 1, 31), time(9), "FREQ=MONTHLY;BYDAY=-1SU", 120),
    ("month's last day at 17:00", date(2027, 1, 31), time(17), "FREQ=MONTHLY;BYMONTHDAY=-1", 120),
]
# Rules an earlier version accepted and stored, which validate now refuses: the feed writes out the
# day they take from the first date, so that every calendar skips the missing ones, as Tracker does.
STORED_BEFORE: list[tuple[str, date, time | None, str, int]] = [
    ("29 Feb yearly, as stored", date(2028, 2, 29), None, "FREQ=YEARLY", 3),
    ("31st monthly, as stored", date(2027, 1, 31), None, "FREQ=MONTHLY", 70),
    ("30th monthly at 09:00, as stored", date(2027, 1, 30), time(9), "FREQ=MONTHLY", 110),
]


def cases(*tables: list[tuple[str, date, time | None, str, int]]) -> Iterator[Any]:
    for table in tables:
        for name, first, clock, rule, count in table:
            yield pytest.param(first, clock, rule, count, id=name)


def repeating(first: date, clock: time | None, rule: str) -> MilestoneView:
    due_at = local_to_utc(first, clock or END_OF_DAY, ZONE)
    return factories.make_view(zone=ZONE, all_day=clock is None, due_at=due_at, repeat=rule, updated_at=NOW)


def window(first: date) -> tuple[date, date]:
    return date(first.year, 1, 1), date(first.year + YEARS, 1, 1)


def feed(view: MilestoneView) -> bytes:
    return build_feed([view], INFO, now=NOW, cancelled_grace=timedelta(0))


def first_difference(ours: list[Any], theirs: list[Any]) -> str:
    """Say where two lists of occurrences part: a failure that names a date reads faster than two lists."""
    for mine, other in zip(ours, theirs, strict=False):
        if mine != other:
            return f"Tracker {mine}, the calendar {other}"
    return f"{len(ours)} occurrences against {len(theirs)}"


@pytest.fixture(scope="module")
def icaljs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("icaljs")
    why_not = install_icaljs(folder)
    if why_not is not None:
        if REQUIRED:
            pytest.fail(f"TRACKER_REQUIRE_BROWSER=1 but ical.js cannot be run: {why_not}")
        pytest.skip(f"ical.js cannot be run: {why_not}")
    write_icaljs_script(folder)
    return folder


@pytest.fixture(scope="module")
def libical() -> ctypes.CDLL:
    lib = load_libical()
    if lib is None:
        why_not = "libical is not installed (apt-get install libical3, or `make browser` as root)"
        if REQUIRED:
            pytest.fail(f"TRACKER_REQUIRE_BROWSER=1 but {why_not}")
        pytest.skip(why_not)
    return lib


# --- the edge cases are rules validate accepts, and land where they say ------------------------


@pytest.mark.parametrize(("first", "clock", "rule", "count"), list(cases(EDGE_CASES)))
def test_each_edge_case_is_a_rule_validate_accepts(first: date, clock: time | None, rule: str, count: int) -> None:
    assert check_first_date(read_repeat(rule), datetime.combine(first, clock or time(0))) == []


@pytest.mark.parametrize(("first", "clock", "rule", "count"), list(cases(EDGE_CASES, STORED_BEFORE)))
def test_tracker_lists_the_number_of_dates_each_rule_gives_in_ten_years(
    first: date, clock: time | None, rule: str, count: int
) -> None:
    found = tracker_starts(repeating(first, clock, rule), *window(first))

    assert len(found) == count
    assert found[0] == (first if clock is None else local_to_utc(first, clock, ZONE))


def test_each_choice_for_a_missing_day_lands_where_it_says() -> None:
    def in_2029(rule: str) -> list[Any]:
        return [d for d in tracker_starts(repeating(date(2028, 2, 29), None, rule), *window(date(2028, 2, 29)))
                if d.year == 2029]  # fmt: skip

    assert in_2029("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29") == []
    assert in_2029("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1") == [date(2029, 2, 28)]
    assert in_2029("FREQ=YEARLY;BYYEARDAY=60") == [date(2029, 3, 1)]
    last_days = tracker_starts(
        repeating(date(2027, 1, 31), None, "FREQ=MONTHLY;BYMONTHDAY=-1"), *window(date(2027, 1, 31))
    )
    assert last_days[1:4] == [date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30)]
    assert date(2028, 2, 29) in last_days


def test_a_time_of_day_stays_on_the_wall_clock_across_the_changes_of_the_clocks() -> None:
    found = tracker_starts(repeating(date(2027, 1, 31), time(9), "FREQ=MONTHLY;BYDAY=-1SU"), *window(date(2027, 1, 31)))

    # 28 March and 31 October 2027 are the days the clocks change in Zurich: 09:00 is 07:00 or 08:00 UTC.
    assert datetime(2027, 3, 28, 7, tzinfo=UTC) in found and datetime(2027, 10, 31, 8, tzinfo=UTC) in found


# --- every calendar reading the feed lists the same dates ---------------------------------------


@pytest.mark.parametrize(("first", "clock", "rule", "count"), list(cases(EDGE_CASES, STORED_BEFORE)))
def test_recurring_ical_events_lists_the_dates_tracker_lists(
    first: date, clock: time | None, rule: str, count: int
) -> None:
    view = repeating(first, clock, rule)

    ours, theirs = tracker_starts(view, *window(first)), library_starts(feed(view), *window(first))

    assert ours == theirs, first_difference(ours, theirs)


@pytest.mark.parametrize(("first", "clock", "rule", "count"), list(cases(EDGE_CASES, STORED_BEFORE)))
def test_ical_js_lists_the_dates_tracker_lists(
    icaljs: Path, first: date, clock: time | None, rule: str, count: int
) -> None:
    view = repeating(first, clock, rule)

    ours, theirs = tracker_starts(view, *window(first)), icaljs_starts(icaljs, feed(view), window(first)[1])

    assert ours == theirs, first_difference(ours, theirs)


@pytest.mark.parametrize(("first", "clock", "rule", "count"), list(cases(EDGE_CASES, STORED_BEFORE)))
def test_libical_lists_the_dates_tracker_lists(
    libical: ctypes.CDLL, first: date, clock: time | None, rule: str, count: int
) -> None:
    view = repeating(first, clock, rule)

    ours = tracker_starts(view, *window(first))
    theirs = libical_starts(libical, feed(view), *window(first), all_day=clock is None)

    assert ours == theirs, first_difference(ours, theirs)


@pytest.fixture(scope="module")
def schedule_series(tmp_path_factory: pytest.TempPathFactory) -> list[MilestoneView]:
    """Every repeating milestone of the repository's schedules, as synced into a store."""
    engine = open_store(f"sqlite:///{tmp_path_factory.mktemp('store') / 'tracker.db'}")
    try:
        outcome = sync_folder(engine, REPO_SCHEDULES, zone=ZONE, reminders=["14d", "7d", "1d"], now=NOW)
        assert outcome.ok, outcome.problems
        with transaction(engine) as session:
            views = [view for view in load_views(session) if view.repeat is not None]
    finally:
        engine.dispose()
    assert len(views) >= 5
    return views


def each_reader(views: list[MilestoneView], icaljs: Path, libical: ctypes.CDLL) -> Iterator[tuple[str, Any, Any]]:
    """Yield, for each series and each calendar, what Tracker lists and what the calendar lists."""
    for view in views:
        first = view.main_at.astimezone(get_zone(view.zone)).date()
        since, until = window(first)
        ours, data = tracker_starts(view, since, until), feed(view)
        yield f"{view.key} recurring_ical_events", ours, library_starts(data, since, until)
        yield f"{view.key} ical.js", ours, icaljs_starts(icaljs, data, until)
        yield f"{view.key} libical", ours, libical_starts(libical, data, since, until, all_day=view.all_day)


def test_every_repeating_milestone_of_the_schedules_lists_the_same_dates_in_every_calendar(
    schedule_series: list[MilestoneView], icaljs: Path, libical: ctypes.CDLL
) -> None:
    parted = [
        f"{name}: {first_difference(ours, theirs)}"
        for name, ours, theirs in each_reader(schedule_series, icaljs, libical)
        if ours != theirs
    ]

    assert parted == []


# --- validate: a missing day is the rule's to decide ----------------------------------------------


def repeating_file(rule: str, first: str) -> str:
    """A one-milestone timeline whose milestone repeats by *rule* (on line 7) from *first*."""
    return f"""\
        id: wsis-forum
        title: WSIS Forum
        timezone: Europe/Zurich
        milestones:
          - id: report
            title: Report
            repeat: {rule}
            due: {first}
        """


@pytest.mark.parametrize(
    ("rule", "first", "lacking"),
    [
        ("FREQ=YEARLY", "2028-02-29", "common years have no 29 February"),
        ("FREQ=MONTHLY", "2027-01-31", "February, April, June, September and November have no 31st"),
        ("FREQ=MONTHLY;COUNT=24", "2027-01-30", "February has no 30th"),
        ("FREQ=MONTHLY", "2027-01-29", "February has no 29th in common years"),
        ("FREQ=YEARLY;BYMONTH=1,4", "2027-01-31", "April has no 31st"),
        ("FREQ=YEARLY;BYMONTH=2", "2028-02-29", "common years have no 29 February"),
        ("FREQ=MONTHLY;INTERVAL=12", "2028-02-29", "common years have no 29 February"),
        ("FREQ=MONTHLY;INTERVAL=5;BYMONTH=2", "2028-02-29", "common years have no 29 February"),
        ("FREQ=MONTHLY", "2028-02-29", "February has no 29th in common years"),
        ("FREQ=MONTHLY;INTERVAL=6;COUNT=10", "2028-02-29", "February has no 29th in common years"),
    ],
)
def test_validate_refuses_a_day_some_periods_lack_and_each_fix_it_offers_validates(
    folder: Path, rule: str, first: str, lacking: str
) -> None:
    factories.write(folder, "forum.yaml", repeating_file(rule, first))

    problems = factories.validate(folder)

    assert len(problems) == 1 and problems[0].startswith("schedules/forum.yaml:7: repeat: ")
    assert lacking in problems[0] and "say which: " in problems[0]
    options = problems[0].split("say which: ")[1].split("; ")
    assert len(options) >= 2
    for option in options:
        fix = option.split(" ")[0].removesuffix(",")
        starts = "2027-01-31" if "from a month's last day" in option else first
        factories.write(folder, "forum.yaml", repeating_file(fix, starts))
        assert factories.validate(folder) == [], option


@pytest.mark.parametrize(
    ("rule", "first", "choices"),
    [
        ("FREQ=YEARLY;BYMONTH=2", "2028-02-29", ["FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29 skips those years",
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1 takes 28 February in common years",
            "FREQ=YEARLY;BYYEARDAY=60 takes 1 March in common years (the year's 60th day)"]),
        ("FREQ=MONTHLY;INTERVAL=24;COUNT=3", "2028-02-29", [
            "FREQ=MONTHLY;INTERVAL=24;COUNT=3;BYMONTHDAY=29 skips those years",
            "FREQ=MONTHLY;INTERVAL=24;COUNT=3;BYMONTHDAY=-1 takes 28 February in common years",
            "FREQ=YEARLY;INTERVAL=2;COUNT=3;BYYEARDAY=60 takes 1 March in common years (the year's 60th day)"]),
        ("FREQ=MONTHLY", "2028-02-29", ["FREQ=MONTHLY;BYMONTHDAY=29 skips those months",
            "FREQ=MONTHLY;BYMONTHDAY=-1 takes the last day of every month"]),
        ("FREQ=YEARLY;BYMONTH=1,4", "2027-01-31", ["FREQ=YEARLY;BYMONTH=1,4;BYMONTHDAY=31 skips those months",
            "FREQ=YEARLY;BYMONTH=1,4;BYMONTHDAY=-1 takes the last day of January and April"]),
    ],
)  # fmt: skip
def test_each_fix_for_a_missing_day_says_what_it_does_in_the_rule_s_own_periods(
    folder: Path, rule: str, first: str, choices: list[str]
) -> None:
    factories.write(folder, "forum.yaml", repeating_file(rule, first))

    [problem] = factories.validate(folder)

    assert problem.split("say which: ")[1].split("; ") == choices


def test_validate_refuses_bysetpos_over_bymonthday_which_ical_js_ignores(folder: Path) -> None:
    factories.write(folder, "forum.yaml", repeating_file("FREQ=MONTHLY;BYMONTHDAY=28,29,30;BYSETPOS=-1", "2027-01-29"))

    assert factories.validate(folder) == [
        "schedules/forum.yaml:7: repeat: BYSETPOS with BYMONTHDAY: Thunderbird (ical.js) ignores BYSETPOS there "
        "and lists every BYMONTHDAY; name one day (BYMONTHDAY=-1 is the last day of the month), or pick by BYDAY"
    ]


def test_a_day_every_period_has_needs_no_choice(folder: Path) -> None:
    factories.write(folder, "forum.yaml", repeating_file("FREQ=MONTHLY", "2027-01-28"))
    assert factories.validate(folder) == []
    factories.write(folder, "forum.yaml", repeating_file("FREQ=MONTHLY;INTERVAL=12", "2027-01-31"))
    assert factories.validate(folder) == []
