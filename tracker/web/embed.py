"""The embeddable widget: what is due, as a small self-contained page for an <iframe> on another site.

No script, no request to anyone else: the page carries its own CSS, and its
Content-Security-Policy says so, while `frame-ancestors *` lets any site frame it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from tracker.config import get_settings
from tracker.feeds.calendars import Calendars, load_languages
from tracker.i18n.languages import Language, choose_language, untranslated
from tracker.i18n.wording import audience_text, state_text, when_text
from tracker.links import timeline_page
from tracker.timelines.screening import screen_views
from tracker.timelines.states import LATE_DAYS, Process
from tracker.timelines.views import Occurrence, list_upcoming, timeline_title_in, title_in

# What an anonymous request may ask for: two years ahead, and a bounded answer. A timeline that
# validates may repeat daily; ten years of a hundred such rules made a 155 MB answer.
MAX_DAYS = 731
MAX_EMBED_ITEMS = 100  # a widget on another site's page
Days = Annotated[int, Query(ge=0, le=MAX_DAYS, description=f"How many days ahead to look (0–{MAX_DAYS})")]
EMBED_HEADERS = {
    # Framed anywhere; loads nothing but its own inline style.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors *; base-uri 'none'",
    "Cache-Control": "public, max-age=300",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class EmbedItem:
    title: str
    timeline: str
    when: str
    owner: str
    page: str
    state: str
    state_words: str


def embed_routes(engine: Engine, calendars: Calendars, base: str, late_days: int = LATE_DAYS) -> APIRouter:
    """GET /embed/upcoming: the upcoming list as HTML, in one of the six languages."""
    router = APIRouter(tags=["embed"])
    languages = calendars.languages or load_languages(get_settings().locales)
    template = load_template()

    @router.get("/embed/upcoming", response_class=HTMLResponse)
    async def embed_upcoming(timeline: str | None = None, lang: str = "en", days: Days = 30) -> Response:
        """A self-contained HTML list of what is due, to put in an <iframe>; `lang` falls back to English."""
        language = languages.get(choose_language(lang)) or untranslated()
        ask = (timeline, days, base, late_days)
        return await run_in_threadpool(render_embed, engine, calendars, template, language, ask)

    return router


def load_template() -> Template:
    environment = Environment(
        loader=FileSystemLoader(get_settings().template_folders("pages")), autoescape=True, undefined=StrictUndefined
    )
    return environment.get_template("embed.html.j2")


def render_embed(
    engine: Engine, calendars: Calendars, template: Template, language: Language, ask: tuple[str | None, int, str, int]
) -> Response:
    timeline, days, base, late_days = ask
    views = screen_views(calendars.snapshot()[0])  # read once per change of the store, shared with the feeds
    known = sorted({v.timeline_id for v in views if v.status != "removed"})
    if timeline is not None and timeline not in known:
        message = f"No timeline {timeline!r} here. The timelines are: {', '.join(known) or 'none yet'}\n"
        return PlainTextResponse(message, 404, headers=EMBED_HEADERS)
    process = Process(views, now=calendars.clock(), late_days=late_days)
    items = process.late(timeline=timeline) + list_upcoming(views, now=process.now, window=timedelta(days=days),
                                                            timeline=timeline)  # fmt: skip
    entries = [describe(item, process.state(item), language, base) for item in items[:MAX_EMBED_ITEMS]]
    html = template.render(language=language, entries=entries, _=language.gettext)
    return HTMLResponse(html, headers=EMBED_HEADERS)


def describe(item: Occurrence, state: str, language: Language, base: str) -> EmbedItem:
    view = item.milestone
    return EmbedItem(
        title=title_in(view, language.code),
        timeline=timeline_title_in(view, language.code),
        when=when_text(item, language, view.zone),  # the timeline's own zone: a widget has no reader
        owner=audience_text(view.owner, language) if view.owner else "",
        page=timeline_page(view, base),
        state=state,
        state_words=state_text(state, language),
    )
