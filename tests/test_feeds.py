"""Feeds: views in, iCalendar bytes out, read back with independent parsers item by item."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import recurring_ical_events  # type: ignore[import-untyped]
import yaml
from icalendar import Calendar, Event, Timezone
from sqlalchemy import Engine

from tests.support import factories
from tests.support.factories import REPO_SCHEDULES
from tests.support.timelines import HLPF, MEETING, WriteTimeline
from tracker import feeds
from tracker.feeds import (
    CalendarInfo,
    FeedCache,
    ItemWords,
    build_feed,
    item_uid,
    make_vtimezone,
    select_views,
    vtimezone_bytes,
)
from tracker.store.engine import transaction
from tracker.timelines.dates import END_OF_DAY, get_zone, local_to_utc
from tracker.timelines.pipeline import sync_folder
from tracker.timelines.stored import load_views
from tracker.timelines.views import CompletionView, MilestoneView, expand

NOW = datetime(2017, 2, 1, 9, 0, tzinfo=UTC)
GRACE = timedelta(days=30)
BASE = "https://tracker.example.org"
INFO = CalendarInfo(
    name="WSIS deadlines — all timelines",
    description="Every deadline of the Council Working Group on WSIS, and its meetings.",
    url=f"{BASE}/",
    base_url=BASE,
    source=f"{BASE}/feeds/all.ics",
)
ZONES = ["Europe/Zurich", "Asia/Tokyo", "America/Los_Angeles"]
SNAPSHOT = Path(__file__).parent / "snapshots" / "seed-all.ics"


def make_view(**overrides: Any) -> MilestoneView:
    defaults = {"reminders": ("14d", "7d", "1d"), "updated_at": NOW, "timeline_kind": "drafting"}
    return factories.make_view(**{**defaults, **overrides})


def deadline(day: date, zone: str, clock: time | None = None, **overrides: Any) -> MilestoneView:
    """A deadline on *day*: all-day (ends 23:59:59 local, as the store keeps it) or at *clock*."""
    due_at = local_to_utc(day, clock or END_OF_DAY, zone)
    return make_view(zone=zone, all_day=clock is None, due_at=due_at, **overrides)


def meeting(first: date, last: date, **overrides: Any) -> MilestoneView:
    values: dict[str, Any] = {
        "key": "meeting",
        "title": "CWG-WSIS-32, Geneva",
        "kind": "span",
        "owner": None,
        "due_at": None,
        "starts_at": local_to_utc(first, time(0), "Europe/Zurich"),
        "ends_at": local_to_utc(last, END_OF_DAY, "Europe/Zurich"),
        "location": "Geneva",
        "reminders": (),
        "timeline_kind": "meeting",
    }
    values.update(overrides)
    return make_view(**values)


def feed(*views: MilestoneView, now: datetime = NOW, info: CalendarInfo = INFO) -> bytes:
    return build_feed(list(views), info, now=now, cancelled_grace=GRACE)


# Parsed components are read dynamically: icalendar types a property as a union of 30 classes.
Parsed = Any


def parse(data: bytes) -> Parsed:
    return Calendar.from_ical(data)


def events(data: bytes) -> list[Parsed]:
    return list(parse(data).walk("VEVENT"))


def only_event(data: bytes) -> Parsed:
    (event,) = events(data)
    return event


def occurrences(data: bytes, start: date, end: date) -> list[Parsed]:
    return list(recurring_ical_events.of(parse(data)).between(start, end))


def lines(data: bytes) -> list[bytes]:
    """Physical lines; the feed must end with CRLF and have no bare CR or LF."""
    assert data.endswith(b"\r\n")
    body = data[:-2].split(b"\r\n")
    assert not any(b"\n" in line or b"\r" in line for line in body)
    return body


def text(component: Parsed, name: str) -> str:
    return str(component[name])


def alarm_times(event: Parsed) -> list[datetime]:
    """When each alarm fires, computed from DTSTART (local midnight for all-day items) and TRIGGER."""
    start = event["DTSTART"].dt
    if not isinstance(start, datetime):
        start = datetime.combine(start, time(0))
    return [start + alarm["TRIGGER"].dt for alarm in event.walk("VALARM")]


def run_sync(engine: Engine, folder: Path, now: datetime = NOW) -> None:
    outcome = sync_folder(engine, folder, zone="Europe/Zurich", reminders=["14d", "7d", "1d"], now=now)
    assert outcome.ok, outcome.problems


def stored_views(engine: Engine) -> list[MilestoneView]:
    with transaction(engine) as session:
        return load_views(session)


def by_uid(data: bytes) -> dict[str, Parsed]:
    return {text(e, "UID"): e for e in events(data) if "RECURRENCE-ID" not in e}


# --- dates -------------------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ZONES)
def test_an_all_day_deadline_is_on_its_local_date_in_every_zone(zone: str) -> None:
    data = feed(deadline(date(2017, 3, 10), zone))

    assert b"DTSTART;VALUE=DATE:20170310\r\n" in data
    assert b"DTEND;VALUE=DATE:20170311\r\n" in data  # exclusive: the item covers 10 March only
    (found,) = occurrences(data, date(2017, 3, 1), date(2017, 4, 1))
    assert found["DTSTART"].dt == date(2017, 3, 10)
    assert b"BEGIN:VTIMEZONE" not in data  # dates float: no zone needed


@pytest.mark.parametrize("zone", ZONES)
def test_a_timed_deadline_keeps_its_zone_and_its_instant(zone: str) -> None:
    view = deadline(date(2017, 3, 10), zone, time(9, 0))

    data = feed(view)

    assert f"DTSTART;TZID={zone}:20170310T090000\r\n".encode() in data
    assert b"DTEND" not in data  # an instant: it ends when it starts
    (found,) = occurrences(data, date(2017, 3, 1), date(2017, 4, 1))
    assert found["DTSTART"].dt == view.due_at
    assert [tz.tz_name for tz in parse(data).timezones] == [zone]


DST_WEEKS = [date(2017, 3, 24) + timedelta(days=n) for n in range(8)] + [
    date(2017, 10, 27) + timedelta(days=n) for n in range(7)
]


@pytest.mark.parametrize("day", DST_WEEKS, ids=str)
def test_a_nine_o_clock_deadline_in_a_dst_week_stays_at_nine_in_geneva(day: date) -> None:
    view = deadline(day, "Europe/Zurich", time(9, 0))

    data = feed(view)

    start = only_event(data)["DTSTART"].dt
    assert start == view.due_at and start.astimezone(get_zone("Europe/Zurich")).hour == 9
    # A client that reads our VTIMEZONE instead of knowing the name finds the same instant.
    ours = parse(data).timezones[0]
    assert ours.tz_name == "Europe/Zurich"
    assert (
        interpret(ours).utcoffset(datetime.combine(day, time(9)))
        == view.due_at.astimezone(get_zone("Europe/Zurich")).utcoffset()
    )


def interpret(timezone: Parsed) -> Any:
    """Return a tzinfo built from the VTIMEZONE's rules alone (dateutil), not from its name."""
    return timezone.to_tz(lookup_tzid=False)


