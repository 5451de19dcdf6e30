"""The public JSON API: timelines, their milestones, what is due; documented in /openapi.json.

Everything here is public and read-only, so the upcoming list is open to every origin
(CORS) for sites that draw their own widget; the admin routes live in `admin`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from tracker.display import instant, upcoming_json
from tracker.feeds.calendars import Calendars
from tracker.store.engine import transaction
from tracker.store.models import Milestone, Timeline
from tracker.timelines.screening import screen_views
from tracker.timelines.states import LATE_DAYS, STATES, Process
from tracker.timelines.views import MilestoneView, Occurrence, list_upcoming, timeline_title_in, title_in
from tracker.web.embed import Days, embed_routes
from tracker.web.limits import validation_problem
from tracker.web.rendered import Rendered

Lang = Literal["ar", "zh", "en", "fr", "ru", "es"]
OPEN = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET"}
MAX_ITEMS = 1000  # in one answer to /api/upcoming, earliest first: an anonymous request stays small
CURSOR_PREFIX = "upcoming:"
CURSOR_WORDS = 'Where to go on from: the `cursor` of the previous answer\'s `Link: <…>; rel="next"` header'
CURSOR_PROBLEM = (
    'not a cursor this API gave: use the link in the previous answer\'s Link header (rel="next"), '
    "or leave cursor out for the first page"
)
BAD_CURSOR: dict[int | str, dict[str, Any]] = {
    422: {"description": "A parameter out of range, or a cursor not given here"}
}


class Instant(BaseModel):
    local: str = Field(description="ISO 8601 in the timeline's zone")
    utc: str = Field(description="ISO 8601 in UTC")


class Counts(BaseModel):
    milestones: int
    active: int
    cancelled: int
    done: int = Field(description="Milestones with at least one completion")


class TimelineOut(BaseModel):
    id: str
    title: str
    titles: dict[str, str] = Field(description="Translations by language code; `title` is the English one")
    kind: str
    summary: str
    timezone: str
    audiences: list[str]
    feed: str = Field(description="URL of the timeline's calendar feed")
    page: str = Field(description="URL of the timeline's page")
    counts: Counts


class CompletionOut(BaseModel):
    occurrence: str = Field(description="'' for a single milestone, else the local date of the occurrence")
    done_at: str
    note: str
    link: str


class Expressions(BaseModel):
    """The dates as written in the schedule file, e.g. `revised-draft.done + 14d`."""

    due: str | None = None
    starts: str | None = None
    ends: str | None = None


class MilestoneOut(BaseModel):
    key: str
    title: str
    titles: dict[str, str]
    kind: str = Field(description="deadline | span")
    owner: str | None
    due: Instant | None
    starts: Instant | None
    ends: Instant | None
    all_day: bool
    status: str = Field(description="active | cancelled | removed")
    repeat: str | None = Field(description="RRULE when the milestone repeats")
    opens_after: str | None
    state: str = Field(description="Of its current occurrence (the late one, else the next): " + " | ".join(STATES))
    expressions: Expressions
    rolled_from: str | None = Field(
        default=None,
        description="The date as its rule gives it (YYYY-MM-DD), when `roll` moved it off a non-working day",
    )
    completions: list[CompletionOut]


class TimelineDetail(TimelineOut):
    milestones: list[MilestoneOut]


class UpcomingItem(BaseModel):
    """One occurrence, as `tracker upcoming --json` prints it."""

    timeline: str
    timeline_title: str = Field(description="In the language asked for (English where untranslated)")
    milestone: str
    title: str = Field(description="In the language asked for (English where untranslated)")
    titles: dict[str, str]
    timeline_titles: dict[str, str]
    kind: str
    owner: str | None
    all_day: bool
    date: str = Field(description="Local date, YYYY-MM-DD")
    timezone: str
    occurrence: str | None
    due: Instant | None
    starts: Instant | None
    ends: Instant | None
    state: str = Field(description=" | ".join(STATES) + "; late steps come first")
    done_at: str | None
    reminders: list[str]


class UnknownId(BaseModel):
    detail: str
    known: list[str] = Field(description="The ids that exist")


def api_routes(
    engine: Engine, calendars: Calendars, base_url: str, late_days: int = LATE_DAYS, rendered: Rendered | None = None
) -> APIRouter:
    """Public read-only routes: /api/timelines, /api/timelines/{id}, /api/upcoming, and the embed."""
    rendered = rendered or Rendered(calendars)
    router = APIRouter(tags=["api"], route_class=OpenRoute)
    base = base_url.rstrip("/")
    missing: dict[int | str, dict[str, Any]] = {
        404: {"model": UnknownId, "description": "No such timeline; the body lists those that exist"}
    }

    @router.get("/api/timelines", response_model=list[TimelineOut])
    async def timelines() -> list[TimelineOut]:
        """Every live timeline, with its feed and how many milestones it has."""
        return await run_in_threadpool(list_timelines, engine, base, calendars)

    @router.get("/api/timelines/{timeline}", response_model=TimelineDetail, responses=missing)
    async def timeline_detail(timeline: str) -> TimelineDetail | JSONResponse:
        """One timeline with its milestones, their dates (local and UTC), states and completions."""
        process = partial(Process, now=calendars.clock(), late_days=late_days)
        found = await run_in_threadpool(read_timeline, engine, base, timeline, process, calendars)
        return found if isinstance(found, TimelineDetail) else unknown_timeline(timeline, found.known)

    @router.get("/api/upcoming", response_model=list[UpcomingItem], responses=missing | BAD_CURSOR)
    async def upcoming(
        days: Days = 30,
        timeline: str | None = None,
        audience: str | None = None,
        lang: Lang = "en",
        limit: Annotated[int, Query(ge=1, le=MAX_ITEMS, description="Items in this answer (1–1000)")] = MAX_ITEMS,
        cursor: Annotated[str | None, Query(max_length=64, description=CURSOR_WORDS)] = None,
    ) -> Response:
        """What is due (or under way) in the next *days*, late steps first, then earliest first; open to every origin
        (CORS).

        At most *limit* items an answer; when there are more, the `Link` header names the next page
        (`rel="next"`, its `cursor`)."""
        start = read_cursor(cursor)
        if start is None:
            return cursor_problem()
        query = UpcomingQuery(days, timeline, audience, lang, late_days)
        asked = ("/api/upcoming", query, limit, start)
        found = rendered.ready(asked)
        if found is None:
            found = await run_in_threadpool(
                rendered.answer, asked, partial(upcoming_answer, engine, base, query, limit, start)
            )
        return found

    router.include_router(embed_routes(engine, calendars, base, late_days))
    return router


class OpenRoute(APIRoute):
    """A route whose every answer, errors included, may be read by a page on any site.

    Validation errors are raised before the handler runs, so the headers are added here
    rather than in it; a browser would hide a 422 without them.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if not self.path.startswith("/api/"):
            return handle

        async def answer(request: Request) -> Response:
            try:
                response = await handle(request)
            except RequestValidationError as exc:
                response = validation_problem(exc.errors())
            response.headers.update(OPEN)
            return response

        return answer


