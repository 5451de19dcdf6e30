"""Emails: requests in, RFC 5322 bytes out, read back with the email package and icalendar."""

from __future__ import annotations

import email
import email.policy
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from icalendar import Calendar
from jinja2 import TemplateError

from tests.support.emails import (
    BASE,
    DRAFT,
    HLPF,
    LOCALES,
    MEETING,
    NOW,
    PEOPLE,
    SENDER,
    SHOWN,
    SIDE_EVENT,
    SNAPSHOTS,
    SUBMISSION,
    TEMPLATES,
    links,
    make_request,
    make_view,
)
from tests.support.factories import REPO
from tracker.config import Settings
from tracker.emails import (
    KINDS,
    ChangeLine,
    EmailRequest,
    Kind,
    Recipient,
    Renderer,
    inline_template,
    inlining,
    message_id,
)
from tracker.emails import render as render_module
from tracker.feeds import CalendarInfo, build_feed, build_item_calendar, build_items_calendar, item_uid
from tracker.subscribers.links import Links
from tracker.text import LANGUAGES
from tracker.timelines.views import CompletionView, MilestoneView, Occurrence, list_upcoming


def parsed(message: EmailMessage) -> EmailMessage:
    """Read the message back from its bytes, as a receiving mail client would."""
    return email.message_from_bytes(bytes(message), policy=email.policy.default)


def render(renderer: Renderer, request: EmailRequest) -> EmailMessage:
    return parsed(renderer.render(request))


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def attachments(message: EmailMessage) -> list[EmailMessage]:
    return list(message.iter_attachments())


# --- structure and headers -----------------------------------------------------------------


@pytest.mark.parametrize("language", SHOWN)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_text_then_html_and_each_about_a_milestone_carries_its_calendar(
    renderer: Renderer, kind: Kind, language: str
) -> None:
    request = make_request(kind, language)
    message = render(renderer, request)

    views = [line.view for line in request.changes] or ([request.view] if request.view else [])
    about_a_milestone = bool(views)
    alternative = message.get_payload(0) if about_a_milestone else message
    assert isinstance(alternative, EmailMessage)
    assert alternative.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    assert [p.get_content_charset() for p in alternative.iter_parts()] == ["utf-8", "utf-8"]
    if about_a_milestone:
        assert message.get_content_type() == "multipart/mixed"
        calendars = attachments(message)  # one file: a changed message listing several puts them all in it
        assert [c.get_filename() for c in calendars] == [f"{views[0].key}.ics" if len(views) == 1 else "changes.ics"]
        for calendar in calendars:
            assert calendar.get_content_type() == "text/calendar"
            assert calendar.get_param("method") == "PUBLISH" and calendar.get_content_charset() == "utf-8"
    else:
        assert attachments(message) == []
    assert not message.defects and not any(part.defects for part in message.walk())


