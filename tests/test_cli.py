"""The `tracker` command end to end, through the installed entry point."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import TRACKER, tracker
from tests.support.timelines import HLPF, MEETING, WriteTimeline

REPO = Path(__file__).resolve().parent.parent


def test_validate_reports_every_problem_as_file_line_message_and_exits_1(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF.replace("reminders: [14d, 7d, 1d]", "remiders: [14d]"))
    bad = write_timeline("cwg-32", MEETING.replace("ends: 2018-01-25", "ends: 2018-02-30"))

    result = tracker("validate", env=env, cwd=tmp_path)

    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert f"{bad}:9: ends: 2018-02-30 is not a date: day is out of range for month" in lines
    assert any(
        line.endswith("hlpf.yaml:6: unknown key 'remiders' in timeline (did you mean 'reminders'?)") for line in lines
    )
    assert "✗ 2 problems in 2 files" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_validate_accepts_the_repository_schedules(env: dict[str, str], tmp_path: Path) -> None:
    result = tracker("validate", str(REPO / "schedules"), env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "all valid" in result.stdout


def test_plan_then_sync_then_a_no_op_sync(env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline) -> None:
    write_timeline("hlpf", HLPF)

    planned = tracker("plan", env=env, cwd=tmp_path)
    synced = tracker("sync", env=env, cwd=tmp_path)
    again = tracker("sync", env=env, cwd=tmp_path)

    assert planned.returncode == 0, planned.stderr
    assert "+ added       hlpf/revised-draft  Revised draft posted  Fri, 24 Feb 2017" in planned.stdout
    assert "4 added (dry run: nothing applied)" in planned.stdout
    assert "4 added applied" in synced.stdout
    assert "no changes" in again.stdout


def test_plan_shows_a_moved_date_old_to_new_with_its_cascade(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    write_timeline("hlpf", HLPF.replace("2017-02-24", "2017-03-03"))

    result = tracker("plan", "--json", env=env, cwd=tmp_path)

    changes = json.loads(result.stdout)["changes"]
    moved = {c["milestone"]: (c["old"]["local"], c["new"]["local"]) for c in changes}
    assert moved["revised-draft"] == ("2017-02-24T23:59:59+01:00", "2017-03-03T23:59:59+01:00")
    assert set(moved) == {"revised-draft", "member-comments", "final-draft"}


def test_plan_shows_a_translation_edit_as_a_title_update(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    english = "        title: Final text submitted to the UN\n"
    translated = (
        "        title:\n          en: Final text submitted to the UN\n          fr: Texte final soumis à l’ONU\n"
    )
    write_timeline("hlpf", HLPF.replace(english, translated))
    tracker("sync", env=env, cwd=tmp_path)
    write_timeline("hlpf", HLPF.replace(english, translated.replace("soumis", "transmis")))

    result = tracker("plan", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "• updated     hlpf/submission  Final text submitted to the UN  (titles)" in result.stdout
    assert "1 updated (dry run: nothing applied)" in result.stdout


def test_plan_shows_a_changed_overdue_list_as_an_update(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    chased = HLPF.replace(
        "        reminders: [7d, 2d, 4h]\n", "        reminders: [7d, 2d, 4h]\n        overdue: [1d]\n"
    )
    write_timeline("hlpf", chased)
    tracker("sync", env=env, cwd=tmp_path)
    write_timeline("hlpf", chased.replace("overdue: [1d]", "overdue: [1d, 3d, 7d]"))

    result = tracker("plan", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "• updated     hlpf/submission  Final text submitted to the UN  (overdue)" in result.stdout
    assert "1 updated (dry run: nothing applied)" in result.stdout


def test_a_failed_sync_says_nothing_changed(env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline) -> None:
    write_timeline("cwg-32", MEETING.replace("due: meeting - 30d", "due: documents - 30d"))

    result = tracker("sync", env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert "cwg-32.yaml:13: due: 'documents' refers to itself" in result.stderr
    assert "Nothing was changed in the store." in result.stderr


def test_upcoming_on_the_seed_shows_the_hlpf_chain(env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "TRACKER_SCHEDULES": str(REPO / "schedules")}
    assert tracker("sync", env=env, cwd=tmp_path).returncode == 0

    table = tracker("upcoming", "--now", "2017-02-01", "--days", "120", env=env, cwd=tmp_path)
    data = json.loads(
        tracker("upcoming", "--now", "2017-02-01", "--days", "120", "--json", env=env, cwd=tmp_path).stdout
    )

    assert table.returncode == 0, table.stderr
    hlpf = [(row["milestone"], row["date"]) for row in data if row["timeline"] == "hlpf-2017-contribution"]
    assert hlpf == [
        ("revised-draft", "2017-02-24"),
        ("member-comments", "2017-03-10"),
        ("final-draft", "2017-03-24"),
        ("final-comments", "2017-04-07"),
        ("submission", "2017-04-28"),
    ]
    submission = next(row for row in data if row["milestone"] == "submission")
    assert submission["due"] == {"local": "2017-04-28T12:00:00+02:00", "utc": "2017-04-28T10:00:00+00:00"}
    assert "Fri, 28 Apr 2017, 12:00 CEST" in table.stdout


def test_upcoming_with_nothing_due_names_the_day_in_the_settings_zone(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    env = {**env, "TRACKER_TIMEZONE": "Europe/Zurich"}
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)

    three = tracker("upcoming", "--now", "2016-12-01", "--days", "3", env=env, cwd=tmp_path)
    one = tracker("upcoming", "--now", "2016-12-01", "--days", "1", env=env, cwd=tmp_path)

    assert three.returncode == 0, three.stderr
    assert three.stdout.strip() == "Nothing due in the 3 days from 2016-12-01."  # midnight in Geneva, not UTC's 30th
    assert one.stdout.strip() == "Nothing due in the 1 day from 2016-12-01."


def test_upcoming_filters_by_audience_and_timeline(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    write_timeline("cwg-32", MEETING)
    tracker("sync", env=env, cwd=tmp_path)

    def keys(*args: str) -> list[str]:
        result = tracker("upcoming", "--now", "2017-02-01", "--days", "400", "--json", *args, env=env, cwd=tmp_path)
        return [row["milestone"] for row in json.loads(result.stdout)]

    assert keys("--audience", "membership") == ["member-comments", "meeting"]
    assert keys("--timeline", "cwg-32") == ["documents", "meeting"]
    unknown = tracker("upcoming", "--timeline", "nope", env=env, cwd=tmp_path)
    assert unknown.returncode == 2 and "no timeline 'nope'" in unknown.stderr


def test_done_records_the_completion_and_moves_dependents(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)

    result = tracker("done", "hlpf/revised-draft", "--at", "2017-02-20", "--note", "posted", env=env, cwd=tmp_path)
    rows = json.loads(
        tracker("upcoming", "--now", "2017-02-01", "--days", "90", "--json", env=env, cwd=tmp_path).stdout
    )

    assert result.returncode == 0, result.stderr
    assert "✓ completed   hlpf/revised-draft" in result.stdout
    assert "~ rescheduled hlpf/member-comments" in result.stdout
    dates = {row["milestone"]: row["date"] for row in rows}
    assert dates["member-comments"] == "2017-03-06"
    assert next(row for row in rows if row["milestone"] == "revised-draft")["done_at"] is not None


def test_done_on_an_unknown_milestone_suggests_the_near_one(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)

    result = tracker("done", "hlpf/revised-drat", env=env, cwd=tmp_path)

    assert result.returncode == 2
    assert "no milestone 'revised-drat' in 'hlpf' (did you mean 'revised-draft'?)" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("upcoming", "--now", "yesterday"), "--now: bad date 'yesterday'"),
        (("done", "hlpf"), "write TIMELINE/MILESTONE"),
        (("validate", "missing.yaml"), "missing.yaml:1: no such file or folder"),
    ],
)
def test_bad_arguments_get_a_clear_error_without_a_traceback(
    env: dict[str, str], tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = tracker(*args, env=env, cwd=tmp_path)

    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_settings_are_named(env: dict[str, str], tmp_path: Path) -> None:
    result = tracker("upcoming", env={**env, "TRACKER_TIMEZONE": "Europe/Geneva"}, cwd=tmp_path)

    assert result.returncode == 2
    assert "timezone" in result.stderr and "unknown time zone 'Europe/Geneva'" in result.stderr


def test_an_unreachable_database_is_reported_plainly(env: dict[str, str], tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"

    result = tracker("upcoming", env={**env, "TRACKER_DATABASE_URL": url}, cwd=tmp_path)

    assert result.returncode == 2
    assert "cannot open the store" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_default_store_is_a_sqlite_file_under_var(tmp_path: Path) -> None:
    shutil.copytree(REPO / "schedules", tmp_path / "schedules")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}

    result = tracker("sync", env=clean, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "tracker.db").is_file()


def test_feed_and_publish_write_the_same_bytes_for_every_public_feed(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    write_timeline("cwg-32", MEETING)
    tracker("sync", env=env, cwd=tmp_path)

    published = tracker("publish", "--out", str(tmp_path / "site"), env=env, cwd=tmp_path)
    one = tracker("feed", "--timeline", "hlpf", "-o", str(tmp_path / "hlpf.ics"), env=env, cwd=tmp_path)
    to_stdout = subprocess.run([TRACKER, "feed", "--audience", "membership"], env=env, cwd=tmp_path,
                               capture_output=True, check=False, timeout=120)  # fmt: skip

    assert published.returncode == 0, published.stderr
    files = sorted(str(p.relative_to(tmp_path / "site")) for p in (tmp_path / "site").rglob("*.ics"))
    assert files == [
        "feeds/all.ics",
        "feeds/audiences/membership.ics",
        "feeds/audiences/secretariat.ics",
        "feeds/cwg-32.ics",
        "feeds/hlpf.ics",
    ]
    assert one.returncode == 0
    assert (tmp_path / "hlpf.ics").read_bytes() == (tmp_path / "site/feeds/hlpf.ics").read_bytes()
    assert to_stdout.stdout == (tmp_path / "site/feeds/audiences/membership.ics").read_bytes()
    assert to_stdout.stdout.startswith(b"BEGIN:VCALENDAR\r\n")


def test_publish_writes_the_public_pages_in_six_languages_linking_to_each_other_as_files(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    write_timeline("cwg-32", MEETING)
    tracker("sync", env=env, cwd=tmp_path)
    site = tmp_path / "site"

    published = tracker("publish", "--out", str(site), env={**env, "TRACKER_BASE_URL": "https://tracker.example.org"},
                        cwd=tmp_path)  # fmt: skip

    assert published.returncode == 0, published.stderr
    assert "wrote 5 feeds and 18 pages" in published.stdout
    pages = sorted(str(p.relative_to(site)) for p in site.rglob("*.html"))
    assert pages[:3] == ["ar/index.html", "ar/timelines/cwg-32.html", "ar/timelines/hlpf.html"]
    assert len(pages) == 18 and "index.html" in pages and "timelines/hlpf.html" in pages
    arabic = (site / "ar/timelines/hlpf.html").read_text()
    assert '<html lang="ar" dir="rtl">' in arabic and "<svg" in arabic
    # Every relative link of every page names a file that was written.
    for page in pages:
        text = (site / page).read_text()
        for href in re.findall(r'href="(?!https?:|webcal:|#)([^"]+)"', text):
            assert (site / page).parent.joinpath(href).resolve().is_file(), (page, href)
    # What needs the server goes to it, in the page's language.
    assert 'href="https://tracker.example.org/subscribe?lang=ar"' in (site / "ar/index.html").read_text()


def test_feed_for_an_unknown_timeline_lists_the_real_ones(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)

    result = tracker("feed", "--timeline", "hlfp", env=env, cwd=tmp_path)

    assert result.returncode == 2
    assert "no such feed /feeds/hlfp.ics" in result.stderr and "/feeds/hlpf.ics" in result.stderr


def test_preview_prints_the_message_as_it_would_be_sent(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    tracker("subscribers", "add", "amina@mission.example.org", "--language", "fr", "--timezone", "Africa/Dakar",
            "--confirmed", env=env, cwd=tmp_path)  # fmt: skip
    env = {**env, "TRACKER_LOCALES": str(REPO / "locale")}

    result = subprocess.run(
        [TRACKER, "preview", "reminder", "--milestone", "hlpf/member-comments", "--to", "amina@mission.example.org"],
        env=env, cwd=tmp_path, capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    html = tracker(
        "preview", "changed", "--milestone", "hlpf/final-draft", "--lang", "ar", "--html", env=env, cwd=tmp_path
    )
    unknown = tracker("preview", "reminder", "--milestone", "hlpf/member-coments", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    message = email.message_from_bytes(result.stdout, policy=email.policy.default)
    assert message["To"] == "amina@mission.example.org"
    assert message["Content-Language"] == "fr"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [part.get_content_type() for part in message.walk()][-1] == "text/calendar"
    assert "heure locale" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert html.returncode == 0 and '<html lang="ar" dir="rtl">' in html.stdout
    assert unknown.returncode == 2 and "did you mean 'hlpf/member-comments'?" in unknown.stderr


@pytest.mark.parametrize("to", [(), ("--to", "amina@mission.example.org")], ids=["sample", "confirmed"])
def test_preview_confirm_shows_the_confirmation_link_for_a_sample_or_a_subscriber(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, to: tuple[str, ...]
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    tracker("subscribers", "add", "amina@mission.example.org", "--confirmed", env=env, cwd=tmp_path)

    result = subprocess.run([TRACKER, "preview", "confirm", *to], env=env, cwd=tmp_path, capture_output=True,
                            check=False, timeout=120)  # fmt: skip

    assert result.returncode == 0, result.stderr
    message = email.message_from_bytes(result.stdout, policy=email.policy.default)
    assert message["Subject"] == "Please confirm your subscription to deadline reminders"
    assert "/confirm/" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_publish_removes_what_it_wrote_for_a_removed_timeline_and_nothing_else(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline, schedules: Path
) -> None:
    write_timeline("hlpf", HLPF)
    write_timeline("cwg-32", MEETING.replace("owner: secretariat", "owner: heads"))
    tracker("sync", env=env, cwd=tmp_path)
    site = tmp_path / "site"
    first = tracker("publish", "--out", str(site), env=env, cwd=tmp_path)
    (site / "feeds" / "mine.ics").write_text("not Tracker's\n")  # the secretariat's own files stay
    (site / "timelines" / "notes.html").write_text("<p>notes</p>\n")
    (schedules / "cwg-32.yaml").unlink()
    tracker("sync", env=env, cwd=tmp_path)

    second = tracker("publish", "--out", str(site), env=env, cwd=tmp_path)

    assert first.returncode == 0 and second.returncode == 0, second.stderr
    gone = ["feeds/cwg-32.ics", "timelines/cwg-32.html", "ar/timelines/cwg-32.html", "zh/timelines/cwg-32.html"]
    assert [path for path in gone if (site / path).exists()] == []
    assert (site / "feeds/hlpf.ics").is_file() and (site / "zh/timelines/hlpf.html").is_file()
    assert (site / "feeds/mine.ics").read_text() == "not Tracker's\n"
    assert (site / "timelines/notes.html").is_file()
    assert "removed 7 files" in " ".join(second.stdout.split())  # the timeline's feed, its page in 6 languages
    # The site says what the server says: no timeline feed, and the audience feed keeps the items, cancelled.
    assert tracker("feed", "--timeline", "cwg-32", env=env, cwd=tmp_path).returncode == 2
    served = subprocess.run([TRACKER, "feed", "--audience", "heads"], env=env, cwd=tmp_path, capture_output=True,
                            check=False, timeout=120)  # fmt: skip
    assert (site / "feeds/audiences/heads.ics").read_bytes() == served.stdout
    assert b"STATUS:CANCELLED" in served.stdout and b"STATUS:CONFIRMED" not in served.stdout


def test_publish_never_removes_a_path_a_tampered_manifest_names_outside_the_site(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    tracker("sync", env=env, cwd=tmp_path)
    site, precious = tmp_path / "site", tmp_path / "precious.txt"
    tracker("publish", "--out", str(site), env=env, cwd=tmp_path)
    precious.write_text("keep\n")
    manifest = site / ".tracker-publish"
    manifest.write_text(manifest.read_text() + f"../precious.txt\n{precious}\nfeeds/../../precious.txt\n")

    again = tracker("publish", "--out", str(site), env=env, cwd=tmp_path)

    assert again.returncode == 0, again.stderr
    assert precious.read_text() == "keep\n"
    assert "../" not in manifest.read_text() and str(precious) not in manifest.read_text()
