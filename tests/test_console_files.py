"""The console's timeline files over HTTP: what the schedules folder holds and how it compares with the store,
its problems as `tracker validate` prints them, and a dry run of an uploaded file that applies nothing."""

from __future__ import annotations

import hashlib
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func
from sqlmodel import select

from tests.support.console import ConsoleSite, console_site, csrf_of
from tests.support.delivery import mark_done
from tests.support.smtp_server import SMTPTestServer
from tests.support.timelines import HLPF, MEETING, NOW, WriteTimeline
from tests.support.web import subscribe
from tracker.store.engine import transaction
from tracker.store.models import Event, Milestone
from tracker.timelines.files import _load_text_once
from tracker.timelines.loaded import FolderCache, FolderReport, Reading, read_folder
from tracker.timelines.pipeline import sync_folder

SECRETARY = "salma@secretariat.example.org"
VIEWER = "victor@secretariat.example.org"
REMINDERS = ["14d", "7d", "1d"]


@pytest.fixture
def site(engine: Engine, smtp: SMTPTestServer, schedules: Path, write_timeline: WriteTimeline) -> Iterator[ConsoleSite]:
    write_timeline("hlpf", HLPF)
    write_timeline("meeting", MEETING)
    assert sync_folder(engine, schedules, zone="Europe/Zurich", reminders=REMINDERS, now=NOW).ok
    for name in ("amina", "li"):
        subscribe(engine, f"{name}@mission.example.org", audiences="membership;secretariat")
    with console_site(engine, smtp, NOW, schedules=schedules, reminders=",".join(REMINDERS)) as found:
        yield found


def text_of(answer: httpx.Response) -> str:
    return " ".join(answer.text.split())


def row_of(page: str, name: str) -> str:
    """The table row of the file *name* on the files page."""
    start = page.index(f">{name}</code>")
    return page[start : page.index("</tr>", start)]


def upload(browser: httpx.Client, name: str, data: bytes) -> httpx.Response:
    form = browser.get("/console/files")
    return browser.post("/console/files/dry-run", data={"csrf": csrf_of(form)}, files={"file": (name, data)})


def yaml_text(body: str) -> bytes:
    return textwrap.dedent(body).lstrip().encode()


