"""Hostile and careless input at the command line: data is never terminal markup, bad arguments exit 2."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.support.cli import tracker
from tests.support.database import PG_URL
from tests.support.timelines import HLPF, WriteTimeline
from tracker.store.engine import open_store

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
        (("preview", "reminder", "--milestone", "hlpf/submission", "--lang", "xx"),
         "--lang: 'xx' is not one of ar, zh, en, fr, ru, es"),
        (("upcoming", "--audience", "nope"), "--audience: no audience 'nope' (known: membership, secretariat)"),
        (("feed", "--audience", "nope"), "no such feed /feeds/audiences/nope.ics"),
        (("deliveries", "--milestone", "a/b/c"), "--milestone: give it as TIMELINE/MILESTONE"),
        (("deliveries", "--milestone", "/b"), "--milestone: give it as TIMELINE/MILESTONE"),
        (("subscribers", "add", "x@example.org", "--audience", "nope"),
         "no audience 'nope' (known: membership, secretariat)"),
    ],
)  # fmt: skip
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


def test_publish_replaces_a_planted_symlink_instead_of_writing_through_it(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    site, decoy = tmp_path / "site", tmp_path / "decoy.txt"
    (site / "feeds").mkdir(parents=True)
    decoy.write_text("precious\n")
    (site / "index.html").symlink_to(decoy)
    (site / "feeds" / "all.ics").symlink_to(decoy)

    published = tracker("publish", "--out", str(site), env=env, cwd=tmp_path)

    assert published.returncode == 0, published.stderr
    assert decoy.read_text() == "precious\n"
    for written in (site / "index.html", site / "feeds" / "all.ics"):
        assert not written.is_symlink() and written.is_file()
    assert (site / "feeds" / "all.ics").read_bytes().startswith(b"BEGIN:VCALENDAR")
    assert stat.S_IMODE((site / "index.html").stat().st_mode) == 0o644  # a web server must read it


def test_publish_refuses_a_symlinked_folder_inside_the_site(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    site.mkdir()
    elsewhere.mkdir()
    (site / "feeds").symlink_to(elsewhere)

    published = tracker("publish", "--out", str(site), env=env, cwd=tmp_path)

    assert published.returncode == 1, published.stdout
    assert f"{site / 'feeds'} is a symbolic link" in " ".join(published.stderr.split())
    assert list(elsewhere.iterdir()) == []
    assert "Traceback" not in published.stderr


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("/dev/null", "--out: /dev/null is not a folder"),
        ("link", "is a symbolic link; give the real folder"),
        ("file.txt", "file.txt is not a folder"),
    ],
)
def test_publish_refuses_an_out_that_is_not_a_real_folder(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, out: str, message: str
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file.txt").write_text("keep\n")

    published = tracker("publish", "--out", out, env=env, cwd=tmp_path)

    assert published.returncode == 2, (published.stdout, published.stderr)
    assert message in " ".join(published.stderr.split())
    assert "Traceback" not in published.stderr and "Error" not in published.stderr
    assert list((tmp_path / "real").iterdir()) == [] and (tmp_path / "file.txt").read_text() == "keep\n"


def test_a_csv_row_with_an_unknown_audience_is_rejected_at_its_line_even_where_no_timeline_names_one(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("plain", "id: plain\ntitle: Plain\nmilestones:\n  - {id: a, title: A, due: 2030-01-01}\n")
    tracker("sync", env=env, cwd=tmp_path)
    (tmp_path / "members.csv").write_text(
        "email,name,language,audiences\na@mission.example.org,A,en,nope;membership\nb@mission.example.org,B,en,\n"
    )

    result = tracker("subscribers", "import", "members.csv", "--confirmed", env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert "members.csv:2: no audience 'nope' (known: membership)" in " ".join(result.stderr.split())
    assert "1 added" in result.stdout and "1 rejected" in result.stdout  # the default audience is always known


def test_audiences_are_free_before_any_timeline_exists(env: dict[str, str], tmp_path: Path) -> None:
    result = tracker("subscribers", "add", "x@example.org", "--audience", "heads", "--confirmed", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr


def test_a_feed_that_cannot_be_written_is_a_clear_error(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)

    result = tracker("feed", "-o", "/nonexistent/x.ics", env=env, cwd=tmp_path)

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "error: cannot write /nonexistent/x.ics:" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr and "FileNotFoundError" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TRACKER_SMTP_URL", "garbage", "smtp_url: Value error, not an smtp:// or smtps:// URL with a host"),
        ("TRACKER_SMTP_URL", "smtp://relay.example.org:99999", "smtp_url: Value error, Port out of range"),
        ("TRACKER_HORIZON_DAYS", "99999999", "horizon_days: Input should be less than or equal to 366"),
    ],
)
def test_bad_delivery_settings_are_bad_settings_not_a_crash(
    env: dict[str, str], tmp_path: Path, name: str, value: str, message: str
) -> None:
    result = tracker("send-due", env={**env, name: value}, cwd=tmp_path)

    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "bad settings" in result.stderr and message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_json_output_reads_back_exactly_and_carries_nothing_a_terminal_would_act_on(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, database_url: str
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    title = "Draft \x1b[2J \x85 next\u2028line \u202eevil \x9b31m مسودة 草案"
    engine = open_store(database_url)
    with engine.begin() as connection:
        retitle = text("UPDATE milestones SET title = :title WHERE key = 'revised-draft'")
        connection.execute(retitle, {"title": title})
    engine.dispose()

    shown = tracker("upcoming", "--now", "2017-02-01", "--json", env=env, cwd=tmp_path)

    assert shown.returncode == 0, shown.stderr
    assert [row["title"] for row in json.loads(shown.stdout) if row["milestone"] == "revised-draft"] == [title]
    for raw in ("\x1b", "\x85", "\u2028", "\u202e", "\x9b"):
        assert raw not in shown.stdout
    assert "مسودة 草案" in shown.stdout  # other scripts stay readable
