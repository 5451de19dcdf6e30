"""The timeline page: its SVG drawing (pure) and GET /timelines/{id} from a real server."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from tests.support.factories import MEETING, YEARLY, make_view
from tests.support.timelines import NOW, WriteTimeline
from tests.support.web import sync
from tracker.config import get_settings
from tracker.i18n.languages import untranslated
from tracker.store.engine import transaction
from tracker.timelines.stored import load_views
from tracker.timelines.views import CompletionView, MilestoneView
from tracker.web.layout import PageLanguage, environment, languages
from tracker.web.pages import feed_links, render_overview, render_timeline
from tracker.web.picture import draw_timeline, link_words, plan_picture, read_link

SVG = "{http://www.w3.org/2000/svg}"
CLOCK = datetime(2017, 3, 1, 12, 0, tzinfo=UTC)


def parse(svg: str) -> ET.Element:
    """Parse as XML: a drawing that is not well-formed fails here, before any count."""
    return ET.fromstring(svg)


def marks(svg: str) -> list[ET.Element]:
    return [g for g in parse(svg).iter(f"{SVG}g") if "data-mark" in g.attrib]


def meeting_span(**overrides: object) -> MilestoneView:
    values: dict[str, object] = {
        "key": "meeting",
        "title": "CWG-WSIS-32, Geneva",
        "kind": "span",
        "due_at": None,
        "starts_at": datetime(2017, 3, 20, tzinfo=UTC),
        "ends_at": datetime(2017, 3, 23, tzinfo=UTC),
    }
    values.update(overrides)
    return make_view(**values)


def four_states() -> list[MilestoneView]:
    """One milestone in each state as of CLOCK."""
    done = CompletionView(datetime(2017, 2, 9, tzinfo=UTC), "Posted", "https://example.org/draft")
    return [
        make_view(key="revised-draft", due_at=datetime(2017, 2, 10, tzinfo=UTC), completions={"": done}),
        make_view(key="comments", due_at=datetime(2017, 2, 20, tzinfo=UTC)),
        make_view(key="side-event", due_at=datetime(2017, 3, 5, tzinfo=UTC), status="cancelled"),
        make_view(key="submission", due_at=datetime(2017, 4, 28, 10, tzinfo=UTC)),
    ]


def stored_views(
    engine: Engine, write_timeline: WriteTimeline, schedules: Path, name: str, text: str
) -> list[MilestoneView]:
    write_timeline(name, text)
    sync(engine, schedules)
    with transaction(engine) as session:
        return [v for v in load_views(session) if v.timeline_id == name]


def test_it_draws_one_mark_per_milestone() -> None:
    views = [*four_states(), meeting_span()]

    drawn = marks(draw_timeline(views, now=CLOCK))

    assert [g.attrib["data-mark"] for g in drawn] == [v.key for v in views]


def test_a_span_is_a_bar_from_its_start_to_its_end() -> None:
    views = [make_view(), meeting_span()]
    scale = plan_picture(views, now=CLOCK).scale

    (bar,) = [g for g in marks(draw_timeline(views, now=CLOCK)) if g.attrib["data-mark"] == "meeting"]
    rect = bar.find(f"{SVG}rect")

    assert rect is not None
    start, width = float(rect.attrib["x"]), float(rect.attrib["width"])
    assert start == pytest.approx(scale.x(datetime(2017, 3, 20, tzinfo=UTC)), abs=0.05)
    assert start + width == pytest.approx(scale.x(datetime(2017, 3, 23, tzinfo=UTC)), abs=0.1)
    assert width > 10


def test_the_axis_runs_over_whole_months_and_todays_line_stands_at_now() -> None:
    views = [
        make_view(due_at=datetime(2017, 2, 10, tzinfo=UTC)),
        make_view(key="b", due_at=datetime(2017, 3, 20, tzinfo=UTC)),
    ]
    now = datetime(2017, 3, 1, tzinfo=UTC)  # February and March: exactly the middle

    picture = plan_picture(views, now=now)
    (today,) = [e for e in parse(draw_timeline(views, now=now)).iter(f"{SVG}line") if e.get("class") == "tl-today"]

    assert (picture.scale.start_at, picture.scale.end_at) == (
        datetime(2017, 2, 1, tzinfo=UTC),
        datetime(2017, 4, 1, tzinfo=UTC),
    )
    assert float(today.attrib["x1"]) == pytest.approx(12 + (388 - 12) * 28 / 59, abs=0.05)


def test_there_is_no_todays_line_when_today_is_outside_the_picture() -> None:
    svg = draw_timeline([make_view()], now=datetime(2026, 11, 28, tzinfo=UTC))

    assert 'class="tl-today"' not in svg


def test_each_mark_carries_its_state() -> None:
    drawn = marks(draw_timeline(four_states(), now=CLOCK))

    assert {g.attrib["data-mark"]: g.attrib["data-state"] for g in drawn} == {
        "revised-draft": "done",
        "comments": "late",
        "side-event": "cancelled",
        "submission": "upcoming",
    }
    assert all(f"tl-{g.attrib['data-state']}" in g.attrib["class"].split() for g in drawn)


def test_a_span_that_is_over_took_place_and_one_ahead_is_upcoming() -> None:
    drawn = marks(draw_timeline([meeting_span()], now=datetime(2017, 3, 24, tzinfo=UTC)))
    ahead = marks(draw_timeline([meeting_span()], now=datetime(2017, 3, 1, tzinfo=UTC)))

    assert (drawn[0].attrib["data-state"], ahead[0].attrib["data-state"]) == ("done", "upcoming")


def test_titles_are_escaped_everywhere_and_kept_whole_in_tooltips() -> None:
    hostile = '<script>alert("x")</script> & a very long title that goes on well past the label width'
    views = [make_view(title=hostile, timeline_title="<b>HLPF</b>")]

    svg = draw_timeline(views, now=CLOCK)
    root = parse(svg)

    assert "<script>" not in svg and "<b>" not in svg
    assert "&lt;script&gt;" in svg
    tooltips = [t.text for t in root.iter(f"{SVG}title")]
    assert hostile in tooltips
    labels = [t for t in root.iter(f"{SVG}text") if t.get("class") == "tl-label"]
    assert labels[0].itertext() and "".join(labels[0].itertext()).endswith("…")


def test_the_drawing_is_accessible_and_scales_to_its_container() -> None:
    root = parse(draw_timeline(four_states(), now=CLOCK))

    assert root.attrib["role"] == "img" and root.attrib["width"] == "100%"
    assert root.attrib["direction"] == "ltr"  # also inside an Arabic page
    assert root.attrib["viewBox"].startswith("0 0 400 ")
    ids = root.attrib["aria-labelledby"].split()
    assert [root.find(f"{SVG}title"), root.find(f"{SVG}desc")] == [root.find(f".//*[@id='{i}']") for i in ids]
    desc = root.find(f"{SVG}desc")
    assert desc is not None and desc.text is not None and "due 20 Feb 2017, late" in desc.text


def test_the_same_input_draws_the_same_text() -> None:
    assert draw_timeline(four_states(), now=CLOCK) == draw_timeline(four_states(), now=CLOCK)


def test_translated_titles_are_drawn_in_the_language_asked() -> None:
    views = [make_view(titles={"fr": "Commentaires des membres"}, timeline_titles={"fr": "FPHN-17"})]

    svg = draw_timeline(views, now=CLOCK, language=languages()["fr"])

    assert "Commentaires des membres" in svg and "FPHN-17" in svg
    assert "Member comments" not in svg


@pytest.mark.parametrize(
    ("expr", "wording", "target"),
    [
        ("meeting - 30d", "30 days before “meeting”", "meeting"),
        ("meeting.end + 7d", "7 days after the end of “meeting”", "meeting"),
        ("revised-draft.done + 14d", "14 days after the completion of “revised draft”", "revised-draft"),
        ("submission - 1d - 4h", "1 day and 4 hours before “submission”", "submission"),
        ("cwg-wsis-32/meeting - 7d", "7 days before “meeting” in cwg-wsis-32", ""),
        ("meeting", "at “meeting”", "meeting"),
    ],
)
def test_relative_dates_are_worded(expr: str, wording: str, target: str) -> None:
    link = read_link(make_view(due_expr=expr))

    assert link is not None and (link_words(link, untranslated()), link.target) == (wording, target)


def test_a_relative_date_names_the_milestone_by_its_title_when_it_is_drawn() -> None:
    link = read_link(make_view(due_expr="meeting - 30d"))

    assert link is not None
    assert (
        link_words(link, untranslated(), {"meeting": "CWG-WSIS-32, Geneva"}) == "30 days before “CWG-WSIS-32, Geneva”"
    )


def test_absolute_or_unreadable_dates_have_no_link() -> None:
    assert read_link(make_view(due_expr="2017-03-10")) is None
    assert read_link(make_view(due_expr="not a date !")) is None
    assert read_link(make_view()) is None


def test_the_meeting_timeline_shows_30_days_before_the_meeting_as_a_connector(
    engine: Engine, write_timeline: WriteTimeline, schedules: Path
) -> None:
    views = stored_views(engine, write_timeline, schedules, "cwg-wsis-32", MEETING)

    svg = draw_timeline(views, now=datetime(2018, 1, 1, tzinfo=UTC))
    paths = [p for p in parse(svg).iter(f"{SVG}path") if p.get("class") == "tl-link"]

    assert len(marks(svg)) == 3
    assert "30 days before “CWG-WSIS-32, Geneva”" in svg
    assert {(p.attrib["data-from"], p.attrib["data-to"]) for p in paths} == {
        ("meeting", "secretariat-documents"),
        ("meeting", "summary-posted"),
    }


def test_a_repeating_milestone_draws_its_occurrences_in_the_visible_range(
    engine: Engine, write_timeline: WriteTimeline, schedules: Path
) -> None:
    views = stored_views(engine, write_timeline, schedules, "wsis-forum-yearly", YEARLY)
    now = datetime(2021, 6, 1, tzinfo=UTC)

    picture = plan_picture(views, now=now)
    drawn = marks(draw_timeline(views, now=now))

    forums = [g for g in drawn if g.attrib["data-mark"] == "forum"]
    # A year either side of now, in whole months: June 2020 to July 2022.
    assert (picture.scale.start_at.date().isoformat(), picture.scale.end_at.date().isoformat()) == (
        "2020-06-01",
        "2022-07-01",
    )
    assert [g.attrib["data-occurrence"] for g in forums] == ["2021-03-18", "2022-03-18"]
    assert len({g.attrib["data-occurrence"] for g in drawn if g.attrib["data-mark"] == "contributions"}) >= 2


def test_a_milestone_that_cannot_be_drawn_is_left_out_of_the_pages_and_the_others_shown() -> None:
    # Rules an older version stored: dateutil refuses the first, and walks the second from 1900.
    refused = make_view(key="bad-rule", title="Bad rule", repeat="FREQ=YEARLY;BYMONTH=13;BYDAY=99MO;INTERVAL=0")
    endless = make_view(key="daily", title="Daily since 1900", repeat="FREQ=DAILY",
                        due_at=datetime(1900, 1, 1, 22, 59, tzinfo=UTC))  # fmt: skip
    views = [*four_states(), refused, endless]
    chosen = PageLanguage(languages()["en"], explicit=False)
    where: tuple[str, dict[str, str]] = ("/", {})

    timeline = render_timeline(views, base_url="https://tracker.example.org", now=CLOCK, chosen=chosen, where=where)
    overview = render_overview(views, base_url="https://tracker.example.org", now=CLOCK, chosen=chosen, where=where,
                               zone=None)  # fmt: skip

    assert len(marks(timeline[timeline.index("<svg") : timeline.index("</svg>") + 6])) == 4
    assert "Bad rule" not in timeline and "Daily since 1900" not in timeline
    assert "Bad rule" not in overview and "Membership comments on the revised draft" in overview


def test_feed_links_use_webcal_google_outlook_and_a_relative_download() -> None:
    links = feed_links("https://tracker.example.org/", "/feeds/hlpf-2017.ics", "HLPF & co")

    assert links.webcal == "webcal://tracker.example.org/feeds/hlpf-2017.ics"
    assert links.google == "https://calendar.google.com/calendar/r?cid=webcal://tracker.example.org/feeds/hlpf-2017.ics"
    assert links.outlook == (
        "https://outlook.live.com/calendar/0/addfromweb"
        "?url=https%3A%2F%2Ftracker.example.org%2Ffeeds%2Fhlpf-2017.ics&name=HLPF%20%26%20co"
    )
    assert links.download == "/feeds/hlpf-2017.ics"


# --- over HTTP ----------------------------------------------------------------------------------


def test_the_timeline_page_is_html_with_the_drawing_inline(pages_client: httpx.Client) -> None:
    response = pages_client.get("/timelines/cwg-wsis-32")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in response.text
    assert response.text.count("data-mark=") == 3
    assert "30 days before “CWG-WSIS-32, Geneva”" in response.text
    assert '<html lang="en" dir="ltr">' in response.text


def test_the_feed_buttons_point_at_the_timelines_feed_which_serves_a_calendar(pages_client: httpx.Client) -> None:
    page = pages_client.get("/timelines/cwg-wsis-32").text
    hrefs = dict(re.findall(r'<a href="([^"]+)" data-feed="(\w+)"', page))
    by_kind = {kind: href.replace("&amp;", "&") for href, kind in hrefs.items()}

    assert by_kind["webcal"] == "webcal://tracker.example.org/feeds/cwg-wsis-32.ics"
    assert by_kind["google"].startswith("https://calendar.google.com/calendar/r?cid=webcal://")
    assert by_kind["outlook"].startswith("https://outlook.live.com/calendar/0/addfromweb?url=https%3A%2F%2F")
    feed = pages_client.get(by_kind["download"])
    assert (feed.status_code, feed.headers["content-type"]) == (200, "text/calendar; charset=utf-8")
    assert by_kind["download"] == "/feeds/cwg-wsis-32.ics"


def test_states_and_completion_notes_are_listed(pages_client: httpx.Client) -> None:
    page = pages_client.get("/timelines/hlpf-2017").text

    assert 'class="state state-done">done<' in page  # the revised draft, done in the file
    assert 'class="state state-cancelled">cancelled<' in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ITU Council" in page


def test_an_unknown_timeline_is_a_404_page_listing_the_known_ones(pages_client: httpx.Client) -> None:
    response = pages_client.get("/timelines/nope<b>")
    in_french = pages_client.get("/timelines/nope", params={"lang": "fr"})

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'href="/timelines/cwg-wsis-32"' in response.text
    assert 'href="/timelines/hlpf-2017"' in response.text
    assert "nope&lt;b&gt;" in response.text
    # A language chosen in the address stays chosen on the pages the answer links to.
    assert 'href="/timelines/cwg-wsis-32?lang=fr"' in in_french.text


def test_arabic_is_right_to_left_and_an_unknown_language_falls_back_to_english(pages_client: httpx.Client) -> None:
    arabic = pages_client.get("/timelines/cwg-wsis-32", params={"lang": "ar"}).text
    other = pages_client.get("/timelines/cwg-wsis-32", params={"lang": "xx"}).text

    assert '<html lang="ar" dir="rtl">' in arabic
    assert '<html lang="en" dir="ltr">' in other


def test_the_page_is_dated_by_the_servers_clock(pages_client: httpx.Client) -> None:
    page = pages_client.get("/timelines/hlpf-2017").text

    # NOW (1 February 2017) is inside the HLPF timeline: its today line is drawn there.
    assert f'data-at="{NOW.isoformat()}"' in page


def test_no_page_asks_for_anything_from_another_site(pages_client: httpx.Client) -> None:
    page = pages_client.get("/timelines/cwg-wsis-32").text

    assert not re.search(r'(src|href)="https?://(?!tracker\.example\.org)[^"]*"[^>]*(rel="stylesheet"|>)<', page)
    assert "<script" not in page
    # The one <link> names the page's Atom feed on this site: readers find it, the browser fetches nothing.
    assert re.findall(r"<link [^>]*>", page) == [
        '<link rel="alternate" type="application/atom+xml" title="What changed (Atom)" href="/feeds/cwg-wsis-32.atom">'
    ]


@pytest.mark.parametrize("code", ["en", "ar", "ru"])
def test_month_labels_never_run_into_each_other(code: str) -> None:
    # Eighteen months of axis, the case where "Nov 2026" used to touch "Jan 2027".
    views = [
        make_view(due_at=datetime(2026, 11, 8, tzinfo=UTC)),
        make_view(key="later", due_at=datetime(2028, 4, 1, tzinfo=UTC)),
    ]

    svg = parse(draw_timeline(views, now=datetime(2026, 11, 28, tzinfo=UTC), language=languages()[code]))
    axis = next(g for g in svg.iter(f"{SVG}g") if g.get("class") == "tl-axis")
    xs = [float(t.attrib["x"]) for t in axis.iter(f"{SVG}text")]

    assert len(xs) >= 4
    assert min(b - a for a, b in pairwise(xs)) >= 60


OUR_OVERVIEW = """{% extends "layout.html.j2" %}
{% block body %}<h1>Our own front page</h1>{% endblock %}
"""


@pytest.fixture
def page_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """TRACKER_TEMPLATES for this test: pages are the process's, so its settings and environment are read again."""
    folder = tmp_path / "ours"
    (folder / "pages").mkdir(parents=True)
    monkeypatch.setenv("TRACKER_TEMPLATES", str(folder))
    get_settings.cache_clear()
    environment.cache_clear()
    yield folder
    get_settings.cache_clear()
    environment.cache_clear()


def test_an_operator_s_page_template_wins_and_every_other_is_the_shipped_one(page_overrides: Path) -> None:
    (page_overrides / "pages" / "overview.html.j2").write_text(OUR_OVERVIEW)
    chosen = PageLanguage(languages()["fr"], explicit=True)
    where: tuple[str, dict[str, str]] = ("/", {})

    overview = render_overview(four_states(), base_url="https://tracker.example.org", now=CLOCK, chosen=chosen,
                               where=where, zone=None)  # fmt: skip
    timeline = render_timeline(four_states(), base_url="https://tracker.example.org", now=CLOCK, chosen=chosen,
                               where=where)  # fmt: skip

    assert "<h1>Our own front page</h1>" in overview and '<html lang="fr"' in overview  # the shipped layout around it
    assert "<svg" in timeline and "Our own" not in timeline
