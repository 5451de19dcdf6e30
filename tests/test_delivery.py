"""The delivery engine in one process: planning into the outbox, notices, sending to a real SMTP server.

The clock is the test's: each test moves it to the moment it wants the engine to see.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from tests.support.cli import cli_env, tracker
from tests.support.delivery import (
    SECRET,
    Clock,
    at,
    deliver,
    lines_of,
    make_dispatcher,
    mark_done,
    rows,
    set_subscriber,
    subscribe,
    sync,
)
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, WriteTimeline
from tracker.delivery import outbox
from tracker.store.engine import transaction
from tracker.store.models import Delivery, Subscriber
from tracker.subscribers.registry import unsubscribe

SECRET_TEXT = SECRET.decode()


@pytest.fixture
def hlpf(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Engine:
    write_timeline("hlpf", HLPF)
    sync(engine, schedules, at("2017-02-01 09:00"))
    return engine


def subjects(smtp: SMTPTestServer) -> list[tuple[str, str]]:
    return sorted((m.rcpt_tos[0], str(m.parse()["Subject"])) for m in smtp.received)


def test_a_reminder_goes_out_at_its_time_once(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-10 08:59"))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    assert deliver(make_dispatcher(hlpf, smtp.url, clock)).sent == 0  # 14 days before 24 Feb is 10 Feb, 09:00

    clock.advance(minutes=1)
    assert deliver(make_dispatcher(hlpf, smtp.url, clock)).sent == 1
    assert deliver(make_dispatcher(hlpf, smtp.url, clock)).sent == 0  # a second pass sends nothing again
    [message] = [m.parse() for m in smtp.received]
    assert "Revised draft posted" in str(message["Subject"])
    [row] = rows(hlpf, state="sent")
    assert (row.milestone_key, row.slot, row.attempts) == ("revised-draft", "14d", 1)
    assert row.send_at == at("2017-02-10 09:00") and row.sent_at == clock.now
    assert row.reply.startswith("250")


def test_reminders_go_only_to_the_audience_that_must_act(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-10 09:00"))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    subscribe(hlpf, "member@example.org", clock.now, audiences=("membership",))
    subscribe(hlpf, "other@example.org", clock.now, audiences=("secretariat",), timelines=("cwg-32",))
    subscribe(hlpf, "pending@example.org", clock.now, audiences=("secretariat",), confirmed=False)
    deliver(make_dispatcher(hlpf, smtp.url, clock))
    assert [to for to, _ in subjects(smtp)] == ["sec@example.org"]


def test_day_reminders_keep_the_reminder_hour_across_the_change_to_summer_time(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("dst", "id: dst\ntitle: DST\ntimezone: Europe/Zurich\nreminders: [7d, 1d, 4h]\nmilestones:\n"
                   "  - id: report\n    title: Report\n    due: 2017-03-30\n")  # fmt: skip
    sync(engine, schedules, at("2017-03-01 09:00"))
    subscribe(engine, "a@example.org", at("2017-03-01 09:00"))
    make_dispatcher(engine, "smtp://127.0.0.1:1", Clock(at("2017-03-01 09:00"))).refresh(timely=True)
    planned = {row.slot: row.send_at for row in rows(engine)}
    assert planned["7d"] == at("2017-03-23 09:00")  # CET, UTC+1
    assert planned["1d"] == at("2017-03-29 09:00")  # CEST, UTC+2: still 09:00 on the wall clock
    assert planned["4h"] == at("2017-03-30 20:00")  # hours count exactly from the end of the day


def test_after_downtime_only_the_latest_due_reminder_goes(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-01 09:00"))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    make_dispatcher(hlpf, smtp.url, clock).refresh(timely=True)
    clock.now = at("2017-02-17 10:30")  # nothing ran on 10 Feb (14d) or 17 Feb 09:00 (7d)
    result = deliver(make_dispatcher(hlpf, smtp.url, clock))
    assert (result.sent, len(smtp.received)) == (1, 1)
    states = {row.slot: (row.state, row.reason) for row in rows(hlpf, milestone_key="revised-draft")}
    assert states["7d"] == ("sent", "")
    assert states["14d"] == ("skipped", "a later reminder was due at the same time")
    assert states["1d"] == ("planned", "")


def test_a_reminder_whose_retry_falls_due_during_a_pass_is_not_sent_after_a_later_one(hlpf: Engine) -> None:
    """A pass skips stale rows when it starts and claims with later clocks: the claim must not take them either."""
    start = at("2017-02-17 10:30")
    subscribe(hlpf, "sec@example.org", at("2017-02-01 09:00"), audiences=("secretariat",))
    make_dispatcher(hlpf, "smtp://127.0.0.1:1", Clock(at("2017-02-01 09:00"))).refresh(timely=True)
    table = Delivery.__table__  # type: ignore[attr-defined]
    mine = (table.c.milestone_key == "revised-draft") & (table.c.kind == "reminder")
    with transaction(hlpf, write=True) as session:  # the 14d reminder was refused; its retry is 30 s after the start
        session.execute(
            update(table)
            .where(mine, table.c.slot == "14d")
            .values(attempt_at=start + timedelta(seconds=30), attempts=3, last_error="421 try later")
        )
        session.execute(update(table).where(mine, table.c.slot == "7d")  # the later one went a minute ago
                        .values(state="sent", sent_at=start - timedelta(minutes=1)))  # fmt: skip
    with transaction(hlpf, write=True) as session:
        outbox.skip_stale(session, start)
    with transaction(hlpf, write=True) as session:  # the same pass, 40 s on
        claimed = outbox.claim(session, now=start + timedelta(seconds=40), limit=32, lease=timedelta(minutes=1),
                               worker="w")  # fmt: skip
    with transaction(hlpf, write=True) as session:
        outbox.skip_stale(session, start + timedelta(minutes=1))  # the next pass

    assert [row.slot for row in claimed if row.kind == "reminder" and row.milestone_key == "revised-draft"] == []
    states = {row.slot: (row.state, row.reason) for row in rows(hlpf, milestone_key="revised-draft")}
    assert states["14d"] == ("skipped", "a later reminder was due at the same time")


def test_a_late_reminder_says_the_time_actually_left(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-01 09:00"))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    make_dispatcher(hlpf, smtp.url, clock).refresh(timely=True)
    clock.now = at("2017-02-21 12:00")  # the 7d reminder fell due on the 17th; 3 days are left
    deliver(make_dispatcher(hlpf, smtp.url, clock))
    [message] = [m.parse() for m in smtp.received]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "3 days" in text and "7 days" not in text


def test_a_late_reminder_with_less_than_an_hour_left_says_due_today(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-04-27 09:00"))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    make_dispatcher(hlpf, smtp.url, clock).refresh(timely=True)
    clock.now = at("2017-04-28 11:30")  # the 4h reminder fell due at 08:00; the text is due at 12:00
    deliver(make_dispatcher(hlpf, smtp.url, clock))
    [message] = [m.parse() for m in smtp.received]
    assert str(message["Subject"]) == "Due today: Final text submitted to the UN"


def test_a_moved_deadline_replans_reminders_keeps_sent_ones_and_notifies_once(
    hlpf: Engine, schedules: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    clock = Clock(at("2017-02-10 09:00"))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    deliver(make_dispatcher(hlpf, smtp.url, clock))  # the 14d reminder
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-03-03"))
    clock.advance(hours=1)
    sync(hlpf, schedules, clock.now)
    deliver(make_dispatcher(hlpf, smtp.url, clock))
    reminders = {r.slot: r for r in rows(hlpf, milestone_key="revised-draft", kind="reminder")}
    assert reminders["14d"].state == "sent" and reminders["14d"].attempts == 1  # not resent
    assert reminders["7d"].state == "planned" and reminders["7d"].send_at == at("2017-02-24 09:00")
    [notice] = rows(hlpf, kind="changed")  # one message for the whole sync
    lines = lines_of(notice)
    assert (notice.state, lines["revised-draft"].old_at, lines["revised-draft"].new_at) == (
        "sent",
        at("2017-02-24 23:59:59"),
        at("2017-03-03 23:59:59"),
    )
    # The final draft follows the comments, which follow the revised draft: it moved too.
    assert set(lines) == {"revised-draft", "final-draft"}
    assert len(smtp.received) == 2
    assert deliver(make_dispatcher(hlpf, smtp.url, clock)).sent == 0


def test_two_moves_before_the_notice_went_out_fold_into_one(
    hlpf: Engine, schedules: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    clock = Clock(at("2017-02-02 09:00"))
    subscriber = subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    dispatcher = make_dispatcher(hlpf, smtp.url, clock)
    dispatcher.refresh(timely=True)
    for due in ("2017-03-03", "2017-03-10"):
        write_timeline("hlpf", HLPF.replace("due: 2017-02-24", f"due: {due}"))
        sync(hlpf, schedules, clock.now)
        dispatcher.refresh()
    [notice] = rows(hlpf, kind="changed", subscriber_id=subscriber)
    line = lines_of(notice)["revised-draft"]
    assert (line.old_at, line.new_at) == (at("2017-02-24 23:59:59"), at("2017-03-10 23:59:59"))
    write_timeline("hlpf", HLPF)  # and back to where it was: nothing to tell any more
    sync(hlpf, schedules, clock.now)
    dispatcher.refresh()
    [notice] = rows(hlpf, kind="changed", subscriber_id=subscriber)
    assert (notice.state, notice.reason) == ("cancelled", "nothing left to tell: moved back to its earlier date")
    deliver(make_dispatcher(hlpf, smtp.url, clock))
    assert [m for m in smtp.received if "Revised draft" in str(m.parse()["Subject"])] == []


def test_a_cancelled_deadline_is_listed_as_cancelled_and_gets_no_more_reminders(
    hlpf: Engine, schedules: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    clock = Clock(at("2017-02-02 09:00"))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    make_dispatcher(hlpf, smtp.url, clock).refresh(timely=True)
    cancelled = HLPF.replace("        due: 2017-02-24\n", "        due: 2017-02-24\n        status: cancelled\n")
    write_timeline("hlpf", cancelled)
    sync(hlpf, schedules, clock.now)
    deliver(make_dispatcher(hlpf, smtp.url, clock))
    [message] = [m.parse() for m in smtp.received]
    assert "Revised draft posted" in str(message["Subject"])
    [notice] = rows(hlpf, kind="changed")
    assert notice.state == "sent" and lines_of(notice)["revised-draft"].change == "cancelled"
    reminders = rows(hlpf, kind="reminder", milestone_key="revised-draft")
    assert reminders and {(r.state, r.reason) for r in reminders} == {("cancelled", "milestone cancelled")}


def test_completing_a_step_tells_the_audience_waiting_for_it(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-02 09:00"))
    subscribe(hlpf, "member@example.org", clock.now, audiences=("membership",))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    make_dispatcher(hlpf, smtp.url, clock).refresh(timely=True)
    clock.now = at("2017-02-20 15:00")
    mark_done(hlpf, "hlpf/revised-draft", clock.now)
    deliver(make_dispatcher(hlpf, smtp.url, clock))
    [notice] = rows(hlpf, kind="opened")
    assert (notice.milestone_key, notice.state) == ("member-comments", "sent")
    # Done four days early, the comments are due four days earlier: the 'opened' notice says
    # so, without a separate 'changed' one; the secretariat hears that the final draft moved.
    assert [to for to, _ in subjects(smtp)] == ["member@example.org", "sec@example.org"]
    [changed] = rows(hlpf, kind="changed")
    assert list(lines_of(changed)) == ["final-draft"]
    # Done + 14 days, minus the 14-day reminder, is today: that reminder would repeat the notice.
    [reminder] = rows(hlpf, kind="reminder", milestone_key="member-comments", slot="14d")
    assert (reminder.state, reminder.reason) == ("skipped", "the 'opened' notice gave the date")
    done_reminders = rows(hlpf, kind="reminder", milestone_key="revised-draft", state="cancelled")
    assert {r.reason for r in done_reminders} == {"milestone done"}


def test_temporary_refusals_are_retried_with_growing_waits_until_accepted(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-10 09:00"))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    smtp.answer("MAIL", "421 4.3.2 Service not available, try later", times=3)
    waits = []
    for _ in range(3):
        assert deliver(make_dispatcher(hlpf, smtp.url, clock)).retrying == 1
        [row] = rows(hlpf, kind="reminder", state="planned", slot="14d", milestone_key="revised-draft")
        assert "421" in row.last_error
        waits.append(row.attempt_at - clock.now)
        clock.now = row.attempt_at
    assert deliver(make_dispatcher(hlpf, smtp.url, clock)).sent == 1
    assert waits[0] < waits[1] < waits[2]  # 1, 2, 4 minutes, each ±25 %
    [row] = rows(hlpf, state="sent")
    assert row.attempts == 4 and row.last_error == ""
    assert len(smtp.received) == 1


def test_retrying_stops_when_no_retry_can_come_before_the_deadline(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-24 23:59:30"))  # 30 s left: not even time for a last attempt
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    smtp.answer("MAIL", "451 4.3.0 try later")
    result = deliver(make_dispatcher(hlpf, smtp.url, clock))
    assert result.failed >= 1
    failed = rows(hlpf, milestone_key="revised-draft", state="failed")
    assert failed and failed[0].reason == "the next retry would come after the deadline"


def test_repeated_rejections_suspend_the_address(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-01 09:00"))
    subscriber = subscribe(hlpf, "gone@example.org", clock.now, audiences=("secretariat",))
    make_dispatcher(hlpf, smtp.url, clock).refresh(timely=True)
    smtp.answer("RCPT", "550 5.1.1 No such user", address="gone@example.org")
    for day in ("2017-02-10 09:00", "2017-02-17 09:00", "2017-02-23 09:00"):
        clock.now = at(day)
        assert deliver(make_dispatcher(hlpf, smtp.url, clock, suspend_after=3)).failed >= 1
    with transaction(hlpf) as session:
        found = session.get(Subscriber, subscriber)
        assert found is not None and found.state == "suspended"
    assert {r.reason for r in rows(hlpf, state="failed")} == {"rejected by the recipient's server"}
    assert all(r.state != "planned" for r in rows(hlpf, subscriber_id=subscriber))


def test_unsubscribing_cancels_what_was_planned(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-01 09:00"))
    subscriber = subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    dispatcher = make_dispatcher(hlpf, smtp.url, clock)
    dispatcher.refresh(timely=True)
    assert rows(hlpf, state="planned")
    with transaction(hlpf, write=True) as session:  # as the unsubscribe link does: with its event
        found = session.get(Subscriber, subscriber)
        assert found is not None and unsubscribe(session, found, clock.now)
    dispatcher.refresh(timely=True)
    assert {(r.state, r.reason) for r in rows(hlpf)} == {("cancelled", "subscriber is not confirmed")}
    clock.now = at("2017-02-10 09:00")
    deliver(make_dispatcher(hlpf, smtp.url, clock))
    assert smtp.received == []


def test_a_dead_workers_rows_are_sent_by_another_after_the_lease(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-10 09:00"))
    for n in range(5):
        subscribe(hlpf, f"sec{n}@example.org", clock.now, audiences=("secretariat",))
    dead = make_dispatcher(hlpf, smtp.url, clock, lease=timedelta(seconds=30))
    dead.refresh(timely=True)
    claimed, _, _ = dead.claim_batch(10)  # then it dies without sending
    assert len(claimed) == 5
    assert deliver(make_dispatcher(hlpf, smtp.url, clock)).sent == 0  # held by the lease
    clock.advance(seconds=31)
    assert deliver(make_dispatcher(hlpf, smtp.url, clock)).sent == 5
    assert len({m.parse()["Message-ID"] for m in smtp.received}) == 5


def test_a_confirmation_email_goes_to_a_pending_subscriber(engine: Engine, smtp: SMTPTestServer) -> None:
    from tracker.delivery.outbox import queue_confirm

    clock = Clock(at("2017-02-01 09:00"))
    subscriber_id = subscribe(engine, "new@example.org", clock.now, confirmed=False)
    with transaction(engine, write=True) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        assert subscriber is not None and queue_confirm(session, subscriber, clock.now) is not None
    assert deliver(make_dispatcher(engine, smtp.url, clock)).sent == 1
    [message] = [m.parse() for m in smtp.received]
    assert "/confirm/" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_send_due_sends_and_the_delivery_log_shows_the_servers_reply(
    database_url: str, schedules: Path, write_timeline: WriteTimeline, tmp_path: Path, smtp: SMTPTestServer
) -> None:
    write_timeline("hlpf", HLPF)
    env = cli_env(database_url, schedules, TRACKER_SMTP_URL=smtp.url)
    assert tracker("sync", env=env, cwd=tmp_path).returncode == 0
    added = tracker("subscribers", "add", "sec@example.org", "--audience", "secretariat", "--confirmed",
                    env=env, cwd=tmp_path)  # fmt: skip
    assert added.returncode == 0, added.stderr
    early = tracker("send-due", "--now", "2017-02-10 08:00", env=env, cwd=tmp_path)
    assert early.returncode == 0 and "sent 0" in early.stdout
    result = tracker("send-due", "--now", "2017-02-10 09:05", env=env, cwd=tmp_path)
    assert result.returncode == 0 and "sent 1" in result.stdout, result.stdout + result.stderr
    assert len(smtp.received) == 1
    log = json.loads(tracker("deliveries", "--status", "sent", "--json", env=env, cwd=tmp_path).stdout)
    assert [(d["to"], d["kind"], d["milestone"], d["slot"]) for d in log] == [
        ("sec@example.org", "reminder", "hlpf/revised-draft", "14d")
    ]
    assert log[0]["reply"].startswith("250") and log[0]["attempts"] == 1
    table = tracker("deliveries", "--milestone", "hlpf/revised-draft", env=env, cwd=tmp_path).stdout
    assert "sec@example.org" in table and "sent" in table and "planned" in table
    bad = tracker("deliveries", "--status", "lost", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "not one of" in bad.stderr


def test_metrics_count_deliveries_by_state_and_kind(hlpf: Engine, smtp: SMTPTestServer) -> None:
    from tracker.metrics import Metrics

    clock = Clock(at("2017-02-10 09:00"))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    dispatcher = make_dispatcher(hlpf, smtp.url, clock)
    dispatcher.metrics = Metrics(hlpf, clock)
    deliver(dispatcher)
    text = dispatcher.metrics.exposition().decode()
    assert 'tracker_deliveries{kind="reminder",state="sent"} 1.0' in text
    assert 'tracker_sent_total{kind="reminder"} 1.0' in text
    assert "tracker_lateness_seconds_bucket" in text and "tracker_queue_depth 0.0" in text


YEARLY = """
    id: prizes
    title: WSIS Prizes
    timezone: Europe/Zurich
    milestones:
      - id: nominations
        title: Nominations
        owner: membership
        due: 2019-01-02
        repeat: FREQ=YEARLY