@dataclass(frozen=True)
class UpcomingQuery:
    days: int
    timeline: str | None
    audience: str | None
    lang: str
    late_days: int = LATE_DAYS


@dataclass(frozen=True)
class Unknown:
    known: list[str]


def unknown_timeline(timeline: str, known: Sequence[str]) -> JSONResponse:
    detail = f"no timeline {timeline!r}; the timelines are: {', '.join(known) or 'none yet'}"
    return JSONResponse(UnknownId(detail=detail, known=list(known)).model_dump(), 404)


def live_timelines(session: Session) -> list[Timeline]:
    query = select(Timeline).where(Timeline.removed_at.is_(None)).order_by(Timeline.id)  # type: ignore[union-attr]
    return list(session.exec(query))


def list_timelines(engine: Engine, base: str, calendars: Calendars) -> list[TimelineOut]:
    with transaction(engine) as session:
        live = live_timelines(session)
    by_timeline: dict[str, list[MilestoneView]] = {}
    for view in calendars.snapshot()[0]:  # read once per change of the store, shared with the feeds and pages
        by_timeline.setdefault(view.timeline_id, []).append(view)
    return [describe_timeline(t, by_timeline.get(t.id, []), base) for t in live]


def read_timeline(
    engine: Engine,
    base: str,
    timeline: str,
    process_of: Callable[[list[MilestoneView]], Process],
    calendars: Calendars,
) -> TimelineDetail | Unknown:
    """The timeline, or the ids of the live ones when it is not one of them."""
    with transaction(engine) as session:
        live = {t.id: t for t in live_timelines(session)}
        if timeline not in live:
            return Unknown(known=sorted(live))
        expressions = read_expressions(session, timeline)
    everything = screen_views(calendars.snapshot()[0])
    views = [v for v in everything if v.timeline_id == timeline]
    summary = describe_timeline(live[timeline], views, base)
    process = process_of(everything)
    milestones = [describe_milestone(v, expressions.get(v.key, Expressions()), process) for v in views]
    return TimelineDetail(**summary.model_dump(), milestones=milestones)


def read_expressions(session: Session, timeline: str) -> dict[str, Expressions]:
    # The views carry resolved instants only; the written form (a relative date) stays on the row.
    rows = session.exec(select(Milestone).where(Milestone.timeline_id == timeline))
    return {m.key: Expressions(due=m.due_expr, starts=m.starts_expr, ends=m.ends_expr) for m in rows}


