"""The JSON API, the embeddable widget and the OpenAPI document, from a real uvicorn server."""

from __future__ import annotations

import logging
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, Case
from schemathesis.core.result import Ok
from sqlalchemy import Engine

from tests.support.timelines import HLPF, MEETING, NOW, WriteTimeline
from tests.support.web import SECRET, serving, subscribe, sync
from tracker.config import Settings
from tracker.feeds.calendars import Calendars
from tracker.store.engine import transaction
from tracker.subscribers.tokens import make_token
from tracker.timelines.completions import DoneRequest, record_done
from tracker.timelines.stored import load_views
from tracker.web.app import create_api
from tracker.web.forms import form_token

LOCALES = Path(__file__).resolve().parent.parent / "locale"
DRAFT = "        title: Revised draft posted\n"
TRANSLATED = (
    "        title:\n"
    "          en: Revised draft posted\n"
    "          ar: نشر المشروع المنقح\n"
    "          fr: Projet révisé publié\n"
)
SCRIPT = "        title: \"<script>alert('x')</script> draft\"\n"


@pytest.fixture
def client(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> Iterator[httpx.Client]:
    """A server over HLPF (its first draft translated) and a meeting, at NOW (1 February 2017)."""
    write_timeline("hlpf", HLPF.replace(DRAFT, TRANSLATED))
    write_timeline("cwg-32", MEETING)
    sync(engine, schedules)
    with serving(engine, 0, LOCALES) as (http, _):
        yield http


def test_it_lists_every_live_timeline_with_its_feed_and_counts(client: httpx.Client) -> None:
    response = client.get("/api/timelines")

    assert response.status_code == 200
    timelines = {t["id"]: t for t in response.json()}
    assert sorted(timelines) == ["cwg-32", "hlpf"]
    hlpf = timelines["hlpf"]
    assert hlpf["title"] == "ITU Council contribution to HLPF-17"
    assert hlpf["feed"] == "https://tracker.example.org/feeds/hlpf.ics"
    assert (hlpf["kind"], hlpf["timezone"], hlpf["audiences"]) == (
        "drafting",
        "Europe/Zurich",
        ["membership", "secretariat"],
    )
    assert hlpf["counts"] == {"milestones": 4, "active": 4, "cancelled": 0, "done": 0}


def test_a_timeline_shows_its_milestones_in_local_time_and_utc_with_their_expressions(client: httpx.Client) -> None:
    response = client.get("/api/timelines/hlpf")

    assert response.status_code == 200
    milestones = {m["key"]: m for m in response.json()["milestones"]}
    submission = milestones["submission"]
    assert submission["due"] == {"local": "2017-04-28T12:00:00+02:00", "utc": "2017-04-28T10:00:00+00:00"}
    assert (submission["all_day"], submission["status"], submission["owner"]) == (False, "active", "secretariat")
    assert milestones["revised-draft"]["titles"] == {"ar": "نشر المشروع المنقح", "fr": "Projet révisé publié"}
    assert milestones["member-comments"]["expressions"]["due"] == "revised-draft.done + 14d"
    assert milestones["member-comments"]["opens_after"] == "revised-draft"


def test_a_completion_shows_with_its_note_and_link(client: httpx.Client, engine: Engine) -> None:
    done_at = datetime(2017, 2, 20, 15, 0, tzinfo=UTC)
    with transaction(engine, write=True) as session:
        view = next(v for v in load_views(session) if v.key == "revised-draft")
        request = DoneRequest("hlpf/revised-draft", done_at, note="Posted as C17/INF/3", link="https://itu.example/d")
        record_done(session, request, view, now=done_at)

    timeline = client.get("/api/timelines/hlpf").json()

    draft = next(m for m in timeline["milestones"] if m["key"] == "revised-draft")
    assert draft["completions"] == [
        {
            "occurrence": "",
            "done_at": done_at.isoformat(),
            "note": "Posted as C17/INF/3",
            "link": "https://itu.example/d",
        }
    ]
    assert timeline["counts"]["done"] == 1


def test_an_unknown_timeline_is_a_404_that_names_the_known_ones(client: httpx.Client) -> None:
    for path in ("/api/timelines/nope", "/api/upcoming?timeline=nope"):
        response = client.get(path)

        assert response.status_code == 404, path
        assert response.json()["known"] == ["cwg-32", "hlpf"]
        assert "'nope'" in response.json()["detail"] and "cwg-32, hlpf" in response.json()["detail"]


def test_upcoming_lists_what_is_due_in_the_window_open_to_every_origin(client: httpx.Client) -> None:
    response = client.get("/api/upcoming", params={"days": 30}, headers={"Origin": "https://itu.example"})

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["access-control-allow-methods"] == "GET"
    assert [(i["timeline"], i["milestone"], i["date"]) for i in response.json()] == [
        ("hlpf", "revised-draft", "2017-02-24")
    ]


def test_upcoming_titles_follow_lang_with_english_fallback(client: httpx.Client) -> None:
    items = client.get("/api/upcoming", params={"days": 365, "lang": "fr", "timeline": "hlpf"}).json()

    titles = [i["title"] for i in items]
    assert titles[0] == "Projet révisé publié"
    assert "Final text submitted to the UN" in titles
    assert {i["timeline"] for i in items} == {"hlpf"}


def test_upcoming_filters_by_audience(client: httpx.Client) -> None:
    items = client.get("/api/upcoming", params={"days": 365, "audience": "membership"}).json()

    assert [i["milestone"] for i in items] == ["member-comments", "meeting"]  # the meeting has no owner: everyone


@pytest.mark.parametrize(
    ("days", "words"),
    [("-1", "greater than or equal to 0"), ("732", "less than or equal to 731"), ("soon", "valid integer")],
)
def test_bad_days_are_a_422_that_says_what_is_wrong_still_readable_cross_origin(
    client: httpx.Client, days: str, words: str
) -> None:
    response = client.get("/api/upcoming", params={"days": days})

    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "days"]
    assert words in error["msg"]
    assert response.headers["access-control-allow-origin"] == "*"


