"""Every surface shows the same state of a step: the CLI, the pages, the API and the widget (issue 15, point 1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from tests.support.cli import tracker
from tests.support.factories import DRAFTING
from tests.support.timelines import WriteTimeline
from tests.support.web import serving, sync

NOT_POSTED = DRAFTING.replace("    done: 2017-02-23\n", "")  # the revised draft (due 24 Feb) never posted
AFTER_DUE = datetime(2017, 2, 27, 9, 0, tzinfo=UTC)


def test_upcoming_lists_the_late_step_first_in_its_own_section_and_late_lists_only_it(
    env: dict[str, str], tmp_path: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf-2017", NOT_POSTED)
    assert tracker("sync", env=env, cwd=tmp_path).returncode == 0

    ahead = ("upcoming", "--now", "2017-02-27", "--days", "90")
    table = tracker(*ahead, env=env, cwd=tmp_path).stdout
    rows = json.loads(tracker(*ahead, "--json", env=env, cwd=tmp_path).stdout)
    late = json.loads(tracker("late", "--now", "2017-02-27", "--json", env=env, cwd=tmp_path).stdout)

    heading = table.index("Late: 1 step(s) past due and not done")
    assert heading < table.index("Revised draft") < table.index("Submission")
    assert [(row["milestone"], row["state"]) for row in rows] == [
        ("revised-draft", "late"),
        ("member-comments", "waiting"),  # its window opens after the draft: not announced as open
        ("submission", "upcoming"),
    ]
    assert [(row["milestone"], row["state"]) for row in late] == [("revised-draft", "late")]
    # Two months on, the submission's date has passed too: the draft is missed, the submission late.
    later = tracker("late", "--now", "2017-05-01", env=env, cwd=tmp_path).stdout
    assert "Revised draft" not in later and "Submission" in later
    assert "Nothing is late" in tracker("late", "--now", "2017-07-01", env=env, cwd=tmp_path).stdout


def test_the_overview_and_the_timeline_page_word_a_step_alike(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf-2017", NOT_POSTED)
    sync(engine, schedules)

    with serving(engine, 0, now=AFTER_DUE) as (http, _):
        overview = http.get("/?lang=fr").text
        page = http.get("/timelines/hlpf-2017?lang=fr").text
        upcoming = http.get("/api/upcoming").json()
        detail = http.get("/api/timelines/hlpf-2017").json()
        widget = http.get("/embed/upcoming?lang=fr").text

    late = overview[overview.index('id="late"') : overview.index('id="soon"')]
    assert "En retard : échéance passée, non accompli" in late and "Revised draft" in late
    assert '<span class="state state-late">en retard</span>' in page
    assert [(item["milestone"], item["state"]) for item in upcoming][:1] == [("revised-draft", "late")]
    states = {m["key"]: m["state"] for m in detail["milestones"]}
    assert states == {"revised-draft": "late", "member-comments": "waiting", "submission": "upcoming",
                      "side-event": "cancelled"}  # fmt: skip
    assert widget.index("Revised draft") < widget.index("Member comments") and "(en retard)" in widget


def test_a_done_step_shows_its_done_date_note_and_link_on_its_page(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf-2017", DRAFTING)  # the file says: done 23 February
    sync(engine, schedules)

    with serving(engine, 0, now=AFTER_DUE) as (http, _):
        page = http.get("/timelines/hlpf-2017").text
        french = http.get("/timelines/hlpf-2017?lang=fr").text

    line = page[page.index("<bdi>Revised draft</bdi>") :]
    line = line[: line.index("</li>")]
    assert '<span class="state state-done">done</span>' in line and "Done on Thursday, 23 February 2017" in line
    assert "Terminé le jeudi 23 février 2017" in french
    # The members' window opened when the draft was posted: open, on both pages and the API alike.
    comments = page[page.index("<bdi>Member comments</bdi>") :]
    assert '<span class="state state-open">open</span>' in comments[: comments.index("</li>")]
