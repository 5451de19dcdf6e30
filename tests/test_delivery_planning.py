"""Pure planning of deliveries: when each reminder goes and to whom (no store, `now` passed in)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from tests.support.delivery import at
from tests.support.factories import make_view
from tracker.delivery.planning import Escalation, next_digest, plan_digests, plan_late, plan_reminders, reminder_at
from tracker.subscribers.readers import Reader
from tracker.timelines.dates import parse_offset
from tracker.timelines.views import Occurrence

MEMBER = Reader(1, ("membership",), None, None, "Europe/Zurich")
SECRETARIAT = Reader(2, ("secretariat",), None, None, "Europe/Zurich")


def when(view_overrides: Mapping[str, object], offset: str, hour: int = 9) -> str:
    view = make_view(**view_overrides)
    item = Occurrence(view, "", view.due_at, view.starts_at, view.ends_at)
    return reminder_at(item, parse_offset(offset), hour).isoformat()


def test_day_offsets_go_at_the_reminder_hour_of_the_timelines_zone_across_dst() -> None:
    due = {"due_at": at("2017-03-30 23:59:59")}  # summer time starts on 26 March
    assert when(due, "7d") == at("2017-03-23 09:00").isoformat() == "2017-03-23T08:00:00+00:00"
    assert when(due, "1d") == at("2017-03-29 09:00").isoformat() == "2017-03-29T07:00:00+00:00"
    assert when(due, "2w", hour=14) == at("2017-03-16 14:00").isoformat()


def test_hour_offsets_are_exact_across_dst() -> None:
    timed = {"all_day": False, "due_at": at("2017-03-26 12:00")}  # 10:00 UTC, the day clocks go forward
    assert when(timed, "4h") == "2017-03-26T06:00:00+00:00"
    assert when(timed, "24h") == "2017-03-25T10:00:00+00:00"  # 11:00 CET: exactly 24 hours before
    assert when(timed, "1d") == at("2017-03-25 09:00").isoformat()  # a day offset: the reminder hour


def test_a_day_offset_goes_at_the_reminder_hour_or_at_the_items_own_earlier_time() -> None:
    noon = {"all_day": False, "due_at": at("2026-03-31 12:00")}  # summer time starts on 29 March
    assert when(noon, "7d") == at("2026-03-24 09:00").isoformat()  # what the feed's -P7DT3H fires at
    early = {"all_day": False, "due_at": at("2026-03-31 08:00")}
    assert when(early, "7d") == at("2026-03-24 08:00").isoformat()  # 09:00 would be less than 7 days
    assert when(early, "1d", hour=7) == at("2026-03-30 07:00").isoformat()


def test_hours_before_an_all_day_deadline_count_from_the_end_of_its_day() -> None:
    assert when({}, "4h") == at("2017-03-10 20:00").isoformat()


def test_meetings_are_reminded_of_by_their_start() -> None:
    meeting = {"kind": "span", "due_at": None, "starts_at": at("2018-01-24 00:00"), "ends_at": at("2018-01-25 23:59")}
    assert when(meeting, "1d") == at("2018-01-23 09:00").isoformat()
    assert when(meeting, "2h") == at("2018-01-23 22:00").isoformat()


def test_reminders_are_routed_by_audience_and_timeline() -> None:
    view = make_view(reminders=("7d", "1d"))  # owned by the membership
    readers = [
        MEMBER,
        SECRETARIAT,
        Reader(3, ("membership",), ("other",), None),
        Reader(4, ("membership",), ("hlpf",), None),
    ]
    wanted = plan_reminders([view], readers, now=at("2017-03-01 00:00"), horizon=timedelta(days=35), reminder_hour=9)
    assert sorted((w.subscriber_id, w.slot) for w in wanted) == [(1, "1d"), (1, "7d"), (4, "1d"), (4, "7d")]
    assert {w.deadline_at for w in wanted} == {view.due_at}


def test_a_subscribers_own_offsets_replace_the_milestones() -> None:
    view = make_view(reminders=("7d", "1d"))
    reader = Reader(5, ("membership",), None, ("3d",))
    wanted = plan_reminders([view], [reader], now=at("2017-03-01 00:00"), horizon=timedelta(days=35), reminder_hour=9)
    assert [(w.slot, w.send_at) for w in wanted] == [("3d", at("2017-03-07 09:00"))]


def test_nothing_is_planned_beyond_the_horizon_past_the_deadline_or_once_done() -> None:
    view = make_view(reminders=("14d", "1d"))
    now = at("2017-02-20 00:00")
    planned = plan_reminders([view], [MEMBER], now=now, horizon=timedelta(days=7), reminder_hour=9)
    assert [w.slot for w in planned] == ["14d"]  # the 1d reminder (9 March) is beyond the horizon
    late = plan_reminders([view], [MEMBER], now=at("2017-03-11 00:00"), horizon=timedelta(days=7), reminder_hour=9)
    assert late == []
    from tracker.timelines.views import CompletionView

    done = make_view(reminders=("14d",), completions={"": CompletionView(at("2017-02-19 10:00"))})
    assert plan_reminders([done], [MEMBER], now=now, horizon=timedelta(days=7), reminder_hour=9) == []


def test_a_yearly_all_day_deadline_is_still_ahead_on_its_own_day() -> None:
    view = make_view(due_at=at("2019-01-02 23:59:59"), repeat="FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=2", reminders=("3h",))
    wanted = plan_reminders([view], [MEMBER], now=at("2027-01-02 10:00"), horizon=timedelta(days=7), reminder_hour=9)
    assert [(w.occurrence, w.send_at) for w in wanted] == [("2027-01-02", at("2027-01-02 21:00"))]


def test_the_weekly_digest_goes_on_monday_at_the_readers_hour_in_their_zone() -> None:
    reader = Reader(6, ("membership",), None, None, "America/New_York", digest="weekly")
    send_at, monday = next_digest(at("2026-11-28 12:00"), reader.timezone, 9)  # a Saturday
    assert (monday.isoformat(), send_at.isoformat()) == ("2026-11-30", "2026-11-30T14:00:00+00:00")
    [wanted] = plan_digests([reader, MEMBER], now=at("2026-11-28 12:00"), horizon=timedelta(days=7), reminder_hour=9)
    assert (wanted.subscriber_id, wanted.kind, wanted.slot) == (6, "digest", "2026-11-30")


def overdue_notices(overdue: tuple[str, ...] | None) -> list[tuple[str, str]]:
    """The overdue notices a late all-day deadline (10 March, Geneva) gets until 5 April, TRACKER_OVERDUE=1d,3d."""
    view = make_view(owner="secretariat", overdue=overdue)
    planned = plan_late([view], [SECRETARIAT], now=at("2017-03-10 12:00"), horizon=timedelta(days=26),
                        reminder_hour=9, escalation=Escalation(("1d", "3d"), late_days=30))  # fmt: skip
    return [(w.slot, w.send_at.isoformat()) for w in planned if w.kind == "overdue"]


def test_a_milestones_own_overdue_offsets_replace_the_setting() -> None:
    # The first reminder hour after the due day (09:00 in Geneva, which 1d falls on too), then each offset.
    assert overdue_notices(None) == [("due", "2017-03-11T08:00:00+00:00"), ("3d", "2017-03-13T08:00:00+00:00")]
    assert overdue_notices(("2d",)) == [("due", "2017-03-11T08:00:00+00:00"), ("2d", "2017-03-12T08:00:00+00:00")]
    assert overdue_notices(("12h",)) == [("due", "2017-03-11T08:00:00+00:00"), ("12h", "2017-03-11T10:59:59+00:00")]


def test_overdue_offsets_set_to_none_in_the_file_turn_overdue_notices_off() -> None:
    assert overdue_notices(()) == []


def test_a_stored_overdue_offset_out_of_range_is_left_out_and_said_and_none_left_means_the_setting() -> None:
    from tracker.timelines.screening import screen_views

    set_aside: dict[str, str] = {}
    [some, none] = screen_views(
        [make_view(overdue=("99999w", "2d")), make_view(key="late", overdue=("0d",))], set_aside
    )

    assert (some.overdue, none.overdue) == (("2d",), None)
    assert set_aside == {
        "hlpf/member-comments": "overdue ['99999w'] cannot be used (from 1h to 366d): left out",
        "hlpf/late": "overdue ['0d'] cannot be used (from 1h to 366d): left out, TRACKER_OVERDUE used",
    }
