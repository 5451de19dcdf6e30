"""Dates as each of the six languages writes them (CLDR, through Babel): emails, pages, feed descriptions and weeks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from babel import Locale
from babel.dates import format_date, format_interval, format_skeleton
from icalendar import Calendar

from tests.support.emails import LOCALES, make_request
from tests.support.factories import make_view
from tracker.emails import Renderer
from tracker.feeds import CalendarInfo, build_feed
from tracker.feeds.words import item_words
from tracker.i18n.languages import Language, load_language, untranslated
from tracker.i18n.wording import group_weeks
from tracker.text import LANGUAGES
from tracker.timelines.views import list_upcoming
from tracker.web.layout import PageLanguage
from tracker.web.pages import render_overview, render_timeline

DUE = date(2017, 3, 10)  # the comments deadline of make_view(), end of day in Geneva
NOW = datetime(2017, 3, 1, 12, 0, tzinfo=UTC)
BASE = "https://tracker.example.org"
# Read by eye against CLDR, so that a Babel upgrade that changed them would be noticed: (full, medium, short
# with weekday); CLDR puts a narrow no-break space before Russian "г.". Arabic keeps Latin digits: Babel's "ar"
# has no territory, and its default numbering is latn.
WRITTEN = {
    "en": ("Friday, 10 March 2017", "10 Mar 2017", "Fri, 10 Mar 2017"),
    "fr": ("vendredi 10 mars 2017", "10 mars 2017", "ven. 10 mars 2017"),
    "es": ("viernes, 10 de marzo de 2017", "10 mar 2017", "vie, 10 mar 2017"),
    "ru": ("пятница, 10 марта 2017\u202fг.", "10 мар. 2017\u202fг.", "пт, 10 мар. 2017\u202fг."),
    "zh": ("2017年3月10日星期五", "2017年3月10日", "2017年3月10日周五"),
    "ar": ("الجمعة، 10 مارس 2017", "10\u200f/03\u200f/2017", "الجمعة، 10 مارس 2017"),
}


def language(code: str) -> Language:
    return load_language(LOCALES, code)


@pytest.mark.parametrize("code", LANGUAGES)
def test_the_locales_write_the_day_as_read_by_eye(code: str) -> None:
    locale = language(code).locale

    written = (format_date(DUE, "full", locale=locale), format_date(DUE, "medium", locale=locale),
               format_skeleton("yMMMEd", DUE, locale=locale))  # fmt: skip

    assert written == WRITTEN[code]


@pytest.mark.parametrize("code", LANGUAGES)
def test_a_reminder_email_gives_the_day_in_the_reader_s_cldr_words(renderer: Renderer, code: str) -> None:
    message = renderer.render(make_request("reminder", code))

    text = message.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert format_date(DUE, "full", locale=language(code).locale) in body
    assert WRITTEN[code][0] in body
    assert not any("\u0660" <= char <= "\u0669" for char in body)  # no Arabic-Indic digits, as the pages


@pytest.mark.parametrize("code", LANGUAGES)
def test_the_pages_give_the_day_in_the_reader_s_cldr_words(code: str) -> None:
    chosen = PageLanguage(language(code), explicit=True)
    views = [make_view()]

    timeline = render_timeline(views, base_url=BASE, now=NOW, chosen=chosen, where=("/timelines/hlpf", {}))
    overview = render_overview(views, base_url=BASE, now=NOW, chosen=chosen, where=("/", {}), zone=None)

    assert format_date(DUE, "medium", locale=chosen.language.locale) in timeline  # the list beside the drawing
    assert WRITTEN[code][1] in timeline
    assert format_date(DUE, "full", locale=chosen.language.locale) in overview  # what is due in the coming weeks
    assert WRITTEN[code][0] in overview


@pytest.mark.parametrize("code", LANGUAGES)
def test_a_personal_feed_describes_the_day_in_the_reader_s_cldr_words(code: str) -> None:
    info = CalendarInfo(name="Mine", description="", url=f"{BASE}/", base_url=BASE, words=item_words(language(code)))

    data = build_feed([make_view()], info, now=NOW, cancelled_grace=timedelta(days=30))

    [event] = Calendar.from_ical(data).walk("VEVENT")
    description = str(event["DESCRIPTION"])
    assert format_skeleton("yMMMEd", DUE, locale=language(code).locale) in description
    assert WRITTEN[code][2] in description
    if code != "en":
        assert "Due:" not in description and "Timeline page:" not in description  # the labels are translated too


def test_a_public_feed_stays_english_with_cldr_dates() -> None:
    info = CalendarInfo(name="All", description="", url=f"{BASE}/", base_url=BASE)

    data = build_feed([make_view()], info, now=NOW, cancelled_grace=timedelta(days=30))

    [event] = Calendar.from_ical(data).walk("VEVENT")
    assert "Due: by the end of Fri, 10 Mar 2017, Europe/Zurich time" in str(event["DESCRIPTION"])


def week_headings(lang: Language) -> list[str]:
    """The digest's week headings for a deadline on Sunday 5 March 2017 and one on Monday 6 March."""
    views = [
        make_view(key="sunday", due_at=datetime(2017, 3, 5, 22, 59, 59, tzinfo=UTC)),
        make_view(key="monday", due_at=datetime(2017, 3, 6, 22, 59, 59, tzinfo=UTC)),
    ]
    items = list_upcoming(views, now=NOW, window=timedelta(weeks=4))
    return [week.heading for week in group_weeks(items, lang, "Europe/Zurich", BASE)]


