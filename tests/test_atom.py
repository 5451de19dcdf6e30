"""Atom feeds of what changed, over HTTP from a real server, read back with feedparser as a feed reader does."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser  # type: ignore[import-untyped]
import httpx
import pytest
from sqlalchemy import Engine

from tests.support.factories import REPO
from tests.support.timelines import HLPF, MEETING, NOW, WriteTimeline
from tests.support.web import serving, sync
from tracker.feeds.atom import ATOM, Entry, FeedHead, read_news, write_feed
from tracker.store.engine import transaction
from tracker.store.models import Event

MOVED = HLPF.replace("2017-04-28 12:00", "2017-05-05 12:00")
Client = tuple[httpx.Client, Engine, Path, WriteTimeline]


@pytest.fixture
def site(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Iterator[Client]:
    """A server that asks the store on every request (check_interval=0): changes show at once."""
    write_timeline("hlpf", HLPF)
    write_timeline("cwg-32", MEETING)
    sync(engine, schedules)
    with serving(engine, 0, locales=REPO / "locale") as (http, _):
        yield http, engine, schedules, write_timeline


def read(http: httpx.Client, path: str) -> Any:
    response = http.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def edit(site: Client, name: str, text: str) -> None:
    _, engine, schedules, write_timeline = site
    write_timeline(name, text)
    sync(engine, schedules)


def test_a_new_store_has_valid_empty_feeds_with_what_rfc_4287_requires(site: Client) -> None:
    http = site[0]
    for path in ("/feeds/all.atom", "/feeds/hlpf.atom"):
        parsed = read(http, path)
        assert parsed.version == "atom10"
        assert parsed.feed.id.startswith("tag:tracker.example.org,2026:")
        assert parsed.feed.title and parsed.feed.updated and parsed.feed.author == "Tracker"
        assert any(link.rel == "self" and link.href.endswith(path) for link in parsed.feed.links)
        assert parsed.entries == []


def test_a_move_is_one_entry_with_the_old_and_the_new_date(site: Client) -> None:
    edit(site, "hlpf", MOVED)

    entries = read(site[0], "/feeds/hlpf.atom").entries

    assert len(entries) == 1
    assert entries[0].title == "New date: Final text submitted to the UN"
    assert entries[0].summary == (
        "Final text submitted to the UN: Friday, 5 May 2017, 12:00, Zurich time"
        " (previously Friday, 28 April 2017, 12:00, Zurich time)"
    )
    assert entries[0].link == "https://tracker.example.org/timelines/hlpf"
    assert entries[0].id.startswith("tag:tracker.example.org,2026:changes/hlpf/")


def test_a_sync_that_moves_several_dates_is_one_entry_per_timeline(site: Client) -> None:
    edit(site, "hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-03-03"))  # its dependents move with it

    entries = read(site[0], "/feeds/hlpf.atom").entries

    assert [e.title for e in entries] == ["Dates changed: ITU Council contribution to HLPF-17"]
    assert [line.split(":")[0] for line in re.findall("<li>(.*?)</li>", entries[0].summary)] == [
        "Revised draft posted",
        "Membership comments on the revised draft",
        "Final draft posted",
    ]


def test_ids_stay_the_same_across_requests_and_after_unrelated_changes(site: Client) -> None:
    http = site[0]
    edit(site, "hlpf", MOVED)
    first = read(http, "/feeds/all.atom").entries
    again = read(http, "/feeds/all.atom").entries
    edit(site, "cwg-32", MEETING.replace("meeting - 30d", "meeting - 31d"))
    later = read(http, "/feeds/all.atom").entries

    assert [e.id for e in first] == [e.id for e in again]
    assert [(e.id, e.updated, e.summary) for e in later[1:]] == [(e.id, e.updated, e.summary) for e in first]
    assert later[0].title == "New date: Secretariat documents available"
    assert [e.id for e in read(http, "/feeds/hlpf.atom").entries] == [e.id for e in first]


def test_a_completion_and_the_step_it_opens_appear_then_a_reopening(site: Client) -> None:
    done = HLPF.replace("due: 2017-02-24\n", "due: 2017-02-24\n        done: 2017-02-20\n")
    edit(site, "hlpf", done)
    opened = read(site[0], "/feeds/hlpf.atom").entries
    edit(site, "hlpf", HLPF)
    reopened = read(site[0], "/feeds/hlpf.atom").entries

    titles = [e.title for e in opened]
    assert "Completed: Revised draft posted" in titles
    assert "Now open: Membership comments on the revised draft" in titles
    assert "Done on Monday, 20 February 2017" in next(e.summary for e in opened if e.title.startswith("Completed"))
    assert reopened[0].title == "Reopened: Revised draft posted"
    assert {e.id for e in opened} <= {e.id for e in reopened}


def test_a_cancellation_says_what_was_given_up(site: Client) -> None:
    edit(site, "hlpf", HLPF.replace("due: 2017-04-28 12:00", "due: 2017-04-28 12:00\n        status: cancelled"))

    entry = read(site[0], "/feeds/hlpf.atom").entries[0]

    assert entry.title == "Cancelled: Final text submitted to the UN"
    assert "cancelled (was Friday, 28 April 2017" in entry.summary


HOSTILE = "<script>alert(1)</script> ]]> & \x01\x1b\x7f" + "x" * 10_000


def test_hostile_titles_come_out_escaped_cleaned_and_bounded() -> None:
    head = FeedHead("tag:h,2026:feeds/x", HOSTILE, "https://h/feeds/x.atom", "https://h/", "en")
    entry = Entry("tag:h,2026:events/1", HOSTILE[:300], datetime(2017, 1, 1, tzinfo=UTC), "https://h/", HOSTILE)
    body, _ = write_feed(head, [entry])

    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert b"<script>" not in body and b"]]>" not in body and b"\x01" not in body and b"\x1b" not in body
    assert parsed.entries[0].title.startswith("<script>alert(1)</script> ]]> & x")


def test_a_hostile_title_in_a_timeline_file_is_escaped_and_bounded_in_the_feed(site: Client) -> None:
    hostile = "'<script>alert(1)</script> ]]> &amp; " + "y" * 260 + "'"  # the files allow 300 characters
    edit(site, "hlpf", MOVED.replace("Final text submitted to the UN", hostile))

    response = site[0].get("/feeds/hlpf.atom")
    entry = feedparser.parse(response.content).entries[0]

    assert b"<script>" not in response.content and b"]]>" not in response.content
    assert entry.title.startswith("New date: <script>alert(1)</script> ]]> &amp; yyy")
    assert len(entry.title) < 320 and len(response.content) < 5_000


def test_every_feed_and_entry_has_the_elements_rfc_4287_requires(site: Client) -> None:
    edit(site, "hlpf", HLPF.replace("due: 2017-02-24\n", "due: 2017-03-03\n        done: 2017-02-20\n"))
    root = ET.fromstring(site[0].get("/feeds/all.atom").content)

    assert_required(root, ("id", "title", "updated", "author", "link"))
    entries = root.findall(f"{{{ATOM}}}entry")
    assert len(entries) >= 3
    for entry in entries:
        assert_required(entry, ("id", "title", "updated", "link", "summary"))


def test_the_check_of_required_elements_fails_without_updated_or_id() -> None:
    body, _ = write_feed(FeedHead("tag:h,2026:x", "t", "https://h/x", "https://h/", "en"), [])
    assert_required(ET.fromstring(body), ("id", "title", "updated", "author", "link"))
    for name in ("updated", "id"):
        root = ET.fromstring(body)
        root.remove(root.find(f"{{{ATOM}}}{name}"))  # type: ignore[arg-type]
        with pytest.raises(AssertionError, match=name):
            assert_required(root, ("id", "title", "updated", "author", "link"))


def assert_required(node: ET.Element, names: tuple[str, ...]) -> None:
    for name in names:
        found = node.find(f"{{{ATOM}}}{name}")
        assert found is not None, f"<{name}> missing"
        if name == "link":
            assert found.get("href"), "<link> without href"
        elif name == "author":
            assert (found.findtext(f"{{{ATOM}}}name") or "").strip(), "<author> without <name>"
        else:
            assert (found.text or "").strip(), f"<{name}> empty"


def test_the_feed_of_an_unknown_timeline_is_404(site: Client) -> None:
    response = site[0].get("/feeds/no-such-timeline.atom")

    assert response.status_code == 404
    assert "No timeline 'no-such-timeline'" in response.text


def test_a_french_feed_speaks_french(site: Client) -> None:
    edit(site, "hlpf", MOVED)

    parsed = read(site[0], "/feeds/hlpf.atom?lang=fr")

    assert spaced(parsed.feed.title) == "Ce qui a changé : ITU Council contribution to HLPF-17"
    assert spaced(parsed.entries[0].title) == "Nouvelle date : Final text submitted to the UN"
    assert "vendredi 5 mai 2017" in parsed.entries[0].summary
    assert parsed.feed.language == "fr"


def spaced(text: str) -> str:
    """French puts a no-break space before a colon."""
    return text.replace("\u202f", " ").replace("\xa0", " ")


def test_an_unchanged_feed_answers_304_to_its_etag_and_date(site: Client) -> None:
    http = site[0]
    edit(site, "hlpf", MOVED)
    first = http.get("/feeds/hlpf.atom")

    by_tag = http.get("/feeds/hlpf.atom", headers={"If-None-Match": first.headers["etag"]})
    by_date = http.get("/feeds/hlpf.atom", headers={"If-Modified-Since": first.headers["last-modified"]})

    assert (by_tag.status_code, by_tag.content) == (304, b"")
    assert by_date.status_code == 304
    edit(site, "hlpf", HLPF.replace("due: 2017-02-24", "due: 2017-03-10"))
    assert http.get("/feeds/hlpf.atom", headers={"If-None-Match": first.headers["etag"]}).status_code == 200


def test_the_pages_link_the_atom_feeds(site: Client) -> None:
    http = site[0]
    overview, timeline = http.get("/").text, http.get("/timelines/hlpf?lang=fr").text

    assert '<link rel="alternate" type="application/atom+xml"' in overview and "/feeds/all.atom" in overview
    assert 'href="/feeds/hlpf.atom?lang=fr"' in timeline
    assert 'data-feed="atom"' in timeline


def test_a_feed_lists_the_newest_50_entries_newest_first(site: Client) -> None:
    http, engine = site[0], site[1]
    at = datetime(2017, 4, 28, 10, tzinfo=UTC)
    with transaction(engine) as session:
        for n in range(120):  # each its own change set: 120 notices, and noise no feed tells of
            new_at = at + timedelta(days=n + 1)
            session.add(Event(at=NOW + timedelta(minutes=n), kind="rescheduled", timeline_id="hlpf",
                              milestone_key="submission", old_at=new_at - timedelta(days=1), new_at=new_at,
                              change_set=f"set-{n}"))  # fmt: skip
            session.add(Event(at=NOW, kind="delivery_failed", timeline_id="hlpf", milestone_key="submission"))

    entries = read(http, "/feeds/hlpf.atom").entries

    assert len(entries) == 50
    assert [e.id.rsplit("/", 1)[1] for e in entries] == [f"set-{n}" for n in range(119, 69, -1)]
    assert entries[0].updated == "2017-02-01T10:59:00Z"


def test_a_change_set_longer_than_a_page_of_events_is_read_whole(engine: Engine) -> None:
    with transaction(engine) as session:
        for n in range(450):  # one sync that moved 450 dates, then one that moved one
            session.add(Event(at=NOW, kind="rescheduled", timeline_id="big", milestone_key=f"m{n}", change_set="one"))
        session.add(Event(at=NOW, kind="rescheduled", timeline_id="big", milestone_key="m0", change_set="two"))

    with transaction(engine) as session:
        groups = read_news(session, "big", limit=2)

    assert [(group[0].change_set, len(group)) for group in groups] == [("two", 1), ("one", 450)]


def test_a_title_edited_after_the_newest_entry_is_not_answered_304_by_date(site: Client) -> None:
    http = site[0]
    edit(site, "hlpf", MOVED)
    first = http.get("/feeds/hlpf.atom")
    time.sleep(1.1)  # Last-Modified counts whole seconds
    edit(site, "hlpf", MOVED.replace("Final text submitted to the UN", "Final text sent to the UN"))

    again = http.get("/feeds/hlpf.atom", headers={"If-Modified-Since": first.headers["last-modified"]})

    assert again.status_code == 200
    assert feedparser.parse(again.content).entries[0].title == "New date: Final text sent to the UN"
