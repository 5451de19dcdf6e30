"""Atom feeds (RFC 4287) of what changed: dates moved, cancelled or restored, steps completed, reopened or opened.

Read from the events table, newest first: one entry per change set and timeline (as the `changed`
email tells it), one per completion or reopening, one per step a completion opened. Entry ids are
`tag:` URIs made of the host and the event or change set, so a reader never shows an entry twice.
Built with the standard library; every text is cleaned of control characters and bounded.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from html import escape
from urllib.parse import quote, urlsplit

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from tracker.feeds.calendars import Calendars, FeedBody
from tracker.i18n.languages import N_, Language, untranslated
from tracker.i18n.wording import deadline_text
from tracker.store.engine import transaction
from tracker.store.models import Event
from tracker.text import CONTROLS
from tracker.timelines.views import UNREADABLE, MilestoneView, timeline_title_in, title_in

ATOM = "http://www.w3.org/2005/Atom"
ATOM_TYPE = "application/atom+xml; charset=utf-8"
TAG_YEAR = "2026"  # the tag: URIs' date (RFC 4151): fixed forever, or every id would change
LINE_KINDS = ("rescheduled", "cancelled", "removed", "restored")
NEWS_KINDS = (*LINE_KINDS, "completed", "reopened")
ENTRIES = 50  # the newest entries a feed lists
ROWS = 2000  # events read at most for one feed: a sync that moved thousands of dates is cut short
PAGE = 200  # events read at a time: most feeds are complete after the first page
LINES = 40  # lines of one entry's summary; more are counted, not listed
MAX_TITLE = 300  # characters of a title; YAML files are hostile input too
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # `updated` of a feed with nothing in it yet

FEED_TITLE = N_("What changed: %(timeline)s")
ALL_TITLE = N_("Tracker: what changed")
COMPLETED = N_("Completed: %(title)s")
REOPENED = N_("Reopened: %(title)s")

ET.register_namespace("", ATOM)


@dataclass(frozen=True)
class Entry:
    """One entry of a feed, in words already."""

    id: str
    title: str
    updated_at: datetime
    link: str
    summary: str


def read_news(session: Session, timeline_id: str | None, limit: int = ENTRIES, rows: int = ROWS) -> list[list[Event]]:
    """The events of the newest *limit* entries, newest entry first, each oldest event first.

    Read by id, descending, a page at a time (an index walk) until one more entry has begun,
    so every entry listed is whole; at most *rows* events in all.
    """
    query = select(Event).where(col(Event.kind).in_(NEWS_KINDS))
    if timeline_id is not None:
        query = query.where(Event.timeline_id == timeline_id)
    groups: dict[str, list[Event]] = {}
    before, read = None, 0
    while read < rows and len(groups) <= limit:
        page = query if before is None else query.where(col(Event.id) < before)
        found = list(session.exec(page.order_by(col(Event.id).desc()).limit(min(PAGE, rows - read))))
        for event in found:
            groups.setdefault(entry_key(event), []).append(event)
        if len(found) < PAGE:
            break
        before, read = found[-1].id, read + len(found)
    return [sorted(group, key=lambda e: e.id or 0) for group in list(groups.values())[:limit]]


def entry_key(event: Event) -> str:
    """A change set's rows of one timeline make one entry; a completion or a reopening is its own."""
    if event.kind in LINE_KINDS:
        return f"set {event.timeline_id}/{event.change_set or event.id}"
    return f"event {event.id}"


@dataclass(frozen=True)
class Words:
    """What entries are written with: a language, the milestones by key, and where links point."""

    language: Language
    views: dict[tuple[str, str], MilestoneView]
    base_url: str
    tag: str  # 'tag:example.org,2026:'

    def gettext(self, message: str, **values: str) -> str:
        return self.language.translations.gettext(message) % values

    def title(self, event: Event) -> str:
        view = self.views.get((event.timeline_id, event.milestone_key or ""))
        return bounded(title_in(view, self.language.code) if view else event.milestone_key or "")

    @cached_property
    def _timelines(self) -> dict[str, MilestoneView]:
        return {view.timeline_id: view for view in self.views.values()}

    def timeline(self, timeline_id: str) -> str:
        view = self._timelines.get(timeline_id)
        return bounded(timeline_title_in(view, self.language.code) if view else timeline_id)

    def when(self, event: Event, at: datetime | None) -> str:
        view = self.views.get((event.timeline_id, event.milestone_key or ""))
        return "" if at is None else self.date(at, view)

    def date(self, at: datetime, view: MilestoneView | None) -> str:
        """*at* as the emails write it; in UTC for a milestone gone or one whose zone does not read."""
        try:
            if view is not None:
                return deadline_text(at, view, self.language, view.zone)
        except UNREADABLE:
            pass
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

    def page(self, timeline_id: str) -> str:
        return f"{self.base_url}/timelines/{quote(timeline_id, safe='')}"


