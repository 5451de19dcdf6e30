"""Planning follows the work (issue 18): a pass re-plans what changed and what time brought in, nothing else.

Each test plans once, then changes one thing (or nothing, or only the time) and looks at what
the next pass did to the outbox: which rows it wrote, and which statements it sent the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlmodel import select

from tests.support.delivery import Clock, at, deliver, make_dispatcher, rows, subscribe, sync
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import WriteTimeline
from tracker.delivery import outbox
from tracker.delivery.notices import Handled
from tracker.delivery.outbox import Replan
from tracker.feeds.calendars import Calendars
from tracker.store.audit import request_event
from tracker.store.engine import transaction
from tracker.store.models import Subscriber
from tracker.subscribers.registry import unsubscribe

START = at("2017-02-01 09:00")  # the horizon (35 days) ends on 8 March, 09:00


def group(a_due: str = "2017-03-10") -> str:
    # a: 7d on 3 March, inside; 1d on 9 March, just outside. c: 7d on 1 March. b: nothing yet.
    return f"""
        id: wg
        title: Working group
        timezone: Europe/Zurich
        audiences: [membership]
        reminders: [7d, 1d]
        milestones:
          - id: a
            title: Step A
            owner: membership
            due: {a_due}
          - id: b
            title: Step B
            owner: membership
            due: 2017-03-20
          - id: c
            title: Step C
            owner: membership
            due: 2017-03-08
        """


@pytest.fixture
def planned(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Engine:
    """Three members, everything planned once at START."""
    write_timeline("wg", group())
    sync(engine, schedules, START)
    for name in ("ana", "ben", "eva"):
        subscribe(engine, f"{name}@example.org", START)
    refresh(engine, START)
    return engine


def refresh(engine: Engine, now: datetime, **config: object) -> tuple[Handled, Replan | None]:
    """What `tracker send-due` and the hourly pass plan at *now*."""
    return make_dispatcher(engine, "smtp://127.0.0.1:1", Clock(now), **config).refresh(timely=True)


@contextmanager
def noted(engine: Engine, keep: Callable[[str], bool]) -> Iterator[list[str]]:
    """Every statement *keep* keeps of those sent the store while inside."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if keep(statement):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def outbox_statements(engine: Engine) -> AbstractContextManager[list[str]]:
    """Every statement on the outbox (the deliveries table) sent while inside, but the log's pruning."""
    return noted(engine, lambda text: "deliveries" in text and not text.lstrip().upper().startswith("DELETE"))


def subscriber_reads(engine: Engine) -> AbstractContextManager[list[str]]:
    """Every statement reading the subscribers sent while inside."""
    return noted(engine, lambda text: text.lstrip().upper().startswith("SELECT") and "FROM subscribers" in text)


def planned_slots(engine: Engine, **where: object) -> set[tuple[str, str, str]]:
    """(milestone, slot, address) of each planned reminder."""
    emails = subscriber_emails(engine)
    found = rows(engine, kind="reminder", state="planned", **where)
    return {(row.milestone_key, row.slot, emails[row.subscriber_id]) for row in found}


def subscriber_emails(engine: Engine) -> dict[int, str]:
    with transaction(engine) as session:
        return {s.id or 0: s.email for s in session.exec(select(Subscriber))}


def test_the_first_pass_plans_what_falls_inside_the_horizon(planned: Engine) -> None:
    assert {(m, slot) for m, slot, _ in planned_slots(planned)} == {("a", "7d"), ("c", "7d"), ("c", "1d")}
    assert len(planned_slots(planned)) == 9


def test_a_pass_with_nothing_changed_and_nothing_come_in_reads_no_outbox_row(planned: Engine) -> None:
    before = {row.id: row.updated_at for row in rows(planned)}
    with outbox_statements(planned) as seen:
        handled, replanned = refresh(planned, START + timedelta(hours=1))
    assert seen == []
    assert (handled.replan, replanned) == (False, None)
    assert {row.id: row.updated_at for row in rows(planned)} == before


