"""Hostile and careless input at the command line: data is never terminal markup, bad arguments exit 2."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.conftest import HLPF, PG_URL, WriteTimeline
from tests.test_cli import env, tracker
from tracker.store import open_store

__all__ = ["env"]  # the fixture, shared with test_cli

# A name as a red team wrote it: markup, an emoji code, an OSC 8 hyperlink, a screen clear, a bell.
HOSTILE_NAME = "[/oops] :warning: \x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\ \x1b[2J\x07 [bold]x"


def store_name(database_url: str, address: str, name: str) -> None:
    """Write *name* into the store as an earlier version or a hand edit could have: past every input check."""
    engine = open_store(database_url)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE subscribers SET name = :name WHERE email_key = :key"), {"name": name, "key": address}
        )
    engine.dispose()


def test_a_hostile_name_is_listed_as_text_not_as_markup_or_terminal_codes(
    env: dict[str, str], tmp_path: Path, database_url: str
) -> None:
    tracker("subscribers", "add", "amina@mission.example.org", "--confirmed", env=env, cwd=tmp_path)
    store_name(database_url, "amina@mission.example.org", HOSTILE_NAME)

    listed = tracker("subscribers", "list", env={**env, "FORCE_COLOR": "1"}, cwd=tmp_path)

    assert listed.returncode == 0, listed.stderr
    shown = listed.stdout
    assert "[/oops]" in shown and ":warning:" in shown and "[bold]x" in shown  # as typed: no tag, no emoji
    assert "⚠" not in shown
    assert "\x1b]8" not in shown and "\x1b[2J" not in shown and "\x07" not in shown  # nothing acts on the terminal
    assert "\\x1b]8;;" in "".join(shown.split())  # the codes are shown, escaped, for the secretariat to see


def test_a_hostile_title_stored_by_an_earlier_version_is_shown_as_text_by_upcoming(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, database_url: str
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)  # validate refuses such a title now: it can only be in the store
    engine = open_store(database_url)
    with engine.begin() as connection:
        retitle = text("UPDATE milestones SET title = :title WHERE key = 'revised-draft'")
        connection.execute(retitle, {"title": "[/red] \x1b[2J Revised draft \x1b]8;;https://evil.example\x1b\\x"})
    engine.dispose()

    shown = tracker("upcoming", "--now", "2017-02-01", env={**env, "FORCE_COLOR": "1"}, cwd=tmp_path)

    assert shown.returncode == 0, shown.stderr
    assert "[/red] \\x1b[2J Revised draft" in shown.stdout
    assert "\x1b[2J" not in shown.stdout and "\x1b]8" not in shown.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("upcoming", "--now", "0001-01-01"), "--now: '0001-01-01' is out of range: write a year from 1900"),
        (("upcoming", "--now", "9999-12-31T23:00+00:00"), "--now: '9999-12-31T23:00+00:00' is out of range"),
        (("upcoming", "--days", "99999999999"), "Invalid value for '--days'"),
        (("done", "hlpf/revised-draft", "--at", "0001-01-01"), "--at: '0001-01-01' is out of range"),
        (("serve", "--port", "70000"), "Invalid value for '--port'"),
        (("subscribers", "list", "--state", "bogus"), "--state: 'bogus' is not one of pending, confirmed"),
        (("subscribers", "import", "/dev/zero"), "/dev/zero: not a regular file"),
        (("deliveries", "--limit", "0"), "Invalid value for '--limit'"),
        (("done", "hlpf/revised-drat"), "no milestone 'revised-drat' in 'hlpf'"),
    ],
)
def test_every_bad_argument_gets_a_clear_message_and_exit_2(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, args: tuple[str, ...], message: str
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)

    result = tracker(*args, env=env, cwd=tmp_path)

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr + result.stdout


def write_csv(folder: Path, *lines: str) -> Path:
    path = folder / "members.csv"
    path.write_text("\n".join(("email,name", *lines)) + "\n", encoding="utf-8")
    return path


def test_an_unclosed_quote_is_reported_at_its_own_line_and_the_rows_after_it_are_imported(
    env: dict[str, str], tmp_path: Path
) -> None:
    write_csv(tmp_path, "a@mission.example.org,A", 'b@mission.example.org,"Bob', "c@mission.example.org,C")

    result = tracker("subscribers", "import", "members.csv", "--confirmed", env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert "members.csv:3: a quote opens a field that is not closed on this line" in result.stderr
    assert "2 added" in result.stdout and "1 rejected" in result.stdout


def test_a_huge_field_is_reported_at_its_line_without_stopping_the_import(env: dict[str, str], tmp_path: Path) -> None:
    write_csv(tmp_path, "a@mission.example.org,A", "b@mission.example.org," + "x" * 200_000, "c@mission.example.org,C")

    result = tracker("subscribers", "import", "members.csv", "--confirmed", env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert "members.csv:3: the line is 200,023 characters long; at most 4,096" in result.stderr
    assert "field larger than field limit" not in result.stderr
    assert "2 added" in result.stdout


@pytest.mark.skipif(bool(PG_URL), reason="the SQLite store's own files")
def test_the_sqlite_store_and_its_folder_are_private(tmp_path: Path) -> None:
    database = tmp_path / "var" / "tracker.db"
    engine = open_store(f"sqlite:///{database}")
    with engine.begin() as connection:  # a write, so that the -wal and -shm files exist while it is open
        connection.execute(text("CREATE TABLE probe (x INTEGER)"))
        files = [database, database.with_name("tracker.db-wal"), database.with_name("tracker.db-shm")]
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in files}
    engine.dispose()

    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700
    assert modes == {"tracker.db": 0o600, "tracker.db-wal": 0o600, "tracker.db-shm": 0o600}


@pytest.mark.skipif(bool(PG_URL), reason="the SQLite store's own files")
def test_a_store_left_world_readable_by_an_earlier_version_is_made_private(tmp_path: Path) -> None:
    database = tmp_path / "tracker.db"
    open_store(f"sqlite:///{database}").dispose()
    database.chmod(0o644)

    open_store(f"sqlite:///{database}").dispose()

    assert stat.S_IMODE(database.stat().st_mode) == 0o600