def write_entries(groups: Sequence[list[Event]], words: Words) -> list[Entry]:
    """Each group in words; a change set whose changes undo each other gives no entry."""
    entries: list[Entry] = []
    for group in groups:
        first = group[0]
        if first.kind in LINE_KINDS:
            entries += changed_entry(group, words)
        elif first.kind == "completed":
            entries += completed_entries(first, words)
        else:
            entries.append(simple_entry(first, REOPENED, words))
    return entries


def changed_entry(group: list[Event], words: Words) -> list[Entry]:
    """One entry for one change set in one timeline: a line per milestone, from its first date to its last."""
    by_milestone: dict[str, list[Event]] = {}
    for event in group:
        by_milestone.setdefault(event.milestone_key or "", []).append(event)
    lines = [line for events in by_milestone.values() if (line := change_line(events, words))]
    if not lines:
        return []
    first, last = group[0], group[-1]
    if len(lines) == 1:
        title = lines[0][0]
    else:
        title = words.gettext(N_("Dates changed: %(timeline)s"), timeline=words.timeline(first.timeline_id))
    summary = [text for _, text in lines[:LINES]] + ([f"… (+{len(lines) - LINES})"] if len(lines) > LINES else [])
    set_id = first.change_set or f"event-{first.id}"
    return [Entry(
        id=f"{words.tag}changes/{quote(first.timeline_id, safe='')}/{quote(set_id, safe='')}",
        title=title, updated_at=last.at, link=words.page(first.timeline_id), summary="\n".join(summary),
    )]  # fmt: skip


def change_line(events: list[Event], words: Words) -> tuple[str, str] | None:
    """A milestone's title line and summary line for its changes in one set, oldest first; None if undone."""
    first, last = events[0], events[-1]
    title = words.title(last)
    old_at = first.old_at
    if last.kind in ("cancelled", "removed"):
        was = words.when(last, old_at or last.old_at)
        if last.kind == "removed":
            line = words.gettext(N_("%(title)s: removed (was %(when)s)"), title=title, when=was)
            return line, line
        line = words.gettext(N_("%(title)s: cancelled (was %(when)s)"), title=title, when=was)
        return words.gettext(N_("Cancelled: %(title)s"), title=title), line
    new = words.when(last, last.new_at)
    if any(e.kind == "restored" for e in events):
        line = words.gettext(N_("%(title)s: back on the calendar, %(when)s"), title=title, when=new)
        return words.gettext(N_("Back on the calendar: %(title)s"), title=title), line
    if old_at == last.new_at:
        return None
    old = words.when(last, old_at)
    line = words.gettext(N_("%(title)s: %(when)s (previously %(old)s)"), title=title, when=new, old=old)
    return words.gettext(N_("New date: %(title)s"), title=title), line


def simple_entry(event: Event, message: str, words: Words, summary: str = "") -> Entry:
    timeline = words.timeline(event.timeline_id)
    return Entry(
        id=f"{words.tag}events/{event.id}",
        title=words.gettext(message, title=words.title(event)),
        updated_at=event.at,
        link=words.page(event.timeline_id),
        summary=summary or words.gettext(N_("Timeline: %(timeline)s"), timeline=timeline),
    )


def completed_entries(event: Event, words: Words) -> list[Entry]:
    """The completion, then one entry per step it opened (still ahead when it was done)."""
    done = words.gettext(N_("Done on %(day)s"), day=words.when(event, event.new_at)) if event.new_at else ""
    entries = [simple_entry(event, COMPLETED, words, done)]
    for view, at in opened_by(event, words.views.values()):
        when = words.date(at, view)
        due = N_("When: %(when)s") if view.kind == "span" else N_("Due: %(when)s")
        entries.append(Entry(
            id=f"{words.tag}events/{event.id}/opened/{quote(view.timeline_id, safe='')}/{quote(view.key, safe='')}",
            title=words.gettext(N_("Now open: %(title)s"), title=bounded(title_in(view, words.language.code))),
            updated_at=event.at, link=words.page(view.timeline_id), summary=words.gettext(due, when=when),
        ))  # fmt: skip
    return entries


def opened_by(event: Event, views: Iterable[MilestoneView]) -> list[tuple[MilestoneView, datetime]]:
    """Active steps whose `opens_after` names the completed milestone and that were ahead when it was done
    (its time as recorded: a completion entered late still opens what came after it)."""
    found = []
    for view in views:
        at = view.due_at or view.starts_at
        if view.opens_after is None or view.status != "active" or at is None or at <= (event.new_at or event.at):
            continue
        timeline, _, key = view.opens_after.rpartition("/")
        if (timeline or view.timeline_id, key) == (event.timeline_id, event.milestone_key):
            found.append((view, at))
    return found


# --- XML ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedHead:
    """What the feed says about itself."""

    id: str
    title: str
    self_url: str
    page_url: str
    language: str  # BCP 47 tag


