"""Why feeds use icalendar and not `ics` (docs/decisions.md): the same deadline through both."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import ics  # type: ignore[import-untyped]  # test-only dependency, kept out of the runtime
from icalendar import Calendar

from tracker.feeds import CalendarInfo, build_feed
from tracker.timelines.dates import END_OF_DAY, local_to_utc
from tracker.timelines.views import MilestoneView

ZURICH = ZoneInfo("Europe/Zurich")
NOW = datetime(2017, 2, 1, 9, 0, tzinfo=UTC)
TITLE = "Membership comments on the revised draft of the ITU Council contribution to HLPF-17"


def with_ics(begin: datetime, *, all_day: bool) -> str:
    """Serialise one event the way a user of ics 0.7.3 naturally writes it."""
    event = ics.Event(name=TITLE, begin=begin)
    if all_day:
        event.make_all_day()
    calendar = ics.Calendar()
    calendar.events.add(event)
    return str(calendar.serialize())


def with_icalendar(due_at: datetime, *, all_day: bool) -> bytes:
    view = MilestoneView(
        timeline_id="hlpf",
        timeline_title="HLPF-17",
        key="member-comments",
        title=TITLE,
        kind="deadline",
        all_day=all_day,
        zone="Europe/Zurich",
        owner="membership",
        due_at=due_at,
        revision=2,
        updated_at=NOW,
    )
    info = CalendarInfo("HLPF-17", "Deadlines", "https://tracker.example.org/", "https://tracker.example.org")
    return build_feed([view], info, now=NOW, cancelled_grace=timedelta(days=30))


def test_ics_writes_a_10_march_all_day_deadline_in_zurich_as_9_march() -> None:
    text = with_ics(datetime(2017, 3, 10, tzinfo=ZURICH), all_day=True)

    # It converts local midnight to UTC (9 March, 23:00) and keeps that date.
    assert "DTSTART;VALUE=DATE:20170309\r\n" in text


def test_our_feed_writes_the_same_deadline_on_10_march() -> None:
    data = with_icalendar(local_to_utc(date(2017, 3, 10), END_OF_DAY, "Europe/Zurich"), all_day=True)

    assert b"DTSTART;VALUE=DATE:20170310\r\nDTEND;VALUE=DATE:20170311\r\n" in data


def test_ics_leaves_out_dtstamp_and_sequence_and_makes_up_a_new_uid_each_time() -> None:
    first = with_ics(datetime(2017, 3, 10, tzinfo=ZURICH), all_day=True)
    second = with_ics(datetime(2017, 3, 10, tzinfo=ZURICH), all_day=True)

    assert "DTSTAMP" not in first  # required by RFC 5545 in every VEVENT
    assert "SEQUENCE" not in first  # so a moved deadline cannot be told from a stale copy
    assert uid(first) != uid(second)  # a client sees a new event on every download


def test_ics_writes_a_zurich_time_in_utc_without_a_vtimezone() -> None:
    text = with_ics(datetime.combine(date(2017, 3, 10), time(9, 0), tzinfo=ZURICH), all_day=False)

    assert "DTSTART:20170310T080000Z\r\n" in text
    assert "VTIMEZONE" not in text and "TZID" not in text  # a repeating 09:00 would drift an hour at DST


def test_ics_does_not_fold_long_lines_nor_end_the_last_one() -> None:
    text = with_ics(datetime(2017, 3, 10, tzinfo=ZURICH), all_day=True)

    assert max(len(line.encode()) for line in text.split("\r\n")) > 75  # RFC 5545 3.1: fold at 75 octets
    assert text.endswith("END:VCALENDAR")  # no CRLF after the last line


def test_our_feed_has_what_ics_leaves_out() -> None:
    timed = with_icalendar(local_to_utc(date(2017, 3, 10), time(9, 0), "Europe/Zurich"), all_day=False)

    event = Calendar.from_ical(timed).walk("VEVENT")[0]
    assert {"DTSTAMP", "SEQUENCE", "UID"} <= set(event)
    assert b"DTSTART;TZID=Europe/Zurich:20170310T090000\r\n" in timed and b"BEGIN:VTIMEZONE\r\n" in timed
    assert b"UID:hlpf/member-comments@tracker.example.org\r\n" in timed
    assert all(len(line) <= 75 for line in timed.split(b"\r\n")) and timed.endswith(b"END:VCALENDAR\r\n")


def uid(text: str) -> str:
    return next(line for line in text.split("\r\n") if line.startswith("UID:"))