@pytest.mark.parametrize("language", SHOWN)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_the_list_and_bulk_headers_once_and_well_formed(
    renderer: Renderer, kind: Kind, language: str
) -> None:
    request = make_request(kind, language)
    message = render(renderer, request)
    address, name, _ = PEOPLE[language]

    for header in (
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Auto-Submitted",
        "Precedence",
        "Content-Language",
        "MIME-Version",
    ):
        assert len(message.get_all(header, [])) == 1, header
        assert not message[header].defects, header
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == (name, address)
    assert message["From"].addresses[0].addr_spec == "tracker@tracker.example.org"
    assert parsedate_to_datetime(message["Date"]) == request.now
    assert message["Message-ID"] == message_id(request.key, "tracker.example.org")
    assert message["List-Id"] == "<deadlines.tracker.example.org>"
    assert message["List-Unsubscribe"] == (
        f"<{BASE}/unsubscribe/tok>, <mailto:unsubscribe@tracker.example.org?subject=unsubscribe%20tok>"
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-generated" and message["Precedence"] == "bulk"
    assert message["Content-Language"] == {"zh": "zh-Hans"}.get(language, language)
    assert message["Subject"] and "\n" not in message["Subject"]


def test_a_long_name_in_cyrillic_survives_the_folding_of_the_to_header(renderer: Renderer) -> None:
    raw = bytes(renderer.render(make_request("confirm", "ru")))
    header = raw.split(b"\r\n\r\n")[0].decode("ascii").split("\r\nTo: ")[1].split("\r\nSubject:")[0]

    # RFC 2047 6.2: the space between two encoded words is no part of the name. The email
    # package's own parser keeps it (CPython gh-128110), so read the header with decode_header.
    assert str(make_header(decode_header(header))) == "Профессор Владимир Минкин <vladimir.minkin@example.org>"


def test_the_same_request_gives_the_same_bytes_and_another_key_another_message_id(renderer: Renderer) -> None:
    request = make_request("reminder")

    first, second = bytes(renderer.render(request)), bytes(renderer.render(request))
    other = renderer.render(replace(request, key="reminder:43:hlpf-2017/member-comments:en"))

    assert first == second
    assert other["Message-ID"] != parsed(renderer.render(request))["Message-ID"]
    assert message_id("k", "example.org") == message_id("k", "example.org") != message_id("k2", "example.org")
    assert re.fullmatch(r"<[0-9a-f]{32}@example\.org>", message_id("k", "example.org"))


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_in_every_language_matches_its_snapshot(renderer: Renderer, kind: Kind, language: str) -> None:
    data = bytes(renderer.render(make_request(kind, language)))
    path = SNAPSHOTS / f"{kind}.{language}.eml"

    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    assert data == path.read_bytes(), f"{path.name} changed: rerun with UPDATE_SNAPSHOTS=1 and review the diff"


# --- the calendar attachment ----------------------------------------------------------------


def test_the_reminder_attaches_the_feed_item_with_its_uid_and_sequence(renderer: Renderer) -> None:
    view = make_view()

    message = render(renderer, make_request("reminder", view=view))

    (part,) = attachments(message)
    calendar: Any = Calendar.from_ical(part.get_content())
    (event,) = calendar.walk("VEVENT")
    assert str(calendar["METHOD"]) == "PUBLISH"
    assert str(event["UID"]) == item_uid(view, BASE) == "hlpf-2017/member-comments@tracker.example.org"
    assert int(event["SEQUENCE"]) == view.revision


def test_the_attached_event_is_the_feed_s_event_byte_for_byte() -> None:
    info = CalendarInfo(name=HLPF, description="", url=BASE, base_url=BASE)
    view = SUBMISSION

    attached = build_item_calendar(view, Occurrence(view, "", view.due_at, None, None), info, now=NOW)
    fed = build_feed([view], info, now=NOW, cancelled_grace=timedelta(days=30))

    def vevent(data: bytes) -> bytes:
        return data[data.index(b"BEGIN:VEVENT") : data.index(b"END:VEVENT")]

    assert vevent(attached) == vevent(fed)
    assert b"BEGIN:VTIMEZONE\r\nTZID:Europe/Zurich" in attached  # a timed item brings its zone
    assert b"METHOD:PUBLISH\r\n" in attached and b"REFRESH-INTERVAL" not in attached


def test_a_calendar_is_built_for_an_occurrence_of_its_own_milestone_only() -> None:
    info = CalendarInfo(name=HLPF, description="", url=BASE, base_url=BASE)

    with pytest.raises(ValueError, match="occurrence"):
        build_item_calendar(make_view(), Occurrence(DRAFT, "", DRAFT.due_at, None, None), info, now=NOW)


def test_a_reminder_of_a_repeating_deadline_names_its_occurrence_and_attaches_the_series(renderer: Renderer) -> None:
    yearly = make_view(
        timeline_id="wsis-forum",
        key="contributions",
        title="Contributions to the WSIS Forum",
        due_at=datetime(2019, 1, 30, 22, 59, 59, tzinfo=UTC),
        repeat="FREQ=YEARLY",
    )
    request = make_request("reminder", view=yearly, due_at=datetime(2021, 1, 30, 22, 59, 59, tzinfo=UTC))

    message = render(renderer, request)

    assert "Saturday, 30 January 2021, end of day, Zurich time" in body(message, "plain")
    (event,) = Calendar.from_ical(attachments(message)[0].get_content()).walk("VEVENT")
    assert "RRULE" in event and str(event["UID"]) == "wsis-forum/contributions@tracker.example.org"


def test_the_calendar_of_a_milestone_is_built_once_per_language_for_all_its_reminders(
    renderer: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []

    def counting(items: list[tuple[MilestoneView, Any, Any]], **kwargs: Any) -> bytes:
        built.extend(view.key for view, _, _ in items)
        return build_items_calendar(items, **kwargs)

    monkeypatch.setattr(render_module, "build_items_calendar", counting)
    fresh = Renderer(TEMPLATES, LOCALES, SENDER)
    for _ in range(3):
        for language in LANGUAGES:
            fresh.render(make_request("reminder", language))
    fresh.render(make_request("reminder", view=make_view(revision=3)))

    # The attachment speaks the message's language: one build per language, then one per change.
    assert built == ["member-comments"] * (len(LANGUAGES) + 1)


# --- dates -----------------------------------------------------------------------------------

# Kigali is UTC+2, Riyadh and Moscow +3, Shanghai +8, Buenos Aires -3; Paris reads Geneva's clock.
WHEN = {
    "en": "Friday, 10 March 2017, end of day, Zurich time (your time: Saturday, 11 March 2017, 00:59)",
    "fr": "vendredi 10 mars 2017, en fin de journée, heure locale (Zurich)\n",
    "ar": (
        "الجمعة، 10 مارس 2017، قبل نهاية اليوم بتوقيت زيورخ (بحسب توقيتكم المحلي: السبت، 11 مارس 2017، الساعة 1:59 ص)"
    ),
    "zh": "苏黎世时间2017年3月10日星期五当日结束前（您当地时间：2017年3月11日星期六 06:59）",
    "ru": (
        "пятница, 10 марта 2017\u202fг., до конца дня по местному времени (Цюрих); "
        "по Вашему времени — суббота, 11 марта 2017\u202fг., 01:59"
    ),
    "es": (
        "viernes, 10 de marzo de 2017, al final del día, hora de Zúrich "
        "(en su hora local: viernes, 10 de marzo de 2017, 19:59)"
    ),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_date_is_in_the_recipient_s_language_and_zone_and_the_timeline_s_city(
    renderer: Renderer, language: str
) -> None:
    message = render(renderer, make_request("reminder", language))

    assert WHEN[language] in body(message, "plain")
    assert WHEN[language].strip() in body(message, "html")


def test_a_recipient_in_the_timeline_s_wall_clock_time_gets_no_second_time(renderer: Renderer) -> None:
    # Paris and Geneva read the same clock: "your time" would only repeat the date.
    message = render(renderer, make_request("reminder", "fr"))

    assert "fuseau horaire" not in body(message, "plain")


def test_a_timed_deadline_shows_its_time_here_and_there(renderer: Renderer) -> None:
    request = make_request(
        "reminder", "en", view=SUBMISSION, recipient=Recipient("a@example.org", "", "en", "Asia/Tokyo")
    )

    text = body(render(renderer, request), "plain")

    assert "Friday, 28 April 2017, 12:00, Zurich time (your time: Friday, 28 April 2017, 19:00)" in text


def test_a_timed_meeting_shows_its_hours_and_an_all_day_one_its_days(renderer: Renderer) -> None:
    uncancelled = replace(SIDE_EVENT, status="active")
    timed = make_request("reminder", "fr", view=uncancelled, offset="2h")
    days = make_request("reminder", "en", view=MEETING, offset="1d")

    assert (
        "mercredi 12 juillet 2017, de 13:15 à 14:30, heure locale (New York), "
        "soit mercredi 12 juillet 2017, de 19:15 à 20:30 dans votre fuseau horaire"
    ) in body(render(renderer, timed), "plain")
    text = body(render(renderer, days), "plain")
    assert "Wednesday 24\u2009January –\u2009Thursday 25 January 2018" in text  # CLDR's thin spaces
    assert "Starts tomorrow" in text


def test_an_unknown_recipient_zone_falls_back_to_the_timeline_s(renderer: Renderer) -> None:
    request = make_request("reminder", recipient=Recipient("a@example.org", "", "en", "Mars/Olympus"))

    text = body(render(renderer, request), "plain")

    assert "Friday, 10 March 2017, end of day, Zurich time\n" in text


def test_the_digest_groups_items_by_week_in_date_order(renderer: Renderer) -> None:
    text = body(render(renderer, make_request("digest", "en")), "plain")

    weeks = [line for line in text.splitlines() if re.fullmatch(r"\d.*20\d\d", line)]
    assert weeks == ["20–26 Feb 2017", "6–12 Mar 2017", "24–30 Apr 2017"]
    assert text.index("Revised draft posted ✓ done") < text.index("Membership comments") < text.index("Final text")


def test_an_empty_digest_says_nothing_is_due(renderer: Renderer) -> None:
    text = body(render(renderer, make_request("digest", "ru", digest=())), "plain")

    assert "В ближайшие недели сроков нет." in text


# --- languages -------------------------------------------------------------------------------


# Titles translated in the timeline file; Russian and Spanish are left to the English fallback.
COMMENTS_TITLES = {
    "fr": "Observations des membres sur le projet révisé",
    "ar": "تعليقات الأعضاء على المشروع المنقح",
    "zh": "成员对修订草案的意见",
}
HLPF_TITLES = {
    "fr": "Contribution du Conseil de l’UIT au Forum politique de haut niveau de 2017",
    "ar": "مساهمة مجلس الاتحاد في المنتدى السياسي الرفيع المستوى لعام 2017",
    "zh": "国际电联理事会向2017年高级别政治论坛提交的文稿",
}
TRANSLATED = make_view(titles=COMMENTS_TITLES, timeline_titles=HLPF_TITLES)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_translated_title_is_shown_in_the_recipient_s_language_and_english_otherwise(
    renderer: Renderer, language: str
) -> None:
    message = render(renderer, make_request("reminder", language, view=TRANSLATED))

    title = COMMENTS_TITLES.get(language, TRANSLATED.title)
    timeline = HLPF_TITLES.get(language, HLPF)
    assert title in message["Subject"]
    for subtype in ("plain", "html"):
        assert title in body(message, subtype) and timeline in body(message, subtype)
    if language in COMMENTS_TITLES:
        assert TRANSLATED.title not in body(message, "plain") and HLPF not in body(message, "plain")


def test_the_opened_notice_names_the_completed_step_in_the_recipient_s_language(renderer: Renderer) -> None:
    draft = replace(DRAFT, titles={"fr": "Projet révisé publié"})
    request = make_request("opened", "fr", view=TRANSLATED, predecessor=draft)

    text = body(render(renderer, request), "plain")

    assert "Projet révisé publié" in text and "Revised draft posted" not in text
    assert COMMENTS_TITLES["fr"] in text


def test_the_digest_lists_translated_titles_in_the_recipient_s_language(renderer: Renderer) -> None:
    views = [replace(DRAFT, titles={"zh": "修订草案已发布"}), TRANSLATED, SUBMISSION]
    items = list_upcoming(views, now=datetime(2017, 2, 20, 8, 0, tzinfo=UTC), window=timedelta(weeks=10))

    text = body(render(renderer, make_request("digest", "zh", digest=items)), "plain")

    assert (
        text.index("修订草案已发布") < text.index(COMMENTS_TITLES["zh"]) < text.index("Final text submitted to the UN")
    )
    assert HLPF_TITLES["zh"] in text  # the timeline of the comments, translated; the others' stay English


@pytest.mark.parametrize("language", LANGUAGES)
def test_html_declares_the_language_and_arabic_reads_right_to_left(renderer: Renderer, language: str) -> None:
    html = body(render(renderer, make_request("reminder", language)), "html")

    tag = {"zh": "zh-Hans"}.get(language, language)
    direction = "rtl" if language == "ar" else "ltr"
    assert html.startswith(f'<!DOCTYPE html><html lang="{tag}" dir="{direction}">')
    assert f'<body dir="{direction}"' in html


@pytest.mark.parametrize(("asked", "used"), [("fr-CH", "fr"), ("ZH_Hans", "zh"), ("de", "en"), ("", "en")])
def test_the_recipient_s_language_is_chosen_per_message_with_english_as_fallback(
    renderer: Renderer, asked: str, used: str
) -> None:
    message = render(renderer, make_request("cancelled", recipient=Recipient("a@example.org", "A", asked, "UTC")))

    assert message["Content-Language"] == {"zh": "zh-Hans"}.get(used, used)


@pytest.mark.parametrize(
    ("language", "offset", "words"),
    [
        ("ru", "1d", "Срок истекает завтра"),
        ("ru", "2d", "Срок истекает через 2 дня"),
        ("ru", "5d", "Срок истекает через 5 дней"),
        ("ru", "21d", "Срок истекает через 21 день"),
        ("ar", "1h", "الموعد النهائي بعد ساعة واحدة"),
        ("ar", "2h", "الموعد النهائي بعد ساعتين"),
        ("ar", "3h", "الموعد النهائي بعد 3 ساعات"),
        ("ar", "11d", "الموعد النهائي بعد 11 يومًا"),
        ("ar", "100d", "الموعد النهائي بعد 100 يوم"),
        ("fr", "90m", "Échéance dans 90 minutes"),
        ("zh", "14d", "还有14天截止"),
        ("es", "1h", "Vence en 1 hora"),
    ],
)
def test_reminders_count_down_in_each_language_s_plural_forms(
    renderer: Renderer, language: str, offset: str, words: str
) -> None:
    message = render(renderer, make_request("reminder", language, offset=offset))

    assert message["Subject"].startswith(words)


def test_arabic_has_six_plural_forms_from_zero_to_a_hundred(renderer: Renderer) -> None:
    arabic = renderer.languages["ar"]
    words = {n: arabic.ngettext("Due in {num} day", "Due in {num} days", n) for n in (0, 1, 2, 3, 10, 11, 99, 100, 102)}

    assert words == {
        0: "الموعد النهائي بعد 0 يوم",
        1: "الموعد النهائي بعد يوم واحد",
        2: "الموعد النهائي بعد يومين",
        3: "الموعد النهائي بعد 3 أيام",
        10: "الموعد النهائي بعد 10 أيام",
        11: "الموعد النهائي بعد 11 يومًا",
        99: "الموعد النهائي بعد 99 يومًا",
        100: "الموعد النهائي بعد 100 يوم",
        102: "الموعد النهائي بعد 102 يوم",
    }


def catalogs() -> Iterator[tuple[str, Catalog]]:
    for language in LANGUAGES:
        with (LOCALES / language / "LC_MESSAGES" / "messages.po").open("rb") as file:
            yield language, read_po(file)


def texts(value: object) -> tuple[str, ...]:
    """Return a catalog message's id or string as a tuple: one text, or its plural forms."""
    if isinstance(value, str):
        return (value,)
    assert isinstance(value, tuple | list)
    return tuple(str(text) for text in value)


def test_every_message_is_translated_in_all_six_languages_with_all_plural_forms() -> None:
    for language, catalog in catalogs():
        assert not catalog.fuzzy and not catalog.obsolete, language
        for message in catalog:
            if not message.id:
                continue
            forms = texts(message.string)
            assert all(forms) and not message.fuzzy, (language, message.id)
            if message.pluralizable:
                assert len(forms) == catalog.num_plurals, (language, message.id)


_PLACEHOLDER = re.compile(r"%\(\w+\)s|\{\w+\}")


def test_translations_keep_the_placeholders_and_bring_no_markup() -> None:
    for language, catalog in catalogs():
        for message in catalog:
            if not message.id:
                continue
            wanted = set(_PLACEHOLDER.findall("".join(texts(message.id))))
            for form in texts(message.string):
                # A plural form may spell its number out ("يومين"); no form may invent a value.
                found = set(_PLACEHOLDER.findall(form))
                assert found <= wanted and (message.pluralizable or found == wanted), (language, message.id)
                # Translations are trusted as HTML: keep markup out of them.
                assert not set("<>&") & set(form), (language, message.id)


def test_the_catalogs_hold_exactly_the_strings_of_the_templates_and_the_code() -> None:
    with (REPO / "babel.cfg").open() as file:
        method_map, options_map = parse_mapping_cfg(file)  # type: ignore[no-untyped-call]  # Babel leaves it unannotated
    found = {message for _, _, message, _, _ in extract_from_dir(REPO, method_map, options_map)}
    with (LOCALES / "messages.pot").open("rb") as file:
        template = {m.id for m in read_po(file) if m.id}

    assert found == template, "run pybabel extract and update (see babel.cfg)"
    for language, catalog in catalogs():
        assert {m.id for m in catalog if m.id} == template, language


# --- safety ------------------------------------------------------------------------------------


def test_cr_lf_in_a_title_or_a_name_cannot_add_a_header(renderer: Renderer) -> None:
    view = make_view(title="Comments\r\nBcc: victim@example.net\r\n\r\n<b>body</b>")
    someone = Recipient("delegate@example.org", "Delegate\r\nBcc: victim@example.net", "en", "UTC")

    message = render(renderer, make_request("reminder", view=view, recipient=someone))

    assert message.get_all("Bcc") is None
    assert message["Subject"] == "Due in 7 days: Comments Bcc: victim@example.net <b>body</b>"
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Delegate Bcc: victim@example.net", "delegate@example.org")


def test_html_in_a_title_summary_or_note_is_escaped(renderer: Renderer) -> None:
    script = "<script>alert(1)</script>"
    view = make_view(title=f"Comments {script}", summary=f"Read & {script}", timeline_title=f"HLPF {script}")
    predecessor = replace(
        DRAFT, title=f"Draft {script}", completions={"": CompletionView(NOW, script, "javascript:alert(1)")}
    )

    for kind in ("reminder", "opened"):
        html = body(render(renderer, make_request(kind, view=view, predecessor=predecessor)), "html")

        assert "<script" not in html and "javascript:" not in html
        assert "Comments &lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "Read &amp; &lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_text_part_reads_alone_with_links_written_out(renderer: Renderer) -> None:
    for kind in KINDS:
        text = body(render(renderer, make_request(kind)), "plain")

        assert not re.search(r"<[a-z/!]|&[a-z]+;|&#", text), kind
        # A sign-in email goes to a console user, who has no preferences, list or feed: its one link is its own.
        for link in (f"{BASE}/preferences/tok", f"{BASE}/unsubscribe/tok", f"{BASE}/feeds/me/tok.ics"):
            assert (link in text) == (kind != "sign-in"), (kind, link)
    assert f"{BASE}/confirm/tok" in body(render(renderer, make_request("confirm")), "plain")
    assert f"{BASE}/console/sign-in/tok" in body(render(renderer, make_request("sign-in")), "plain")


@pytest.mark.parametrize(
    ("kind", "missing", "problem"),
    [
        ("confirm", {"links": replace(links(), confirm=None)}, "links.confirm"),
        ("reminder", {"view": None}, "needs a view"),
        ("reminder", {"offset": None}, "offset"),
        ("changed", {"changes": ()}, "needs its changes"),
        ("digest", {"now": datetime(2017, 3, 3, 8, 0)}, "aware"),
    ],
)
def test_a_request_missing_what_its_kind_needs_is_refused(
    renderer: Renderer, kind: Kind, missing: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        renderer.render(make_request(kind, **missing))


# --- templates and CSS -------------------------------------------------------------------------


def test_the_renderer_inlines_css_once_per_template_not_per_message(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    inline = inlining.inline_css

    def counting(html: str, css: str | None) -> str:
        calls.append(html)
        return inline(html, css)

    monkeypatch.setattr(inlining, "inline_css", counting)
    fresh = Renderer(TEMPLATES, LOCALES, SENDER)
    loaded = len(calls)
    for number in range(100):
        fresh.render(make_request(KINDS[number % len(KINDS)], LANGUAGES[number % len(LANGUAGES)]))

    assert loaded == len(list(TEMPLATES.glob("*.html.j2"))) == len(calls)


def test_html_has_its_styles_inline_and_no_style_element(renderer: Renderer) -> None:
    html = body(render(renderer, make_request("reminder")), "html")

    assert "<style" not in html
    assert re.search(r'<h1 style="[^"]*font-size:22px', html)
    assert re.search(r'<p class="when" style="[^"]*border:1px solid', html)  # a kind's own element
    assert re.search(r'<td class="footer" style="', html)  # the layout's


def test_inlining_keeps_template_syntax_even_between_table_rows() -> None:
    source = '<table><tbody>{% for row in rows %}<tr><td class="x">{{ row }}</td></tr>{% endfor %}</tbody></table>'

    inlined = inline_template(source, ".x { color: red; }", "rows.html.j2")

    assert inlined == (
        '<table><tbody>{% for row in rows %}<tr><td class="x" style="color:red">{{ row }}</td></tr>'
        "{% endfor %}</tbody></table>"
    )


def test_inlining_refuses_template_syntax_the_html_parser_would_move() -> None:
    with pytest.raises(TemplateError, match=r"attrs\.html\.j2"):
        inline_template("<p {{ attributes }}>text</p>", "p { margin: 0; }", "attrs.html.j2")


@pytest.mark.parametrize("base", [BASE, "https://deadlines.council-working-group-on-wsis.example.org/tracker"])
def test_list_unsubscribe_stays_plain_ascii_urls_folded_only_between_them(renderer: Renderer, base: str) -> None:
    links = Links(
        unsubscribe=f"{base}/unsubscribe/MTIzNDUuMA.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
        unsubscribe_mailto="mailto:tracker@tracker.example.org?subject=unsubscribe%20MTIzNDUuMA.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
        preferences=f"{base}/preferences/MTIzNDUuMA.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
        feed=f"{base}/feeds/me/token.ics",
    )
    raw = bytes(renderer.render(replace(make_request("reminder", "en"), links=links)))
    header = re.search(rb"^List-Unsubscribe: .*?\r\n(?! )", raw, flags=re.MULTILINE | re.DOTALL)

    assert header is not None and b"=?" not in header.group()
    assert header.group() == (  # a URL is never cut: the fold goes between the two
        b"List-Unsubscribe: <" + links.unsubscribe.encode() + b">,\r\n <" + links.unsubscribe_mailto.encode() + b">\r\n"
    )


# --- an operator's own templates -----------------------------------------------------------

OUR_REMINDER = """{% extends "layout.txt.j2" %}
{% block subject %}Soon: {{ item.title }}{% endblock %}
{% block content %}Our own words on {{ item.title }}.{% endblock %}
"""


def test_an_operator_s_template_wins_and_every_other_is_the_shipped_one(renderer: Renderer, tmp_path: Path) -> None:
    (tmp_path / "emails").mkdir()
    (tmp_path / "emails" / "reminder.txt.j2").write_text(OUR_REMINDER)
    ours = Renderer(Settings(templates=tmp_path).template_folders("emails"), LOCALES, SENDER)
    title = make_view().title

    reminder = render(ours, make_request("reminder"))

    assert reminder["Subject"] == f"Soon: {title}"
    assert body(reminder, "plain").startswith(f"Our own words on {title}.\n\n-- \n")  # the shipped layout below it
    html = body(reminder, "html")
    assert "Open the attached calendar file" in html and "Our own words" not in html  # the shipped HTML template
    assert bytes(ours.render(make_request("confirm"))) == bytes(renderer.render(make_request("confirm")))


# --- a long list of changes ------------------------------------------------------------------


ROW = r"<tr><td><b>([^<]+)</b>.*?<td>\s*([^<]+)<br><s>([^<]+)</s>"  # a changed milestone: title, new, old date


def six_moved() -> tuple[Any, ...]:
    """Six membership deadlines of one timeline, each moved a week later: a cascade."""
    week = timedelta(days=7)
    views = [make_view(key=f"step-{n}", title=f"Step {n}", owner="membership", opens_after=None,
                       due_at=datetime(2017, 3, 10 + n, 22, 59, 59, tzinfo=UTC)) for n in range(1, 7)]  # fmt: skip
    return tuple(ChangeLine(view, "moved", view.main_at - week, view.main_at) for view in views)


@pytest.mark.parametrize(
    ("language", "first", "acts"),
    [
        ("en", "Step 1: Sat, 11 Mar 2017 (previously Sat, 4 Mar 2017)", "Action by: Membership"),
        ("fr", "Step 1 : sam. 11 mars 2017 (auparavant sam. 4 mars 2017)", "Responsable : Membres"),
    ],
)
def test_a_long_list_of_changes_gives_a_line_each_with_both_dates_and_who_acts_once(
    renderer: Renderer, language: str, first: str, acts: str
) -> None:
    message = render(renderer, make_request("changed", language, view=None, changes=six_moved()))

    text = body(message, "plain").replace("\xa0", " ")  # French puts a no-break space before a colon
    rows = [line for line in text.splitlines() if line.startswith("Step ")]
    assert rows[0] == first
    assert len(rows) == 6 and all(("2017" in row) for row in rows)
    assert text.splitlines().count(acts) == 1  # the same for all six: said once, under the list
    html = body(message, "html")
    # A row per milestone: its title, its new date, the old one struck through.
    cells: list[tuple[str, str, str]] = re.findall(ROW, html, re.DOTALL)
    assert [title for title, _, _ in cells] == [f"Step {n}" for n in range(1, 7)]
    assert all("2017" in new and "2017" in old for _, new, old in cells)
    assert render_module.BRIEF < 6


@pytest.mark.parametrize(
    ("language", "why"),
    [
        ("en", "Moved from Saturday, 11 March 2017, a non-working day."),
        ("fr", "Date déplacée : le samedi 11 mars 2017 est un jour non ouvré."),
    ],
)
def test_a_changed_message_says_the_new_date_was_rolled_off_a_non_working_day(
    renderer: Renderer, language: str, why: str
) -> None:
    rolled = make_view(rolled_from=date(2017, 3, 11))  # Saturday 11 March, rolled to Friday 10
    week = timedelta(days=7)
    one = (ChangeLine(rolled, "moved", rolled.main_at - week, rolled.main_at),)
    many = (*six_moved()[:5], *one)

    full = render(renderer, make_request("changed", language, view=None, changes=one))
    brief = render(renderer, make_request("changed", language, view=None, changes=many))

    lines = body(full, "plain").replace("\xa0", " ").splitlines()
    assert lines[lines.index(why) - 2].startswith(("New date: Friday, 10 March 2017", "Nouvelle date : vendredi"))
    assert why in body(full, "html").replace("\xa0", " ")
    for subtype in ("plain", "html"):  # the rolled one only, not the five others
        assert body(brief, subtype).replace("\xa0", " ").count(why) == 1