CHANGED_ZONES = ["America/Sao_Paulo", "America/Mexico_City", "Europe/Istanbul"]  # rules changed since 2015


@pytest.mark.parametrize("zone", [*ZONES, "Australia/Sydney", "Europe/Dublin", *CHANGED_ZONES])
def test_our_vtimezone_gives_the_tz_database_offset_around_every_change(zone: str) -> None:
    rules = interpret(Timezone.from_ical(vtimezone_bytes(zone, since=2015)))
    real = get_zone(zone)
    at = datetime(2015, 1, 1, tzinfo=real).astimezone(UTC)
    while at < datetime(2031, 1, 1, tzinfo=UTC):
        step = next(
            (step for span, step in STEPS if changes_within(real, at, span)), timedelta(weeks=1)
        )  # fine steps only around a change
        for moment in (at, at + step / 2):
            local = moment.astimezone(real)
            assert moment.astimezone(rules).utcoffset() == local.utcoffset(), moment
            assert rules.utcoffset(local.replace(tzinfo=None)) == local.utcoffset() or local.fold, moment
        at += step


STEPS = [(timedelta(days=1), timedelta(minutes=15)), (timedelta(weeks=1), timedelta(days=1))]


def changes_within(zone: Any, at: datetime, span: timedelta) -> bool:
    return bool(at.astimezone(zone).utcoffset() != (at + span).astimezone(zone).utcoffset())


def test_our_vtimezone_is_yearly_rules_where_icalendar_s_own_starts_summer_time_an_hour_late() -> None:
    ours = vtimezone_bytes("Europe/Zurich")
    theirs = Timezone.from_tzid("Europe/Zurich", first_date=date(2016, 1, 1), last_date=date(2019, 1, 1))
    theirs["TZID"] = "Copy/Zurich"  # so that dateutil reads its rules instead of looking the name up

    # Summer time began at 01:00 UTC on 26 March 2017 (02:00 CET became 03:00 CEST).
    half_past_one = datetime(2017, 3, 26, 1, 30, tzinfo=UTC)
    assert half_past_one.astimezone(interpret(theirs)).utcoffset() == timedelta(hours=1)  # icalendar 7.3: CET
    assert half_past_one.astimezone(interpret(Timezone.from_ical(ours))).utcoffset() == timedelta(hours=2)
    assert b"RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\n" in ours and b"RDATE" not in ours
    assert b"DTSTART:19960331T020000\r\n" in ours  # the rule in force since 1996, from 02:00 local


def test_a_vtimezone_covers_changes_since_the_first_timed_item_and_then_the_rule() -> None:
    view = deadline(date(2018, 3, 10), "America/Sao_Paulo", time(9, 0))  # Brazil ended summer time in 2019

    data = feed(view)

    (timezone,) = parse(data).timezones
    assert [(p.name, p["DTSTART"].dt) for p in timezone.subcomponents] == [
        ("DAYLIGHT", datetime(2018, 1, 1)),  # the offset in force when the history starts
        ("STANDARD", datetime(2018, 2, 18)),  # 00:00 in the offset before the change
        ("DAYLIGHT", datetime(2018, 11, 4)),
        ("STANDARD", datetime(2019, 2, 17)),
        ("STANDARD", datetime(2021, 1, 1)),  # the rule (no summer time) from the year after
    ]
    assert b"RDATE" not in data
    assert parse(feed(replace(view, due_at=view.main_at.replace(year=2021)))).timezones[0].walk("STANDARD")[0][
        "DTSTART"
    ].dt == datetime(2020, 1, 1)


def test_a_zone_without_a_yearly_rule_falls_back_to_icalendar_s_list_of_changes() -> None:
    view = deadline(date(2017, 3, 10), "Africa/Casablanca", time(9, 0))

    data = feed(view)

    assert b"BEGIN:VTIMEZONE\r\nTZID:Africa/Casablanca\r\n" in data
    assert make_vtimezone("Africa/Casablanca", 2017).walk("DAYLIGHT")  # icalendar's list (Ramadan changes)
    assert only_event(data)["DTSTART"].dt == view.due_at


def test_every_zone_of_a_timed_item_has_one_vtimezone_and_utc_needs_none() -> None:
    views = [
        deadline(date(2017, 3, 10), "Asia/Tokyo", time(9), key="a"),
        deadline(date(2017, 3, 11), "Asia/Tokyo", time(9), key="b"),
        deadline(date(2017, 3, 12), "America/Los_Angeles", time(9), key="c"),
        deadline(date(2017, 3, 13), "UTC", time(9), key="d"),
        deadline(date(2017, 3, 14), "Europe/Zurich", key="e"),  # all-day: no zone
    ]

    data = feed(*views)

    assert [tz.tz_name for tz in parse(data).timezones] == ["America/Los_Angeles", "Asia/Tokyo"]
    assert b"DTSTART:20170313T090000Z\r\n" in data
    assert parse(data).get_missing_tzids() == set()


def test_an_all_day_meeting_ends_the_day_after_its_last_day() -> None:
    data = feed(meeting(date(2018, 1, 24), date(2018, 1, 25)))

    event = only_event(data)
    assert event["DTSTART"].dt == date(2018, 1, 24) and event["DTEND"].dt == date(2018, 1, 26)
    assert text(event, "LOCATION") == "Geneva"
    assert text(event, "TRANSP") == "OPAQUE"