def describe_timeline(timeline: Timeline, views: Sequence[MilestoneView], base: str) -> TimelineOut:
    counts = Counts(
        milestones=len(views),
        active=sum(v.status == "active" for v in views),
        cancelled=sum(v.status == "cancelled" for v in views),
        done=sum(bool(v.completions) for v in views),
    )
    return TimelineOut(
        id=timeline.id,
        title=timeline.title,
        titles=timeline.titles or {},
        kind=timeline.kind,
        summary=timeline.summary,
        timezone=timeline.timezone,
        audiences=list(timeline.audiences or ()),
        feed=f"{base}/feeds/{timeline.id}.ics",
        page=f"{base}/timelines/{timeline.id}",
        counts=counts,
    )


def describe_milestone(view: MilestoneView, expressions: Expressions, process: Process) -> MilestoneOut:
    completions = [
        CompletionOut(occurrence=key, done_at=c.done_at.isoformat(), note=c.note, link=c.link)
        for key, c in sorted(view.completions.items())
    ]
    return MilestoneOut(
        key=view.key,
        title=view.title,
        titles=dict(view.titles),
        kind=view.kind,
        owner=view.owner,
        due=as_instant(instant(view.due_at, view.zone)),
        starts=as_instant(instant(view.starts_at, view.zone)),
        ends=as_instant(instant(view.ends_at, view.zone)),
        all_day=view.all_day,
        status=view.status,
        repeat=view.repeat,
        opens_after=view.opens_after,
        state=process.current_state(view),
        expressions=expressions,
        rolled_from=view.rolled_from.isoformat() if view.rolled_from else None,
        completions=completions,
    )


def as_instant(value: dict[str, str] | None) -> Instant | None:
    return Instant(**value) if value else None


def read_upcoming(
    views: list[MilestoneView], now: datetime, query: UpcomingQuery, known: Sequence[str]
) -> tuple[list[Occurrence], Process] | Unknown:
    """Everything due for *query*, late steps first, and their process; or the known timelines when it names
    another."""
    if query.timeline is not None and query.timeline not in known:
        return Unknown(known=list(known))
    views = screen_views(views)
    timeline, audience = query.timeline, query.audience
    process = Process(views, now=now, late_days=query.late_days)
    ahead = list_upcoming(
        views, now=process.now, window=timedelta(days=query.days), timeline=timeline, audience=audience
    )
    return process.late(timeline=timeline, audience=audience) + ahead, process


def upcoming_answer(
    engine: Engine, base: str, query: UpcomingQuery, limit: int, start: int, views: list[MilestoneView], now: datetime
) -> Response:
    """The JSON answer: items *start* to *start* + *limit* of what is due, and a link to the next ones."""
    with transaction(engine) as session:
        known = [t.id for t in live_timelines(session)]
    found = read_upcoming(views, now, query, known)
    if isinstance(found, Unknown):
        return unknown_timeline(query.timeline or "", found.known)
    items, process = found
    page = items[start : start + limit]
    rows = upcoming_json(page, process)
    for row, item in zip(rows, page, strict=True):
        row["title"] = title_in(item.milestone, query.lang)
        row["timeline_title"] = timeline_title_in(item.milestone, query.lang)
    body = [UpcomingItem(**row).model_dump(mode="json") for row in rows]
    headers = {"Access-Control-Expose-Headers": "Link"}
    if start + limit < len(items):
        headers["Link"] = f'<{next_link(base, query, limit, start + limit)}>; rel="next"'
    return JSONResponse(body, headers=headers)


def next_link(base: str, query: UpcomingQuery, limit: int, start: int) -> str:
    asked = {"days": query.days, "timeline": query.timeline, "audience": query.audience, "lang": query.lang}
    values = {k: v for k, v in asked.items() if v is not None} | {"limit": limit, "cursor": make_cursor(start)}
    return f"{base}/api/upcoming?{urlencode(values)}"


def make_cursor(start: int) -> str:
    """An opaque cursor for the item at *start* (what a client should not build or read)."""
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{start}".encode()).decode().rstrip("=")


def read_cursor(cursor: str | None) -> int | None:
    """The position *cursor* names (0 for none), or None when it is not one this API gave."""
    if cursor is None or cursor == "":
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    number = text.removeprefix(CURSOR_PREFIX)
    if not text.startswith(CURSOR_PREFIX) or not number.isdigit() or len(number) > 7:
        return None
    return int(number)


def cursor_problem() -> Response:
    return validation_problem([{"loc": ("query", "cursor"), "msg": CURSOR_PROBLEM, "type": "value_error"}])
