"""Public pages: the overview (what is due, every timeline, every feed) and one timeline with its picture.

Rendering is pure (views, clock and language in, HTML out) so `tracker publish` writes the same
pages a server answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from itertools import groupby
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from tracker.feeds.calendars import FeedRef, feed_refs
from tracker.i18n.languages import N_, Language
from tracker.i18n.wording import audience_text, day_text, due_text, moved_text, state_text, when_text
from tracker.text import describe_error
from tracker.timelines.dates import DateError, Offset, get_zone
from tracker.timelines.screening import screen_views
from tracker.timelines.states import LATE_DAYS, Process
from tracker.timelines.views import (
    UNREADABLE,
    MilestoneView,
    Occurrence,
    list_upcoming,
    reference,
    time_left,
    timeline_title_in,
    title_in,
)
from tracker.timelines.zones import zone_meant
from tracker.web.layout import PageLanguage, choose, html, render
from tracker.web.paging import MAX_PAGE, Pager, paginate
from tracker.web.picture import Mark, Picture, describe, link_words, plan_picture, render_svg, titles_of
from tracker.web.rendered import Rendered

log = logging.getLogger("tracker.web.pages")
OUTLOOK = "https://outlook.live.com/calendar/0/addfromweb"
WEEKS_AHEAD = 6
# Headings of the overview's groups, in this order; other kinds go under "Other timelines".
KINDS = {
    "meeting": N_("Meetings"),
    "drafting": N_("Drafting"),
    "consultation": N_("Consultations"),
    "nomination": N_("Nominations and prizes"),
    "forum": N_("Forums"),
}
PUBLIC = {"Cache-Control": "public, max-age=60"}
Where = tuple[str, Mapping[str, str]]  # the path and query of the page, for its language switcher
PAGED = {"late": "late", "soon": "soon", "page": "timelines"}  # the overview's paged lists: parameter, section


@dataclass(frozen=True)
class FeedLinks:
    """Ways to add one feed to a calendar: subscribe (webcal, Google, Outlook) or download once; and its news."""

    name: str
    webcal: str
    google: str
    outlook: str
    download: str
    atom: str = ""  # the Atom feed of what changed, for all and for a timeline: none for audiences nor one's own


@dataclass(frozen=True)
class Line:
    """One drawn occurrence in the milestone list."""

    title: str
    when: str
    state: str
    state_words: str
    owner: str
    wording: str
    done_on: str  # the day it was done, in the timeline's zone
    note: str
    link: str
    moved: str = ""  # why the date is not the one its rule gives: a non-working day


@dataclass(frozen=True)
class Due:
    """One occurrence of the overview's 'coming weeks' list."""

    title: str
    timeline: str
    timeline_id: str
    when: str
    left: str
    owner: str
    at: str  # ISO instant, for the reader's own clock in the browser
    zone: str  # the zone `when` is written in
    state: str
    state_words: str


@dataclass(frozen=True)
class Entry:
    """One timeline of the overview."""

    id: str
    title: str
    next: str
    next_at: datetime | None  # None: nothing ahead
    feeds: FeedLinks


@dataclass(frozen=True)
class Group:
    """The timelines of one kind: those with something ahead, soonest first, then the finished ones."""

    heading: str
    active: list[Entry]
    finished: list[Entry]


def feed_links(base_url: str, path: str, name: str) -> FeedLinks:
    """Subscribe links need the absolute address; the download link is relative, so it works on any host."""
    https = base_url.rstrip("/") + path
    parts = urlsplit(https)
    webcal = f"webcal://{parts.netloc}{parts.path}"
    return FeedLinks(
        name=name,
        webcal=webcal,
        google="https://calendar.google.com/calendar/r?cid=" + quote(webcal, safe=":/"),
        outlook=f"{OUTLOOK}?url={quote(https, safe='')}&name={quote(name, safe='')}",
        download=path,
        atom=atom_path(path),
    )


def atom_path(path: str) -> str:
    """'/feeds/hlpf.atom' for '/feeds/hlpf.ics'; '' for an audience's or a subscriber's own feed."""
    name = path.removeprefix("/feeds/")
    return f"/feeds/{name.removesuffix('.ics')}.atom" if name != path and "/" not in name else ""


def web_url(url: str) -> str:
    """*url* if it is a web address; autoescaping does not stop a `javascript:` link."""
    return url if url.startswith(("https://", "http://")) else ""


