"""Date expressions and the calendar arithmetic behind them (pure: no clock, no store).

DST changes used below (2027): Europe/Zurich 28 March and 31 October;
America/New_York 14 March and 7 November; Australia/Sydney (southern
hemisphere) falls back on 4 April and springs forward on 3 October;
Asia/Tokyo has no DST.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from tracker.timelines.dates import (
    Absolute,
    DateError,
    Expr,
    LocalPoint,
    Offset,
    Relative,
    format_offset,
    get_zone,
    parse_absolute,
    parse_expr,
    parse_offset,
    shift,
)
from tracker.timelines.files import errors_in
from tracker.timelines.resolve import Completion, DateRule, Key, ResolvedDates, resolve_dates

ZURICH = "Europe/Zurich"
NEW_YORK = "America/New_York"
TOKYO = "Asia/Tokyo"
SYDNEY = "Australia/Sydney"


def utc(text: str) -> datetime:
    """Return the UTC instant written 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def key_of(text: str) -> Key:
    timeline, milestone = text.split("/")
    return (timeline, milestone)


def rule(
    key: str, zone: str = ZURICH, *, due: str | None = None, starts: str | None = None, ends: str | None = None
) -> DateRule:
    """Build the date rule of milestone *key* ('timeline/milestone') from date expressions."""

    def expr(text: str | None) -> Expr | None:
        return None if text is None else parse_expr(text)

    return DateRule(key_of(key), zone, expr(due), expr(starts), expr(ends), path=f"{key_of(key)[0]}.yaml")


def resolve(*rules: DateRule, completions: dict[str, Completion] | None = None) -> dict[str, ResolvedDates]:
    """Resolve *rules*, insist on no errors, and index the result by 'timeline/milestone'.

    Warnings are left out: summer time changes on a Sunday, a day off (see test_workdays.py).
    """
    done = {key_of(key): completion for key, completion in (completions or {}).items()}
    resolved, problems = resolve_dates({r.key: r for r in rules}, done)
    assert errors_in(problems) == []
    return {f"{t}/{m}": dates for (t, m), dates in resolved.items()}


def due_of(*rules: DateRule, completions: dict[str, Completion] | None = None) -> LocalPoint:
    """Resolve *rules* and return the due point of the last one."""
    found = resolve(*rules, completions=completions)[f"{rules[-1].key[0]}/{rules[-1].key[1]}"].due
    assert found is not None
    return found


# Offsets


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("14d", Offset(days=14)),
        ("2w", Offset(days=14)),
        ("4h", Offset(minutes=240)),
        ("30m", Offset(minutes=30)),
        (" 7d ", Offset(days=7)),
        ("0d", Offset()),
    ],
)
def test_it_reads_an_offset_in_days_weeks_hours_or_minutes(text: str, offset: Offset) -> None:
    assert parse_offset(text) == offset


def test_days_and_weeks_are_calendar_offsets_but_hours_and_minutes_are_exact() -> None:
    assert parse_offset("2w").is_calendar
    assert parse_offset("1d").is_calendar
    assert not parse_offset("24h").is_calendar
    assert parse_offset("24h").exact() == timedelta(hours=24)


@pytest.mark.parametrize("text", ["14", "d", "14x", "-3d", "1.5d", "2 weeks", "14 days", "", "14dd", "1234567d"])
def test_it_rejects_a_bad_offset_and_says_how_to_write_one(text: str) -> None:
    with pytest.raises(DateError) as caught:
        parse_offset(text)
    assert str(caught.value).startswith(f"bad offset {text!r}: write a number and a unit")
    assert "e.g. 14d" in str(caught.value)


@pytest.mark.parametrize(
    ("offset", "text"),
    [(Offset(days=14), "14d"), (Offset(days=1), "1d"), (Offset(minutes=240), "4h"), (Offset(minutes=90), "90m")],
)
def test_it_writes_an_offset_back_as_days_hours_or_minutes_that_read_the_same(offset: Offset, text: str) -> None:
    assert format_offset(offset) == text
    assert format_offset(-offset) == text
    assert parse_offset(text) == offset


