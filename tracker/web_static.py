"""`tracker publish`: the public pages as static files, in every language, beside the feeds.

The files are what the server answers, but for their links: pages point at each other as
files (`timelines/hlpf-2017.html`, `ar/index.html`), feeds at the published `.ics` files, and
what needs the server (subscribing) at TRACKER_BASE_URL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tracker.emails.words import LANGUAGES
from tracker.planning import MilestoneView
from tracker.web_layout import PageLanguage, Static, languages
from tracker.web_pages import render_overview, render_timeline


@dataclass(frozen=True)
class StaticPage:
    path: str  # the server's path of the page
    code: str
    file: str  # from the site's root


def static_pages(views: list[MilestoneView]) -> Iterator[StaticPage]:
    """Every public page in every language: the overview, then one per timeline."""
    timelines = sorted({v.timeline_id for v in views if v.status != "removed"})
    for code in LANGUAGES:
        for path in ["/", *(f"/timelines/{t}" for t in timelines)]:
            file = Static("", 0).file(path, code)
            assert file is not None  # every path above has its file
            yield StaticPage(path, code, file)


def render_static(page: StaticPage, views: list[MilestoneView], base_url: str, now: datetime) -> str:
    chosen = PageLanguage(
        languages()[page.code], explicit=page.code != "en", static=Static(base_url, page.file.count("/"))
    )
    where: tuple[str, dict[str, str]] = (page.path, {})
    if page.path == "/":
        return render_overview(views, base_url=base_url, now=now, chosen=chosen, where=where, zone=None)
    timeline_id = page.path.removeprefix("/timelines/")
    mine = [v for v in views if v.timeline_id == timeline_id and v.status != "removed"]
    return render_timeline(mine, base_url=base_url, now=now, chosen=chosen, where=where)


def write_pages(
    views: list[MilestoneView], out_dir: Path, *, base_url: str, now: datetime, advance: Callable[[], None]
) -> int:
    """Write every page under *out_dir*; return how many. *advance* is called after each one."""
    count = 0
    for page in static_pages(views):
        target = out_dir / page.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render_static(page, views, base_url, now), encoding="utf-8")
        count += 1
        advance()
    return count
