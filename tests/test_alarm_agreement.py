"""A reminder email and the calendar alarm for the same offset fire at the same instant (issue 15, point 7).

Each item repeats daily through a year, so its occurrences cross both changes of the clocks in
every zone; the email's send time (as planned) is compared with the alarm of the same
occurrence as RFC 5545 computes it by hand, as recurring_ical_events computes it, and as ical.js
does under node. Calendars add a TRIGGER on the wall clock where RFC 5545 counts its hours as
elapsed time: the two readings differ only where the elapsed part spans a change of the clocks,
which the rule never writes for a day offset; an hour offset is elapsed time by definition, so
there the email follows RFC 5545 and the libraries are not asked.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import factories
from tests.support.alarms import icaljs_alarms, install_icaljs, library_alarms, occurrence_alarms
from tracker.delivery.planning import plan_reminders
from tracker.feeds import CalendarInfo, build_feed
from tracker.subscribers.readers import Reader
from tracker.timelines.dates import END_OF_DAY, get_zone, local_to_utc, parse_offset
from tracker.timelines.triggers import reminder_trigger
from tracker.timelines.views import MilestoneView

ZONES = ["Europe/Zurich", "America/New_York", "Pacific/Auckland"]
OFFSETS = ("14d", "7d", "1d", "36h", "24h", "4h", "90m")
FIRST, SINCE, UNTIL = date(2026, 1, 1), date(2026, 1, 20), date(2026, 12, 31)
NOW = datetime(2025, 12, 31, tzinfo=UTC)
BASE = "https://tracker.example.org"
INFO = CalendarInfo(name="All", description="All", url=f"{BASE}/", base_url=BASE, reminder_hour=9)
READER = Reader(1, ("membership",), None, None)

# (name, kind, start time or None for all-day, length of a span)
ITEMS: list[tuple[str, str, time | None, timedelta | None]] = [
    ("all-day deadline", "deadline", None, None),
    ("deadline at 12:00", "deadline", time(12, 0), None),
    ("deadline at 08:00", "deadline", time(8, 0), None),
    ("deadline at 02:30", "deadline", time(2, 30), None),  # a skipped or repeated hour twice a year
    ("deadline at 23:45", "deadline", time(23, 45), None),
    ("meeting at 10:00", "span", time(10, 0), timedelta(hours=2)),
    ("all-day meeting", "span", None, timedelta(days=1)),
]


def daily_item(kind: str, clock: time | None, length: timedelta | None, zone: str) -> MilestoneView:
    """Return an item repeating every day of 2026 in *zone*, with every offset form as reminders."""
    start = local_to_utc(FIRST, clock or (END_OF_DAY if kind == "deadline" else time(0)), zone)
    dates: dict[str, Any] = {"due_at": start} if kind == "deadline" else {"due_at": None, "starts_at": start}
    if kind == "span":
        assert length is not None
        end = start + length - timedelta(seconds=1) if clock is None else start + length
        dates["ends_at"] = end
    return factories.make_view(
        kind=kind,
        all_day=clock is None,
        zone=zone,
        repeat="FREQ=DAILY;COUNT=400",
        reminders=OFFSETS,
        owner="membership",
        updated_at=NOW,
        **dates,
    )


def emails(view: MilestoneView) -> dict[date, list[datetime]]:
    """Return the planned send times of the reminder emails, by occurrence, in the order of OFFSETS."""
    wanted = plan_reminders([view], [READER], now=NOW, horizon=timedelta(days=400), reminder_hour=9)
    found: dict[date, dict[str, datetime]] = {}
    for row in wanted:
        found.setdefault(date.fromisoformat(row.occurrence), {})[row.slot] = row.send_at
    return {day: [slots[o] for o in OFFSETS] for day, slots in found.items() if len(slots) == len(OFFSETS)}


def feed(view: MilestoneView) -> bytes:
    return build_feed([view], INFO, now=NOW, cancelled_grace=timedelta(0))


def cases(timed_only: bool = False) -> Iterator[Any]:
    for zone in ZONES:
        for name, kind, clock, length in ITEMS:
            if clock is not None or not timed_only:
                yield pytest.param(zone, kind, clock, length, id=f"{zone}-{name}")


def in_range(found: dict[date, list[datetime]]) -> dict[date, list[datetime]]:
    return {day: times for day, times in found.items() if SINCE <= day <= UNTIL}


def calendars_may_differ(view: MilestoneView, day: date, offset: str, fired_at: datetime) -> bool:
    """Whether a calendar adding the TRIGGER on the wall clock lands elsewhere than RFC 5545 (and the email).

    It does when the elapsed part of an hour offset spans a change of the clocks, and when the
    wall time it lands on is skipped or comes twice (ical.js then reads it with the later offset,
    RFC 5545 with the earlier). A day offset's elapsed part never spans a night, so only the second
    can happen to it, to an item at a time of night that a change skips or repeats.
    """
    if view.all_day:  # a date floats: the wall clock is all there is
        return False
    zone = get_zone(view.zone)
    trigger = reminder_trigger(view, parse_offset(offset), 9)
    start = datetime.combine(day, view.main_at.astimezone(zone).time())
    wall = start + timedelta(days=trigger.days) + trigger.exact
    first, second = wall.replace(tzinfo=zone), wall.replace(tzinfo=zone, fold=1)
    return first.utcoffset() != second.utcoffset() or first.astimezone(UTC) != fired_at


def near_a_clock_change(at: datetime, zone: str) -> bool:
    offsets = {(at + timedelta(hours=h)).astimezone(get_zone(zone)).utcoffset() for h in range(-48, 49, 6)}
    return len(offsets) > 1


@pytest.mark.parametrize(("zone", "kind", "clock", "length"), list(cases()))
def test_each_email_goes_when_rfc_5545_fires_the_alarm(
    zone: str, kind: str, clock: time | None, length: timedelta | None
) -> None:
    view = daily_item(kind, clock, length, zone)

    sent = in_range(emails(view))
    fired = in_range(occurrence_alarms(feed(view), zone, SINCE, UNTIL + timedelta(days=1)))

    assert len(sent) == (UNTIL - SINCE).days + 1
    assert sent == fired


@pytest.mark.parametrize(("zone", "kind", "clock", "length"), list(cases(timed_only=True)))
def test_each_email_goes_when_recurring_ical_events_fires_the_alarm(
    zone: str, kind: str, clock: time | None, length: timedelta | None
) -> None:
    # Timed items only: recurring_ical_events 3.8 raises TypeError adding a TRIGGER to a date start.
    view = daily_item(kind, clock, length, zone)
    ics = feed(view)

    sent = in_range(emails(view))
    fired = library_alarms(ics, SINCE - timedelta(days=15), UNTIL + timedelta(days=1))

    differ = {
        at
        for day, times in sent.items()
        for offset, at in zip(OFFSETS, times, strict=True)
        if calendars_may_differ(view, day, offset, at)
    }
    expected = {at for times in sent.values() for at in times} - differ
    assert expected - fired == set()
    assert differ and all(near_a_clock_change(at, zone) for at in differ)


@pytest.fixture(scope="module")
def icaljs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("icaljs")
    why_not = install_icaljs(folder)
    if why_not is not None:
        pytest.skip(f"ical.js cannot be run: {why_not}")
    return folder


@pytest.mark.parametrize(("zone", "kind", "clock", "length"), list(cases()))
def test_each_email_goes_when_ical_js_fires_the_alarm(
    icaljs: Path, zone: str, kind: str, clock: time | None, length: timedelta | None
) -> None:
    view = daily_item(kind, clock, length, zone)
    ics = feed(view)

    sent = in_range(emails(view))
    fired = in_range(icaljs_alarms(icaljs, ics, zone, UNTIL + timedelta(days=1)))

    assert sent.keys() == fired.keys()
    disagree = [
        (day, offset, at, fired[day][index])
        for day, times in sent.items()
        for index, (offset, at) in enumerate(zip(OFFSETS, times, strict=True))
        if at != fired[day][index]
    ]
    assert [case for case in disagree if not calendars_may_differ(view, *case[:3])] == []
    assert all(near_a_clock_change(at, zone) for _, _, at, _ in disagree)
