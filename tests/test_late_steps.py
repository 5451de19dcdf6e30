"""Late steps are escalated, never dropped; a window waiting for one is not announced as open (issue 15, points 2–3).

The HLPF chain through the installed `tracker` and a real SMTP server: the secretariat's revised
draft (due 24 February) is late; the members' comment window opens 14 days after it is posted.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import tracker
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