def reader_zone(asked: str | None) -> str | None:
    """The viewer's zone if the URL names a real one (`?tz=Europe/Zurich`; `US/Eastern` and `EST`: New York's)."""
    if not asked or len(asked) > 64:  # the longest IANA name has 32 characters; no look-alike search for junk
        return None
    zone = zone_meant(asked)
    try:
        get_zone(zone)
    except DateError:
        return None
    return zone


# --- one timeline ---------------------------------------------------------------------------


def list_lines(picture: Picture, language: Language) -> list[Line]:
    titles = titles_of(picture, language)
    lines = []
    for row in picture.rows:
        wording = link_words(row.link, language, titles) if row.link else ""
        lines += [line_of(mark, titles[row.view.key], wording, language) for mark in row.marks]
    return lines


def line_of(mark: Mark, title: str, wording: str, language: Language) -> Line:
    view = mark.item.milestone
    completion, done_at = mark.standing.completion, mark.standing.done_at
    when, _, _ = describe(mark, language).rpartition(", ")
    return Line(
        title=title,
        when=when,
        state=mark.state,
        state_words=state_text(mark.state, language),
        owner=audience_text(view.owner, language) if view.owner else language.gettext("Everyone"),
        wording=wording,
        done_on=day_text(done_at, view.zone, language) if completion and done_at else "",
        note=completion.note if completion else "",
        link=web_url(completion.link) if completion else "",
        moved=moved_text(view, language),
    )


def render_timeline(
    views: Sequence[MilestoneView],
    *,
    base_url: str,
    now: datetime,
    chosen: PageLanguage,
    where: Where,
    process: Process | None = None,
) -> str:
    """The HTML page of one timeline (*views* are its milestones, at least one); what cannot be drawn is left out.

    *process* knows every timeline's steps (one of these may wait for a step of another)."""
    first, language = views[0], chosen.language
    picture = picture_of(screen_views(views), process or Process(views, now=now))
    title = timeline_title_in(first, language.code)
    return render(
        "timeline.html.j2",
        chosen,
        where,
        title=title,
        timeline=first,
        source=web_url(first.timeline_url),
        svg=Markup(render_svg(picture, language=language)),  # trusted: render_svg escapes every text
        lines=list_lines(picture, language),
        feeds=feed_links(base_url, FeedRef("timeline", first.timeline_id).path, title),
    )


def picture_of(views: Sequence[MilestoneView], process: Process) -> Picture:
    """The timeline's picture; a milestone that cannot be drawn is left out (and logged once), not the page."""
    now = process.now
    try:
        return plan_picture(views, now=now, process=process)
    except UNREADABLE:
        drawable = []
        for view in views:
            try:
                plan_picture([view], now=now, process=process)
            except UNREADABLE as exc:
                report(view, describe_error(exc))
            else:
                drawable.append(view)
    try:
        return plan_picture(drawable, now=now, process=process)
    except UNREADABLE as exc:  # only together they fail (the range they span): draw none
        for view in drawable:
            report(view, describe_error(exc))
        return plan_picture([], now=now, process=process)


_reported: dict[str, str] = {}  # what the pages left out and this process logged
REPORTED = 10_000


def report(view: MilestoneView, reason: str) -> None:
    """Log once (per process) that a page leaves *view* out, and why."""
    key = reference(view)
    if _reported.get(key) != reason and len(_reported) < REPORTED:
        _reported[key] = reason
        log.warning("pages leave out %s (every other milestone is shown): %s", key, reason)


def render_unknown(views: Sequence[MilestoneView], asked: str, chosen: PageLanguage, where: Where) -> str:
    known: dict[str, str] = {}
    for view in views:
        if view.status != "removed":
            known.setdefault(view.timeline_id, timeline_title_in(view, chosen.code))
    title = chosen.language.gettext("No such timeline")
    return render("timeline_unknown.html.j2", chosen, where, title=title, asked=asked, known=known)


# --- the overview ---------------------------------------------------------------------------


def left_text(item: Occurrence, state: str, now: datetime, language: Language) -> str:
    """'Due in 5 days', 'Due today', 'Starts in 3 hours', counted in the timeline's zone; else the state."""
    view = item.milestone
    if state in ("done", "cancelled", "missed") or item.at <= now:
        words = state_text(state, language)
        return words[:1].upper() + words[1:]  # it starts the line, as 'Due in 5 days' does
    left = time_left(view, item.at, now)
    return due_text(view, Offset(days=0) if view.all_day and not left.days else left, language)


