"""Nothing goes out stale: a deadline that moves reaches rows already claimed, rendered or sent (issue 15, point 8).

In one process, with the test's clock and a real SMTP server; tests/test_delivery_processes.py
has the same through `tracker run` in real time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.delivery import Clock, at, deliver, kind_of, kinds_sent, make_dispatcher, rows, subscribe, sync
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import WriteTimeline
from tracker.delivery.dispatcher import Done
from tracker.delivery.rendering import prepare
from tracker.store.models import Delivery

REPORT = """
    id: report
    title: Annual report
    timezone: Europe/Zurich
    audiences: [membership]
    milestones:
      - id: comments
        title: Comments on the annual report
        owner: membership
        due: {due}
        reminders: [{reminders}]
"""
DUE = "2017-03-10 12:00"
LATER = "2017-03-17 12:00"
SEVEN_DAYS_BEFORE = "2017-03-03 09:00"  # the 7d reminder of DUE, at the reminder hour


@pytest.fixture
def move(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Callable[..., None]:
    """Write the report's deadline (and offsets) and sync it, as the secretariat's edit would be."""

    def write(due: str, now: datetime, reminders: str = "7d, 1d") -> None:
        write_timeline("report", REPORT.format(due=due, reminders=reminders))
        sync(engine, schedules, now)

    return write


def reminder_texts(engine: Engine, smtp: SMTPTestServer) -> list[str]:
    """The plain-text bodies of the reminders received, in order (not the notices)."""
    kinds = kinds_sent(engine)
    mails = [m.parse() for m in smtp.received if kind_of(m, kinds) == "reminder"]
    return [m.get_body(("plain",)).get_content() for m in mails]  # type: ignore[union-attr]


@pytest.mark.parametrize("rendered_ahead", [False, True], ids=["claimed", "rendered-ahead"])
def test_a_claimed_reminder_whose_deadline_moved_is_not_sent_as_is(
    engine: Engine, move: Callable[..., None], smtp: SMTPTestServer, rendered_ahead: bool
) -> None:
    clock = Clock(at(SEVEN_DAYS_BEFORE))
    move(DUE, clock.now - timedelta(days=1))
    subscribe(engine, "member@example.org", clock.now)
    dispatcher = make_dispatcher(engine, smtp.url, clock)
    dispatcher.refresh(timely=True)
    claimed, people, store = dispatcher.claim_batch(10)
    [row] = claimed
    person = people[row.subscriber_id]
    ready = prepare(dispatcher.renderer, row, person, store, clock.now) if rendered_ahead else None

    move(LATER, clock.now)  # stored while the row waits in this worker's queue

    async def send() -> Done:
        try:
            return await dispatcher.deliver(row, person, store, None, ready)
        finally:
            await dispatcher.mailer.close()

    done = asyncio.run(send())
    dispatcher.write([done])

    assert smtp.received == []  # not "7 days" with the old date, nor "7 days" with the new one
    assert done.outcome.state == "planned" and not done.outcome.tried
    deliver(make_dispatcher(engine, smtp.url, clock))  # the next cycle: the move's notice, and the re-plan
    [reminder] = rows(engine, kind="reminder", slot="7d")
    assert (reminder.state, reminder.send_at) == ("planned", at("2017-03-10 09:00"))
    assert reminder_texts(engine, smtp) == []

    clock.now = at("2017-03-10 09:00")
    deliver(make_dispatcher(engine, smtp.url, clock))
    [text] = reminder_texts(engine, smtp)
    assert "17 March" in text and "10 March" not in text


def test_a_due_reminder_of_a_moved_deadline_waits_for_its_re_planning(
    engine: Engine, move: Callable[..., None], smtp: SMTPTestServer
) -> None:
    clock = Clock(at(SEVEN_DAYS_BEFORE))
    move(DUE, clock.now - timedelta(days=1))
    subscribe(engine, "member@example.org", clock.now)
    make_dispatcher(engine, smtp.url, clock).refresh(timely=True)

    move(LATER, clock.now)  # stored after planning, before the pass: the row is still due at the old time
    dispatcher = make_dispatcher(engine, smtp.url, clock)

    async def pass_only() -> None:
        try:
            await dispatcher.run_pass()
        finally:
            await dispatcher.mailer.close()

    asyncio.run(pass_only())

    assert smtp.received == []
    [reminder] = rows(engine, kind="reminder", slot="7d")
    assert reminder.state == "planned"
    deliver(make_dispatcher(engine, smtp.url, clock))
    [reminder] = rows(engine, kind="reminder", slot="7d")
    assert (reminder.state, reminder.send_at) == ("planned", at("2017-03-10 09:00"))


def test_a_sent_reminder_is_planned_again_for_a_deadline_moved_later(
    engine: Engine, move: Callable[..., None], smtp: SMTPTestServer
) -> None:
    clock = reminded_seven_days_before(engine, move, smtp)
    [first] = reminder_texts(engine, smtp)
    assert "10 March" in first

    clock.now = at("2017-03-05 10:00")
    move(LATER, clock.now)
    deliver(make_dispatcher(engine, smtp.url, clock))  # the 'changed' notice goes now

    sevens = {row.slot: row for row in rows(engine, kind="reminder") if row.slot.startswith("7d")}
    assert sevens["7d"].state == "sent"  # the log keeps what was sent, for the old date
    again = sevens["7d@20170317T110000Z"]  # named for the deadline it reminds of
    assert (again.state, again.send_at) == ("planned", at("2017-03-10 09:00"))

    clock.now = at("2017-03-10 09:00")
    deliver(make_dispatcher(engine, smtp.url, clock))
    deliver(make_dispatcher(engine, smtp.url, clock))  # a second pass sends nothing twice
    _, second = reminder_texts(engine, smtp)
    assert "17 March" in second and "10 March" not in second
    assert len({m.parse()["Message-ID"] for m in smtp.received}) == len(smtp.received)


def test_a_move_back_to_the_date_already_reminded_of_plans_nothing_again(
    engine: Engine, move: Callable[..., None], smtp: SMTPTestServer
) -> None:
    clock = reminded_seven_days_before(engine, move, smtp)
    clock.now = at("2017-03-05 10:00")
    move(LATER, clock.now)
    deliver(make_dispatcher(engine, smtp.url, clock))
    clock.advance(hours=1)
    move(DUE, clock.now)  # back: the 7-day reminder for the 10th went already
    deliver(make_dispatcher(engine, smtp.url, clock))

    states = {row.slot: (row.state, row.reason) for row in rows(engine, kind="reminder")}
    assert states["7d"] == ("sent", "")
    assert states["7d@20170317T110000Z"] == ("cancelled", "date moved")
    assert states["1d"] == ("planned", "")


def test_a_sent_reminder_whose_new_time_has_passed_is_not_planned_again(
    engine: Engine, move: Callable[..., None], smtp: SMTPTestServer
) -> None:
    clock = reminded_seven_days_before(engine, move, smtp)

    clock.now = at("2017-03-05 10:00")
    move("2017-03-11 12:00", clock.now)  # a day later: its 7-day reminder time (4 March) is behind us
    deliver(make_dispatcher(engine, smtp.url, clock))

    slots = {row.slot: row.state for row in rows(engine, kind="reminder")}
    assert slots == {"7d": "sent", "1d": "planned"}


def reminded_seven_days_before(engine: Engine, move: Callable[..., None], smtp: SMTPTestServer) -> Clock:
    """A member reminded 7 days before DUE; the clock at that moment."""
    clock = Clock(at(SEVEN_DAYS_BEFORE))
    move(DUE, clock.now - timedelta(days=1))
    subscribe(engine, "member@example.org", clock.now)
    deliver(make_dispatcher(engine, smtp.url, clock))
    return clock


# --- retries near the deadline ------------------------------------------------------------------

REFUSED = "421 4.3.2 Service not available, try later"
ONE_HOUR_BEFORE = "2017-03-10 11:00"  # the 1h reminder of DUE
LONG_WAITS = {"retry_base": timedelta(hours=2), "retry_max": timedelta(hours=4)}  # the first wait ends after DUE


def refused_an_hour_before(
    engine: Engine, move: Callable[..., None], smtp: SMTPTestServer, *, times: int
) -> tuple[Clock, Delivery]:
    """The 1h reminder of DUE refused by the relay (which refuses *times* in all); the clock then, and the row."""
    clock = Clock(at(ONE_HOUR_BEFORE))
    move(DUE, clock.now - timedelta(days=1), reminders="1h")
    subscribe(engine, "member@example.org", clock.now)
    smtp.answer("MAIL", REFUSED, times=times)
    assert deliver(make_dispatcher(engine, smtp.url, clock, **LONG_WAITS)).retrying == 1
    [row] = rows(engine, kind="reminder")
    return clock, row


def test_a_retry_that_would_land_after_the_deadline_becomes_a_last_attempt_just_before_it(
    engine: Engine, move: Callable[..., None], smtp: SMTPTestServer
) -> None:
    clock, row = refused_an_hour_before(engine, move, smtp, times=1)
    assert row.state == "planned" and "421" in row.last_error
    assert at(DUE) - timedelta(minutes=1) <= row.attempt_at < at(DUE)
    assert row.reason == "last attempt before the deadline"
    clock.now = row.attempt_at
    assert deliver(make_dispatcher(engine, smtp.url, clock, **LONG_WAITS)).sent == 1
    assert len(smtp.received) == 1


def test_when_the_last_attempt_is_refused_too_the_row_says_why_it_gave_up(
    engine: Engine, move: Callable[..., None], smtp: SMTPTestServer
) -> None:
    clock, row = refused_an_hour_before(engine, move, smtp, times=2)
    clock.now = row.attempt_at
    assert deliver(make_dispatcher(engine, smtp.url, clock, **LONG_WAITS)).failed == 1

    [row] = rows(engine, kind="reminder")
    assert (row.state, row.attempts) == ("failed", 2)
    assert row.reason == "the next retry would come after the deadline"
    assert smtp.received == []


# --- one INFO line per pass ---------------------------------------------------------------------


def pass_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and r.getMessage().startswith("pass:")]


def test_every_pass_that_did_something_says_so_in_one_info_line(
    engine: Engine, move: Callable[..., None], smtp: SMTPTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tracker.delivery")
    clock = Clock(at(SEVEN_DAYS_BEFORE))
    move(DUE, clock.now - timedelta(days=1))
    for name in ("a", "b", "c"):
        subscribe(engine, f"{name}@example.org", clock.now)
    smtp.answer("RCPT", "450 4.2.0 mailbox busy", address="b@example.org", times=1)
    smtp.answer("RCPT", "550 5.1.1 no such user", address="c@example.org", times=1)
    # Another instance claimed a row and died: its lease runs out.
    dead = make_dispatcher(engine, smtp.url, clock, lease=timedelta(seconds=30))
    dead.refresh(timely=True)
    dead.claim_batch(1)
    clock.advance(minutes=1)

    deliver(make_dispatcher(engine, smtp.url, clock))

    [line] = pass_lines(caplog)
    assert line == "pass: sent 1, refused 2, retrying 1, failed 1, skipped 0, re-planned 0, returned 1 expired lease(s)"

    caplog.clear()
    deliver(make_dispatcher(engine, smtp.url, clock))  # nothing due: nothing said
    assert pass_lines(caplog) == []