def write_feed(head: FeedHead, entries: Sequence[Entry]) -> tuple[bytes, datetime]:
    """The Atom document and its `updated` time (the newest entry's, else a fixed one: the bytes stay the same)."""
    updated_at = max((e.updated_at for e in entries), default=EPOCH)
    root = ET.Element(f"{{{ATOM}}}feed", {"{http://www.w3.org/XML/1998/namespace}lang": head.language})
    text(root, "id", head.id)
    text(root, "title", head.title)
    text(root, "updated", stamp(updated_at))
    author = ET.SubElement(root, f"{{{ATOM}}}author")
    text(author, "name", "Tracker")
    ET.SubElement(root, f"{{{ATOM}}}link", rel="self", type="application/atom+xml", href=clean(head.self_url))
    ET.SubElement(root, f"{{{ATOM}}}link", rel="alternate", type="text/html", href=clean(head.page_url))
    text(root, "generator", "Tracker")
    for entry in entries:
        node = ET.SubElement(root, f"{{{ATOM}}}entry")
        text(node, "id", entry.id)
        text(node, "title", entry.title)
        text(node, "updated", stamp(entry.updated_at))
        ET.SubElement(node, f"{{{ATOM}}}link", rel="alternate", type="text/html", href=clean(entry.link))
        # HTML, so that readers keep one line per milestone; text within it escaped once more by ElementTree.
        text(node, "summary", summary_html(entry.summary)).set("type", "html")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n", updated_at


def text(parent: ET.Element, name: str, value: str) -> ET.Element:
    node = ET.SubElement(parent, f"{{{ATOM}}}{name}")
    node.text = clean(value)
    return node


def summary_html(summary: str) -> str:
    """One line as escaped text; several as a list."""
    lines = [escape(clean(line)) for line in summary.split("\n")]
    return lines[0] if len(lines) == 1 else "<ul>" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>"


def clean(value: str) -> str:
    """*value* without the characters XML 1.0 cannot carry (controls, lone surrogates) or readers stumble on."""
    return CONTROLS.sub("", value)


def bounded(value: str, limit: int = MAX_TITLE) -> str:
    value = clean(value)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def stamp(at: datetime) -> str:
    return at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def tag_base(base_url: str) -> str:
    """'tag:example.org,2026:' for https://example.org:8443/tracker (the host names the authority)."""
    host = (urlsplit(base_url).hostname or "localhost").lower()
    return f"tag:{host},{TAG_YEAR}:"


# --- serving --------------------------------------------------------------------------------


class NewsFeeds:
    """The Atom feeds of one store, kept until the store's newest event changes."""

    def __init__(self, calendars: Calendars, engine: Engine, *, limit: int = ENTRIES) -> None:
        self.calendars = calendars
        self.engine = engine
        self.limit = limit
        self._lock = threading.Lock()
        self._built: dict[tuple[str | None, str], tuple[int, FeedBody]] = {}

    def feed(self, timeline_id: str | None, code: str) -> FeedBody | None:
        """The feed of *timeline_id* (None: every timeline) in language *code*; None for an unknown timeline."""
        views, marker = self.calendars.snapshot()
        if timeline_id is not None and not any(v.timeline_id == timeline_id and v.status != "removed" for v in views):
            return None
        key = (timeline_id, code)
        with self._lock:
            built = self._built.get(key)
            if built is None or built[0] != marker:
                built = (marker, self._build(views, timeline_id, code))
                self._built[key] = built
            return built[1]

    def _build(self, views: list[MilestoneView], timeline_id: str | None, code: str) -> FeedBody:
        language = self.calendars.languages.get(code) or untranslated(code)
        base = self.calendars.base_url
        words = Words(language, {(v.timeline_id, v.key): v for v in views}, base, tag_base(base))
        with transaction(self.engine) as session:
            groups = read_news(session, timeline_id, self.limit)
        entries = write_entries(groups, words)[: self.limit]
        body, updated_at = write_feed(self.head(words, timeline_id), entries)
        # A title edited since the newest entry changes the bytes: If-Modified-Since must not answer 304.
        edited = [v.updated_at for v in views if v.updated_at and timeline_id in (None, v.timeline_id)]
        return FeedBody.of(body, max([updated_at, *edited]))

    def head(self, words: Words, timeline_id: str | None) -> FeedHead:
        base, tag = self.calendars.base_url, words.tag
        lang = "" if words.language.code == "en" else f"?lang={words.language.code}"
        if timeline_id is None:
            title = words.gettext(ALL_TITLE)
            return FeedHead(f"{tag}feeds/all", title, f"{base}/feeds/all.atom{lang}", f"{base}/{lang}",
                            words.language.tag)  # fmt: skip
        name = quote(timeline_id, safe="")
        title = words.gettext(FEED_TITLE, timeline=words.timeline(timeline_id))
        return FeedHead(f"{tag}feeds/{name}", title, f"{base}/feeds/{name}.atom{lang}", words.page(timeline_id) + lang,
                        words.language.tag)  # fmt: skip