def test_a_console_sign_in_replans_nothing(planned: Engine) -> None:
    with transaction(planned, write=True) as session:
        session.add(request_event(START, "someone@example.org", "127.0.0.1", known=False))
    with outbox_statements(planned) as seen:
        handled, _ = refresh(planned, START + timedelta(minutes=5))
    assert handled.events == 1 and not handled.replan
    assert seen == []


def test_time_brings_a_reminder_inside_the_horizon_without_touching_the_others(planned: Engine) -> None:
    before = {row.id: row.updated_at for row in rows(planned)}
    later = START + timedelta(days=1)  # the horizon now reaches 9 March: a's 1d reminders, c's first overdue notice
    _, replanned = refresh(planned, later)
    assert replanned is not None and (replanned.added, replanned.moved, replanned.cancelled) == (6, 0, 0)
    assert {(m, slot) for m, slot, _ in planned_slots(planned, milestone_key="a")} == {("a", "7d"), ("a", "1d")}
    assert {(row.milestone_key, row.slot) for row in rows(planned, kind="overdue")} == {("c", "due@2017-03-08")}
    assert {row.id: row.updated_at for row in rows(planned) if row.id in before} == before


def test_a_milestone_moved_after_a_quiet_pass_is_replanned_and_only_it(
    planned: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    refresh(planned, START + timedelta(hours=1))  # the quiet pass
    others = {row.id: row.updated_at for row in rows(planned) if row.milestone_key != "a"}
    write_timeline("wg", group(a_due="2017-03-06"))  # a moves four days earlier: its 1d and overdue come inside
    sync(planned, schedules, START + timedelta(hours=2))
    handled, replanned = refresh(planned, START + timedelta(hours=2))
    assert handled.scope.milestones == {("wg", "a")}
    assert replanned is not None and (replanned.moved, replanned.added) == (3, 6)
    sends = {(row.slot, row.send_at) for row in rows(planned, milestone_key="a", kind="reminder")}
    assert sends == {("7d", at("2017-02-27 09:00")), ("1d", at("2017-03-05 09:00"))}
    assert {row.id: row.updated_at for row in rows(planned) if row.milestone_key != "a" and row.id in others} == (
        others
    )


def test_a_subscriber_who_joins_after_the_mark_gets_their_reminders(planned: Engine) -> None:
    refresh(planned, START + timedelta(hours=1))
    subscribe(planned, "new@example.org", START + timedelta(hours=2))
    with outbox_statements(planned) as seen:
        handled, replanned = refresh(planned, START + timedelta(hours=2))
    assert len(handled.scope.subscribers) == 1
    assert replanned is not None and replanned.added == 3
    assert {(m, slot) for m, slot, to in planned_slots(planned) if to == "new@example.org"} == {
        ("a", "7d"), ("c", "7d"), ("c", "1d")
    }  # fmt: skip
    assert not [s for s in seen if s.lstrip().upper().startswith("UPDATE")]  # nobody else's row changed


def test_a_subscriber_who_leaves_after_the_mark_has_their_reminders_cancelled(planned: Engine) -> None:
    refresh(planned, START + timedelta(hours=1))
    with transaction(planned, write=True) as session:
        [ben] = session.exec(select(Subscriber).where(Subscriber.email == "ben@example.org")).all()
        unsubscribe(session, ben, START + timedelta(hours=2))
    _, replanned = refresh(planned, START + timedelta(hours=2))
    assert replanned is not None and replanned.cancelled == 3
    assert {to for _, _, to in planned_slots(planned)} == {"ana@example.org", "eva@example.org"}
    assert {row.reason for row in rows(planned, state="cancelled")} == {"subscriber is not confirmed"}


def test_other_settings_plan_every_row_again(planned: Engine) -> None:
    _, replanned = refresh(planned, START + timedelta(hours=1), horizon=timedelta(days=60))
    assert replanned is not None and replanned.added == len(rows(planned)) - 9  # all the new ones at once
    assert {("a", "1d"), ("b", "7d"), ("b", "1d")} <= {(m, slot) for m, slot, _ in planned_slots(planned)}


def test_after_downtime_past_the_horizon_a_pass_plans_and_sends_what_is_due(
    planned: Engine, smtp: SMTPTestServer
) -> None:
    later = at("2017-03-09 10:00")  # five weeks on: a's 1d (9 March, 09:00) is due, and c is a day late
    result = deliver(make_dispatcher(planned, smtp.url, Clock(later)))
    assert (result.sent, len(smtp.received)) == (6, 6)
    sent = {(row.kind, row.milestone_key, row.slot) for row in rows(planned, state="sent")}
    assert sent == {("reminder", "a", "1d"), ("overdue", "c", "due@2017-03-08")}
    assert {(m, slot) for m, slot, _ in planned_slots(planned)} == {("b", "7d"), ("b", "1d")}  # come inside


def test_the_feeds_change_marker_moves_with_a_milestone_not_with_a_sign_in_or_a_subscriber(
    planned: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    calendars = Calendars(planned, base_url="https://t.example.org", cancelled_grace=timedelta(days=30),
                          check_interval=0)  # fmt: skip
    _, marker = calendars.snapshot()
    with transaction(planned, write=True) as session:
        session.add(request_event(START, "someone@example.org", "127.0.0.1", known=False))
    subscribe(planned, "new@example.org", START)
    assert calendars.snapshot()[1] == marker  # the feeds are not built again for these
    write_timeline("wg", group(a_due="2017-03-06"))
    sync(planned, schedules, START + timedelta(hours=1))
    assert calendars.snapshot()[1] > marker


def test_rows_back_from_a_dead_workers_lease_are_replanned_for_their_moved_milestone(
    planned: Engine, schedules: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    now = at("2017-03-03 09:00")  # a's 7d reminders are due
    with transaction(planned, write=True) as session:  # a worker claims them, then dies
        held = outbox.claim(session, now=now, limit=100, lease=timedelta(minutes=5), worker="dead")
    assert {row.milestone_key for row in held} == {"a", "c"}
    write_timeline("wg", group(a_due="2017-03-14"))  # meanwhile a moves: its claimed rows are not re-planned
    sync(planned, schedules, now)
    refresh(planned, now)
    result = deliver(make_dispatcher(planned, smtp.url, Clock(now + timedelta(minutes=10))))
    assert result.returned == 6  # back in the pool: c's go now, a's are stale, for the old date
    deliver(make_dispatcher(planned, smtp.url, Clock(now + timedelta(minutes=20))))
    sends = {(row.slot[:2], row.send_at) for row in rows(planned, milestone_key="a", kind="reminder", state="planned")}
    assert sends == {("7d", at("2017-03-07 09:00")), ("1d", at("2017-03-13 09:00"))}  # for the new date, both


def test_rows_given_back_on_stopping_are_replanned_for_their_moved_milestone(
    planned: Engine, schedules: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    now = at("2017-03-03 09:00")  # a's 7d reminders are due
    with transaction(planned, write=True) as session:  # an instance claims them, then is stopped
        held = outbox.claim(session, now=now, limit=100, lease=timedelta(minutes=5), worker="stopping")
    write_timeline("wg", group(a_due="2017-03-09"))  # meanwhile a moves a day earlier: its 7d is 2 March, past
    sync(planned, schedules, now)
    refresh(planned, now)  # another instance plans the move; the claimed rows are not its to touch
    with transaction(planned, write=True) as session:
        assert outbox.release(session, [row.id for row in held], "stopping", now) == len(held)

    deliver(make_dispatcher(planned, smtp.url, Clock(now + timedelta(minutes=1))))
    sent = rows(planned, milestone_key="a", kind="reminder", state="sent")
    assert len(sent) == 3 and {row.send_at for row in sent} == {at("2017-03-02 09:00")}  # 7d before the new date


LINKED = """
    id: two
    title: Two
    timezone: Europe/Zurich
    audiences: [membership]
    milestones:
      - id: w
        title: W
        owner: membership
        due: 2017-03-25
{after}
"""
OVERDUE = """
    id: one
    title: One
    timezone: Europe/Zurich
    audiences: [membership]
    overdue: [1d, 3d, 7d, 14d]
    milestones:
      - id: x
        title: X
        owner: membership
        due: 2017-03-01
      - id: z
        title: Z
        owner: membership
        due: 2017-03-05
"""


def test_a_step_no_longer_awaited_in_another_timeline_stops_being_chased(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    now = at("2017-03-07 10:00")  # x is late; z, after it, has passed: x is chased only as two/w waits for it
    write_timeline("one", OVERDUE)
    write_timeline("two", LINKED.format(after="        opens_after: one/x"))
    sync(engine, schedules, now)
    subscribe(engine, "ana@example.org", now)
    refresh(engine, now)
    assert rows(engine, kind="overdue", milestone_key="x", state="planned")

    write_timeline("two", LINKED.format(after=""))  # w no longer waits for x: x is missed, not chased
    sync(engine, schedules, now + timedelta(hours=1))
    refresh(engine, now + timedelta(hours=1))
    assert rows(engine, kind="overdue", milestone_key="x", state="planned") == []


BOARD = """
    id: board
    title: Board
    timezone: Europe/Zurich
    audiences: [board]
    reminders: [7d]
    milestones:
      - id: budget
        title: Budget
        owner: board
        due: 2017-03-01
"""


def test_a_moved_milestone_is_replanned_without_reading_the_subscribers_it_does_not_concern(
    planned: Engine, schedules: Path, write_timeline: WriteTimeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "BATCH_SUBSCRIBERS", 2)  # everyone read: a statement or two a pair
    write_timeline("board", BOARD)
    sync(planned, schedules, START + timedelta(hours=1))
    subscribe(planned, "chair@example.org", START + timedelta(hours=1), audiences=("board",))
    refresh(planned, START + timedelta(hours=1))

    def move(a_due: str, now: datetime) -> tuple[int, Replan | None]:
        write_timeline("wg", group(a_due=a_due))
        sync(planned, schedules, now)
        with subscriber_reads(planned) as seen:
            _, replanned = refresh(planned, now)
        return len(seen), replanned

    few, _ = move("2017-03-06", START + timedelta(hours=2))
    for n in range(8):  # as many again and more, none of them following the working group
        subscribe(planned, f"board{n}@example.org", START + timedelta(hours=3), audiences=("board",))
    refresh(planned, START + timedelta(hours=3))
    board = {row.id: row.updated_at for row in rows(planned, timeline_id="board")}
    assert len(board) >= 9  # their budget reminders, and its overdue notices

    many, replanned = move("2017-03-10", START + timedelta(hours=4))  # back: its 1d and overdue go again
    assert many == few  # the re-plan's reads do not grow with the subscribers it does not concern
    assert replanned is not None and (replanned.moved, replanned.cancelled) == (3, 6)
    members = {"ana@example.org", "ben@example.org", "eva@example.org"}
    assert planned_slots(planned, milestone_key="a") == {("a", "7d", to) for to in members}
    assert {row.id: row.updated_at for row in rows(planned, timeline_id="board")} == board


def test_a_pass_that_tells_of_a_move_and_replans_it_reads_the_milestones_once(
    planned: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    refresh(planned, START + timedelta(hours=1))
    write_timeline("wg", group(a_due="2017-03-06"))
    sync(planned, schedules, START + timedelta(hours=2))
    reads_milestones = lambda text: text.lstrip().upper().startswith("SELECT") and "FROM milestones" in text  # noqa: E731
    with noted(planned, reads_milestones) as seen:
        handled, replanned = refresh(planned, START + timedelta(hours=2))
    assert handled.notices == 3 and replanned is not None and replanned.moved == 3  # told, and re-planned
    assert len(seen) == 1