def test_an_unknown_language_is_a_422_listing_the_six(client: httpx.Client) -> None:
    response = client.get("/api/upcoming", params={"lang": "de"})

    assert response.status_code == 422
    assert "'ar', 'zh', 'en', 'fr', 'ru' or 'es'" in response.json()["detail"][0]["msg"]


def test_the_embed_is_a_framable_self_contained_page(client: httpx.Client) -> None:
    response = client.get("/embed/upcoming", params={"timeline": "hlpf", "days": 90})

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors *" in policy and "default-src 'none'" in policy
    assert "x-frame-options" not in response.headers
    body = response.text
    assert '<html lang="en" dir="ltr">' in body
    assert "Revised draft posted" in body and "Friday, 24 February 2017, end of day, Zurich time" in body
    assert 'href="https://tracker.example.org/timelines/hlpf"' in body
    assert "<script" not in body and " src=" not in body and "<link" not in body  # nothing fetched from elsewhere


def test_the_arabic_embed_is_right_to_left_with_arabic_titles_and_dates(client: httpx.Client) -> None:
    body = client.get("/embed/upcoming", params={"lang": "ar", "days": 30}).text

    assert '<html lang="ar" dir="rtl">' in body
    assert "نشر المشروع المنقح" in body
    assert "فبراير" in body  # Babel's Arabic month name: the date is in the page's language


def test_the_embed_falls_back_to_english_titles_and_names_unknown_timelines(client: httpx.Client) -> None:
    french = client.get("/embed/upcoming", params={"lang": "fr", "days": 365}).text
    missing = client.get("/embed/upcoming", params={"timeline": "nope"})

    assert "Projet révisé publié" in french and "Final text submitted to the UN" in french
    assert "février" in french
    assert missing.status_code == 404
    assert "cwg-32, hlpf" in missing.text
    assert "frame-ancestors *" in missing.headers["content-security-policy"]


def test_the_embed_escapes_a_title_with_markup(engine: Engine, schedules: Path, write_timeline: WriteTimeline) -> None:
    write_timeline("hlpf", HLPF.replace(DRAFT, SCRIPT))
    sync(engine, schedules)
    with serving(engine, 0) as (http, _):
        body = http.get("/embed/upcoming").text

    assert "<script>" not in body
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; draft" in body


