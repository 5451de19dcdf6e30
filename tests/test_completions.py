"""Completions are corrected, never silently replaced: `tracker done` twice refuses and shows the first;
`--amend` changes what it is given and keeps the rest; an amendment opens nothing a second time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email import message_from_string, policy
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import col, select

from tests.support.cli import tracker
from tests.support.timelines import HLPF, WriteTimeline
from tests.support.web import serving, sync
from tracker.config import Settings
from tracker.store.engine import open_store, transaction
from tracker.store.models import CompletionRecord, Event


def recorded(database_url: str) -> list[tuple[str, str, str, str]]:
    engine = open_store(database_url)
    try:
        with transaction(engine) as session:
            rows = session.exec(select(CompletionRecord)).all()
            return [(r.milestone_key, f"{r.done_day or r.done_at:%Y-%m-%d}", r.note, r.link) for r in rows]
    finally:
        engine.dispose()


def dates(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    result = tracker("upcoming", "--now", "2017-02-01", "--days", "120", "--json", env=env, cwd=tmp_path)
    return {row["milestone"]: row["date"] for row in json.loads(result.stdout)}


def test_a_second_done_is_refused_and_shows_the_first(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, database_url: str
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    link = "https://itu.example/C17-INF-3"
    tracker(
        "done", "hlpf/revised-draft", "--at", "2017-02-20", "--note", "posted", "--link", link, env=env, cwd=tmp_path
    )

    second = tracker("done", "hlpf/revised-draft", "--at", "2017-02-27", env=env, cwd=tmp_path)

    assert second.returncode == 1
    said = " ".join(second.stderr.split())
    assert f"hlpf/revised-draft is already done: Mon, 20 Feb 2017 (note: posted; link: {link})" in said
    assert "add --amend to change its time, note or link" in said
    assert recorded(database_url) == [("revised-draft", "2017-02-20", "posted", link)]
    assert dates(env, tmp_path)["member-comments"] == "2017-03-06"  # still 14 days after the first


def test_a_completion_time_the_clocks_skip_is_refused_with_the_times_to_write(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, database_url: str
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)

    # 26 March 2017: the clocks go from 02:00 to 03:00 in Zurich (the default zone of --at).
    skipped = tracker("done", "hlpf/revised-draft", "--at", "2017-03-26T02:30", env=env, cwd=tmp_path)
    with_offset = tracker("done", "hlpf/final-draft", "--at", "2017-03-26T02:30+01:00", env=env, cwd=tmp_path)

    assert skipped.returncode == 2
    assert " ".join(skipped.stderr.split()) == (
        "error: --at: 02:30 on 2017-03-26 does not exist in Europe/Zurich (clocks go from 02:00 to 03:00); "
        "write 01:30 or 03:00"
    )
    assert with_offset.returncode == 0, with_offset.stderr  # an instant said with its offset is no wall time
    assert recorded(database_url) == [("final-draft", "2017-03-26", "", "")]


def test_amend_changes_what_it_is_given_and_keeps_the_rest(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, database_url: str
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    tracker("done", "hlpf/revised-draft", "--at", "2017-02-20", "--note", "posted", env=env, cwd=tmp_path)

    link = tracker("done", "hlpf/revised-draft", "--amend", "--link", "https://itu.example/d", env=env, cwd=tmp_path)
    assert link.returncode == 0, link.stderr
    assert "✎ amended     hlpf/revised-draft" in link.stdout
    assert recorded(database_url) == [("revised-draft", "2017-02-20", "posted", "https://itu.example/d")]

    later = tracker("done", "hlpf/revised-draft", "--amend", "--at", "2017-02-22", env=env, cwd=tmp_path)
    assert later.returncode == 0, later.stderr
    assert "~ rescheduled hlpf/member-comments" in later.stdout  # a new time cascades
    assert recorded(database_url) == [("revised-draft", "2017-02-22", "posted", "https://itu.example/d")]
    assert dates(env, tmp_path)["member-comments"] == "2017-03-08"


def test_amend_refuses_a_step_that_is_not_done(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)

    result = tracker("done", "hlpf/revised-draft", "--amend", "--note", "posted", env=env, cwd=tmp_path)

    assert result.returncode == 2
    assert "hlpf/revised-draft is not done yet: there is no completion to amend" in " ".join(result.stderr.split())


# --- reopening: a completion recorded by mistake is withdrawn, and whoever was told is corrected ---


def told(outbox: Path, words: str) -> int:
    return sum(words in path.read_text() for path in outbox.glob("*.eml"))


def start_today(env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline) -> tuple[dict[str, str], Path]:
    """The HLPF chain with its draft due in three days, a member subscribed, and the history taken as it is."""
    today = datetime.now(UTC).date()
    outbox = tmp_path / "outbox"
    env = {**env, "TRACKER_OUTBOX_DIR": str(outbox), "TRACKER_SECRET_KEY": "s" * 40}
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", f"due: {today + timedelta(days=3)}"))
    tracker("sync", env=env, cwd=tmp_path)
    member = ("amina@mission.example.org", "--audience", "membership", "--confirmed")
    assert tracker("subscribers", "add", *member, env=env, cwd=tmp_path).returncode == 0
    assert tracker("send-due", env=env, cwd=tmp_path).returncode == 0  # the first pass: history, not news
    return env, outbox


def test_an_amendment_does_not_announce_the_window_again(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    env, outbox = start_today(env, tmp_path, write_timeline)  # real time: the window it opens is still ahead

    def announced() -> int:
        assert tracker("send-due", env=env, cwd=tmp_path).returncode == 0
        return told(outbox, "Now open")

    tracker("done", "hlpf/revised-draft", "--at", datetime.now(UTC).date().isoformat(), env=env, cwd=tmp_path)
    assert announced() == 1
    amended = tracker("done", "hlpf/revised-draft", "--amend", "--note", "posted as C17/INF/3", env=env, cwd=tmp_path)
    assert amended.returncode == 0, amended.stderr
    assert announced() == 1


def test_reopen_before_the_opened_notice_went_cancels_it_and_moves_dependents_back(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, database_url: str
) -> None:
    env, outbox = start_today(env, tmp_path, write_timeline)
    today = datetime.now(UTC).date()
    before = json.loads(tracker("upcoming", "--days", "60", "--json", env=env, cwd=tmp_path).stdout)
    tracker("done", "hlpf/revised-draft", "--at", today.isoformat(), env=env, cwd=tmp_path)

    reopened = tracker("reopen", "hlpf/revised-draft", "--note", "recorded by mistake", env=env, cwd=tmp_path)
    assert tracker("send-due", env=env, cwd=tmp_path).returncode == 0

    assert reopened.returncode == 0, reopened.stderr
    assert "↺ reopened    hlpf/revised-draft" in reopened.stdout
    assert "~ rescheduled hlpf/member-comments" in reopened.stdout
    assert recorded(database_url) == []
    after = json.loads(tracker("upcoming", "--days", "60", "--json", env=env, cwd=tmp_path).stdout)
    assert [(r["milestone"], r["date"], r["state"]) for r in after] == [
        (r["milestone"], r["date"], r["state"]) for r in before
    ]  # the dates and states before the mistake, the window waiting again
    assert told(outbox, "Now open") == told(outbox, "Correction") == 0


def test_reopen_after_the_opened_notice_went_sends_one_correction_to_the_same_readers(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    env, outbox = start_today(env, tmp_path, write_timeline)
    tracker("done", "hlpf/revised-draft", "--at", datetime.now(UTC).date().isoformat(), env=env, cwd=tmp_path)
    assert tracker("send-due", env=env, cwd=tmp_path).returncode == 0
    assert told(outbox, "Now open") == 1

    note = "The draft posted was the wrong file."
    assert tracker("reopen", "hlpf/revised-draft", "--note", note, env=env, cwd=tmp_path).returncode == 0
    assert tracker("send-due", env=env, cwd=tmp_path).returncode == 0
    assert tracker("send-due", env=env, cwd=tmp_path).returncode == 0

    (correction,) = [p.read_text() for p in outbox.glob("*.eml") if "Correction" in p.read_text()]
    message = message_from_string(correction, policy=policy.default)
    assert message["Subject"] == "Correction: Membership comments on the revised draft has not opened yet"
    assert note in correction and message["To"] == "amina@mission.example.org"
    assert told(outbox, "New date") == 0  # the window moved back, but it waits: its opening will give the dates
    # Done again: the window opens again, and is announced again.
    tracker("done", "hlpf/revised-draft", "--at", datetime.now(UTC).date().isoformat(), env=env, cwd=tmp_path)
    assert tracker("send-due", env=env, cwd=tmp_path).returncode == 0
    assert told(outbox, "Now open") == 2


def test_reopen_refuses_a_step_not_done_and_a_completion_written_in_the_file(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    path = write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)

    not_done = tracker("reopen", "hlpf/revised-draft", env=env, cwd=tmp_path)
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-02-24\n        done: 2017-02-23"))
    tracker("sync", env=env, cwd=tmp_path)
    in_file = tracker("reopen", "hlpf/revised-draft", env=env, cwd=tmp_path)

    assert not_done.returncode == 1
    assert "hlpf/revised-draft is not done: there is no completion to reopen" in " ".join(not_done.stderr.split())
    assert in_file.returncode == 1
    assert f"is done in its file ({path}: done:); remove it there and sync" in " ".join(in_file.stderr.split())


def test_events_say_who_completed_amended_and_reopened_and_why(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, database_url: str
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    tracker("done", "hlpf/revised-draft", "--at", "2017-02-20", "--note", "posted", env=env, cwd=tmp_path)
    tracker("done", "hlpf/revised-draft", "--amend", "--note", "posted as C17/3", env=env, cwd=tmp_path)
    tracker("reopen", "hlpf/revised-draft", "--note", "wrong file", env=env, cwd=tmp_path)

    engine = open_store(database_url)
    try:
        with transaction(engine) as session:
            kinds = ("completed", "amended", "reopened")
            events = session.exec(select(Event).where(col(Event.kind).in_(kinds)).order_by(col(Event.id))).all()
            found = [(e.kind, (e.detail or {}).get("note"), (e.detail or {}).get("who", "")) for e in events]
    finally:
        engine.dispose()
    assert [(kind, note) for kind, note, _ in found] == [
        ("completed", "posted"),
        ("amended", "posted as C17/3"),
        ("reopened", "wrong file"),
    ]
    assert all(who.startswith("cli:") for _, _, who in found)


def test_a_done_date_changed_in_the_file_amends_and_the_file_keeps_a_cli_note(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, database_url: str
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    tracker("done", "hlpf/revised-draft", "--at", "2017-02-20", "--note", "posted", env=env, cwd=tmp_path)

    # The secretariat writes the same completion into the file: nothing changes, the note stays.
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-02-24\n        done: 2017-02-20"))
    same = tracker("sync", env=env, cwd=tmp_path)
    assert "no changes" in same.stdout, same.stdout
    assert recorded(database_url) == [("revised-draft", "2017-02-20", "posted", "")]
    # Then corrects its date in the file: an amendment (no second 'opened'), the file wins, the note stays.
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-02-24\n        done: 2017-02-21"))
    plan = " ".join(tracker("plan", env=env, cwd=tmp_path).stdout.split())
    assert "✎ amended hlpf/revised-draft Revised draft posted done Mon, 20 Feb 2017 → Tue, 21 Feb 2017" in plan
    assert "(the file's done: replaces the completion recorded by cli)" in plan
    assert "completed" not in plan
    tracker("sync", env=env, cwd=tmp_path)
    assert recorded(database_url) == [("revised-draft", "2017-02-21", "posted", "")]


def test_the_api_reopens_a_completion_as_the_cli_does(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    sync(engine, schedules)
    settings = Settings(admin_token="s3cret-admin-token", secret_key="s" * 40)
    auth = {"Authorization": "Bearer s3cret-admin-token"}
    url = "/api/milestones/hlpf/revised-draft"

    with serving(engine, 0, settings=settings, now=datetime(2017, 2, 21, 9, 0, tzinfo=UTC)) as (http, _):
        not_done = http.post(f"{url}/reopen", headers=auth)
        assert http.post(f"{url}/done", headers=auth, json={"at": "2017-02-20"}).status_code == 200
        anonymous = http.post(f"{url}/reopen", json={"note": "wrong file"})
        bad = http.post(f"{url}/reopen", headers=auth, json={"note": "wrong file", "why": "?"})
        reopened = http.post(f"{url}/reopen", headers=auth, json={"note": "wrong file"})
        schema = http.get("/openapi.json").json()["paths"]

    assert not_done.status_code == 409 and "no completion to reopen" in not_done.json()["detail"]
    assert anonymous.status_code == 401 and bad.status_code == 422
    assert reopened.status_code == 200, reopened.text
    kinds = [(c["kind"], c["milestone"]) for c in reopened.json()["changes"]]
    assert kinds[0] == ("reopened", "revised-draft") and ("rescheduled", "member-comments") in kinds
    assert "/api/milestones/{timeline}/{milestone}/reopen" in schema
    with transaction(engine) as session:
        event = session.exec(select(Event).where(Event.kind == "reopened")).one()
        assert event.detail is not None and (event.detail["who"], event.detail["note"]) == ("api", "wrong file")
        assert session.exec(select(CompletionRecord)).all() == []