# --- what an item says -------------------------------------------------------------------------


def test_the_summary_says_who_must_act_on_what_and_in_which_timeline() -> None:
    assert text(only_event(feed(make_view())), "SUMMARY") == "Membership: comments on the revised draft — HLPF-17"
    other = make_view(title="Revised draft posted", owner="secretariat")
    assert text(only_event(feed(other)), "SUMMARY") == "Secretariat: Revised draft posted — HLPF-17"
    nobody = make_view(title="Final text submitted", owner=None)
    assert text(only_event(feed(nobody)), "SUMMARY") == "Final text submitted — HLPF-17"
    named = make_view(title="Nominations for the WSIS Prizes", timeline_title="WSIS Prizes")
    assert text(only_event(feed(named)), "SUMMARY") == "Membership: Nominations for the WSIS Prizes"
    span = meeting(date(2018, 1, 24), date(2018, 1, 25))
    assert text(only_event(feed(span)), "SUMMARY") == "CWG-WSIS-32, Geneva"


def test_the_description_gives_summary_owner_date_source_links_and_the_timeline_page() -> None:
    view = make_view(
        summary="Members send their comments.",
        timeline_source="WG-WSIS-30/17, para 2.2 m)",
        url="https://www.itu.int/md/S17-CWGWSIS",
        timeline_url="https://www.itu.int/en/council/cwg-wsis/",
        opens_after="revised-draft",
    )

    event = only_event(feed(view))

    assert text(event, "DESCRIPTION").splitlines() == [
        "Members send their comments.",
        "",
        "Who acts: Membership",
        "Due: by the end of Fri, 10 Mar 2017, Europe/Zurich time",
        "Opens after: revised-draft",
        "Timeline: HLPF-17 (drafting)",
        "Source: WG-WSIS-30/17, para 2.2 m)",
        "Link: https://www.itu.int/md/S17-CWGWSIS",
        "Timeline link: https://www.itu.int/en/council/cwg-wsis/",
        f"Timeline page: {BASE}/timelines/hlpf",
    ]
    assert text(event, "URL") == f"{BASE}/timelines/hlpf"
    assert [str(c) for c in event["CATEGORIES"].cats] == ["drafting", "membership"]
    assert text(event, "TRANSP") == "TRANSPARENT"
    assert text(event, "STATUS") == "CONFIRMED"


def test_a_timed_deadline_says_its_local_time_and_utc() -> None:
    view = deadline(date(2017, 4, 28), "Europe/Zurich", time(12, 0))

    description = text(only_event(feed(view)), "DESCRIPTION")

    assert "Due: Fri, 28 Apr 2017, 12:00 CEST (Europe/Zurich; 10:00 UTC)" in description


def test_uid_sequence_stamp_and_last_modified_come_from_the_stored_milestone() -> None:
    changed_at = datetime(2017, 1, 20, 16, 30, tzinfo=UTC)
    view = make_view(revision=3, updated_at=changed_at)

    event = only_event(feed(view))
    moved = only_event(feed(replace(view, due_at=view.main_at + timedelta(days=7))))

    assert text(event, "UID") == "hlpf/member-comments@tracker.example.org" == text(moved, "UID")
    assert event["SEQUENCE"] == 3
    assert event["DTSTAMP"].dt == changed_at == event["LAST-MODIFIED"].dt
    assert item_uid(view, "http://127.0.0.1:8000") == "hlpf/member-comments@127.0.0.1"


def test_text_is_escaped_and_folded_at_75_octets_on_utf8_boundaries() -> None:
    title = 'Comments, "drafts"; paths C:\\docs\\x — تعليقات الأعضاء على المشروع المنقح 成员对修订草案的意见 ✓'
    view = make_view(title=title + "\nsecond line", owner=None, summary="Line one,\nline two; \\ end")
    info = replace(INFO, name="Calendrier, «WSIS»; test\\x", description="Deux\nlignes, ici; et \\")

    data = feed(view, info=info)

    assert all(len(line) <= 75 for line in lines(data))
    for line in lines(data):
        line.decode("utf-8")  # a fold never splits a character
    assert b"\\," in data and b"\\;" in data and b"\\\\" in data and b"\\n" in data
    event = only_event(data)
    assert text(event, "SUMMARY") == f"{title}\nsecond line — HLPF-17"
    assert text(event, "DESCRIPTION").startswith("Line one,\nline two; \\ end\n")
    calendar = parse(data)
    assert text(calendar, "DESCRIPTION") == "Deux\nlignes, ici; et \\"
    assert b"X-WR-CALNAME:Calendrier\\, \xc2\xabWSIS\xc2\xbb\\; test\\\\x\r\n" in data
    assert b"X-WR-CALDESC:Deux\\nlignes\\, ici\\; et \\\\\r\n" in data


def test_control_characters_in_stored_text_never_reach_a_feed_and_every_feed_path_agrees() -> None:
    hostile = "Draft\x00 posted\x1b[2J\x85 now\u2028BEGIN:VEVENT\x7f\x0b!"
    view = make_view(title=hostile, summary=hostile, location=hostile)
    info = replace(INFO, name=hostile, description=hostile)

    data = feed(view, info=info)
    cached = FeedCache().render([view], info, now=NOW, cancelled_grace=GRACE)

    assert cached == data
    for control in (b"\x00", b"\x1b", b"\xc2\x85", b"\xe2\x80\xa8", b"\x7f", b"\x0b"):
        assert control not in data
    assert [line for line in lines(data) if line.startswith(b"BEGIN:VEVENT")] == [b"BEGIN:VEVENT"]
    assert "Draft posted[2J nowBEGIN:VEVENT!" in text(only_event(data), "SUMMARY")


# --- alarms ------------------------------------------------------------------------------------


