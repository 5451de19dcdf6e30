"""One message per change, per reader: a meeting moved by a week, through `tracker` and a real SMTP server.

Everything one sync changes is one change set; each member gets one `changed` message listing
every milestone of theirs that moved, was cancelled or restored, in date order.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support.cli import cli_env, tracker
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import WriteTimeline
from tracker.delivery.changes import Change, Line, fold

# A meeting and the three dates that count from it (CWG-WSIS: documents 30 days before, contributions
# 12 days before, the summary a week after its end). Far ahead, so that `tracker sync` and `plan`,
# which read the real clock, see every date as coming.
MEETING = """
    id: cwg-40
    title: 40th meeting of the CWG-WSIS
    timezone: Europe/Zurich
    kind: meeting
    audiences: [membership, secretariat]
    milestones:
      - id: meeting
        title: CWG-WSIS-40, Geneva
        starts: 2099-03-10
        ends: 2099-03-11
      - id: documents
        title: Secretariat documents available
        due: meeting - 30d
      - id: contributions
        title: Member contributions due
        due: meeting - 12d
      - id: summary
        title: Summary of the meeting posted
        due: meeting.end + 7d
"""
# Seen by the engine as 5 January 2099: no reminder of these dates is due yet.
NOW = "2099-01-05 10:00"
LATER = "2099-01-05 12:00"  # after the retry wait of a refused message


def moved(days: int) -> str:
    return MEETING.replace("starts: 2099-03-10", f"starts: 2099-03-{10 + days}").replace(
        "ends: 2099-03-11", f"ends: 2099-03-{11 + days}"
    )


@pytest.fixture
def env(
    database_url: str, schedules: Path, write_timeline: WriteTimeline, tmp_path: Path, smtp: SMTPTestServer
) -> dict[str, str]:
    """The meeting synced, two members (English and French) confirmed, the notice cursor set."""
    write_timeline("cwg-40", MEETING)
    env = cli_env(database_url, schedules, TRACKER_SMTP_URL=smtp.url, TRACKER_RETRY_BASE="60")
    run("sync", env=env, cwd=tmp_path)
    for address, language in (("en@example.org", "en"), ("fr@example.org", "fr")):
        run("subscribers", "add", address, "--language", language, "--audience", "membership", "--confirmed",
            env=env, cwd=tmp_path)  # fmt: skip
    run("send-due", "--now", NOW, env=env, cwd=tmp_path)  # the first pass: what came before is history
    assert smtp.received == []
    return env


def run(*args: str, env: dict[str, str], cwd: Path) -> str:
    result = tracker(*args, env=env, cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def move(write_timeline: WriteTimeline, days: int, env: dict[str, str], cwd: Path) -> None:
    write_timeline("cwg-40", moved(days))
    run("sync", env=env, cwd=cwd)


def moved_again_while_the_relay_is_down(
    then: str, smtp: SMTPTestServer, write_timeline: WriteTimeline, env: dict[str, str], cwd: Path
) -> None:
    """The meeting moved a week while the relay refuses (the messages wait), *then* synced, the relay back."""
    smtp.answer("MAIL", "451 4.3.0 try later")
    move(write_timeline, 7, env, cwd)
    run("send-due", "--now", NOW, env=env, cwd=cwd)
    write_timeline("cwg-40", then)
    run("sync", env=env, cwd=cwd)
    smtp.clear_faults()
    run("send-due", "--now", LATER, env=env, cwd=cwd)


def messages(smtp: SMTPTestServer) -> dict[str, list[EmailMessage]]:
    found: dict[str, list[EmailMessage]] = {}
    for mail in smtp.received:
        found.setdefault(mail.rcpt_tos[0], []).append(mail.parse())
    return found


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def listed(text: str, new_label: str, old_label: str) -> list[tuple[str, str, str]]:
    """The lines of a changed message as (title, new date, old date), in the order they are written."""
    # French puts a no-break space before the colon.
    found = re.findall(rf"^(\S[^\n]*)\n{new_label}\s?: ([^\n]+)\n{old_label}\s?: ([^\n]+)$", text, re.MULTILINE)
    return [(title, new, old) for title, new, old in found]


ENGLISH_WEEK_LATER = [
    (
        "Secretariat documents available",
        "Sunday, 15 February 2099, end of day, Zurich time",
        "Sunday, 8 February 2099, end of day, Zurich time",
    ),
    (
        "Member contributions due",
        "Thursday, 5 March 2099, end of day, Zurich time",
        "Thursday, 26 February 2099, end of day, Zurich time",
    ),
    (
        "CWG-WSIS-40, Geneva",
        "Tuesday 17\u2009March –\u2009Wednesday 18 March 2099",
        "Tuesday 10\u2009March –\u2009Wednesday 11 March 2099",
    ),
    (
        "Summary of the meeting posted",
        "Wednesday, 25 March 2099, end of day, Zurich time",
        "Wednesday, 18 March 2099, end of day, Zurich time",
    ),
]


def test_a_meeting_moved_by_a_week_sends_each_member_one_message_listing_its_four_dates(
    env: dict[str, str], write_timeline: WriteTimeline, tmp_path: Path, smtp: SMTPTestServer
) -> None:
    move(write_timeline, 7, env, tmp_path)
    run("send-due", "--now", NOW, env=env, cwd=tmp_path)

    received = messages(smtp)
    assert sorted(received) == ["en@example.org", "fr@example.org"]
    [english], [french] = received["en@example.org"], received["fr@example.org"]
    dates = listed(text_of(english), "New date", "Previously")
    assert [title for title, _, _ in dates] == [title for title, _, _ in ENGLISH_WEEK_LATER]
    assert dates == ENGLISH_WEEK_LATER, text_of(english)
    assert str(english["Subject"]) == "Dates changed: 40th meeting of the CWG-WSIS"
    french_dates = listed(text_of(french), "Nouvelle date", "Date précédente")
    assert [title for title, _, _ in french_dates] == [title for title, _, _ in ENGLISH_WEEK_LATER]
    assert all(re.search(r"\b(février|mars)\b", new) for _, new, _ in french_dates), text_of(french)
    assert str(french["Subject"]).startswith("Dates modifiées")
    log = json.loads(run("deliveries", "--json", env=env, cwd=tmp_path))
    assert sorted((d["to"], d["kind"], d["state"]) for d in log if d["kind"] == "changed") == [
        ("en@example.org", "changed", "sent"),
        ("fr@example.org", "changed", "sent"),
    ]


def test_a_date_rolled_off_a_day_off_says_so_in_the_message(
    env: dict[str, str], write_timeline: WriteTimeline, tmp_path: Path, smtp: SMTPTestServer
) -> None:
    # 30 days before the meeting is Sunday 8 February 2099: the roll moves the documents to Friday 6.
    rolled = MEETING.replace("        due: meeting - 30d\n", "        due: meeting - 30d\n        roll: previous\n")
    write_timeline("cwg-40", rolled)
    run("sync", env=env, cwd=tmp_path)
    run("send-due", "--now", NOW, env=env, cwd=tmp_path)

    [english], [french] = messages(smtp)["en@example.org"], messages(smtp)["fr@example.org"]
    lines = text_of(english).splitlines()
    assert lines[lines.index("Secretariat documents available") + 1 :][:3] == [
        "New date: Friday, 6 February 2099, end of day, Zurich time",
        "Previously: Sunday, 8 February 2099, end of day, Zurich time",
        "Moved from Sunday, 8 February 2099, a non-working day.",
    ]
    assert "Date déplacée : le dimanche 8 février 2099 est un jour non ouvré." in text_of(french).replace("\xa0", " ")


def test_a_second_move_before_the_message_went_out_updates_its_lines(
    env: dict[str, str], write_timeline: WriteTimeline, tmp_path: Path, smtp: SMTPTestServer
) -> None:
    # A second change set while the first is unsent.
    moved_again_while_the_relay_is_down(moved(14), smtp, write_timeline, env, tmp_path)

    received = messages(smtp)
    [english] = received["en@example.org"]
    assert len(received["fr@example.org"]) == 1
    assert listed(text_of(english), "New date", "Previously") == [
        (
            "Secretariat documents available",
            "Sunday, 22 February 2099, end of day, Zurich time",
            "Sunday, 8 February 2099, end of day, Zurich time",
        ),
        (
            "Member contributions due",
            "Thursday, 12 March 2099, end of day, Zurich time",
            "Thursday, 26 February 2099, end of day, Zurich time",
        ),
        (
            "CWG-WSIS-40, Geneva",
            "Tuesday 24\u2009March –\u2009Wednesday 25 March 2099",
            "Tuesday 10\u2009March –\u2009Wednesday 11 March 2099",
        ),
        (
            "Summary of the meeting posted",
            "Wednesday, 1 April 2099, end of day, Zurich time",
            "Wednesday, 18 March 2099, end of day, Zurich time",
        ),
    ], text_of(english)


def test_a_move_back_before_the_message_went_out_sends_nothing(
    env: dict[str, str], write_timeline: WriteTimeline, tmp_path: Path, smtp: SMTPTestServer
) -> None:
    # Back where it was: nothing to tell any more.
    moved_again_while_the_relay_is_down(moved(0), smtp, write_timeline, env, tmp_path)

    assert smtp.received == []
    log = json.loads(run("deliveries", "--json", env=env, cwd=tmp_path))
    assert sorted((d["to"], d["kind"], d["state"], d["reason"]) for d in log if d["kind"] == "changed") == [
        ("en@example.org", "changed", "cancelled", "nothing left to tell: moved back to its earlier date"),
        ("fr@example.org", "changed", "cancelled", "nothing left to tell: moved back to its earlier date"),
    ]


def test_a_move_back_of_one_date_removes_its_line_and_keeps_the_others(
    env: dict[str, str], write_timeline: WriteTimeline, tmp_path: Path, smtp: SMTPTestServer
) -> None:
    # The summary is pinned back to its first date; everything else keeps the new week.
    pinned = moved(7).replace("due: meeting.end + 7d", "due: 2099-03-18")
    moved_again_while_the_relay_is_down(pinned, smtp, write_timeline, env, tmp_path)

    [english] = messages(smtp)["en@example.org"]
    assert [title for title, _, _ in listed(text_of(english), "New date", "Previously")] == [
        "Secretariat documents available",
        "Member contributions due",
        "CWG-WSIS-40, Geneva",
    ]
    assert "Summary of the meeting posted" not in text_of(english)


def test_a_move_after_the_first_message_went_out_sends_a_second_one(
    env: dict[str, str], write_timeline: WriteTimeline, tmp_path: Path, smtp: SMTPTestServer
) -> None:
    move(write_timeline, 7, env, tmp_path)
    run("send-due", "--now", NOW, env=env, cwd=tmp_path)
    move(write_timeline, 14, env, tmp_path)
    run("send-due", "--now", LATER, env=env, cwd=tmp_path)

    first, second = messages(smtp)["en@example.org"]
    assert listed(text_of(first), "New date", "Previously") == ENGLISH_WEEK_LATER
    assert listed(text_of(second), "New date", "Previously")[0] == (
        "Secretariat documents available",
        "Sunday, 22 February 2099, end of day, Zurich time",
        "Sunday, 15 February 2099, end of day, Zurich time",
    )
    assert first["Message-ID"] != second["Message-ID"]


def test_a_cancelled_and_a_moved_date_of_one_sync_come_in_one_message(
    env: dict[str, str], write_timeline: WriteTimeline, tmp_path: Path, smtp: SMTPTestServer
) -> None:
    cancelled = moved(7).replace(
        "        due: meeting.end + 7d\n", "        due: meeting.end + 7d\n        status: cancelled\n"
    )
    write_timeline("cwg-40", cancelled)
    run("sync", env=env, cwd=tmp_path)
    run("send-due", "--now", NOW, env=env, cwd=tmp_path)

    [english] = messages(smtp)["en@example.org"]
    text = text_of(english)
    assert len(listed(text, "New date", "Previously")) == 3
    assert "Summary of the meeting posted\nThis item has been cancelled." in text, text
    assert "It was planned for: Wednesday, 18 March 2099, end of day, Zurich time" in text


def test_plan_says_how_many_subscribers_get_one_message_listing_how_many_changes(
    env: dict[str, str], write_timeline: WriteTimeline, tmp_path: Path
) -> None:
    other = MEETING.replace("id: cwg-40", "id: cwg-41").replace("2099-03-1", "2099-05-1")
    write_timeline("cwg-41", other)
    run("sync", env=env, cwd=tmp_path)
    run("subscribers", "add", "sec@example.org", "--audience", "secretariat", "--timeline", "cwg-41", "--confirmed",
        env=env, cwd=tmp_path)  # fmt: skip  # concerned by neither the meeting nor its dates
    write_timeline("cwg-40", moved(7))

    planned = run("plan", env=env, cwd=tmp_path)
    assert "2 subscribers get one message listing 4 changes" in planned, planned
    listing = json.loads(run("plan", "--json", env=env, cwd=tmp_path))
    assert listing["messages"] == [{"subscribers": 2, "changes": 4}]
    assert {c["milestone"]: c["notice"] for c in listing["changes"]}["documents"] == {
        "kind": "changed",
        "subscribers": 2,
    }


# --- how a later change folds into a line not sent yet (pure) ---------------------------------

A, B, C = (datetime(2099, 3, day, 22, 59, 59, tzinfo=UTC) for day in (10, 17, 24))


def line(change: Change, old_at: datetime | None, new_at: datetime | None = None) -> Line:
    return Line("cwg-40", "documents", change, old_at, new_at)


@pytest.mark.parametrize(
    ("earlier", "later", "told"),
    [
        (line("moved", A, B), line("moved", B, C), line("moved", A, C)),  # old → newest
        (line("moved", A, B), line("moved", B, A), "moved back to its earlier date"),
        (line("moved", A, B), line("cancelled", B), line("cancelled", A)),  # off, from the date they knew
        (line("cancelled", A), line("restored", A, A), "back as it was"),
        (line("cancelled", A), line("restored", A, B), line("moved", A, B)),
        (line("restored", A, B), line("moved", B, C), line("restored", A, C)),
        (line("restored", A, B), line("removed", B), "removed again"),
    ],
)
def test_a_later_change_folds_into_the_unsent_line_from_what_the_member_last_heard(
    earlier: Line, later: Line, told: Line | str
) -> None:
    folded, reason = fold(earlier, later)
    assert (folded, reason) == ((None, told) if isinstance(told, str) else (told, ""))