# Absolute dates and times


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-03-10", Absolute(date(2027, 3, 10), None)),
        ("2017-04-28 12:00", Absolute(date(2017, 4, 28), time(12, 0))),
        ("2027-03-10T09:30:15", Absolute(date(2027, 3, 10), time(9, 30, 15))),
        (" 2027-03-10 9:05 ", Absolute(date(2027, 3, 10), time(9, 5))),
        ("2028-02-29", Absolute(date(2028, 2, 29), None)),
        ("2027-03-10 23:59", Absolute(date(2027, 3, 10), time(23, 59))),
    ],
)
def test_it_reads_a_date_or_a_date_and_time(text: str, expected: Absolute) -> None:
    assert parse_absolute(text) == expected
    assert parse_expr(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2027-02-30", "2027-02-30 is not a date: day is out of range for month"),
        ("2027-02-29", "2027-02-29 is not a date: day is out of range for month"),
        ("2027-13-01", "2027-13-01 is not a date: month must be in 1..12"),
    ],
)
def test_it_rejects_an_impossible_date_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(DateError, match=f"^{re.escape(message)}$"):
        parse_expr(text)


@pytest.mark.parametrize("text", ["2027-03-10 24:00", "2027-03-10 12:60", "2027-03-10 23:59:60"])
def test_it_rejects_a_time_of_day_that_does_not_exist(text: str) -> None:
    with pytest.raises(DateError, match=f"^{re.escape(repr(text))} has no such time of day$"):
        parse_absolute(text)


@pytest.mark.parametrize(
    "text",
    ["10.03.2027", "2027-3-10", "2027-03-10 12", "2027-03-10 noon", "2027-03-10 12:00 CET"],
)
def test_it_rejects_a_date_in_another_format_and_shows_the_right_one(text: str) -> None:
    with pytest.raises(DateError) as caught:
        parse_expr(text)
    assert "write YYYY-MM-DD" in str(caught.value)


@pytest.mark.parametrize("text", ["9999-12-31", "0001-01-01", "1899-12-31", "2201-01-01"])
def test_it_rejects_a_year_no_timeline_can_mean(text: str) -> None:
    with pytest.raises(DateError, match=f"^{text} is out of range: write a year from 1900 to 2200$"):
        parse_absolute(text)


# Relative expressions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("meeting - 30d", Relative("meeting", offsets=(Offset(days=-30),))),
        ("final-draft + 2w", Relative("final-draft", offsets=(Offset(days=14),))),
        ("meeting.end + 1d", Relative("meeting", anchor="end", offsets=(Offset(days=1),))),
        ("meeting.start - 4h", Relative("meeting", anchor="start", offsets=(Offset(minutes=-240),))),
        ("revised-draft.done + 14d", Relative("revised-draft", anchor="done", offsets=(Offset(days=14),))),
        ("cwg-wsis-32/meeting - 7d", Relative("meeting", "cwg-wsis-32", offsets=(Offset(days=-7),))),
        ("cwg-wsis-32/meeting.end", Relative("meeting", "cwg-wsis-32", anchor="end")),
        ("meeting", Relative("meeting")),
        ("meeting-30d", Relative("meeting-30d")),
        ("meeting -1w +2d", Relative("meeting", offsets=(Offset(days=-7), Offset(days=2)))),
    ],
)
def test_it_reads_a_relative_date(text: str, expected: Relative) -> None:
    assert parse_expr(text) == expected


@pytest.mark.parametrize(("text", "unit"), [("meeting - 30y", "y"), ("meeting - 30 days", "days")])
def test_it_rejects_an_unknown_unit_and_lists_the_known_ones(text: str, unit: str) -> None:
    with pytest.raises(DateError, match=re.escape(f"bad unit {unit!r} in {text!r}: use d, w, h, m or wd")):
        parse_expr(text)


@pytest.mark.parametrize("text", ["Meeting - 30d", "meeting -", "meeting * 2", "meeting.finish + 1d", "- 30d", "a//b"])
def test_it_rejects_a_relative_date_it_cannot_read_and_shows_examples(text: str) -> None:
    with pytest.raises(DateError) as caught:
        parse_expr(text)
    assert str(caught.value).startswith(f"bad date {text!r}:")
    assert "'meeting - 30d'" in str(caught.value)


# Time zones


def test_it_suggests_the_zone_meant_by_a_misspelt_name() -> None:
    with pytest.raises(DateError, match=r"^unknown time zone 'Europe/Zurch' \(did you mean 'Europe/Zurich'\?\)$"):
        get_zone("Europe/Zurch")


