"""Local times the clocks skip or repeat, and zones named as people name them (issue 16, points 3 and 4).

Pure: timeline files in a temporary folder, validated as `tracker validate` does; no store.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import recurring_ical_events  # type: ignore[import-untyped]
from icalendar import Calendar

from tests.support.factories import make_view, milestone_yaml, timeline_yaml, validate, write
from tracker.feeds import CalendarInfo, build_feed
from tracker.timelines.dates import DateError, get_zone
from tracker.timelines.files import load_schedules
from tracker.timelines.resolve import resolve_dates, rules_from_specs
from tracker.timelines.views import MilestoneView
from tracker.timelines.zones import canonical_zone

BASE = "https://tracker.example.org"

# The night the clocks go forward in zones east and west of UTC, south and north, and by half an hour.
GAPS = [
    ("Europe/Zurich", "2027-03-28 02:30", "02:30 on 2027-03-28", "02:00 to 03:00", "01:30 or 03:00"),
    ("America/New_York", "2027-03-14 02:30", "02:30 on 2027-03-14", "02:00 to 03:00", "01:30 or 03:00"),
    ("Pacific/Auckland", "2027-09-26 02:30", "02:30 on 2027-09-26", "02:00 to 03:00", "01:30 or 03:00"),
    ("Australia/Lord_Howe", "2027-10-03 02:15", "02:15 on 2027-10-03", "02:00 to 02:30", "01:45 or 02:30"),
]
# The night they go back: the time happens twice, an offset apart.
FOLDS = [
    ("Europe/Zurich", "2027-10-31 02:30", "03:00 to 02:00", "00:30 UTC (UTC+02:00)", "01:30 UTC (UTC+01:00)"),
    ("America/New_York", "2027-11-07 01:30", "02:00 to 01:00", "05:30 UTC (UTC-04:00)", "06:30 UTC (UTC-05:00)"),
    (
        "Pacific/Auckland",
        "2027-04-04 02:30",
        "03:00 to 02:00",
        "2027-04-03 13:30 UTC (UTC+13:00)",
        "2027-04-03 14:30 UTC (UTC+12:00)",
    ),
    (
        "Australia/Lord_Howe",
        "2027-04-04 01:45",
        "02:00 to 01:30",
        "2027-04-03 14:45 UTC (UTC+11:00)",
        "2027-04-03 15:15 UTC (UTC+10:30)",
    ),
]


def zone_file(folder: Path, zone: str, *milestones: str) -> list[str]:
    """Problems with the file, less the warning for a deadline on a weekend: the clocks change on Sundays."""
    write(folder, "night.yaml", timeline_yaml(*milestones, timezone=zone))
    return [problem for problem in validate(folder) if "is not a working day" not in problem]


@pytest.mark.parametrize(("zone", "written", "when", "clocks", "choices"), GAPS, ids=[g[0] for g in GAPS])
def test_it_refuses_a_written_time_the_clocks_skip_and_names_the_nearest_valid_times(
    folder: Path, zone: str, written: str, when: str, clocks: str, choices: str
) -> None:
    day = written.split(maxsplit=1)[0]
    found = zone_file(folder, zone, milestone_yaml("meeting", starts=written, ends=f"{day} 03:30"))
    assert found == [
        f"schedules/night.yaml:8: starts: {when} does not exist in {zone} (clocks go from {clocks}); write {choices}"
    ]


@pytest.mark.parametrize(("zone", "written", "clocks", "first", "second"), FOLDS, ids=[f[0] for f in FOLDS])
def test_it_warns_of_a_time_in_the_repeated_hour_and_names_both_instants(
    folder: Path, zone: str, written: str, clocks: str, first: str, second: str
) -> None:
    found = zone_file(folder, zone, milestone_yaml("vote", due=written))
    day, clock = written.split()
    assert found == [
        f"schedules/night.yaml:8: warning: due: {clock} on {day} happens twice in {zone} (clocks go back from "
        f"{clocks}): first at {first}, then at {second}; Tracker takes the first, as RFC 5545 does: write another "
        "time so no reader takes the other"
    ]


@pytest.mark.parametrize(("zone", "written", "when", "clocks", "choices"), GAPS, ids=[g[0] for g in GAPS])
def test_it_refuses_a_completion_time_the_clocks_skip_and_names_the_nearest_valid_times(
    folder: Path, zone: str, written: str, when: str, clocks: str, choices: str
) -> None:
    found = zone_file(folder, zone, milestone_yaml("draft", due="2027-12-01", done=written))
    assert found == [
        f"schedules/night.yaml:9: done: {when} does not exist in {zone} (clocks go from {clocks}); write {choices}"
    ]


def test_a_time_just_outside_the_change_is_no_problem(folder: Path) -> None:
    found = zone_file(
        folder,
        "America/New_York",
        milestone_yaml("before", due="2027-03-14 01:59"),
        milestone_yaml("after", due="2027-03-14 03:00"),
        milestone_yaml("once", due="2027-11-07 02:00"),
    )
    assert found == []


def test_a_repeat_warns_once_of_its_dates_the_clocks_skip_or_repeat(folder: Path) -> None:
    # Every Sunday at 02:30 in Zurich: each spring the clocks skip that time, each autumn they repeat it.
    sundays = milestone_yaml("call", starts="2027-01-03 02:30", ends="2027-01-03 03:30", repeat="FREQ=WEEKLY")

    assert zone_file(folder, "Europe/Zurich", sundays) == [
        "schedules/night.yaml:10: warning: repeat: 20 dates in the ten years from 2027-01-03 fall where the "
        "clocks change: 02:30 on 2027-03-28 does not exist in Europe/Zurich (clocks go from 02:00 to 03:00), and "
        "calendars read it forward, as 03:30, as RFC 5545 does; 02:30 on 2027-10-31 happens twice in Europe/Zurich "
        "(clocks go back from 03:00 to 02:00): first at 00:30 UTC (UTC+02:00), then at 01:30 UTC (UTC+01:00), and "
        "Tracker takes the first, as RFC 5545 does; write another time so that every date exists once"
    ]


def test_a_repeat_names_the_first_date_the_clocks_skip_after_its_first_date(folder: Path) -> None:
    # The 14th at 02:30 in New York: 14 March is the night the clocks go forward in 2027 and 2032.
    monthly = milestone_yaml("call", due="2027-01-14 02:30", repeat="FREQ=MONTHLY")

    assert zone_file(folder, "America/New_York", monthly) == [
        "schedules/night.yaml:9: warning: repeat: 2 dates in the ten years from 2027-01-14 fall where the clocks "
        "change: 02:30 on 2027-03-14 does not exist in America/New_York (clocks go from 02:00 to 03:00), and "
        "calendars read it forward, as 03:30, as RFC 5545 does; write another time so that every date exists once"
    ]


def test_a_repeat_looks_ten_years_ahead_and_no_further(folder: Path) -> None:
    # The 8th at 02:30 in New York: 8 March is next the night the clocks go forward in 2037, past ten years.
    monthly = milestone_yaml("call", due="2027-01-08 02:30", repeat="FREQ=MONTHLY")
    daily = milestone_yaml("daily", due="2027-03-01 02:30", repeat="FREQ=DAILY;COUNT=13")  # ends 13 March

    assert zone_file(folder, "America/New_York", monthly, daily) == []


NIGHT = timeline_yaml(
    milestone_yaml("meeting", starts="2027-03-15 02:30", ends="2027-03-15 03:30"),
    milestone_yaml("rehearsal", starts="meeting - 1d", ends="meeting.end - 1d"),
    timezone="America/New_York",
)


def test_a_relative_time_the_clocks_skip_is_read_forward_with_a_warning(folder: Path) -> None:
    write(folder, "night.yaml", NIGHT)
    assert validate(folder) == [
        "schedules/night.yaml:12: warning: starts: 'meeting - 1d' falls in the time the clocks skip: 02:30 on "
        "2027-03-14 does not exist in America/New_York (clocks go from 02:00 to 03:00); it is read as "
        "2027-03-14 03:30, as calendars read it (RFC 5545); the span keeps its length and ends at 2027-03-14 04:30"
    ]


def test_a_meeting_moved_by_the_clocks_keeps_its_length(folder: Path) -> None:
    write(folder, "night.yaml", NIGHT)
    specs, _ = load_schedules([folder], "Europe/Zurich")
    dates, problems = resolve_dates(rules_from_specs(specs), {})
    rehearsal = dates[("wsis-prizes", "rehearsal")]
    assert rehearsal.starts is not None and rehearsal.ends is not None
    assert (rehearsal.starts.text(), rehearsal.ends.text()) == ("2027-03-14 03:30", "2027-03-14 04:30")
    assert rehearsal.starts.at() == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    assert rehearsal.ends.at() - rehearsal.starts.at() == timedelta(hours=1)
    assert all(problem.warning for problem in problems)


def test_a_span_moved_by_the_clocks_keeps_an_end_that_is_later_anyway(folder: Path) -> None:
    write(folder, "night.yaml", timeline_yaml(
        milestone_yaml("meeting", starts="2027-03-15 02:30", ends="2027-03-15 10:00"),
        milestone_yaml("rehearsal", starts="meeting - 1d", ends="meeting.end - 1d"),
        timezone="America/New_York",
    ))  # fmt: skip
    specs, _ = load_schedules([folder], "Europe/Zurich")
    dates, _ = resolve_dates(rules_from_specs(specs), {})
    rehearsal = dates[("wsis-prizes", "rehearsal")]
    assert rehearsal.starts is not None and rehearsal.ends is not None
    assert (rehearsal.starts.text(), rehearsal.ends.text()) == ("2027-03-14 03:30", "2027-03-14 10:00")


# Zones as people name them


@pytest.mark.parametrize(
    ("written", "hint"),
    [
        ("Geneva", "(did you mean 'Europe/Zurich'?)"),
        ("New York", "(did you mean 'America/New_York'?)"),
        ("new_york", "(did you mean 'America/New_York'?)"),
        ("Europe/Geneva", "(did you mean 'Europe/Zurich'?)"),
        ("Switzerland", "(did you mean 'Europe/Zurich'?)"),
        ("Calcutta", "(did you mean 'Asia/Kolkata'?)"),
        ("PST", "(an abbreviation is not a zone: did you mean 'America/Los_Angeles'?)"),
        ("CEST", "(an abbreviation is not a zone: did you mean 'Europe/Zurich'?)"),
        (
            "United States",
            "(did you mean 'America/New_York', 'America/Chicago', 'America/Denver' or another of the 29 zones "
            "of United States?)",
        ),
        ("Germany", "(did you mean 'Europe/Berlin' or 'Europe/Busingen'?)"),
        ("Zurch", "(did you mean 'Europe/Zurich'?)"),
        ("Genève", "(did you mean 'Europe/Zurich'?)"),
        ("Zürich", "(did you mean 'Europe/Zurich'?)"),
        ("São Paulo", "(did you mean 'America/Sao_Paulo'?)"),
        ("Brasília", "(did you mean 'America/Sao_Paulo'?)"),
    ],
)
def test_it_suggests_the_zone_of_a_city_country_or_abbreviation(written: str, hint: str) -> None:
    with pytest.raises(DateError) as raised:
        get_zone(written)
    assert str(raised.value) == f"unknown time zone {written!r} {hint}"


def test_an_unknown_zone_in_a_file_names_the_zone_to_write(folder: Path) -> None:
    found = zone_file(folder, "Geneva")
    assert found == ["schedules/night.yaml:3: unknown time zone 'Geneva' (did you mean 'Europe/Zurich'?)"]


@pytest.mark.parametrize(
    ("written", "warning"),
    [
        (
            "EST",
            "'EST' is an abbreviation, not a place's zone, and may not follow summer time: write 'America/New_York'",
        ),
        ("US/Eastern", "'US/Eastern' is an old name of 'America/New_York': write 'America/New_York'"),
        ("Navajo", "'Navajo' is an old name of 'America/Denver': write 'America/Denver'"),
        (
            "Etc/GMT+5",
            "'Etc/GMT+5' is no place's zone and never follows summer time: write one such as 'Europe/Zurich'",
        ),
    ],
)
def test_a_zone_that_works_but_is_no_place_is_a_warning(folder: Path, written: str, warning: str) -> None:
    assert zone_file(folder, written) == [f"schedules/night.yaml:3: warning: timezone: {warning}"]


def test_old_names_map_to_the_zone_of_their_place() -> None:
    assert canonical_zone("US/Eastern") == "America/New_York"
    assert canonical_zone("Asia/Calcutta") == "Asia/Kolkata"
    assert canonical_zone("Europe/Zurich") == "Europe/Zurich"
    assert canonical_zone("UTC") == "UTC"
    # Renamed places whose zone the tz database links to another country's with the same clocks.
    assert canonical_zone("Pacific/Truk") == "Pacific/Chuuk"
    assert canonical_zone("America/Coral_Harbour") == "America/Atikokan"
    assert canonical_zone("Africa/Asmera") == "Africa/Asmara"


# In calendars


def feed_bytes(view: MilestoneView) -> bytes:
    info = CalendarInfo(name="Night", description="", url=f"{BASE}/", base_url=BASE, source=f"{BASE}/feeds/all.ics")
    return build_feed([view], info, now=datetime(2027, 1, 1, tzinfo=UTC), cancelled_grace=timedelta(days=30))


def parsed_events(data: bytes) -> list[Any]:  # icalendar types a property as a union of 30 classes
    return list(Calendar.from_ical(data).walk("VEVENT"))


def feed_of(view: MilestoneView) -> Any:
    return recurring_ical_events.of(Calendar.from_ical(feed_bytes(view))).between(date(2027, 1, 1), date(2028, 1, 1))


def test_a_meeting_the_clocks_moved_keeps_its_hour_in_calendars(folder: Path) -> None:
    write(folder, "night.yaml", NIGHT)
    specs, _ = load_schedules([folder], "Europe/Zurich")
    dates, _ = resolve_dates(rules_from_specs(specs), {})
    rehearsal = dates[("wsis-prizes", "rehearsal")]
    assert rehearsal.starts is not None and rehearsal.ends is not None
    view = make_view(kind="span", all_day=False, zone="America/New_York", due_at=None,
                     starts_at=rehearsal.starts.at(), ends_at=rehearsal.ends.at())  # fmt: skip

    (event,) = feed_of(view)

    assert event["DTSTART"].dt == datetime(2027, 3, 14, 7, 30, tzinfo=UTC)
    assert event["DTEND"].dt - event["DTSTART"].dt == timedelta(hours=1)


@pytest.mark.parametrize("due_at", [datetime(2027, 11, 7, 5, 30, tzinfo=UTC), datetime(2027, 11, 7, 6, 30, tzinfo=UTC)])
def test_a_deadline_in_the_repeated_hour_is_read_at_its_own_instant(due_at: datetime) -> None:
    view = make_view(all_day=False, zone="America/New_York", due_at=due_at)  # 01:30 EDT, then 01:30 EST

    (event,) = parsed_events(feed_bytes(view))

    # Written as a TZID wall time, icalendar (and RFC 5545) would read 01:30 EDT for both.
    assert event["DTSTART"].dt.astimezone(UTC) == due_at