"""


def test_moving_a_yearly_deadline_tells_members_about_the_next_occurrence(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    clock = Clock(at("2026-11-28 10:00"))
    write_timeline("prizes", YEARLY)
    sync(engine, schedules, clock.now)
    subscribe(engine, "member@example.org", clock.now)
    make_dispatcher(engine, smtp.url, clock).refresh(timely=True)
    write_timeline("prizes", YEARLY.replace("due: 2019-01-02", "due: 2019-01-05"))
    sync(engine, schedules, clock.now)
    deliver(make_dispatcher(engine, smtp.url, clock))
    [notice] = rows(engine, kind="changed")
    line = lines_of(notice)["nominations"]
    assert (line.old_at, line.new_at) == (at("2027-01-02 23:59:59"), at("2027-01-05 23:59:59"))
    assert notice.state == "sent" and len(smtp.received) == 1


def test_plan_tells_which_notices_a_sync_would_send_and_to_how_many(
    database_url: str, schedules: Path, write_timeline: WriteTimeline, tmp_path: Path
) -> None:
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2099-02-24"))
    env = cli_env(database_url, schedules)
    assert tracker("sync", env=env, cwd=tmp_path).returncode == 0
    for n in range(3):
        tracker("subscribers", "add", f"sec{n}@example.org", "--audience", "secretariat", "--confirmed",
                env=env, cwd=tmp_path)  # fmt: skip
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2099-03-03"))
    planned = tracker("plan", env=env, cwd=tmp_path)
    assert "→ listed in the 'changed' message of 3 subscribers" in planned.stdout, planned.stdout
    assert "3 subscribers get one message listing 2 changes" in planned.stdout
    listed = json.loads(tracker("plan", "--json", env=env, cwd=tmp_path).stdout)["changes"]
    notices = {c["milestone"]: c["notice"] for c in listed}
    assert notices["revised-draft"] == {"kind": "changed", "subscribers": 3}


def test_a_claim_takes_no_more_rows_than_asked_and_two_workers_share_them(hlpf: Engine, smtp: SMTPTestServer) -> None:
    clock = Clock(at("2017-02-10 09:00"))
    for n in range(20):
        subscribe(hlpf, f"sec{n}@example.org", clock.now, audiences=("secretariat",))
    first, second = make_dispatcher(hlpf, smtp.url, clock), make_dispatcher(hlpf, smtp.url, clock)
    first.refresh(timely=True)
    taken = [first.claim_batch(5)[0], second.claim_batch(5)[0], first.claim_batch(50)[0]]
    assert [len(batch) for batch in taken] == [5, 5, 10]
    ids = [row.id for batch in taken for row in batch]
    assert len(set(ids)) == 20


def test_the_admin_api_records_a_completion_and_the_waiting_audience_is_told(
    hlpf: Engine, smtp: SMTPTestServer
) -> None:
    import threading
    import time

    import httpx
    import uvicorn

    from tests.support.processes import free_port
    from tracker.config import Settings
    from tracker.feeds.calendars import Calendars
    from tracker.web.app import create_app

    clock = Clock(at("2017-02-20 15:00"))
    subscribe(hlpf, "member@example.org", clock.now)
    make_dispatcher(hlpf, smtp.url, clock).refresh(timely=True)
    calendars = Calendars(hlpf, base_url="https://t.example.org", cancelled_grace=timedelta(days=30), clock=clock,
                          secret=SECRET)  # fmt: skip
    app = create_app(hlpf, calendars, settings=Settings(admin_token="s3cret-admin-token", secret_key=SECRET_TEXT))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            url = "/api/milestones/hlpf/revised-draft/done"
            assert http.post(url).status_code == 401
            assert http.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
            auth = {"Authorization": "Bearer s3cret-admin-token"}
            missing = http.post("/api/milestones/hlpf/revised-drat/done", headers=auth)
            assert missing.status_code == 404 and "revised-draft" in missing.json()["detail"]
            bad = http.post(url, headers=auth, json={"at": "2017-02-30"})
            assert bad.status_code == 422 and "at:" in bad.json()["detail"]
            skipped = http.post(url, headers=auth, json={"at": "2016-03-27T02:30"})  # Zurich's clocks skip it
            assert skipped.status_code == 422 and skipped.json()["detail"] == (
                "at: 02:30 on 2016-03-27 does not exist in Europe/Zurich (clocks go from 02:00 to 03:00); "
                "write 01:30 or 03:00"
            )
            done = http.post(url, headers=auth, json={"note": "posted", "link": "https://example.org/draft.pdf"})
            assert done.status_code == 200, done.text
            assert done.json()["changes"][0]["kind"] == "completed"
            again = http.post(url, headers=auth, json={"note": "posted again"})
            assert again.status_code == 409 and again.json()["done"]["note"] == "posted"
            assert '"amend": true' in again.json()["detail"]
            amended = http.post(url, headers=auth, json={"amend": True, "link": "https://example.org/v2.pdf"})
            assert amended.status_code == 200, amended.text
            assert amended.json()["changes"][0]["kind"] == "amended"
            assert "/api/milestones/{timeline}/{milestone}/done" in http.get("/openapi.json").json()["paths"]
    finally:
        server.should_exit = True
        thread.join(10)
    deliver(make_dispatcher(hlpf, smtp.url, clock))
    [notice] = rows(hlpf, kind="opened")
    assert (notice.subscriber_id, notice.milestone_key, notice.state) == (1, "member-comments", "sent")


def test_a_milestone_synced_right_after_a_pass_is_not_taken_for_removed(
    hlpf: Engine, schedules: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    import asyncio

    clock = Clock(at("2017-02-10 09:00"))
    subscribe(hlpf, "sec@example.org", clock.now, audiences=("secretariat",))
    dispatcher = make_dispatcher(hlpf, smtp.url, clock)

    async def twice() -> int:
        try:
            await asyncio.to_thread(dispatcher.refresh, replan_all=True)
            await dispatcher.run_pass()  # the dispatcher now holds the milestones as they were
            write_timeline("extra", HLPF.replace("id: hlpf", "id: extra"))
            sync(hlpf, schedules, clock.now)
            await asyncio.to_thread(dispatcher.refresh)
            return (await dispatcher.run_pass()).sent
        finally:
            await dispatcher.mailer.close()

    assert asyncio.run(twice()) == 1  # the new timeline's 14-day reminder, at once
    assert rows(hlpf, timeline_id="extra", state="cancelled") == []


def test_a_weekly_digest_goes_on_monday_at_the_readers_hour_with_what_is_coming(
    hlpf: Engine, smtp: SMTPTestServer
) -> None:
    clock = Clock(at("2017-02-11 12:00"))  # a Saturday
    subscriber = subscribe(hlpf, "digest@example.org", clock.now, audiences=("secretariat",))
    set_subscriber(hlpf, subscriber, digest="weekly", reminders=[])  # the digest alone, no reminders
    make_dispatcher(hlpf, smtp.url, clock).refresh(timely=True)
    [planned] = rows(hlpf, kind="digest")
    assert (planned.slot, planned.send_at) == ("2017-02-13", at("2017-02-13 09:00"))
    assert deliver(make_dispatcher(hlpf, smtp.url, clock)).sent == 0
    clock.now = at("2017-02-13 09:00")
    assert deliver(make_dispatcher(hlpf, smtp.url, clock)).sent == 1
    [message] = [m.parse() for m in smtp.received]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Revised draft posted" in text  # due on 24 February, within three weeks
    assert rows(hlpf, kind="reminder") == []


def test_outcomes_written_through_the_driver_read_back_as_recorded(hlpf: Engine, smtp: SMTPTestServer) -> None:
    from tracker.delivery.outbox import Outcome, OutcomeWriter

    clock = Clock(at("2017-02-10 09:00"))
    for n in range(4):
        subscribe(hlpf, f"sec{n}@example.org", clock.now, audiences=("secretariat",))
    dispatcher = make_dispatcher(hlpf, smtp.url, clock)
    dispatcher.refresh(timely=True)
    sent, retried, skipped, late = dispatcher.claim_batch(10)[0]
    retry_at = clock.now + timedelta(minutes=5)
    writer = OutcomeWriter(hlpf)
    writer.record([Outcome(sent.id, "sent", clock.now, reply="250 ok"),  # one statement, mixed kinds
                   Outcome(retried.id, "planned", clock.now, error="451 later", retry_at=retry_at)])  # fmt: skip
    writer.record([Outcome(skipped.id, "skipped", clock.now, reason="milestone done", tried=False)])  # same connection
    writer.close()
    writer.record([Outcome(late.id, "sent", clock.now + timedelta(minutes=1), reply="250 late")])  # a new one
    writer.close()

    found = {row.id: row for row in rows(hlpf)}
    assert (found[sent.id].state, found[sent.id].sent_at, found[sent.id].reply) == ("sent", clock.now, "250 ok")
    assert (found[sent.id].attempts, found[sent.id].claimed_by, found[sent.id].lease_until) == (1, None, None)
    assert (found[retried.id].state, found[retried.id].attempt_at) == ("planned", retry_at)
    assert (found[retried.id].last_error, found[retried.id].sent_at, found[retried.id].attempts) == (
        "451 later",
        None,
        1,
    )
    assert (found[skipped.id].state, found[skipped.id].reason, found[skipped.id].attempts) == (
        "skipped",
        "milestone done",
        0,
    )
    assert (
        found[late.id].sent_at == clock.now + timedelta(minutes=1)
        and found[late.id].updated_at == found[late.id].sent_at
    )


def test_claims_grow_with_the_sending_rate_and_shrink_behind_a_slow_relay() -> None:
    import asyncio

    from tracker.delivery.dispatcher import Backlog

    async def scenario() -> list[int]:
        now = [0.0]
        backlog = Backlog(low=8, high=256, clock=lambda: now[0])
        sizes = [backlog.claim_size()]  # nothing known yet: the smallest claim
        backlog.add([(n, None, None) for n in range(200)])  # type: ignore[misc]
        for _ in range(200):
            await backlog.get()
        now[0] += 0.05  # 4,000 rows a second: 0.1 s of sending is 400, above the cap
        sizes.append(backlog.claim_size())
        for _ in range(30):
            backlog.add([(0, None, None)])  # type: ignore[list-item]
            await backlog.get()
        now[0] += 1.0  # 30 rows a second (a slow relay): the smallest claim again
        sizes.append(backlog.claim_size())
        return sizes

    assert asyncio.run(scenario()) == [8, 256, 8]


def test_the_next_claim_waits_until_half_of_the_last_is_left() -> None:
    import asyncio

    from tracker.delivery.dispatcher import Backlog

    async def scenario() -> list[int]:
        backlog = Backlog(low=8, high=256)
        backlog.add([(n, None, None) for n in range(8)])  # type: ignore[misc]
        left: list[int] = []
        waiting = asyncio.create_task(backlog.running_low())
        for _ in range(4):
            await asyncio.sleep(0)
            left.append(backlog.items.qsize())
            assert not waiting.done()
            await backlog.get()
        await asyncio.wait_for(waiting, 1)  # four of eight left
        return [*left, backlog.items.qsize()]

    assert asyncio.run(scenario()) == [8, 7, 6, 5, 4]


def test_a_lost_connection_to_the_store_mid_pass_loses_and_doubles_nothing(hlpf: Engine, smtp: SMTPTestServer) -> None:
    import threading

    from sqlalchemy import text

    from tracker.delivery.outbox import WRITER_NAME

    if hlpf.dialect.name != "postgresql":
        pytest.skip("cutting the outcome writer's connection needs PostgreSQL: set TRACKER_TEST_DATABASE_URL")
    clock = Clock(at("2017-02-10 09:00"))
    addresses = [f"sec{n}@example.org" for n in range(40)]
    for address in addresses:
        subscribe(hlpf, address, clock.now, audiences=("secretariat",))
    smtp.delay = 0.02  # 40 messages over two connections take 0.4 s or more: time to cut in
    cut: list[int] = []

    def cut_the_writer() -> None:
        smtp.wait_until(lambda server: len(server.received) >= 10, timeout=20)
        with hlpf.connect() as connection:
            killed = connection.execute(
                text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": WRITER_NAME},
            ).scalar()
            connection.commit()
        cut.append(int(killed or 0))

    cutter = threading.Thread(target=cut_the_writer)
    cutter.start()
    result = deliver(make_dispatcher(hlpf, smtp.url, clock))
    cutter.join()

    assert cut == [1], "the writer's connection was not there to cut: the test proves nothing"
    assert (result.sent, result.failed) == (40, 0)
    assert sorted(m.rcpt_tos[0] for m in smtp.received) == sorted(addresses)  # each once
    due_now = rows(hlpf, milestone_key="revised-draft", slot="14d")
    assert len(due_now) == 40 and {row.state for row in due_now} == {"sent"}  # each recorded, none left claimed


def test_when_the_outcome_writer_cannot_connect_the_pass_records_through_the_pool(
    hlpf: Engine, smtp: SMTPTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    import psycopg

    from tracker.delivery.outbox import OutcomeWriter

    if hlpf.dialect.name != "postgresql":
        pytest.skip("the asynchronous outcome writer is PostgreSQL's: set TRACKER_TEST_DATABASE_URL")

    async def refused(self: OutcomeWriter) -> None:
        raise psycopg.OperationalError("connection refused: too many clients already")  # as the server says it

    monkeypatch.setattr(OutcomeWriter, "connect_async", refused)
    clock = Clock(at("2017-02-10 09:00"))
    addresses = [f"sec{n}@example.org" for n in range(12)]
    for address in addresses:
        subscribe(hlpf, address, clock.now, audiences=("secretariat",))
    dispatcher = make_dispatcher(hlpf, smtp.url, clock)

    async def once() -> object:
        await asyncio.to_thread(dispatcher.refresh, replan_all=True)
        try:
            return await asyncio.wait_for(dispatcher.run_pass(), 30)  # a stalled pass fails here, not hangs
        finally:
            await dispatcher.mailer.close()

    result = asyncio.run(once())

    assert (result.sent, result.failed) == (12, 0)  # type: ignore[attr-defined]
    assert sorted(m.rcpt_tos[0] for m in smtp.received) == sorted(addresses)
    assert {row.state for row in rows(hlpf, milestone_key="revised-draft", slot="14d")} == {"sent"}
