"""Many timelines: the overview shows what is late and due first and pages the rest with plain links;
/api/upcoming pages with a limit and a cursor; kept answers follow the store (issue 18, point 4)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.factories import milestone_yaml, timeline_yaml
from tests.support.timelines import WriteTimeline
from tests.support.web import serving, sync
from tracker.web.paging import PAGE_SIZE
from tracker.web.rendered import AnswerFront, keepable

TIMELINES = PAGE_SIZE + 10  # one full page of each list and a second one of ten


def busy_timeline(number: int) -> str:
    """A timeline with a late step (NOW is 1 February 2017), one due in the coming weeks, one next year."""
    return timeline_yaml(
        milestone_yaml("report", f"Report {number:03d}", owner="secretariat", due=f"2017-01-{10 + number % 18}"),
        milestone_yaml("comments", f"Comments {number:03d}", owner="membership", due="2017-02-20"),
        milestone_yaml("session", f"Session {number:03d}", starts="2018-01-10", ends="2018-01-11"),
        id=f"group-{number:03d}",
        title=f"Working group {number:03d}",
    )


@pytest.fixture
def many(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Iterator[httpx.Client]:
    for number in range(TIMELINES):
        write_timeline(f"group-{number:03d}", busy_timeline(number))
    sync(engine, schedules)
    with serving(engine, 0) as (http, _):
        yield http


def section(page: str, name: str) -> str:
    start = page.index(f'<section aria-labelledby="{name}">')
    return page[start : page.index("</section>", start)]


def items(part: str) -> list[str]:
    """The entries of a section: each links to its timeline's page once."""
    return re.findall(r'<a href="/timelines/', part)


def next_page(header: str) -> str | None:
    """The path of a `Link: <…>; rel="next"` header, on this server (the link names the public address)."""
    found = re.fullmatch(r'<https://tracker\.example\.org(/api/upcoming\?[^>]+)>; rel="next"', header)
    assert found or not header, header
    return found.group(1) if found else None


def link(part: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', part)
    return found.group(1).replace("&amp;", "&") if found else None


def test_the_overview_of_many_timelines_shows_late_then_due_then_timelines_a_page_at_a_time(
    many: httpx.Client,
) -> None:
    page = many.get("/").text

    assert page.index('id="late"') < page.index('id="soon"') < page.index('id="timelines"')
    for name in ("late", "soon", "timelines"):
        part = section(page, name)
        assert len(items(part)) == PAGE_SIZE, name
        assert "Page 1 of 2" in part and link(part, "prev") is None
    assert "Report 000" in section(page, "late") and "Comments 000" in section(page, "soon")


def test_every_late_step_and_every_timeline_is_reached_by_following_plain_links(many: httpx.Client) -> None:
    first = many.get("/", params={"lang": "fr"}).text
    following = link(section(first, "late"), "next")
    assert following is not None and following.startswith("/?") and following.endswith("#late")
    second = many.get(following).text  # a link, no script: what a reader without JavaScript clicks

    late = section(first, "late") + section(second, "late")
    assert sorted(set(re.findall(r"Report (\d{3})", late))) == [f"{n:03d}" for n in range(TIMELINES)]
    assert len(items(section(second, "late"))) == TIMELINES - PAGE_SIZE
    assert f'<ol class="items due late" start="{PAGE_SIZE + 1}">' in second  # numbered on from the first page
    assert link(section(second, "late"), "next") is None and '<html lang="fr"' in second  # the language goes along
    back = link(section(second, "late"), "prev")
    assert back is not None and many.get(back).text == first

    timelines = many.get(link(section(first, "timelines"), "next") or "").text
    shown = section(first, "timelines") + section(timelines, "timelines")
    assert len(set(re.findall(r'href="/timelines/(group-\d{3})', shown))) == TIMELINES


def test_a_page_number_past_the_end_shows_the_last_page_and_junk_is_refused(many: httpx.Client) -> None:
    last = section(many.get("/", params={"page": 2}).text, "timelines")
    assert section(many.get("/", params={"page": 999}).text, "timelines") == last
    for junk in ("0", "-1", "abc", "100000"):
        answer = many.get("/", params={"page": junk})
        assert answer.status_code == 422, junk
        assert "Traceback" not in answer.text


def test_api_upcoming_pages_through_everything_with_its_cursor(many: httpx.Client) -> None:
    whole = many.get("/api/upcoming", params={"days": 365})
    assert whole.status_code == 200 and "link" not in whole.headers  # the default: everything, as before
    seen: list[dict[str, object]] = []
    url: str | None = "/api/upcoming?days=365&limit=25"
    while url:
        answer = many.get(url)
        assert answer.status_code == 200 and len(answer.json()) <= 25
        seen += answer.json()
        url = next_page(answer.headers.get("link", ""))
        assert "link" in answer.headers.get("access-control-expose-headers", "").lower()

    assert seen == whole.json() and len(seen) == 2 * TIMELINES + TIMELINES  # late, comments, sessions
    assert [row["state"] for row in seen[:TIMELINES]] == ["late"] * TIMELINES


@pytest.mark.parametrize(
    ("query", "where"),
    [({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"cursor": "garbage"}, "cursor"),
     ({"cursor": "dXBjb21pbmc6LTE"}, "cursor"), ({"cursor": "x" * 65}, "cursor")],
)  # fmt: skip
def test_api_upcoming_refuses_a_limit_out_of_bounds_or_a_cursor_it_did_not_give(
    many: httpx.Client, query: dict[str, str], where: str
) -> None:
    answer = many.get("/api/upcoming", params=query)

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", where]
    assert answer.headers["access-control-allow-origin"] == "*"
    if query.get("cursor") == "garbage":
        assert "not a cursor this API gave" in answer.json()["detail"][0]["msg"]


def test_a_sync_changes_what_a_kept_overview_shows(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("group-000", busy_timeline(0))
    sync(engine, schedules)
    with serving(engine, 0.2) as (http, front):  # the store is asked at most every 0.2 s
        answers = front.app
        assert isinstance(answers, AnswerFront)
        before = http.get("/").text
        assert http.get("/").text == http.get("/").text == before
        assert answers.served >= 1  # kept: answered in front of the app, byte for byte
        api = http.get("/api/upcoming").json()

        write_timeline("group-000", busy_timeline(0).replace("Comments 000", "Renamed comments"))
        sync(engine, schedules)
        time.sleep(0.3)
        after = http.get("/").text
        renamed = http.get("/api/upcoming").json()

    assert "Comments 000" in before and "Renamed comments" in after and "Comments 000" not in after
    assert [row["title"] for row in api if row["milestone"] == "comments"] == ["Comments 000"]
    assert [row["title"] for row in renamed if row["milestone"] == "comments"] == ["Renamed comments"]


def test_an_answer_that_sets_a_cookie_or_is_private_is_never_given_again_to_someone_else() -> None:
    public = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"public, max-age=60")]

    assert keepable({"status": 200, "headers": public})
    assert keepable({"status": 404, "headers": public})
    assert not keepable({"status": 200, "headers": [*public, (b"Set-Cookie", b"session=abc")]})
    assert not keepable({"status": 200, "headers": [(b"cache-control", b"no-store")]})
    assert not keepable({"status": 200, "headers": [(b"Cache-Control", b"private, max-age=300")]})
    assert not keepable({"status": 303, "headers": public}) and not keepable({"status": 500, "headers": public})
