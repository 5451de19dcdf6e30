"""One bad row never stops the rest (issue 13): what does not read is set aside with its reason, everyone else served.

The poison is what the red team used, or what an older version or a hand edit left in the
store; the mail goes through the real SMTP test server, the log and metrics are read as an
operator reads them.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from icalendar import Calendar
from sqlalchemy import Engine, insert
from sqlmodel import select

from tests.support.cli import cli_env, tracker
from tests.support.delivery import SECRET, Clock, at, deliver, make_dispatcher, rows, set_subscriber, subscribe, sync
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, WriteTimeline
from tests.support.web import AMINA, BASE, running, serving, stored
from tests.support.web import SECRET as SERVING_SECRET
from tracker.config import Settings
from tracker.emails import EmailRequest
from tracker.feeds.calendars import Calendars
from tracker.metrics import Metrics
from tracker.store.engine import transaction
from tracker.store.models import Delivery, Event, Milestone, Subscriber, Timeline
from tracker.subscribers.tokens import make_token
from tracker.web.app import create_app
from tracker.web.signups import Signups

SECRETARIAT = ("secretariat",)
# Reminder offsets as an older version stored them, or a hand edit left them: each stopped every pass.
POISONED_OFFSETS = [
    ["100002d"],  # what "14286w" became: out of range (1h to 366d)
    ["6999993d"],  # what "999999w" became: does not read back at all
    ["999999d"],  # reads, but 2,700 years before any date is before year 1
    "7d",  # JSON text, not a list
    [7],  # a number, not an offset
]


def poison_timeline(engine: Engine, now: datetime) -> None:
    """Store a timeline as the red team got one in: a rule dateutil refuses, an offset past year 1, an event on it."""
    due = at("2017-02-24 23:59:59")
    with transaction(engine, write=True) as session:
        session.add(Timeline(id="broken", title="Broken", timezone="Europe/Zurich", kind="other",
                             audiences=list(SECRETARIAT), updated_at=now))  # fmt: skip
        session.flush()
        for position, (key, title, reminders, repeat) in enumerate(
            [("bad-rule", "Bad rule", ["14d"], "FREQ=YEARLY;BYMONTH=13;BYDAY=99MO;INTERVAL=0"),
             ("far-offset", "Far offset", ["99999w"], None)]
        ):  # fmt: skip
            session.add(Milestone(timeline_id="broken", key=key, title=title, position=position, owner="secretariat",
                                  kind="deadline", zone="Europe/Zurich", due_at=due, reminders=reminders,
                                  repeat=repeat, updated_at=now))  # fmt: skip
        session.add(Event(at=now, kind="rescheduled", timeline_id="broken", milestone_key="bad-rule",
                          old_at=due - timedelta(days=7), new_at=due))  # fmt: skip


def add_subscribers(engine: Engine, count: int, now: datetime) -> list[str]:
    """*count* confirmed secretariat members, in one transaction (as an import of a confirmed list does)."""
    emails = [f"member{n:03}@mission.example.org" for n in range(count)]
    values = [{"email": e, "email_key": e, "name": "", "language": "en", "timezone": "Europe/Zurich",
               "audiences": list(SECRETARIAT), "timelines": None, "reminders": None, "digest": "off",
               "state": "confirmed", "manage_version": 0, "feed_version": 0, "confirm_version": 0,
               "created_at": now, "confirmed_at": now, "changed_at": now} for e in emails]  # fmt: skip
    with transaction(engine, write=True) as session:
        session.execute(insert(Subscriber.__table__), values)  # type: ignore[attr-defined]
    return emails


def quarantined(database_url: str, schedules: Path, tmp_path: Path) -> list[dict[str, object]]:
    """What `tracker deliveries --status quarantined --json` shows an operator."""
    result = tracker("deliveries", "--status", "quarantined", "--json", env=cli_env(database_url, schedules),
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def metric(engine: Engine, what: str, clock: Clock) -> str:
    [line] = [line for line in Metrics(engine, clock).exposition().decode().splitlines()
              if line.startswith(f'tracker_quarantined{{what="{what}"}}')]  # fmt: skip
    return line.split()[-1]


def quarantine_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "quarantined" in r.getMessage()]


@pytest.fixture
def hlpf(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Engine:
    write_timeline("hlpf", HLPF)
    sync(engine, schedules, at("2017-02-01 09:00"))
    return engine


# --- entry points refuse what could not be stored safely ---------------------------------------


@pytest.fixture
def http(hlpf: Engine) -> Iterator[httpx.Client]:
    """The app in a real server, as the public reaches it; each answer waits for the subscription work it queued."""
    calendars = Calendars(hlpf, base_url=BASE, cancelled_grace=timedelta(days=30), secret=SECRET)
    signups = Signups()
    settings = Settings(base_url=BASE, timezone="Europe/Zurich")
    app = create_app(hlpf, calendars, settings=settings, signups=signups)
    hooks = {"response": [lambda _: signups.drain()]}
    with running(app) as url, httpx.Client(base_url=url, timeout=10, event_hooks=hooks) as client:
        yield client
    signups.close()


@pytest.mark.parametrize(
    ("reminders", "message"),
    [
        (["14286w"], "reminder '14286w' is out of range: remind from 1h to 366d"),  # the red team's exact request
        (["367d"], "reminder '367d' is out of range"),
        (["30m"], "reminder '30m' is out of range"),
        (["1d", "2d", "3d", "4d", "5d", "6d"], "at most 5 offsets"),
        (["9" * 5000 + "d"], "is not an offset such as 7d or 4h"),
    ],
)
def test_an_offset_that_cannot_be_planned_is_refused_over_http_with_422_naming_reminders(
    http: httpx.Client, engine: Engine, reminders: list[str], message: str
) -> None:
    response = http.post("/subscribe", json={**AMINA, "reminders": reminders})

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "reminders"]
    assert message in problem["msg"] and len(problem["msg"]) < 200
    assert stored(engine, "amina@mission.example.org") is None  # nothing to confirm: nothing was stored


def test_every_offset_in_range_is_stored_as_text_that_reads_back(http: httpx.Client, engine: Engine) -> None:
    response = http.post("/subscribe", json={**AMINA, "reminders": ["52w", "1h", "8784h", "2w"]})

    assert response.status_code == 202, response.text
    subscriber = stored(engine, "amina@mission.example.org")
    assert subscriber is not None and subscriber.reminders == ["8784h", "364d", "14d", "1h"]


# --- stored values that do not read: quarantined, everyone else served --------------------------


@pytest.mark.parametrize("offsets", POISONED_OFFSETS, ids=str)
def test_a_subscriber_whose_stored_offsets_do_not_read_is_quarantined_and_the_others_get_their_reminders(
    hlpf: Engine,
    smtp: SMTPTestServer,
    database_url: str,
    schedules: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    offsets: object,
) -> None:
    clock = Clock(at("2017-02-10 08:00"))
    others = [subscribe(hlpf, f"sec{n}@example.org", clock.now, audiences=SECRETARIAT) for n in range(3)]
    poisoned = subscribe(hlpf, "poisoned@example.org", clock.now, audiences=SECRETARIAT)
    set_subscriber(hlpf, poisoned, reminders=offsets)

    clock.now = at("2017-02-10 09:00")  # 14 days before the secretariat's deadline of 24 February
    result = deliver(make_dispatcher(hlpf, smtp.url, clock))
    deliver(make_dispatcher(hlpf, smtp.url, clock))  # a second pass: nothing new, and nothing logged again

    got = sorted(m.rcpt_tos[0] for m in smtp.received)
    assert got == sorted(
        ["poisoned@example.org", *(f"sec{n}@example.org" for n in range(3))]
    )  # the milestone's own 14d
    assert result.sent == 4 and {r.subscriber_id for r in rows(hlpf, state="sent")} == {*others, poisoned}
    [entry] = quarantined(database_url, schedules, tmp_path)
    assert (entry["kind"], entry["to"], entry["state"]) == ("subscriber", "poisoned@example.org", "quarantined")
    assert "reminders" in str(entry["reason"]) and "milestones' own offsets are used instead" in str(entry["reason"])
    assert metric(hlpf, "subscriber", clock) == "1.0"
    [line] = quarantine_lines(caplog)
    assert f"subscriber {poisoned}" in line


def test_a_subscriber_fixed_on_the_preferences_page_leaves_the_quarantine(
    hlpf: Engine, smtp: SMTPTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tracker.store.quarantine")
    clock = Clock(at("2017-02-10 08:00"))
    poisoned = subscribe(hlpf, "poisoned@example.org", clock.now, audiences=SECRETARIAT)
    set_subscriber(hlpf, poisoned, reminders=["6999993d"])
    deliver(make_dispatcher(hlpf, smtp.url, clock))
    assert metric(hlpf, "subscriber", clock) == "1.0"

    set_subscriber(hlpf, poisoned, reminders=["3d"])
    with transaction(hlpf, write=True) as session:  # what saving the preferences page records
        session.add(Event(at=clock.now, kind="subscriber_updated", subscriber_id=poisoned))
    deliver(make_dispatcher(hlpf, smtp.url, clock))

    assert metric(hlpf, "subscriber", clock) == "0.0"
    assert any("released from quarantine: subscriber" in r.getMessage() for r in caplog.records)


def test_a_recipient_whose_stored_zone_does_not_read_is_written_to_in_utc_and_quarantined(
    hlpf: Engine, smtp: SMTPTestServer, database_url: str, schedules: Path, tmp_path: Path
) -> None:
    clock = Clock(at("2017-02-10 08:00"))
    poisoned = subscribe(hlpf, "poisoned@example.org", clock.now, audiences=SECRETARIAT)
    set_subscriber(hlpf, poisoned, timezone="Mars/Olympus_Mons", digest="weekly")

    clock.now = at("2017-02-10 09:00")
    result = deliver(make_dispatcher(hlpf, smtp.url, clock))

    assert (result.sent, result.failed) == (1, 0)
    [message] = [m.parse() for m in smtp.received]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "(your time: Friday, 24 February 2017, 22:59)" in text  # end of day in Geneva, in UTC
    [entry] = quarantined(database_url, schedules, tmp_path)
    assert entry["to"] == "poisoned@example.org" and "unknown time zone 'Mars/Olympus_Mons'" in str(entry["reason"])


def test_a_row_that_cannot_be_composed_is_quarantined_with_its_reason_and_the_pass_goes_on(
    hlpf: Engine, smtp: SMTPTestServer, database_url: str, schedules: Path, tmp_path: Path
) -> None:
    clock = Clock(at("2017-02-10 08:00"))
    for n in range(6):
        subscribe(hlpf, f"sec{n}@example.org", clock.now, audiences=SECRETARIAT)
    bad = subscribe(hlpf, "bad@example.org", clock.now, audiences=SECRETARIAT)
    deliver(make_dispatcher(hlpf, smtp.url, clock))
    with transaction(hlpf, write=True) as session:  # claimed by a worker that died, with an occurrence no date reads
        session.add(Delivery(subscriber_id=bad, timeline_id="hlpf", milestone_key="revised-draft",
                             occurrence="not-a-date", kind="reminder", slot="14d", state="claimed",
                             send_at=at("2017-02-10 08:30"), attempt_at=at("2017-02-10 08:30"),
                             lease_until=clock.now, claimed_by="dead", deadline_at=at("2017-02-24 23:59:59"),
                             created_at=clock.now, updated_at=clock.now))  # fmt: skip

    clock.now = at("2017-02-10 09:00")
    result = deliver(make_dispatcher(hlpf, smtp.url, clock, connections=1))

    assert (result.sent, result.quarantined) == (7, 1)
    assert len(smtp.received) == 7
    [row] = rows(hlpf, state="quarantined")
    assert (row.subscriber_id, row.occurrence) == (bad, "not-a-date")
    assert row.last_error.startswith("could not compose: ValueError") and len(row.last_error) <= 300
    [entry] = quarantined(database_url, schedules, tmp_path)
    assert (entry["kind"], entry["to"], entry["last_error"]) == ("reminder", "bad@example.org", row.last_error)
    assert metric(hlpf, "delivery", clock) == "1.0"


def test_a_row_that_meets_a_passing_machine_error_is_tried_again_and_sent_not_quarantined(
    hlpf: Engine, smtp: SMTPTestServer
) -> None:
    clock = Clock(at("2017-02-10 08:00"))
    for n in range(6):
        subscribe(hlpf, f"sec{n}@example.org", clock.now, audiences=SECRETARIAT)
    deliver(make_dispatcher(hlpf, smtp.url, clock))
    clock.now = at("2017-02-10 09:00")
    dispatcher = make_dispatcher(hlpf, smtp.url, clock, connections=1)
    render_pieces = dispatcher.renderer.render_pieces
    calls = iter(range(1_000))

    def out_of_files_once(request: EmailRequest) -> list[bytes]:  # what a full file table does, once, to one message
        if next(calls) == 0:
            raise OSError(24, "Too many open files")
        return render_pieces(request)

    dispatcher.renderer.render_pieces = out_of_files_once  # type: ignore[method-assign]
    first = deliver(dispatcher)
    [waiting] = rows(hlpf, state="planned", milestone_key="revised-draft", slot="14d")
    clock.now = waiting.attempt_at + timedelta(seconds=1)
    second = deliver(make_dispatcher(hlpf, smtp.url, clock))

    assert (first.sent, first.retrying, first.quarantined) == (5, 1, 0)
    assert "Too many open files" in waiting.last_error and waiting.attempt_at > at("2017-02-10 09:00")
    assert second.sent == 1 and len(smtp.received) == 6
    assert rows(hlpf, state="quarantined") == []


def test_a_row_set_aside_with_its_milestone_is_planned_again_and_sent_once_the_milestone_reads(
    hlpf: Engine, smtp: SMTPTestServer
) -> None:
    clock = Clock(at("2017-02-10 08:00"))
    member = subscribe(hlpf, "sec@example.org", clock.now, audiences=SECRETARIAT)
    deliver(make_dispatcher(hlpf, smtp.url, clock))
    earlier = len(smtp.received)
    with transaction(hlpf, write=True) as session:  # the rule dateutil refuses, as an older version stored it
        milestone = session.exec(select(Milestone).where(Milestone.key == "revised-draft")).one()
        milestone.repeat = "FREQ=YEARLY;BYMONTH=13;BYDAY=99MO;INTERVAL=0"
        # Its 14-day reminder was claimed by a worker that died before the milestone was set aside.
        mine = select(Delivery).where(Delivery.subscriber_id == member, Delivery.milestone_key == "revised-draft")
        reminder = session.exec(mine.where(Delivery.slot == "14d")).one()
        reminder.state, reminder.claimed_by, reminder.lease_until = "claimed", "dead", clock.now
    clock.now = at("2017-02-10 09:00")
    set_aside = deliver(make_dispatcher(hlpf, smtp.url, clock))
    with transaction(hlpf, write=True) as session:  # the secretariat's fix, synced
        milestone = session.exec(select(Milestone).where(Milestone.key == "revised-draft")).one()
        milestone.repeat = None
    clock.now = at("2017-02-10 09:05")
    again = deliver(make_dispatcher(hlpf, smtp.url, clock))

    assert set_aside.quarantined == 1 and set_aside.sent == 0
    assert again.sent == 1 and len(smtp.received) == earlier + 1
    [reminder] = rows(hlpf, milestone_key="revised-draft", slot="14d")
    assert (reminder.state, reminder.subscriber_id) == ("sent", member)
    assert rows(hlpf, state="quarantined") == []


def test_one_poisoned_subscriber_and_one_poisoned_timeline_while_500_others_are_reminded_on_time(
    hlpf: Engine,
    smtp: SMTPTestServer,
    database_url: str,
    schedules: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock(at("2017-02-10 08:00"))
    emails = add_subscribers(hlpf, 500, clock.now)
    poisoned = subscribe(hlpf, "poisoned@example.org", clock.now, audiences=SECRETARIAT)
    set_subscriber(hlpf, poisoned, reminders=["6999993d"])
    deliver(make_dispatcher(hlpf, smtp.url, clock))  # the engine's first pass: what came before is history
    poison_timeline(hlpf, clock.now)

    clock.now = at("2017-02-10 09:00")
    started = time.monotonic()
    result = deliver(make_dispatcher(hlpf, smtp.url, clock, connections=4))
    took = time.monotonic() - started

    received: dict[str, list[str]] = {}
    for message in smtp.received:
        received.setdefault(message.rcpt_tos[0], []).append(str(message.parse()["Subject"]))
    assert all(received.get(e) == [received[emails[0]][0]] for e in emails), "each of the 500: one reminder"
    assert "Revised draft posted" in received[emails[0]][0]
    assert result.sent == 501 and result.failed == result.quarantined == 0
    assert {r.sent_at for r in rows(hlpf, state="sent")} == {clock.now}  # in the pass at their time, none later
    assert took < 30
    listed = {(e["kind"], e["to"] or e["milestone"]) for e in quarantined(database_url, schedules, tmp_path)}
    assert listed == {("subscriber", "poisoned@example.org"), ("milestone", "broken/bad-rule"),
                      ("milestone", "broken/far-offset")}  # fmt: skip
    assert (metric(hlpf, "subscriber", clock), metric(hlpf, "milestone", clock)) == ("1.0", "2.0")
    assert len(quarantine_lines(caplog)) == 3  # one line each, not one per pass


# --- feeds and pages ----------------------------------------------------------------------------


@pytest.fixture
def site(hlpf: Engine) -> Iterator[httpx.Client]:
    with serving(hlpf, 0) as (http, _):
        yield http


@pytest.mark.parametrize(
    "stored_choices",
    [{"reminders": offsets} for offsets in POISONED_OFFSETS] + [{"timelines": 5}, {"audiences": {"a": 1}}],
    ids=str,
)
def test_the_personal_feed_of_a_quarantined_subscriber_answers_with_what_reads(
    site: httpx.Client, hlpf: Engine, stored_choices: dict[str, object]
) -> None:
    poisoned = subscribe(hlpf, "poisoned@example.org", at("2017-02-01 09:00"), audiences=SECRETARIAT)
    set_subscriber(hlpf, poisoned, **stored_choices)
    with transaction(hlpf) as session:
        subscriber = session.exec(select(Subscriber).where(Subscriber.id == poisoned)).one()
    token = make_token(SERVING_SECRET, "feed", poisoned, subscriber.feed_version)

    response = site.get(f"/feeds/me/{token}.ics")

    assert response.status_code == 200
    events = list(Calendar.from_ical(response.content).walk("VEVENT"))
    assert events  # the timelines they follow, with the milestones' own alarms where theirs do not read
    assert all(a.decoded("TRIGGER") > -timedelta(days=367) for e in events for a in e.walk("VALARM"))


def test_public_feeds_and_pages_serve_everything_but_a_poisoned_timeline(site: httpx.Client, hlpf: Engine) -> None:
    poison_timeline(hlpf, at("2017-02-01 09:00"))

    feed = site.get("/feeds/all.ics")
    audience = site.get("/feeds/audiences/secretariat.ics")
    overview = site.get("/")
    own = site.get("/timelines/broken")
    other = site.get("/timelines/hlpf")

    assert [r.status_code for r in (feed, audience, overview, own, other)] == [200] * 5
    uids = {str(e["UID"]).split("@")[0] for e in Calendar.from_ical(feed.content).walk("VEVENT")}
    assert "hlpf/revised-draft" in uids and "broken/bad-rule" not in uids
    assert "broken/far-offset" in uids  # its one unreadable offset is left out, not the deadline
    assert "Revised draft posted" in overview.text and "Revised draft posted" in other.text
    assert "Far offset" in own.text


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise TimeoutError in this thread after *seconds*: the unfixed code never returns from these rules."""

    def expire(_signal: int, _frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    ("rule", "first", "problem"),
    [
        ("FREQ=YEARLY;INTERVAL=0", "2017-01-01", "INTERVAL must be a whole number from 1"),  # dateutil never advances
        ("FREQ=SECONDLY", "2017-01-01", "FREQ must be one of DAILY, WEEKLY, MONTHLY, YEARLY"),
        ("FREQ=DAILY;COUNT=999999999999", "2017-01-01", "COUNT must be a whole number from 1 to 2147483647"),
        ("FREQ=DAILY", "1900-01-01", "more than 40000 occurrences"),  # 45,000 days walked to reach 2025
    ],
)
def test_a_stored_rule_that_would_hold_a_core_is_refused_within_a_second(rule: str, first: str, problem: str) -> None:
    from tests.support.factories import make_view
    from tracker.timelines.views import expand

    view = make_view(repeat=rule, due_at=at(f"{first} 23:59:59"))
    now = at("2025-01-01 00:00")

    with deadline(1.0), pytest.raises(ValueError, match=re.escape(problem)):
        expand(view, now, now + timedelta(days=30))


