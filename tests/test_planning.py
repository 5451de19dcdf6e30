"""Planning is pure: what is due when, with `now` passed in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support import factories
from tracker.timelines.views import CompletionView, MilestoneView, concerns, list_upcoming, nearest_occurrence

NOW = datetime(2017, 2, 1, 8, 0, tzinfo=UTC)


def make_view(**overrides: Any) -> MilestoneView:
    return factories.make_view(**{"key": "comments", "title": "Comments", **overrides})


def test_it_lists_deadlines_inside_the_window_earliest_first() -> None:
    late = make_view(key="late", due_at=datetime(2017, 4, 7, 21, 59, 59, tzinfo=UTC))
    soon = make_view(key="soon", due_at=datetime(2017, 2, 24, 22, 59, 59, tzinfo=UTC))
    past = make_view(key="past", due_at=datetime(2017, 1, 31, 22, 59, 59, tzinfo=UTC))

    items = list_upcoming([late, soon, past], now=NOW, window=timedelta(days=60))

    assert [i.milestone.key for i in items] == ["soon"]


def test_it_skips_cancelled_and_removed_milestones() -> None:
    items = list_upcoming(
        [make_view(status="cancelled"), make_view(key="x", status="removed")], now=NOW, window=timedelta(days=60)
    )

    assert items == []


def test_a_meeting_under_way_is_listed_until_it_ends() -> None:
    meeting = make_view(
        kind="span",
        owner=None,
        due_at=None,
        starts_at=datetime(2017, 1, 31, 23, 0, tzinfo=UTC),
        ends_at=datetime(2017, 2, 2, 22, 59, 59, tzinfo=UTC),
    )

    assert len(list_upcoming([meeting], now=NOW, window=timedelta(days=1))) == 1
    assert list_upcoming([meeting], now=NOW + timedelta(days=3), window=timedelta(days=1)) == []


def test_owner_decides_who_is_concerned_and_ownerless_items_concern_the_timelines_audiences() -> None:
    assert concerns(make_view(owner="membership"), "membership")
    assert not concerns(make_view(owner="secretariat"), "membership")
    assert concerns(make_view(owner=None), "secretariat")
    assert not concerns(make_view(owner=None, audiences=("secretariat",)), "membership")
    assert concerns(make_view(owner=None, audiences=()), "anyone")


def test_a_yearly_timed_milestone_keeps_its_local_time_across_dst() -> None:
    # 30 January 09:00 in Geneva is 08:00 UTC in winter; 30 June would be 07:00 UTC.
    yearly = make_view(all_day=False, due_at=datetime(2019, 1, 30, 8, 0, tzinfo=UTC), repeat="FREQ=YEARLY;COUNT=3")
    monthly = replace(yearly, key="monthly", repeat="FREQ=MONTHLY;BYMONTH=1,6;COUNT=4")

    years = list_upcoming([yearly], now=datetime(2019, 1, 1, tzinfo=UTC), window=timedelta(days=2000))
    months = list_upcoming([monthly], now=datetime(2019, 1, 1, tzinfo=UTC), window=timedelta(days=2000))

    assert [i.due_at for i in years] == [datetime(y, 1, 30, 8, 0, tzinfo=UTC) for y in (2019, 2020, 2021)]
    assert [i.occurrence for i in years] == ["2019-01-30", "2020-01-30", "2021-01-30"]
    assert months[1].due_at == datetime(2019, 6, 30, 7, 0, tzinfo=UTC)


def test_a_repeating_span_keeps_its_length_in_every_occurrence() -> None:
    forum = make_view(
        kind="span",
        owner=None,
        due_at=None,
        starts_at=datetime(2019, 3, 17, 23, 0, tzinfo=UTC),  # Mon 18 Mar 2019, Geneva
        ends_at=datetime(2019, 3, 22, 22, 59, 59, tzinfo=UTC),  # Fri 22 Mar 2019
        repeat="FREQ=YEARLY;BYMONTH=3;BYDAY=3MO",
    )

    items = list_upcoming([forum], now=datetime(2020, 1, 1, tzinfo=UTC), window=timedelta(days=365))

    assert len(items) == 1
    assert items[0].starts_at == datetime(2020, 3, 15, 23, 0, tzinfo=UTC)  # Mon 16 Mar 2020
    # Ends on Friday 20 March at the end of the day; CET still (DST starts 29 March).
    assert items[0].ends_at == datetime(2020, 3, 20, 22, 59, 59, tzinfo=UTC)


def test_a_completion_belongs_to_the_nearest_occurrence() -> None:
    yearly = make_view(due_at=datetime(2019, 1, 2, 22, 59, 59, tzinfo=UTC), repeat="FREQ=YEARLY")

    assert nearest_occurrence(yearly, datetime(2021, 1, 5, tzinfo=UTC)) == "2021-01-02"
    assert nearest_occurrence(yearly, datetime(2021, 12, 20, tzinfo=UTC)) == "2022-01-02"
    assert nearest_occurrence(make_view(), datetime(2021, 1, 5, tzinfo=UTC)) == ""


def test_an_occurrence_shows_as_done_only_when_its_own_completion_exists() -> None:
    done_at = datetime(2020, 1, 1, tzinfo=UTC)
    yearly = make_view(
        due_at=datetime(2019, 1, 2, 22, 59, 59, tzinfo=UTC),
        repeat="FREQ=YEARLY",
        completions={"2020-01-02": CompletionView(done_at)},
    )

    items = list_upcoming([yearly], now=datetime(2019, 12, 1, tzinfo=UTC), window=timedelta(days=500))

    assert [(i.occurrence, i.done_at) for i in items] == [("2020-01-02", done_at), ("2021-01-02", None)]


def test_a_yearly_all_day_deadline_includes_the_day_named_in_until() -> None:
    # RFC 5545: UNTIL=20210130 includes an occurrence on 30 January 2021, as calendars show it.
    yearly = make_view(due_at=datetime(2019, 1, 30, 22, 59, 59, tzinfo=UTC), repeat="FREQ=YEARLY;UNTIL=20210130")

    items = list_upcoming([yearly], now=datetime(2019, 1, 1, tzinfo=UTC), window=timedelta(days=1500))

    assert [i.occurrence for i in items] == ["2019-01-30", "2020-01-30", "2021-01-30"]
    assert items[-1].due_at == datetime(2021, 1, 30, 22, 59, 59, tzinfo=UTC)