def test_alarms_fire_at_the_reminder_hour_before_an_all_day_deadline_and_hours_before_its_end() -> None:
    view = deadline(date(2017, 3, 10), "Europe/Zurich", reminders=("14d", "7d", "1d", "4h", "0d"))

    event = only_event(feed(view))

    assert [a["TRIGGER"].to_ical() for a in event.walk("VALARM")] == [
        b"-P13DT15H",
        b"-P6DT15H",
        b"-PT15H",
        b"PT20H",
        b"PT9H",
    ]
    assert alarm_times(event) == [
        datetime(2017, 2, 24, 9, 0),
        datetime(2017, 3, 3, 9, 0),
        datetime(2017, 3, 9, 9, 0),
        datetime(2017, 3, 10, 20, 0),  # 4 hours before the day ends
        datetime(2017, 3, 10, 9, 0),
    ]
    assert {text(a, "ACTION") for a in event.walk("VALARM")} == {"DISPLAY"}
    assert text(event.walk("VALARM")[2], "DESCRIPTION").endswith("(due tomorrow)")


def test_the_reminder_hour_is_the_feed_s_setting() -> None:
    event = only_event(feed(make_view(reminders=("1d",)), info=replace(INFO, reminder_hour=8)))

    assert alarm_times(event) == [datetime(2017, 3, 9, 8, 0)]


def test_alarms_of_a_timed_deadline_go_at_the_reminder_hour_in_calendar_days_and_hours_before_it() -> None:
    view = deadline(date(2017, 4, 28), "Europe/Zurich", time(12, 0), reminders=("7d", "2d", "4h", "30m", "36h"))
    early = deadline(date(2017, 4, 28), "Europe/Zurich", time(8, 0), reminders=("7d",))

    data = feed(view)
    event = only_event(data)

    # Nominal days, then the daytime hours from the reminder hour to noon: never elapsed time over a
    # night. As written: parsed back, icalendar would make 36 hours a nominal day and 12 hours.
    triggers = [line for line in lines(data) if line.startswith(b"TRIGGER:")]
    assert triggers == [b"TRIGGER:" + t for t in (b"-P7DT3H", b"-P2DT3H", b"-PT4H", b"-PT30M", b"-PT36H")]
    zurich = get_zone("Europe/Zurich")
    expected = [
        datetime(2017, 4, d, h, m, tzinfo=zurich)
        for d, h, m in ((21, 9, 0), (26, 9, 0), (28, 8, 0), (28, 11, 30), (27, 0, 0))
    ]
    assert alarm_times(event) == expected
    assert text(event.walk("VALARM")[3], "DESCRIPTION").endswith("(due in 30 minutes)")
    # An item earlier in the day than the reminder hour is reminded at its own time.
    assert [a["TRIGGER"].to_ical() for a in only_event(feed(early)).walk("VALARM")] == [b"-P7D"]


def test_a_meeting_has_alarms_only_when_it_sets_reminders_and_they_count_from_its_start() -> None:
    silent = meeting(date(2018, 1, 24), date(2018, 1, 25))
    reminded = replace(silent, key="physical", reminders=("7d", "4h"))

    assert only_event(feed(silent)).walk("VALARM") == []
    event = only_event(feed(reminded))
    assert alarm_times(event) == [datetime(2018, 1, 17, 9, 0), datetime(2018, 1, 23, 20, 0)]
    assert text(event.walk("VALARM")[0], "DESCRIPTION") == "CWG-WSIS-32, Geneva (starts in 7 days)"


# --- states ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["cancelled", "removed"])
def test_a_cancelled_item_stays_cancelled_for_the_grace_then_goes(status: str) -> None:
    changed_at = NOW - timedelta(days=3)
    view = make_view(status=status, revision=2, updated_at=changed_at)

    kept = only_event(feed(view, now=changed_at + GRACE))
    gone = feed(view, now=changed_at + GRACE + timedelta(seconds=1))

    assert text(kept, "STATUS") == "CANCELLED"
    assert text(kept, "SUMMARY").startswith("Cancelled: Membership: comments")
    assert kept["SEQUENCE"] == 2
    assert kept.walk("VALARM") == []
    assert text(kept, "TRANSP") == "TRANSPARENT"
    assert events(gone) == []


def test_a_completed_deadline_is_ticked_with_its_date_note_and_link_and_has_no_alarms() -> None:
    done = CompletionView(datetime(2017, 3, 8, 15, 0, tzinfo=UTC), "Sent by 41 members", "https://itu.int/c")
    view = make_view(completions={"": done})

    event = only_event(feed(view))

    assert text(event, "SUMMARY") == "✓ Membership: comments on the revised draft — HLPF-17"
    assert text(event, "DESCRIPTION").startswith("Done on Wed, 8 Mar 2017. Sent by 41 members https://itu.int/c\n")
    assert event.walk("VALARM") == []


def test_a_repeating_deadline_is_one_series_whose_occurrences_each_have_the_alarms() -> None:
    view = deadline(date(2019, 1, 30), "Europe/Zurich", repeat="FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=30")

    data = feed(view)

    assert len(events(data)) == 1
    assert b"RRULE:FREQ=YEARLY;BYMONTHDAY=30;BYMONTH=1\r\n" in data
    found = occurrences(data, date(2019, 1, 1), date(2023, 12, 31))
    assert [o["DTSTART"].dt for o in found] == [date(y, 1, 30) for y in range(2019, 2024)]
    assert all(len(o.walk("VALARM")) == 3 for o in found)
    assert {text(o, "UID") for o in found} == {"hlpf/member-comments@tracker.example.org"}
    assert "Repeats: every year" in text(only_event(data), "DESCRIPTION")


def test_a_repeating_timed_deadline_keeps_its_local_time_across_dst_as_planning_does() -> None:
    first = local_to_utc(date(2019, 1, 30), time(18, 0), "America/New_York")
    view = make_view(zone="America/New_York", all_day=False, due_at=first, repeat="FREQ=MONTHLY;COUNT=12")

    found = occurrences(feed(view), date(2019, 1, 1), date(2020, 12, 31))

    planned = expand(view, datetime(2019, 1, 1, tzinfo=UTC), datetime(2021, 1, 1, tzinfo=UTC))
    assert [o["DTSTART"].dt for o in found] == [p.due_at for p in planned]
    assert len(found) == 12 and found[-1]["DTSTART"].dt.year == 2020  # no 30 February: skipped, not counted
    assert {o["DTSTART"].dt.astimezone(get_zone("America/New_York")).hour for o in found} == {18}


