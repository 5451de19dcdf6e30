"""Completions are corrected, never silently replaced: `tracker done` twice refuses and shows the first;
`--amend` changes what it is given and keeps the rest; an amendment opens nothing a second time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from tests.support.cli import tracker
from tests.support.timelines import HLPF, WriteTimeline
from tracker.store.engine import open_store, transaction
from tracker.store.models import CompletionRecord


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
    assert f"hlpf/revised-draft is already done: Mon 20 Feb 2017 (note: posted; link: {link})" in said
    assert "add --amend to change its time, note or link" in said
    assert recorded(database_url) == [("revised-draft", "2017-02-20", "posted", link)]
    assert dates(env, tmp_path)["member-comments"] == "2017-03-06"  # still 14 days after the first


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


def test_an_amendment_does_not_announce_the_window_again(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    # Real time: the draft is posted today, so the comment window it opens is still ahead.
    today = datetime.now(UTC).date()
    outbox = tmp_path / "outbox"
    env = {**env, "TRACKER_OUTBOX_DIR": str(outbox), "TRACKER_SECRET_KEY": "s" * 40}
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", f"due: {today + timedelta(days=3)}"))
    tracker("sync", env=env, cwd=tmp_path)
    member = ("amina@mission.example.org", "--audience", "membership", "--confirmed")
    assert tracker("subscribers", "add", *member, env=env, cwd=tmp_path).returncode == 0

    def announced() -> int:
        assert tracker("send-due", env=env, cwd=tmp_path).returncode == 0
        return sum("Now open" in path.read_text() for path in outbox.glob("*.eml"))

    assert announced() == 0  # the first pass takes the history as it is: nothing is announced yet
    tracker("done", "hlpf/revised-draft", "--at", today.isoformat(), env=env, cwd=tmp_path)
    assert announced() == 1
    amended = tracker("done", "hlpf/revised-draft", "--amend", "--note", "posted as C17/INF/3", env=env, cwd=tmp_path)
    assert amended.returncode == 0, amended.stderr
    assert announced() == 1