def due_of(item: Occurrence, process: Process, language: Language, zone: str | None) -> Due:
    state = process.state(item)
    return Due(
        title=title_in(item.milestone, language.code),
        timeline=timeline_title_in(item.milestone, language.code),
        timeline_id=item.milestone.timeline_id,
        when=when_text(item, language, zone or item.milestone.zone),
        left=left_text(item, state, process.now, language),
        owner=audience_text(item.milestone.owner, language) if item.milestone.owner else "",
        at=item.at.isoformat(),
        zone=zone or item.milestone.zone,
        state=state,
        state_words=state_text(state, language),
    )


def next_of(views: Sequence[MilestoneView], process: Process, language: Language) -> tuple[str, datetime | None]:
    """What comes next in one timeline, in words, and when; or that nothing does."""
    ahead = list_upcoming(views, now=process.now, window=timedelta(days=3660))
    if not ahead:
        return language.gettext("Nothing ahead"), None
    item = ahead[0]
    title = title_in(item.milestone, language.code)
    left = left_text(item, process.state(item), process.now, language)
    return language.gettext("Next: {title} ({left})", title=title, left=left), item.at


def timeline_groups(views: Sequence[MilestoneView], base_url: str, process: Process, language: Language) -> list[Group]:
    shown = sorted((v for v in views if v.status != "removed"), key=lambda v: v.timeline_id)
    entries: dict[str, list[Entry]] = {}
    for timeline_id, own in groupby(shown, key=lambda v: v.timeline_id):
        mine = list(own)
        title = timeline_title_in(mine[0], language.code)
        feeds = feed_links(base_url, FeedRef("timeline", timeline_id).path, title)
        kind = mine[0].timeline_kind if mine[0].timeline_kind in KINDS else ""
        entries.setdefault(kind, []).append(Entry(timeline_id, title, *next_of(mine, process, language), feeds))
    order = [*KINDS, ""]
    groups = []
    for kind in sorted(entries, key=order.index):
        heading = language.gettext(KINDS[kind]) if kind else language.gettext("Other timelines")
        active = sorted((e for e in entries[kind] if e.next_at), key=lambda e: (e.next_at, e.title.casefold()))
        finished = sorted((e for e in entries[kind] if not e.next_at), key=lambda e: e.title.casefold())
        groups.append(Group(heading, active, finished))
    return groups


def page_of_groups(groups: Sequence[Group], number: int, link: Callable[[int], str]) -> tuple[list[Group], Pager]:
    """Page *number* of the timelines, in the order the groups show them, each under its group's heading."""
    flat = [(g.heading, False, e) for g in groups for e in g.active]
    flat += [(g.heading, True, e) for g in groups for e in g.finished]
    flat.sort(key=lambda item: [g.heading for g in groups].index(item[0]))  # stable: active before finished
    shown, pager = paginate(flat, number, link)
    kept: dict[str, Group] = {}
    for heading, finished, entry in shown:
        group = kept.setdefault(heading, Group(heading, [], []))
        (group.finished if finished else group.active).append(entry)
    return list(kept.values()), pager


def page_links(chosen: PageLanguage, where: Where, name: str) -> Callable[[int], str]:
    """The address of page N of list *name* of this page, the reader's other choices kept."""
    path, query = where
    kept = {k: v for k, v in query.items() if k in ("tz", *PAGED) and k != name}

    def link(number: int) -> str:
        return chosen.link(path, **kept, **{name: str(number) if number > 1 else None}) + f"#{PAGED[name]}"

    return link


def other_feeds(views: list[MilestoneView], base_url: str, language: Language) -> list[FeedLinks]:
    """The feed of everything, then one per audience."""
    found = []
    for ref in feed_refs(views):
        if ref.kind == "all":
            found.append(feed_links(base_url, ref.path, language.gettext("Every deadline")))
        elif ref.kind == "audience" and ref.key is not None:
            found.append(feed_links(base_url, ref.path, audience_text(ref.key, language)))
    return found