def test_openapi_documents_the_api_with_unique_operation_ids(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()

    paths = document["paths"]
    for path in ("/api/timelines", "/api/timelines/{timeline}", "/api/upcoming", "/embed/upcoming", "/feeds/all.ics"):
        assert "get" in paths[path], path
    assert "head" not in paths["/feeds/{timeline}.ics"]
    ids = [op["operationId"] for methods in paths.values() for op in methods.values()]
    assert len(ids) == len(set(ids))
    assert "api" in paths["/api/upcoming"]["get"]["tags"]
    schemas = document["components"]["schemas"]
    assert {"TimelineOut", "TimelineDetail", "MilestoneOut", "UpcomingItem", "UnknownId"} <= set(schemas)


def test_building_the_openapi_document_gives_no_warning(engine: Engine) -> None:
    calendars = Calendars(engine, base_url="https://tracker.example.org", cancelled_grace=timedelta(days=30))
    app = create_api(engine, calendars)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app.openapi()

    assert [str(w.message) for w in caught] == []


# A few dozen generated requests per operation: enough to try every parameter's edges
# (negative and huge days, odd ids, unknown languages) and keep the test within seconds.
EXAMPLES = 25


ADMIN = "admin-token-for-the-schema-tests-0123456"
METRICS = "metrics-token-for-the-schema-tests-789012"
# What a browser form posts; the JSON body of POST /subscribe is documented as well.
FORM_ROUTES = {("post", "/subscribe"), ("post", "/preferences/{token}"), ("post", "/unsubscribe/{token}"),
               ("post", "/confirm/{token}")}  # fmt: skip


@dataclass(frozen=True)
class Real:
    """What lets a generated request past its first check: links of a real subscriber, a real milestone."""

    tokens: dict[str, str]  # by the operation's path
    form_token: str


def test_no_request_the_schema_allows_gets_a_server_error(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline, caplog: pytest.LogCaptureFixture
) -> None:
    write_timeline("hlpf", HLPF)
    write_timeline("cwg-32", MEETING)
    sync(engine, schedules)
    pending, _ = subscribe(engine, "olga@mission.example.org", confirmed=False)
    confirmed, _ = subscribe(engine, "li@mission.example.org")
    _, feed = subscribe(engine, "amina@mission.example.org")  # not the one unsubscribed by a generated request
    manage = make_token(SECRET, "manage", confirmed, 0)
    tokens = {"/confirm/{token}": make_token(SECRET, "confirm", pending, 0), "/feeds/me/{token}.ics": feed,
              "/preferences/{token}": manage, "/unsubscribe/{token}": manage}  # fmt: skip
    real = Real(tokens, form_token(SECRET, manage, NOW))
    config = Settings(base_url="https://tracker.example.org", admin_token=ADMIN, metrics_token=METRICS,
                      subscribe_limit=100_000, api_token_failures=100_000)  # fmt: skip
    with serving(engine, 0, LOCALES, settings=config) as (client, _):
        document = client.get("/openapi.json").json()
        schema = schemathesis.openapi.from_dict(document)
        results = list(schema.get_all_operations())
        operations = [result.ok() for result in results if isinstance(result, Ok)]
        assert len(operations) == len(results), "every operation in /openapi.json is a valid schema"
        documented = {(method, path) for path, methods in document["paths"].items() for method in methods}
        assert FORM_ROUTES | {("get", "/metrics"), ("post", "/api/milestones/{timeline}/{milestone}/done")} <= (
            documented
        )
        for method, path in FORM_ROUTES:
            assert "requestBody" in document["paths"][path][method], f"{method} {path} documents no body"

        for operation in operations:
            answers_without_5xx(operation, str(client.base_url), real)

    # Subscription requests are handled after their answer: a failure there shows in the log only.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def answers_without_5xx(operation: APIOperation[Any, Any, Any, Any], base: str, real: Real) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case: Case[Any]) -> None:
        # Half the requests carry what gets them past the first check, so what lies behind it is tried too.
        headers = (
            make_real(case, real)
            if zlib.crc32(repr((case.path_parameters, case.query, case.headers, case.body)).encode()) % 2
            else {}
        )
        response = case.call(base_url=base, headers=headers)
        assert response.status_code < 500, f"{case.method} {case.formatted_path} {case.query}: {response.text}"

    check()


def make_real(case: Case[Any], real: Real) -> dict[str, str]:
    """Put a real link, milestone, address or form token into a generated request; return the right bearer token."""
    if case.path in real.tokens:
        case.path_parameters = {**(case.path_parameters or {}), "token": real.tokens[case.path]}
    if case.path.startswith("/api/milestones/"):
        case.path_parameters = {"timeline": "hlpf", "milestone": "revised-draft"}
    if isinstance(case.body, dict) and case.path == "/subscribe":
        case.body["email"] = "someone@mission.example.org"
    if isinstance(case.body, dict) and case.path == "/preferences/{token}":
        case.body["csrf_token"] = real.form_token
    return {"Authorization": f"Bearer {METRICS if case.path == '/metrics' else ADMIN}"}


def test_a_token_with_non_ascii_characters_is_not_a_server_error(client: httpx.Client) -> None:
    response = client.get("/feeds/me/abc.d%C3%A9f.ics")

    assert response.status_code == 404


DAILY = """
    id: daily
    title: Daily notes
    timezone: Europe/Zurich
    milestones:
{milestones}"""


def test_an_upcoming_answer_and_the_embed_stay_bounded_for_a_timeline_that_repeats_daily(
    engine: Engine, schedules: Path, write_timeline: WriteTimeline
) -> None:
    rules = "".join(
        f"      - id: note-{n}\n        title: Note {n}\n        due: 2017-02-0{1 + n}\n"
        "        repeat: FREQ=DAILY;COUNT=1000\n"
        for n in range(2)
    )  # 2,000 dates in the next three years: more than an answer may hold
    write_timeline("daily", DAILY.format(milestones=rules))
    sync(engine, schedules)

    with serving(engine, 0, LOCALES) as (http, _):
        items = http.get("/api/upcoming", params={"days": 731}).json()
        embed = http.get("/embed/upcoming", params={"days": 731}).text

    assert len(items) == 1000
    assert [i["date"] for i in items] == sorted(i["date"] for i in items)  # the earliest thousand
    assert items[0]["date"] == "2017-02-01"
    assert embed.count("Note ") == 100