@pytest.mark.parametrize("name", ["", " Europe/Zurich", "../etc/passwd", "/etc/localtime", "Eur.pe/Zurich", "Europe"])
def test_it_rejects_a_zone_name_that_is_not_an_iana_zone(name: str) -> None:
    with pytest.raises(DateError, match=r"^unknown time zone "):
        get_zone(name)


# All-day deadlines


@pytest.mark.parametrize(
    ("zone", "day", "ends_at"),
    [
        (ZURICH, date(2027, 3, 10), utc("2027-03-10 22:59:59")),
        (ZURICH, date(2027, 7, 10), utc("2027-07-10 21:59:59")),
        (NEW_YORK, date(2027, 3, 10), utc("2027-03-11 04:59:59")),
        (NEW_YORK, date(2027, 7, 10), utc("2027-07-11 03:59:59")),
        (TOKYO, date(2027, 3, 10), utc("2027-03-10 14:59:59")),
        (SYDNEY, date(2027, 1, 10), utc("2027-01-10 12:59:59")),
        (SYDNEY, date(2027, 7, 10), utc("2027-07-10 13:59:59")),
        ("Asia/Kolkata", date(2027, 3, 10), utc("2027-03-10 18:29:59")),
    ],
)
def test_an_all_day_deadline_ends_at_23_59_59_local_time(zone: str, day: date, ends_at: datetime) -> None:
    due = due_of(rule("t/deadline", zone, due=day.isoformat()))

    assert due.all_day
    assert due.at() == ends_at
    assert due.at().astimezone(ZoneInfo(zone)).replace(tzinfo=None) == datetime.combine(day, time(23, 59, 59))


def test_an_all_day_meeting_starts_at_local_midnight_which_is_the_day_before_in_utc_east_of_utc() -> None:
    meeting = resolve(rule("t/meeting", TOKYO, starts="2027-03-10", ends="2027-03-11"))["t/meeting"]

    assert meeting.starts is not None
    assert meeting.ends is not None
    assert meeting.starts.at() == utc("2027-03-09 15:00")
    assert meeting.ends.at() == utc("2027-03-11 14:59:59")


def test_an_all_day_deadline_moved_by_days_across_dst_stays_all_day_and_ends_at_local_midnight() -> None:
    moved = due_of(rule("t/draft", due="2027-04-02"), rule("t/comments", due="draft - 7d"))

    assert (moved.day, moved.clock) == (date(2027, 3, 26), None)
    assert moved.at() == utc("2027-03-26 22:59:59")  # CET, while the draft's day ends at 21:59:59Z (CEST)


# Calendar days across DST


@pytest.mark.parametrize(
    ("zone", "due", "due_at", "moved_day", "moved_at"),
    [
        (ZURICH, "2027-04-02 09:00", utc("2027-04-02 07:00"), date(2027, 3, 26), utc("2027-03-26 08:00")),
        (ZURICH, "2027-11-05 09:00", utc("2027-11-05 08:00"), date(2027, 10, 29), utc("2027-10-29 07:00")),
        (NEW_YORK, "2027-03-19 09:00", utc("2027-03-19 13:00"), date(2027, 3, 12), utc("2027-03-12 14:00")),
        (NEW_YORK, "2027-11-12 09:00", utc("2027-11-12 14:00"), date(2027, 11, 5), utc("2027-11-05 13:00")),
        (SYDNEY, "2027-04-09 09:00", utc("2027-04-08 23:00"), date(2027, 4, 2), utc("2027-04-01 22:00")),
        (SYDNEY, "2027-10-08 09:00", utc("2027-10-07 22:00"), date(2027, 10, 1), utc("2027-09-30 23:00")),
    ],
    ids=["zurich-spring", "zurich-autumn", "new-york-spring", "new-york-autumn", "sydney-autumn", "sydney-spring"],
)
def test_a_timed_deadline_moved_by_days_across_dst_keeps_its_local_time_and_shifts_by_an_hour_in_utc(
    zone: str, due: str, due_at: datetime, moved_day: date, moved_at: datetime
) -> None:
    submission = rule("t/submission", zone, due=due)
    reminder = due_of(submission, rule("t/last-call", zone, due="submission - 7d"))
    submitted = due_of(submission)

    assert submitted.at() == due_at
    assert (reminder.day, reminder.clock) == (moved_day, time(9, 0))
    assert reminder.at() == moved_at
    assert abs(due_at - moved_at - timedelta(days=7)) == timedelta(hours=1)