def render_overview(
    views: list[MilestoneView],
    *,
    base_url: str,
    now: datetime,
    chosen: PageLanguage,
    where: Where,
    zone: str | None,
    late_days: int = LATE_DAYS,
    pages: Mapping[str, int] | None = None,
) -> str:
    """GET /: late steps, what is due in the coming weeks, the timelines by kind, and every feed's buttons.

    Each of the three lists shows at most `PAGE_SIZE` items; *pages* says which page of each
    (`late`, `soon`, `page` for the timelines; the first by default)."""
    language, views, asked = chosen.language, screen_views(views), pages or {}
    process = Process(views, now=now, late_days=late_days)
    late, late_pager = paginate(process.late(), asked.get("late", 1), page_links(chosen, where, "late"))
    items = list_upcoming(views, now=process.now, window=timedelta(weeks=WEEKS_AHEAD))
    soon, soon_pager = paginate(items, asked.get("soon", 1), page_links(chosen, where, "soon"))
    groups = timeline_groups(views, base_url, process, language)
    shown, groups_pager = page_of_groups(groups, asked.get("page", 1), page_links(chosen, where, "page"))
    return render(
        "overview.html.j2",
        chosen,
        where,
        title=language.gettext("What is due"),
        late=[due_of(item, process, language, zone) for item in late],
        late_pager=late_pager,
        due=[due_of(item, process, language, zone) for item in soon],
        due_pager=soon_pager,
        zone=zone,
        weeks=WEEKS_AHEAD,
        groups=shown,
        groups_pager=groups_pager,
        feeds=other_feeds(views, base_url, language),
    )


# --- routes ---------------------------------------------------------------------------------


def page_routes(rendered: Rendered, base_url: str, late_days: int = LATE_DAYS) -> APIRouter:
    """GET / and GET /timelines/{id}, answered from *rendered* while the store and the minute are unchanged."""
    router = APIRouter(tags=["pages"])

    def timeline_answer(timeline_id: str, chosen: PageLanguage, where: Where, views: list[MilestoneView],
                        now: datetime) -> HTMLResponse:  # fmt: skip
        mine = [v for v in views if v.timeline_id == timeline_id and v.status != "removed"]
        if not mine:
            return html(render_unknown(views, timeline_id, chosen, where), chosen, 404)
        process = Process(screen_views(views), now=now, late_days=late_days)
        body = render_timeline(mine, base_url=base_url, now=process.now, chosen=chosen, where=where, process=process)
        return html(body, chosen, headers=PUBLIC)

    def overview_answer(chosen: PageLanguage, where: Where, zone: str | None, pages: Mapping[str, int],
                        views: list[MilestoneView], now: datetime) -> HTMLResponse:  # fmt: skip
        body = render_overview(views, base_url=base_url, now=now, chosen=chosen, where=where, zone=zone,
                               late_days=late_days, pages=pages)  # fmt: skip
        return html(body, chosen, headers=PUBLIC)

    @router.get("/", response_class=HTMLResponse)
    async def overview(
        request: Request,
        lang: str | None = None,
        tz: str | None = None,
        late: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page of the late steps")] = 1,
        soon: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page of what is due in the coming weeks")] = 1,
        page: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page of the timelines")] = 1,
    ) -> Response:
        """What is due in the coming weeks, every timeline by kind, and the buttons to subscribe to each feed.

        Each list shows at most 50 items; `late`, `soon` and `page` choose a page of each."""
        chosen = choose(lang, request.headers.get("accept-language"))
        where = (request.url.path, kept_query(request, "lang", "tz", *PAGED))
        zone, pages = reader_zone(tz), {"late": late, "soon": soon, "page": page}
        asked = ("/", chosen.code, chosen.explicit, tuple(where[1].items()))
        build = partial(overview_answer, chosen, where, zone, pages)
        found = rendered.ready(asked)
        return found if found is not None else await run_in_threadpool(rendered.answer, asked, build)

    @router.get("/timelines/{timeline_id}", response_class=HTMLResponse)
    async def timeline_page(request: Request, timeline_id: str, lang: str | None = None) -> Response:
        """One timeline: its picture, its milestones with their states, and its feed buttons."""
        chosen = choose(lang, request.headers.get("accept-language"))
        where = (request.url.path, kept_query(request, "lang"))
        asked = ("/timelines", timeline_id, chosen.code, chosen.explicit)
        build = partial(timeline_answer, timeline_id, chosen, where)
        found = rendered.ready(asked)
        return found if found is not None else await run_in_threadpool(rendered.answer, asked, build)

    return router


def kept_query(request: Request, *names: str) -> dict[str, str]:
    """The parameters of *request* a page reads, in this order: others are not carried on by its links,
    so one page is one kept answer whatever junk a URL adds."""
    query = request.query_params
    return {name: query[name] for name in names if name in query}
