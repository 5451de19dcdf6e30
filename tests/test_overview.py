"""GET /: what is due, the timelines by kind, every feed's buttons; and how a page picks its language."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.factories import make_view, milestone_yaml, timeline_yaml
from tests.support.timelines import WriteTimeline
from tests.support.web import serving, sync
from tracker.timelines.states import Process
from tracker.timelines.views import Occurrence
from tracker.web.layout import accepted, choose, languages
from tracker.web.pages import left_text, reader_zone

ZURICH_NOON = datetime(2017, 3, 10, 11, 0, tzinfo=UTC)


def feed_hrefs(page: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for href, kind in re.findall(r'<a href="([^"]+)" data-feed="(\w+)"', page):
        found.setdefault(kind, []).append(href.replace("&amp;", "&"))
    return found


def test_the_overview_lists_what_is_due_soonest_first_with_the_time_left(pages_client: httpx.Client) -> None:
    page = pages_client.get("/").text
    due = page[page.index('class="items due"') : page.index("</ol>")]

    # NOW is 1 February 2017: the revised draft (24 Feb, already marked done in the file),
    # then the members' comments (14 days after it was done); the meeting is a year away.
    assert due.index("Revised draft") < due.index("Member comments")
    assert "Due in 36 days" in due and "Done" in due
    assert "Thursday, 9 March 2017, end of day, Zurich time" in due
    assert "Action by: Membership" in due
    assert "Secretariat documents" not in due


def test_timelines_are_grouped_by_kind_and_each_says_what_comes_next(pages_client: httpx.Client) -> None:
    page = pages_client.get("/").text

    assert page.index("<h3>Meetings</h3>") < page.index("<h3>Drafting</h3>")
    assert "Next: Secretariat documents (Due in 327 days)" in page
    assert 'href="/timelines/cwg-wsis-32"' in page


def test_every_feed_has_its_four_buttons_and_each_one_serves_a_calendar(pages_client: httpx.Client) -> None:
    hrefs = feed_hrefs(pages_client.get("/").text)
    downloads = hrefs["download"]

    assert set(downloads) == {
        "/feeds/all.ics",
        "/feeds/cwg-wsis-32.ics",
        "/feeds/hlpf-2017.ics",
        "/feeds/audiences/membership.ics",
        "/feeds/audiences/secretariat.ics",
    }
    assert len(hrefs["webcal"]) == len(hrefs["google"]) == len(hrefs["outlook"]) == len(downloads)
    for path, webcal, google, outlook in zip(
        downloads, hrefs["webcal"], hrefs["google"], hrefs["outlook"], strict=True
    ):
        assert webcal == f"webcal://tracker.example.org{path}"
        assert parse_qs(urlsplit(google).query)["cid"] == [webcal]
        assert parse_qs(urlsplit(outlook).query)["url"] == [f"https://tracker.example.org{path}"]
        feed = pages_client.get(path)
        assert (feed.status_code, feed.headers["content-type"]) == (200, "text/calendar; charset=utf-8")


def test_the_overview_notes_that_google_is_slow_and_email_is_on_time(pages_client: httpx.Client) -> None:
    assert "Google refreshes subscribed calendars only every several hours" in pages_client.get("/").text


def test_titles_are_escaped_everywhere_on_the_overview(pages_client: httpx.Client) -> None:
    page = pages_client.get("/").text

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ITU Council" in page


def test_the_reader_s_zone_from_the_address_shows_their_own_clock(pages_client: httpx.Client) -> None:
    page = pages_client.get("/", params={"tz": "America/New_York"}).text
    wrong = pages_client.get("/", params={"tz": "Mars/Olympus"})

    assert "(your time: Thursday, 9 March 2017, 17:59)" in page
    assert wrong.status_code == 200 and "your time" not in wrong.text


def test_an_old_name_or_an_abbreviation_in_the_address_reads_as_the_zone_of_its_place(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    # Noon in Zurich on 14 March 2017: New York is already on summer time (EDT, 07:00), EST is not.
    write_timeline("call", timeline_yaml(milestone_yaml("call", due="2017-03-14 12:00"), id="call", title="Call"))
    sync(engine, schedules)
    asked = ("America/New_York", "US/Eastern", "EST", "est", "Asia/Calcutta")

    with serving(engine, 0) as (http, _):
        pages = {zone: http.get("/", params={"tz": zone}).text for zone in asked}

    for zone in asked[:4]:
        assert "(your time: Tuesday, 14 March 2017, 07:00)" in pages[zone], zone
    assert "(your time: Tuesday, 14 March 2017, 16:30)" in pages["Asia/Calcutta"]
    assert reader_zone("US/Eastern") == reader_zone("EST") == "America/New_York"
    assert reader_zone("Asia/Calcutta") == "Asia/Kolkata" and reader_zone("Mars/Olympus") is None


def test_the_browser_s_language_is_used_unless_the_address_names_one(pages_client: httpx.Client) -> None:
    french = pages_client.get("/", headers={"Accept-Language": "de-CH, fr;q=0.8, en;q=0.5"})
    arabic = pages_client.get("/", params={"lang": "ar"}, headers={"Accept-Language": "fr"})

    assert '<html lang="fr" dir="ltr">' in french.text
    assert french.headers["content-language"] == "fr" and french.headers["vary"] == "Accept-Language"
    assert '<html lang="ar" dir="rtl">' in arabic.text
    assert "vary" not in arabic.headers  # the address alone decides
    # Links keep the chosen language; the switcher keeps the other parameters.
    assert 'href="/timelines/cwg-wsis-32?lang=ar"' in arabic.text
    switched = pages_client.get("/", params={"lang": "ar", "tz": "Asia/Tokyo"}).text
    assert 'href="/?tz=Asia%2FTokyo&amp;lang=zh"' in switched


def test_every_language_is_offered_in_its_own_name_with_the_current_one_marked(pages_client: httpx.Client) -> None:
    page = pages_client.get("/", params={"lang": "ru"}).text
    nav = page[page.index('<nav class="lang"') : page.index("</nav>", page.index('<nav class="lang"'))]

    assert [name for name in ("العربية", "中文", "English", "Français", "Русский", "Español") if name in nav] == [
        "العربية",
        "中文",
        "English",
        "Français",
        "Русский",
        "Español",
    ]
    assert re.search(r'href="/\?lang=ru" lang="ru" hreflang="ru" aria-current="true"', nav)
    assert 'lang="zh-Hans"' in nav


def test_the_overview_is_written_in_the_language_chosen(pages_client: httpx.Client) -> None:
    english = pages_client.get("/").text
    for code in ("fr", "es", "ru", "zh", "ar"):
        page = pages_client.get("/", params={"lang": code}).text
        heading = re.search(r"<h1>(.*?)</h1>", page)
        assert heading is not None and heading.group(1) != "What is due", code
        assert "Google refreshes" not in page, code
    assert "<h1>What is due</h1>" in english


# --- pure: the language of a page, the time left -------------------------------------------------


def test_accept_language_is_read_by_quality_then_by_order() -> None:
    assert accepted("de-CH, fr;q=0.8, en-GB;q=0.9, es;q=0") == ["de", "en", "fr"]
    assert accepted("") == []
    assert accepted("fr;q=abc, ru") == ["ru"]


def test_a_page_falls_back_to_english_for_unknown_languages() -> None:
    assert choose("xx", "de, it;q=0.5").code == "en"
    assert choose(None, "zh-TW, en;q=0.1").code == "zh"
    assert choose(" AR ", None).explicit and choose(" AR ", None).code == "ar"


def test_the_arabic_page_is_right_to_left_and_the_others_left_to_right() -> None:
    directions = {code: language.direction for code, language in languages().items()}

    assert directions == {"ar": "rtl", "zh": "ltr", "en": "ltr", "fr": "ltr", "ru": "ltr", "es": "ltr"}


@pytest.mark.parametrize(
    ("due", "all_day", "now", "left"),
    [
        (datetime(2017, 3, 10, 22, 59, 59, tzinfo=UTC), True, ZURICH_NOON, "Due today"),
        (datetime(2017, 3, 11, 22, 59, 59, tzinfo=UTC), True, ZURICH_NOON, "Due tomorrow"),
        (datetime(2017, 3, 10, 14, 0, tzinfo=UTC), False, ZURICH_NOON, "Due in 3 hours"),
        (datetime(2017, 3, 10, 11, 45, tzinfo=UTC), False, ZURICH_NOON, "Due in 45 minutes"),
        # Across the spring change (26 March in Zurich) the count is in calendar days, not 24-hour blocks.
        (
            datetime(2017, 3, 27, 21, 59, 59, tzinfo=UTC),
            True,
            datetime(2017, 3, 20, 22, 30, tzinfo=UTC),
            "Due in 7 days",
        ),
    ],
)
def test_time_left_counts_calendar_days_in_the_timeline_s_zone(
    due: datetime, all_day: bool, now: datetime, left: str
) -> None:
    view = make_view(due_at=due, all_day=all_day, zone="Europe/Zurich")

    item = Occurrence(view, "", due, None, None)
    assert left_text(item, Process([view], now=now).state(item), now, languages()["en"]) == left