def test_a_repeating_meeting_on_the_last_monday_spans_its_days_every_year() -> None:
    view = meeting(date(2019, 2, 25), date(2019, 2, 25), repeat="FREQ=YEARLY;BYMONTH=2;BYDAY=-1MO")

    found = occurrences(feed(view), date(2019, 1, 1), date(2021, 12, 31))

    assert [(o["DTSTART"].dt, o["DTEND"].dt) for o in found] == [
        (date(2019, 2, 25), date(2019, 2, 26)),
        (date(2020, 2, 24), date(2020, 2, 25)),
        (date(2021, 2, 22), date(2021, 2, 23)),
    ]


def test_a_completed_occurrence_of_a_repeating_deadline_is_ticked_alone() -> None:
    done = CompletionView(datetime(2020, 1, 29, 10, 0, tzinfo=UTC))
    view = deadline(
        date(2019, 1, 30),
        "Europe/Zurich",
        repeat="FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=30",
        completions={"2020-01-30": done},
    )

    data = feed(view)

    found = occurrences(data, date(2019, 1, 1), date(2021, 12, 31))
    assert [text(o, "SUMMARY").startswith("✓ ") for o in found] == [False, True, False]
    assert [len(o.walk("VALARM")) for o in found] == [3, 0, 3]
    override = next(e for e in events(data) if "RECURRENCE-ID" in e)
    assert override["RECURRENCE-ID"].dt == date(2020, 1, 30)
    assert override["SEQUENCE"] == 0 and text(override, "UID") == text(events(data)[0], "UID")


@pytest.mark.parametrize(
    ("all_day", "rule", "written"),
    [
        (True, "FREQ=YEARLY;UNTIL=20210130", b"RRULE:FREQ=YEARLY;UNTIL=20210130;BYMONTHDAY=30;BYMONTH=1\r\n"),
        (True, "FREQ=YEARLY;UNTIL=20210130T120000", b"RRULE:FREQ=YEARLY;UNTIL=20210130;BYMONTHDAY=30;BYMONTH=1\r\n"),
        (
            False,
            "FREQ=YEARLY;UNTIL=20210130T180000",
            b"RRULE:FREQ=YEARLY;UNTIL=20210130T170000Z;BYMONTHDAY=30;BYMONTH=1\r\n",
        ),
        (False, "FREQ=YEARLY;UNTIL=20210130", b"RRULE:FREQ=YEARLY;UNTIL=20210129T230000Z;BYMONTHDAY=30;BYMONTH=1\r\n"),
    ],
)
def test_until_takes_the_form_its_dtstart_requires(all_day: bool, rule: str, written: bytes) -> None:
    clock = None if all_day else time(18, 0)
    view = deadline(date(2019, 1, 30), "Europe/Zurich", clock, repeat=rule)

    assert written in feed(view)


# --- the calendar ------------------------------------------------------------------------------