def test_days_in_a_zone_without_dst_are_exactly_24_hours() -> None:
    moved = due_of(
        rule("t/submission", TOKYO, due="2027-03-30 09:00"), rule("t/last-call", TOKYO, due="submission - 7d")
    )

    assert (moved.day, moved.clock) == (date(2027, 3, 23), time(9, 0))
    assert moved.at() == utc("2027-03-23 00:00")


@pytest.mark.parametrize(
    ("zone", "due", "by_hours_at", "by_days_at"),
    [
        (ZURICH, "2027-03-28 09:00", utc("2027-03-27 07:00"), utc("2027-03-27 08:00")),
        (NEW_YORK, "2027-11-07 12:00", utc("2027-11-06 17:00"), utc("2027-11-06 16:00")),
        (SYDNEY, "2027-10-03 09:00", utc("2027-10-01 22:00"), utc("2027-10-01 23:00")),
    ],
)
def test_hours_are_exact_so_24h_before_a_dst_change_is_not_one_day_before(
    zone: str, due: str, by_hours_at: datetime, by_days_at: datetime
) -> None:
    meeting = rule("t/meeting", zone, due=due)
    by_hours = due_of(meeting, rule("t/by-hours", zone, due="meeting - 24h"))
    by_days = due_of(meeting, rule("t/by-days", zone, due="meeting - 1d"))

    assert due_of(meeting).at() - by_hours.at() == timedelta(hours=24)
    assert by_hours.at() == by_hours_at
    assert by_days.at() == by_days_at
    assert by_days.clock == time.fromisoformat(due[11:])
    assert by_hours.clock != by_days.clock


def test_minutes_count_real_time_through_the_hour_skipped_in_spring() -> None:
    moved = due_of(rule("t/call", due="2027-03-28 03:30"), rule("t/prep", due="call - 90m"))

    assert moved.at() == utc("2027-03-28 00:00")
    assert (moved.day, moved.clock) == (date(2027, 3, 28), time(1, 0))


def test_hours_before_an_all_day_deadline_count_from_the_end_of_its_day() -> None:
    moved = due_of(rule("t/draft", due="2027-03-10"), rule("t/check", due="draft - 4h"))

    assert (moved.day, moved.clock) == (date(2027, 3, 10), time(20, 0))
    assert moved.at() == utc("2027-03-10 19:00")


def test_24h_before_an_all_day_deadline_on_the_short_spring_day_is_23_00_the_day_before() -> None:
    # 28 March 2027 has only 23 hours in Zurich: 24h before its end is 23:00 on the 27th, not its start.
    moved = due_of(rule("t/draft", due="2027-03-28"), rule("t/check", due="draft - 24h"))

    assert (moved.day, moved.clock) == (date(2027, 3, 27), time(23, 0))


def test_hours_before_an_all_day_meeting_count_from_the_start_of_its_first_day() -> None:
    moved = due_of(rule("t/meeting", starts="2027-03-10", ends="2027-03-11"), rule("t/travel", due="meeting - 4h"))

    assert (moved.day, moved.clock) == (date(2027, 3, 9), time(20, 0))


def test_a_wall_clock_time_skipped_by_spring_forward_still_maps_to_an_instant() -> None:
    skipped = LocalPoint(date(2027, 3, 28), time(2, 30), ZURICH)

    assert skipped.at() == utc("2027-03-28 01:30")


def test_shift_applies_calendar_days_and_exact_hours_in_order() -> None:
    start = LocalPoint(date(2027, 3, 27), time(9, 0), ZURICH)

    moved = shift(start, (Offset(days=1), Offset(minutes=-60)))

    assert (moved.day, moved.clock) == (date(2027, 3, 28), time(8, 0))


# Anchors: start, end, done


def test_a_deadline_relative_to_a_meeting_counts_from_its_first_day() -> None:
    documents = due_of(
        rule("cwg-wsis-32/meeting", starts="2018-01-24", ends="2018-01-25"),
        rule("cwg-wsis-32/documents", due="meeting - 30d"),
    )

    assert (documents.day, documents.clock) == (date(2017, 12, 25), None)
    assert documents.at() == utc("2017-12-25 22:59:59")


