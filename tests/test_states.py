"""The state model: where each step of a process stands at a given instant (docs/architecture.md §6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.factories import make_view
from tracker.timelines.states import Process
from tracker.timelines.views import CompletionView, MilestoneView, Occurrence, expand

GENEVA = "Europe/Zurich"
# The HLPF chain: the secretariat posts the revised draft by 8 March; members comment until 15 March.
DRAFT = make_view(key="revised-draft", title="Revised draft posted", owner="secretariat",
                  due_at=datetime(2017, 3, 8, 22, 59, 59, tzinfo=UTC))  # fmt: skip
COMMENTS = make_view(key="final-comments", title="Final comments", owner="membership", opens_after="revised-draft",
                     due_at=datetime(2017, 3, 15, 22, 59, 59, tzinfo=UTC))  # fmt: skip
MEETING = make_view(key="meeting", title="CWG-WSIS meeting", kind="span", all_day=False, owner=None, due_at=None,
                    starts_at=datetime(2017, 3, 20, 8, 0, tzinfo=UTC),
                    ends_at=datetime(2017, 3, 21, 16, 0, tzinfo=UTC))  # fmt: skip


def at(day: int, hour: int = 12, month: int = 3) -> datetime:
    return datetime(2017, month, day, hour, tzinfo=UTC)


def only(view: MilestoneView) -> Occurrence:
    return Occurrence(view, "", view.due_at, view.starts_at, view.ends_at)


def state(view: MilestoneView, now: datetime, *others: MilestoneView, late_days: int = 30) -> str:
    return Process([view, *others], now=now, late_days=late_days).state(only(view))


def done(view: MilestoneView, when: datetime, note: str = "") -> MilestoneView:
    return make_view(**{**view.__dict__, "completions": {"": CompletionView(when, note, "https://example.org/d")}})


def test_a_deadline_goes_upcoming_due_today_late_then_missed_after_the_late_days() -> None:
    assert state(DRAFT, at(1)) == "upcoming"
    assert state(DRAFT, at(8, 6)) == "due_today"  # Geneva's 8 March, before its end
    assert state(DRAFT, at(8, 23)) == "late"  # 9 March 00:00 in Geneva
    assert state(DRAFT, at(9) + timedelta(days=29)) == "late"
    assert state(DRAFT, at(9) + timedelta(days=31)) == "missed"
    assert state(DRAFT, at(12), late_days=2) == "missed"


def test_a_late_step_is_missed_once_a_later_step_of_its_timeline_is_past_or_done() -> None:
    later = make_view(key="summary", title="Summary", due_at=at(10), owner="secretariat")
    assert state(DRAFT, at(9, 20), later) == "late"
    assert state(DRAFT, at(10, 13), later) == "missed"
    assert state(DRAFT, at(9, 20), done(later, at(9, 18))) == "missed"  # done early: the process moved on


def test_a_step_waiting_for_its_earlier_step_does_not_count_as_moving_on() -> None:
    # The comment window's date passed while it waited for the draft: the draft is still late, not missed.
    assert state(DRAFT, at(16), COMMENTS) == "late"
    assert state(COMMENTS, at(16), DRAFT) == "waiting"


def test_a_window_waits_for_its_step_then_is_open_until_its_deadline() -> None:
    assert state(COMMENTS, at(5), DRAFT) == "waiting"
    posted = done(DRAFT, at(6))
    assert state(COMMENTS, at(7), posted) == "open"
    assert state(COMMENTS, at(15, 9), posted) == "due_today"
    assert state(COMMENTS, at(16), posted) == "late"


def test_a_window_whose_step_is_cancelled_or_unknown_does_not_wait() -> None:
    cancelled = make_view(**{**DRAFT.__dict__, "status": "cancelled"})
    assert state(COMMENTS, at(5), cancelled) == "open"
    assert state(COMMENTS, at(5)) == "open"  # its step is not (or no longer) in the store


def test_a_meeting_is_upcoming_open_while_it_runs_then_done_when_over() -> None:
    assert state(MEETING, at(19)) == "upcoming"
    assert state(MEETING, at(20, 9)) == "open"
    standing = Process([MEETING], now=at(22)).standing(only(MEETING))
    assert (standing.state, standing.done_at) == ("done", MEETING.ends_at)


def test_done_keeps_its_date_note_and_link_and_cancelled_wins_over_everything() -> None:
    posted = done(DRAFT, at(7, 15), "Posted as WG-17/3")
    standing = Process([posted], now=at(30)).standing(only(posted))
    assert standing.state == "done" and standing.done_at == at(7, 15)
    assert standing.completion is not None and standing.completion.note == "Posted as WG-17/3"
    off = make_view(**{**posted.__dict__, "status": "cancelled"})
    assert state(off, at(30)) == "cancelled"


def test_a_repeating_step_is_missed_once_its_next_occurrence_is_past() -> None:
    monthly = make_view(key="report", title="Monthly report", owner="secretariat", repeat="FREQ=MONTHLY",
                        due_at=datetime(2017, 1, 10, 22, 59, 59, tzinfo=UTC))  # fmt: skip
    january, february = expand(monthly, at(1, month=1), at(28, month=2))
    assert Process([monthly], now=at(20, month=1)).state(january) == "late"
    process = Process([monthly], now=at(11, month=2))
    assert (process.state(january), process.state(february)) == ("missed", "late")


def test_late_lists_only_late_steps_longest_overdue_first() -> None:
    second = make_view(key="annex", title="Annex", owner="secretariat", due_at=at(8, 20),
                       timeline_id="cwg", timeline_title="CWG")  # fmt: skip
    process = Process([second, DRAFT, COMMENTS, MEETING], now=at(10))
    assert [item.milestone.key for item in process.late()] == ["annex", "revised-draft"]
    assert [item.milestone.key for item in process.late(timeline="cwg")] == ["annex"]
