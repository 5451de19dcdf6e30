"""The feeds over HTTP, from a real uvicorn server in a thread."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from babel.dates import format_skeleton
from icalendar import Calendar
from sqlalchemy import Engine
from sqlmodel import select

from tests.support.factories import REPO
from tests.support.timelines import HLPF, MEETING, NOW, WriteTimeline
from tests.support.web import SECRET, serving, subscribe, sync
from tracker.store.engine import transaction
from tracker.store.models import Subscriber
from tracker.subscribers.registry import rotate
from tracker.subscribers.tokens import make_token


@pytest.fixture
def client(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Iterator[httpx.Client]:
    """A server that asks the store on every request (check_interval=0): changes show at once."""
    write_timeline("hlpf", HLPF)
    write_timeline("cwg-32", MEETING)
    sync(engine, schedules)
    with serving(engine, 0) as (http, _):
        yield http


def summaries(body: bytes) -> list[str]:
    calendar = Calendar.from_ical(body)
    return sorted(str(event["SUMMARY"]) for event in calendar.walk("VEVENT"))


def test_a_feed_is_served_as_utf8_calendar_with_caching_headers(client: httpx.Client) -> None:
    response = client.get("/feeds/all.ics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert response.headers["etag"].startswith('"') and not response.headers["etag"].startswith("W/")
    assert parsedate_to_datetime(response.headers["last-modified"]) <= datetime.now(UTC)
    assert "max-age" in response.headers["cache-control"]
    assert len(summaries(response.content)) == 6


def test_if_none_match_and_if_modified_since_give_304_without_a_body(client: httpx.Client) -> None:
    first = client.get("/feeds/hlpf.ics")

    by_tag = client.get("/feeds/hlpf.ics", headers={"If-None-Match": first.headers["etag"]})
    by_date = client.get("/feeds/hlpf.ics", headers={"If-Modified-Since": first.headers["last-modified"]})
    older = format_datetime(parsedate_to_datetime(first.headers["last-modified"]) - timedelta(days=1), usegmt=True)
    stale = client.get("/feeds/hlpf.ics", headers={"If-Modified-Since": older})
    other = client.get("/feeds/hlpf.ics", headers={"If-None-Match": '"something-else"'})

    assert (by_tag.status_code, by_tag.content) == (304, b"")
    assert by_tag.headers["etag"] == first.headers["etag"]
    assert by_date.status_code == 304
    assert stale.status_code == 200
    assert other.status_code == 200


def test_the_etag_changes_when_and_only_when_the_feed_changes(
    client: httpx.Client, engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    before = client.get("/feeds/hlpf.ics")
    sync(engine, schedules)  # no-op
    same = client.get("/feeds/hlpf.ics")
    write_timeline("hlpf", HLPF.replace("2017-02-24", "2017-02-27"))
    sync(engine, schedules)
    moved = client.get("/feeds/hlpf.ics")

    assert same.headers["etag"] == before.headers["etag"] and same.content == before.content
    assert moved.headers["etag"] != before.headers["etag"]
    assert b"20170227" in moved.content


def test_head_sends_the_headers_of_get_without_the_body(client: httpx.Client) -> None:
    get = client.get("/feeds/all.ics")
    head = client.head("/feeds/all.ics")

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == get.headers["etag"]
    assert head.headers["content-length"] == get.headers["content-length"]


def test_gzip_is_sent_when_asked_with_its_own_etag(client: httpx.Client) -> None:
    plain = client.get("/feeds/all.ics", headers={"Accept-Encoding": "identity"})
    packed = client.get("/feeds/all.ics", headers={"Accept-Encoding": "gzip"})
    raw = client.send(client.build_request("GET", "/feeds/all.ics", headers={"Accept-Encoding": "gzip"}), stream=True)
    compressed = b"".join(raw.iter_raw())

    assert packed.headers["content-encoding"] == "gzip"
    assert gzip.decompress(compressed) == plain.content
    assert packed.content == plain.content  # httpx decoded it
    assert packed.headers["etag"] != plain.headers["etag"]
    assert "Accept-Encoding" in packed.headers["vary"]


def test_the_audience_feed_holds_what_that_audience_must_act_on_and_the_meetings(client: httpx.Client) -> None:
    response = client.get("/feeds/audiences/membership.ics")

    names = summaries(response.content)
    assert len(names) == 2
    assert any("comments on the revised draft" in name.lower() for name in names)
    assert any("CWG-WSIS-32" in name for name in names)


def test_an_unknown_feed_is_a_404_that_lists_the_real_ones(client: httpx.Client) -> None:
    response = client.get("/feeds/hlpf-2017.ics")

    assert response.status_code == 404
    assert "No timeline 'hlpf-2017' here" in response.text
    assert "/feeds/hlpf.ics" in response.text and "/feeds/audiences/membership.ics" in response.text


def test_the_health_check_answers(client: httpx.Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_a_personal_feed_holds_what_the_subscriber_follows_with_their_offsets(
    client: httpx.Client, engine: Engine
) -> None:
    _, token = subscribe(engine, "amina@mission.example.org", audiences="membership", timelines="hlpf")
    with transaction(engine, write=True) as session:
        subscriber = session.exec(select(Subscriber)).one()
        subscriber.reminders = ["3d"]
        session.add(subscriber)

    response = client.get(f"/feeds/me/{token}.ics")

    assert response.status_code == 200
    assert response.headers["cache-control"].startswith("private")
    events = list(Calendar.from_ical(response.content).walk("VEVENT"))
    assert [str(e["UID"]).split("@")[0] for e in events] == ["hlpf/member-comments"]
    # 3 days before the all-day deadline, at 09:00: 63 hours before the start of its day.
    assert [a.decoded("TRIGGER") for a in events[0].walk("VALARM")] == [-timedelta(hours=63)]
    assert b"amina" not in response.content


TRANSLATED_HLPF = HLPF.replace(
    "    title: ITU Council contribution to HLPF-17\n",
    "    title:\n"
    "      en: ITU Council contribution to HLPF-17\n"
    "      fr: Contribution du Conseil de l’UIT au Forum politique de haut niveau de 2017\n",
).replace(
    "        title: Membership comments on the revised draft\n",
    "        title:\n"
    "          en: Membership comments on the revised draft\n"
    "          fr: Observations des membres sur le projet révisé\n",
)


def test_a_personal_feed_speaks_its_subscriber_s_language_and_the_public_feeds_stay_english(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", TRANSLATED_HLPF)
    sync(engine, schedules)
    _, french = subscribe(engine, "ghislain@mission.example.org", audiences="membership", language="fr")
    _, russian = subscribe(engine, "vladimir@mission.example.org", audiences="membership", language="ru")

    with serving(engine, 0, locales=REPO / "locale") as (http, _):
        mine = Calendar.from_ical(http.get(f"/feeds/me/{french}.ics").content)
        untranslated = Calendar.from_ical(http.get(f"/feeds/me/{russian}.ics").content)
        public = http.get("/feeds/hlpf.ics").content

    assert str(mine["X-WR-CALNAME"]) == "Tracker : vos échéances"
    assert [str(e["SUMMARY"]) for e in mine.walk("VEVENT")] == [
        "Membres : Observations des membres sur le projet révisé"
        " — Contribution du Conseil de l’UIT au Forum politique de haut niveau de 2017"
    ]
    # No Russian title: the English one, with the English words around it, under a Russian name.
    assert str(untranslated["X-WR-CALNAME"]) == "Tracker: Ваши сроки"
    assert [str(e["SUMMARY"]) for e in untranslated.walk("VEVENT")] == [
        "Membership: comments on the revised draft — ITU Council contribution to HLPF-17"
    ]
    assert summaries(public) == sorted(
        [
            "Membership: comments on the revised draft — ITU Council contribution to HLPF-17",
            "Secretariat: Final draft posted — ITU Council contribution to HLPF-17",
            "Secretariat: Final text submitted to the UN — ITU Council contribution to HLPF-17",
            "Secretariat: Revised draft posted — ITU Council contribution to HLPF-17",
        ]
    )


def test_a_personal_feed_describes_its_items_in_its_subscriber_s_words_and_dates(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", TRANSLATED_HLPF)
    sync(engine, schedules)
    _, french = subscribe(engine, "ghislain@mission.example.org", audiences="membership", language="fr")
    _, russian = subscribe(engine, "vladimir@mission.example.org", audiences="membership", language="ru")

    with serving(engine, 0, locales=REPO / "locale") as (http, _):
        [mine] = Calendar.from_ical(http.get(f"/feeds/me/{french}.ics").content).walk("VEVENT")
        [theirs] = Calendar.from_ical(http.get(f"/feeds/me/{russian}.ics").content).walk("VEVENT")
        public = Calendar.from_ical(http.get("/feeds/hlpf.ics").content).walk("VEVENT")

    day = mine.decoded("DTSTART")
    french_day, russian_day = (format_skeleton("yMMMEd", day, locale=code) for code in ("fr", "ru"))
    assert f"Échéance : fin de journée le {french_day}, heure de Europe/Zurich" in str(mine["DESCRIPTION"])
    assert "Responsable : Membres" in str(mine["DESCRIPTION"])
    # A title without a Russian translation keeps its words, but the lines around it are Russian.
    assert f"Срок: до конца дня {russian_day}, время Europe/Zurich" in str(theirs["DESCRIPTION"])
    english = format_skeleton("yMMMEd", day, locale="en_GB")
    assert any(f"Due: by the end of {english}, Europe/Zurich time" in str(e["DESCRIPTION"]) for e in public)


def test_a_wrong_revoked_or_unconfirmed_personal_feed_is_a_404(client: httpx.Client, engine: Engine) -> None:
    subscriber_id, token = subscribe(engine, "li@mission.example.org", audiences="membership")
    _, pending = subscribe(engine, "olga@mission.example.org", confirmed=False)
    assert client.get(f"/feeds/me/{token}.ics").status_code == 200

    with transaction(engine, write=True) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        assert subscriber is not None
        rotate(session, subscriber, ["feed"], NOW)
    fresh = make_token(SECRET, "feed", subscriber_id, 1)

    assert client.get(f"/feeds/me/{token}.ics").status_code == 404
    assert client.get(f"/feeds/me/{fresh}.ics").status_code == 200
    assert client.get(f"/feeds/me/{pending}.ics").status_code == 404
    assert client.get("/feeds/me/garbage.ics").status_code == 404
    assert client.get(f"/feeds/me/{fresh[:-2]}xx.ics").status_code == 404


def test_a_cached_feed_is_answered_the_same_by_the_fast_path(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    write_timeline("hlpf", HLPF)
    sync(engine, schedules)
    with serving(engine, 3600) as (http, front):
        requests = [
            ("GET", {}),
            ("HEAD", {}),
            ("GET", {"Accept-Encoding": "gzip"}),
            ("GET", {"Accept-Encoding": "identity"}),
        ]
        # The first round builds the feed through the app; the second is served from the front.
        rounds = [[http.request(method, "/feeds/hlpf.ics", headers=h) for method, h in requests] for _ in range(2)]
        etag = rounds[0][3].headers["etag"]
        conditional = [http.get("/feeds/hlpf.ics", headers={"If-None-Match": etag}) for _ in range(2)]
        assert front.served >= len(requests) + 2

    for slow, fast in zip(rounds[0], rounds[1], strict=True):
        assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
        for name in ("etag", "last-modified", "content-type", "content-length", "cache-control", "vary"):
            assert fast.headers.get(name) == slow.headers.get(name), name
    assert [r.status_code for r in conditional] == [304, 304]


def test_opening_the_confirm_link_changes_nothing_and_its_button_confirms_once(
    client: httpx.Client, engine: Engine
) -> None:
    subscriber_id, _ = subscribe(engine, "nadia@mission.example.org", confirmed=False)
    link = f"/confirm/{make_token(SECRET, 'confirm', subscriber_id, 0)}"

    # What a mail provider's link scanner does: open the link, maybe twice, maybe HEAD first.
    scanned = [client.head(link), client.get(link), client.get(link)]
    with transaction(engine) as session:
        still = session.get(Subscriber, subscriber_id)
        assert still is not None and (still.state, still.confirm_version) == ("pending", 0)
    pressed = client.post(link)
    again = client.post(link)

    assert [s.status_code for s in scanned] == [200, 200, 200]
    page = scanned[1].text
    assert "<bdi>nadia@mission.example.org</bdi>" in page
    assert re.findall(r'<form method="post" action="([^"]+)">', page) == [link]
    assert page.count("<button") == 1 and 'data-action="confirm"' in page and "<script" not in page
    assert scanned[1].headers["cache-control"] == "no-store" and scanned[1].headers["referrer-policy"] == "no-referrer"
    assert pressed.status_code == 200 and "is confirmed" in pressed.text
    assert '<meta name="referrer" content="no-referrer">' in pressed.text
    assert again.status_code == 404 and client.get(link).status_code == 404  # the link is spent
    with transaction(engine) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        assert subscriber is not None and subscriber.state == "confirmed"


def test_the_confirm_page_keeps_a_language_named_in_its_address(client: httpx.Client, engine: Engine) -> None:
    subscriber_id, _ = subscribe(engine, "li@mission.example.org", confirmed=False, language="zh")
    link = f"/confirm/{make_token(SECRET, 'confirm', subscriber_id, 0)}"

    own = client.get(link)
    asked = client.get(f"{link}?lang=ar")

    assert '<html lang="zh-Hans" dir="ltr">' in own.text and f'action="{link}"' in own.text
    assert '<html lang="ar" dir="rtl">' in asked.text and f'action="{link}?lang=ar"' in asked.text
    assert '<html lang="ar" dir="rtl">' in client.post(f"{link}?lang=ar").text


def test_one_click_unsubscribe_works_without_a_page_and_a_get_changes_nothing(
    client: httpx.Client, engine: Engine
) -> None:
    subscriber_id, _ = subscribe(engine, "li@mission.example.org")
    link = f"/unsubscribe/{make_token(SECRET, 'manage', subscriber_id, 0)}"

    shown = client.get(link)
    with transaction(engine) as session:
        still = session.get(Subscriber, subscriber_id)
        assert still is not None and still.state == "confirmed"
    clicked = client.post(link, content=b"List-Unsubscribe=One-Click",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip

    assert shown.status_code == 200 and f'<form method="post" action="{urlsplit(link).path}">' in shown.text
    assert 'name="List-Unsubscribe" value="One-Click"' in shown.text
    assert clicked.status_code == 200 and "will receive no more messages" in clicked.text
    assert 'href="/subscribe" data-link="subscribe"' in clicked.text and "List-Unsubscribe" not in clicked.text
    with transaction(engine) as session:
        gone = session.get(Subscriber, subscriber_id)
        assert gone is not None and gone.state == "unsubscribed"
    assert client.post(f"/unsubscribe/{make_token(SECRET, 'manage', subscriber_id, 7)}").status_code == 404
    assert client.post("/unsubscribe/forged.token").status_code == 404


def test_pages_escape_what_subscribers_typed(client: httpx.Client, engine: Engine) -> None:
    subscriber_id, _ = subscribe(engine, "x@mission.example.org", confirmed=False)
    with transaction(engine, write=True) as session:
        subscriber = session.get(Subscriber, subscriber_id)
        assert subscriber is not None
        subscriber.email = "<script>alert(1)</script>@mission.example.org"
        session.add(subscriber)

    page = client.get(f"/unsubscribe/{make_token(SECRET, 'manage', subscriber_id, 0)}")

    assert "<script>" not in page.text and "&lt;script&gt;" in page.text


def test_the_confirmed_page_says_what_comes_next_in_the_subscriber_s_language_with_their_feed(
    client: httpx.Client, engine: Engine
) -> None:
    subscriber_id, feed = subscribe(engine, "ghislain@mission.example.org", confirmed=False, language="fr")

    page = client.post(f"/confirm/{make_token(SECRET, 'confirm', subscriber_id, 0)}", headers={"Accept-Language": "en"})

    assert page.status_code == 200 and '<html lang="fr" dir="ltr">' in page.text
    assert "Votre flux de calendrier personnel" in page.text
    manage = make_token(SECRET, "manage", subscriber_id, 0)
    assert re.search(rf'href="[^"]*/preferences/{re.escape(manage)}" data-link="preferences"', page.text)
    assert re.search(rf'href="[^"]*/unsubscribe/{re.escape(manage)}" data-link="unsubscribe"', page.text)
    assert re.search(r'href="[^"]*/feeds/me/[^"]+\.ics" data-link="feed"', page.text)
    buttons = dict(re.findall(r'<a href="([^"]+)" data-feed="(\w+)"', page.text))
    assert sorted(buttons.values()) == ["download", "google", "outlook", "webcal"]
    fresh = make_token(SECRET, "feed", subscriber_id, 0)
    assert f"/feeds/me/{fresh}.ics" in page.text and feed == fresh
    assert client.get(f"/feeds/me/{fresh}.ics").status_code == 200  # the feed the page offers works at once


def test_the_unsubscribe_page_keeps_a_language_named_in_its_address_and_then_says_it_is_done(
    client: httpx.Client, engine: Engine
) -> None:
    subscriber_id, _ = subscribe(engine, "li@mission.example.org", language="zh")
    link = f"/unsubscribe/{make_token(SECRET, 'manage', subscriber_id, 0)}"

    own = client.get(link)
    asked = client.get(f"{link}?lang=ar")
    left = client.post(f"{link}?lang=ar", data={"List-Unsubscribe": "One-Click"})
    again = client.get(link)

    assert '<html lang="zh-Hans" dir="ltr">' in own.text
    assert '<html lang="ar" dir="rtl">' in asked.text and f'action="{link}?lang=ar"' in asked.text
    assert left.status_code == 200 and '<html lang="ar" dir="rtl">' in left.text
    assert 'href="/subscribe?lang=ar" data-link="subscribe"' in left.text
    assert (
        again.status_code == 200
        and "List-Unsubscribe" not in again.text
        and 'href="/subscribe" data-link="subscribe"' in again.text
    )