def test_end_counts_from_the_last_day_of_a_meeting() -> None:
    summary = due_of(
        rule("t/meeting", starts="2018-01-24", ends="2018-01-25"),
        rule("t/summary", due="meeting.end + 1d"),
    )

    assert (summary.day, summary.clock) == (date(2018, 1, 26), None)


def test_a_span_without_an_end_lasts_its_starting_day() -> None:
    meeting = resolve(rule("t/meeting", starts="2027-03-10"))["t/meeting"]

    assert meeting.ends is not None
    assert (meeting.ends.day, meeting.ends.edge) == (date(2027, 3, 10), "end")


def test_done_counts_from_the_due_date_until_the_milestone_is_completed() -> None:
    comments = due_of(rule("t/draft", due="2027-03-10"), rule("t/comments", due="draft.done + 14d"))

    assert (comments.day, comments.clock) == (date(2027, 3, 24), None)


def test_done_counts_from_the_completion_once_it_happens() -> None:
    completed = {"t/draft": Completion(utc("2027-03-05 10:00"), date(2027, 3, 5))}

    comments = due_of(
        rule("t/draft", due="2027-03-10"), rule("t/comments", due="draft.done + 14d"), completions=completed
    )

    assert (comments.day, comments.clock) == (date(2027, 3, 19), None)


def test_a_completion_is_dated_in_the_timeline_zone_not_in_utc() -> None:
    # 23:30 UTC on 4 March is already 5 March in Zurich.
    completed = {"t/draft": Completion(utc("2027-03-04 23:30"))}

    comments = due_of(
        rule("t/draft", due="2027-03-10"), rule("t/comments", due="draft.done + 14d"), completions=completed
    )

    assert comments.day == date(2027, 3, 19)


def test_done_of_a_timed_deadline_keeps_the_time_of_completion() -> None:
    completed = {"t/draft": Completion(utc("2027-03-05 14:45"))}

    review = due_of(
        rule("t/draft", due="2027-03-10 12:00"), rule("t/review", due="draft.done + 2d"), completions=completed
    )

    assert (review.day, review.clock) == (date(2027, 3, 7), time(15, 45))


# Across zones


def test_a_timed_reference_to_another_zone_keeps_the_instant_and_counts_days_in_the_referring_zone() -> None:
    # 16 March: New York is already on summer time, Zurich is not; 9 March both are on winter time.
    briefing = due_of(
        rule("geneva/meeting", ZURICH, due="2027-03-16 15:00"),
        rule("new-york/briefing", NEW_YORK, due="geneva/meeting - 7d"),
    )

    assert (briefing.day, briefing.clock, briefing.zone) == (date(2027, 3, 9), time(10, 0), NEW_YORK)
    assert briefing.at() == utc("2027-03-09 15:00")  # 7 days in Zurich would give 14:00Z


def test_an_all_day_reference_to_another_zone_stays_a_date_in_the_referring_zone() -> None:
    deadline = due_of(
        rule("geneva/nominations", ZURICH, due="2027-03-10"),
        rule("tokyo/forward", TOKYO, due="geneva/nominations - 1d"),
    )

    assert (deadline.day, deadline.clock, deadline.zone) == (date(2027, 3, 9), None, TOKYO)
    assert deadline.at() == utc("2027-03-09 14:59:59")


def test_a_reference_from_the_southern_hemisphere_crosses_both_dst_changes() -> None:
    # 2 April: Zurich on summer time (UTC+2), Sydney too (UTC+11); 9 April Sydney is back on UTC+10.
    reply = due_of(
        rule("geneva/call", ZURICH, due="2027-04-02 09:00"),
        rule("sydney/reply", SYDNEY, due="geneva/call + 7d"),
    )

    assert (reply.day, reply.clock) == (date(2027, 4, 9), time(18, 0))
    assert reply.at() == utc("2027-04-09 08:00")


@pytest.mark.parametrize("name", ["localtime", "Factory", "posixrules", "right/UTC", "posix/Europe/Zurich"])
def test_a_tz_database_file_that_is_no_place_s_zone_is_refused(name: str) -> None:
    with pytest.raises(DateError, match="is no place's time zone: write one such as Europe/Zurich"):
        get_zone(name)
