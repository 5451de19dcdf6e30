"""The pages as a person sees them: headless Chromium against a real `tracker run` and a real SMTP relay.

Elements are found by name, id and data-* attributes, never by their English wording: the pages
are translated. Every page visited is saved as a screenshot (see tests/support/browser.py, SCREENSHOTS).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
import yaml
from sqlalchemy import text

from tests.support.browser import DESKTOP, PHONE, LiveSite, OpenTab, Visitor, links_in, same_origin

if TYPE_CHECKING:  # Playwright may be missing: then these tests skip instead of failing to import
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

ADDRESS = "amina.diallo@mission.example.org"
FEED_KINDS = {"webcal", "google", "outlook", "download"}
FEED_PAGES = {"overview": "/", "timeline": "/timelines/consultation"}  # pages with feed buttons
PUBLIC_PAGES = {**FEED_PAGES, "subscribe": "/subscribe"}  # each in the six languages, by ?lang=


def subscriber_state(live: LiveSite, address: str) -> tuple[str, str]:
    """(state, language) of *address* in the store."""
    with live.site.store.connect() as connection:
        row = connection.execute(
            text("SELECT state, language FROM subscribers WHERE email_key = :key"), {"key": address.lower()}
        ).one()
    return str(row[0]), str(row[1])


def set_field(page: Page, name: str, value: str) -> None:
    """Type into a text field or choose in a list, whichever the form offers for *name*."""
    field = page.locator(f"[name={name}]")
    if field.evaluate("element => element.tagName") == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)


def link_to(links: list[str], path: str) -> str:
    found = [link for link in links if urlsplit(link).path.startswith(path)]
    assert found, f"no {path} link among {links}"
    return found[0]


def feed_url(kind: str, href: str, page_url: str) -> str:
    """The http(s) address of the feed a subscribe or download link stands for."""
    if kind == "webcal":
        assert href.startswith("webcal://"), href
        return "http://" + href.removeprefix("webcal://")
    if kind == "google":
        (cid,) = parse_qs(urlsplit(href).query)["cid"]
        return feed_url("webcal", cid, page_url)
    if kind == "outlook":
        (url,) = parse_qs(urlsplit(href).query)["url"]
        return url
    assert not urlsplit(href).scheme, f"the download link should be relative, not {href}"
    return urljoin(page_url, href)


def feed_links(tab: Visitor) -> list[tuple[str, str]]:
    """(data-feed, href) of every feed link on the page."""
    found = tab.page.eval_on_selector_all(
        "a[data-feed]", "links => links.map(a => [a.dataset.feed, a.getAttribute('href')])"
    )
    return [(str(kind), str(href)) for kind, href in found]


def check_feed_links(tab: Visitor, origin: str) -> None:
    """Every feed link points at this server, each feed has all four kinds, and each serves a calendar."""
    links = feed_links(tab)
    assert links, f"no a[data-feed] link on {tab.page.url}"
    news = [urljoin(tab.page.url, href) for kind, href in links if kind == "atom"]
    links = [(kind, href) for kind, href in links if kind != "atom"]
    for url in news:  # the Atom feeds of what changed, next to the calendars of all and of each timeline
        response = httpx.get(url, timeout=10)
        assert same_origin(url, origin) and response.status_code == 200, url
        assert response.headers["content-type"].startswith("application/atom+xml"), url
    kinds_by_feed: dict[str, set[str]] = {}
    for kind, href in links:
        assert kind in FEED_KINDS, f"unknown data-feed={kind!r}"
        url = feed_url(kind, href, tab.page.url)
        assert same_origin(url, origin) and urlsplit(url).path.endswith(".ics"), f"{kind} link {href} -> {url}"
        kinds_by_feed.setdefault(url, set()).add(kind)
    assert {url: kinds for url, kinds in kinds_by_feed.items() if kinds != FEED_KINDS} == {}
    for url in kinds_by_feed:
        response = httpx.get(url, timeout=10)
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith("text/calendar"), url


def expected_marks(yaml_text: str) -> Counter[str]:
    """How many marks each milestone of a timeline file should draw: 1, or its COUNT when it repeats."""
    counts: Counter[str] = Counter()
    for milestone in yaml.safe_load(yaml_text)["milestones"]:
        rule = milestone.get("repeat")
        found = re.search(r"COUNT=(\d+)", rule) if rule else None
        assert rule is None or found, "a repeating milestone here needs a COUNT to be countable"
        counts[milestone["id"]] = int(found.group(1)) if found else 1
    return counts


# --- a subscriber's way through -----------------------------------------------------------------


def test_a_visitor_subscribes_confirms_switches_to_arabic_and_unsubscribes(visit: OpenTab, live_site: LiveSite) -> None:
    tab = visit()
    page = tab.page
    later: list[str] = []  # what a person would notice but need not stop the way through: asserted at the end
    assert tab.open(f"{live_site.url}/subscribe") == 200
    tab.shoot("subscribe-en-desktop")
    page.fill("input[name=email]", ADDRESS)
    page.fill("input[name=name]", "Amina Diallo")
    page.select_option("select[name=language]", "fr")
    set_field(page, "timezone", "Africa/Dakar")
    page.check("input[name=audiences][value=membership]")
    page.check("input[name=timelines][value=consultation]")

    with page.expect_navigation() as sent:
        page.click("form:has(input[name=email]) [type=submit]")

    response = sent.value
    assert response is not None and response.status == 202
    assert page.locator("input[name=email]").count() == 0  # the form is gone: the request was accepted
    assert page.locator("[role=alert]").count() == 0
    tab.shoot("subscribe-sent-en-desktop")
    mail = live_site.mail_to(ADDRESS)  # the request is handled after the answer: its email says it was
    assert subscriber_state(live_site, ADDRESS) == ("pending", "fr")

    links = links_in(mail)
    confirm = link_to(links, "/confirm/")
    assert confirm.startswith(live_site.url), confirm
    assert tab.open(confirm) == 200
    assert ADDRESS in page.inner_text("body")
    tab.shoot("confirm-fr-desktop")
    assert subscriber_state(live_site, ADDRESS)[0] == "pending"  # opening the link, as a scanner does, is not enough
    with page.expect_navigation() as pressed:
        page.click("button[data-action=confirm]")
    assert pressed.value is not None and pressed.value.status == 200
    assert ADDRESS in page.inner_text("body")
    tab.shoot("confirmed-fr-desktop")  # pages behind a personal link speak the subscriber's language
    assert subscriber_state(live_site, ADDRESS)[0] == "confirmed"
    if page.locator("a[data-feed]").count():  # the personal feed's buttons, where the page offers them
        check_feed_links(tab, live_site.url)

    # The confirmed page may link to the settings; the email always does.
    on_page = page.eval_on_selector_all("a[data-link=preferences]", "links => links.map(a => a.href)")
    preferences = str(on_page[0]) if on_page else link_to(links, "/preferences/")
    assert tab.open(preferences) == 200
    assert page.input_value("select[name=language]") == "fr"
    tab.shoot("preferences-fr-desktop")
    page.select_option("select[name=language]", "ar")
    with page.expect_navigation() as saved:
        page.click("button[name=action][value=save]")
    assert saved.value is not None and saved.value.status == 200
    assert page.locator("[role=alert]").count() == 0
    assert subscriber_state(live_site, ADDRESS) == ("confirmed", "ar")
    assert tab.open(preferences) == 200  # as the subscriber finds it next time
    assert page.input_value("select[name=language]") == "ar"
    if tab.document() != ("ar", "rtl"):
        later.append(f"the preferences page in Arabic is not right-to-left: <html lang dir> is {tab.document()}")
    tab.shoot("preferences-ar-desktop")
    phone = visit(width=PHONE["width"])
    assert phone.open(preferences) == 200
    phone.shoot("preferences-ar-phone")
    if phone.scroll_width() > PHONE["width"]:
        later.append(f"the preferences page is {phone.scroll_width()}px wide on a 360px phone: it scrolls sideways")

    page.click("a[data-link=unsubscribe]")
    page.wait_for_selector("button[name=List-Unsubscribe]")
    tab.shoot("unsubscribe-ar-desktop")
    with page.expect_navigation() as left:
        page.click("button[name=List-Unsubscribe]")
    assert left.value is not None and left.value.status == 200
    assert page.locator("button[name=List-Unsubscribe]").count() == 0
    assert ADDRESS in page.inner_text("body")
    tab.shoot("unsubscribed-ar-desktop")
    assert subscriber_state(live_site, ADDRESS)[0] == "unsubscribed"
    assert later == []


# --- the timeline page --------------------------------------------------------------------------


def test_the_timeline_drawing_has_one_mark_per_occurrence_of_each_milestone(
    visit: OpenTab, public_site: LiveSite
) -> None:
    tab = visit()
    assert tab.open(f"{public_site.url}/timelines/consultation") == 200
    drawn = tab.page.eval_on_selector_all(
        "svg [data-mark]", "marks => marks.map(m => [m.dataset.mark, m.dataset.occurrence])"
    )
    expected = expected_marks((public_site.site.schedules / "consultation.yaml").read_text(encoding="utf-8"))

    assert tab.page.locator("svg").first.is_visible()
    assert Counter(str(key) for key, _ in drawn) == expected
    calls = [occurrence for key, occurrence in drawn if key == "monthly-call"]
    assert len(set(calls)) == len(calls) == 3  # three distinct occurrences, not one drawn three times


def test_the_meeting_timeline_draws_each_of_its_milestones_once(visit: OpenTab, public_site: LiveSite) -> None:
    tab = visit()
    assert tab.open(f"{public_site.url}/timelines/cwg-wsis-32") == 200
    drawn = tab.page.eval_on_selector_all("svg [data-mark]", "marks => marks.map(m => m.dataset.mark)")
    expected = expected_marks((public_site.site.schedules / "cwg-wsis-32.yaml").read_text(encoding="utf-8"))

    assert Counter(str(key) for key in drawn) == expected == Counter(["meeting", "secretariat-documents",
                                                                     "summary-posted"])  # fmt: skip


# --- feed buttons -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FEED_PAGES))
def test_every_feed_button_points_at_a_calendar_this_server_serves(
    name: str, visit: OpenTab, public_site: LiveSite
) -> None:
    tab = visit()
    assert tab.open(public_site.url + FEED_PAGES[name]) == 200

    check_feed_links(tab, public_site.url)


# --- no other site, no sideways scrolling, screenshots -------------------------------------------


@pytest.mark.parametrize("name", sorted(PUBLIC_PAGES))
def test_the_page_asks_nothing_of_other_sites_and_fits_a_360px_phone(
    name: str, visit: OpenTab, public_site: LiveSite
) -> None:
    path = PUBLIC_PAGES[name]
    problems: list[str] = []
    for language in ("en", "ar"):
        for width in (DESKTOP["width"], PHONE["width"]):
            tab = visit(width=width)
            status = tab.open(f"{public_site.url}{path}?lang={language}", until_quiet=True)
            tab.shoot(f"{name}-{language}-{'phone' if width == PHONE['width'] else 'desktop'}")
            where = f"{name} in {language} at {width}px"
            if status != 200:
                problems.append(f"{where}: HTTP {status}")
            elsewhere = [url for url in tab.requested if not same_origin(url, public_site.url)]
            if elsewhere:
                problems.append(f"{where}: asked other sites for {elsewhere}")
            if width == PHONE["width"] and tab.scroll_width() > width:
                problems.append(f"{where}: {tab.scroll_width()}px wide, scrolls sideways")
            if tab.document() != (language, "rtl" if language == "ar" else "ltr"):
                problems.append(f"{where}: <html lang dir> is {tab.document()}")

    # Every screenshot is taken before any assertion, so a failing page still leaves its pictures.
    assert problems == []