def folder_state(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def store_state(engine: Engine) -> tuple[object, ...]:
    with transaction(engine) as session:
        events = session.exec(select(func.count()).select_from(Event)).one()
        rows = session.exec(select(Milestone.timeline_id, Milestone.key, Milestone.due_at, Milestone.revision)).all()
    return events, sorted((str(row[0]), str(row[1]), str(row[2]), row[3]) for row in rows)


def test_it_lists_each_file_with_its_timelines_and_the_last_sync(site: ConsoleSite) -> None:
    browser = site.sign_in(VIEWER, "viewer")

    answer = browser.get("/console/files")

    page = text_of(answer)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert "Last sync: Wednesday, 1 February 2017 10:00 (Europe/Zurich), 2 timelines and 6 milestones." in page
    assert "ITU Council contribution to HLPF-17" in row_of(page, "hlpf.yaml")
    assert 'href="/console/timelines/hlpf"' in row_of(page, "hlpf.yaml")
    assert "in the store as it is" in row_of(page, "hlpf.yaml")
    assert "32nd meeting" in row_of(page, "meeting.yaml") and "in the store as it is" in row_of(page, "meeting.yaml")
    assert "None: every file is valid." in page
    assert 'href="/console/files"' in text_of(browser.get("/console/")), "the console's navigation links the page"


def test_a_file_changed_new_or_gone_since_the_last_sync_is_marked(
    site: ConsoleSite, schedules: Path, write_timeline: WriteTimeline
) -> None:
    browser = site.sign_in(VIEWER, "viewer")
    assert "in the store as it is" in row_of(text_of(browser.get("/console/files")), "hlpf.yaml")

    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-02-28"))
    write_timeline("wsis", MEETING.replace("id: cwg-32", "id: cwg-33").replace("32nd", "33rd"))
    (schedules / "meeting.yaml").unlink()
    page = text_of(browser.get("/console/files"))

    assert "changed since the last sync" in row_of(page, "hlpf.yaml")
    assert "a sync would make 3 changes" in row_of(page, "hlpf.yaml")  # the draft and the two dates counted from it
    assert "not synced yet" in row_of(page, "wsis.yaml") and "33rd meeting" in row_of(page, "wsis.yaml")
    gone = page[page.index('id="gone"') :]
    assert "32nd meeting" in gone and "cwg-32" in gone and "meeting.yaml" in gone


def test_a_problem_is_shown_as_file_line_message(site: ConsoleSite, write_timeline: WriteTimeline) -> None:
    browser = site.sign_in(VIEWER, "viewer")
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-02-31"))

    page = text_of(browser.get("/console/files"))

    problems = page[page.index('id="problem-list"') :]
    assert "<code>hlpf.yaml:11: " in problems and "2017-02-31" in problems
    assert "has errors: no sync applies until they are fixed" in row_of(page, "hlpf.yaml")
    assert "cannot be compared while another file has errors" in row_of(page, "meeting.yaml")
    assert str(site.engine.url) not in page and "/schedules/" not in page, "the server's paths stay on the server"


def test_a_viewer_sees_no_upload_form_and_cannot_upload(site: ConsoleSite) -> None:
    browser = site.sign_in(VIEWER, "viewer")

    page = browser.get("/console/files")
    refused = browser.post("/console/files/dry-run", data={"csrf": csrf_of(page)},
                           files={"file": ("hlpf.yaml", b"id: x")})  # fmt: skip

    assert "/console/files/dry-run" not in page.text
    assert refused.status_code == 403


def test_an_upload_shows_what_validate_and_plan_say_and_applies_nothing(site: ConsoleSite, schedules: Path) -> None:
    browser = site.sign_in(SECRETARY, "secretary")
    before = (folder_state(schedules), store_state(site.engine))
    moved = yaml_text(HLPF.replace("due: 2017-02-24", "due: 2017-02-28"))

    answer = upload(browser, "hlpf.yaml", moved)

    page = text_of(answer)
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert "Nothing is applied: the schedules folder and the store are unchanged." in page
    assert "The file is valid." in page
    plan = page[page.index('id="plan"') :]
    assert "hlpf/revised-draft</bdi> <strong><bdi>Revised draft posted</bdi></strong> — moves" in plan
    assert "Friday, 24 February 2017</bdi> → <bdi>Tuesday, 28 February 2017" in plan
    assert "listed in the “new date” message of 2 subscribers" in plan
    assert "2 subscribers get one “new date” message listing 2 changes" in plan
    assert (folder_state(schedules), store_state(site.engine)) == before


def test_an_upload_with_problems_names_them_by_the_uploaded_files_name(site: ConsoleSite, schedules: Path) -> None:
    browser = site.sign_in(SECRETARY, "secretary")
    before = (folder_state(schedules), store_state(site.engine))
    broken = yaml_text(HLPF.replace("id: hlpf", "id: hlpf-18").replace("due: 2017-02-24", "due: revised-draft + 1d"))

    answer = upload(browser, "new<img src=x>&.yaml", broken)

    page = text_of(answer)
    problems = page[page.index('id="problems"') : page.index('id="plan"')]
    assert "<code>new_img src_x__.yaml:11: due: &#39;revised-draft&#39; refers to itself</code>" in problems
    assert "<img" not in page
    assert "No plan: a sync would apply nothing until the errors are fixed." in page
    assert (folder_state(schedules), store_state(site.engine)) == before


def test_a_new_file_is_planned_as_added_alongside_the_folder(site: ConsoleSite, schedules: Path) -> None:
    browser = site.sign_in(SECRETARY, "secretary")

    page = text_of(upload(browser, "cwg-33.yaml", yaml_text(MEETING.replace("id: cwg-32", "id: cwg-33"))))

    plan = page[page.index('id="plan"') :]
    assert "cwg-33/meeting</bdi> <strong><bdi>CWG-WSIS-32, Geneva</bdi></strong> — added" in plan
    assert "With this file, the folder holds 3 timelines and 8 milestones." in plan
    assert "cwg-32/" not in plan, "the other files are in the store as they are"
    assert not (schedules / "cwg-33.yaml").exists()


def test_uploaded_files_are_not_kept_in_the_web_process(site: ConsoleSite) -> None:
    browser = site.sign_in(SECRETARY, "secretary")
    assert upload(browser, "cwg-40.yaml", yaml_text(MEETING.replace("id: cwg-32", "id: cwg-40"))).status_code == 200
    before = _load_text_once.cache_info().currsize  # the folder's files, read by that first dry run

    for number in range(41, 46):  # each upload a distinct text, up to 1 MB: none may stay in memory
        answer = upload(browser, f"cwg-{number}.yaml", yaml_text(MEETING.replace("id: cwg-32", f"id: cwg-{number}")))
        assert answer.status_code == 200 and f"cwg-{number}/meeting" in answer.text

    assert _load_text_once.cache_info().currsize == before


# Nine lists of nine, each naming the one before: 9**9 items if anything expanded the aliases.
BILLION_LAUGHS = b"".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n".encode() for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
HOSTILE = {
    "not UTF-8": ("latin.yaml", "id: caf\xe9\ntitle: x\n".encode("latin-1"), "latin.yaml:1: cannot read file"),
    "too big": ("big.yaml", b"# " + b"x" * 1_500_000, "big.yaml:1: the file has more than 1,000,000 bytes"),
    "aliases": (
        "bomb.yaml",
        b"a: &a [x, x, x, x, x, x, x, x, x]\n"
        + b"".join(
            f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n".encode() for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + b"id: bomb\ntitle: *i\n",
        "bomb.yaml:9: &#39;title&#39; must be text",  # the line of the list the alias names
    ),
    "deep nesting": (
        "deep.yaml",
        b"id: deep\ntitle: " + b"[" * 50_000 + b"]" * 50_000 + b"\n",
        "deep.yaml:2: lists and mappings nest more than 100 levels deep",
    ),
    "10,000 milestones": (
        "many.yaml",
        b"id: many\ntitle: Many\nmilestones:\n"
        + b"".join(f"  - {{id: m{n}, title: M{n}, due: 2030-01-01}}\n".encode() for n in range(10_000)),
        "many.yaml:4: 10000 milestones; split the file",
    ),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_upload_gets_a_bounded_answer(site: ConsoleSite, schedules: Path, kind: str) -> None:
    browser = site.sign_in(SECRETARY, "secretary")
    name, data, said = HOSTILE[kind]
    before = (folder_state(schedules), store_state(site.engine))

    started = time.perf_counter()
    answer = upload(browser, name, data)
    took = time.perf_counter() - started

    assert answer.status_code == 200, answer.text[:500]
    problems = answer.text[answer.text.index('id="problems"') :]
    assert f"<code>{said}" in problems, problems[:1000]
    assert len(answer.content) < 200_000 and took < 10
    assert (folder_state(schedules), store_state(site.engine)) == before


def test_an_upload_past_twice_the_limit_is_refused_before_it_is_read(site: ConsoleSite) -> None:
    browser = site.sign_in(SECRETARY, "secretary")

    answer = upload(browser, "huge.yaml", b"#" * 3_000_000)

    assert answer.status_code == 413 and answer.headers["cache-control"] == "no-store"


def test_an_upload_without_the_forms_token_is_refused(site: ConsoleSite, schedules: Path) -> None:
    browser = site.sign_in(SECRETARY, "secretary")

    answer = browser.post("/console/files/dry-run", data={"csrf": "forged"}, files={"file": ("a.yaml", b"id: a")})

    assert answer.status_code == 403


def test_the_folder_is_read_again_only_when_a_file_or_the_stores_timelines_change(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    assert sync_folder(engine, schedules, zone="Europe/Zurich", reminders=REMINDERS, now=NOW).ok
    reads: list[Path] = []

    def counted(engine: Engine, reading: Reading, now: datetime) -> FolderReport:
        reads.append(reading.folder)
        return read_folder(engine, reading, now)

    cache, reading = FolderCache(counted), Reading(schedules, "Europe/Zurich", tuple(REMINDERS))
    first = cache.report_for(engine, reading, NOW)
    again = cache.report_for(engine, reading, NOW)
    write_timeline("hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-02-28"))
    edited = cache.report_for(engine, reading, NOW)
    subscribe(engine, "amina@mission.example.org")  # a subscriber changes no timeline: not read again
    cache.report_for(engine, reading, NOW)
    mark_done(engine, "hlpf/revised-draft", NOW)  # a completion changes the store's timelines: read again
    cache.report_for(engine, reading, NOW)

    assert again is first and len(reads) == 3
    assert [f.state for f in first.files] == ["synced"] and [f.state for f in edited.files] == ["changed"]


def test_a_missing_schedules_folder_is_said_no_timeline_is_called_gone_and_nothing_is_planned(
    engine: Engine, smtp: SMTPTestServer, schedules: Path, write_timeline: WriteTimeline, tmp_path: Path
) -> None:
    write_timeline("hlpf", HLPF)
    assert sync_folder(engine, schedules, zone="Europe/Zurich", reminders=REMINDERS, now=NOW).ok
    with console_site(engine, smtp, NOW, schedules=tmp_path / "elsewhere") as site:
        page = text_of(site.sign_in(VIEWER, "viewer").get("/console/files"))
        tried = text_of(upload(site.sign_in(SECRETARY, "secretary"), "hlpf.yaml", yaml_text(HLPF)))

    assert "The schedules folder (TRACKER_SCHEDULES) is not found on the server." in page
    assert 'id="gone"' not in page
    assert "<code>TRACKER_SCHEDULES:1: schedules folder not found</code>" in tried
    assert "The file is valid." in tried and "No plan" in tried