def week_of(first: date, lang: Language) -> str:
    return format_interval(first, first + timedelta(days=6), "yMMMd", locale=lang.locale)


@pytest.mark.parametrize("code", ["fr", "ru", "en", "es", "zh", "ar"])
def test_a_week_starts_on_monday_in_each_of_the_six_languages(code: str) -> None:
    lang = language(code)  # "en" is British English (en_GB); "ar" has no territory in Babel: CLDR's world default

    assert lang.locale.first_week_day == 0
    assert week_headings(lang) == [week_of(date(2017, 2, 27), lang), week_of(date(2017, 3, 6), lang)]


def test_a_week_starts_on_the_locale_s_first_day_sunday_in_american_english() -> None:
    american = Language("en", Locale.parse("en_US"), untranslated().translations)

    assert week_headings(american) == [week_of(date(2017, 3, 5), american)]  # Sunday and Monday: one week
    assert week_headings(american) == ["Mar 5\u2009–\u200911, 2017"]  # thin spaces around the dash


def test_the_french_digest_heads_its_weeks_as_french_writes_them(renderer: Renderer) -> None:
    message = renderer.render(make_request("digest", "fr"))

    text = message.get_body(("plain",))
    assert text is not None
    assert "20–26 févr. 2017" in text.get_content()  # CLDR's interval: day–day month year


@pytest.mark.parametrize(
    ("code", "written"),
    [
        ("en", "28 Apr 2017, 12:00 CEST"),
        ("zh", "2017年4月28日 12:00 CEST"),
        ("ar", "28\u200f/04\u200f/2017، 12:00 م CEST"),
    ],
)
def test_a_timed_deadline_on_a_page_joins_day_and_time_in_the_locale_s_order(code: str, written: str) -> None:
    chosen = PageLanguage(language(code), explicit=True)
    view = make_view(all_day=False, due_at=datetime(2017, 4, 28, 10, 0, tzinfo=UTC))

    page = render_timeline([view], base_url=BASE, now=NOW, chosen=chosen, where=("/timelines/hlpf", {}))

    assert written in page


@pytest.mark.parametrize(
    ("code", "said"),
    [("fr", "Échéance dans 7 jours"), ("ru", "Срок истекает через 7 дней"), ("zh", None), ("ar", None), ("es", None)],
)
def test_a_personal_feed_s_alarm_says_when_in_the_reader_s_words(code: str, said: str | None) -> None:
    lang = language(code)
    info = CalendarInfo(name="Mine", description="", url=f"{BASE}/", base_url=BASE, words=item_words(lang))

    data = build_feed([make_view(reminders=("7d", "1d"))], info, now=NOW, cancelled_grace=timedelta(days=30))

    [event] = Calendar.from_ical(data).walk("VEVENT")
    alarms = [str(alarm["DESCRIPTION"]) for alarm in event.walk("VALARM")]
    week = lang.ngettext("Due in {num} day", "Due in {num} days", 7)
    assert [text.rsplit(" (", 1)[1] for text in alarms] == [f"{week})", f"{lang.gettext('Due tomorrow')})"]
    assert said is None or said == week


def test_a_public_feed_s_alarm_stays_english() -> None:
    info = CalendarInfo(name="All", description="", url=f"{BASE}/", base_url=BASE)

    data = build_feed([make_view(reminders=("7d",))], info, now=NOW, cancelled_grace=timedelta(days=30))

    [event] = Calendar.from_ical(data).walk("VEVENT")
    [alarm] = event.walk("VALARM")
    assert str(alarm["DESCRIPTION"]).endswith("(due in 7 days)")


@pytest.mark.parametrize(
    ("code", "rule", "said"),
    [
        ("fr", "FREQ=YEARLY", "Se répète chaque année"),
        ("ru", "FREQ=WEEKLY;INTERVAL=2", "Повторяется каждые 2 недели"),
        ("ru", "FREQ=MONTHLY;INTERVAL=5", "Повторяется каждые 5 месяцев"),
        ("ar", "FREQ=WEEKLY;INTERVAL=2", "يتكرر كل أسبوعين"),
        ("zh", "FREQ=DAILY;INTERVAL=3", "每 3 天重复"),
        ("es", "FREQ=MONTHLY", "Se repite cada mes"),
        ("en", "FREQ=WEEKLY;INTERVAL=2", "Repeats every 2 weeks"),
    ],
)
def test_a_personal_feed_says_how_an_item_repeats_in_the_reader_s_words(code: str, rule: str, said: str) -> None:
    info = CalendarInfo(name="Mine", description="", url=f"{BASE}/", base_url=BASE, words=item_words(language(code)))

    data = build_feed([make_view(repeat=rule)], info, now=NOW, cancelled_grace=timedelta(days=30))

    [event] = Calendar.from_ical(data).walk("VEVENT")
    assert said in str(event["DESCRIPTION"]).splitlines()


def test_a_public_feed_says_how_an_item_repeats_in_english() -> None:
    info = CalendarInfo(name="All", description="", url=f"{BASE}/", base_url=BASE)

    data = build_feed([make_view(repeat="FREQ=WEEKLY;INTERVAL=2")], info, now=NOW, cancelled_grace=timedelta(days=30))

    [event] = Calendar.from_ical(data).walk("VEVENT")
    assert "Repeats: every 2 weeks" in str(event["DESCRIPTION"]).splitlines()