def test_the_calendar_has_its_name_description_refresh_colour_zone_and_addresses() -> None:
    data = feed(deadline(date(2017, 3, 10), "Asia/Tokyo", time(9)), make_view(key="x"), make_view(key="y"))

    head = data.split(b"BEGIN:VTIMEZONE")[0]
    assert head.startswith(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Tracker//Tracker calendar feeds//EN\r\n")
    for line in (
        b"CALSCALE:GREGORIAN",
        b"NAME:WSIS deadlines \xe2\x80\x94 all timelines",
        b"X-WR-CALNAME:WSIS deadlines \xe2\x80\x94 all timelines",
        b"REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        b"X-PUBLISHED-TTL:PT1H",
        b"COLOR:steelblue",
        b"X-WR-TIMEZONE:Europe/Zurich",  # two of three items
        f"URL:{BASE}/".encode(),
        f"SOURCE:{BASE}/feeds/all.ics".encode(),
    ):
        assert line + b"\r\n" in head
    assert b"METHOD" not in head  # see docs/decisions.md: DTSTAMP is then the last revision
    calendar = parse(data)
    assert text(calendar, "DESCRIPTION") == INFO.description
    assert calendar.refresh_interval == timedelta(hours=1)


def test_an_empty_feed_is_a_valid_calendar_in_utc() -> None:
    data = feed()

    assert data.endswith(b"X-WR-TIMEZONE:UTC\r\nEND:VCALENDAR\r\n")
    assert events(data) == [] and parse(data)["VERSION"] == "2.0"


def test_the_same_views_and_time_give_the_same_bytes_ordered_by_start() -> None:
    views = [
        make_view(key="late", due_at=datetime(2017, 4, 7, 21, 59, 59, tzinfo=UTC)),
        meeting(date(2017, 2, 7), date(2017, 2, 8)),
        make_view(key="b-same", timeline_id="zz"),
        make_view(key="a-same"),
    ]

    data = feed(*views)

    assert data == feed(*reversed(views))
    assert [text(e, "UID").split("@")[0] for e in events(data)] == [
        "hlpf/meeting",
        "hlpf/a-same",
        "zz/b-same",
        "hlpf/late",
    ]


def test_select_views_picks_everything_a_timeline_or_what_concerns_an_audience() -> None:
    views = [
        make_view(key="m", owner="membership"),
        make_view(key="s", owner="secretariat"),
        make_view(key="both", owner=None),
        make_view(key="other", timeline_id="other", owner=None, audiences=("secretariat",)),
    ]

    def keys(kind: Any, key: str | None = None) -> list[str]:
        return [v.key for v in select_views(views, kind, key)]

    assert keys("all") == ["m", "s", "both", "other"]
    assert keys("timeline", "other") == ["other"]
    assert keys("audience", "membership") == ["m", "both"]
    assert keys("audience", "secretariat") == ["s", "both", "other"]
    with pytest.raises(ValueError, match="needs a timeline"):
        select_views(views, "timeline", None)


# --- the cache ---------------------------------------------------------------------------------


def variety() -> list[MilestoneView]:
    done = CompletionView(datetime(2020, 1, 29, 10, 0, tzinfo=UTC), "ok")
    return [
        make_view(),
        deadline(date(2017, 4, 28), "Europe/Zurich", time(12), key="submission", reminders=("7d", "4h")),
        deadline(date(2017, 3, 1), "Asia/Tokyo", time(9), key="tokyo"),
        meeting(date(2018, 1, 24), date(2018, 1, 25)),
        make_view(key="gone", status="cancelled", revision=1),
        make_view(key="done", completions={"": done}),
        deadline(
            date(2019, 1, 30),
            "America/New_York",
            time(18),
            key="yearly",
            repeat="FREQ=YEARLY",
            completions={"2020-01-30": done},
        ),
    ]


def test_render_gives_exactly_the_bytes_of_build_feed() -> None:
    cache = FeedCache()

    first = cache.render(variety(), INFO, now=NOW, cancelled_grace=GRACE)
    again = cache.render(variety(), INFO, now=NOW, cancelled_grace=GRACE)

    assert first == again == build_feed(variety(), INFO, now=NOW, cancelled_grace=GRACE)
    assert cache.serialised == len(variety())  # the second render serialised nothing
    later = NOW + timedelta(days=40)  # the cancelled one is past its grace
    assert cache.render(variety(), INFO, now=later, cancelled_grace=GRACE) == build_feed(
        variety(), INFO, now=later, cancelled_grace=GRACE
    )


def test_after_one_change_among_10000_items_only_that_one_is_serialised_again(monkeypatch: pytest.MonkeyPatch) -> None:
    serialised: list[str] = []

    def small_event(view: MilestoneView, info: CalendarInfo, *, now: datetime) -> list[Event]:
        # The cache is under test here, not icalendar's speed: a small item per milestone.
        serialised.append(view.key)
        return [Event.new(uid=view.key, sequence=view.revision, stamp=now, start=view.main_at)]

    monkeypatch.setattr(feeds.builder, "make_components", small_event)
    start = datetime(2030, 1, 1, 22, 59, 59, tzinfo=UTC)
    views = [
        make_view(timeline_id=f"t{n // 100}", key=f"m{n}", due_at=start + timedelta(days=n % 365))
        for n in range(10_000)
    ]
    cache = FeedCache()
    cache.render(views, INFO, now=NOW, cancelled_grace=GRACE)
    views[5000] = replace(views[5000], due_at=views[5000].main_at + timedelta(days=7), revision=1)

    data = cache.render([replace(v) for v in views], INFO, now=NOW, cancelled_grace=GRACE)  # as if loaded again

    assert cache.serialised == 10_001
    assert serialised[10_000:] == ["m5000"]
    assert data.count(b"BEGIN:VEVENT") == 10_000
    assert b"UID:m5000\r\nSEQUENCE:1\r\n" in data


def test_render_notices_changes_that_keep_the_revision() -> None:
    cache = FeedCache()
    views = variety()
    cache.render(views, INFO, now=NOW, cancelled_grace=GRACE)
    done = CompletionView(datetime(2017, 3, 9, tzinfo=UTC))
    views[0] = replace(views[0], timeline_title="HLPF-17 contribution", completions={"": done})

    data = cache.render(views, INFO, now=NOW, cancelled_grace=GRACE)

    assert data == build_feed(views, INFO, now=NOW, cancelled_grace=GRACE)
    assert cache.serialised == len(views) + 1
    assert "✓ Membership: comments on the revised draft — HLPF-17 contribution" in data.decode().replace("\r\n ", "")
    other_site = replace(INFO, base_url="https://elsewhere.example.org")
    assert cache.render(views, other_site, now=NOW, cancelled_grace=GRACE) == build_feed(
        views, other_site, now=NOW, cancelled_grace=GRACE
    )


CHINESE = ItemWords(
    language="zh", acting="%(who)s：%(title)s", cancelled="已取消：%(title)s", audiences=(("membership", "成员"),)
)


def test_a_feed_in_another_language_shows_translated_titles_with_its_own_words() -> None:
    translated = make_view(titles={"zh": "对修订草案的意见"}, timeline_titles={"zh": "高级别政治论坛文稿"})
    cancelled = replace(translated, key="cancelled", status="cancelled")
    english = make_view(key="english", timeline_titles={"zh": "高级别政治论坛文稿"})
    span = meeting(date(2018, 1, 24), date(2018, 1, 25), titles={"zh": "CWG-WSIS-32，日内瓦"})

    data = feed(translated, cancelled, english, span, info=replace(INFO, words=CHINESE))

    assert {text(e, "SUMMARY") for e in events(data)} == {
        "成员：对修订草案的意见 — 高级别政治论坛文稿",
        "已取消：成员：对修订草案的意见 — 高级别政治论坛文稿",
        "Membership: comments on the revised draft — 高级别政治论坛文稿",  # no Chinese title: English words
        "CWG-WSIS-32，日内瓦",
    }
    assert "对修订草案" not in feed(translated, cancelled, english, span).decode()  # the public feed: English


def test_a_cached_item_is_serialised_again_in_another_language() -> None:
    cache = FeedCache()
    view = make_view(titles={"zh": "对修订草案的意见"})
    cache.render([view], INFO, now=NOW, cancelled_grace=GRACE)

    data = cache.render([view], replace(INFO, words=CHINESE), now=NOW, cancelled_grace=GRACE)

    assert data == build_feed([view], replace(INFO, words=CHINESE), now=NOW, cancelled_grace=GRACE)
    assert cache.serialised == 2


# --- end to end: files → sync → store → feed ---------------------------------------------------

SEED_INFO = CalendarInfo(
    name="WSIS deadlines — all timelines",
    description="Deadlines, meetings and forums of the ITU Council Working Group on WSIS.",
    url="http://127.0.0.1:8000/",
    base_url="http://127.0.0.1:8000",
    source="http://127.0.0.1:8000/feeds/all.ics",
)
ABSOLUTE = re.compile(r"\d{4}-\d{2}-\d{2}( \d{2}:\d{2})?")


def words(line: str | dict[str, str]) -> set[str]:
    """The words of a line, or of the English text of a title written by language."""
    english = line if isinstance(line, str) else line["en"]
    return set(re.findall(r"\w+", english.lower()))


def seed_feed(engine: Engine) -> bytes:
    run_sync(engine, REPO_SCHEDULES)
    return build_feed(stored_views(engine), SEED_INFO, now=NOW, cancelled_grace=GRACE)


def expected_start(milestone: dict[str, str], siblings: dict[str, dict[str, str]], zone: str) -> date | datetime:
    """The date or zoned time a milestone of a seed file starts, read from the file itself."""
    written = milestone.get("due") or milestone["starts"]
    if ABSOLUTE.fullmatch(written) is None:  # the seed's only relative form: "meeting - 30d"
        other, days = re.fullmatch(r"(\S+) - (\d+)d", written).groups()  # type: ignore[union-attr]
        day = date.fromisoformat(siblings[other]["starts"]) - timedelta(days=int(days))
        while milestone.get("roll") == "previous" and day.weekday() >= 5:  # the seed's timelines keep Sat-Sun off
            day -= timedelta(days=1)
        return day
    if " " in written:
        return datetime.fromisoformat(written).replace(tzinfo=get_zone(zone))
    return date.fromisoformat(written)


def test_the_seed_feed_matches_the_timeline_files_item_by_item(engine: Engine) -> None:
    data = seed_feed(engine)
    items = by_uid(data)
    assert max(len(line) for line in lines(data)) <= 75

    files = [
        yaml.load(p.read_text(encoding="utf-8"), Loader=yaml.BaseLoader) for p in sorted(REPO_SCHEDULES.glob("*.yaml"))
    ]
    seen = set()
    for timeline in files:
        siblings = {m["id"]: m for m in timeline["milestones"]}
        for milestone in timeline["milestones"]:
            event = items[f"{timeline['id']}/{milestone['id']}@127.0.0.1"]
            seen.add(text(event, "UID"))
            assert event["DTSTART"].dt == expected_start(milestone, siblings, timeline["timezone"])
            if "ends" in milestone:
                assert event["DTEND"].dt == date.fromisoformat(milestone["ends"]) + timedelta(days=1)
            assert words(milestone["title"]) <= words(text(event, "SUMMARY"))
            assert text(event, "LOCATION") if "location" in milestone else "LOCATION" not in event
            assert ("RRULE" in event) == ("repeat" in milestone)
            if "repeat" in milestone:
                assert (
                    event["RRULE"].to_ical() == Calendar.types_factory["recur"].from_ical(milestone["repeat"]).to_ical()
                )
            defaults = timeline.get("reminders", ["14d", "7d", "1d"]) if "due" in milestone else []
            reminders = milestone.get("reminders", defaults)
            assert len(event.walk("VALARM")) == len(reminders)
            assert text(event, "TRANSP") == ("TRANSPARENT" if "due" in milestone else "OPAQUE")
    assert seen == set(items)


def test_the_seed_feed_expands_its_yearly_items_in_2020(engine: Engine) -> None:
    found = occurrences(seed_feed(engine), date(2020, 1, 1), date(2020, 12, 31))

    assert [(text(o, "UID").split("@")[0], o["DTSTART"].dt) for o in found] == [
        ("wsis-prizes-yearly/nominations", date(2020, 1, 2)),
        ("wsis-forum-yearly/open-consultation", date(2020, 1, 30)),
        ("wsis-stocktaking-yearly/best-practices", date(2020, 2, 9)),
        ("wsis-forum-yearly/final-physical-meeting", date(2020, 2, 24)),
        ("wsis-forum-yearly/forum", date(2020, 3, 16)),
    ]


def test_the_seed_feed_matches_its_snapshot(engine: Engine) -> None:
    data = seed_feed(engine)

    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_bytes(data)
    assert data == SNAPSHOT.read_bytes(), "feed changed: rerun with UPDATE_SNAPSHOTS=1 and review the diff"


def test_audience_and_timeline_feeds_of_the_seed_hold_what_concerns_them(engine: Engine) -> None:
    run_sync(engine, REPO_SCHEDULES)
    views = stored_views(engine)

    members = by_uid(
        build_feed(select_views(views, "audience", "membership"), SEED_INFO, now=NOW, cancelled_grace=GRACE)
    )
    hlpf = by_uid(
        build_feed(select_views(views, "timeline", "hlpf-2017-contribution"), SEED_INFO, now=NOW, cancelled_grace=GRACE)
    )

    assert "hlpf-2017-contribution/member-comments@127.0.0.1" in members
    assert "hlpf-2017-contribution/revised-draft@127.0.0.1" not in members  # the secretariat acts
    assert "cwg-wsis-32/meeting@127.0.0.1" in members  # no owner: everyone the timeline addresses
    assert sorted(uid.split("/")[1].split("@")[0] for uid in hlpf) == [
        "final-comments",
        "final-draft",
        "member-comments",
        "revised-draft",
        "submission",
    ]


ZONED = """
    id: zoned
    title: Zoned deadlines
    timezone: {zone}
    audiences: [membership]
    reminders: [1d]
    milestones:
      - id: all-day
        title: Comments
        owner: membership
        due: 2017-03-10
      - id: timed
        title: Submission
        owner: membership
        due: 2017-03-10 09:00
      - id: after-europe-changes
        title: Late March
        owner: membership
        due: 2017-03-27 09:00
      - id: after-us-changes
        title: Mid March
        owner: membership
        due: 2017-03-13 09:00
"""


@pytest.mark.parametrize("zone", ZONES)
def test_synced_deadlines_land_on_their_local_day_and_time_in_every_zone(
    zone: str, engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("zoned", ZONED.format(zone=zone))
    run_sync(engine, schedules)

    items = by_uid(build_feed(stored_views(engine), INFO, now=NOW, cancelled_grace=GRACE))

    def start(key: str) -> Any:
        return items[f"zoned/{key}@tracker.example.org"]["DTSTART"].dt

    assert start("all-day") == date(2017, 3, 10)
    local = get_zone(zone)
    for key, day in (("timed", 10), ("after-europe-changes", 27), ("after-us-changes", 13)):
        assert start(key) == datetime(2017, 3, day, 9, 0, tzinfo=local)
        assert start(key).astimezone(local).hour == 9
    assert alarm_times(items["zoned/all-day@tracker.example.org"]) == [datetime(2017, 3, 9, 9, 0)]


def test_a_moved_date_raises_sequence_and_a_no_op_sync_changes_no_byte(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    run_sync(engine, schedules)
    before = by_uid(build_feed(stored_views(engine), INFO, now=NOW, cancelled_grace=GRACE))
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-03-03"))
    later = NOW + timedelta(hours=2)

    run_sync(engine, schedules, now=later)
    moved = build_feed(stored_views(engine), INFO, now=later, cancelled_grace=GRACE)
    run_sync(engine, schedules, now=later + timedelta(hours=1))
    again = build_feed(stored_views(engine), INFO, now=later + timedelta(hours=1), cancelled_grace=GRACE)

    after = by_uid(moved)
    assert set(after) == set(before)  # UIDs never depend on the date
    revised = after["hlpf/revised-draft@tracker.example.org"]
    assert revised["DTSTART"].dt == date(2017, 3, 3) and revised["SEQUENCE"] == 1
    assert revised["LAST-MODIFIED"].dt == later == revised["DTSTAMP"].dt
    assert {uid.split("/")[1].split("@")[0] for uid, e in after.items() if e["SEQUENCE"] == 1} == {
        "revised-draft",
        "member-comments",  # revised-draft.done + 14d follows the move
        "final-draft",
    }
    assert after["hlpf/submission@tracker.example.org"]["SEQUENCE"] == 0
    assert again == moved


def test_a_cancelled_or_deleted_milestone_stays_as_cancelled_until_the_grace_ends(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("cwg-32", MEETING)
    write_timeline("hlpf", HLPF)
    run_sync(engine, schedules)
    write_timeline(
        "cwg-32", MEETING.replace("        due: meeting - 30d", "        due: meeting - 30d\n        status: cancelled")
    )
    write_timeline("hlpf", HLPF.split("      - id: submission")[0])
    changed_at = NOW + timedelta(days=1)
    run_sync(engine, schedules, now=changed_at)
    views = stored_views(engine)

    within = by_uid(build_feed(views, INFO, now=changed_at + GRACE, cancelled_grace=GRACE))
    after = by_uid(build_feed(views, INFO, now=changed_at + GRACE + timedelta(minutes=1), cancelled_grace=GRACE))

    for uid in ("cwg-32/documents@tracker.example.org", "hlpf/submission@tracker.example.org"):
        assert text(within[uid], "STATUS") == "CANCELLED" and within[uid]["SEQUENCE"] == 1
        assert uid not in after
    assert "Removed from the timeline" in text(within["hlpf/submission@tracker.example.org"], "DESCRIPTION")
    assert text(after["cwg-32/meeting@tracker.example.org"], "STATUS") == "CONFIRMED"


def test_a_done_date_in_the_file_ticks_the_item(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> None:
    write_timeline("hlpf", HLPF.replace("        due: 2017-02-24", "        due: 2017-02-24\n        done: 2017-02-23"))
    run_sync(engine, schedules)

    revised = by_uid(build_feed(stored_views(engine), INFO, now=NOW, cancelled_grace=GRACE))[
        "hlpf/revised-draft@tracker.example.org"
    ]

    assert text(revised, "SUMMARY").startswith("✓ Secretariat: ")
    assert "Done on Thu, 23 Feb 2017." in text(revised, "DESCRIPTION")


BUILD_IN_ANOTHER_PROCESS = """
import sys
from datetime import UTC, datetime, timedelta
from tracker.feeds import CalendarInfo, build_feed
from tracker.timelines.stored import load_views
from tracker.store.engine import open_store, transaction
engine = open_store(sys.argv[1])
with transaction(engine) as session:
    views = load_views(session)
info = CalendarInfo("n", "d", "https://tracker.example.org/", "https://tracker.example.org")
now, grace = datetime(2017, 2, 1, 9, tzinfo=UTC), timedelta(days=30)
sys.stdout.buffer.write(build_feed(views, info, now=now, cancelled_grace=grace))
"""


def test_uids_and_bytes_are_the_same_in_another_process(engine: Engine, database_url: str) -> None:
    run_sync(engine, REPO_SCHEDULES)
    info = CalendarInfo("n", "d", f"{BASE}/", BASE)
    here = build_feed(stored_views(engine), info, now=NOW, cancelled_grace=GRACE)

    there = subprocess.run(
        [sys.executable, "-c", BUILD_IN_ANOTHER_PROCESS, database_url], capture_output=True, check=True, timeout=120
    ).stdout

    assert sorted(by_uid(there)) == sorted(by_uid(here)) and len(by_uid(here)) == 29
    assert there == here


# --- what does not read is left out, the feed served (issue 13) ---------------------------------


def test_an_item_no_calendar_can_take_is_left_out_and_every_other_item_served() -> None:
    # dateutil expands this rule; icalendar (and every client) refuses a COUNT past 2**31 - 1.
    broken = make_view(key="huge-count", repeat="FREQ=YEARLY;COUNT=999999999999")
    cache = FeedCache()

    body = cache.render([*variety(), broken], INFO, now=NOW, cancelled_grace=GRACE)

    assert body == build_feed([*variety(), broken], INFO, now=NOW, cancelled_grace=GRACE)
    uids = {str(e["UID"]).split("@")[0] for e in Calendar.from_ical(body).walk("VEVENT")}
    assert "hlpf/huge-count" not in uids and "hlpf/member-comments" in uids
    assert "Integer 999999999999 is outside the RFC 5545 range" in cache.left_out["hlpf/huge-count"]


def test_a_stored_offset_out_of_range_loses_its_alarm_not_its_item() -> None:
    from tracker.timelines.screening import screen_views

    set_aside: dict[str, str] = {}
    [view] = screen_views([make_view(reminders=("99999w", "7d"))], set_aside)

    body = build_feed([view], INFO, now=NOW, cancelled_grace=GRACE)

    [event] = Calendar.from_ical(body).walk("VEVENT")
    assert [a.decoded("TRIGGER") for a in event.walk("VALARM")] == [timedelta(days=-7, hours=9)]
    assert set_aside == {"hlpf/member-comments": "reminders ['99999w'] cannot be used (from 1h to 366d): left out"}
