"""Public pages: one timeline with its drawn picture, milestone states and feed buttons."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from tracker.config import bundled
from tracker.planning import MilestoneView, timeline_title_in, title_in
from tracker.store import load_views, transaction
from tracker.timeline_svg import Mark, Picture, describe, plan_picture, render_svg

Clock = Callable[[], datetime]
LANGUAGES = {"ar": "العربية", "zh": "中文", "en": "English", "fr": "Français", "ru": "Русский", "es": "Español"}
RTL = {"ar"}
OUTLOOK = "https://outlook.live.com/calendar/0/addfromweb"


@dataclass(frozen=True)
class FeedLinks:
    """Ways to add one feed to a calendar: subscribe (webcal, Google, Outlook) or download once."""

    webcal: str
    google: str
    outlook: str
    download: str


@dataclass(frozen=True)
class Line:
    """One drawn occurrence in the milestone list."""

    title: str
    when: str
    state: str
    owner: str
    wording: str
    note: str
    link: str


@lru_cache(maxsize=1)
def environment() -> Environment:
    folder = bundled("templates/pages")
    return Environment(loader=FileSystemLoader(folder), autoescape=True, undefined=StrictUndefined)


def feed_links(base_url: str, timeline_id: str, name: str) -> FeedLinks:
    """Subscribe links need the absolute address; the download link is relative, so it works on any host."""
    path = f"/feeds/{quote(timeline_id, safe='')}.ics"
    https = base_url.rstrip("/") + path
    parts = urlsplit(https)
    webcal = f"webcal://{parts.netloc}{parts.path}"
    return FeedLinks(
        webcal=webcal,
        google="https://calendar.google.com/calendar/r?cid=" + quote(webcal, safe=":/"),
        outlook=f"{OUTLOOK}?url={quote(https, safe='')}&name={quote(name, safe='')}",
        download=path,
    )


def web_url(url: str) -> str:
    """*url* if it is a web address; autoescaping does not stop a `javascript:` link."""
    return url if url.startswith(("https://", "http://")) else ""


def pick_language(asked: str | None) -> str:
    return asked if asked in LANGUAGES else "en"


def list_lines(picture: Picture, language: str) -> list[Line]:
    lines = []
    for row in picture.rows:
        for mark in row.marks:
            lines.append(line_of(mark, title_in(row.view, language), row.link.wording if row.link else ""))
    return lines


def line_of(mark: Mark, title: str, wording: str) -> Line:
    view = mark.item.milestone
    completion = view.completions.get(mark.item.occurrence)
    when, _, _ = describe(mark).rpartition(", ")
    return Line(
        title=title,
        when=when,
        state=mark.state,
        owner=view.owner or "everyone",
        wording=wording,
        note=completion.note if completion else "",
        link=web_url(completion.link) if completion else "",
    )


def render_timeline(views: Sequence[MilestoneView], *, base_url: str, now: datetime, language: str) -> str:
    """The HTML page of one timeline (*views* are its milestones, at least one)."""
    first = views[0]
    picture = plan_picture(views, now=now)
    title = timeline_title_in(first, language)
    return render(
        "timeline.html.j2",
        language=language,
        title=title,
        timeline=first,
        source=web_url(first.timeline_url),
        svg=Markup(render_svg(picture, language=language)),  # trusted: render_svg escapes every text
        lines=list_lines(picture, language),
        feeds=feed_links(base_url, first.timeline_id, title),
    )


def render_unknown(views: Sequence[MilestoneView], asked: str, language: str) -> str:
    known: dict[str, str] = {}
    for view in views:
        if view.status != "removed":
            known.setdefault(view.timeline_id, timeline_title_in(view, language))
    return render("timeline_unknown.html.j2", language=language, title="No such timeline", asked=asked, known=known)


def render(name: str, *, language: str, **context: Any) -> str:
    page = {"lang": language, "dir": "rtl" if language in RTL else "ltr", "languages": LANGUAGES}
    return environment().get_template(name).render(page=page, **context)


def page_routes(engine: Engine, base_url: str, clock: Clock) -> APIRouter:
    """GET /timelines/{id}."""
    router = APIRouter(tags=["pages"])

    def answer(timeline_id: str, language: str) -> HTMLResponse:
        with transaction(engine) as session:
            views = load_views(session)
        mine = [v for v in views if v.timeline_id == timeline_id and v.status != "removed"]
        if not mine:
            return HTMLResponse(render_unknown(views, timeline_id, language), status_code=404)
        body = render_timeline(mine, base_url=base_url, now=clock(), language=language)
        return HTMLResponse(body, headers={"Cache-Control": "public, max-age=60"})

    @router.get("/timelines/{timeline_id}", response_class=HTMLResponse)
    @router.head("/timelines/{timeline_id}", include_in_schema=False)
    async def timeline_page(timeline_id: str, lang: str | None = None) -> HTMLResponse:
        """One timeline: its picture, its milestones with their states, and its feed buttons."""
        return await run_in_threadpool(answer, timeline_id, pick_language(lang))

    return router
