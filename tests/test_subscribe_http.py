"""Subscribing over HTTP (double opt-in), the preferences page, and the per-client limit."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from tests.support.preferences import Clock, MakeClient, csrf, preferences_link
from tests.support.timelines import NOW
from tests.support.web import AMINA, BASE, SECRET, stored, subscribe
from tracker.store.engine import transaction
from tracker.store.models import Delivery, Event, Subscriber
from tracker.subscribers.tokens import make_token
from tracker.web.ratelimit import SlidingWindow, client_key


def confirm_rows(engine: Engine) -> list[Delivery]:
    with transaction(engine) as session:
        return list(session.exec(select(Delivery).where(Delivery.kind == "confirm")))


def events(engine: Engine, kind: str) -> list[Event]:
    with transaction(engine) as session:
        return list(session.exec(select(Event).where(Event.kind == kind)))


def test_it_subscribes_over_json_as_pending_with_one_confirmation_email_planned(
    http: httpx.Client, engine: Engine
) -> None:
    response = http.post("/subscribe", json=AMINA)

    assert response.status_code == 202
    assert response.json()["status"] == "check-your-inbox"
    subscriber = stored(engine, "amina@mission.example.org")
    assert subscriber is not None
    assert (subscriber.state, subscriber.language, subscriber.timezone, subscriber.digest) == (
        "pending", "fr", "Africa/Dakar", "weekly")  # fmt: skip
    assert (subscriber.audiences, subscriber.timelines, subscriber.reminders) == (["membership"], ["hlpf"], None)
    rows = confirm_rows(engine)
    assert [(r.subscriber_id, r.state, r.send_at) for r in rows] == [(subscriber.id, "planned", NOW)]


def test_asking_again_within_five_minutes_plans_no_second_email_and_answers_the_same(
    http: httpx.Client, engine: Engine, clock: Clock
) -> None:
    first = http.post("/subscribe", json=AMINA)
    clock.at = NOW + timedelta(minutes=4)
    again = http.post("/subscribe", json=AMINA)
    assert len(confirm_rows(engine)) == 1

    clock.at = NOW + timedelta(minutes=6)
    later = http.post("/subscribe", json=AMINA)

    assert first.status_code == again.status_code == later.status_code == 202
    assert first.content == again.content == later.content
    assert len(confirm_rows(engine)) == 2  # the limit of the address held it back, not a lost request


def test_a_confirmed_address_gets_the_same_answer_and_nothing_changes(http: httpx.Client, engine: Engine) -> None:
    subscribe(engine, "li@mission.example.org", language="zh", audiences="membership")
    before = stored(engine, "li@mission.example.org")
    events_before = len(events(engine, "subscriber_updated"))

    known = http.post("/subscribe", json={**AMINA, "email": "LI@mission.example.org"})
    new = http.post("/subscribe", json=AMINA)

    assert (known.status_code, known.content, known.headers.get("content-length")) == (
        new.status_code, new.content, new.headers.get("content-length"))  # fmt: skip
    after = stored(engine, "li@mission.example.org")
    assert before is not None and after is not None
    assert after.model_dump() == before.model_dump()
    assert len(events(engine, "subscriber_updated")) == events_before
    amina = stored(engine, "amina@mission.example.org")
    assert amina is not None and [r.subscriber_id for r in confirm_rows(engine)] == [amina.id]


def test_an_unsubscribed_address_may_ask_again_and_is_pending_until_it_confirms(
    http: httpx.Client, engine: Engine
) -> None:
    subscriber_id, _ = subscribe(engine, "amina@mission.example.org")
    http.post(f"/unsubscribe/{make_token(SECRET, 'manage', subscriber_id, 0)}")

    response = http.post("/subscribe", json=AMINA)

    assert response.status_code == 202
    subscriber = stored(engine, "amina@mission.example.org")
    assert subscriber is not None and subscriber.state == "pending"
    assert [r.subscriber_id for r in confirm_rows(engine)] == [subscriber_id]


def test_a_client_over_its_limit_gets_429_with_retry_after(make_client: MakeClient, engine: Engine) -> None:
    http = make_client(subscribe_limit=2, subscribe_window=60)

    answers = [http.post("/subscribe", json={**AMINA, "email": f"m{i}@mission.example.org"}) for i in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 429]
    assert 0 < int(answers[2].headers["retry-after"]) <= 60
    assert stored(engine, "m2@mission.example.org") is None


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"language": "de"}, "language", "language 'de' is not one of ar, zh, en, fr, ru, es"),
        ({"language": "fra"}, "language", "(did you mean 'fr'?)"),
        ({"timelines": ["hlfp"]}, "timelines", "no timeline 'hlfp' (did you mean 'hlpf'?)"),
        ({"audiences": ["membrship"]}, "audiences", "no audience 'membrship' (did you mean 'membership'?)"),
        ({"timezone": "Europe/Geneva"}, "timezone", "unknown time zone 'Europe/Geneva'"),
        ({"digest": "daily"}, "digest", "digest 'daily' is not one of off, weekly"),
        ({"reminders": ["7d", "a week"]}, "reminders", "bad offset 'a week'"),
        ({"email": "someone@"}, "email", "is not an email address"),
        ({"langauge": "fr"}, "langauge", "unknown field 'langauge' (did you mean 'language'?)"),
        ({"audiences": "membership;secretariat", "timelines": [1]}, "timelines", "timelines must be a list of names"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    http: httpx.Client, engine: Engine, change: dict[str, object], field: str, message: str
) -> None:
    response = http.post("/subscribe", json={**AMINA, **change})

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", field]
    assert message in problem["msg"]
    assert stored(engine, "amina@mission.example.org") is None


def test_reminder_offsets_are_stored_latest_first_and_none_means_none(http: httpx.Client, engine: Engine) -> None:
    http.post("/subscribe", json={**AMINA, "reminders": ["1d", "2w", "4h", "1d"]})
    http.post("/subscribe", json={**AMINA, "email": "li@mission.example.org", "reminders": []})

    amina, li = stored(engine, "amina@mission.example.org"), stored(engine, "li@mission.example.org")
    assert amina is not None and amina.reminders == ["14d", "1d", "4h"]
    assert li is not None and li.reminders == []


def test_only_json_and_forms_are_accepted(http: httpx.Client, engine: Engine) -> None:
    # text/plain is what a cross-site page can post without a preflight: it must not count as JSON.
    response = http.post("/subscribe", content=b'{"email": "amina@mission.example.org"}',
                         headers={"Content-Type": "text/plain"})  # fmt: skip

    assert response.status_code == 415
    assert stored(engine, "amina@mission.example.org") is None


def test_a_form_post_needs_a_fresh_token_from_the_same_browser(
    make_client: MakeClient, engine: Engine, clock: Clock
) -> None:
    http, stranger = make_client(), make_client()
    page = http.get("/subscribe")
    token = csrf(page.text)
    form = {"email": "olga@mission.example.org", "language": "ru", "audiences": ["membership", "secretariat"]}

    missing = http.post("/subscribe", data=form)
    wrong = http.post("/subscribe", data={**form, "csrf_token": token[:-3] + "AAA"})
    elsewhere = stranger.post("/subscribe", data={**form, "csrf_token": token})  # no cookie of that browser
    clock.at = NOW + timedelta(hours=3)
    expired = http.post("/subscribe", data={**form, "csrf_token": token})
    assert stored(engine, "olga@mission.example.org") is None

    clock.at = NOW + timedelta(minutes=10)
    accepted = http.post("/subscribe", data={**form, "csrf_token": token})

    assert page.status_code == 200 and "tracker_csrf" in page.headers["set-cookie"]
    assert "httponly" in page.headers["set-cookie"].lower() and "samesite=strict" in page.headers["set-cookie"].lower()
    assert [r.status_code for r in (missing, wrong, elsewhere, expired)] == [403, 403, 403, 403]
    assert accepted.status_code == 202 and "Check your inbox" in accepted.text
    olga = stored(engine, "olga@mission.example.org")
    assert olga is not None and olga.state == "pending" and olga.audiences == ["membership", "secretariat"]
    assert len(confirm_rows(engine)) == 1


def test_a_form_with_a_mistake_comes_back_with_the_problem_and_what_was_typed(http: httpx.Client) -> None:
    token = csrf(http.get("/subscribe").text)

    response = http.post("/subscribe", data={"csrf_token": token, "email": "olga@mission.example.org",
                                             "name": "<b>Olga</b>", "timelines": ["hlfp"]})  # fmt: skip

    assert response.status_code == 422
    assert "There is no timeline “hlfp”. Did you mean “hlpf”?" in response.text
    assert 'value="olga@mission.example.org"' in response.text
    assert "&lt;b&gt;Olga&lt;/b&gt;" in response.text and "<b>Olga" not in response.text


def set_fields(engine: Engine, email: str, **values: object) -> None:
    with transaction(engine, write=True) as session:
        subscriber = session.exec(select(Subscriber).where(Subscriber.email_key == email)).one()
        for name, value in values.items():
            setattr(subscriber, name, value)
        session.add(subscriber)


def test_the_preferences_page_shows_every_setting_escaped(http: httpx.Client, engine: Engine) -> None:
    link = preferences_link(engine, "x@mission.example.org", name="<script>alert(1)</script>", language="ar",
                            timezone="Asia/Tokyo", audiences="secretariat", timelines="cwg-32")  # fmt: skip
    set_fields(engine, "x@mission.example.org", digest="weekly", reminders=["7d", "4h"])

    page = http.get(link)

    assert page.status_code == 200
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert '<option value="ar" lang="ar" selected>' in page.text and '<option value="weekly" selected>' in page.text
    assert '<option value="Asia/Tokyo" selected>' in page.text and 'value="7d, 4h"' in page.text
    assert 'name="audiences" value="secretariat" checked' in page.text
    assert 'name="audiences" value="membership">' in page.text
    assert 'name="timelines" value="cwg-32" checked' in page.text and 'value="hlpf">' in page.text
    assert re.search(rf'href="{BASE}/feeds/me/[^"]+\.ics"', page.text)
    assert f'href="{BASE}/unsubscribe/{link.rsplit("/", 1)[1]}"' in page.text
    assert 'value="rotate-feed"' in page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"


def settings_form(token: str, **changes: object) -> dict[str, object]:
    form = {"csrf_token": token, "name": "Li Wei", "language": "zh", "timezone": "Europe/Zurich",
            "audiences": ["membership"], "digest": "off", "reminders": "", "action": "save"}  # fmt: skip
    return {**form, **changes}


def test_saving_a_change_records_one_event_and_saving_the_same_records_none(http: httpx.Client, engine: Engine) -> None:
    link = preferences_link(engine, "li@mission.example.org", name="Li Wei", language="zh", audiences="membership")
    token = csrf(http.get(link).text)

    # In English whatever language is saved: the address names it.
    changed = http.post(f"{link}?lang=en", data=settings_form(token, language="es", reminders="1d, 2w"))
    same = http.post(f"{link}?lang=en", data=settings_form(token, language="es", reminders="14d 1d"))

    assert changed.status_code == 200 and "Saved." in changed.text
    assert same.status_code == 200 and "Nothing to save" in same.text
    subscriber = stored(engine, "li@mission.example.org")
    assert subscriber is not None and (subscriber.language, subscriber.reminders) == ("es", ["14d", "1d"])
    assert len(events(engine, "subscriber_updated")) == 1
    assert '<option value="es" lang="es" selected>' in same.text


def test_a_mistake_on_the_preferences_page_is_shown_with_422_and_changes_nothing(
    http: httpx.Client, engine: Engine
) -> None:
    link = preferences_link(engine, "li@mission.example.org", name="Li Wei", language="zh", audiences="membership")
    token = csrf(http.get(link).text)

    response = http.post(link, data=settings_form(token, language="de", name="Li <Wei>"))

    assert response.status_code == 422
    assert "“de”不在可选语言之列。" in response.text  # in the subscriber's language, Chinese
    assert 'value="Li &lt;Wei&gt;"' in response.text
    subscriber = stored(engine, "li@mission.example.org")
    assert subscriber is not None and (subscriber.language, subscriber.name) == ("zh", "Li Wei")
    assert events(engine, "subscriber_updated") == []


def test_preferences_need_the_form_token_of_that_link(http: httpx.Client, engine: Engine) -> None:
    link = preferences_link(engine, "li@mission.example.org", language="zh")
    other = preferences_link(engine, "olga@mission.example.org")
    foreign = csrf(http.get(other).text)

    missing = http.post(link, data=settings_form(""))
    borrowed = http.post(link, data=settings_form(foreign))

    assert (missing.status_code, borrowed.status_code) == (403, 403)
    subscriber = stored(engine, "li@mission.example.org")
    assert subscriber is not None and subscriber.language == "zh"


def test_rotating_the_feed_link_retires_the_old_one(http: httpx.Client, engine: Engine) -> None:
    link = preferences_link(engine, "li@mission.example.org", audiences="membership")
    page = http.get(link)
    old = re.search(rf'href="{BASE}(/feeds/me/[^"]+\.ics)"', page.text)
    assert old is not None and http.get(old.group(1)).status_code == 200

    rotated = http.post(link, data={"csrf_token": csrf(page.text), "action": "rotate-feed"})

    new = re.search(rf'href="{BASE}(/feeds/me/[^"]+\.ics)"', rotated.text)
    assert rotated.status_code == 200 and "the old one no longer works" in rotated.text
    assert new is not None and new.group(1) != old.group(1)
    assert http.get(old.group(1)).status_code == 404
    assert http.get(new.group(1)).status_code == 200
    assert len(events(engine, "subscriber_tokens_rotated")) == 1


def test_a_pending_subscriber_sees_no_feed_link_yet(http: httpx.Client, engine: Engine) -> None:
    page = http.get(preferences_link(engine, "olga@mission.example.org", confirmed=False))

    assert page.status_code == 200 and 'data-state="pending"' in page.text and "is not confirmed yet" in page.text
    assert "/feeds/me/" not in page.text and "rotate-feed" not in page.text


def test_a_wrong_or_replaced_preferences_link_is_a_404(http: httpx.Client, engine: Engine) -> None:
    link = preferences_link(engine, "li@mission.example.org")
    token = csrf(http.get(link).text)
    with transaction(engine, write=True) as session:
        subscriber = session.exec(select(Subscriber)).one()
        subscriber.manage_version += 1
        session.add(subscriber)

    assert http.get(link).status_code == 404
    assert http.post(link, data=settings_form(token, language="fr")).status_code == 404
    assert http.get("/preferences/garbage").status_code == 404
    assert "not valid any more" in http.get("/preferences/forged.token").text


def test_the_window_lets_a_client_in_again_once_its_oldest_request_is_old_enough() -> None:
    now = [100.0]
    window = SlidingWindow(2, 60, clock=lambda: now[0], max_keys=2)

    first = [window.hit("a"), window.hit("a"), window.hit("a")]
    now[0] = 130.0
    refused = window.hit("a")
    now[0] = 160.5
    again = window.hit("a")

    assert first[:2] == [0.0, 0.0] and first[2] == pytest.approx(60)
    assert refused == pytest.approx(30)
    assert again == 0.0


def test_the_window_forgets_the_least_recently_seen_client_first() -> None:
    window = SlidingWindow(1, 60, clock=lambda: 0.0, max_keys=2)

    window.hit("a")
    window.hit("b")
    refused = window.hit("a")  # also makes "a" the most recently seen
    window.hit("c")

    assert refused > 0
    assert window.hit("b") == 0.0  # forgotten: memory stays bounded, whatever the number of clients
    assert window.hit("c") > 0


def test_clients_are_keyed_by_address_and_ipv6_hosts_by_their_64() -> None:
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key(None) == "unknown" and client_key("testclient") == "testclient"


# --- the pages in the reader's language -------------------------------------------------------
# Only the last test reads the subscription pages' own catalog entries; the others check words the
# layout and the emails already had.


def html_tag(page: str) -> str:
    found = re.search(r"<html [^>]*>", page)
    assert found is not None, page[:200]
    return found.group(0)


def form_action(page: str) -> str:
    found = re.search(r'<form method="post" action="([^"]*)"', page)
    assert found is not None, page
    return found.group(1).replace("&amp;", "&")


def selected_zones(page: str) -> list[str]:
    found = re.search(r'<select id="f-timezone" name="timezone"[^>]*>(.*?)</select>', page, re.S)
    assert found is not None, page
    return re.findall(r'<option value="([^"]+)" selected>', found.group(1))


def test_the_subscribe_page_speaks_the_browser_s_language_and_says_it_depends_on_it(http: httpx.Client) -> None:
    page = http.get("/subscribe", headers={"Accept-Language": "de-CH, fr;q=0.8, en;q=0.5"})

    assert page.status_code == 200
    assert html_tag(page.text) == '<html lang="fr" dir="ltr">'
    assert page.headers["vary"] == "Accept-Language" and page.headers["content-language"] == "fr"
    assert "<h1>S’abonner</h1>" in page.text
    assert '<option value="fr" lang="fr" selected>' in page.text  # the form's language is the page's
    assert form_action(page.text) == "/subscribe"
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert '<meta name="referrer" content="no-referrer">' in page.text


def test_a_language_named_in_the_url_wins_and_arabic_reads_right_to_left(http: httpx.Client) -> None:
    page = http.get("/subscribe?lang=ar", headers={"Accept-Language": "fr"})

    assert html_tag(page.text) == '<html lang="ar" dir="rtl">'
    assert "vary" not in page.headers and page.headers["content-language"] == "ar"
    assert '<option value="ar" lang="ar" selected>' in page.text
    assert form_action(page.text) == "/subscribe?lang=ar"


def test_every_form_field_has_a_label_and_each_language_is_named_in_itself(http: httpx.Client) -> None:
    page = http.get("/subscribe?lang=zh").text

    for name in ("email", "name", "language", "timezone", "digest"):
        assert f'<label for="f-{name}">' in page and f'id="f-{name}" name="{name}"' in page, name
    for code, words in (("ar", "العربية"), ("zh", "中文"), ("en", "English"), ("fr", "Français"), ("ru", "Русский"),
                        ("es", "Español")):  # fmt: skip
        assert re.search(rf'<option value="{code}" lang="[^"]+"( selected)?>{words}</option>', page), code
    assert '<label><input type="checkbox" name="audiences" value="membership" checked> 成员</label>' in page
    assert "<bdi>ITU Council contribution to HLPF-17</bdi>" in page


def test_the_zone_select_offers_every_zone_with_the_default_selected_and_the_browser_s_with_javascript(
    http: httpx.Client,
) -> None:
    page = http.get("/subscribe").text

    assert selected_zones(page) == ["Europe/Zurich"]
    assert '<option value="Africa/Dakar">' in page and '<option value="Pacific/Auckland">' in page
    assert "Intl.DateTimeFormat().resolvedOptions().timeZone" in page


def test_timelines_named_in_the_link_are_ticked_and_unknown_ones_left_out(http: httpx.Client) -> None:
    page = http.get("/subscribe?timelines=hlpf&timelines=nowhere").text

    assert 'name="timelines" value="hlpf" checked>' in page
    assert 'name="timelines" value="cwg-32">' in page
    assert "nowhere" not in page.split("<form", 1)[1]


def test_a_form_post_with_lang_in_its_address_answers_in_that_language(make_client: MakeClient, engine: Engine) -> None:
    http = make_client()
    page = http.get("/subscribe?lang=ru")
    form = {"csrf_token": csrf(page.text), "email": "olga@mission.example.org", "language": "ru",
            "timezone": "Europe/Moscow"}  # fmt: skip

    sent = http.post(form_action(page.text), data=form)

    assert sent.status_code == 202 and html_tag(sent.text) == '<html lang="ru" dir="ltr">'
    olga = stored(engine, "olga@mission.example.org")
    assert olga is not None and (olga.language, olga.timezone) == ("ru", "Europe/Moscow")


def test_a_form_over_the_limit_gets_429_with_retry_after_in_the_page_s_language(make_client: MakeClient) -> None:
    http = make_client(subscribe_limit=1, subscribe_window=60)
    token = csrf(http.get("/subscribe").text)
    form = {"csrf_token": token, "email": "olga@mission.example.org"}

    answers = [http.post("/subscribe?lang=es", data=form) for _ in range(2)]

    assert [a.status_code for a in answers] == [202, 429]
    assert 0 < int(answers[1].headers["retry-after"]) <= 60
    assert html_tag(answers[1].text) == '<html lang="es" dir="ltr">'


def test_the_preferences_page_speaks_the_subscriber_s_language_unless_the_url_names_another(
    http: httpx.Client, engine: Engine
) -> None:
    link = preferences_link(engine, "ghislain@mission.example.org", language="fr", audiences="membership")

    own = http.get(link, headers={"Accept-Language": "en"})
    asked = http.get(f"{link}?lang=en", headers={"Accept-Language": "fr"})

    assert html_tag(own.text) == '<html lang="fr" dir="ltr">' and "<h2>Se désabonner</h2>" in own.text
    assert form_action(own.text) == link
    assert html_tag(asked.text) == '<html lang="en" dir="ltr">' and "<h1>Your settings</h1>" in asked.text
    assert form_action(asked.text) == f"{link}?lang=en"
    assert f'href="{BASE}/unsubscribe/{link.rsplit("/", 1)[1]}?lang=en" data-link="unsubscribe"' in asked.text


def test_after_choosing_arabic_the_saved_page_is_arabic_right_to_left(http: httpx.Client, engine: Engine) -> None:
    link = preferences_link(engine, "li@mission.example.org", name="Li Wei", language="zh", audiences="membership")
    token = csrf(http.get(link).text)

    saved = http.post(link, data=settings_form(token, language="ar"))

    assert saved.status_code == 200
    assert html_tag(saved.text) == '<html lang="ar" dir="rtl">'
    assert '<option value="ar" lang="ar" selected>' in saved.text


def test_a_mistake_names_its_field_and_says_what_is_wrong_in_the_page_s_language(
    http: httpx.Client, engine: Engine
) -> None:
    link = preferences_link(engine, "ghislain@mission.example.org", language="fr", audiences="membership")
    token = csrf(http.get(link).text)

    language = http.post(link, data=settings_form(token, language="de"))
    zone = http.post(link, data=settings_form(token, language="fr", timezone="Europe/Geneva"))

    assert (language.status_code, zone.status_code) == (422, 422)
    alert = language.text.split('role="alert"', 1)[1].split("</div>", 1)[0]
    assert '<a href="#f-language">Langue</a>' in alert
    assert "« de » ne fait pas partie des langues proposées." in alert and 'lang="en"' not in alert
    assert 'name="timezone" aria-invalid="true"' in zone.text
    assert selected_zones(zone.text) == ["Europe/Geneva"]  # what was sent comes back


def alert_of(page: str) -> str:
    return page.split('role="alert"', 1)[1].split("</div>", 1)[0]


@pytest.mark.parametrize(
    ("asked", "said"),
    [
        ({"headers": {"Accept-Language": "fr-CH, en;q=0.5"}}, "Il n’y a pas de calendrier « &lt;b&gt;hlfp"),
        ({"params": {"lang": "ar"}}, "لا يوجد جدول زمني باسم «&lt;b&gt;hlfp"),
        ({"params": {"lang": "zh"}}, "没有名为“&lt;b&gt;hlfp"),
        ({"params": {"lang": "es"}}, "No existe el cronograma «&lt;b&gt;hlfp"),
        ({"params": {"lang": "ru"}}, "Графика «&lt;b&gt;hlfp"),
        ({"params": {"lang": "en"}}, "There is no timeline “&lt;b&gt;hlfp"),
    ],
)
def test_a_subscribe_form_with_a_mistake_says_it_in_the_reader_s_language_escaped(
    http: httpx.Client, asked: dict[str, dict[str, str]], said: str
) -> None:
    token = csrf(http.get("/subscribe").text)
    form = {"csrf_token": token, "email": "olga@mission.example.org", "timelines": ["<b>hlfp</b>" + "x" * 500]}

    response = http.post("/subscribe", data=form, **asked)  # type: ignore[arg-type]

    assert response.status_code == 422
    alert = alert_of(response.text)
    assert said in alert and "<b>" not in alert and 'lang="en"' not in alert
    assert "x" * 40 not in alert  # a long value is shortened, not repeated whole


@pytest.mark.parametrize(
    ("code", "fields", "said"),
    [
        ("fr", {"email": "olga@"}, "Ce n’est pas une adresse électronique : vérifiez ce que vous avez saisi."),
        ("ar", {"timezone": "Mars/Olympus"}, "«Mars/Olympus» ليست منطقة زمنية: اختر مكانًا من القائمة."),
        ("zh", {"digest": "daily"}, "“daily”不是每周摘要的可选项。"),
        ("ru", {"language": "de"}, "«de» нет среди предложенных языков."),
        ("es", {"name": "x" * 201}, "Un nombre tiene como máximo 200 caracteres."),
    ],
)
def test_each_language_says_what_is_wrong_with_a_field(
    http: httpx.Client, code: str, fields: dict[str, str], said: str
) -> None:
    token = csrf(http.get("/subscribe").text)

    response = http.post(f"/subscribe?lang={code}", data={"csrf_token": token, "email": "olga@mission.example.org",
                                                           **fields})  # fmt: skip

    assert response.status_code == 422 and said in alert_of(response.text)


def test_a_preferences_form_with_too_many_reminders_says_so_in_the_subscriber_s_language(
    http: httpx.Client, engine: Engine
) -> None:
    link = preferences_link(engine, "amina@mission.example.org", language="ar", audiences="membership")
    token = csrf(http.get(link).text)

    response = http.post(link, data=settings_form(token, language="ar", reminders="1d 2d 3d 4d 5d 6d"))

    assert response.status_code == 422
    assert "5 تذكيرات على الأكثر قبل كل موعد نهائي." in alert_of(response.text)
    assert html_tag(response.text) == '<html lang="ar" dir="rtl">'


def test_the_json_api_keeps_its_problems_in_english(http: httpx.Client) -> None:
    response = http.post("/subscribe?lang=fr", json={"email": "olga@mission.example.org", "language": "de"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"].startswith("language 'de' is not one of ar, zh, en, fr, ru, es")


def test_the_preferences_page_links_to_its_feed_and_to_unsubscribing(http: httpx.Client, engine: Engine) -> None:
    link = preferences_link(engine, "li@mission.example.org", audiences="membership")

    page = http.get(link).text

    assert re.search(rf'<a href="{BASE}/feeds/me/[^"]+\.ics" data-link="feed"', page)
    assert sorted(re.findall(r'data-feed="(\w+)"', page)) == ["download", "google", "outlook", "webcal"]
    assert 'data-link="unsubscribe"' in page


def test_a_wrong_link_is_explained_in_the_browser_s_language(http: httpx.Client) -> None:
    page = http.get("/preferences/forged.token", headers={"Accept-Language": "ru"})

    assert page.status_code == 404 and html_tag(page.text) == '<html lang="ru" dir="ltr">'
    assert page.headers["cache-control"] == "no-store"


def test_the_subscription_pages_use_their_own_catalog_entries(http: httpx.Client, engine: Engine) -> None:
    """Needs the subscription pages' entries in locale/*/LC_MESSAGES/messages.po."""
    li = preferences_link(engine, "li@mission.example.org", name="Li Wei", language="zh", audiences="membership")
    fr = preferences_link(engine, "ghislain@mission.example.org", language="fr", audiences="membership")
    pending, _ = subscribe(engine, "olga@mission.example.org", confirmed=False, language="ru")
    form = csrf(http.get("/subscribe").text)
    pages = {
        "Fuseau horaire": http.get("/subscribe", headers={"Accept-Language": "fr"}),
        "المنطقة الزمنية": http.get("/subscribe?lang=ar"),
        "<h1>Vos paramètres</h1>": http.get(fr),
        "تم الحفظ.": http.post(li, data=settings_form(csrf(http.get(li).text), language="ar")),
        "Le formulaire contient une erreur": http.post(fr, data=settings_form(csrf(http.get(fr).text), language="de")),
        "Проверьте почтовый ящик": http.post("/subscribe?lang=ru", data={"csrf_token": form,
                                                                         "email": "ivan@mission.example.org"}),
        "Недействительная ссылка": http.get("/preferences/forged.token", headers={"Accept-Language": "ru"}),
        "<h1>Подтвердите подписку</h1>": http.get(f"/confirm/{make_token(SECRET, 'confirm', pending, 0)}"),
        "<h1>Подписка подтверждена</h1>": http.post(f"/confirm/{make_token(SECRET, 'confirm', pending, 0)}"),
    }  # fmt: skip

    assert [words for words, page in pages.items() if words not in page.text] == []
