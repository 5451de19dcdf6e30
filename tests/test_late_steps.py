"""Late steps are escalated, never dropped; a window waiting for one is not announced as open (issue 15, points 2–3).

The HLPF chain through the installed `tracker` and a real SMTP server: the secretariat's revised
draft (due 24 February) is late; the members' comment window opens 14 days after it is posted.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.cli import tracker
from tests.support.delivery import Clock, at, deliver, make_dispatcher, mark_done, rows, set_subscriber, subscribe, sync
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, WriteTimeline

SECRETARIAT, MEMBER = "sec@example.org", "amina@mission.example.org"


def inbox(smtp: SMTPTestServer, who: str) -> list[str]:
    return [str(m.parse()["Subject"]) for m in smtp.received if list(m.rcpt_tos) == [who]]


def test_a_late_draft_is_chased_its_window_waits_then_opens_with_the_real_dates(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    env = {**env, "TRACKER_SMTP_URL": smtp.url, "TRACKER_SECRET_KEY": "s" * 40}
    write_timeline("hlpf", HLPF)
    assert tracker("sync", env=env, cwd=tmp_path).returncode == 0
    for who, audience in ((SECRETARIAT, "secretariat"), (MEMBER, "membership")):
        added = tracker("subscribers", "add", who, "--audience", audience, "--confirmed", env=env, cwd=tmp_path)
        assert added.returncode == 0, added.stderr

    def send_due(when: str) -> None:
        result = tracker("send-due", "--now", when, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr

    send_due("2017-02-10T09:00")
    held = json.loads(tracker("deliveries", "--status", "held", "--json", env=env, cwd=tmp_path).stdout)
    held_for = {(row["milestone"], row["reason"]) for row in held}
    assert held_for == {("hlpf/member-comments", "waiting for revised-draft")}

    send_due("2017-02-25T09:00")  # the draft was due yesterday and is not posted
    assert inbox(smtp, SECRETARIAT)[-1] == "Overdue by 1 day: Revised draft posted"
    assert inbox(smtp, MEMBER) == ["Delayed: Membership comments on the revised draft"]

    send_due("2017-02-26T09:00")
    send_due("2017-02-27T09:00")  # the escalation three days after
    assert inbox(smtp, SECRETARIAT).count("Overdue by 1 day: Revised draft posted") == 1
    assert inbox(smtp, SECRETARIAT)[-1] == "Overdue by 3 days: Revised draft posted"
    assert len(inbox(smtp, MEMBER)) == 1  # one delayed notice, and no reminder of a window not open

    done = tracker("done", "hlpf/revised-draft", "--at", "2017-02-27T10:00", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    send_due("2017-02-27T10:05")
    send_due("2017-03-06T09:00")  # seven days before the comments, now due 13 March
    send_due("2017-03-08T09:00")  # past the draft's next escalation offset: it is done, nothing more

    assert inbox(smtp, MEMBER) == [
        "Delayed: Membership comments on the revised draft",
        "Now open: Membership comments on the revised draft",
        "Due in 7 days: Membership comments on the revised draft",
    ]
    opened = next(m.parse() for m in smtp.received if "Now open" in str(m.parse()["Subject"]))
    assert "Monday, 13 March 2017" in opened.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert not [s for s in inbox(smtp, SECRETARIAT) if s.startswith("Overdue")][2:]


def test_a_late_step_is_listed_as_late_then_missed_and_no_longer_chased(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    env = {**env, "TRACKER_SMTP_URL": smtp.url, "TRACKER_SECRET_KEY": "s" * 40, "TRACKER_LATE_DAYS": "5",
           "TRACKER_OVERDUE": "1d,3d,7d"}  # fmt: skip
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    tracker("subscribers", "add", SECRETARIAT, "--audience", "secretariat", "--confirmed", env=env, cwd=tmp_path)

    for day in ("2017-02-20", "2017-02-25", "2017-02-27", "2017-03-03", "2017-03-10"):
        assert tracker("send-due", "--now", f"{day}T09:00", env=env, cwd=tmp_path).returncode == 0

    overdue = [s for s in inbox(smtp, SECRETARIAT) if s.startswith("Overdue")]
    # Late five days at most: the 7-day escalation (3 March) comes after it is missed (1 March).
    assert overdue == ["Overdue by 1 day: Revised draft posted", "Overdue by 3 days: Revised draft posted"]
    late = json.loads(tracker("late", "--now", "2017-02-27", "--json", env=env, cwd=tmp_path).stdout)
    assert [row["milestone"] for row in late] == ["revised-draft"]
    assert json.loads(tracker("late", "--now", "2017-03-03", "--json", env=env, cwd=tmp_path).stdout) == []


def test_a_timelines_own_overdue_offsets_replace_tracker_overdue(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    env = {**env, "TRACKER_SMTP_URL": smtp.url, "TRACKER_SECRET_KEY": "s" * 40}  # TRACKER_OVERDUE: 1d,3d
    write_timeline("hlpf", HLPF.replace("    reminders: [14d, 7d, 1d]\n", "    overdue: [2d]\n"))
    synced = tracker("sync", env=env, cwd=tmp_path)
    assert synced.returncode == 0, synced.stderr
    tracker("subscribers", "add", SECRETARIAT, "--audience", "secretariat", "--confirmed", env=env, cwd=tmp_path)

    for day in ("2017-02-25", "2017-02-26", "2017-02-27", "2017-03-03"):
        assert tracker("send-due", "--now", f"{day}T09:00", env=env, cwd=tmp_path).returncode == 0

    overdue = [s for s in inbox(smtp, SECRETARIAT) if s.startswith("Overdue")]
    # The morning after the due day, then two days after it; not three days after (the setting's 3d).
    assert overdue == ["Overdue by 1 day: Revised draft posted", "Overdue by 2 days: Revised draft posted"]


def secretariat_only(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> dict[str, str]:
    """The HLPF chain, the secretariat subscribed, a first pass on 20 February; the environment to go on with."""
    env = {**env, "TRACKER_SMTP_URL": smtp.url, "TRACKER_SECRET_KEY": "s" * 40}
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    tracker("subscribers", "add", SECRETARIAT, "--audience", "secretariat", "--confirmed", env=env, cwd=tmp_path)
    tracker("send-due", "--now", "2017-02-20T09:00", env=env, cwd=tmp_path)
    return env


def test_a_late_step_moved_and_late_again_is_chased_again(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    # Found in review: the overdue rows of the first due date were sent, and a new due date reused their keys.
    env = secretariat_only(env, tmp_path, write_timeline, smtp)
    tracker("send-due", "--now", "2017-02-25T09:00", env=env, cwd=tmp_path)

    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-03-01"))  # more time given
    tracker("sync", env=env, cwd=tmp_path)
    tracker("send-due", "--now", "2017-03-02T09:00", env=env, cwd=tmp_path)

    overdue = [s for s in inbox(smtp, SECRETARIAT) if s.startswith("Overdue")]
    assert overdue == ["Overdue by 1 day: Revised draft posted"] * 2


def test_after_downtime_only_the_latest_overdue_notice_goes(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    env = secretariat_only(env, tmp_path, write_timeline, smtp)

    tracker("send-due", "--now", "2017-03-01T09:00", env=env, cwd=tmp_path)  # nothing ran for nine days

    assert [s for s in inbox(smtp, SECRETARIAT) if s.startswith("Overdue")] == [
        "Overdue by 5 days: Revised draft posted"
    ]


def test_an_overdue_notice_claimed_after_its_step_moved_ahead_is_not_sent(
    hlpf_engine: Engine, schedules: Path, write_timeline: WriteTimeline, smtp: SMTPTestServer
) -> None:
    # A long pass claims without re-planning: the row still says "late" when the step no longer is.
    clock = Clock(at("2017-02-20 09:00"))
    subscribe(hlpf_engine, SECRETARIAT, clock.now, audiences=("secretariat",))
    deliver(make_dispatcher(hlpf_engine, smtp.url, clock))
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-03-10"))
    sync(hlpf_engine, schedules, clock.now)
    clock.now = at("2017-02-25 09:00")

    dispatcher = make_dispatcher(hlpf_engine, smtp.url, clock)
    asyncio.run(dispatcher.run_pass())  # no re-planning first
    asyncio.run(dispatcher.mailer.close())

    assert [s for s in inbox(smtp, SECRETARIAT) if s.startswith("Overdue")] == []
    (row,) = rows(hlpf_engine, kind="overdue", slot="due@2017-02-24")
    assert (row.state, row.reason) == ("cancelled", "no longer late: its date moved")


@pytest.fixture
def hlpf_engine(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Engine:
    write_timeline("hlpf", HLPF)
    sync(engine, schedules, at("2017-02-01 09:00"))
    return engine


def test_an_unsent_opened_notice_of_a_cancelled_step_is_withdrawn_for_one_who_stopped_following(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    # A change set is told a span at a time to those it concerns; an 'opened' notice not sent yet about a
    # step then cancelled is withdrawn whoever holds it, one who changed their choices since too.
    write_timeline("hlpf", HLPF)
    sync(engine, schedules, at("2017-02-01 09:00"))
    clock = Clock(at("2017-02-02 09:00"))
    subscribe(engine, "member@example.org", clock.now, audiences=("membership",))
    dispatcher = make_dispatcher(engine, "smtp://127.0.0.1:1", clock)
    dispatcher.refresh(timely=True)
    clock.now = at("2017-02-20 15:00")
    mark_done(engine, "hlpf/revised-draft", clock.now)
    dispatcher.refresh()
    [notice] = rows(engine, kind="opened")
    assert (notice.milestone_key, notice.state) == ("member-comments", "planned")
    set_subscriber(engine, notice.subscriber_id, audiences=["secretariat"])  # follows the window no more
    clock.now = at("2017-02-20 16:00")
    opens = "        opens_after: revised-draft\n"
    write_timeline("hlpf", HLPF.replace(opens, opens + "        status: cancelled\n"))
    sync(engine, schedules, clock.now)
    dispatcher.refresh()
    [notice] = rows(engine, kind="opened")
    assert (notice.state, notice.reason) == ("cancelled", "milestone cancelled")