def test_a_confirmation_set_aside_moves_no_metric(hlpf: Engine) -> None:
    clock = Clock(at("2017-02-10 08:00"))
    member = subscribe(hlpf, "someone@example.org", clock.now, audiences=SECRETARIAT)
    with transaction(hlpf, write=True) as session:  # one address asked for it: its fate must not show
        session.add(Delivery(subscriber_id=member, kind="confirm", slot="", state="quarantined",
                             send_at=clock.now, attempt_at=clock.now, created_at=clock.now, updated_at=clock.now,
                             last_error="could not render", reason="could not render"))  # fmt: skip

    assert metric(hlpf, "delivery", clock) == "0.0"


def test_upcoming_says_how_many_milestones_it_leaves_out_as_unreadable(
    hlpf: Engine, smtp: SMTPTestServer, database_url: str, schedules: Path, tmp_path: Path
) -> None:
    clock = Clock(at("2017-02-10 08:00"))
    poison_timeline(hlpf, clock.now)
    deliver(make_dispatcher(hlpf, smtp.url, clock))  # the planner sets them aside

    shown = tracker("upcoming", "--now", "2017-02-10", env=cli_env(database_url, schedules), cwd=tmp_path)

    assert shown.returncode == 0, shown.stderr
    assert "Revised draft" in shown.stdout  # the readable ones are listed
    assert "note: 2 milestone(s) could not be read and are not listed" in " ".join(shown.stderr.split())
